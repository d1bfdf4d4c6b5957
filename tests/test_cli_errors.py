"""User errors on the command line: one clear line, exit status 1, no traceback.

Each case runs the real entry point (``python -m experiments.<command>``) as a
user would. All of them stop before any training, so the subprocesses run
side by side; still, a dozen fresh interpreters importing JAX are a slow-tier
test. The wrapper itself is tested in process (fast tier).
``--verbose`` (or absl's ``-v 1``) brings the traceback back, and a bug of
ours (an exception that is not a ``UserError``) keeps its traceback.
"""

import json
import os
import subprocess
import sys

from absl import flags
import pytest

from experiments.configs import factorvae_dsprites
from factorvae_jax import builder
from factorvae_jax.builder import run_config
from factorvae_jax.utils import cli
from factorvae_jax.utils import errors

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "experiments", "configs")
DSPRITES_TEST = f"--config={CONFIGS}/factorvae_dsprites.py:test"


def _incompatible_workdir(root):
  """A workdir holding a step-0 checkpoint of the ``:test`` config."""
  workdir = os.path.join(root, "other_experiment")
  config = factorvae_dsprites.get_config("test")
  shape = (64, 64, 1)
  step_config = builder.build_step_config(config, shape, axis_name=None)
  checkpointer = builder.Checkpointer(os.path.join(workdir, "checkpoints"), 1)
  try:
    checkpointer.save(builder.init_state(config, step_config, shape))
  finally:
    checkpointer.close()
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(run_config.config_to_dict(config), f)
  return workdir


def _cases(root):
  """(name, argv after `python -m`, text the one line must hold)."""
  empty = os.path.join(root, "empty")
  os.makedirs(empty)
  garbage = os.path.join(root, "dsprites.npz")
  with open(garbage, "wb") as f:
    f.write(b"not a zip archive")
  return [
      ("missing data file",
       ["experiments.run",
        f"--config={CONFIGS}/factorvae_shapes3d.py:test",
        f"--workdir={root}/w_missing"],
       "data.path is empty; set it to the path of 3dshapes.h5"),
      ("malformed data file",
       ["experiments.run", DSPRITES_TEST, f"--workdir={root}/w_garbage",
        "--config.data.source=npz", f"--config.data.path={garbage}"],
       "is not an npz (zip) archive"),
      ("unknown config key",
       ["experiments.run", DSPRITES_TEST, f"--workdir={root}/w_key",
        "--config.model.gamm=40"],
       'Did you mean "gamma"'),
      ("wrong type",
       ["experiments.run", DSPRITES_TEST, f"--workdir={root}/w_type",
        "--config.model.gamma=abc"],
       "--config.model.gamma=abc"),
      ("value out of range",
       ["experiments.run", DSPRITES_TEST, f"--workdir={root}/w_range",
        "--config.batch_size=0"],
       "config.batch_size=0 must be positive"),
      ("incompatible resume",
       ["experiments.run", DSPRITES_TEST,
        f"--workdir={_incompatible_workdir(root)}",
        "--config.model.latent_dim=7"],
       "model.latent_dim: checkpoint 4, now 7"),
      ("nothing to evaluate",
       ["experiments.evaluate", f"--workdir={empty}", "--sizes=tiny"],
       "is not a training workdir"),
      ("nothing to report",
       ["experiments.report", f"--workdir={empty}"],
       "holds no training run"),
      ("bad sweep argument",
       ["experiments.sweep",
        "--sweep=experiments/sweeps/factorvae_study.py:bogus",
        f"--sweep_dir={root}/sweep"],
       "sweep argument 'bogus' is unknown"),
      ("nothing to aggregate",
       ["experiments.aggregate", f"--sweep_dir={root}/no_such_sweep"],
       "no_such_sweep"),
      ("nothing to score with udr",
       ["experiments.udr", f"--sweep_dir={empty}"],
       "is not a sweep dir"),
  ]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
  """Every case run at once: {name: (expected text, CompletedProcess)}."""
  root = str(tmp_path_factory.mktemp("cli_errors"))
  cases = _cases(root)
  verbose = ["experiments.run",
             f"--config={CONFIGS}/factorvae_shapes3d.py:test",
             f"--workdir={root}/w_verbose", "--verbose"]
  procs = {}
  assert [c[0] for c in cases] == CASE_NAMES
  for name, argv, expected in cases + [("verbose", verbose, "")]:
    procs[name] = (expected, subprocess.Popen(
        [sys.executable, "-m", *argv], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
  done = {}
  for name, (expected, proc) in procs.items():
    stdout, stderr = proc.communicate(timeout=300)
    done[name] = (expected, proc.returncode, stdout, stderr)
  return done


CASE_NAMES = [
    "missing data file", "malformed data file", "unknown config key",
    "wrong type", "value out of range", "incompatible resume",
    "nothing to evaluate", "nothing to report", "bad sweep argument",
    "nothing to aggregate", "nothing to score with udr"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CASE_NAMES)
def test_user_error_is_one_line_and_exit_1(outcomes, name):
  expected, code, stdout, stderr = outcomes[name]
  assert code == 1, (code, stdout, stderr)
  assert "Traceback" not in stderr + stdout, stderr
  assert expected in stderr, stderr
  # absl prints its own two lines for a flag it cannot parse; ours are one.
  message = [line for line in stderr.splitlines()
             if line.startswith(("error:", "FATAL"))]
  assert len(message) == 1, stderr


@pytest.mark.slow
def test_verbose_shows_the_traceback(outcomes):
  _, code, _, stderr = outcomes["verbose"]
  assert code != 0
  assert "Traceback" in stderr and "MissingFileError" in stderr, stderr


@pytest.mark.slow
def test_nothing_was_written_for_a_refused_config(outcomes, tmp_path_factory):
  del outcomes  # Only once the cases have run.
  root = tmp_path_factory.getbasetemp()
  for workdir in root.glob("cli_errors*/w_*"):
    assert not (workdir / "checkpoints").exists(), workdir


def test_a_bug_keeps_its_traceback(monkeypatch, capsys):
  """Only UserError is shortened: anything else propagates unchanged."""
  monkeypatch.setattr(sys, "argv", ["prog"])

  def buggy_main(argv):
    del argv
    raise KeyError("our bug")

  def user_error_main(argv):
    del argv
    raise errors.MissingFileError("no file at x; download it from y")

  assert flags.FLAGS.is_parsed()
  with pytest.raises(KeyError, match="our bug"):
    cli.run(buggy_main)
  with pytest.raises(SystemExit) as exit_info:
    cli.run(user_error_main)
  assert exit_info.value.code == cli.EXIT_USER_ERROR == 1
  assert capsys.readouterr().err == "error: no file at x; download it from y\n"


def test_user_errors_stay_the_builtin_exceptions_library_callers_catch():
  # A notebook or library caller catching ValueError/FileNotFoundError keeps
  # working.
  assert issubclass(errors.InvalidValueError, ValueError)
  assert issubclass(errors.BadFileError, ValueError)
  assert issubclass(errors.IncompatibleResumeError, ValueError)
  assert issubclass(errors.MissingFileError, FileNotFoundError)
  assert issubclass(errors.NothingToDoError, FileNotFoundError)
  with pytest.raises(ValueError, match="batch_size=0"):
    config = factorvae_dsprites.get_config("test")
    with config.unlocked():
      config.batch_size = 0
    run_config.validate(config, num_devices=1)

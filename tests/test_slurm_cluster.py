"""The cluster files in experiments/cluster/, checked against the real thing.

experiments/cluster/sweep_slurm.sh on a real Slurm cluster: a 2-task
array in which one task is preempted (``scancel --batch --signal=TERM``)
and the other reaches its time limit (``--signal=B:TERM@600``); each
requeues itself, resumes from its checkpoint and finishes, and no step is
trained twice.

Needs a cluster on this machine: ``sudo bash
experiments/cluster/start_test_slurm.sh`` starts one (Debian's slurm-wlm,
one node, a 10 s requeue delay). Without one the test is skipped, or fails
when ``CI`` is set.

experiments/cluster/sweep_indexed_job.yaml parsed into the official
``kubernetes`` client's models, unknown fields rejected (skipped without
the client, failing when ``CI`` is set).
"""

import copy
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from factorvae_jax import sweeps
from factorvae_jax.sweeps import claims
from factorvae_jax.sweeps import status
from factorvae_jax.utils import run_dir
from tests.test_claims import REPO, skip_or_fail, subprocess_env, write_tiny_sweep

SCRIPT = "experiments/cluster/sweep_slurm.sh"
HOW_TO_RUN = ("start a single-node cluster with `sudo bash "
              "experiments/cluster/start_test_slurm.sh`, then run `python -m "
              "pytest tests/test_slurm_cluster.py`")
STEPS = 1500
LOG_EVERY = 50
# Slurm sends the --signal warning when a time-limit check (every 30 s)
# finds less than this left; far more than the test lasts, so only the
# shortened limit below triggers it.
WARN_S = 600


def _cluster_error():
  """Why no Slurm cluster answers here, or None if one does."""
  if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
    return "Slurm's commands (sbatch, sinfo) are not installed"
  try:
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True,
                         text=True, timeout=15)
  except subprocess.TimeoutExpired:
    return "sinfo did not answer in 15 s"
  states = out.stdout.split()
  if out.returncode != 0 or not any(
      s.rstrip("*") in ("idle", "mixed", "allocated", "completing")
      for s in states):
    return f"no usable Slurm node (sinfo: {out.stdout or out.stderr!r})"
  return None


def _job(job_id):
  """``scontrol show job`` of one job (array task ``<job>_<i>``) as a dict."""
  out = subprocess.run(["scontrol", "-o", "show", "job", job_id],
                       capture_output=True, text=True, timeout=30, check=True)
  return dict(field.split("=", 1) for field in out.stdout.split()
              if "=" in field)


def _seconds(duration):
  """Slurm's [days-]hours:minutes:seconds as seconds."""
  days, _, clock = duration.rpartition("-")
  parts = [int(p) for p in clock.split(":")]
  while len(parts) < 3:
    parts.insert(0, 0)
  return int(days or 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]


def _read(path):
  try:
    with open(path) as f:
      return f.read()
  except FileNotFoundError:
    return ""


def _logged_steps(workdir):
  """Steps of the training log lines of metrics.jsonl, in file order."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f if line.strip()]
  return [r["step"] for r in records if "reconstruction" in r]


@pytest.mark.slow
def test_preempted_and_timed_out_tasks_requeue_and_resume():
  problem = _cluster_error()
  if problem:
    skip_or_fail(f"{problem}: {HOW_TO_RUN}")
  venv = sys.prefix
  if not os.path.exists(os.path.join(venv, "bin", "activate")):
    skip_or_fail(f"the tests do not run in a virtual environment "
                 f"({sys.prefix}); the job script activates one")
  started = time.monotonic()
  tmp = tempfile.mkdtemp(prefix="factorvae_slurm_")
  sweep_file = write_tiny_sweep(tmp, runs=2, steps=STEPS, dispatch=10,
                                log=LOG_EVERY, checkpoint=100)
  sweep_dir = os.path.join(tmp, "sweep")
  runs = sweeps.expand(sweeps.load_sweep(sweep_file))
  workdirs = [run.workdir(sweep_dir) for run in runs]  # Task i: run i.
  env = {**subprocess_env(), "SWEEP": sweep_file, "SWEEP_DIR": sweep_dir,
         "RUNS_PER_GROUP": "1", "VENV": venv}
  # The script's own #SBATCH lines, but for what this cluster lacks (a GPU,
  # 32G, 8 CPUs), the warning time and where the logs go.
  submitted = subprocess.run(
      ["sbatch", "--parsable", "--array=0-1", "--gres=none", "--mem=500M",
       "--cpus-per-task=1", f"--signal=B:TERM@{WARN_S}",
       f"--output={tmp}/slurm-%A_%a.out", SCRIPT],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
  assert submitted.returncode == 0, submitted.stderr
  job = submitted.stdout.strip().split(";")[0]
  tasks = [f"{job}_0", f"{job}_1"]
  logs = [os.path.join(tmp, f"slurm-{job}_{i}.out") for i in (0, 1)]
  stopped_pid = None

  def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
      if predicate():
        return
      time.sleep(0.2)
    raise AssertionError(
        f"timed out after {timeout_s} s waiting for {what}; task logs:\n" +
        "\n".join(f"--- {p}\n{_read(p)[-3000:]}" for p in logs))

  try:
    # Task 1 reaches its time limit: once it has trained a checkpoint, its
    # limit is cut to leave less than WARN_S, so Slurm's next time-limit
    # check (every 30 s) sends SIGTERM to the batch shell (B:). The sweep is
    # held (SIGSTOP) until then, so it is still mid-run when it arrives.
    # Task 0 is preempted as soon as it has a checkpoint.
    handled = [False, False]

    def checkpointed():
      for i in (0, 1):
        if handled[i] or run_dir.latest_checkpoint_step(workdirs[i]) is None:
          continue
        handled[i] = True
        if i == 0:
          subprocess.run(["scancel", "--batch", "--signal=TERM", tasks[0]],
                         check=True, timeout=30)
        else:
          nonlocal stopped_pid
          stopped_pid = claims.read_claim(workdirs[1])["pid"]
          os.kill(stopped_pid, signal.SIGSTOP)
          elapsed = _seconds(_job(tasks[1])["RunTime"])
          subprocess.run(["scontrol", "update", f"JobId={tasks[1]}",
                          f"TimeLimit={(elapsed + WARN_S) // 60}"],
                         check=True, timeout=30)
      return all(handled)

    wait_for(checkpointed, 150, "both tasks' first checkpoint")
    wait_for(lambda: f"{tasks[1]}: TERM received at" in _read(logs[1]), 45,
             "Slurm's time-limit warning to task 1")
    os.kill(stopped_pid, signal.SIGCONT)
    stopped_pid = None
    # Requeued: give the next attempt the script's own 24 h limit again.
    wait_for(lambda: _job(tasks[1])["Restarts"] == "1", 60,
             "task 1 to requeue itself")
    subprocess.run(["scontrol", "update", f"JobId={tasks[1]}",
                    "TimeLimit=24:00:00"], check=True, timeout=30)
    wait_for(lambda: all(_job(t)["JobState"] == "COMPLETED" for t in tasks),
             max(30, 230 - (time.monotonic() - started)),
             "both tasks to complete")
  finally:
    if stopped_pid is not None:
      os.kill(stopped_pid, signal.SIGCONT)
    subprocess.run(["scancel", job], timeout=30)

  for i, task in enumerate(tasks):
    info, log, workdir = _job(task), _read(logs[i]), workdirs[i]
    assert (info["Restarts"], info["ExitCode"]) == ("1", "0:0"), (info, log)
    # Both attempts in the appended log; the first passed SIGTERM on and
    # requeued the task.
    assert "(attempt 1)" in log and "(attempt 2)" in log, log
    assert log.count(f"Task {task}: TERM received at") == 1, log
    assert log.count("requeueing it to resume") == 1, log
    events = run_dir.read_run_log(workdir)
    assert [e["event"] for e in events] == [
        "start", "interrupted", "start", "done"], (events, log)
    stopped_at = events[1]["step"]
    # Stopped mid-run with its last finished step saved, and resumed from
    # exactly that checkpoint: no step trained twice, none skipped.
    assert 100 <= stopped_at < STEPS, (events, log)
    assert events[0]["step"] == 0 and events[2]["step"] == stopped_at, events
    assert events[3]["step"] == STEPS, events
    assert f"stopped at step {stopped_at} of {STEPS}" in log, log
    assert f"Resumed from step {stopped_at}" in log, log
    assert _logged_steps(workdir) == list(
        range(LOG_EVERY, STEPS + 1, LOG_EVERY)), log
    assert status.run_status(workdir).state == status.DONE
    assert claims.read_claim(workdir) is None
  shutil.rmtree(tmp, ignore_errors=True)


MANIFEST = os.path.join(REPO, "experiments/cluster/sweep_indexed_job.yaml")


def _check_fields(data, type_name, path, k8s):
  """Fails on a field ``type_name`` (a client model's type string, e.g.
  ``V1JobSpec`` or ``List[V1Container]``) does not have, at any depth."""
  for prefix in ("list[", "List["):
    if type_name.startswith(prefix):
      assert isinstance(data, list), f"{path}: {data!r} is not a list"
      for i, item in enumerate(data):
        _check_fields(item, type_name[len(prefix):-1], f"{path}[{i}]", k8s)
      return
  for prefix in ("dict(", "Dict["):
    if type_name.startswith(prefix):
      assert isinstance(data, dict), f"{path}: {data!r} is not a mapping"
      value_type = type_name[type_name.index(",") + 1:-1].strip()
      for key, value in data.items():
        _check_fields(value, value_type, f"{path}.{key}", k8s)
      return
  model = getattr(k8s, type_name, None)
  if model is None or not hasattr(model, "attribute_map"):
    return  # A scalar (str, int, bool, object, a date).
  assert isinstance(data, dict), f"{path}: {data!r} is not a {type_name}"
  fields = {json_name: attr for attr, json_name in model.attribute_map.items()}
  unknown = sorted(set(data) - set(fields))
  assert not unknown, (f"{path}: {type_name} has no field(s) {unknown}; "
                       f"its fields: {sorted(fields)}")
  for key, value in data.items():
    _check_fields(value, model.openapi_types[fields[key]], f"{path}.{key}",
                  k8s)


def _parse_job(doc):
  """The manifest as a ``kubernetes.client.V1Job``; AssertionError or the
  client's validation error on an unknown field or a wrong type."""
  import kubernetes.client as k8s  # pylint: disable=g-import-not-at-top
  _check_fields(doc, "V1Job", "Job", k8s)
  if hasattr(k8s.V1Job, "model_validate"):  # Pydantic models: types too.
    return k8s.V1Job.model_validate(doc)
  return k8s.ApiClient()._ApiClient__deserialize(doc, "V1Job")  # pylint: disable=protected-access


def test_kubernetes_manifest_parses_into_the_official_models():
  try:
    importlib.import_module("kubernetes.client")
  except ImportError:
    skip_or_fail("the kubernetes client is not installed: pip install "
                 "kubernetes (a test requirement)")
  import yaml  # pylint: disable=g-import-not-at-top  # kubernetes needs it.
  with open(MANIFEST) as f:
    doc = yaml.safe_load(f)
  job = _parse_job(doc)
  spec = job.spec
  assert (job.api_version, job.kind) == ("batch/v1", "Job")
  assert spec.completion_mode == "Indexed"
  container = spec.template.spec.containers[0]
  env = {e.name: e.value for e in container.env}
  assert spec.completions == spec.parallelism == int(env["NUM_TASKS"])
  # Exit 75 (checkpointed, resumable) replaces the pod without counting a
  # failure, for the container that runs the sweep.
  rules = spec.pod_failure_policy.rules
  exit_rules = [r for r in rules if r.on_exit_codes is not None]
  assert [(r.action, r.on_exit_codes.operator, r.on_exit_codes.values,
           r.on_exit_codes.container_name) for r in exit_rules] == [
               ("Ignore", "In", [75], container.name)]
  assert spec.template.spec.restart_policy == "Never"
  assert spec.pod_replacement_policy == "Failed"
  assert container.command == ["python", "-m", "experiments.sweep"]
  assert "--claims=on" in container.args

  # A misspelt field anywhere is an error, not a silently dropped setting.
  for where, typo in (
      (lambda d: d["spec"]["podFailurePolicy"]["rules"][0], "onExitCode"),
      (lambda d: d["spec"]["template"]["spec"]["containers"][0],
       "volumeMount")):
    bad = copy.deepcopy(doc)
    where(bad)[typo] = where(bad).pop(typo + "s")
    with pytest.raises(Exception, match=typo):
      _parse_job(bad)

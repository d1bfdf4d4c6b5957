"""Trains a sweep, or this task's share of it; lists its runs.

  python -m experiments.sweep --sweep=experiments/sweeps/factorvae_study.py \
      --sweep_dir=runs/study [--list] [--task_index=i --num_tasks=K]

Each run trains in ``<sweep_dir>/<model>/<hparams>/seed=<s>``, exactly as
``python -m experiments.run`` would train it there. Re-running skips finished
runs and resumes partial ones; runs another live process is training are
left to it. Inside a Slurm job array or a Kubernetes Indexed Job the task
index and count come from the environment (docs/sweeps.md).

Claims (``--claims=on``, the default) keep two processes from training one
run; ``--claims=off`` is for schedulers that run at most one live instance
of each task index (Slurm job arrays, Kubernetes Indexed Jobs), e.g. on a
sweep dir without hard links (docs/sweeps.md, "Claims").

Exit status: 0 when this task's share is done or left to other live
processes, 1 when a run failed or for a user error (a bad sweep argument,
a sweep dir without hard links while claims are on: one line, no
traceback), 75
(``preemption.EXIT_RESUMABLE``) when stopped by SIGTERM/SIGINT: the runs
being trained were checkpointed; run the same command again to resume.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

from factorvae_jax import sweeps
from factorvae_jax.monitoring.log_filters import quiet_library_logs
from factorvae_jax.sweeps import claims
from factorvae_jax.sweeps import runner
from factorvae_jax.sweeps import sharding
from factorvae_jax.sweeps import snapshot
from factorvae_jax.sweeps import status
from factorvae_jax.training import packed
from factorvae_jax.training import preemption
from factorvae_jax.utils import cli

_SWEEP = flags.DEFINE_string(
    "sweep", None, "Sweep file and argument, e.g. "
    "experiments/sweeps/factorvae_study.py[:test|:quick][,seeds=N].")
_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None,
                                 "Directory of the sweep's runs.")
_LIST = flags.DEFINE_bool("list", False,
                          "Print one line per run with its status; train "
                          "nothing.")
_TASK_INDEX = flags.DEFINE_integer(
    "task_index", None, "This task's index in [0, num_tasks) (default: from "
    "SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX, else 0).")
_NUM_TASKS = flags.DEFINE_integer(
    "num_tasks", None, "How many tasks share the sweep (default: from "
    "SLURM_ARRAY_TASK_COUNT or NUM_TASKS, else 1).")
_UPDATE_SWEEP = flags.DEFINE_bool(
    "update_sweep", False, "Accept a sweep definition that adds or removes "
    "runs or changes resumable settings (e.g. num_steps) since the sweep dir "
    "was started.")
_RETRY_FAILED = flags.DEFINE_bool("retry_failed", False,
                                  "Train runs whose last attempt failed.")
_CLAIM_TIMEOUT_S = flags.DEFINE_float(
    "claim_timeout_s", 600.0, "A run's claim without heartbeat for this long "
    "is taken over (its process died on another machine).")
_HEARTBEAT_S = flags.DEFINE_float("heartbeat_s", 30.0,
                                  "How often held claims are refreshed.")
_CLAIMS = flags.DEFINE_enum(
    "claims", "on", ("on", "off"), "'on': claim each run before training it, "
    "so processes that share runs by mistake (the same task twice, a whole "
    "sweep beside a job array, loops on several hosts) train each once; "
    "needs hard links in the sweep dir. 'off': only where the scheduler "
    "runs at most one live instance of each task index (Slurm job array, "
    "Kubernetes Indexed Job) and nothing else trains in the sweep dir.")
_WAIT_FOR_CLAIMED = flags.DEFINE_bool(
    "wait_for_claimed", False, "Runs of this task's share that another "
    "process has claimed: wait (checking every --heartbeat_s) until each "
    "is done or its claim is stale and taken over, instead of leaving them. "
    "For scheduler tasks that must finish their share, e.g. one restarted "
    "after a lost node whose claims are not stale yet.")
_COMPILATION_CACHE_DIR = flags.DEFINE_string(
    "compilation_cache_dir", None, "Where compiled XLA programs are kept for "
    "the next runs of the same model (default: <sweep_dir>/compilation_cache; "
    "'' turns the cache off; JAX_COMPILATION_CACHE_DIR wins).")
_RUNS_PER_GROUP = flags.DEFINE_integer(
    "runs_per_group", None, "Runs trained packed in one program (same "
    "model, seed and weights differ); 1 trains them one after another. "
    "Default: the platform's (training/packed.default_runs_per_group: 4 on "
    "CPU, 16 on GPU/TPU).")
_PACKED_MODE = flags.DEFINE_enum(
    "packed_mode", "auto", packed.PACKED_MODES, "How packed runs share the "
    "program: 'auto' is 'map' on CPU and 'vmap' elsewhere "
    "(docs/performance.md).")
flags.mark_flags_as_required(["sweep", "sweep_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  quiet_library_logs()
  sweep_dir = _SWEEP_DIR.value
  runs = sweeps.expand(sweeps.load_sweep(_SWEEP.value))
  if _LIST.value:
    snapshot.check_and_write(sweep_dir, _SWEEP.value, runs,
                             update=_UPDATE_SWEEP.value, write=False)
    print("\n".join(status.listing(runs, sweep_dir,
                                   _CLAIM_TIMEOUT_S.value)))
    return
  task_index, num_tasks = sharding.resolve_task(_TASK_INDEX.value,
                                                _NUM_TASKS.value)
  snapshot.check_and_write(sweep_dir, _SWEEP.value, runs,
                           update=_UPDATE_SWEEP.value)
  if _CLAIMS.value == "on":
    claims.check_hard_links(sweep_dir)
  cache_dir = _COMPILATION_CACHE_DIR.value
  if cache_dir is None:
    cache_dir = os.path.join(sweep_dir, "compilation_cache")
  if cache_dir:
    runner.enable_compilation_cache(cache_dir)
  share = sharding.shard(runs, task_index, num_tasks)
  logging.info("Sweep %s: %d runs; task %d of %d trains %d of them.",
               _SWEEP.value, len(runs), task_index, num_tasks, len(share))
  runs_per_group = _RUNS_PER_GROUP.value
  if runs_per_group is None:
    runs_per_group = packed.default_runs_per_group()
  trainer = (runner.make_packed_trainer(_PACKED_MODE.value)
             if runs_per_group > 1 else runner.train_one_by_one)
  logging.info("Training %d run(s) per program%s.", runs_per_group,
               f" ({packed.resolve_mode(_PACKED_MODE.value)})"
               if runs_per_group > 1 else "")
  # SIGTERM (preemption, scancel, pod eviction) and SIGINT stop the task:
  # during training the run's own handlers checkpoint it; between runs this
  # one stops the share before the next claim. Installed explicitly because
  # a job started in the background inherits SIGINT as ignored.
  with preemption.StopSignals() as stop:
    try:
      summary = runner.run_share(
          runs, sweep_dir, task_index, num_tasks, train_group=trainer,
          runs_per_group=runs_per_group, retry_failed=_RETRY_FAILED.value,
          claim_timeout_s=_CLAIM_TIMEOUT_S.value,
          heartbeat_s=_HEARTBEAT_S.value,
          should_stop=lambda: stop.requested,
          use_claims=_CLAIMS.value == "on",
          wait_for_claimed=_WAIT_FOR_CLAIMED.value)
    except KeyboardInterrupt as e:
      # Checkpoints are saved and claims released; a traceback would only
      # hide that.
      print(f"Stopped ({stop.signal_name or e}); run the same command again "
            f"to resume.", file=sys.stderr)
      sys.exit(preemption.EXIT_RESUMABLE)
  print(f"Task {task_index} of {num_tasks}: {summary}")
  if summary.failed:
    sys.exit(1)


if __name__ == "__main__":
  cli.run(main)

"""Which runs of a sweep a task trains, and the task index from the scheduler.

A sweep is spread over machines by the cluster's own scheduler: each task of
a Slurm job array or Kubernetes Indexed Job runs the same command and trains
its share, ``runs[task_index::num_tasks]``. Taking every K-th run (not a
contiguous block) mixes models and hyperparameters in every share, so the
tasks take about equally long.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence, TypeVar

from factorvae_jax.utils import errors

T = TypeVar("T")

# Kubernetes sets the index; the count comes from the manifest (set it to
# spec.completions), as the pod is not told how many indexes there are.
K8S_INDEX = "JOB_COMPLETION_INDEX"
K8S_COUNT = "NUM_TASKS"


def _int(env: Mapping[str, str], name: str) -> Optional[int]:
  value = env.get(name)
  if value in (None, ""):
    return None
  try:
    return int(value)
  except ValueError:
    raise errors.InvalidValueError(
        f"environment variable {name}={value!r} is not an "
        f"integer.") from None


def task_from_env(env: Optional[Mapping[str, str]] = None
                  ) -> tuple[Optional[int], Optional[int], str]:
  """The task index and count the scheduler gives this process.

  Reads, in this order:

  * Slurm job arrays: ``SLURM_ARRAY_TASK_ID`` minus ``SLURM_ARRAY_TASK_MIN``
    (so ``--array=1-8`` gives indexes 0..7), out of
    ``SLURM_ARRAY_TASK_COUNT`` (or ``MAX - MIN + 1``). The array must be a
    contiguous range.
  * Kubernetes Indexed Jobs: ``JOB_COMPLETION_INDEX`` out of ``NUM_TASKS``
    (set it in the manifest to the job's ``completions``).

  Args:
    env: the environment (default ``os.environ``).

  Returns:
    (index, count, where they came from); (None, None, '') outside both.

  Raises:
    ValueError: a variable is not an integer, or Kubernetes' index comes
      without ``NUM_TASKS``.
  """
  env = os.environ if env is None else env
  task_id = _int(env, "SLURM_ARRAY_TASK_ID")
  if task_id is not None:
    low = _int(env, "SLURM_ARRAY_TASK_MIN") or 0
    count = _int(env, "SLURM_ARRAY_TASK_COUNT")
    high = _int(env, "SLURM_ARRAY_TASK_MAX")
    if count is None and high is not None:
      count = high - low + 1
    return task_id - low, count, "Slurm job array"
  index = _int(env, K8S_INDEX)
  if index is not None:
    count = _int(env, K8S_COUNT)
    if count is None:
      raise errors.InvalidValueError(
          f"{K8S_INDEX}={index} is set (Kubernetes Indexed Job) but "
          f"{K8S_COUNT} is not: set env {K8S_COUNT} to the job's completions "
          f"in the manifest (see experiments/cluster/sweep_indexed_job.yaml), "
          f"or pass --num_tasks.")
    return index, count, "Kubernetes Indexed Job"
  return None, None, ""


def resolve_task(task_index: Optional[int], num_tasks: Optional[int],
                 env: Optional[Mapping[str, str]] = None) -> tuple[int, int]:
  """Flags first, then the scheduler's environment, then (0, 1).

  Raises:
    ValueError: naming the values when the index is outside [0, count).
  """
  env_index, env_count, source = task_from_env(env)
  index = task_index if task_index is not None else env_index
  count = num_tasks if num_tasks is not None else env_count
  if index is None and count is None:
    return 0, 1
  if index is None or count is None:
    raise errors.InvalidValueError(
        f"task index {index} and task count {count} must both be given "
        f"(--task_index and --num_tasks{', or ' + source if source else ''}).")
  if count < 1 or not 0 <= index < count:
    raise errors.InvalidValueError(
        f"task index {index} is not in [0, {count}) tasks"
        f"{' (from the ' + source + ')' if source else ''}; use --task_index "
        f"in 0..num_tasks-1 (a Slurm array must be a contiguous range such "
        f"as --array=0-{max(count, 1) - 1}).")
  return index, count


def shard(items: Sequence[T], task_index: int, num_tasks: int) -> list[T]:
  """Task ``task_index``'s share of ``items``: every ``num_tasks``-th one."""
  return list(items[task_index::num_tasks])

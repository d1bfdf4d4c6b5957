"""Trains a model: ``python -m experiments.run --config=<file>[:variant] --workdir=<dir>``.

Resumes from the newest checkpoint in ``--workdir`` when there is one.
Exit status: 0 when finished; 75 (``preemption.EXIT_RESUMABLE``) when SIGTERM
or SIGINT stopped it after saving a checkpoint (run the same command again to
resume).
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from factorvae_jax.monitoring.log_filters import quiet_library_logs
from factorvae_jax.training.loop import TrainingInterrupted, train_and_evaluate
from factorvae_jax.training.preemption import EXIT_RESUMABLE
from factorvae_jax.utils import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. "
    "experiments/configs/factorvae_dsprites.py[:test|:quick].",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  quiet_library_logs()
  try:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except TrainingInterrupted as e:
    # The work is saved; a traceback would only hide that message.
    print(e, file=sys.stderr)
    sys.exit(EXIT_RESUMABLE)


if __name__ == "__main__":
  cli.run(main)

"""Trains a model: ``python -m experiments.run --config=<file>[:variant] --workdir=<dir>``.

Resumes from the newest checkpoint in ``--workdir`` when there is one.
"""

import logging as py_logging

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from factorvae_jax.training.loop import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. "
    "experiments/configs/factorvae_dsprites.py[:test|:quick].",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries(py_logging.Filter):
  """Drops the INFO chatter of Orbax (a line per save step and thread)."""

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or "/orbax/" not in (
        record.pathname or "")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)

"""Evaluates a trained workdir: ``python -m experiments.evaluate --workdir=<dir>``.

Writes ``<workdir>/results.json`` and prints a table of the scores.
"""

from absl import app
from absl import flags
from absl import logging

from factorvae_jax.evaluation import evaluate
from factorvae_jax.monitoring.log_filters import quiet_library_logs

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.")
_SIZES = flags.DEFINE_enum("sizes", "default", sorted(evaluate.SIZE_PRESETS),
                           "Metric sample sizes: 'default' = "
                           "disentanglement_lib's study sizes.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default newest).")
_DCI_BACKEND = flags.DEFINE_enum(
    "dci_backend", None, ["auto", "jax", "sklearn"],
    "DCI's boosted trees: 'jax' (sklearn's algorithm in JAX, on the device), "
    "'sklearn' (the reference) or 'auto' ('jax' on a GPU/TPU). Default: the "
    "run's config.dci_backend.")
flags.mark_flag_as_required("workdir")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  quiet_library_logs()
  overrides = ({} if _DCI_BACKEND.value is None
               else {"dci_backend": _DCI_BACKEND.value})
  results = evaluate.evaluate_workdir(_WORKDIR.value, _SIZES.value,
                                      _STEP.value, **overrides)
  print(evaluate.format_table(results))


if __name__ == "__main__":
  app.run(main)

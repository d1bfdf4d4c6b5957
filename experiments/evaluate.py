"""Evaluates a trained workdir: ``python -m experiments.evaluate --workdir=<dir>``.

Writes ``<workdir>/results.json`` and prints a table of the scores.
``--workdirs=<dir>,<dir>,...`` evaluates several runs of one dataset and
encoder architecture together (each distinct observation encoded once, by one
program for all of them) and writes each run's ``results.json``.
"""

from absl import app
from absl import flags
from absl import logging

from factorvae_jax.evaluation import evaluate
from factorvae_jax.metrics import registry as metrics_registry
from factorvae_jax.monitoring.log_filters import quiet_library_logs
from factorvae_jax.utils import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.")
_WORKDIRS = flags.DEFINE_list(
    "workdirs", None, "Several training workdirs (one dataset and encoder "
    "architecture; any models and seeds), evaluated together.")
_SIZES = flags.DEFINE_enum("sizes", "default",
                           sorted(metrics_registry.SIZE_PRESET_NAMES),
                           "Metric sample sizes: 'default' = "
                           "disentanglement_lib's study sizes.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default newest).")
_DCI_BACKEND = flags.DEFINE_enum(
    "dci_backend", None, list(metrics_registry.DCI_BACKENDS),
    "DCI's boosted trees: 'numba' (sklearn's arithmetic, compiled, on the "
    "CPU), 'jax' (sklearn's algorithm in JAX, on the device), 'sklearn' (the "
    "reference) or 'auto' ('jax' on a GPU/TPU, else 'numba'). Default: the "
    "run's config.dci_backend.")
flags.mark_flags_as_mutual_exclusive(["workdir", "workdirs"], required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  quiet_library_logs()
  overrides = ({} if _DCI_BACKEND.value is None
               else {"dci_backend": _DCI_BACKEND.value})
  if _WORKDIRS.value:
    every = evaluate.evaluate_workdirs(_WORKDIRS.value, _SIZES.value,
                                       _STEP.value, **overrides)
    for workdir, results in zip(_WORKDIRS.value, every):
      print(f"{workdir}:\n{evaluate.format_table(results)}")
    return
  results = evaluate.evaluate_workdir(_WORKDIR.value, _SIZES.value,
                                      _STEP.value, **overrides)
  print(evaluate.format_table(results))


if __name__ == "__main__":
  cli.run(main)

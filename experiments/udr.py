"""Scores a sweep's runs with UDR: ``python -m experiments.udr --sweep_dir=<dir>``.

Every finished run is compared with the other finished seeds of its model
and hyperparameters (Duan et al. 2020, dlib's ``compute_udr_sklearn``); the
score goes into each run's ``results.json`` (``udr/<correlation_matrix>``)
and ``results.csv``. Re-running is cheap: codes and pair scores are kept, so
only runs finished since are encoded (docs/metrics.md, "UDR").
"""

from absl import app
from absl import flags
from absl import logging

from factorvae_jax.metrics import udr_metric
from factorvae_jax.monitoring.log_filters import quiet_library_logs
from factorvae_jax.sweeps import udr
from factorvae_jax.utils import cli

_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "The sweep's directory.")
_SIZES = flags.DEFINE_enum("sizes", "default", ["default", "cheap", "tiny"],
                           "UDR sample sizes: 'default' = dlib's 1000 points "
                           "in batches of 10.")
_CORRELATION = flags.DEFINE_enum(
    "correlation_matrix", "lasso", list(udr_metric.CORRELATION_MATRICES),
    "'lasso' (UDR_L, dlib's default) or 'spearman' (UDR_S).")
flags.mark_flag_as_required("sweep_dir")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  quiet_library_logs()
  report = udr.score_sweep(_SWEEP_DIR.value, _SIZES.value, _CORRELATION.value)
  for name, score in sorted(report.scored.items()):
    print(f"{name}\tudr/{_CORRELATION.value}={score:.4f}")
  for name, reason in report.skipped:
    print(f"Skipped {name}: {reason}")
  print(f"{len(report.scored)} run(s) scored, {len(report.encoded)} encoded, "
        f"{report.pairs_computed} pair(s) computed"
        + (f"; wrote {report.csv_path}" if report.csv_path else "."))


if __name__ == "__main__":
  cli.run(main)

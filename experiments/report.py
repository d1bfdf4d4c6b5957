"""Writes a run's visual report: ``python -m experiments.report --workdir=<dir>``.

``<workdir>/report.html`` is one self-contained file (images inlined): config,
data source, training curves, reconstructions, an animated traversal per
active latent dimension, per-dimension KL, the metric table with its settings
and the library versions. A partial run gets a report that says what is
missing.
"""

from absl import app
from absl import flags
from absl import logging

from factorvae_jax.monitoring.log_filters import quiet_library_logs
from factorvae_jax.reporting import explore
from factorvae_jax.reporting import report
from factorvae_jax.utils import cli
from factorvae_jax.utils import run_dir

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.")
_OUTPUT = flags.DEFINE_string(
    "output", None,
    f"HTML file to write (default <workdir>/{run_dir.REPORT}).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default newest).")
_NUM_IMAGES = flags.DEFINE_integer(
    "num_images", 8, "Dataset images shown in the reconstructions.")
_KL_THRESHOLD = flags.DEFINE_float(
    "kl_threshold", explore.DEFAULT_ACTIVE_KL,
    "KL (nats) above which a latent dimension is active and gets a GIF.")
flags.mark_flag_as_required("workdir")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  quiet_library_logs()
  path = report.write_report(_WORKDIR.value, _OUTPUT.value, step=_STEP.value,
                             num_images=_NUM_IMAGES.value,
                             kl_threshold=_KL_THRESHOLD.value)
  print(f"Wrote {path}")


if __name__ == "__main__":
  cli.run(main)

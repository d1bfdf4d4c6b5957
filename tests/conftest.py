"""Test setup: four fake CPU devices so pmap is exercised for real."""

import os

# Must happen before JAX is imported anywhere.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from absl import flags  # noqa: E402

# absltest helpers (create_tempdir, ...) read absl flags; pytest never parses
# them, so mark them parsed with their defaults.
if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()

"""Test setup: four fake CPU devices so pmap is exercised for real, and one
XLA compilation cache for the session."""

import os
import tempfile

# Must happen before JAX is imported anywhere.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Many tests train the same tiny configs, in this process (each run builds
# new jitted functions, so the in-memory cache misses) and in subprocesses
# (preemption, sweeps, notebooks inherit the variables): with one persistent
# cache for the session each program compiles once. A fresh directory per
# session, so a run never depends on what an earlier one left.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      tempfile.mkdtemp(prefix="factorvae_jax_test_xla_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

from absl import flags  # noqa: E402

# absltest helpers (create_tempdir, ...) read absl flags; pytest never parses
# them, so mark them parsed with their defaults.
if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()

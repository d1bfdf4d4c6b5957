"""Test setup: four fake CPU devices so pmap is exercised for real, one XLA
compilation cache and one absltest temporary folder for the session.

The suite runs on every core (pytest-xdist, ``-n auto --dist loadfile`` in
setup.cfg): most of its time is compiling and running small XLA programs,
which uses one core per process. A file's tests stay in one worker, so its
module-scoped fixtures (a trained run, a notebook kernel) are built once.
"""

import os
import tempfile

# XLA's LLVM backend at optimisation level 0: the suite's programs are tiny
# and compiling them is most of its time; level 0 halves that (CPU time of
# tests/test_train_step.py: 115 s at the default level, 78 s at 0). It
# changes how LLVM schedules the generated loops, not what they compute: XLA
# does not let LLVM reorder floating-point operations at any level, and the
# graph-level (HLO) optimisations are the same. Subprocesses that must see
# one device (sweeps, notebooks) keep this flag alone (SINGLE_DEVICE_XLA_FLAGS).
SINGLE_DEVICE_XLA_FLAGS = "--xla_backend_optimization_level=0"
# Must happen before JAX is imported anywhere.
os.environ.setdefault(
    "XLA_FLAGS",
    f"--xla_force_host_platform_device_count=4 {SINGLE_DEVICE_XLA_FLAGS}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Many tests train the same tiny configs, in this process (each run builds
# new jitted functions, so the in-memory cache misses) and in subprocesses
# (preemption, sweeps, notebooks inherit the variables): with one persistent
# cache for the session each program compiles once. A fresh directory per
# session, so a run never depends on what an earlier one left.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      tempfile.mkdtemp(prefix="factorvae_jax_test_xla_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# absltest's create_tempdir and get_default_test_tmpdir: a fresh folder per
# session, so nothing an earlier run left (a finished "straight" run, a
# sweep's cache) is reused. Set here, before any worker or subprocess starts,
# so that pytest-xdist's workers share it as they share the cache above.
os.environ.setdefault("TEST_TMPDIR",
                      tempfile.mkdtemp(prefix="factorvae_jax_test_tmp_"))

from absl import flags  # noqa: E402

# absltest helpers (create_tempdir, ...) read absl flags; pytest never parses
# them, so mark them parsed with their defaults.
if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()

"""Keeps the console readable: drops other libraries' INFO chatter."""

import logging as py_logging

from absl import logging

# Sources of INFO records a user has no use for: Orbax logs several per save,
# restore and close; JAX's backend probe logs one "Unable to initialize
# backend 'tpu'" line per process on every machine without a TPU.
_QUIET_SOURCES = ("/orbax/", "/jax/_src/xla_bridge.py")


class _QuietLibraries(py_logging.Filter):
  """Drops INFO records of ``_QUIET_SOURCES``; their warnings still show."""

  def filter(self, record):
    if record.levelno >= py_logging.WARNING:
      return True
    path = record.pathname or ""
    return not any(source in path for source in _QUIET_SOURCES)


def quiet_library_logs() -> None:
  """Filters Orbax's and JAX's INFO records out of absl's handler.

  Warnings still show. Call once from a command-line entry point, after absl
  has set up logging.
  """
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
    handler.addFilter(_QuietLibraries())

"""Keeps the console readable: drops other libraries' INFO chatter."""

import logging as py_logging

from absl import logging


class _QuietOrbax(py_logging.Filter):
  """Drops Orbax's INFO lines (several per save, restore and close)."""

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or "/orbax/" not in (
        record.pathname or "")


def quiet_library_logs() -> None:
  """Filters Orbax's INFO records out of absl's handler; warnings still show.

  Call once from a command-line entry point, after absl has set up logging.
  """
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietOrbax) for f in handler.filters):
    handler.addFilter(_QuietOrbax())

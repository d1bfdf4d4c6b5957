"""How every ``python -m experiments.<command>`` starts and reports errors.

A ``UserError`` (a bad config value, a missing or malformed data file, a bad
sweep argument, a resume with an incompatible config, a workdir with nothing
to work on) is printed as one line, ``error: <message>``, and the command
exits 1 without a traceback: the message already says what to fix. So is a
``--config.<field>`` override naming a field the config does not have
(ml_collections raises a bare ``AttributeError`` for it while absl parses the
flags). ``--verbose`` shows the traceback as well, and so does absl's ``-v 1``
or higher. Any other exception is a bug of ours and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from absl import app
from absl import flags

from factorvae_jax.utils.errors import UserError

#: Exit status of a command stopped by a user error.
EXIT_USER_ERROR = 1

_VERBOSE = flags.DEFINE_bool(
    "verbose", False, "Show the Python traceback of user errors (a bad "
    "config value, a missing data file, ...) as well as their message.")


def _wants_traceback() -> bool:
  """--verbose, or absl's -v/--verbosity of 1 or more, on the command line.

  Read from ``sys.argv``: an entry point's ``main`` resets absl's verbosity
  to INFO, and flags may not be parsed yet when parsing itself failed.
  """
  if flags.FLAGS.is_parsed() and _VERBOSE.value:
    return True
  args = sys.argv[1:]
  for i, arg in enumerate(args):
    if arg in ("--verbose", "--verbose=true", "--verbose=True"):
      return True
    value = None
    if arg.startswith(("--verbosity=", "-v=")):
      value = arg.split("=", 1)[1]
    elif arg in ("-v", "--verbosity") and i + 1 < len(args):
      value = args[i + 1]
    if value is not None and value.lstrip("-").isdigit() and int(value) >= 1:
      return True
  return False


def _unknown_field_message(error: Exception) -> str:
  """ml_collections' KeyError text (with its did-you-mean) on one line."""
  inner = error.args[0] if error.args else error
  while isinstance(inner, (KeyError, AttributeError)) and inner.args:
    inner = inner.args[0]
  return " ".join(str(inner).split())


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(EXIT_USER_ERROR)


def _parse_flags(argv: Sequence[str]) -> list[str]:
  """absl's parser, with a one-line message for unknown config fields."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    overrides = [a for a in argv if a.startswith("--config.")]
    if not overrides or _wants_traceback():
      raise
    _fail(f"a --config override names a field the config does not have: "
          f"{_unknown_field_message(e)}; overrides given: "
          f"{' '.join(overrides)}. Check the field's name and level against "
          f"the config file.")


def run(main: Callable[[Sequence[str]], None]) -> None:
  """Runs ``main`` under absl, turning user errors into one-line messages.

  Args:
    main: the entry point's ``main(argv)``, as ``absl.app.run`` takes it.
  """

  def guarded(argv: Sequence[str]) -> None:
    try:
      main(argv)
    except UserError as e:
      if _wants_traceback():
        raise
      _fail(str(e))

  app.run(guarded, flags_parser=_parse_flags)

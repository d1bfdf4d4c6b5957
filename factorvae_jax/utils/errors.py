"""Errors that a user caused and can fix, told apart from our own bugs.

The command-line entry points (``experiments/*.py``) print a ``UserError``
as one line and exit 1; any other exception keeps its traceback, because it
is a bug of ours. Each subclass also derives from the built-in exception a
library caller would expect (``ValueError``, ``FileNotFoundError``), so code
that catches those keeps working.
"""

from typing import Callable, Mapping, TypeVar

_Entry = TypeVar("_Entry")


class UserError(Exception):
  """Bad input: a config value, a file, an argument or a workdir.

  The message names the bad value, what is allowed and how to fix it.
  """


class InvalidValueError(UserError, ValueError):
  """A config value, argument or override that is not allowed."""


class MissingFileError(UserError, FileNotFoundError):
  """A file or directory the user pointed at (or must provide) is absent."""


class BadFileError(UserError, ValueError):
  """A file that exists but is malformed (wrong arrays, shapes or values)."""


class IncompatibleResumeError(UserError, ValueError):
  """A workdir holds a run whose config differs from the one given now."""


class NothingToDoError(UserError, FileNotFoundError):
  """A workdir or sweep dir that holds nothing the command can work on."""


def lookup(table: Mapping[str, _Entry], name: str,
           unknown: Callable[[], str]) -> _Entry:
  """``table[name]``: the one lookup of the registries (objectives, metrics,
  datasets).

  Raises:
    InvalidValueError: with the message ``unknown()`` builds (it names the
      bad value, the known ones and where a new entry goes).
  """
  try:
    return table[name]
  except KeyError:
    raise InvalidValueError(unknown()) from None

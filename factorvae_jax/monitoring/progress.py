"""Training progress: step, rate, ETA and a few losses.

Interactive outputs (a terminal, a Jupyter or Colab notebook) get a live
``tqdm.auto`` bar (a widget in notebooks). Log files get one readable line per
interval, formatted by tqdm as well, instead of carriage-return redraws.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Callable, Mapping, Optional, TextIO

import tqdm
import tqdm.auto


def _is_interactive(stream) -> bool:
  """A terminal, or a notebook kernel (whose streams are not ttys)."""
  isatty = getattr(stream, "isatty", None)
  if callable(isatty) and isatty():
    return True
  return "ipykernel" in sys.modules and stream in (sys.stdout, sys.stderr)


def _format_scalars(scalars: Mapping[str, float]) -> str:
  return " ".join(f"{name}={float(value):.4g}"
                  for name, value in scalars.items())


class ProgressBar:
  """Shows progress of a training loop that reports absolute steps.

  The rate is measured from the first update, so the time before it (the
  first step's compilation) does not count; the ETA follows from it.

  Args:
    total_steps: the step at which training ends.
    initial_step: the step training (re)starts from (a restored checkpoint).
    stream: where to print; ``sys.stderr`` if None.
    min_interval_s: least time between two lines in a log file.
    clock: monotonic time source in seconds (injectable for tests).
    interactive: force a live bar (True) or log lines (False); by default a
      terminal or notebook gets the live bar.
  """

  def __init__(self, total_steps: int, initial_step: int = 0,
               stream: Optional[TextIO] = None, min_interval_s: float = 10.0,
               clock: Callable[[], float] = time.monotonic,
               interactive: Optional[bool] = None):
    if total_steps < 1:
      raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
    self._total = int(total_steps)
    self.initial_step = int(initial_step)
    self._stream = stream if stream is not None else sys.stderr
    self._min_interval_s = float(min_interval_s)
    self._clock = clock
    self._interactive = (_is_interactive(self._stream) if interactive is None
                         else interactive)
    self._bar = None
    self._first: Optional[tuple[int, float]] = None  # (step, time).
    self._last: Optional[tuple[int, float]] = None
    self._last_line_time: Optional[float] = None
    self._unshown: Optional[tuple[int, Mapping[str, float]]] = None

  def steps_per_second(self) -> float:
    """Mean steps/s since the first update; NaN until measurable."""
    if self._first is None or self._last is None:
      return math.nan
    steps = self._last[0] - self._first[0]
    elapsed = self._last[1] - self._first[1]
    return steps / elapsed if steps > 0 and elapsed > 0 else math.nan

  def update(self, step: int, scalars: Optional[Mapping[str, float]] = None
             ) -> None:
    """Records that ``step`` steps are done and shows ``scalars`` beside it."""
    now = self._clock()
    step = int(step)
    scalars = scalars or {}
    if self._first is None:
      self._first = (step, now)
      if self._interactive:
        self._bar = tqdm.auto.tqdm(
            total=self._total, initial=step, unit="step", file=self._stream,
            dynamic_ncols=True, smoothing=0.1)
    self._last = (step, now)
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      self._bar.set_postfix_str(_format_scalars(scalars))
      return
    if (self._last_line_time is None or step >= self._total or
        now - self._last_line_time >= self._min_interval_s):
      self._write_line(step, scalars)
    else:
      self._unshown = (step, scalars)

  def _write_line(self, step: int, scalars: Mapping[str, float]) -> None:
    rate = self.steps_per_second()
    line = tqdm.tqdm.format_meter(
        step, self._total, self._last[1] - self._first[1],
        ascii=True, unit="step", initial=self._first[0],
        rate=None if math.isnan(rate) else rate,
        postfix=_format_scalars(scalars) or None)
    self._stream.write(line + "\n")
    self._stream.flush()
    self._last_line_time = self._last[1]
    self._unshown = None

  def close(self) -> None:
    """Shows the last progress not yet shown and ends the bar; idempotent."""
    if self._bar is not None:
      self._bar.close()
      self._bar = None
    elif self._unshown is not None:
      self._write_line(*self._unshown)

  def __enter__(self) -> "ProgressBar":
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    self.close()

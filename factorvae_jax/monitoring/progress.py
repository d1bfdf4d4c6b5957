"""A dependency-free training progress bar that also reads well in log files.

On a terminal the bar redraws one line in place. When output goes to a file
or a CI log it prints a full line at most every ``min_interval_s`` seconds
(and always for the first and the last step), so logs stay readable.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from typing import Callable, Mapping, Optional, TextIO, Tuple

# Time constant of the exponential moving average of the step rate: long
# enough to smooth per-step jitter, short enough to follow a real slowdown.
_EMA_TIME_CONSTANT_S = 10.0
# Terminal redraws are cheap but not free; at thousands of steps per second
# redrawing every step would cost more than it shows.
_TTY_MIN_INTERVAL_S = 0.1


def format_duration(seconds: float) -> str:
  """Formats seconds as h:mm:ss (hours unbounded); '?:??:??' if unknown."""
  if seconds is None or not math.isfinite(seconds) or seconds < 0:
    return "?:??:??"
  total = int(round(seconds))
  hours, rest = divmod(total, 3600)
  minutes, secs = divmod(rest, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}"


def _format_rate(rate: float) -> str:
  # .3g would print 1234.5 as "1.23e+03".
  return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"


def _format_scalar(value) -> str:
  try:
    value = float(value)
  except (TypeError, ValueError):
    return str(value)
  return f"{value:.4g}"


class ProgressBar:
  """Shows step, rate, ETA and a few scalars for a training loop.

  The first update is taken as the reference point for the rate, so time
  spent before it (JIT compilation of the first step) does not count. The
  ETA uses the mean rate since then, which includes periodic evaluation and
  checkpointing pauses that will recur; an exponential moving average of the
  rate is shown too, to reveal the current speed.

  Example:
    bar = ProgressBar(total_steps=300_000, initial_step=restored_step)
    for step in range(restored_step + 1, total + 1):
      ...
      if step % 100 == 0:
        bar.update(step, {"loss": loss, "tc": tc})
    bar.close()
  """

  def __init__(self,
               total_steps: int,
               initial_step: int = 0,
               stream: Optional[TextIO] = None,
               min_interval_s: float = 0.5,
               width: int = 30,
               clock: Callable[[], float] = time.monotonic,
               tty: Optional[bool] = None):
    """Creates the bar; nothing is printed until the first update.

    Args:
      total_steps: the step at which training ends.
      initial_step: the step training (re)starts from, e.g. a restored
        checkpoint's step. Percent and ETA use the absolute steps passed to
        update(), and the rate is measured from the first update, so this is
        informational (available as ``initial_step``).
      stream: where to print; ``sys.stderr`` if None.
      min_interval_s: least time between two printed lines when the stream
        is not a terminal.
      width: characters in the bar itself.
      clock: monotonic time source in seconds (injectable for tests).
      tty: force terminal (True) or log (False) behaviour; by default the
        stream's ``isatty()`` decides.
    """
    if total_steps < 1:
      raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
    self._total = int(total_steps)
    self._initial_step = int(initial_step)
    self._stream = stream if stream is not None else sys.stderr
    self._min_interval_s = float(min_interval_s)
    self._width = max(1, int(width))
    self._clock = clock
    if tty is None:
      isatty = getattr(self._stream, "isatty", None)
      tty = bool(isatty()) if callable(isatty) else False
    self._tty = tty
    self._interval_s = (
        min(self._min_interval_s, _TTY_MIN_INTERVAL_S) if tty
        else self._min_interval_s)

    self._start_step: Optional[int] = None
    self._start_time: Optional[float] = None
    self._last_step: Optional[int] = None
    self._last_time: Optional[float] = None
    self._ema_rate: Optional[float] = None
    self._ema_step: Optional[int] = None
    self._ema_time: Optional[float] = None
    self._last_print_time: Optional[float] = None
    # Latest (step, scalars) not yet shown. Formatting is deferred to
    # printing because float() on a JAX value waits for the device.
    self._pending: Optional[Tuple[int, Mapping[str, float]]] = None
    self._last_line_len = 0
    self._line_open = False  # A TTY line awaits its newline.
    self._closed = False

  @property
  def initial_step(self) -> int:
    """The step training (re)started from."""
    return self._initial_step

  def steps_per_second(self) -> float:
    """Mean steps/s since the first update.

    Returns:
      The rate, or NaN until it can be measured (fewer than two updates), so
      the value can always be passed to a metric writer.
    """
    if self._start_time is None:
      return math.nan
    elapsed = self._last_time - self._start_time
    steps = self._last_step - self._start_step
    if elapsed <= 0 or steps <= 0:
      return math.nan
    return steps / elapsed

  def ema_steps_per_second(self) -> float:
    """Exponential moving average of steps/s; NaN until measurable."""
    return math.nan if self._ema_rate is None else self._ema_rate

  def update(self, step: int, scalars: Optional[Mapping[str, float]] = None
             ) -> None:
    """Records progress and prints if it is time to.

    Args:
      step: the current training step (steps completed).
      scalars: a few values to show, e.g. {"loss": 61.2}; shown in the given
        order with 4 significant digits. They are only converted when a line
        is printed, but converting a JAX value then waits for the device.
    """
    if self._closed:
      return
    now = self._clock()
    step = int(step)
    if self._start_time is None or (self._last_step is not None and
                                    step < self._last_step):
      # First update, or the step went backwards (a restart): measure from
      # here on.
      self._start_step, self._start_time = step, now
      self._ema_rate = None
      self._ema_step, self._ema_time = step, now
    else:
      self._update_ema(step, now)
    self._last_step, self._last_time = step, now

    is_last = step >= self._total
    due = (self._last_print_time is None or is_last or
           now - self._last_print_time >= self._interval_s)
    if due:
      self._print(self._format_line(step, scalars or {}))
      self._last_print_time = now
      self._pending = None
    else:
      self._pending = (step, scalars or {})

  def _update_ema(self, step: int, now: float) -> None:
    elapsed = now - self._ema_time
    if elapsed <= 0:
      return  # Accumulate steps until the clock moves.
    rate = (step - self._ema_step) / elapsed
    if self._ema_rate is None:
      self._ema_rate = rate
    else:
      # Weight by elapsed time so the smoothing does not depend on how often
      # update() is called.
      alpha = 1.0 - math.exp(-elapsed / _EMA_TIME_CONSTANT_S)
      self._ema_rate += alpha * (rate - self._ema_rate)
    self._ema_step, self._ema_time = step, now

  def _format_line(self, step: int, scalars: Mapping[str, float]) -> str:
    fraction = min(max(step / self._total, 0.0), 1.0)
    filled = int(fraction * self._width)
    bar = "#" * filled + "." * (self._width - filled)
    parts = [f"[{bar}] {100 * fraction:5.1f}% {step}/{self._total}"]
    rate = self.steps_per_second()
    if math.isnan(rate):
      parts.append("-- steps/s")
      eta = None
    else:
      ema = self._ema_rate
      ema_text = f" (ema {_format_rate(ema)})" if ema is not None else ""
      parts.append(f"{_format_rate(rate)} steps/s{ema_text}")
      eta = max(self._total - step, 0) / rate
    parts.append(f"ETA {format_duration(eta)}")
    if scalars:
      parts.append(" ".join(
          f"{name}={_format_scalar(value)}" for name, value in scalars.items()))
    return " | ".join(parts)

  def _print(self, line: str) -> None:
    if self._tty:
      # A line wider than the terminal wraps, and "\r" then only rewinds the
      # last wrapped row, so the display fills with stale copies.
      columns = shutil.get_terminal_size(fallback=(120, 24)).columns
      line = line[:max(columns - 1, 1)]
      # Blank out what is left of a longer previous line.
      padding = " " * max(self._last_line_len - len(line), 0)
      self._stream.write("\r" + line + padding)
      self._last_line_len = len(line)
      self._line_open = True
    else:
      self._stream.write(line + "\n")
    self._stream.flush()

  def close(self) -> None:
    """Prints any not-yet-shown progress and ends the line; idempotent."""
    if self._closed:
      return
    self._closed = True
    if self._pending is not None:
      self._print(self._format_line(*self._pending))
      self._pending = None
    if self._line_open:
      self._stream.write("\n")
      self._stream.flush()
      self._line_open = False

  def __enter__(self) -> "ProgressBar":
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    self.close()

"""Stopping training cleanly on SIGTERM / SIGINT (preemption, Ctrl-C, notebooks).

Cloud schedulers (preemptible VMs, Slurm, Kubernetes) stop a job with SIGTERM
and a grace period; terminals and notebooks ("interrupt execution") send
SIGINT. Python's default reaction (``KeyboardInterrupt`` raised wherever the
interpreter happens to be, or immediate death on SIGTERM) can hit the middle of
an XLA compilation, an Orbax save or a writer's flush. ``StopSignals`` instead
installs handlers that only *record* the signal; the training loop looks at the
record between chunks, saves a checkpoint of the last finished step, closes
its writers and stops.

* 1st signal: recorded; the loop stops at its next check.
* 2nd signal: recorded and acknowledged; the save in progress completes.
* 3rd signal: the process exits at once (``128 + signal``). Orbax writes each
  checkpoint to a temporary folder and renames it when complete, so even then
  the newest complete checkpoint stays usable.

Handlers are installed explicitly, whatever was inherited: a job started in
the background by a non-interactive shell inherits SIGINT as *ignored*, and
would otherwise never react to it.

Exit statuses of the command-line tools (``experiments.run``,
``experiments.sweep``):

* ``0``: finished.
* ``EXIT_RESUMABLE`` (75, ``EX_TEMPFAIL`` of sysexits.h): stopped by a signal
  after saving a checkpoint of the last finished step; run the same command
  again to resume.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Optional

EXIT_RESUMABLE = 75

#: The signals that ask training to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
  """Context manager that turns SIGINT/SIGTERM into a flag while active.

  Outside the main thread (where Python cannot install handlers) it installs
  nothing and ``requested`` stays False.

  Example:
    with StopSignals() as stop:
      while not stop.requested:
        run_one_chunk()
  """

  _active: list["StopSignals"] = []  # Entered and not yet exited, in order.

  def __init__(self, hard_exit_after: int = 3):
    self._hard_exit_after = hard_exit_after
    self._previous = {}
    self.count = 0
    self.signal_name: Optional[str] = None

  @property
  def requested(self) -> bool:
    """Whether a stop signal has arrived."""
    return self.count > 0

  def _handle(self, signum, frame) -> None:
    del frame
    self.count += 1
    if self.signal_name is None:
      self.signal_name = signal.Signals(signum).name
    # os.write, not logging or print: both take locks the interrupted code
    # may hold.
    if self.count == 1:
      message = (f"\n{self.signal_name} received: stopping after the current "
                 f"chunk of steps and saving a checkpoint.\n")
    elif self.count < self._hard_exit_after:
      message = (f"\n{signal.Signals(signum).name} received again: still "
                 f"saving; one more signal exits at once (the previous "
                 f"checkpoint stays usable).\n")
    else:
      os.write(2, b"\nExiting now without saving.\n")
      os._exit(128 + signum)
    os.write(2, message.encode())

  def __enter__(self) -> "StopSignals":
    # Nested (a sweep's task around each run's training): a signal the outer
    # one already caught stops the inner work at once, and one caught inside
    # is passed out on exit, so neither is lost between the two.
    outer = StopSignals._active[-1] if StopSignals._active else None
    if outer is not None and outer.requested:
      self.count, self.signal_name = outer.count, outer.signal_name
    StopSignals._active.append(self)
    if threading.current_thread() is threading.main_thread():
      for signum in STOP_SIGNALS:
        self._previous[signum] = signal.getsignal(signum)
        signal.signal(signum, self._handle)
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    self._previous = {}
    if self in StopSignals._active:
      StopSignals._active.remove(self)
    outer = StopSignals._active[-1] if StopSignals._active else None
    if outer is not None and self.count > outer.count:
      outer.count, outer.signal_name = self.count, self.signal_name

"""Atomic claims on a run's workdir, so no run is trained by two processes.

A claim is the file ``<workdir>/sweep_claim.json`` (host, pid, task, token).
It appears atomically: it is written under a temporary name and hard-linked
into place, and ``link`` fails if the name exists (also on NFS, unlike
``O_EXCL`` on old clients). While a process trains a run, a background thread
touches the claim every ``heartbeat_s`` seconds.

A claim is *stale*, and may be taken over, when

* its process is gone: same host and the pid no longer exists (a ``kill -9``
  or a crash on this machine); or
* its heartbeat (the file's modification time) is older than ``timeout_s``:
  the process died on another machine, or its machine vanished (a preempted
  VM, a Kubernetes pod on another node).

The heartbeat check needs the machines' clocks within ``timeout_s`` of the
file server's. Taking a stale claim over happens under a short mutex (an
atomic ``mkdir``), so two processes that both see the stale claim never both
win.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Optional

CLAIM_FILE = "sweep_claim.json"
_MUTEX_SUFFIX = ".takeover"
# A takeover holds the mutex for milliseconds; one older than this was left
# by a process killed inside it.
_MUTEX_STALE_S = 60.0


def claim_path(workdir: str) -> str:
  return os.path.join(workdir, CLAIM_FILE)


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Exists, owned by someone else.
    return True
  return True


def read_claim(workdir: str) -> Optional[dict]:
  """The claim on ``workdir`` with its heartbeat age, or None if unclaimed.

  Returns:
    The claim's fields plus ``age_s`` (seconds since the last heartbeat);
    ``{'age_s': ...}`` alone if the file cannot be parsed.
  """
  path = claim_path(workdir)
  try:
    with open(path) as f:
      text = f.read()
    age = time.time() - os.stat(path).st_mtime
  except FileNotFoundError:
    return None
  try:
    info = json.loads(text)
  except json.JSONDecodeError:
    info = {}
  return {**info, "age_s": age}


def is_stale(info: dict, timeout_s: float) -> bool:
  """Whether a claim (from ``read_claim``) belongs to no live process."""
  if info["age_s"] > timeout_s:
    return True
  return (info.get("host") == socket.gethostname() and "pid" in info and
          not _pid_alive(int(info["pid"])))


def describe(info: dict) -> str:
  """'host:pid (task i)' of a claim, for status lines."""
  task = f", task {info['task']}" if info.get("task") is not None else ""
  return (f"{info.get('host', '?')}:{info.get('pid', '?')}{task}, heartbeat "
          f"{info['age_s']:.0f} s ago")


class Claim:
  """A held claim; keeps its heartbeat going until :meth:`release`.

  Use :func:`try_claim` to get one.
  """

  def __init__(self, workdir: str, token: str, heartbeat_s: float):
    self.workdir = workdir
    self.token = token
    self._stop = threading.Event()
    self._thread = threading.Thread(
        target=self._beat, args=(heartbeat_s,), daemon=True,
        name=f"claim-heartbeat:{workdir}")
    self._thread.start()

  def _beat(self, heartbeat_s: float) -> None:
    while not self._stop.wait(heartbeat_s):
      try:
        os.utime(claim_path(self.workdir))
      except FileNotFoundError:
        return  # Taken over after a stall longer than the timeout.

  def release(self) -> None:
    """Stops the heartbeat and removes the claim if it is still ours."""
    self._stop.set()
    self._thread.join()
    info = read_claim(self.workdir)
    if info is not None and info.get("token") == self.token:
      try:
        os.remove(claim_path(self.workdir))
      except FileNotFoundError:
        pass


def _create(workdir: str, token: str, task: Optional[int]) -> bool:
  """Creates the claim file atomically; False if one exists."""
  path = claim_path(workdir)
  payload = {"host": socket.gethostname(), "pid": os.getpid(), "task": task,
             "token": token, "claimed_at": time.time()}
  tmp = f"{path}.{token}.tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f)
    f.flush()
    os.fsync(f.fileno())
  try:
    os.link(tmp, path)
    return True
  except FileExistsError:
    return False
  finally:
    os.remove(tmp)


def _take_over(workdir: str, timeout_s: float, token: str,
               task: Optional[int]) -> bool:
  """Replaces a stale claim with ours, under the takeover mutex."""
  mutex = claim_path(workdir) + _MUTEX_SUFFIX
  try:
    os.mkdir(mutex)
  except FileExistsError:
    try:
      if time.time() - os.stat(mutex).st_mtime > _MUTEX_STALE_S:
        os.rmdir(mutex)  # Left by a process killed mid-takeover; retry later.
    except FileNotFoundError:
      pass
    return False
  try:
    # Re-read under the mutex: another process may have taken it over
    # between our first look and now.
    info = read_claim(workdir)
    if info is not None:
      if not is_stale(info, timeout_s):
        return False
      os.remove(claim_path(workdir))
    return _create(workdir, token, task)
  finally:
    os.rmdir(mutex)


def try_claim(workdir: str, timeout_s: float = 600.0,
              heartbeat_s: float = 30.0,
              task: Optional[int] = None) -> Optional[Claim]:
  """Claims ``workdir`` for this process, or returns None if a live process
  holds it.

  Args:
    workdir: the run's workdir (created if missing).
    timeout_s: a claim whose heartbeat is older than this is stale.
    heartbeat_s: how often the held claim is touched; well below
      ``timeout_s``.
    task: this process's task index, recorded for status lines.

  Returns:
    The held :class:`Claim`, or None.
  """
  if heartbeat_s >= timeout_s:
    raise ValueError(
        f"claim heartbeat_s={heartbeat_s} must be below timeout_s="
        f"{timeout_s}, or live claims would look stale; e.g. heartbeat_s="
        f"{timeout_s / 10:g}.")
  os.makedirs(workdir, exist_ok=True)
  token = uuid.uuid4().hex
  if not _create(workdir, token, task):
    info = read_claim(workdir)
    if info is not None and not is_stale(info, timeout_s):
      return None
    if not _take_over(workdir, timeout_s, token, task):
      return None
  return Claim(workdir, token, heartbeat_s)

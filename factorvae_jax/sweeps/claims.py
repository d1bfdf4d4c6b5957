"""Atomic claims on a run's workdir, so no run is trained by two processes.

A claim is a numbered file ``<workdir>/sweep_claim.<g>.json`` (owner, task,
token); the file with the highest number ``g`` (the *generation*) is the
current claim. Every change of hands creates the next generation with
``os.link`` of a file written aside, and ``link`` fails if the name exists
(also on NFS, unlike ``O_EXCL`` on old clients). So each change is a
compare-and-swap: of all the processes that saw generation ``g`` and want
the run, exactly one creates ``g + 1``; there is no moment at which two
processes both win, and no lock that a stalled or killed process could
leave behind.

* Claiming a run nobody holds creates generation 0, or the generation after
  the last holder's *release* record (a file ``{"released": true}``).
* Taking over a stale claim ``g`` creates ``g + 1``.
* Releasing claim ``g`` creates the release record ``g + 1``; it fails if
  another process took the claim over first.

The winner of a generation removes the older files. The newest file is
never removed, so the highest number only grows: a process that links a
number below it (it looked long ago, and that file was removed since) sees
the higher one when it checks and backs off.

While a process trains a run, a background thread touches its claim file
every ``heartbeat_s`` seconds. A holder checks that its claim is still the
newest (:meth:`Claim.held`) between chunks of training and before every
write; once it was taken over (after a stall longer than the timeout: a
suspended VM or job, a debugger) it stops that run and writes nothing more
into the workdir.

A claim is *stale*, and may be taken over, when

* its heartbeat (the file's modification time) is older than ``timeout_s``:
  the process died on another machine, or its machine vanished (a preempted
  VM, a Kubernetes pod on another node); or
* its process is gone, seen from the same machine *and* the same PID
  namespace: same host name, boot id (``/proc/sys/kernel/random/boot_id``)
  and PID namespace (``/proc/self/ns/pid``), and the pid no longer exists or
  now belongs to a process started at another time (a ``kill -9`` or a crash
  here). Containers that share a host name but not a PID namespace (Docker
  with ``--network=host``, pods with ``hostNetwork: true``) cannot see each
  other's processes and rely on the heartbeat alone.

The heartbeat check needs the machines' clocks within ``timeout_s`` of the
file server's. Claims need hard links: :func:`check_hard_links` tells a
file system without them (bucket mounts: gcsfuse, Mountpoint for S3, s3fs)
and what to do instead.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import threading
import time
import uuid
from typing import Optional

from absl import logging

from factorvae_jax.utils import errors

CLAIM_PREFIX = "sweep_claim."
_CLAIM_NAME = re.compile(r"^sweep_claim\.(\d+)\.json$")
# errnos of a file system that has no hard links (FUSE bucket mounts answer
# EPERM, ENOTSUP or ENOSYS; FAT answers EPERM).
_NO_LINK_ERRNOS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS,
                   errno.EMLINK)


class NoHardLinksError(errors.UserError, RuntimeError):
  """The sweep dir's file system cannot make hard links, which claims need."""


# The claims this process holds, by real workdir path (for may_write).
_HELD: dict[str, "Claim"] = {}


def claim_path(workdir: str, generation: int) -> str:
  """The file of claim generation ``generation`` in ``workdir``."""
  return os.path.join(workdir, f"{CLAIM_PREFIX}{generation}.json")


def generations(workdir: str) -> list[int]:
  """The claim generations present in ``workdir``, oldest first."""
  try:
    names = os.listdir(workdir)
  except FileNotFoundError:
    return []
  return sorted(int(m.group(1)) for m in map(_CLAIM_NAME.match, names) if m)


def _read_boot_id() -> Optional[str]:
  try:
    with open("/proc/sys/kernel/random/boot_id") as f:
      return f.read().strip()
  except OSError:
    return None


def _pid_namespace() -> Optional[str]:
  try:
    return os.readlink("/proc/self/ns/pid")
  except OSError:
    return None


def _process_start(pid: int) -> Optional[int]:
  """Start time of process ``pid`` in clock ticks since boot, or None.

  With the pid it names one process for the machine's uptime: a pid reused
  by a new process has another start time.
  """
  try:
    with open(f"/proc/{pid}/stat") as f:
      stat = f.read()
  except OSError:
    return None
  # Field 22; the command name (field 2) may hold spaces, so split after it.
  return int(stat.rpartition(")")[2].split()[19])


def owner_identity() -> dict:
  """This process as a claim records it: host, boot id, PID namespace, pid
  and the pid's start time."""
  pid = os.getpid()
  return {"host": socket.gethostname(), "boot_id": _read_boot_id(),
          "pid_ns": _pid_namespace(), "pid": pid,
          "pid_start": _process_start(pid)}


def _pid_alive(pid: int, start: Optional[int]) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Exists, owned by someone else.
    pass
  if start is not None:
    now = _process_start(pid)
    if now is not None and now != start:
      return False  # The pid was reused by a newer process.
  return True


def _read(path: str) -> Optional[dict]:
  """A claim file's fields plus ``age_s``; None if it is gone."""
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


def _newest(workdir: str) -> tuple[Optional[int], Optional[dict]]:
  """(generation, info) of the newest claim file; (None, None) if none."""
  for _ in range(100):  # Files are removed as claims change hands.
    found = generations(workdir)
    if not found:
      return None, None
    info = _read(claim_path(workdir, found[-1]))
    if info is not None:
      return found[-1], {**info, "generation": found[-1]}
  raise RuntimeError(f"claims in {workdir} keep changing; is something "
                     f"deleting {CLAIM_PREFIX}*.json files?")


def read_claim(workdir: str) -> Optional[dict]:
  """The live claim on ``workdir`` with its heartbeat age, or None if the
  run is unclaimed (never claimed, or released).

  Returns:
    The claim's fields plus ``age_s`` (seconds since the last heartbeat) and
    ``generation``; ``{'age_s': ..., 'generation': ...}`` alone if the file
    cannot be parsed.
  """
  _, info = _newest(workdir)
  if info is None or info.get("released"):
    return None
  return info


def is_stale(info: dict, timeout_s: float) -> bool:
  """Whether a claim (from ``read_claim``) belongs to no live process."""
  if info["age_s"] > timeout_s:
    return True
  me = owner_identity()
  same_pid_space = all(
      info.get(key) is not None and info.get(key) == me[key]
      for key in ("host", "boot_id", "pid_ns"))
  return (same_pid_space and "pid" in info and
          not _pid_alive(int(info["pid"]), info.get("pid_start")))


def describe(info: dict) -> str:
  """'host:pid (task i)' of a claim, for status lines."""
  task = f", task {info['task']}" if info.get("task") is not None else ""
  return (f"{info.get('host', '?')}:{info.get('pid', '?')}{task}, heartbeat "
          f"{info['age_s']:.0f} s ago")


def _no_links_message(directory: str, error: OSError) -> str:
  return (f"{directory} is on a file system without hard links (os.link "
          f"failed: {error}); sweep claims need them to be atomic. Bucket "
          f"mounts (gcsfuse, Mountpoint for S3, s3fs) have none. Either put "
          f"the sweep dir on a file system with hard links (a local disk, "
          f"NFS, Filestore, EFS), or, if the scheduler runs at most one live "
          f"instance of each task index (a Slurm job array, a Kubernetes "
          f"Indexed Job) and nothing else trains in this sweep dir, pass "
          f"--claims=off (docs/sweeps.md, 'Claims').")


def _link(source: str, target: str) -> bool:
  """``os.link``; False if ``target`` exists.

  Raises:
    NoHardLinksError: the file system has no hard links.
  """
  try:
    os.link(source, target)
    return True
  except FileExistsError:
    return False
  except OSError as e:
    if e.errno in _NO_LINK_ERRNOS:
      raise NoHardLinksError(
          _no_links_message(os.path.dirname(target), e)) from e
    raise


def check_hard_links(directory: str) -> None:
  """Checks that ``directory``'s file system makes hard links.

  Args:
    directory: the sweep dir (created if missing).

  Raises:
    NoHardLinksError: it does not; the message names ``--claims=off`` and
      when it is safe.
  """
  os.makedirs(directory, exist_ok=True)
  probe = os.path.join(directory, f".link_probe.{uuid.uuid4().hex}")
  with open(probe, "w"):
    pass
  try:
    _link(probe, probe + ".link")
    os.remove(probe + ".link")
  finally:
    os.remove(probe)


def _create(workdir: str, generation: int, payload: dict) -> bool:
  """Creates claim file ``generation`` atomically; False if it exists."""
  tmp = os.path.join(workdir, f".{CLAIM_PREFIX}{uuid.uuid4().hex}.tmp")
  with open(tmp, "w") as f:
    json.dump(payload, f)
    f.flush()
    os.fsync(f.fileno())
  try:
    return _link(tmp, claim_path(workdir, generation))
  finally:
    os.remove(tmp)


def _remove_older(workdir: str, generation: int) -> None:
  """Removes the claim files older than ``generation`` (ours, the newest)."""
  for g in generations(workdir):
    if g < generation:
      try:
        os.remove(claim_path(workdir, g))
      except FileNotFoundError:
        pass


class Claim:
  """A held claim; keeps its heartbeat going until :meth:`release`.

  Use :func:`try_claim` to get one.
  """

  def __init__(self, workdir: str, token: str, generation: int,
               heartbeat_s: float):
    self.workdir = workdir
    self.token = token
    self.generation = generation
    self._lost = False
    self._released = False
    self._stop = threading.Event()
    self._thread = threading.Thread(
        target=self._beat, args=(heartbeat_s,), daemon=True,
        name=f"claim-heartbeat:{workdir}")
    self._thread.start()

  def held(self) -> bool:
    """Whether the claim is still ours: its file exists and no newer
    generation does. Once False (taken over), always False."""
    if self._lost or self._released:
      return False
    if (not os.path.exists(claim_path(self.workdir, self.generation)) or
        os.path.exists(claim_path(self.workdir, self.generation + 1))):
      self._lost = True
      logging.warning(
          "The claim on %s was taken over by another process (this one "
          "stalled longer than the claim timeout); this process stops "
          "training the run and writes nothing more there.", self.workdir)
    return not self._lost

  def _beat(self, heartbeat_s: float) -> None:
    while not self._stop.wait(heartbeat_s):
      # Never touch a file that is no longer ours: the heartbeat would keep
      # a claim alive for a process that is not training it.
      if not self.held():
        return
      try:
        os.utime(claim_path(self.workdir, self.generation))
      except FileNotFoundError:
        self._lost = True
        return

  def release(self) -> None:
    """Stops the heartbeat and records the release, unless the claim was
    taken over (then nothing is written)."""
    self._stop.set()
    self._thread.join()
    _HELD.pop(os.path.realpath(self.workdir), None)
    if not self.held():
      return
    self._released = True
    payload = {**owner_identity(), "released": True, "token": self.token,
               "released_at": time.time()}
    if _create(self.workdir, self.generation + 1, payload):
      _remove_older(self.workdir, self.generation + 1)
    else:  # Taken over between the check and the release.
      self._lost = True


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

  Raises:
    ValueError: ``heartbeat_s`` is not below ``timeout_s``.
    NoHardLinksError: the workdir's file system has no hard links.
  """
  if heartbeat_s >= timeout_s:
    raise ValueError(
        f"claim heartbeat_s={heartbeat_s} must be below timeout_s="
        f"{timeout_s}, or live claims would look stale; e.g. heartbeat_s="
        f"{timeout_s / 10:g}.")
  os.makedirs(workdir, exist_ok=True)
  newest, info = _newest(workdir)
  if newest is None:
    generation = 0
  elif info.get("released") or is_stale(info, timeout_s):
    generation = newest + 1
  else:
    return None
  token = uuid.uuid4().hex
  payload = {**owner_identity(), "task": task, "token": token,
             "claimed_at": time.time()}
  if not _create(workdir, generation, payload):
    return None  # Another process took this generation first.
  if generations(workdir)[-1] != generation:
    # We linked a number below the newest (removed since we looked): the
    # newer claim stands.
    os.remove(claim_path(workdir, generation))
    return None
  _remove_older(workdir, generation)
  claim = Claim(workdir, token, generation, heartbeat_s)
  _HELD[os.path.realpath(workdir)] = claim
  return claim


def may_write(workdir: str) -> bool:
  """Whether this process may still write into ``workdir``: False once a
  claim it holds there was taken over, True otherwise (held, or never
  claimed by this process: ``--claims=off``, a single run).

  The training loops call it between chunks and before every save.
  """
  claim = _HELD.get(os.path.realpath(workdir))
  return claim is None or claim.held()

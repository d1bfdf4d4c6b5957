"""Metric logging to TensorBoard event files and a JSON-lines file.

TensorBoard output goes through tensorboardX, which writes event files with
its own protobuf classes, so TensorFlow is never imported.

The run's JSON-lines file (named, read and truncated by
``factorvae_jax.utils.run_dir``) holds one object per
:meth:`MetricWriter.write_scalars` call::

  {"step": 1200, "time": 1700000000.12, "loss": 61.3, "kl": "NaN"}

Values are floats. NaN and +/-Inf are not valid JSON numbers, so they are
written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``;
``float(value)`` turns every value back into a number, and which of the
three went wrong (a divergence shows as Inf before NaN) is kept, which
``null`` would lose.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import uuid
from typing import Mapping, Optional

import numpy as np

from factorvae_jax.utils import run_dir

_RESERVED_KEYS = ("step", "time")
# tensorboardX writes events from a background thread and pushes them to the
# OS at most this often (its flush() cannot drain that thread's queue).
_TB_FLUSH_SECS = 10


def _import_summary_writer():
  """Imports tensorboardX's SummaryWriter without importing PyTorch.

  Imported lazily so JSON-only use never loads tensorboardX. When PyTorch is
  installed, tensorboardX imports it at import time just to recognise torch
  tensors: seconds and hundreds of MB in a JAX process, and a broken torch
  install raises OSError, which tensorboardX does not catch. A None entry in
  sys.modules makes that ``import torch`` raise ImportError, which it
  handles; the entry is removed again so other code can still import torch.
  """
  if "tensorboardX.writer" in sys.modules or "torch" in sys.modules:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    return SummaryWriter
  sys.modules["torch"] = None
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  finally:
    if "torch" in sys.modules and sys.modules["torch"] is None:
      del sys.modules["torch"]
  return SummaryWriter


def _encode_float(value: float):
  """Returns a JSON-safe representation of a float (see module docstring)."""
  if math.isnan(value):
    return "NaN"
  if math.isinf(value):
    return "Infinity" if value > 0 else "-Infinity"
  return value


def _to_float(name: str, value) -> float:
  """Converts a Python/numpy/JAX scalar to float with an actionable error."""
  array = np.asarray(value)
  if array.size != 1:
    raise ValueError(
        f"scalar {name!r} has shape {array.shape}; write_scalars takes one "
        "number per name (reduce it, e.g. with .mean(), first).")
  try:
    return float(array.reshape(()))
  except (TypeError, ValueError) as e:
    raise ValueError(
        f"scalar {name!r} = {value!r} is not a number.") from e


class MetricWriter:
  """Writes scalars, images and text for one training run.

  Scalars go to TensorBoard (``workdir/tensorboard``) and to a JSON-lines
  file in ``workdir``; images and text go to TensorBoard only (and are
  dropped when ``tensorboard=False``). Each JSON line is handed to the OS as
  soon as it is written, so killing the process loses no complete line.

  On resume, call :meth:`truncate_after` with the restored checkpoint step
  before writing, so metrics logged after that checkpoint by the killed run
  are not duplicated.

  Usable as a context manager; :meth:`close` is idempotent.
  """

  def __init__(self, workdir, tensorboard: bool = True):
    """Opens (creating if needed) the run's metric files.

    Args:
      workdir: run directory; created if missing.
      tensorboard: whether to write TensorBoard event files as well.
    """
    self._workdir = os.fspath(workdir)
    os.makedirs(self._workdir, exist_ok=True)
    self._jsonl_path = run_dir.metrics_path(self._workdir)
    self._tensorboard = tensorboard
    self._tb_writer = None
    # Set by truncate_after so the next event file tells TensorBoard to hide
    # the killed run's events past the checkpoint.
    self._purge_step: Optional[int] = None
    self._closed = False
    _drop_partial_last_line(self._jsonl_path)
    self._jsonl = self._open_jsonl()

  @property
  def tensorboard_dir(self) -> Optional[str]:
    """Directory of the TensorBoard event files, or None if disabled."""
    if not self._tensorboard:
      return None
    return run_dir.tensorboard_dir(self._workdir)

  def _open_jsonl(self):
    # Line buffering: every complete line reaches the OS immediately.
    return open(self._jsonl_path, "a", buffering=1, encoding="utf-8")

  def _get_tb_writer(self):
    """Creates the TensorBoard writer on first use."""
    if not self._tensorboard:
      return None
    if self._tb_writer is None:
      summary_writer_cls = _import_summary_writer()
      # Event file names only carry a whole-second timestamp and the
      # hostname; a unique suffix keeps two writers opened within the same
      # second (a quick restart) from overwriting each other's file.
      self._tb_writer = summary_writer_cls(
          logdir=self.tensorboard_dir,
          purge_step=self._purge_step,
          flush_secs=_TB_FLUSH_SECS,
          filename_suffix=f".{os.getpid()}.{uuid.uuid4().hex[:8]}")
    return self._tb_writer

  def _check_open(self):
    if self._closed:
      raise RuntimeError("MetricWriter is closed; create a new one.")

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """Logs scalars for one step.

    Args:
      step: training step; the x axis in TensorBoard.
      scalars: name -> number (Python, numpy or 0-d JAX values; converting a
        JAX value waits for the device, so pass them when you log anyway).

    Raises:
      ValueError: if a name is reserved ("step", "time") or a value is not a
        single number.
    """
    self._check_open()
    step = int(step)
    values = {}
    for name, value in scalars.items():
      if name in _RESERVED_KEYS:
        raise ValueError(
            f"scalar name {name!r} is reserved for the JSON-lines record; "
            f"rename it (e.g. 'train/{name}').")
      values[str(name)] = _to_float(name, value)
    record = {"step": step, "time": time.time()}
    record.update((k, _encode_float(v)) for k, v in values.items())
    line = json.dumps(record, allow_nan=False)
    # One write call per line so a kill cannot interleave half a record.
    self._jsonl.write(line + "\n")
    tb = self._get_tb_writer()
    if tb is not None:
      for name, value in values.items():
        tb.add_scalar(name, value, global_step=step)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """Logs images to TensorBoard (a no-op when TensorBoard is disabled).

    Args:
      step: training step.
      images: name -> uint8 image [H, W] or [H, W, C] with C in {1, 3, 4},
        e.g. the output of ``visualisation.make_image_grid``.

    Raises:
      ValueError: if an image is not uint8 or has the wrong shape.
    """
    self._check_open()
    step = int(step)
    checked = {}
    for name, image in images.items():
      image = np.asarray(image)
      if image.dtype != np.uint8:
        raise ValueError(
            f"image {name!r} has dtype {image.dtype}; write_images takes uint8 "
            "HWC images (use visualisation.make_image_grid to convert).")
      if image.ndim == 2:
        image = image[..., None]
      if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"image {name!r} has shape {image.shape}; expected [H, W] or "
            "[H, W, C] with C in {1, 3, 4}.")
      checked[name] = image
    tb = self._get_tb_writer()
    if tb is None:
      return
    for name, image in checked.items():
      tb.add_image(name, image, global_step=step, dataformats="HWC")

  def write_text(self, step: int, name: str, text: str) -> None:
    """Logs a text summary (markdown) to TensorBoard; no-op without it."""
    self._check_open()
    tb = self._get_tb_writer()
    if tb is not None:
      tb.add_text(name, str(text), global_step=int(step))

  def truncate_after(self, step: int) -> int:
    """Forgets metrics logged after ``step``, for resuming from a checkpoint.

    Lines of the JSON-lines file with a step greater than ``step`` are
    dropped (the file is rewritten atomically), as are unparseable lines.
    TensorBoard event files are append-only, so instead the next event file
    starts with a marker telling TensorBoard to hide events with steps after
    ``step`` from earlier files.

    Args:
      step: the step of the checkpoint being resumed.

    Returns:
      The number of JSON lines dropped.
    """
    self._check_open()
    step = int(step)
    self._jsonl.close()
    try:
      dropped = run_dir.truncate_metrics_after(self._workdir, step)
    finally:
      # The old handle points at the replaced file; appends must go to the
      # new one.
      self._jsonl = self._open_jsonl()
    self._purge_step = step + 1
    if self._tb_writer is not None:
      # The purge marker only goes at the start of an event file, so start
      # a new one.
      self._tb_writer.close()
      self._tb_writer = None
    return dropped

  def flush(self) -> None:
    """Pushes buffered output to the OS.

    The JSON-lines file is complete after this. TensorBoard events are
    written by tensorboardX's background thread, so the last few may still
    be queued; :meth:`close` writes everything.
    """
    if self._closed:
      return
    self._jsonl.flush()
    if self._tb_writer is not None:
      self._tb_writer.flush()

  def close(self) -> None:
    """Flushes and closes all files; later writes raise RuntimeError."""
    if self._closed:
      return
    self._closed = True
    self._jsonl.close()
    if self._tb_writer is not None:
      self._tb_writer.close()
      self._tb_writer = None

  def __enter__(self) -> "MetricWriter":
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    self.close()


def _drop_partial_last_line(path: str) -> None:
  """Cuts an unterminated last line (a write interrupted by a crash).

  Without this the next record would be appended to the fragment, turning
  one broken line into a broken line that also hides a good record.
  """
  try:
    with open(path, "rb+") as f:
      f.seek(0, os.SEEK_END)
      end = f.tell()
      if end == 0:
        return
      f.seek(end - 1)
      if f.read(1) == b"\n":
        return
      # Scan backwards for the last newline, a block at a time.
      pos = end
      keep = 0
      while pos > 0:
        start = max(0, pos - 65536)
        f.seek(start)
        block = f.read(pos - start)
        index = block.rfind(b"\n")
        if index >= 0:
          keep = start + index + 1
          break
        pos = start
      logging.warning("Dropping %d bytes of an incomplete last line in %s.",
                      end - keep, path)
      f.truncate(keep)
  except FileNotFoundError:
    pass

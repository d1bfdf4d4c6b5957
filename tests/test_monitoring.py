"""Tests for factorvae_jax.monitoring (no JAX, no TensorFlow)."""

import io
import json
import math
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image
import pytest

from factorvae_jax.monitoring import DiscriminatorWatch
from factorvae_jax.monitoring import MetricWriter
from factorvae_jax.monitoring import ProgressBar
from factorvae_jax.monitoring import writers
from factorvae_jax.utils import run_dir

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- Reading event files back without TensorFlow or TensorBoard. -----------

def _make_crc32c_table():
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    table.append(crc)
  return table


_CRC32C_TABLE = _make_crc32c_table()


def masked_crc32c(data: bytes) -> int:
  """CRC-32C with TFRecord's masking, written independently of the writer."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  crc ^= 0xFFFFFFFF
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(directory):
  """Parses every TFRecord-framed Event in ``directory``, checking CRCs."""
  writers._import_summary_writer()  # Loads tensorboardX without torch.
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  events = []
  for name in sorted(os.listdir(directory)):
    assert "tfevents" in name
    with open(os.path.join(directory, name), "rb") as f:
      data = f.read()
    pos = 0
    while pos < len(data):
      header = data[pos:pos + 8]
      (length,) = struct.unpack("<Q", header)
      (header_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
      assert header_crc == masked_crc32c(header)
      payload = data[pos + 12:pos + 12 + length]
      (payload_crc,) = struct.unpack(
          "<I", data[pos + 12 + length:pos + 16 + length])
      assert payload_crc == masked_crc32c(payload)
      event = event_pb2.Event()
      event.ParseFromString(payload)
      events.append(event)
      pos += 16 + length
  return events


def summary_values(events):
  """(step, Summary.Value) for every summary value in ``events``."""
  return [(e.step, v) for e in events for v in e.summary.value]


def read_jsonl(path):
  """Parses a JSON-lines file strictly (bare NaN/Infinity are rejected)."""

  def reject(constant):
    raise AssertionError(f"invalid JSON constant {constant}")

  with open(path, encoding="utf-8") as f:
    return [json.loads(line, parse_constant=reject) for line in f]


# --- MetricWriter. ----------------------------------------------------------

class TestMetricWriter:

  def test_jsonl_records_and_non_finite_values(self, tmp_path):
    with MetricWriter(tmp_path) as writer:
      writer.write_scalars(10, {"loss": np.float32(1.5), "kl": np.array(2),
                                "bad": float("nan"), "up": float("inf"),
                                "down": -math.inf})
      writer.write_scalars(20, {"loss": 1.25})
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [10, 20]
    first = records[0]
    assert first["loss"] == 1.5 and first["kl"] == 2.0
    assert isinstance(first["kl"], float)
    assert (first["bad"], first["up"], first["down"]) == (
        "NaN", "Infinity", "-Infinity")
    assert math.isnan(float(first["bad"])) and float(first["up"]) == math.inf
    assert abs(first["time"] - records[1]["time"]) < 60

  def test_tensorboard_scalars_images_and_text(self, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (6, 5, 3), np.uint8)
    with MetricWriter(tmp_path) as writer:
      writer.write_scalars(3, {"loss": 0.5, "tc": -1.0})
      writer.write_images(3, {"traversal": image})
      writer.write_text(4, "config", "gamma: 35")
    events = read_events(tmp_path / "tensorboard")
    assert events[0].file_version == "brain.Event:2"
    values = summary_values(events)
    scalars = {v.tag: (step, v.simple_value) for step, v in values
               if v.HasField("simple_value")}
    assert scalars == {"loss": (3, 0.5), "tc": (3, -1.0)}
    (step, img), = [(s, v.image) for s, v in values if v.HasField("image")]
    assert step == 3 and (img.height, img.width) == (6, 5)
    decoded = np.asarray(Image.open(io.BytesIO(img.encoded_image_string)))
    np.testing.assert_array_equal(decoded, image)
    (step, text), = [(s, v) for s, v in values if v.tag.startswith("config")]
    assert step == 4 and text.tensor.string_val == [b"gamma: 35"]

  def test_no_tensorflow_or_torch_import(self, tmp_path):
    # A fresh interpreter, so modules imported by other tests do not count.
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        attempts = []
        class Recorder(importlib.abc.MetaPathFinder):
          def find_spec(self, name, path=None, target=None):
            attempts.append(name)
            return None
        sys.meta_path.insert(0, Recorder())
        import numpy as np
        from factorvae_jax.monitoring import MetricWriter
        with MetricWriter({str(tmp_path)!r}) as w:
          w.write_scalars(1, {{"loss": 1.0}})
          w.write_images(1, {{"img": np.zeros((2, 2, 3), np.uint8)}})
          w.write_text(1, "note", "hi")
        roots = {{name.split(".")[0] for name in attempts}}
        roots |= {{name.split(".")[0] for name in sys.modules}}
        print(sorted(roots & {{"tensorflow", "torch"}}))
        """)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert len(os.listdir(tmp_path / "tensorboard")) == 1

  def test_truncate_after_drops_later_lines_and_purges_tensorboard(
      self, tmp_path):
    with MetricWriter(tmp_path) as writer:
      for step in range(10):
        writer.write_scalars(step, {"loss": float(step)})
    # A resumed run restores the checkpoint of step 4.
    with MetricWriter(tmp_path) as writer:
      assert writer.truncate_after(4) == 5
      writer.write_scalars(5, {"loss": 50.0})
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4, 5]
    assert records[-1]["loss"] == 50.0
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []
    events = read_events(tmp_path / "tensorboard")
    starts = [e.step for e in events
              if e.HasField("session_log") and e.session_log.status == 1]
    assert starts == [5]  # TensorBoard hides older events with step >= 5.

  def test_truncate_after_midway_keeps_appending_to_new_file(self, tmp_path):
    with MetricWriter(tmp_path, tensorboard=False) as writer:
      for step in range(4):
        writer.write_scalars(step, {"a": 1.0})
      writer.truncate_after(1)
      writer.write_scalars(2, {"a": 2.0})
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["a"]) for r in records] == [(0, 1.0), (1, 1.0),
                                                      (2, 2.0)]

  def test_incomplete_last_line_is_dropped_on_open(self, tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "time": 0, "a": 1.0}\n{"step": 2, "ti')
    with MetricWriter(tmp_path, tensorboard=False) as writer:
      writer.write_scalars(2, {"a": 2.0})
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]

  def test_without_tensorboard(self, tmp_path):
    with MetricWriter(tmp_path, tensorboard=False) as w:
      w.write_scalars(1, {"a": 1.0})
      w.write_images(1, {"img": np.zeros((2, 2, 3), np.uint8)})
      w.write_text(1, "t", "x")
      w.flush()
      assert w.tensorboard_dir is None
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(
        run_dir.metrics_path(tmp_path))]

  def test_errors(self, tmp_path):
    writer = MetricWriter(tmp_path, tensorboard=False)
    with pytest.raises(ValueError, match="reserved"):
      writer.write_scalars(1, {"step": 1.0})
    with pytest.raises(ValueError, match="mean"):
      writer.write_scalars(1, {"loss": np.ones(3)})
    with pytest.raises(ValueError, match="uint8"):
      writer.write_images(1, {"img": np.zeros((2, 2, 3), np.float32)})
    writer.close()
    writer.close()  # Idempotent.
    with pytest.raises(RuntimeError, match="closed"):
      writer.write_scalars(2, {"a": 1.0})


# --- ProgressBar. -----------------------------------------------------------

class FakeClock:

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


class TestProgressBar:

  def test_rate_excludes_first_update_and_gives_eta(self):
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(1001, stream=out, clock=clock, interactive=False)
    assert math.isnan(bar.steps_per_second())
    clock.now = 30.0  # Compiling the first step took 30 s.
    bar.update(1, {"loss": 61.234567})
    assert math.isnan(bar.steps_per_second())  # Loggable, just unknown.
    for step in range(2, 102):
      clock.now += 0.1
      bar.update(step, {"loss": 60.0})
    assert bar.steps_per_second() == pytest.approx(10.0)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "loss=61.23" in lines[0] and "1/1001" in lines[0]
    # 900 steps left at 10 steps/s: 1 min 30 s.
    assert "101/1001" in lines[-1] and "10%" in lines[-1]
    assert "00:10<01:30" in lines[-1] and "10.00step/s" in lines[-1]

  def test_log_mode_prints_at_most_every_interval_and_the_last_step(self):
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(50, stream=out, clock=clock, min_interval_s=0.5,
                      interactive=False)
    for step in range(1, 51):
      bar.update(step, {})
      clock.now += 0.1
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    # Step 1, then every 5th update (0.5 s), and the final step once.
    assert len(lines) == 11
    assert lines[-1].startswith("100%") and "50/50" in lines[-1]

  def test_close_prints_the_last_unprinted_update(self):
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(100, stream=out, clock=clock, min_interval_s=10,
                      interactive=False)
    bar.update(1)
    clock.now = 1.0
    bar.update(7, {"tc": float("nan")})
    assert len(out.getvalue().splitlines()) == 1
    bar.close()
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "7/100" in lines[1] and "tc=nan" in lines[1]

  def test_interactive_mode_is_a_live_tqdm_bar(self):
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(10, initial_step=2, stream=out, clock=clock,
                      interactive=True)
    bar.update(3, {"loss": 123456.0})
    clock.now = 1.0
    bar.update(10, {"loss": 1.5})
    bar.close()
    text = out.getvalue()
    assert "\r" in text  # Redrawn in place, not a line per update.
    assert "10/10" in text and "loss=1.5" in text

  def test_default_stream_is_stderr(self, capsys):
    bar = ProgressBar(2, interactive=False)
    bar.update(2)
    bar.close()
    assert "2/2" in capsys.readouterr().err


# --- DiscriminatorWatch. ----------------------------------------------------

def run_watch(watch, steps, accuracies):
  """Feeds a sequence; returns [(step, message)] for every warning."""
  warnings = []
  for step, accuracy in zip(steps, accuracies):
    message = watch.update(step, accuracy)
    if message is not None:
      warnings.append((step, message))
  return warnings


class TestDiscriminatorWatch:

  def test_nothing_before_warmup(self):
    watch = DiscriminatorWatch(warmup_steps=10_000, window_steps=100)
    steps = range(0, 10_000, 10)
    assert run_watch(watch, steps, [0.5] * len(steps)) == []

  def test_pinned_at_chance_warns_once(self):
    watch = DiscriminatorWatch(warmup_steps=1000, window_steps=5000)
    steps = range(0, 30_000, 100)
    warnings = run_watch(watch, steps, [0.5] * len(steps))
    assert len(warnings) == 1
    step, message = warnings[0]
    assert step == 6000
    assert "at chance" in message and "TC estimate is ~0" in message
    assert watch.episode == "chance"

  def test_noisy_chance_accuracy_still_detected(self):
    # Accuracy of a chance discriminator measured on 2 x 64 samples.
    rng = np.random.default_rng(0)
    steps = range(0, 30_000, 100)
    accuracies = rng.binomial(128, 0.5, len(steps)) / 128
    assert np.mean((accuracies < 0.45) | (accuracies > 0.55)) > 0.1
    warnings = run_watch(DiscriminatorWatch(), steps, accuracies)
    assert [s for s, _ in warnings] == [6000]

  def test_saturated_warns_once(self):
    steps = range(0, 20_000, 50)
    warnings = run_watch(DiscriminatorWatch(), steps, [0.998] * len(steps))
    assert len(warnings) == 1
    assert "almost perfectly" in warnings[0][1]
    assert "unbounded" in warnings[0][1]

  def test_warns_again_only_after_recovery_and_new_window(self):
    watch = DiscriminatorWatch()
    warnings, recovered_at = [], None
    for step in range(0, 40_000, 100):
      accuracy = 0.75 if 10_000 <= step < 16_000 else 0.5
      message = watch.update(step, accuracy)
      if message:
        warnings.append(step)
      if watch.episode is None and warnings and recovered_at is None:
        recovered_at = step
    assert warnings[0] == 6000
    assert 10_000 < recovered_at < 12_000
    assert len(warnings) == 2
    # Re-pinned at 16000: warns once the window mean is back in the band,
    # but never within a window of the recovery.
    assert 16_000 < warnings[1] <= 21_000
    assert warnings[1] >= recovered_at + 5000

  def test_healthy_oscillation_never_warns(self):
    steps = np.arange(0, 100_000, 100)
    accuracies = 0.7 + 0.1 * np.sin(steps / 3000)
    assert run_watch(DiscriminatorWatch(), steps, accuracies) == []

  def test_non_finite_ignored_and_restart_resets(self):
    watch = DiscriminatorWatch(warmup_steps=0, window_steps=1000)
    assert run_watch(watch, range(0, 1000, 100), [math.nan] * 10) == []
    assert len(run_watch(watch, range(1000, 3000, 100), [0.5] * 20)) == 1
    # Resumed from an earlier checkpoint: history is forgotten.
    warnings = run_watch(watch, range(500, 3000, 100), [0.5] * 25)
    assert [s for s, _ in warnings] == [1500]

  def test_invalid_configuration(self):
    with pytest.raises(ValueError, match="chance_band"):
      DiscriminatorWatch(chance_band=(0.6, 0.4))
    with pytest.raises(ValueError, match="saturated_above"):
      DiscriminatorWatch(saturated_above=0.5)

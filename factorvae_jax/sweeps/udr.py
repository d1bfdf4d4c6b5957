"""UDR model selection over a sweep (Duan et al. 2020).

Every finished run is scored against the other finished runs that share its
config but for the seed (its model and hyperparameters, as in Duan et al.):
its UDR is the median of the pair scores in which its codes are the target
(``metrics.udr_metric``). The steps, all resumable:

1. **Codes.** Each run's mean codes and KL per latent on dlib's UDR draws
   (``num_data_points`` observations, ``batch_size`` per draw, from
   ``RandomState(config.eval_seed)``) are written to
   ``<workdir>/udr_codes.npz``, tagged with the checkpoint step and the
   draw settings. Only runs without valid codes are encoded: all of them
   that share a dataset and an encoder architecture in one jitted program
   (``lax.map`` over the stacked encoders), the observations rendered once.
2. **Pairs.** Every ordered pair's score is kept in
   ``<sweep_dir>/udr_pairs.json`` under the two runs' names and checkpoint
   steps, the correlation matrix and the settings, so a run added later
   costs its own encoding and its own pairs only.
3. **Scores.** Each scored run's ``results.json`` gets
   ``scores["udr/<correlation_matrix>"]`` and a ``"udr"`` section naming the
   runs it was compared with and each pair's score; ``results.csv`` is
   written again (``aggregate``).

Because every run of a group encodes the same observations and a pair's
score depends on the two runs only, the scores equal those of dlib's
``compute_udr_sklearn`` called on the group's models at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from factorvae_jax import data as data_lib
from factorvae_jax import metrics
from factorvae_jax.builder import run_config
from factorvae_jax.builder.trained_model import encode_in_chunks
from factorvae_jax.builder.trained_model import make_gaussian_encoder
from factorvae_jax.builder.trained_model import restore_vae_params
from factorvae_jax.metrics import udr_metric
from factorvae_jax.models import make_networks
from factorvae_jax.sweeps import aggregate
from factorvae_jax.sweeps import definition
from factorvae_jax.sweeps import status as status_lib
from factorvae_jax.utils import errors
from factorvae_jax.utils import run_dir
from factorvae_jax.utils.files import write_atomically
from factorvae_jax.utils.files import write_json_atomically

CODES_FILE = "udr_codes.npz"
PAIRS_FILE = "udr_pairs.json"
# Images per encoder call, and most models encoded by one program (bounds
# the memory of the stacked parameters and codes).
_ENCODE_CHUNK = 500
_MODELS_PER_PROGRAM = 16


@dataclasses.dataclass
class UdrReport:
  """What ``score_sweep`` did.

  Attributes:
    scored: run name -> its UDR score.
    encoded: names of the runs encoded in this call.
    pairs_computed: ordered pairs scored in this call (not read back).
    skipped: (run name, reason) of finished runs left without a score.
    csv_path: the rewritten ``results.csv``.
  """
  scored: dict[str, float]
  encoded: list[str]
  pairs_computed: int
  skipped: list[tuple[str, str]]
  csv_path: Optional[str]


def group_key(record: dict) -> str:
  """Runs with equal keys differ only in the seed (Duan et al.'s group)."""
  flat = run_config.flatten(record["config"])
  flat.pop(definition.SEED_KEY, None)
  return json.dumps(flat, sort_keys=True, default=str)


def _draw_signature(config, sizes: dict) -> dict:
  """What decides the observations drawn (and so every code)."""
  return {"data": config.data.to_dict(), "eval_seed": int(config.eval_seed),
          "batch_size": int(sizes["batch_size"]),
          "num_data_points": int(sizes["num_data_points"])}


def _read_codes(workdir: str, step: int, signature: dict):
  """(codes, kl) from a run's codes file, or None if absent or stale."""
  path = os.path.join(workdir, CODES_FILE)
  try:
    with np.load(path) as stored:
      if (int(stored["step"]) != step or
          json.loads(str(stored["signature"])) != json.loads(
              json.dumps(signature, default=str))):
        return None
      return stored["codes"], stored["kl"]
  except (OSError, KeyError, ValueError):
    return None


def _write_codes(workdir: str, step: int, signature: dict, codes, kl) -> None:
  def write(f):
    np.savez(f, codes=codes, kl=kl, step=step,
             signature=json.dumps(signature, default=str))
  write_atomically(os.path.join(workdir, CODES_FILE), write, binary=True)


def draw_observations(dataset, seed: int, batch_size: int,
                      num_data_points: int) -> np.ndarray:
  """dlib's UDR draws: ``num_data_points / batch_size`` calls of
  ``sample_observations(batch_size)`` on ``RandomState(seed)``."""
  rs = np.random.RandomState(seed)
  return np.concatenate([dataset.sample_observations(batch_size, rs)
                         for _ in range(num_data_points // batch_size)])


def make_gaussian_encode_fn(encoder, stacked_params
                            ) -> Callable[[np.ndarray], tuple]:
  """images [N, ...] -> (means, logvars), each [N, M, D], of M encoders.

  One jitted program runs every model over a chunk (``lax.map``: each
  model's outputs are those of encoding it alone), its convolutions in
  cache-sized blocks on a CPU (``trained_model.make_gaussian_encoder``).
  """
  encode_one = make_gaussian_encoder(encoder)

  def encode_all(params, x):
    mean, logvar = jax.lax.map(lambda p: encode_one(p, x), params)
    return jnp.swapaxes(mean, 0, 1), jnp.swapaxes(logvar, 0, 1)

  encode = jax.jit(encode_all)
  return lambda images: encode_in_chunks(encode, stacked_params, images,
                                         _ENCODE_CHUNK)


def codes_and_kl(mean, logvar, batch_size: int) -> tuple[np.ndarray,
                                                          np.ndarray]:
  """A model's codes and its KL per latent, averaged as dlib averages.

  dlib's representation function returns the batch mean of
  ``0.5 (mu^2 + exp(logvar) - logvar - 1)`` (float32), and the KL of a model
  is the mean over its batches.
  """
  mean = np.asarray(mean, np.float32)
  logvar = np.asarray(logvar, np.float32)
  kl = 0.5 * (np.square(mean) + np.exp(logvar) - logvar - 1)
  per_batch = kl.reshape(-1, batch_size, kl.shape[-1]).mean(axis=1)
  return mean, np.mean(per_batch.astype(np.float64), axis=0)


def _encode_runs(todo: list[dict], sizes: dict, log) -> None:
  """Encodes every run in ``todo`` and writes its codes file.

  Each item: ``name``, ``workdir``, ``config``, ``step``, ``signature``.
  Runs of one dataset and encoder architecture share a program.
  """
  by_data: dict[str, list[dict]] = {}
  for item in todo:
    by_data.setdefault(json.dumps(item["signature"], sort_keys=True,
                                  default=str), []).append(item)
  for items in by_data.values():
    config = items[0]["config"]
    dataset = data_lib.make_dataset(config.data)
    shape = dataset.observation_shape
    images = draw_observations(dataset, int(config.eval_seed),
                               sizes["batch_size"], sizes["num_data_points"])
    buckets: list[tuple[object, list[dict]]] = []
    for item in items:
      encoder = make_networks(item["config"].model, shape).encoder
      for known, members in buckets:
        if known == encoder and len(members) < _MODELS_PER_PROGRAM:
          members.append(item)
          break
      else:
        buckets.append((encoder, [item]))
    for encoder, members in buckets:
      params = []
      for item in members:
        networks = make_networks(item["config"].model, shape)
        restored, _ = restore_vae_params(item["workdir"], item["config"],
                                         networks, shape, item["step"],
                                         parts=("encoder",))
        params.append(restored["encoder"])
      stacked = jax.tree.map(lambda *a: np.stack(a), *params)
      means, logvars = make_gaussian_encode_fn(encoder, stacked)(images)
      for k, item in enumerate(members):
        codes, kl = codes_and_kl(means[:, k], logvars[:, k],
                                 sizes["batch_size"])
        _write_codes(item["workdir"], item["step"], item["signature"], codes,
                     kl)
      log(f"UDR: encoded {len(members)} run(s) in one program: "
          f"{', '.join(m['name'] for m in members)}")


def _read_pairs(sweep_dir: str) -> dict:
  path = os.path.join(sweep_dir, PAIRS_FILE)
  if not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    # A cache only: an unreadable one is recomputed, never fatal.
    return {}


def _pair_key(settings: str, first: dict, second: dict) -> str:
  return (f"{settings}|{first['name']}@{first['step']}|"
          f"{second['name']}@{second['step']}")


def score_sweep(sweep_dir: str, sizes: str = "default",
                correlation_matrix: str = "lasso",
                filter_low_kl: bool = True,
                kl_filter_threshold: float =
                udr_metric.DEFAULT_KL_FILTER_THRESHOLD,
                log: Callable[[str], None] = print) -> UdrReport:
  """Scores every finished run of a sweep with UDR; see the module doc.

  Args:
    sweep_dir: a sweep dir (``sweep.json`` and the runs' workdirs).
    sizes: the size preset of the ``"udr"`` registry entry: ``"default"``
      (dlib's: 1000 points, batches of 10), ``"cheap"`` or ``"tiny"``.
    correlation_matrix: ``"lasso"`` (UDR_L, dlib's default) or
      ``"spearman"`` (UDR_S); the score is ``udr/<correlation_matrix>``.
    filter_low_kl: leave codes with KL <= ``kl_filter_threshold`` out of the
      similarity matrices (dlib: True).
    kl_filter_threshold: dlib: 0.01.
    log: where progress lines go.

  Returns:
    A ``UdrReport``.

  Raises:
    FileNotFoundError: ``sweep_dir`` holds no sweep.
    ValueError: a bad preset or correlation matrix.
  """
  udr_metric.check_correlation_matrix(correlation_matrix)
  if sizes not in metrics.METRICS["udr"].sizes:
    raise errors.InvalidValueError(
        f"sizes {sizes!r} is unknown; choose one of "
        f"{sorted(metrics.METRICS['udr'].sizes)} ('default' = dlib's 1000 "
        f"points in batches of 10).")
  udr_sizes = dict(metrics.METRICS["udr"].sizes[sizes])
  settings = json.dumps({"correlation_matrix": correlation_matrix,
                         "filter_low_kl": bool(filter_low_kl),
                         "kl_filter_threshold": float(kl_filter_threshold),
                         **udr_sizes}, sort_keys=True)
  skipped: list[tuple[str, str]] = []
  groups: dict[str, list[dict]] = {}
  for record in aggregate.load_runs(sweep_dir):
    workdir = os.path.join(sweep_dir, *record["name"].split("/"))
    if status_lib.run_status(workdir).state != status_lib.DONE:
      continue
    try:
      results = run_dir.read_results(workdir)
      step = int(results["checkpoint_step"])
    except (OSError, ValueError, KeyError, TypeError) as e:
      skipped.append((record["name"],
                      f"unreadable {run_dir.results_path(workdir)}: {e}"))
      continue
    config = run_config.load_config(workdir)
    groups.setdefault(group_key(record), []).append({
        "name": record["name"], "workdir": workdir, "config": config,
        "step": step, "results": results,
        "signature": _draw_signature(config, udr_sizes)})

  scorable = []
  for members in groups.values():
    if len(members) < 2:
      skipped.append((members[0]["name"],
                      "no other finished seed of its model and "
                      "hyperparameters to compare with"))
    else:
      scorable.append(members)

  todo, loaded = [], {}
  for members in scorable:
    for item in members:
      found = _read_codes(item["workdir"], item["step"], item["signature"])
      if found is None:
        todo.append(item)
      else:
        loaded[item["name"]] = found
  if todo:
    _encode_runs(todo, udr_sizes, log)
    for item in todo:
      loaded[item["name"]] = _read_codes(item["workdir"], item["step"],
                                         item["signature"])

  pairs = _read_pairs(sweep_dir)
  computed = 0
  scored = {}
  for members in scorable:
    prepared = {}
    scores = np.zeros((len(members), len(members)))
    for i, first in enumerate(members):
      for j, second in enumerate(members):
        if i == j:
          continue
        key = _pair_key(settings, first, second)
        if key not in pairs:
          for item in (first, second):
            if item["name"] not in prepared:
              prepared[item["name"]] = udr_metric.prepare_codes(
                  *loaded[item["name"]], kl_filter_threshold)
          pairs[key], _ = udr_metric.pair_score(
              prepared[first["name"]], prepared[second["name"]],
              correlation_matrix, filter_low_kl)
          computed += 1
        scores[i, j] = pairs[key]
    for k, (item, score) in enumerate(zip(members,
                                          udr_metric.model_scores(scores))):
      scored[item["name"]] = score
      _write_score(item, score, scores[:, k], members, correlation_matrix,
                   json.loads(settings))
  if computed:
    write_json_atomically(os.path.join(sweep_dir, PAIRS_FILE), pairs)
  csv_path = None
  if scored:
    csv_path = aggregate.write_csv(aggregate.collect(sweep_dir),
                                   os.path.join(sweep_dir, "results.csv"))
  return UdrReport(scored=scored, encoded=[t["name"] for t in todo],
                   pairs_computed=computed, skipped=skipped,
                   csv_path=csv_path)


def _write_score(item: dict, score: float, column, members: list[dict],
                 correlation_matrix: str, settings: dict) -> None:
  """Puts the score and its pairs into the run's results.json."""
  results = item["results"]
  section = {
      "score": score, "settings": settings,
      "compared_with": {other["name"]: float(column[i])
                        for i, other in enumerate(members)
                        if other["name"] != item["name"]}}
  key = run_dir.UDR_SCORE_PREFIX + correlation_matrix
  if (results["scores"].get(key) == score and
      results.get(run_dir.UDR_SECTION, {}).get(correlation_matrix) ==
      section):
    return  # Already there: leave the file alone.
  results["scores"][key] = score
  results.setdefault(run_dir.UDR_SECTION, {})[correlation_matrix] = section
  run_dir.write_results(item["workdir"], results)

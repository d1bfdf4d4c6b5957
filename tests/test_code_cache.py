"""Encode-once evaluation: the same draws and scores, fewer encodes; several
models evaluated together."""

import itertools
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import betavae_dsprites
from experiments.configs import factorvae_dsprites
from factorvae_jax import data as data_lib
from factorvae_jax import metrics
from factorvae_jax.data.dsprites_procedural import ProceduralDSprites
from factorvae_jax.data.image_grid import ImageGridData
from factorvae_jax.evaluation import evaluate
from factorvae_jax.metrics.code_cache import CodeCache
from factorvae_jax.metrics.code_cache import IndexedObservations
from factorvae_jax.models import make_networks
from factorvae_jax.training import loop

# Factor 1 is a nuisance (like SmallNORB's instance): drawn per observation.
FULL_SIZES = (4, 2, 5, 3)
LATENT = (0, 2, 3)


def grid_data():
  """Images whose four pixels are the full grid's factor classes * 40."""
  cells = np.array(list(itertools.product(*map(range, FULL_SIZES))))
  images = (cells * 40).astype(np.uint8).reshape(len(cells), 1, 1, 4)
  return ImageGridData(images, ("a", "nuisance", "b", "c"), FULL_SIZES,
                       LATENT, source="tests")


class Counting:
  """A deterministic representation that counts the images it encodes."""

  def __init__(self):
    self.count = 0
    self.weights = np.random.RandomState(0).randn(4, 3)

  def __call__(self, observations):
    self.count += len(observations)
    flat = np.asarray(observations, np.float64).reshape(len(observations), -1)
    return np.tanh(flat @ self.weights)


def test_indexed_observations_make_the_datasets_own_draws():
  for data in (grid_data(), ProceduralDSprites()):
    rs_direct, rs_indexed = (np.random.RandomState(3),
                             np.random.RandomState(3))
    factors, observations = data.sample(40, rs_direct)
    factors_i, indices = IndexedObservations(data).sample(40, rs_indexed)
    np.testing.assert_array_equal(factors, factors_i)
    assert indices.dtype == np.int64 and indices.shape == (40,)
    np.testing.assert_array_equal(data.observations_at(indices),
                                  observations)
    # The random streams end in the same state (nuisance draws included).
    assert rs_direct.randint(2**30) == rs_indexed.randint(2**30)


def test_cached_suite_gives_the_same_scores_with_one_encode_per_image():
  data = grid_data()
  direct, cached = Counting(), Counting()
  kwargs = dict(random_state=5, sizes=metrics.TINY_SIZES, n_jobs=1,
                dci_backend="sklearn")
  plain = metrics.evaluate_representation(data, direct, **kwargs)
  fast = metrics.evaluate_representation(data, cached, cache_codes=True,
                                         **kwargs)
  assert plain.pop("settings/cache_codes") is False
  assert fast.pop("settings/cache_codes") is True
  assert plain == fast
  # 120 distinct images (4 x 2 x 5 x 3 cells) against ~1,500 draws.
  assert direct.count > 1000
  assert cached.count <= data.num_observations == 120


def test_cache_encodes_all_models_at_once_and_checks_its_input():
  data = grid_data()
  calls = []

  def encode_two(observations):
    calls.append(len(observations))
    flat = observations.reshape(len(observations), -1)
    return np.stack([flat, -2 * flat], axis=1)  # [B, 2 models, 4 codes]

  cache = CodeCache(data, encode_two, num_models=2, chunk_size=7)
  indices = np.array([5, 9, 5, 59, 0, 9, 11, 12, 13, 14, 15, 16, 17])
  second = cache.representation_fn(1)(indices)
  np.testing.assert_array_equal(
      second, -2 * data.observations_at(indices).reshape(len(indices), -1))
  assert calls == [7, 4]  # 11 distinct indices, chunks of at most 7.
  first = cache.representation_fn(0)(indices[::-1])
  np.testing.assert_array_equal(first, -second[::-1] / 2)
  assert calls == [7, 4] and cache.num_encoded == 11

  with pytest.raises(ValueError, match=r"\[1, 3, num_codes\]"):
    CodeCache(data, encode_two, num_models=3).codes([0])
  with pytest.raises(ValueError, match="must be in"):
    cache.representation_fn(2)

  class NoIndex:
    has_observation_index = False
  with pytest.raises(ValueError, match="has_observation_index is False"):
    CodeCache(NoIndex(), encode_two)


def test_padding_slots_are_filled_with_observations_not_asked_for_yet():
  data = grid_data()
  calls = []

  def encode_padded(observations):
    calls.append(len(observations))
    return observations.reshape(len(observations), 1, -1)

  cache = CodeCache(data, encode_padded, chunk_size=20, fill_to=8)
  cache.codes([3, 3, 7])  # 2 asked for, 6 fillers.
  assert calls == [8] and cache.num_encoded == 8
  every = np.arange(data.num_observations)
  np.testing.assert_array_equal(
      cache.codes(every[::-1]),
      data.observations_at(every[::-1]).reshape(len(every), -1))
  # The other 112 in chunks of 16 (20 rounded down to a multiple of 8).
  assert calls == [8] + [16] * 7 and cache.num_encoded == 120
  cache.codes(every)
  assert len(calls) == 8


@pytest.mark.slow
def test_models_evaluated_together_equal_models_evaluated_alone():
  config = factorvae_dsprites.get_config("test")
  dataset = data_lib.make_dataset(config.data)
  networks = make_networks(config.model, dataset.observation_shape)
  params = [networks.encoder.init(jax.random.PRNGKey(seed),
                                  jnp.zeros((1, *dataset.observation_shape)))
            for seed in (1, 2)]
  names = ["mig", "sap", "factor_vae", "beta_vae"]
  alone = [evaluate.evaluate_state(config, networks.encoder, p, dataset, 7,
                                   sizes="tiny", metric_names=names)
           for p in params]
  finished = []
  together = evaluate.evaluate_states(
      [config, config], networks.encoder,
      jax.tree.map(lambda *leaves: np.stack(leaves), *params), dataset,
      [7, 7], sizes="tiny", metric_names=names, mode="map",
      on_result=lambda k, results: finished.append(k))
  assert finished == [0, 1]
  for one, both in zip(alone, together):
    assert one["scores"] == both["scores"]
    assert both["settings"]["cache_codes"]
  assert alone[0]["scores"] != alone[1]["scores"]
  # The first model's pass encodes for both; the second's encodes nothing.
  drawn = together[0]["observations_drawn"]
  assert together[1]["observations_drawn"] == drawn
  assert together[0]["observations_encoded"] > 0
  assert together[1]["observations_encoded"] == 0
  assert together[0]["models_encoded_together"] == 2


def _train_briefly(module, workdir):
  config = module.get_config("test")
  with config.unlocked():
    config.num_steps = config.checkpoint_every_steps = 5
    config.image_every_steps = config.log_every_steps = 5
    config.eval_every_steps = 0
    config.final_eval = False
  loop.train_and_evaluate(config, workdir)


@pytest.mark.slow
def test_runs_of_different_models_are_evaluated_together(tmp_path):
  runs = [str(tmp_path / "factor_vae"), str(tmp_path / "beta_vae")]
  _train_briefly(factorvae_dsprites, runs[0])
  _train_briefly(betavae_dsprites, runs[1])
  names = ["mig", "factor_vae"]
  together = evaluate.evaluate_workdirs(runs, sizes="tiny",
                                        metric_names=names)
  for workdir, both in zip(runs, together):
    with open(os.path.join(workdir, "results.json")) as f:
      assert json.load(f)["scores"] == both["scores"]
    alone = evaluate.evaluate_workdir(workdir, sizes="tiny",
                                      metric_names=names)
    assert alone["scores"] == both["scores"]
  assert [r["model"]["name"] for r in together] == ["factor_vae", "beta_vae"]
  assert together[1]["observations_encoded"] == 0

  other = str(tmp_path / "wider")
  shutil.copytree(runs[1], other)
  with open(os.path.join(other, "config.json")) as f:
    config = json.load(f)
  config["model"]["latent_dim"] += 1
  with open(os.path.join(other, "config.json"), "w") as f:
    json.dump(config, f)
  with pytest.raises(ValueError, match="encoder differs"):
    evaluate.evaluate_workdirs([runs[0], other], sizes="tiny")
  with pytest.raises(ValueError, match="distinct workdirs"):
    evaluate.evaluate_workdirs([runs[0], runs[0]], sizes="tiny")

"""The three tables: objectives, metrics and datasets, and what reads them.

Each is a dict of frozen specs with one lookup function whose error names the
bad value, the allowed ones and the fix. Training's final evaluation runs,
by default, every metric of the table that applies to the dataset.
"""

import os
import types

from absl import flags
from ml_collections import config_flags
import numpy as np
import pytest

from experiments.configs import factorvae_dsprites
from factorvae_jax import data as data_lib
from factorvae_jax import metrics
from factorvae_jax import objectives
from factorvae_jax.builder import run_config
from factorvae_jax.metrics import registry
from factorvae_jax.utils import errors
from tests import test_metrics

_CONFIG_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                            "experiments", "configs", "factorvae_dsprites.py")


def _extra_metric(**kwargs):
  """A cheap pool metric, as a new table entry would be."""
  def run(inputs):
    return {"code_mean": float(np.mean(inputs.pool[0]))}
  return metrics.MetricSpec(run, reads_pool=True, sizes={
      p: {"num_train": 50} for p in metrics.SIZE_PRESET_NAMES}, **kwargs)


# ---------------------------------------------------------------------------
# Lookups
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("lookup, table, fix", [
    (objectives.get_objective, objectives.OBJECTIVES, "OBJECTIVES"),
    (metrics.get_metric, metrics.METRICS, "METRICS"),
    (data_lib.get_dataset_spec, data_lib.DATASETS, "DATASETS"),
])
def test_each_lookup_names_the_bad_value_the_allowed_ones_and_the_fix(
    lookup, table, fix):
  with pytest.raises(errors.InvalidValueError) as info:
    lookup("nope")
  message = str(info.value)
  assert "'nope'" in message and fix in message
  assert all(repr(name) in message for name in table)
  assert lookup(next(iter(table))) is next(iter(table.values()))


def test_make_dataset_builds_from_the_table_and_checks_sources():
  dataset = data_lib.make_dataset(types.SimpleNamespace(name="dsprites"))
  assert isinstance(dataset, data_lib.ProceduralDSprites)
  with pytest.raises(errors.InvalidValueError, match=r"not a known dataset"):
    data_lib.make_dataset(types.SimpleNamespace(name="nope"))
  with pytest.raises(errors.InvalidValueError,
                     match=r"'h5' is not available for dsprites.*'npz'"):
    data_lib.make_dataset(types.SimpleNamespace(name="dsprites", source="h5"))
  for name, spec in data_lib.DATASETS.items():
    assert spec.sources and callable(spec.build), name


def test_metric_names_reads_the_table_and_the_dataset():
  assert metrics.metric_names() == metrics.ALL_METRICS
  assert "udr" not in metrics.metric_names()
  one_factor = types.SimpleNamespace(num_factors=1)
  needs_two = [m for m, spec in metrics.METRICS.items()
               if spec.min_factors > 1]
  assert set(needs_two) == {"beta_vae", "factor_vae", "fairness"}
  assert metrics.metric_names(one_factor) == tuple(
      m for m in metrics.ALL_METRICS if m not in needs_two)
  with pytest.raises(errors.InvalidValueError,
                     match=r"\['beta_vae'\] need at least \[2\] factors"):
    metrics.check_metric_names(["mig", "beta_vae"], "config.x", one_factor)


# ---------------------------------------------------------------------------
# Training's final evaluation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [None, "quick"])
def test_default_final_metrics_are_the_applicable_ones(variant):
  config = factorvae_dsprites.get_config(variant)
  assert config.final_eval_metrics is None
  dataset = data_lib.make_dataset(config.data)
  assert metrics.check_metric_names(
      config.final_eval_metrics, data=dataset) == metrics.metric_names(dataset)
  # What the configs ran before the table decided it.
  assert metrics.metric_names(dataset) == (
      "mig", "dci", "sap", "modularity", "unsupervised", "beta_vae",
      "factor_vae", "irs", "downstream_task_logistic_regression",
      "downstream_task_boosted_trees", "fairness")


def test_test_variant_leaves_out_metrics_not_in_smoke_runs():
  assert factorvae_dsprites.get_config("test").final_eval_metrics == (
      "mig", "dci", "sap", "modularity", "unsupervised", "beta_vae",
      "factor_vae", "irs")


def test_a_metric_added_to_the_table_joins_the_default_final_set(
    monkeypatch):
  monkeypatch.setitem(registry.METRICS, "code_mean", _extra_metric())
  dataset = data_lib.make_dataset(factorvae_dsprites.get_config().data)
  assert metrics.check_metric_names(None, data=dataset)[-1] == "code_mean"
  assert "code_mean" in factorvae_dsprites.get_config("test").final_eval_metrics
  # One that needs more factors than the dataset has stays out.
  monkeypatch.setitem(registry.METRICS, "code_mean",
                      _extra_metric(min_factors=99))
  assert "code_mean" not in metrics.check_metric_names(None, data=dataset)


def test_the_suite_runs_every_applicable_metric_by_default(monkeypatch):
  # A two-entry table keeps the run to a fraction of a second.
  monkeypatch.setattr(registry, "METRICS", {
      "mig": registry.METRICS["mig"], "code_mean": _extra_metric(),
      "needs_many": _extra_metric(min_factors=99)})
  results = metrics.evaluate_representation(
      test_metrics.ToyData(), test_metrics.noisy_rep, random_state=0,
      sizes={"mig": {"num_train": 50}}, n_jobs=1)
  assert "mig" in results and "code_mean" in results
  assert "settings/needs_many/num_train" not in results


# ---------------------------------------------------------------------------
# Early checks of the config
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["final_eval_metrics",
                                   "periodic_eval_metrics"])
def test_validate_refuses_a_bad_metric_name_before_training(field):
  config = factorvae_dsprites.get_config("test")
  config[field] = ("mig", "dsc")
  with pytest.raises(errors.InvalidValueError,
                     match=rf"config\.{field} .*'dsc'.*--config\."):
    run_config.validate(config, 1)


def _parse_flags(*overrides):
  """The config as experiments/run.py parses its command line."""
  argv = ["prog", f"--config={_CONFIG_FILE}", *overrides]
  flag_values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file(
      "config", None, "config", flag_values=flag_values, lock_config=True,
      sys_argv=argv)
  flag_values(argv)
  return holder.value


def test_command_line_overrides_of_the_metric_names():
  assert _parse_flags().final_eval_metrics is None
  config = _parse_flags("--config.final_eval_metrics=dci,mig")
  run_config.validate(config, 1)
  assert metrics.check_metric_names(config.final_eval_metrics) == ("mig",
                                                                   "dci")
  config = _parse_flags("--config.final_eval_metrics=mig,dsc")
  with pytest.raises(errors.InvalidValueError, match=r"'dsc'"):
    run_config.validate(config, 1)

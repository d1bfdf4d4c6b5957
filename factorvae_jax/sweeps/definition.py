"""Sweep definitions: base configs and overrides, expanded into named runs.

A sweep file (``experiments/sweeps/<name>.py``) has a ``get_sweep(arg)`` that
returns a :class:`Sweep`: one :class:`Grid` per base config (usually one per
model), each with the list of overrides that make its runs. An override maps
dotted config keys to values, e.g. ``{"model.gamma": 20.0, "seed": 3}``.

Expanding a sweep gives :class:`Run` objects in a fixed order (grid by grid,
override by override). A run's index is its position in that order and its
name is its workdir under the sweep dir, built from the overrides so it reads
as what the run is::

  factor_vae/gamma=20/seed=3
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import itertools
import os
import re
from typing import Any, Mapping, Optional, Sequence

import ml_collections

from factorvae_jax.builder import run_config
from factorvae_jax.utils import errors
from factorvae_jax.utils import run_dir

SEED_KEY = "seed"
_MODEL_PREFIX = "model."
# Characters allowed in a run name part as is; others become '-'.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]")


@dataclasses.dataclass(frozen=True)
class Grid:
  """A base config and the overrides that turn it into runs.

  Attributes:
    config: the base experiment config (see ``experiments/configs``).
    overrides: one mapping per run, dotted config key -> value.
  """
  config: ml_collections.ConfigDict
  overrides: Sequence[Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class Sweep:
  """What ``get_sweep`` returns.

  Attributes:
    name: short name, used in logs.
    grids: the sweep's grids, in run order.
    description: one line on what the sweep reproduces.
  """
  name: str
  grids: Sequence[Grid]
  description: str = ""


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of a sweep.

  Attributes:
    index: position in the expanded sweep (what task sharding uses).
    name: workdir relative to the sweep dir, e.g. 'beta_vae/beta=4/seed=0'.
    model: ``config.model.name``.
    hparams: the run's overrides other than the seed, short keys ('gamma'
      for 'model.gamma').
    seed: ``config.seed``.
    config: the full config of the run (locked).
  """
  index: int
  name: str
  model: str
  hparams: Mapping[str, Any]
  seed: int
  config: ml_collections.ConfigDict

  def workdir(self, sweep_dir: str) -> str:
    """The run's workdir: exactly where ``experiments.run`` would write."""
    return os.path.join(sweep_dir, *self.name.split("/"))


def product(config: ml_collections.ConfigDict,
            hparams: Mapping[str, Sequence[Any]],
            seeds: Sequence[int]) -> Grid:
  """A grid of every combination of model hyperparameter values and seeds.

  Args:
    config: the base config.
    hparams: ``config.model`` field -> values, e.g. ``{"gamma": [10, 20]}``.
    seeds: the seeds; each combination of values runs once per seed.

  Returns:
    A :class:`Grid`, values varying slowest in the order given, seeds fastest.
  """
  keys = [_MODEL_PREFIX + k for k in hparams]
  overrides = []
  for values in itertools.product(*hparams.values()):
    for seed in seeds:
      overrides.append({**dict(zip(keys, values)), SEED_KEY: int(seed)})
  return Grid(config=config, overrides=overrides)


def parse_arg(arg: Optional[str], default_seeds: int,
              variants: Sequence[str] = ("full", "quick", "test"),
              test_seeds: int = 2) -> tuple[str, int]:
  """Reads a sweep file's argument: ``[variant][,seeds=N]``.

  Examples: ``None`` -> ('full', default_seeds); ``'test'`` -> ('test',
  test_seeds); ``'seeds=5'``; ``'quick,seeds=3'``.

  Args:
    arg: the text after ':' in ``--sweep=<file>:<arg>``.
    default_seeds: seed count when the argument does not set one.
    variants: the allowed config variants.
    test_seeds: seed count of the 'test' variant when the argument does not
      set one (the test suite runs that sweep end to end).

  Returns:
    (config variant, number of seeds).

  Raises:
    ValueError: naming the bad part and the allowed form.
  """
  variant, num_seeds = "full", None
  for part in filter(None, (arg or "").split(",")):
    if part.startswith("seeds="):
      try:
        num_seeds = int(part[len("seeds="):])
      except ValueError:
        num_seeds = 0
      if num_seeds <= 0:
        raise errors.InvalidValueError(
            f"sweep argument {part!r}: the seed count must be a positive "
            f"integer, e.g. --sweep=<file>:seeds=5.")
    elif part in variants:
      variant = part
    else:
      raise errors.InvalidValueError(
          f"sweep argument {part!r} is unknown; use [variant][,seeds=N] with "
          f"variant one of {tuple(variants)}, e.g. --sweep=<file>:test or "
          f"--sweep=<file>:quick,seeds=3.")
  if num_seeds is None:
    num_seeds = test_seeds if variant == "test" else default_seeds
  return variant, num_seeds


def parse_options(arg: Optional[str], names: Sequence[str]
                  ) -> tuple[Optional[str], dict[str, str]]:
  """Takes ``name=value`` parts for ``names`` out of a sweep file's argument.

  Example: ``parse_options('quick,seeds=3,dataset=shapes3d', ['dataset'])``
  -> ``('quick,seeds=3', {'dataset': 'shapes3d'})``; the rest goes to
  :func:`parse_arg`.

  Args:
    arg: the text after ':' in ``--sweep=<file>:<arg>``.
    names: the options the sweep file takes.

  Returns:
    (the argument without those parts or None, {name: value}).

  Raises:
    ValueError: an option is given twice or without a value.
  """
  rest, options = [], {}
  for part in filter(None, (arg or "").split(",")):
    name, sep, value = part.partition("=")
    if sep and name in names:
      if name in options or not value:
        raise errors.InvalidValueError(
            f"sweep argument {part!r}: give {name}=<value> "
            f"once, e.g. --sweep=<file>:quick,{name}=...")
      options[name] = value
    else:
      rest.append(part)
  return (",".join(rest) or None), options


def load_sweep(spec: str) -> Sweep:
  """Imports a sweep file and calls its ``get_sweep``.

  Args:
    spec: ``<path to .py file>[:<argument>]``, e.g.
      ``experiments/sweeps/factorvae_study.py:test``.

  Returns:
    The file's :class:`Sweep`.

  Raises:
    FileNotFoundError: the file does not exist.
    ValueError: the file has no ``get_sweep`` or it returns something else.
  """
  path, sep, arg = spec.partition(".py:")
  path = path + ".py" if sep else spec
  if not os.path.isfile(path):
    raise errors.MissingFileError(
        f"sweep file {path!r} does not exist; pass --sweep=<file.py>[:arg], "
        f"e.g. --sweep=experiments/sweeps/factorvae_study.py:test.")
  module_name = "sweep_" + re.sub(r"\W", "_", os.path.abspath(path))
  module_spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_sweep"):
    raise errors.InvalidValueError(
        f"{path} has no get_sweep(arg) function; see "
        f"experiments/sweeps/factorvae_study.py for the form.")
  sweep = module.get_sweep(arg or None)
  if not isinstance(sweep, Sweep):
    raise errors.InvalidValueError(
        f"{path}: get_sweep returned a {type(sweep).__name__}; it must return "
        f"factorvae_jax.sweeps.Sweep(name, grids=[Grid(config, overrides)]).")
  return sweep


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """A copy of ``config`` with dotted-key overrides set (locked again).

  Raises:
    ValueError: an override names a key the config does not have.
  """
  config = copy.deepcopy(config)
  with config.unlocked():
    for key, value in overrides.items():
      node = config
      *parents, leaf = key.split(".")
      for part in parents:
        if part not in node:
          raise errors.InvalidValueError(
              f"sweep override {key!r}: the config has no "
              f"{part!r}; keys at that level: {sorted(node)}.")
        node = node[part]
      if leaf not in node:
        raise errors.InvalidValueError(
            f"sweep override {key!r}: the config has no {leaf!r}; keys at "
            f"that level: {sorted(node)}. Fix the key in the sweep file.")
      node[leaf] = value
  config.lock()
  return config


def _format_value(value: Any) -> str:
  if isinstance(value, float) and value.is_integer():
    value = int(value)
  if isinstance(value, (list, tuple)):
    return "-".join(_format_value(v) for v in value)
  return _UNSAFE.sub("-", str(value))


def _short_key(key: str) -> str:
  return key[len(_MODEL_PREFIX):] if key.startswith(_MODEL_PREFIX) else key


def expand(sweep: Sweep) -> list[Run]:
  """The runs of ``sweep`` in their fixed order.

  Raises:
    ValueError: two runs get the same name (the sweep repeats an override),
      or an override names a missing config key.
  """
  runs, names = [], {}
  for grid in sweep.grids:
    for overrides in grid.overrides:
      config = apply_overrides(grid.config, overrides)
      if not config.final_eval:
        raise errors.InvalidValueError(
            f"sweep {sweep.name!r}: {config.model.name} has "
            f"config.final_eval=False, but a sweep's run is done when its "
            f"final evaluation writes {run_dir.RESULTS}; set final_eval=True "
            f"(final_eval_sizes='cheap' or 'tiny' makes it quick).")
      hparams = {_short_key(k): v for k, v in overrides.items()
                 if k not in (SEED_KEY, "model.name")}
      hp_part = "_".join(f"{k}={_format_value(v)}"
                         for k, v in hparams.items()) or "default"
      name = f"{config.model.name}/{hp_part}/seed={config.seed}"
      if name in names:
        raise errors.InvalidValueError(
            f"sweep {sweep.name!r}: runs {names[name]} and {len(runs)} are "
            f"both {name!r} (same model, overrides and seed); remove the "
            f"repeated override from the sweep file.")
      names[name] = len(runs)
      runs.append(Run(index=len(runs), name=name, model=config.model.name,
                      hparams=hparams, seed=int(config.seed), config=config))
  return runs


def run_record(run: Run) -> dict:
  """What the sweep snapshot stores about ``run`` (JSON-serialisable)."""
  return {"index": run.index, "name": run.name, "model": run.model,
          "hparams": dict(run.hparams), "seed": run.seed,
          "config": run_config.config_to_dict(run.config)}

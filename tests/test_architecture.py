"""The package's layering: imports go one way, from experiments/ down.

    experiments/                               (entry points, configs)
    sweeps/  reporting/                        (many runs; reading runs back)
    training/  evaluation/                     (side by side)
    builder/                                   (config -> networks, state)
    objectives/                                (may use models, monitoring)
    data/ models/ metrics/ monitoring/ visualisation/
    parallel, utils/                           (helpers for every layer)

A module may import only from its own package and the packages this table
allows; the test reads every module's imports (top-level and local ones).
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "factorvae_jax"

_BASE = {"utils", "parallel"}
_BOTTOM = {"data", "models", "metrics", "monitoring", "visualisation"}
ALLOWED = {
    "utils": set(),
    "parallel": set(),
    "data": _BASE,
    "models": _BASE,
    "metrics": _BASE | {"data"},
    "monitoring": _BASE,
    "visualisation": _BASE,
    "objectives": _BASE | {"models", "monitoring"},
    "builder": _BASE | _BOTTOM | {"objectives"},
    "training": _BASE | _BOTTOM | {"objectives", "builder", "evaluation"},
    "evaluation": _BASE | _BOTTOM | {"objectives", "builder"},
    "sweeps": _BASE | _BOTTOM | {"objectives", "builder", "training",
                                 "evaluation"},
    "reporting": _BASE | _BOTTOM | {"objectives", "builder", "training",
                                    "evaluation", "sweeps"},
}


def _package_of(path: pathlib.Path) -> str:
  rel = path.relative_to(ROOT)
  return rel.parts[0].removesuffix(".py")


def _imported_packages(path: pathlib.Path):
  tree = ast.parse(path.read_text())
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names = [node.module]
    for name in names:
      parts = name.split(".")
      if parts[0] == "factorvae_jax" and len(parts) > 1:
        yield parts[1], node.lineno


def _modules():
  return sorted(p for p in ROOT.rglob("*.py") if p.parent != ROOT or
                p.name != "__init__.py")


def test_every_package_has_a_layer():
  packages = {_package_of(p) for p in _modules()}
  assert packages <= set(ALLOWED), packages - set(ALLOWED)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(
    p.relative_to(ROOT)))
def test_imports_go_down_the_layers(path):
  own = _package_of(path)
  for package, line in _imported_packages(path):
    if package == own:
      continue
    assert package in ALLOWED[own], (
        f"{path.relative_to(ROOT)}:{line} imports factorvae_jax.{package}, "
        f"but {own}/ may only import {sorted(ALLOWED[own])}")


def test_training_and_evaluation_do_not_import_each_other_in_a_cycle():
  evaluation = [p for p in _modules() if _package_of(p) == "evaluation"]
  for path in evaluation:
    assert "training" not in {pkg for pkg, _ in _imported_packages(path)}

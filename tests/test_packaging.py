"""Every import is declared, and constraints.txt pins what the ranges allow.

The library's third-party imports (``factorvae_jax/``, ``experiments/``) must
come from ``requirements.txt``; the tests' and notebooks' from
``requirements-test.txt`` (which includes the rest). ``setup.cfg`` declares
the same sets, and ``constraints.txt`` pins a version of every requirement
inside its range.
"""

import ast
import configparser
import importlib.metadata
import json
import pathlib
import re
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIRST_PARTY = {"factorvae_jax", "experiments", "tests", "benchmarks"}


def _requirements(name):
  """{canonical name: Requirement} of a requirements file, -r followed."""
  out = {}
  for line in (ROOT / name).read_text().splitlines():
    line = line.split("#", 1)[0].strip()
    if not line:
      continue
    if line.startswith("-r "):
      out.update(_requirements(line[3:].strip()))
      continue
    req = Requirement(line)
    out[canonicalize_name(req.name)] = req
  return out


def _top_level_imports(paths):
  """Top-level module names imported anywhere in ``paths`` (and notebooks)."""
  names = set()
  for path in paths:
    if path.suffix == ".ipynb":
      cells = json.loads(path.read_text())["cells"]
      sources = ["".join(c["source"]) for c in cells
                 if c["cell_type"] == "code"]
      sources = ["\n".join(l for l in s.splitlines()
                           if not l.lstrip().startswith(("%", "!")))
                 for s in sources]
    else:
      sources = [path.read_text()]
    for source in sources:
      for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
          names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
          names.add(node.module.split(".")[0])
  return names - FIRST_PARTY - set(sys.stdlib_module_names)


def _distributions(modules):
  """{module: canonical distribution names providing it}."""
  providers = importlib.metadata.packages_distributions()
  return {m: {canonicalize_name(d) for d in providers.get(m, [])}
          for m in modules}


def _undeclared(modules, declared):
  missing = {}
  for module, dists in _distributions(modules).items():
    if not dists & declared:
      missing[module] = sorted(dists) or "not installed"
  return missing


def _python_files(*folders):
  return [p for folder in folders for p in (ROOT / folder).rglob("*.py")]


def test_library_imports_are_in_requirements_txt():
  declared = set(_requirements("requirements.txt"))
  modules = _top_level_imports(_python_files("factorvae_jax", "experiments"))
  assert {"jax", "flax", "optax", "sklearn", "scipy", "joblib"} <= modules
  assert _undeclared(modules, declared) == {}


def test_test_and_notebook_imports_are_in_requirements_test_txt():
  declared = set(_requirements("requirements-test.txt"))
  # IPython comes with ipykernel, which the notebooks' requirements name.
  declared |= {"ipython"}
  paths = _python_files("tests", "benchmarks") + sorted(
      (ROOT / "notebooks").glob("*.ipynb"))
  modules = _top_level_imports(paths) - {"torch"}  # Benchmarks' anchor only.
  assert _undeclared(modules, declared) == {}


def test_the_library_does_not_need_jupyter_or_pytest():
  library = set(_requirements("requirements.txt"))
  assert not library & {"pytest", "ipykernel", "nbclient", "nbformat",
                        "jupyter", "notebook"}


def test_setup_cfg_declares_the_same_sets():
  parser = configparser.ConfigParser()
  parser.read(ROOT / "setup.cfg")

  def names(text):
    return {canonicalize_name(Requirement(l).name)
            for l in text.strip().splitlines() if l.strip()}

  assert names(parser["options"]["install_requires"]) == set(
      _requirements("requirements.txt"))
  extras = parser["options.extras_require"]
  library = set(_requirements("requirements.txt"))
  assert names(extras["notebooks"]) == set(
      _requirements("requirements-notebooks.txt")) - library
  assert names(extras["test"]) == set(
      _requirements("requirements-test.txt")) - library


@pytest.mark.parametrize("name", ["requirements-test.txt"])
def test_constraints_pin_every_requirement_inside_its_range(name):
  pins = {}
  for line in (ROOT / "constraints.txt").read_text().splitlines():
    line = line.split("#", 1)[0].strip()
    if line:
      match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==(\S+)", line)
      assert match, f"constraints.txt: {line!r} is not name==version"
      pins[canonicalize_name(match.group(1))] = match.group(2)
  for key, req in _requirements(name).items():
    assert key in pins, f"constraints.txt does not pin {key}"
    assert req.specifier.contains(pins[key], prereleases=True), (
        f"constraints.txt pins {key}=={pins[key]}, outside {req}")

"""The explicit package list in pyproject.toml must cover every package directory on disk."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_on_disk() -> set[str]:
    mapping = _config()["package-dir"]
    found: set[str] = set()
    for prefix, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            found.add(".".join([prefix, *rel.parts]) if rel.parts else prefix)
    return found


def test_every_package_on_disk_is_listed() -> None:
    listed = set(_config()["packages"])
    missing = _packages_on_disk() - listed
    assert not missing, f"packages missing from pyproject [tool.setuptools] packages: {sorted(missing)}"


def test_every_listed_package_exists_and_imports() -> None:
    for name in _config()["packages"]:
        importlib.import_module(name)


def test_subpackages_resolve_inside_one_namespace() -> None:
    import factorgym.agents
    import factorgym.envs
    import factorgym.generators

    for mod, folder in ((factorgym.envs, "envs"), (factorgym.agents, "agents"), (factorgym.generators, "generators")):
        assert Path(mod.__file__).parent == ROOT / folder


def test_py_typed_shipped() -> None:
    assert (ROOT / "src/factorgym/py.typed").is_file()
    assert "py.typed" in _config()["package-data"]["factorgym"]


def test_envs_import_does_not_import_torch() -> None:
    import subprocess

    code = "import sys, factorgym.envs, factorgym.generators, factorgym.agents; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

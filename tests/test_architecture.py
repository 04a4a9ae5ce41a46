"""The floors of the package (core <- generators <- envs <- agents <- app), checked with
import-linter's contracts in pyproject.toml, and shown to fail on a forbidden import."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from lint_imports import lint  # noqa: E402

pytest.importorskip("importlinter")


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_contracts_are_kept() -> None:
    res = lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(_contracts())} kept, 0 broken" in res.stdout


def test_core_floor_lists_every_core_module() -> None:
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    core = {m.strip() for m in layers[-1].split(":")}
    on_disk = {
        f"factorgym.{p.stem}"
        for p in (ROOT / "src" / "factorgym").iterdir()
        if p.name != "__init__.py" and p.name != "app" and (p.suffix == ".py" or (p / "__init__.py").is_file())
    }
    assert core == on_disk


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("src/factorgym/costs.py", "from factorgym.agents import protocol", "Floors"),
        ("generators/base.py", "import factorgym.envs.markets", "Generators simulate markets"),
        ("envs/markets/base.py", "from factorgym.app import specs", "Environments never import"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    for name in ("src", "generators", "envs", "agents"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # added by the test\n")
    res = lint(tmp_path)
    assert res.returncode != 0
    broken = [ln for ln in res.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(ln.startswith(contract) for ln in broken), res.stdout

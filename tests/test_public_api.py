"""The public API: what a script imports from ``factorgym`` and its subpackages."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import factorgym

SUBPACKAGES = ("factorgym.generators", "factorgym.envs", "factorgym.agents", "factorgym.metrics", "factorgym.io")


@pytest.mark.parametrize("name", factorgym.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(factorgym, name) is not None


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_subpackage_exports_resolve(package: str) -> None:
    mod = importlib.import_module(package)
    assert mod.__all__, package
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{package}.{name}"


def test_a_script_needs_no_module_paths() -> None:
    for name in ("CostModel", "Constraints", "read_panel", "fit_run", "load_run", "load_generator",
                 "NeuralFactors", "MeanVariance", "MeanCVaR", "EqualWeight", "PortfolioEnv",
                 "backtest", "agent_from_spec", "train_agent"):  # fmt: skip
        assert name in factorgym.__all__, name


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        factorgym.nope  # noqa: B018


def test_importing_factorgym_stays_light() -> None:
    code = (
        "import sys, factorgym; "
        "heavy = [m for m in ('torch', 'stable_baselines3', 'cvxpy', 'factorgym.app', 'factorgym.agents') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_env_internals_are_not_exported() -> None:
    envs = importlib.import_module("factorgym.envs")
    for internal in ("PortfolioEngine", "settle_day", "LookaheadWrapper"):
        assert internal not in envs.__all__


def test_lazy_names_are_all_listed() -> None:
    assert set(factorgym._LAZY) <= set(factorgym.__all__)

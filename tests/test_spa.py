"""Hansen's SPA test and StepM of "does any agent beat 1/N" in the backtest statistics (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

from factorgym.app.backtest.statistics import (
    INFERENCE_COLUMNS,
    real_path_inference,
    superior_to_reference,
)
from factorgym.errors import DataValidationError

T = 750


def _market(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0003, 0.01, T)


def test_spa_finds_a_clear_winner() -> None:
    rng = np.random.default_rng(1)
    ew = _market(0)
    noise = ew[:, None] + rng.normal(0, 0.003, (T, 5))
    winner = ew + 0.0015 + rng.normal(0, 0.003, T)  # ~38%/yr more, t ~ 8
    p, beats = superior_to_reference(np.column_stack([noise, winner]), ew, reps=400, seed=3)
    assert p < 0.01
    assert beats[-1] and not beats[:-1].any()


def test_spa_is_not_fooled_by_noise_around_the_benchmark() -> None:
    rng = np.random.default_rng(2)
    ew = _market(0)
    e = rng.normal(0, 0.003, (T, 8))
    x = ew[:, None] + e - e.mean(axis=0)  # noise with no edge at all in this sample
    p, beats = superior_to_reference(x, ew, reps=400, seed=3)
    assert p > 0.2 and not beats.any()


def test_step_down_matches_arch_stepm() -> None:
    """The step-down is arch's StepM on the same draws (where arch's own loop works)."""
    import zlib

    from arch.bootstrap import SPA, StepM

    rng = np.random.default_rng(6)
    ew = _market(4)
    edge = np.array([0.0, 0.0004, 0.0, 0.0015, 0.0008, -0.0005])
    x = ew[:, None] + edge + rng.normal(0, 0.004, (T, edge.size))
    p, beats = superior_to_reference(x, ew, reps=300, seed=11)

    def gen() -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([11, zlib.crc32(b"superior predictive ability")]))

    ref = StepM(-ew, -x, size=0.10, reps=300, seed=gen())
    ref.compute()
    np.testing.assert_array_equal(np.flatnonzero(beats), sorted(ref.superior_models))
    assert 0 < beats.sum() < edge.size
    spa = SPA(-ew, -x, reps=300, seed=gen())
    spa.compute()
    assert p == spa.pvalues["consistent"]


def test_same_seed_same_pvalue() -> None:
    rng = np.random.default_rng(4)
    ew = _market(1)
    x = ew[:, None] + 0.0002 + rng.normal(0, 0.004, (T, 4))
    a = superior_to_reference(x, ew, reps=200, seed=7)
    b = superior_to_reference(x, ew, reps=200, seed=7)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    c = superior_to_reference(x, ew, reps=200, seed=8)
    assert 0.0 <= c[0] <= 1.0


def test_twins_of_the_reference_are_not_tested_and_bad_input_is_named() -> None:
    ew = _market(2)
    p, beats = superior_to_reference(np.column_stack([ew, ew]), ew, reps=50)
    assert np.isnan(p) and not beats.any()
    with pytest.raises(DataValidationError, match="SPA needs"):
        superior_to_reference(np.ones((5, 2)), np.ones(4))
    with pytest.raises(DataValidationError, match="reps"):
        superior_to_reference(np.ones((5, 2)), np.zeros(5), reps=0)


def test_real_path_inference_carries_one_spa_pvalue_per_run() -> None:
    rng = np.random.default_rng(5)
    ew = _market(3)
    e = rng.normal(0, 0.003, T)
    returns = {
        "ew": ew,
        "good": ew + 0.0015 + rng.normal(0, 0.003, T),
        "meh": ew + e - e.mean(),  # no edge at all
        "index": _market(9),
    }
    out = real_path_inference(returns, ["ew", "good", "meh"], "ew", mcs_reps=300, seed=1)
    assert {"spa_pvalue", "beats_ew_stepm_90"} <= set(out.columns) <= set(INFERENCE_COLUMNS)
    p = out.loc[["ew", "good", "meh"], "spa_pvalue"]
    assert p.nunique() == 1 and p.iloc[0] < 0.01  # one value per run
    assert np.isnan(out.loc["index", "spa_pvalue"]) and np.isnan(out.loc["ew", "beats_ew_stepm_90"])
    assert out.loc["good", "beats_ew_stepm_90"] == 1.0 and out.loc["meh", "beats_ew_stepm_90"] == 0.0
    again = real_path_inference(returns, ["ew", "good", "meh"], "ew", mcs_reps=300, seed=1)
    assert again.equals(out)
    none = real_path_inference(returns, ["ew", "good", "meh"], "ew", mcs_reps=0)
    assert none["spa_pvalue"].isna().all()

"""Own scenario draws re-used when an agent replays a day from the same stream (issue 12:
the diffusion-driven agents' cost multiples and lags), with bit-identical results."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from factorgym import Split, synthetic_factor_panel  # noqa: E402
from factorgym.agents.estimators.draw_memo import ScenarioMemo, generator_digest, process_memo  # noqa: E402
from factorgym.agents.estimators.generator import GeneratorSource  # noqa: E402
from factorgym.agents.optimizers import MeanCVaR, MeanVariance  # noqa: E402
from factorgym.costs import CostModel  # noqa: E402
from factorgym.features import FeatureConfig  # noqa: E402
from factorgym.generators.base import load_generator  # noqa: E402
from factorgym.generators.diffusion import DiffusionConfig, DiffusionGenerator  # noqa: E402

TINY = {
    "features": FeatureConfig(vol_windows=(5, 10), mom_windows=(5,)), "stat_window": 10, "scale_window": 10,
    "d_model": 16, "n_layers": 1, "n_heads": 2, "mlp_ratio": 2.0, "t_freq_dim": 16, "n_diffusion_steps": 20,
    "sample_steps": 4, "batch_days": 16, "max_steps": 6, "eval_every": 6, "checkpoint_every": 6, "warmup_steps": 2,
    "n_moment_samples": 50, "num_threads": 1,
}  # fmt: skip
N_SCEN = 40


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    panel = synthetic_factor_panel(T=260, N=5, F=2, seed=4, n_is_samples=8).panel
    split = Split.by_fraction(panel.dates, 0.6, 0.2)
    gen = DiffusionGenerator(DiffusionConfig(**TINY)).fit(panel, split, progress=False, rng=np.random.default_rng(0))
    path = tmp_path_factory.mktemp("diff") / "gen.fgz"
    gen.save(path)
    R = np.asarray(panel.filled(0.0))  # noqa: N806
    W = gen.min_history  # noqa: N806
    windows = [R[t - W + 1 : t + 1] for t in range(W + 20, W + 32)]
    return gen, path, panel, split, windows


def _replay(agent, windows, seed=0, drifted=None):
    """The agent's decisions on consecutive days from a fresh stream (weights of each day)."""
    agent.reset(seed)
    n = windows[0].shape[1]
    wd = np.full(n, 1.0 / n) if drifted is None else drifted
    out = []
    for w in windows:
        d = agent.optimize(w, wd)
        out.append(d.weights)
        wd = 0.5 * wd + 0.5 * d.weights
    return np.array(out)


def test_replayed_agent_reuses_its_draws_and_decides_identically(setup) -> None:
    gen, _, _, _, windows = setup
    memo = ScenarioMemo()
    cost = CostModel()
    fresh = _replay(MeanCVaR(GeneratorSource(gen, N_SCEN, reuse_draws=False), cost_model=cost), windows)
    first = _replay(MeanCVaR(GeneratorSource(gen, N_SCEN, memo=memo), cost_model=cost), windows)
    assert (memo.hits, memo.misses) == (0, len(windows))
    # a replay from the same seed at 5x the costs (other weights, so other drifted weights)
    agent = MeanCVaR(GeneratorSource(gen, N_SCEN, memo=memo), cost_model=CostModel(buy=5 * 7.5e-4, sell=5 * 12.5e-4))
    again = _replay(agent, windows)
    assert (memo.hits, memo.misses) == (len(windows), len(windows))
    five = _replay(MeanCVaR(GeneratorSource(gen, N_SCEN, reuse_draws=False), cost_model=agent.cost_model), windows)
    assert np.array_equal(first, fresh)
    assert np.array_equal(again, five)
    assert not np.array_equal(first, again)  # the weights differ; the draws did not


def test_draws_are_shared_by_loads_of_one_artifact_and_by_mv_and_cvar(setup) -> None:
    gen, path, _, _, windows = setup
    a, b = load_generator(path), load_generator(path)
    assert a is not b and generator_digest(a) == generator_digest(b)
    memo = ScenarioMemo()
    _replay(MeanVariance(GeneratorSource(a, N_SCEN, memo=memo)), windows, seed=3)
    cvar = _replay(MeanCVaR(GeneratorSource(b, N_SCEN, memo=memo)), windows, seed=3)
    assert (memo.hits, memo.misses) == (len(windows), len(windows))
    assert np.array_equal(cvar, _replay(MeanCVaR(GeneratorSource(b, N_SCEN, reuse_draws=False)), windows, seed=3))
    _replay(MeanCVaR(GeneratorSource(b, N_SCEN, memo=memo)), windows, seed=4)  # another seed: other draws
    assert memo.misses == 2 * len(windows)


def test_a_hit_leaves_the_stream_where_a_fresh_draw_would() -> None:
    memo, calls = ScenarioMemo(), []

    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        calls.append(n)
        return rng.standard_normal((n, 3)) + rng.integers(0, 5)

    gen, w = object.__new__(type("G", (), {})), np.zeros((4, 3))
    r1, r2 = np.random.default_rng(7), np.random.default_rng(7)
    x1 = memo.draw(gen, w, r1, 10, sample)
    x2 = memo.draw(gen, w, r2, 10, sample)
    assert calls == [10] and np.array_equal(x1, x2) and x1 is not x2
    assert r1.bit_generator.state == r2.bit_generator.state and r1.random() == r2.random()
    x2[0, 0] = 99.0  # the caller's copy, not the memo's
    assert memo.draw(gen, w, np.random.default_rng(7), 10, sample)[0, 0] == x1[0, 0]
    assert memo.draw(gen, w + 1e-12, np.random.default_rng(7), 10, sample) is not None and calls == [10, 10]


def test_a_draw_that_spawns_streams_is_not_kept() -> None:
    memo = ScenarioMemo()

    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([c.standard_normal(2) for c in rng.spawn(n)])

    g = object.__new__(type("G", (), {}))
    memo.draw(g, np.zeros((2, 2)), np.random.default_rng(0), 3, sample)
    assert len(memo) == 0 and memo.misses == 1


def test_memo_is_bounded_by_bytes_least_recently_used_first() -> None:
    memo = ScenarioMemo(max_bytes=2 * 10 * 3 * 8)  # two draws of (10, 3)
    g = object.__new__(type("G", (), {}))

    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((n, 3))

    for s in (0, 1, 0, 2):  # 0 is used again before 2 arrives: 1 is dropped
        memo.draw(g, np.zeros((2, 3)), np.random.default_rng(s), 10, sample)
    assert len(memo) == 2 and memo.nbytes == 480 and memo.hits == 1
    memo.draw(g, np.zeros((2, 3)), np.random.default_rng(1), 10, sample)
    assert memo.misses == 4
    memo.resize(0)
    assert len(memo) == 0 and memo.nbytes == 0


def test_generator_digest_follows_content_and_falls_back_to_identity(setup) -> None:
    gen, path, _, _, _ = setup
    a, b = load_generator(path), load_generator(path)
    with torch.no_grad():
        next(b.model_.parameters()).add_(1e-6)
    assert generator_digest(load_generator(path)) == generator_digest(a) != generator_digest(b)

    class Opaque:
        def __init__(self) -> None:
            self.f = lambda x: x

    o1, o2 = Opaque(), Opaque()
    assert generator_digest(o1) != generator_digest(o2) and generator_digest(o1) == generator_digest(o1)

    class ByContent:  # compares by content (unhashable), so it is remembered by identity
        def __init__(self, w: float) -> None:
            self.w = np.array([w])

        def __eq__(self, other: object) -> bool:
            return True

    assert generator_digest(ByContent(1.0)) != generator_digest(ByContent(2.0))
    assert generator_digest(ByContent(1.0)) == generator_digest(ByContent(1.0))

    class Slotted:  # no __weakref__: digested every time, by content
        __slots__ = ("w",)

        def __init__(self, w: float) -> None:
            self.w = w

    assert generator_digest(Slotted(1.0)) == generator_digest(Slotted(1.0)) != generator_digest(Slotted(2.0))


def test_backtest_cost_multiples_and_lags_identical_with_and_without_reuse(setup) -> None:
    from factorgym.app.backtest.config import BacktestConfig
    from factorgym.app.backtest.run import backtest

    gen, _, panel, split, _ = setup
    end = panel.dates[split.bounds(panel.dates)["test"][0] + 15]  # a 15-day real path
    out = {}
    for reuse in (False, True):
        memo = ScenarioMemo()
        for lag in (0, 1):
            agents = {
                "mv": MeanVariance(GeneratorSource(gen, N_SCEN, reuse_draws=reuse, memo=memo)),
                "cvar": MeanCVaR(GeneratorSource(gen, N_SCEN, reuse_draws=reuse, memo=memo)),
            }
            cfg = BacktestConfig(split=split, test_end=str(end.date()), n_paths=0, bootstrap_reps=20, cost_multipliers=(0, 1, 2),
                                 execution_lag=lag, benchmark=None)  # fmt: skip
            res = backtest(agents, panel, None, cfg)
            out[reuse, lag] = res
        if reuse:
            assert memo.hits > 0 and memo.hits >= 4 * memo.misses  # mv+cvar x 3 multiples x 2 lags share one pass
        else:
            assert memo.hits == memo.misses == 0
    for lag in (0, 1):
        a, b = out[False, lag], out[True, lag]
        for name in ("mv", "cvar"):
            assert np.array_equal(a.real[name].weights, b.real[name].weights)
        assert a.cost_sensitivity.equals(b.cost_sensitivity)


def test_the_process_memo_is_the_default() -> None:
    src = GeneratorSource(object(), 10)
    assert src.reuse_draws and src.memo is None and isinstance(process_memo(), ScenarioMemo)

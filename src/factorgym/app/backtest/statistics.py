"""Statistics of a backtest's return series: stationary-bootstrap intervals of the real
path (with their block length and per-agent seeds), the HAC Sharpe difference to 1/N, the
probabilistic and deflated Sharpe ratios, the Model Confidence Set of the agents and
Hansen's SPA test / Romano-Wolf StepM of "does any agent beat 1/N" (:func:`real_path_inference`,
:func:`superior_to_reference`), and the mid-rank percentile of a real value among synthetic
ones."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from factorgym import metrics as M
from factorgym.errors import DataValidationError

__all__ = [
    "BOOTSTRAP_STATS",
    "INFERENCE_COLUMNS",
    "MCS_SIZE",
    "STEPM_SIZE",
    "agent_seed",
    "bootstrap_intervals",
    "percentile_of",
    "real_path_inference",
    "stationary_block_length",
    "superior_to_reference",
]

#: Bootstrapped statistics of the real path.
BOOTSTRAP_STATS: tuple[str, ...] = ("sharpe", "annualised_return", "annualised_volatility", "sharpe_minus_ew")


def agent_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The bootstrap seed of agent ``name`` in a run seeded ``seed`` (independent of the
    other agents, so an interval does not change when agents are added)."""
    return np.random.SeedSequence([int(seed), zlib.crc32(name.encode("utf-8"))])


def stationary_block_length(x: np.ndarray) -> float:
    """Politis-White optimal mean block length of the stationary bootstrap of ``x`` (T,),
    at least 1 (1 for short or constant series)."""
    from arch.bootstrap import optimal_block_length

    if x.shape[0] < 10 or not np.std(x) > 0:
        return 1.0
    b = float(optimal_block_length(x)["stationary"].iloc[0])
    return b if math.isfinite(b) and b >= 1.0 else 1.0


def bootstrap_intervals(
    returns: np.ndarray,
    reference: np.ndarray | None = None,
    *,
    reps: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.SeedSequence = 0,
    block_length: float | None = None,
    periods_per_year: int = 252,
    risk_free: float = 0.0,
) -> pd.DataFrame:
    """Stationary-bootstrap percentile intervals of a daily return series.

    Statistics: ``sharpe``, ``annualised_return``, ``annualised_volatility`` (as in
    :mod:`factorgym.metrics`) and, with ``reference`` (e.g. 1/N's returns on the same days),
    ``sharpe_minus_ew`` = Sharpe(returns) - Sharpe(reference) on the *same* resampled days.

    Parameters
    ----------
    returns : ndarray of shape (T,)
    reference : ndarray of shape (T,), optional
    reps : int
        Resamples.
    confidence : float
        Interval level.
    seed : int or SeedSequence
        Seeds the resampling (same seed -> same interval).
    block_length : float, optional
        Mean block length (default: :func:`arch.bootstrap.optimal_block_length` of
        ``returns``, at least 1).
    periods_per_year : int
    risk_free : float
        Per-period (daily) cash rate, as in :mod:`factorgym.metrics`.

    Returns
    -------
    DataFrame
        Index: statistic; columns ``estimate`` (on the original series), ``lower``,
        ``upper``, ``std_error`` (of the resampled values), ``block_length``, ``reps``.
    """
    from arch.bootstrap import StationaryBootstrap

    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 1 or x.shape[0] < 2:
        raise DataValidationError(f"bootstrap needs a 1-D series of at least 2 returns, got shape {x.shape}")
    ref = None if reference is None else np.asarray(reference, dtype=np.float64)
    if ref is not None and ref.shape != x.shape:
        raise DataValidationError(f"reference has shape {ref.shape}, returns have {x.shape}")
    ppy, rf = periods_per_year, risk_free

    def stats(r: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
        s = float(M.sharpe_ratio(r, rf, ppy))
        out = [s, float(M.annualised_return(r, ppy)), float(M.annualised_volatility(r, ppy))]
        if q is not None:
            out.append(s - float(M.sharpe_ratio(q, rf, ppy)))
        return np.array(out)

    names = list(BOOTSTRAP_STATS[:3]) + (["sharpe_minus_ew"] if ref is not None else [])
    est = stats(x, ref)
    b = float(block_length) if block_length is not None else stationary_block_length(x)
    rng = np.random.default_rng(seed)
    args = (x,) if ref is None else (x, ref)
    lower, upper, se = (np.full(len(names), np.nan) for _ in range(3))
    if reps > 0:
        bs = StationaryBootstrap(b, *args, seed=rng)
        draws = bs.apply(stats, reps=int(reps))
        a = (1.0 - confidence) / 2.0
        for j in range(len(names)):
            d = draws[:, j]
            d = d[np.isfinite(d)]  # e.g. the Sharpe ratio of a resample without variance
            if d.size >= 2:
                lower[j], upper[j] = np.quantile(d, [a, 1.0 - a])
                se[j] = np.std(d, ddof=1)
    df = pd.DataFrame(
        {"estimate": est, "lower": lower, "upper": upper, "std_error": se, "block_length": b, "reps": int(reps)},
        index=pd.Index(names, name="statistic"),
    )
    return df


#: Size of the Model Confidence Set (0.10: the 90% set, column ``in_mcs_90``).
MCS_SIZE = 0.10

#: Columns :func:`real_path_inference` adds to the real-path summary, with one line each
#: (shown by ``factorgym backtest --help`` and the report).
INFERENCE_COLUMNS: dict[str, str] = {
    "sharpe_minus_ew_hac_se": "standard error of the Sharpe difference to 1/N, delta method with a Newey-West HAC covariance (Ledoit-Wolf 2008)",
    "sharpe_minus_ew_hac_pvalue": "two-sided p-value of 'same Sharpe ratio as 1/N' from that HAC test",
    "sharpe_minus_ew_boot_se": "standard error of the Sharpe difference to 1/N over the paired stationary-bootstrap resamples",
    "psr": "probabilistic Sharpe ratio: probability that the true Sharpe ratio is above 0, given skew and kurtosis (Bailey-Lopez de Prado 2012)",
    "deflated_sharpe": "deflated Sharpe ratio: probability that the true Sharpe ratio beats the best of n_trials unskilled agents (Bailey-Lopez de Prado 2014)",
    "deflated_sharpe_threshold": "annualised Sharpe ratio the best of n_trials unskilled agents is expected to reach (the bar of deflated_sharpe)",
    "n_trials": "agents of this run counted as the trials of the deflated Sharpe ratio (every agent row, 1/N included; not the index)",
    "mcs_pvalue": "Model Confidence Set p-value on daily losses = -net return (Hansen-Lunde-Nason 2011, arch.bootstrap.MCS)",
    "in_mcs_90": "1 when the agent is in the 90% Model Confidence Set of this run's agents (best mean daily net return), else 0",
    "spa_pvalue": "p-value of Hansen's SPA test that no agent of this run beats 1/N's mean daily net return, all agents tried counted (one per run, on every agent row)",
    "beats_ew_stepm_90": "1 when Romano-Wolf StepM (10%, family-wise) finds the agent's mean daily net return above 1/N's, else 0",
}

#: Family-wise error rate of the StepM set (column ``beats_ew_stepm_90``).
STEPM_SIZE = 0.10


def real_path_inference(
    returns: Mapping[str, np.ndarray],
    agents: Sequence[str],
    ref: str,
    *,
    risk_free: float = 0.0,
    periods_per_year: int = 252,
    mcs_reps: int = 1000,
    block_length: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """HAC Sharpe difference to 1/N, probabilistic / deflated Sharpe ratios and Model
    Confidence Set membership of the real path (columns: :data:`INFERENCE_COLUMNS` except
    the bootstrap one).

    The **trials** of the deflated Sharpe ratio are the ``agents`` (every agent the run
    backtested, the 1/N reference included: a user who picks the best row of the table picks
    among all of them); their number and the variance of their Sharpe ratios are counted
    here from the run, never typed in. Rows of ``returns`` that are not agents (the market
    index) get the probabilistic Sharpe ratio only. The Model Confidence Set takes the
    agents' daily losses ``-net return`` (so it keeps the agents whose *mean* net return is
    not significantly below the best one's), with :data:`MCS_SIZE`, ``mcs_reps`` resamples
    (none: no MCS columns' values), a mean block length of ``block_length`` (default
    :class:`arch.bootstrap.MCS`'s ``sqrt(T)``) and a seed derived from ``seed``. With the
    same resamples, block length and seed, :func:`superior_to_reference` tests whether any
    agent beats ``ref`` counting every agent tried: its SPA p-value is one number per run
    (``spa_pvalue``, repeated on each agent's row) and StepM's verdict is per agent
    (``beats_ew_stepm_90``; NaN for ``ref``).

    Parameters
    ----------
    returns : mapping of str to ndarray of shape (T,)
        Daily net returns by row label (agents and, optionally, the index).
    agents : sequence of str
        The agents' labels (keys of ``returns``).
    ref : str
        The 1/N agent.
    risk_free : float
        Daily cash rate.
    periods_per_year : int
    mcs_reps : int
    block_length : float, optional
    seed : int

    Returns
    -------
    DataFrame
        Index: the labels of ``returns``; NaN where a value does not apply.
    """
    cols = [c for c in INFERENCE_COLUMNS if c != "sharpe_minus_ew_boot_se"]
    out = pd.DataFrame(np.nan, index=pd.Index(list(returns), name="agent"), columns=cols)
    ref_r = returns[ref]
    for name, r in returns.items():
        if name != ref and r.shape == ref_r.shape:
            t = M.sharpe_difference_test(r, ref_r, risk_free=risk_free, periods_per_year=periods_per_year)
            out.loc[name, ["sharpe_minus_ew_hac_se", "sharpe_minus_ew_hac_pvalue"]] = [t.std_error, t.pvalue]
        if r.shape[0] >= 2:
            out.loc[name, "psr"] = M.sharpe_inference(r[:, None], risk_free=risk_free, periods_per_year=periods_per_year)["psr"].iloc[0]
    same = [a for a in agents if returns[a].shape == ref_r.shape]
    if ref_r.shape[0] < 2:
        return out
    mat = np.column_stack([returns[a] for a in same])
    dsr = M.sharpe_inference(mat, risk_free=risk_free, periods_per_year=periods_per_year, names=same)
    out.loc[same, ["deflated_sharpe", "deflated_sharpe_threshold", "n_trials"]] = dsr[
        ["deflated_sharpe", "deflated_sharpe_threshold", "n_trials"]
    ].to_numpy()
    if mcs_reps > 0:
        block = None if block_length is None else max(1, round(block_length))
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"model confidence set")]))
        mcs = M.model_confidence_set(-mat, size=MCS_SIZE, reps=mcs_reps, block_size=block, seed=rng, names=same)
        out.loc[same, "mcs_pvalue"] = mcs["pvalue"].to_numpy()
        out.loc[same, "in_mcs_90"] = mcs["included"].to_numpy(dtype=np.float64)
        others = [a for a in same if a != ref]
        if others:
            pvalue, beats = superior_to_reference(
                np.column_stack([returns[a] for a in others]), ref_r, reps=mcs_reps, block_size=block, seed=seed,
            )  # fmt: skip
            out.loc[same, "spa_pvalue"] = pvalue
            out.loc[others, "beats_ew_stepm_90"] = beats.astype(np.float64)
    return out


def superior_to_reference(
    returns: np.ndarray,
    reference: np.ndarray,
    *,
    reps: int = 1000,
    block_size: int | None = None,
    seed: int = 0,
) -> tuple[float, np.ndarray]:
    """Does any of ``K`` agents beat the reference (1/N), counting every agent tried?

    Hansen's (2005) test of Superior Predictive Ability and Romano & Wolf's (2005) StepM,
    by :class:`arch.bootstrap.SPA` (and its step-down, as :class:`arch.bootstrap.StepM`) on daily losses
    ``-net return`` (stationary bootstrap, studentized). The null of SPA is that no agent's
    expected daily net return is above the reference's; its p-value accounts for all ``K``
    agents at once, so trying more agents does not make a lucky one look significant.
    StepM names the agents whose edge survives a family-wise error rate of
    :data:`STEPM_SIZE`. An agent whose returns equal the reference's every day is not
    tested (it cannot beat it).

    Parameters
    ----------
    returns : ndarray (T, K)
        The agents' daily net returns.
    reference : ndarray (T,)
        The reference's daily net returns on the same days.
    reps : int
        Bootstrap resamples (at least 1).
    block_size : int, optional
        Mean block length (default :class:`arch.bootstrap.SPA`'s ``sqrt(T)``).
    seed : int
        Seeds both bootstraps through their own generators (same seed -> same result).

    Returns
    -------
    pvalue : float
        SPA's consistent p-value (NaN when no agent differs from the reference).
    beats : ndarray (K,) of bool
        StepM's verdict per agent.
    """
    from arch.bootstrap import SPA

    x = np.asarray(returns, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if x.ndim != 2 or ref.shape != (x.shape[0],) or x.shape[0] < 2 or not (np.isfinite(x).all() and np.isfinite(ref).all()):
        raise DataValidationError(f"SPA needs finite returns (T, K) and a reference (T,) with T >= 2; got {x.shape} and {ref.shape}")
    if int(reps) < 1:
        raise DataValidationError(f"reps must be at least 1, got {reps}")
    beats = np.zeros(x.shape[1], dtype=bool)
    tested = np.flatnonzero(~(x == ref[:, None]).all(axis=0))
    if not tested.size:
        return math.nan, beats
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"superior predictive ability")]))
    spa = SPA(-ref, -x[:, tested], block_size=block_size, reps=int(reps), seed=rng)
    spa.compute()
    pvalue = float(spa.pvalues["consistent"])
    # StepM's step-down on the same bootstrap draws (arch's StepM.compute fails once every
    # model has been found superior over two or more steps: it then tests an empty set)
    active = np.ones(tested.size, dtype=bool)
    while active.any():
        better = spa.better_models(STEPM_SIZE)  # only among the active models
        if not better.size:
            break
        active[better] = False
        if active.any():
            spa.subset(active)
            spa.compute()
    beats[tested] = ~active
    return pvalue, beats


def percentile_of(value: float, sample: np.ndarray) -> float:
    """Mid-rank percentile of ``value`` in ``sample`` (in [0, 1]; NaN if either is missing)."""
    s = sample[np.isfinite(sample)]
    if not s.size or not math.isfinite(value):
        return math.nan
    return float((np.sum(s < value) + 0.5 * np.sum(s == value)) / s.size)


"""Return panels, validation, date splits, the embedded sp500 data and synthetic panels.

Conventions
-----------
* A :class:`ReturnPanel` holds **simple** daily returns ``r_t = P_t / P_{t-1} - 1`` in a
  ``(T, N)`` float64 matrix. Log returns are derived in exactly one place,
  :meth:`ReturnPanel.log_returns`.
* Row ``t`` is the return realised over day ``t`` (close ``t-1`` to close ``t``): it is
  information available *at the close of day t*.
* An asset that is not trading on a day is marked ``False`` in ``mask`` and its cell holds
  ``NaN``. Absence is never encoded as a zero return; use :meth:`ReturnPanel.filled` when a
  dense matrix is needed together with the mask.

Nothing in this module touches the network: the sp500 data is read from the CSV files that
ship inside the ``skfolio`` wheel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import gammaln

from factorgym.errors import DataValidationError

__all__ = [
    "ReturnPanel",
    "Split",
    "SyntheticFactorPanel",
    "load_dataset",
    "synthetic_factor_panel",
    "validate_return_matrix",
    "SP500_SECTORS",
    "MAX_ABS_DAILY_RETURN",
]

#: Daily simple returns above this (or at/below -100%) are rejected as implausible.
MAX_ABS_DAILY_RETURN = 1.0

#: GICS sectors of the 20 stocks in skfolio's sp500 dataset.
SP500_SECTORS: dict[str, str] = {
    "AAPL": "Information Technology",
    "AMD": "Information Technology",
    "BAC": "Financials",
    "BBY": "Consumer Discretionary",
    "CVX": "Energy",
    "GE": "Industrials",
    "HD": "Consumer Discretionary",
    "JNJ": "Health Care",
    "JPM": "Financials",
    "KO": "Consumer Staples",
    "LLY": "Health Care",
    "MRK": "Health Care",
    "MSFT": "Information Technology",
    "PEP": "Consumer Staples",
    "PFE": "Health Care",
    "PG": "Consumer Staples",
    "RRC": "Energy",
    "UNH": "Health Care",
    "WMT": "Consumer Staples",
    "XOM": "Energy",
}


def _cells(dates: pd.DatetimeIndex, assets: Sequence[str], bad: np.ndarray, limit: int = 5) -> str:
    """Describe the first few offending (date, asset) cells of a boolean ``(T, N)`` array."""
    rows, cols = np.nonzero(bad)
    shown = [f"{dates[r].date()}/{assets[c]}" for r, c in zip(rows[:limit], cols[:limit], strict=True)]
    more = f" (+{len(rows) - limit} more)" if len(rows) > limit else ""
    return ", ".join(shown) + more


def _check_dates(dates: pd.Index, what: str = "dates") -> pd.DatetimeIndex:
    try:
        idx = pd.DatetimeIndex(pd.to_datetime(dates))
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"{what} could not be parsed as dates: {exc}") from exc
    if idx.hasnans:
        raise DataValidationError(f"{what} contain missing values (NaT)")
    if idx.tz is not None:
        idx = idx.tz_convert(None)
    dup = idx[idx.duplicated()]
    if len(dup):
        raise DataValidationError(
            f"duplicate {what}: {', '.join(str(d.date()) for d in dup[:5])}"
            + (f" (+{len(dup) - 5} more)" if len(dup) > 5 else "")
        )
    if not idx.is_monotonic_increasing:
        pos = int(np.argmax(np.diff(idx.asi8) < 0))
        raise DataValidationError(
            f"{what} are not sorted: {idx[pos].date()} is followed by {idx[pos + 1].date()}"
        )
    return idx.normalize() if (idx == idx.normalize()).all() else idx


def _check_assets(assets: Sequence[Any]) -> tuple[str, ...]:
    names = tuple(str(a) for a in assets)
    seen: set[str] = set()
    dups = [a for a in names if a in seen or seen.add(a)]  # type: ignore[func-returns-value]
    if dups:
        raise DataValidationError(f"duplicate asset names: {', '.join(sorted(set(dups)))}")
    if any(a.strip() == "" for a in names):
        raise DataValidationError("empty asset name")
    return names


def _numeric_frame(df: pd.DataFrame, what: str) -> np.ndarray:
    """Convert to float64, naming the cells that are not numbers (instead of coercing them)."""
    out = np.empty(df.shape, dtype=np.float64)
    for j, col in enumerate(df.columns):
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or not (
            pd.api.types.is_numeric_dtype(s) or s.dtype == object or pd.api.types.is_string_dtype(s)
        ):
            raise DataValidationError(f"{what} column {col!r} has non-numeric dtype {s.dtype}")
        conv = pd.to_numeric(s, errors="coerce")
        bad = conv.isna() & s.notna()
        if bad.any():
            first = s[bad].index[:3]
            vals = [repr(s.loc[i]) for i in first]
            raise DataValidationError(
                f"{what} column {col!r} has non-numeric cells: "
                + ", ".join(f"{pd.Timestamp(i).date() if isinstance(i, pd.Timestamp) else i}={v}" for i, v in zip(first, vals, strict=True))
            )
        out[:, j] = conv.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def validate_return_matrix(
    returns: np.ndarray, mask: np.ndarray, dates: pd.DatetimeIndex, assets: Sequence[str]
) -> None:
    """Raise :class:`DataValidationError` unless ``returns`` is a valid panel.

    Checks: shapes agree, no cell is infinite, every available cell is finite, and every
    available return lies in ``(-1, MAX_ABS_DAILY_RETURN]``. Unavailable cells are not
    checked otherwise; :class:`ReturnPanel` sets them to NaN.
    """
    if returns.ndim != 2 or returns.shape != mask.shape:
        raise DataValidationError(f"returns {returns.shape} and mask {mask.shape} must be equal 2-D shapes")
    if returns.shape != (len(dates), len(assets)):
        raise DataValidationError(
            f"returns shape {returns.shape} does not match {len(dates)} dates x {len(assets)} assets"
        )
    inf = np.isinf(returns)
    if inf.any():
        raise DataValidationError(f"infinite returns at {_cells(dates, assets, inf)}")
    nan_avail = np.isnan(returns) & mask
    if nan_avail.any():
        raise DataValidationError(f"NaN returns at available cells {_cells(dates, assets, nan_avail)}")
    with np.errstate(invalid="ignore"):
        low = mask & (returns <= -1.0)
        high = mask & (returns > MAX_ABS_DAILY_RETURN)
    if low.any():
        raise DataValidationError(
            f"implausible daily returns <= -100% at {_cells(dates, assets, low)} "
            "(prices must stay positive; are these percentages rather than fractions?)"
        )
    if high.any():
        raise DataValidationError(
            f"implausible daily returns > +{MAX_ABS_DAILY_RETURN:.0%} at {_cells(dates, assets, high)} "
            "(are these percentages rather than fractions, or is there a bad price?)"
        )


@dataclass(frozen=True, eq=False)
class ReturnPanel:
    """An immutable panel of daily **simple** returns.

    Parameters
    ----------
    dates : pandas.DatetimeIndex of shape (T,)
        Strictly increasing trading dates.
    assets : tuple of str, length N
        Unique asset names.
    returns : ndarray of shape (T, N), float64
        Simple returns; ``NaN`` exactly where ``mask`` is False.
    mask : ndarray of shape (T, N), bool
        Availability: ``True`` when the asset traded on that day. The mask is authoritative:
        cells where it is False are stored as NaN whatever ``returns`` held there.
    static : DataFrame or None
        Static per-asset attributes indexed by asset (e.g. a ``sector`` column).
    exog : DataFrame or None
        Exogenous daily series (simple returns) indexed by ``dates``, e.g. a market index.
    name : str
        A label for messages and reports.

    Arrays are made read-only; derive new panels with the methods below.
    """

    dates: pd.DatetimeIndex
    assets: tuple[str, ...]
    returns: np.ndarray
    mask: np.ndarray
    static: pd.DataFrame | None = None
    exog: pd.DataFrame | None = None
    name: str = "panel"
    _validated: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        dates = _check_dates(pd.Index(self.dates))
        assets = _check_assets(self.assets)
        returns = np.array(self.returns, dtype=np.float64, copy=True)
        mask = np.array(self.mask, dtype=bool, copy=True)
        if returns.shape == mask.shape:
            returns[~mask] = np.nan  # the mask is authoritative: absent cells hold NaN
        validate_return_matrix(returns, mask, dates, assets)
        returns.setflags(write=False)
        mask.setflags(write=False)
        static = self.static
        if static is not None:
            static = static.copy()
            static.index = static.index.astype(str)
            missing = [a for a in assets if a not in static.index]
            if missing:
                raise DataValidationError(f"static attributes missing for assets: {', '.join(missing)}")
            static = static.loc[list(assets)]
        exog = self.exog
        if exog is not None:
            exog = exog.copy()
            exog.index = _check_dates(exog.index, "exogenous dates")
            exog = exog.reindex(dates)
            vals = exog.to_numpy(dtype=np.float64)
            if not np.isfinite(vals).all():
                bad_rows = np.nonzero(~np.isfinite(vals).all(axis=1))[0][:5]
                raise DataValidationError(
                    "exogenous series missing or non-finite on "
                    + ", ".join(str(dates[i].date()) for i in bad_rows)
                )
        object.__setattr__(self, "dates", dates)
        object.__setattr__(self, "assets", assets)
        object.__setattr__(self, "returns", returns)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "static", static)
        object.__setattr__(self, "exog", exog)
        object.__setattr__(self, "_validated", True)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_prices(
        cls,
        prices: pd.DataFrame,
        *,
        static: pd.DataFrame | None = None,
        exog_prices: pd.DataFrame | None = None,
        name: str = "panel",
    ) -> ReturnPanel:
        """Build a panel from a wide ``(date x asset)`` price table.

        Missing prices mark the asset unavailable; a return exists on day t only when the
        prices of t-1 and t are both present. The first date is consumed as the base price.
        Non-positive prices are rejected, never dropped.
        """
        if prices.shape[0] < 2:
            raise DataValidationError("need at least two dates of prices to form returns")
        dates = _check_dates(prices.index)
        assets = _check_assets(prices.columns)
        p = _numeric_frame(prices, "price")
        if np.isinf(p).any():
            raise DataValidationError(f"infinite prices at {_cells(dates, assets, np.isinf(p))}")
        nonpos = np.nan_to_num(p, nan=1.0) <= 0
        if nonpos.any():
            raise DataValidationError(f"non-positive prices at {_cells(dates, assets, nonpos)}")
        with np.errstate(invalid="ignore"):
            r = p[1:] / p[:-1] - 1.0
        mask = np.isfinite(r)
        exog = None
        if exog_prices is not None:
            ep = exog_prices.copy()
            ep.index = _check_dates(ep.index, "exogenous dates")
            ep = ep.reindex(dates)
            vals = _numeric_frame(ep, "exogenous price")
            if (np.nan_to_num(vals, nan=1.0) <= 0).any():
                raise DataValidationError("non-positive exogenous prices")
            exog = pd.DataFrame(vals[1:] / vals[:-1] - 1.0, index=dates[1:], columns=ep.columns)
        return cls(dates[1:], assets, r, mask, static=static, exog=exog, name=name)

    @classmethod
    def from_returns(
        cls,
        returns: pd.DataFrame,
        *,
        mask: pd.DataFrame | np.ndarray | None = None,
        static: pd.DataFrame | None = None,
        exog: pd.DataFrame | None = None,
        name: str = "panel",
    ) -> ReturnPanel:
        """Build a panel from a wide ``(date x asset)`` table of simple returns.

        Without ``mask``, empty cells mean "asset absent that day". With ``mask``, an empty
        cell at an available position is an error (nothing is ever silently filled).
        """
        dates = _check_dates(returns.index)
        assets = _check_assets(returns.columns)
        r = _numeric_frame(returns, "return")
        m = ~np.isnan(r) if mask is None else np.asarray(mask, dtype=bool)
        return cls(dates, assets, r, m, static=static, exog=exog, name=name)

    # ------------------------------------------------------------------ views
    @property
    def T(self) -> int:  # noqa: N802 - conventional name
        """Number of dates."""
        return int(self.returns.shape[0])

    @property
    def N(self) -> int:  # noqa: N802 - conventional name
        """Number of assets."""
        return int(self.returns.shape[1])

    def filled(self, value: float = 0.0) -> np.ndarray:
        """A writable ``(T, N)`` copy with unavailable cells set to ``value`` (use with ``mask``)."""
        out = np.array(self.returns, copy=True)
        out[~self.mask] = value
        return out

    def log_returns(self) -> np.ndarray:
        """``log(1 + r)`` as a ``(T, N)`` array (NaN where unavailable). The only conversion."""
        return np.log1p(self.returns)

    def to_frame(self) -> pd.DataFrame:
        """Wide ``(date x asset)`` DataFrame of simple returns (NaN where unavailable)."""
        return pd.DataFrame(np.array(self.returns), index=self.dates, columns=list(self.assets))

    def index_of(self, date: str | pd.Timestamp) -> int:
        """Row index of the last date ``<= date`` (raises if ``date`` precedes the panel)."""
        ts = pd.Timestamp(date)
        pos = int(self.dates.searchsorted(ts, side="right")) - 1
        if pos < 0:
            raise DataValidationError(f"{ts.date()} is before the first date {self.dates[0].date()}")
        return pos

    def iloc(self, start: int, stop: int) -> ReturnPanel:
        """Rows ``[start, stop)`` as a new panel."""
        sl = slice(start, stop)
        if len(range(self.T)[sl]) == 0:
            raise DataValidationError(f"empty row range [{start}, {stop}) of {self.name}")
        return ReturnPanel(
            self.dates[sl],
            self.assets,
            self.returns[sl],
            self.mask[sl],
            static=self.static,
            exog=None if self.exog is None else self.exog.iloc[sl],
            name=self.name,
        )

    def loc(self, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None) -> ReturnPanel:
        """Dates in ``[start, end]`` (inclusive; ``None`` for open ends) as a new panel."""
        i0 = 0 if start is None else int(self.dates.searchsorted(pd.Timestamp(start), side="left"))
        i1 = self.T if end is None else int(self.dates.searchsorted(pd.Timestamp(end), side="right"))
        return self.iloc(i0, i1)

    def select_assets(self, assets: Sequence[str]) -> ReturnPanel:
        """A panel restricted to (and ordered as) ``assets``."""
        missing = [a for a in assets if a not in self.assets]
        if missing:
            raise DataValidationError(f"unknown assets: {', '.join(missing)}")
        idx = [self.assets.index(a) for a in assets]
        return ReturnPanel(
            self.dates,
            tuple(assets),
            self.returns[:, idx],
            self.mask[:, idx],
            static=None if self.static is None else self.static.loc[list(assets)],
            exog=self.exog,
            name=self.name,
        )

    def with_returns(self, returns: np.ndarray, mask: np.ndarray | None = None) -> ReturnPanel:
        """Same dates/assets/attributes with replaced returns (validated again)."""
        return ReturnPanel(
            self.dates,
            self.assets,
            returns,
            self.mask if mask is None else mask,
            static=self.static,
            exog=self.exog,
            name=self.name,
        )

    def require_history(self, lookback: int, what: str = "the requested lookback") -> None:
        """Raise unless the panel has more than ``lookback`` days."""
        if self.T <= lookback:
            raise DataValidationError(
                f"{self.name} has {self.T} days, too few for {what} of {lookback} days"
            )

    def __repr__(self) -> str:
        span = f"{self.dates[0].date()}..{self.dates[-1].date()}" if self.T else "empty"
        return f"ReturnPanel({self.name!r}, T={self.T}, N={self.N}, {span})"


@dataclass(frozen=True)
class Split:
    """Chronological train / validation / test split by date (inclusive ends).

    The defaults adapt the NeuralFactors paper's protocol to the 1990-2022 sp500 data:
    train through 2013, validate on 2014-2018, test from 2019 onward.
    """

    train_end: str = "2013-12-31"
    val_end: str = "2018-12-31"

    def __post_init__(self) -> None:
        if pd.Timestamp(self.train_end) >= pd.Timestamp(self.val_end):
            raise DataValidationError(f"train_end {self.train_end} must precede val_end {self.val_end}")

    def bounds(self, dates: pd.DatetimeIndex) -> dict[str, tuple[int, int]]:
        """Row ranges ``[start, stop)`` of ``train``, ``val`` and ``test`` in ``dates``."""
        a = int(dates.searchsorted(pd.Timestamp(self.train_end), side="right"))
        b = int(dates.searchsorted(pd.Timestamp(self.val_end), side="right"))
        return {"train": (0, a), "val": (a, b), "test": (b, len(dates))}

    def part(self, panel: ReturnPanel, which: str) -> ReturnPanel:
        """The ``"train"``, ``"val"`` or ``"test"`` rows of ``panel``."""
        bounds = self.bounds(panel.dates)
        if which not in bounds:
            raise DataValidationError(f"unknown split part {which!r}; expected train, val or test")
        i0, i1 = bounds[which]
        if i1 <= i0:
            raise DataValidationError(
                f"split part {which!r} is empty for {panel.name} "
                f"({panel.dates[0].date()}..{panel.dates[-1].date()}, train_end={self.train_end}, val_end={self.val_end})"
            )
        return panel.iloc(i0, i1)

    @classmethod
    def by_fraction(cls, dates: pd.DatetimeIndex, train: float = 0.6, val: float = 0.2) -> Split:
        """A split at fractions of ``dates`` (for panels that do not span 1990-2022)."""
        n = len(dates)
        return cls(str(dates[int(n * train) - 1].date()), str(dates[int(n * (train + val)) - 1].date()))


# ---------------------------------------------------------------------- embedded data
def _load_sp500() -> ReturnPanel:
    from skfolio.datasets import load_sp500_dataset, load_sp500_index

    prices = load_sp500_dataset()
    index = load_sp500_index()
    static = pd.DataFrame({"sector": [SP500_SECTORS[a] for a in prices.columns]}, index=prices.columns)
    return ReturnPanel.from_prices(prices, static=static, exog_prices=index, name="sp500")


_DATASETS = {"sp500": _load_sp500}


def load_dataset(name: str = "sp500") -> ReturnPanel:
    """Load an embedded dataset (no network access).

    ``"sp500"``: daily simple returns of 20 S&P 500 stocks, 1990-01-03..2022-12-28, from the
    prices shipped in the ``skfolio`` wheel, with the S&P 500 index return as exogenous
    column ``SP500`` and each stock's GICS ``sector`` as a static attribute. Prices there are
    rounded to 3 decimals, so early low-priced stocks show quantised returns.
    """
    try:
        loader = _DATASETS[name]
    except KeyError:
        raise DataValidationError(f"unknown dataset {name!r}; embedded datasets: {', '.join(_DATASETS)}") from None
    return loader()


# ---------------------------------------------------------------------- synthetic truth
def _t_logpdf(x: np.ndarray, nu: np.ndarray | float, scale: np.ndarray | float) -> np.ndarray:
    """Elementwise log density of a centred Student-T with ``nu`` dof and ``scale``."""
    nu = np.asarray(nu, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    u = x / scale
    return (
        gammaln((nu + 1) / 2)
        - gammaln(nu / 2)
        - 0.5 * np.log(nu * np.pi)
        - np.log(scale)
        - (nu + 1) / 2 * np.log1p(u * u / nu)
    )


@dataclass(frozen=True, eq=False)
class SyntheticFactorPanel:
    """A panel drawn from a known Student-T factor model, with its exact log density.

    The model (the NeuralFactors model class with fixed parameters)::

        z_t ~ prod_f T(nu_z, 0, s_z[f])                   (F factor returns)
        r_{i,t} | z_t ~ T(nu_x, alpha_i + v_t * beta_i' z_t, v_t * sigma_i)

    where ``v_t`` is 1, or with ``time_varying_vol`` a GARCH(1,1)-style scale driven by the
    previous day's standardised first-factor shock (so it is a function of the past only).

    Attributes
    ----------
    panel : ReturnPanel
    log_density : ndarray of shape (T,)
        ``log p(r_t | past)`` in nats under the true model (importance-sampled integral over
        z; about 1e-2 nats of noise per day, 1e-3 on average over days).
    alpha, sigma : ndarray of shape (N,)
    beta : ndarray of shape (N, F)
    s_z : ndarray of shape (F,)
    nu_x, nu_z : float
    vol : ndarray of shape (T,)
        The volatility scale ``v_t``.
    """

    panel: ReturnPanel
    log_density: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    sigma: np.ndarray
    s_z: np.ndarray
    nu_x: float
    nu_z: float
    vol: np.ndarray

    def true_log_density(self, r: np.ndarray, t: int, n_samples: int = 4096, seed: int = 0) -> np.ndarray:
        """``log p(r | past)`` of candidate returns ``r`` (shape ``(..., N)``) on day ``t``."""
        return _factor_model_logpdf(
            np.atleast_2d(r), self.alpha, self.beta * self.vol[t], self.sigma * self.vol[t],
            self.s_z, self.nu_x, self.nu_z, n_samples, np.random.default_rng(seed),
        )

    def covariance(self, t: int) -> np.ndarray:
        """True covariance of day ``t`` returns, shape ``(N, N)``."""
        v = self.vol[t]
        var_z = self.s_z**2 * self.nu_z / (self.nu_z - 2)
        return v**2 * ((self.beta * var_z) @ self.beta.T + np.diag(self.sigma**2 * self.nu_x / (self.nu_x - 2)))


def _mvt_standard(rng: np.random.Generator, n: int, dim: int, dof: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standard multivariate-T draws ``(n, dim)`` and their log densities ``(n,)``."""
    u = rng.standard_normal((n, dim)) / np.sqrt(rng.chisquare(dof, size=(n, 1)) / dof)
    logq = (
        gammaln((dof + dim) / 2)
        - gammaln(dof / 2)
        - dim / 2 * np.log(dof * np.pi)
        - (dof + dim) / 2 * np.log1p((u * u).sum(axis=1) / dof)
    )
    return u, logq


def _factor_model_logpdf(
    r: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    sigma: np.ndarray,
    s_z: np.ndarray,
    nu_x: float,
    nu_z: float,
    n_samples: int,
    rng: np.random.Generator,
    proposal_dof: float = 5.0,
) -> np.ndarray:
    """Importance-sampled ``log p(r)`` for rows of ``r`` (shape ``(D, N)``) -> ``(D,)``.

    Two-stage adaptive importance sampling over the F factor returns. Stage 1 proposes from
    a multivariate T (``proposal_dof``) around the moment-matched Gaussian posterior of
    NeuralFactors' eq. 8; stage 2 refits the proposal to the stage-1 weighted posterior
    mean and covariance (widened by 1.2) and gives the estimate. T tails heavier than the
    posterior's keep the weights bounded.
    """
    F = beta.shape[1]
    var_x = sigma**2 * nu_x / (nu_x - 2)
    var_z = s_z**2 * nu_z / (nu_z - 2)
    prec = np.diag(1 / var_z) + (beta.T / var_x) @ beta  # (F, F)
    L = np.linalg.cholesky(prec)
    mean0 = cho_solve((L, True), (((r - alpha) / var_x) @ beta).T).T  # (D, F)
    # A = L^{-T} (upper triangular) satisfies A A' = prec^{-1}; widen by 1.2
    A0 = solve_triangular(L, np.eye(F), lower=True).T * 1.2

    def log_weights(d: int, mean: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, logq_u = _mvt_standard(rng, n_samples, F, proposal_dof)
        z = mean + u @ A.T  # (S, F)
        logq = logq_u - np.log(np.abs(np.diag(np.linalg.cholesky(A @ A.T)))).sum()
        logprior = _t_logpdf(z, nu_z, s_z).sum(axis=1)
        loglik = _t_logpdf(r[d] - alpha - z @ beta.T, nu_x, sigma).sum(axis=1)
        return z, loglik + logprior - logq

    out = np.empty(r.shape[0])
    for d in range(r.shape[0]):
        z, lw = log_weights(d, mean0[d], A0)
        w = np.exp(lw - lw.max())
        w /= w.sum()
        m1 = w @ z
        c1 = (z - m1).T @ ((z - m1) * w[:, None]) + 1e-12 * np.eye(F)
        _, lw = log_weights(d, m1, np.linalg.cholesky(c1) * 1.2)
        mx = lw.max()
        out[d] = mx + np.log(np.mean(np.exp(lw - mx)))
    return out


def synthetic_factor_panel(
    T: int = 2000,  # noqa: N803
    N: int = 20,  # noqa: N803
    F: int = 3,  # noqa: N803
    nu: float = 5.0,
    seed: int = 0,
    *,
    nu_z: float | None = None,
    time_varying_vol: bool = False,
    garch: tuple[float, float] = (0.08, 0.90),
    start: str = "2000-01-03",
    n_is_samples: int = 4096,
) -> SyntheticFactorPanel:
    """Draw a panel from a known Student-T factor model and return it with its true density.

    Parameters
    ----------
    T, N, F : int
        Days, assets and factors.
    nu : float
        Degrees of freedom of the idiosyncratic noise (and of the factors unless ``nu_z``).
    seed : int
        Seed of the parameters, the draws and the density estimate.
    time_varying_vol : bool
        Scale each day by ``v_t`` with ``v_t^2 = (1-a-b) + a u_{t-1}^2 + b v_{t-1}^2`` where
        ``u`` is the standardised first-factor shock and ``(a, b) = garch``.

    Returns
    -------
    SyntheticFactorPanel
        ``.panel`` (business-day dates from ``start``) and ``.log_density`` of shape (T,).
    """
    if nu <= 2 or (nu_z is not None and nu_z <= 2):
        raise DataValidationError("degrees of freedom must exceed 2 (finite variance)")
    rng = np.random.default_rng(seed)
    nu_z = float(nu if nu_z is None else nu_z)
    alpha = rng.normal(2e-4, 2e-4, N)
    beta = np.column_stack([rng.normal(1.0, 0.25, N)] + [rng.normal(0.0, 0.6, N) for _ in range(F - 1)])
    s_z = np.array([0.009] + [0.005] * (F - 1)) * np.sqrt((nu_z - 2) / nu_z)
    sigma = rng.uniform(0.008, 0.02, N) * np.sqrt((nu - 2) / nu)
    z = rng.standard_t(nu_z, size=(T, F)) * s_z
    eps = rng.standard_t(nu, size=(T, N)) * sigma
    vol = np.ones(T)
    if time_varying_vol:
        a, b = garch
        u = z[:, 0] / (s_z[0] * np.sqrt(nu_z / (nu_z - 2)))
        v2 = 1.0
        for t in range(T):
            vol[t] = np.sqrt(v2)
            v2 = (1 - a - b) + a * (vol[t] * u[t]) ** 2 + b * vol[t] ** 2
    r = alpha + vol[:, None] * (z @ beta.T + eps)
    dates = pd.bdate_range(start, periods=T)
    assets = tuple(f"S{i:02d}" for i in range(N))
    static = pd.DataFrame({"sector": [f"G{i % 4}" for i in range(N)]}, index=list(assets))
    panel = ReturnPanel(dates, assets, r, np.ones((T, N), dtype=bool), static=static, name=f"synthetic(seed={seed})")
    is_rng = np.random.default_rng([seed, 1])
    # r_t = alpha + v_t x_t with x_t from the unit-scale model, so (exact change of variables)
    # log p(r_t | past) = log p_1(alpha + (r_t - alpha) / v_t) - N log v_t: one batched call.
    unit = alpha + (r - alpha) / vol[:, None]
    logd = _factor_model_logpdf(unit, alpha, beta, sigma, s_z, nu, nu_z, n_is_samples, is_rng) - N * np.log(vol)
    return SyntheticFactorPanel(panel, logd, alpha, beta, sigma, s_z, float(nu), nu_z, vol)

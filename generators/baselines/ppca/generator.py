"""Probabilistic PCA with a Student-T decoder (the NeuralFactors paper's PPCA baseline).

Model, for the next day's returns ``r`` of ``N`` assets and ``k`` latent factors::

    z ~ N(0, I_k),     r_i | z ~ T(nu_i, mu_i + w_i' z, sigma_i)   independently over i.

Two estimation modes, chosen on validation together with ``k``:

``window="train"`` (fixed parameters)
    Maximum likelihood on the train rows by Monte Carlo ECM: the Student-T noise is written
    as a Gaussian scale mixture (``u_i ~ Gamma(nu_i/2, nu_i/2)``); the E-step
    importance-samples ``z`` per day (a multivariate-T proposal around the Gaussian
    conditional posterior given the current expected precisions, with common random numbers
    across iterations so the fit is deterministic) and takes ``u | z`` in closed form; the
    CM-steps are per-asset weighted least squares for ``(mu_i, w_i)``, the closed-form
    ``sigma_i`` and a 1-D root for ``nu_i`` (Liu & Rubin's ECM for the t). It starts from
    the Tipping & Bishop closed form. Parameters are then fixed: the window is not used.

``window=<int>`` (rolling)
    Each day, the Tipping & Bishop (1999) closed form on the trailing ``window`` days'
    sample covariance ``S`` (``W = U_k (L_k - s2 I)^{1/2}``, ``s2`` the mean discarded
    eigenvalue), with heteroscedastic noise variances ``psi_i = S_ii - ||w_i||^2`` (so the
    model matches every asset's window variance) carried by a Student-T of one shared
    ``nu`` (``sigma_i = sqrt(psi_i (nu - 2) / nu)``); ``nu`` is the maximum-likelihood value
    on (a subsample of) the train days' one-day-ahead predictions. Simulated paths
    re-estimate from their own rolling window each step.

Absent and late-listing assets: in rolling mode an asset with fewer than 2 returns in the
window gets mean 0, its train variance and the correlations of the window's "average asset"
before the decomposition (as the Gaussian baseline). In train mode an asset with fewer
than ``MIN_OWN_TRAIN_DAYS`` (20) train returns is left out of the ECM fit (so the other
assets' parameters are those fitted without it) and gets pooled parameters: mean 0, the
mean loading row of the fitted assets, their median ``nu`` and their mean idiosyncratic
variance. ``pooled_assets_`` names these assets; their train variance is pooled too.

``log_prob`` is an importance-sampling **estimate** (multivariate-T proposal around the
variational posterior of ``z``, fixed seed); the mean and covariance are exact; the marginals (a Gaussian
convolved with a Student-T) are computed by 1-D quadrature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from factorgym.artifacts import read_artifact, write_artifact
from factorgym.data import ReturnPanel, Split
from factorgym.errors import CheckpointError, DataValidationError
from factorgym.generators.base import (
    PathSimulator,
    Predictive,
    ReturnGenerator,
    artifact_errors,
    register_generator,
)
from factorgym.generators.baselines.common import (
    as_window,
    as_windows,
    check_fitted,
    check_shape,
    config_hash,
    data_fingerprint,
    load_checked,
    path_windows,
    per_asset_nll,
    progress_printer,
    require_val_rows,
    split_rows,
    window_moments,
    windows_before,
)
from factorgym.generators.baselines.pooling import (
    MIN_OWN_TRAIN_DAYS,
    own_history,
    pool_factor_fit,
    pooled_train_var,
)
from factorgym.generators.baselines.ppca.density import (
    NU_MAX,
    NU_MIN,
    TFactorPredictive,
    tfactor_log_density,
)
from factorgym.generators.baselines.ppca.em import (
    eig_desc,
    fit_tppca_em,
    golden_min,
    tipping_bishop,
)
from factorgym.generators.baselines.ppca.simulator import PPCASimulator

__all__ = ["PPCAGenerator"]


@register_generator
class PPCAGenerator(ReturnGenerator):
    """Probabilistic PCA with a Student-T decoder ("ppca"); see the module docstring.

    Parameters
    ----------
    n_factors : int or "auto"
        Number of factors ``k``; ``"auto"`` chooses from ``factor_grid`` on validation.
    window : int, "train" or "auto"
        Rolling estimation window in days, ``"train"`` for parameters fitted once on the
        train rows, or ``"auto"`` to choose from ``window_grid`` on validation.
    mean : {"zero", "sample"}
        Zero mean, or estimated (``mu`` by ML in train mode, the window mean when rolling).
    factor_grid : sequence of int
        Candidates for ``n_factors="auto"`` (values ``>= N`` are dropped).
    window_grid : sequence of int or "train"
        Candidates for ``window="auto"``.
    n_is_samples : int
        Importance draws per day of the predictive :meth:`~TFactorPredictive.log_prob`.
    select_is_samples : int
        Importance draws per day when scoring candidates (validation) and fitting ``nu``.
    nu_days : int
        Train days (evenly spaced) on which the rolling mode's ``nu`` is fitted.
    em_iter, em_samples, em_tol :
        Monte Carlo ECM settings of the train mode (see :func:`fit_tppca_em`).

    Attributes
    ----------
    assets_, n_assets_ :
    n_factors_ : int
    window_ : int or "train"
    nu_ : ndarray (N,)
        Degrees of freedom (one shared value repeated when rolling).
    mu_, W_, sigma_ : ndarray
        Fixed parameters in train mode (``(N,)``, ``(N, k)``, ``(N,)``); ``None`` when rolling.
    validation_ : dict
        ``{"<window>/<k>": mean validation NLL per asset-day}`` of every candidate scored.
    candidates_ : dict
        ``{"<window>/<k>": {"nu_median", and for train mode "n_iter", "converged"}}``.
    em_info_ : dict
        Iterations / convergence of the train-mode fit (empty when rolling).
    pooled_assets_ : tuple of str
        Assets with fewer than ``MIN_OWN_TRAIN_DAYS`` train returns (pooled parameters).
    """

    kind: ClassVar[str] = "ppca"

    def __init__(
        self,
        n_factors: int | str = "auto",
        window: int | str = "auto",
        mean: str = "zero",
        factor_grid: Sequence[int] = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15),
        window_grid: Sequence[int | str] = (126, 252, 504, "train"),
        n_is_samples: int = 1024,
        select_is_samples: int = 256,
        nu_days: int = 300,
        em_iter: int = 100,
        em_samples: int = 16,
        em_tol: float = 1e-5,
    ) -> None:
        self.n_factors = n_factors
        self.window = window
        self.mean = mean
        self.factor_grid = tuple(int(k) for k in factor_grid)
        self.window_grid = tuple(w if w == "train" else int(w) for w in window_grid)
        self.n_is_samples = n_is_samples
        self.select_is_samples = select_is_samples
        self.nu_days = nu_days
        self.em_iter = em_iter
        self.em_samples = em_samples
        self.em_tol = em_tol

    def get_params(self) -> dict[str, Any]:
        return {
            "n_factors": self.n_factors,
            "window": self.window,
            "mean": self.mean,
            "factor_grid": list(self.factor_grid),
            "window_grid": list(self.window_grid),
            "n_is_samples": self.n_is_samples,
            "select_is_samples": self.select_is_samples,
            "nu_days": self.nu_days,
            "em_iter": self.em_iter,
            "em_samples": self.em_samples,
            "em_tol": self.em_tol,
        }

    def _check_params(self, n_assets: int) -> None:
        if self.mean not in ("zero", "sample"):
            raise DataValidationError(f"mean must be 'zero' or 'sample'; got {self.mean!r}")
        if n_assets < 2:
            raise DataValidationError("PPCA needs at least 2 assets")
        if self.n_factors != "auto" and not (isinstance(self.n_factors, (int, np.integer)) and 1 <= self.n_factors < n_assets):
            raise DataValidationError(f"n_factors must be 'auto' or an int in [1, {n_assets}); got {self.n_factors!r}")
        for w in (self.window,) if self.window != "auto" else self.window_grid:
            if w != "train" and not (isinstance(w, (int, np.integer)) and w > n_assets):
                raise DataValidationError(
                    f"a rolling window must be an int > N={n_assets} (or 'train'); got {w!r}"
                )

    @property
    def min_history(self) -> int:
        check_fitted(self, "window_")
        return 1 if self.window_ == "train" else int(self.window_)

    def _nu_vector(self) -> np.ndarray:
        return np.asarray(self.nu_, dtype=np.float64)

    # ------------------------------------------------------------------ parameters from windows
    def _params_for(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-window ``mu (B, N)``, ``W (B, N, k)``, ``sigma (B, N)`` for windows ``(B, W, N)``."""
        B = X.shape[0]
        if self.window_ == "train":
            return (
                np.broadcast_to(self.mu_, (B, self.n_assets_)),
                np.broadcast_to(self.W_, (B,) + self.W_.shape),
                np.broadcast_to(self.sigma_, (B, self.n_assets_)),
            )
        mu, C = window_moments(X, mean=self.mean, cov="sample", fallback_var=self.train_var_, absent="average")
        lam, U = eig_desc(C)
        W, psi = tipping_bishop(lam, U, np.diagonal(C, axis1=1, axis2=2), self.n_factors_)
        nu = self.nu_[0]
        return mu, W, np.sqrt(psi * (nu - 2) / nu)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        panel: ReturnPanel,
        split: Split,
        *,
        out_dir: str | Path | None = None,
        progress: bool = True,
        rng: np.random.Generator | None = None,
    ) -> PPCAGenerator:
        """Fit on the train rows; choose ``k`` and the window on the validation rows.

        Every candidate ``(window, k)`` is fitted on train only and scored by its mean
        validation NLL per asset-day (importance-sampled, ``select_is_samples`` draws). With
        ``out_dir``, each scored candidate is checkpointed to ``out_dir/ppca_selection.fgz``
        and a re-run with the same data and settings resumes from it.

        ``rng`` seeds the importance draws (default seed 0); the fit is deterministic given it.
        """
        self._check_params(panel.N)
        (t0, t1), val = split_rows(panel, split)
        R = np.asarray(panel.returns)
        N = panel.N
        seed = int((np.random.default_rng(0) if rng is None else rng).integers(2**31))
        say = progress_printer(progress)
        train_var, pooled = pooled_train_var(R[t0:t1], panel.assets)
        ks = [self.n_factors] if self.n_factors != "auto" else [k for k in self.factor_grid if 1 <= k < N]
        windows = [self.window] if self.window != "auto" else list(self.window_grid)
        if not ks:
            raise DataValidationError(f"no factor count in {self.factor_grid} is below N={N}")
        select = len(ks) * len(windows) > 1
        if select:
            require_val_rows(val, "the number of factors / window")
        val_days = np.arange(*val)
        for w in windows:
            if w != "train" and select and w > val[0]:
                raise DataValidationError(f"window {w} is longer than the history before the validation rows")
            if w != "train" and t1 - t0 <= w + 1:
                raise DataValidationError(f"window {w} leaves no train days to fit nu on")

        ckpt = _Checkpoint(out_dir, {"config": self.get_params(), "seed": seed, "data": data_fingerprint(R[t0 : max(t1, val[1])]), "assets": list(panel.assets)})
        sel = _Selection(R, (t0, t1), val_days, seed, select, say, ckpt, dict(ckpt.scores), dict(ckpt.fitted))
        for w in windows:
            if w == "train":
                self._fit_train_candidates(sel, ks)
            else:
                self._fit_rolling_candidates(sel, int(w), ks, train_var)
        self._adopt(sel, [f"{w}/{k}" for w in windows for k in ks], panel, train_var)
        self.pooled_assets_ = tuple(a for a, p in zip(panel.assets, pooled, strict=True) if p)
        return self

    def _fit_train_candidates(self, sel: _Selection, ks: list[int]) -> None:
        """ECM-fit (and score on validation) the train-mode candidates not in the checkpoint."""
        t0, t1 = sel.train
        R, val_days = sel.R, sel.val_days
        for k in ks:
            key = f"train/{k}"
            if key not in sel.fitted:
                sel.say(f"ppca: ECM fit, k={k} ...")
                own = own_history(R[t0:t1])
                if k >= own.sum():
                    raise DataValidationError(
                        f"n_factors={k} needs more than {k} assets with {MIN_OWN_TRAIN_DAYS} train days; "
                        f"{int(own.sum())} have them"
                    )
                fit = fit_tppca_em(
                    R[t0:t1] if own.all() else R[t0:t1][:, own], k, mean=self.mean, n_iter=self.em_iter,
                    n_samples=self.em_samples, tol=self.em_tol, rng=np.random.default_rng([sel.seed, k]),
                )
                fit = fit if own.all() else pool_factor_fit(fit, own)
                sel.fitted[key] = fit
                if sel.select:
                    lp = tfactor_log_density(
                        R[val_days], fit["mu"], fit["W"], fit["sigma"], fit["nu"],
                        self.select_is_samples, np.random.default_rng([sel.seed, 1]),
                    )
                    sel.scores[key] = float(np.nanmean(per_asset_nll(lp, R[val_days])))
                sel.ckpt.save(sel.scores, sel.fitted)
            sel.say(f"ppca: train k={k}: {sel.fitted[key]['n_iter']} ECM iterations, validation NLL {sel.scores.get(key, float('nan')):.4f}")

    def _fit_rolling_candidates(self, sel: _Selection, w: int, ks: list[int], train_var: np.ndarray) -> None:
        """Fit ``nu`` (and score on validation) of the rolling-window-``w`` candidates not in the checkpoint."""
        t0, t1 = sel.train
        R, val_days = sel.R, sel.val_days
        nu_days = np.arange(t0 + w, t1)
        if len(nu_days) > self.nu_days:
            nu_days = nu_days[np.linspace(0, len(nu_days) - 1, self.nu_days).round().astype(int)]
        todo = [k for k in ks if f"{w}/{k}" not in sel.fitted]
        if not todo:
            return
        eig_nu = self._rolling_eig(windows_before(R, nu_days, w), train_var)
        eig_val = self._rolling_eig(windows_before(R, val_days, w), train_var) if sel.select else None
        for k in todo:
            key = f"{w}/{k}"
            nu = self._fit_rolling_nu(eig_nu, R[nu_days], k, sel.seed)
            sel.fitted[key] = {"nu": np.array([nu])}
            if sel.select:
                assert eig_val is not None
                lp = self._rolling_logp(eig_val, R[val_days], k, nu, sel.seed)
                sel.scores[key] = float(np.nanmean(per_asset_nll(lp, R[val_days])))
            sel.ckpt.save(sel.scores, sel.fitted)
            scored = f", validation NLL {sel.scores[key]:.4f}" if key in sel.scores else " (fixed, not selected on validation)"
            sel.say(f"ppca: window {w} k={k}: nu={nu:.2f}{scored}")

    def _adopt(self, sel: _Selection, keys: list[str], panel: ReturnPanel, train_var: np.ndarray) -> None:
        """Set the fitted attributes from the best candidate among ``keys`` (``"<window>/<k>"``)."""
        scores, fitted = sel.scores, sel.fitted
        N = panel.N
        best = min(keys, key=lambda s: scores.get(s, np.inf)) if sel.select else keys[0]
        w_s, k_s = best.split("/")
        self.assets_ = tuple(panel.assets)
        self.n_assets_ = N
        self.train_var_ = train_var
        self.n_factors_ = int(k_s)
        self.window_ = "train" if w_s == "train" else int(w_s)
        self.validation_ = {s: scores[s] for s in keys if s in scores}
        self.candidates_ = {s: _candidate_info(fitted[s]) for s in keys}
        fit = fitted[best]
        if self.window_ == "train":
            self.mu_, self.W_, self.sigma_ = fit["mu"], fit["W"], fit["sigma"]
            self.nu_ = np.asarray(fit["nu"], dtype=np.float64)
            self.em_info_ = {"n_iter": int(fit["n_iter"]), "converged": bool(fit["converged"]),
                             "train_loglik_is": float(fit["loglik"][-1])}
        else:
            self.mu_ = self.W_ = self.sigma_ = None
            self.nu_ = np.full(N, float(np.asarray(fit["nu"]).reshape(-1)[0]))
            self.em_info_ = {}

    def _rolling_eig(self, X: np.ndarray, train_var: np.ndarray) -> tuple[np.ndarray, ...]:
        mu, C = window_moments(X, mean=self.mean, cov="sample", fallback_var=train_var, absent="average")
        lam, U = eig_desc(C)
        return mu, lam, U, np.diagonal(C, axis1=1, axis2=2).copy()

    def _rolling_logp(self, eig: tuple[np.ndarray, ...], r: np.ndarray, k: int, nu: float, seed: int) -> np.ndarray:
        mu, lam, U, diag = eig
        W, psi = tipping_bishop(lam, U, diag, k)
        sigma = np.sqrt(psi * (nu - 2) / nu)
        return tfactor_log_density(r, mu, W, sigma, np.full_like(sigma, nu), self.select_is_samples,
                                   np.random.default_rng([seed, 2]))

    def _fit_rolling_nu(self, eig: tuple[np.ndarray, ...], r: np.ndarray, k: int, seed: int) -> float:
        """ML of the shared ``nu`` on the train days' one-day-ahead log densities."""

        def nll(x: float) -> float:
            return -float(np.mean(self._rolling_logp(eig, r, k, 2.0 + np.exp(x), seed)))

        x = golden_min(nll, np.log(NU_MIN - 2.0), np.log(NU_MAX - 2.0), n_iter=14)
        return float(2.0 + np.exp(x))

    # ------------------------------------------------------------------ prediction
    def _predictive(self, mu: np.ndarray, W: np.ndarray, sigma: np.ndarray) -> TFactorPredictive:
        return TFactorPredictive(mu, W, sigma, self._nu_vector(), self.n_is_samples, seed=0)

    def predict_window(self, window: np.ndarray) -> TFactorPredictive:
        """Distribution of the day after ``window`` ``(W, N)`` (unused in train mode)."""
        check_fitted(self, "window_")
        w = as_window(window, self.min_history, self.n_assets_)
        mu, W, sigma = self._params_for(w[None])
        return self._predictive(mu[0], W[0], sigma[0])

    def predict_windows(self, windows: np.ndarray) -> list[Predictive]:
        """Batched :meth:`predict_window` for ``(D, W, N)``."""
        check_fitted(self, "window_")
        w = as_windows(windows, self.min_history, self.n_assets_)
        mu, W, sigma = self._params_for(w)
        return [self._predictive(mu[d], W[d], sigma[d]) for d in range(w.shape[0])]

    def simulator_window(self, window: np.ndarray, rngs: Sequence[np.random.Generator]) -> PathSimulator:
        """Paths drawing ``mu + W z + sigma t`` per day; rolling mode re-estimates from each path's window."""
        check_fitted(self, "window_")
        X = path_windows(window, len(rngs), self.min_history, self.n_assets_)
        return PPCASimulator(X, rngs, self._params_for, self._nu_vector(), self.n_factors_, rolling=self.window_ != "train")

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write an artifact: kind, config, choice of k / window, parameters, scores, assets."""
        check_fitted(self, "window_")
        arrays = {"nu": self.nu_, "train_var": self.train_var_}
        if self.window_ == "train":
            arrays.update(mu=self.mu_, W=self.W_, sigma=self.sigma_)
        fitted = {"n_factors": self.n_factors_, "window": self.window_, "validation": self.validation_,
                  "candidates": self.candidates_, "em_info": self.em_info_,
                  "pooled_assets": list(self.pooled_assets_)}
        write_artifact(path, self.artifact_meta(fitted=fitted), arrays)

    @classmethod
    def load(cls, path: str | Path) -> PPCAGenerator:
        meta, arrays = load_checked(path, cls.kind, ["nu", "train_var"], ["config", "assets", "fitted"])
        with artifact_errors(path, cls.kind):
            gen = cls(**meta["config"])
            assets = tuple(str(a) for a in meta["assets"])
            N = len(assets)
            gen._check_params(N)
            fitted = meta["fitted"]
            gen.assets_, gen.n_assets_ = assets, N
            gen.n_factors_ = int(fitted["n_factors"])
            gen.window_ = "train" if fitted["window"] == "train" else int(fitted["window"])
            gen.validation_ = {str(k): float(v) for k, v in fitted["validation"].items()}
            gen.em_info_ = dict(fitted["em_info"])
            gen.pooled_assets_ = tuple(str(a) for a in fitted.get("pooled_assets", []))
            gen.candidates_ = {str(k): dict(v) for k, v in fitted["candidates"].items()}
            gen.nu_ = check_shape(path, "nu", arrays["nu"], (N,))
            gen.train_var_ = check_shape(path, "train_var", arrays["train_var"], (N,))
            if not 1 <= gen.n_factors_ < N or (gen.nu_ <= 2).any():
                raise CheckpointError(f"{path}: invalid fitted parameters")
            if gen.window_ == "train":
                for name in ("mu", "W", "sigma"):
                    if name not in arrays:
                        raise CheckpointError(f"{path} is incomplete: missing {name}")
                gen.mu_ = check_shape(path, "mu", arrays["mu"], (N,))
                gen.W_ = check_shape(path, "W", arrays["W"], (N, gen.n_factors_))
                gen.sigma_ = check_shape(path, "sigma", arrays["sigma"], (N,))
            else:
                gen.mu_ = gen.W_ = gen.sigma_ = None
        return gen


@dataclass
class _Selection:
    """What the candidate fits of :meth:`PPCAGenerator.fit` share: data, seed, scores so far."""

    R: np.ndarray  # (T, N) all returns of the panel
    train: tuple[int, int]  # train rows [t0, t1)
    val_days: np.ndarray  # (D,) validation rows
    seed: int
    select: bool  # True when several candidates are scored on validation
    say: Callable[[str], None]
    ckpt: _Checkpoint
    scores: dict[str, float] = field(default_factory=dict)  # "<window>/<k>" -> validation NLL
    fitted: dict[str, dict[str, Any]] = field(default_factory=dict)  # "<window>/<k>" -> parameters


def _candidate_info(fit: dict[str, Any]) -> dict[str, Any]:
    """JSON-able diagnostics of one fitted candidate (``nu``; ECM iterations / convergence)."""
    nu = np.asarray(fit["nu"], dtype=np.float64).reshape(-1)
    info: dict[str, Any] = {"nu_median": float(np.median(nu))}
    if "n_iter" in fit:
        info.update(n_iter=int(fit["n_iter"]), converged=bool(fit["converged"]))
    return info


class _Checkpoint:
    """Per-candidate results of the PPCA selection, in ``out_dir/ppca_selection.fgz``."""

    _ARRAYS = ("mu", "W", "sigma", "nu")

    def __init__(self, out_dir: str | Path | None, identity: dict[str, Any]) -> None:
        self.path = None if out_dir is None else Path(out_dir) / "ppca_selection.fgz"
        self.key = config_hash(identity)
        self.scores: dict[str, float] = {}
        self.fitted: dict[str, dict[str, Any]] = {}
        if self.path is None or not self.path.exists():
            return
        meta, arrays, _ = read_artifact(self.path, expect_kind="ppca_selection")
        if meta.get("identity") != self.key:
            raise CheckpointError(
                f"{self.path} was written for other data or settings; delete it or use another out_dir"
            )
        try:
            self.scores = {str(k): float(v) for k, v in meta["scores"].items()}
            for cand, info in meta["fitted"].items():
                d: dict[str, Any] = dict(info)
                for a in self._ARRAYS:
                    if f"{cand}:{a}" in arrays:
                        d[a] = arrays[f"{cand}:{a}"]
                self.fitted[str(cand)] = d
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{self.path} is corrupt: {exc}") from exc

    def save(self, scores: dict[str, float], fitted: dict[str, dict[str, Any]]) -> None:
        if self.path is None:
            return
        arrays = {f"{c}:{a}": np.asarray(v[a]) for c, v in fitted.items() for a in self._ARRAYS if a in v}
        info = {c: {k: v for k, v in d.items() if k not in self._ARRAYS} for c, d in fitted.items()}
        write_artifact(self.path, {"kind": "ppca_selection", "identity": self.key, "scores": scores, "fitted": info}, arrays)

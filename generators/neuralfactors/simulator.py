"""Path simulator of NeuralFactors: streams the stock embedder one simulated day at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as fn

from factorgym.errors import DataValidationError
from factorgym.generators.base import PathSimulator, torch_threads
from factorgym.generators.neuralfactors.inputs import IncrementalFeatures, MarketStateTracker
from factorgym.generators.neuralfactors.model import SIGMA_FLOOR, StreamState
from factorgym.generators.neuralfactors.predictive import NeuralFactorsPredictive, var_factor

if TYPE_CHECKING:
    from factorgym.generators.neuralfactors.generator import NeuralFactors

__all__ = ["NeuralFactorsSimulator", "SIM_RETURN_BOUNDS"]

#: Simulated simple returns are clipped to this range (prices stay positive; see the simulator).
SIM_RETURN_BOUNDS = (-0.99, 1.0)


class NeuralFactorsSimulator(PathSimulator):
    """Rolls ``P`` paths forward one day at a time, streaming the stock embedder.

    Each :meth:`step` draws the day's factor returns and idiosyncratic noise for path ``p``
    from ``rngs[p]`` only (numpy), maps them to returns with the path's current
    ``alpha, beta, sigma, nu`` (batched), appends the day to the path's history, updates
    its features incrementally (and its market state, from the daily statistics of its last
    ``warmup`` days, real then simulated) and advances the embedder by one day from its cached
    per-layer keys/values (or recurrent state): no lookback window is recomputed. The network
    runs on the model's device; the noise is drawn on the CPU.

    Simulated simple returns are clipped to ``SIM_RETURN_BOUNDS`` = ``[-0.99, 1.0]`` (the
    Student-T tails could otherwise produce a non-positive price; with daily scales of a few
    percent this is a > 30-sigma event).
    """

    def __init__(self, model: NeuralFactors, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        self._m = model
        cfg = model.config
        self._N = len(model.assets_)
        self._rngs = list(rngs)
        P = len(self._rngs)  # noqa: N806
        if P < 1:
            raise DataValidationError("simulator needs at least one path (one rng per path)")
        w = model.check_windows(windows, allow_2d=True)
        shared = w.ndim == 2
        if not shared and w.shape[0] != P:
            raise DataValidationError(f"got {w.shape[0]} windows for {P} rngs")
        w3 = w[None] if shared else w
        self._threads = cfg.inference_threads
        self._dev = model.device_
        self._market = (
            MarketStateTracker(np.broadcast_to(w3, (P, *w3.shape[1:])), cfg.market_state) if cfg.market_state is not None else None
        )
        with torch_threads(self._threads), torch.inference_mode():
            h, state, feats = model.prefill(w3)
            if shared and P > 1:
                h = h.repeat(P, 1, 1)
                state = state.expand(P)
                if feats is not None:
                    feats = IncrementalFeatures(np.broadcast_to(w3, (P, *w3.shape[1:])), cfg.features)
            self._state: StreamState = state
            self._feats = feats
            # heads' static part (asset/sector embeddings) folded into a per-row bias once
            w_h, bias = model.net_.head_weights(model.asset_ids_, model.sector_ids_)  # (H, H), (N, H)
            self._w_h, self._head_bias = w_h, bias.repeat(P, 1)  # (P*N, H)
            self._floors = torch.tensor([SIGMA_FLOOR, cfg.nu_min], device=self._dev)
            self._set_params(model.net_.heads_raw(h.reshape(P * self._N, -1), self._w_h, self._head_bias))
        self._prior_scale, self._prior_dof = model.prior_np()

    def _convert(self, o: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``alpha, beta, sigma, nu`` ``(k, N, ...)`` in return units from raw head outputs ``o`` ``(k*N, 3 + F)``.

        The output transforms of :meth:`NeuralFactorsNet.heads` (softplus + floors, in
        float32), then one conversion to float64 and the return scales ``s_i``.
        """
        cfg, N = self._m.config, self._N  # noqa: N806
        s = self._m.spec_.scale
        sp = (fn.softplus(o[:, 1:3]) + self._floors).cpu().numpy()  # (k*N, 2): sigma~, nu (float32)
        on = o.cpu().numpy()
        k = on.shape[0] // N
        alpha = on[:, 0].reshape(k, N) * s if cfg.learn_alpha else np.zeros((k, N))
        nu = np.full((k, N), np.inf) if cfg.decoder == "gaussian" else sp[:, 1].reshape(k, N).astype(np.float64)
        return alpha, on[:, 3:].reshape(k, N, -1) * s[:, None], sp[:, 0].reshape(k, N) * s, nu

    def _set_params(self, o: torch.Tensor) -> None:
        """Current parameters of every path from the raw head outputs ``o`` ``(P*N, 3 + F)``."""
        self._alpha, self._beta, self._sigma, self._nu = self._convert(o)

    @property
    def n_paths(self) -> int:
        return len(self._rngs)

    @property
    def n_assets(self) -> int:
        return self._N

    def factor_params(self) -> dict[str, np.ndarray]:
        """Current ``alpha`` ``(P, N)``, ``beta`` ``(P, N, F)``, ``sigma``, ``nu`` ``(P, N)`` (return units)."""
        return {"alpha": self._alpha.copy(), "beta": self._beta.copy(), "sigma": self._sigma.copy(), "nu": self._nu.copy()}

    def predictive(self, p: int) -> NeuralFactorsPredictive:
        """The next-day distribution of path ``p``."""
        return NeuralFactorsPredictive(
            self._alpha[p], self._beta[p], self._sigma[p], self._nu[p], self._prior_scale, self._prior_dof,
            threads=self._threads,
        )

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        fv = self._prior_scale**2 * var_factor(self._prior_dof)
        cov = np.einsum("pnf,f,pmf->pnm", self._beta, fv, self._beta)
        idx = np.arange(self._N)
        cov[:, idx, idx] += self._sigma**2 * var_factor(self._nu)
        return self._alpha.copy(), cov

    def moments_diag(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance ``(P, N)``: ``O(P N F)``, without the ``(P, N, N)`` covariance."""
        fv = self._prior_scale**2 * var_factor(self._prior_dof)
        return self._alpha.copy(), np.einsum("pnf,f,pnf->pn", self._beta, fv, self._beta) + self._sigma**2 * var_factor(self._nu)

    def _noise(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit factor draws ``(P, F)`` and idiosyncratic draws ``(P, N)``, path ``p`` from ``rngs[p]``."""
        P, N, F = self.n_paths, self._N, self._prior_dof.shape[0]  # noqa: N806
        # Student-T = normal / sqrt(Gamma(nu/2, rate nu/2)); half-dofs of [factors | assets]
        half = np.empty((P, F + N))
        half[:, :F] = self._prior_dof / 2
        half[:, F:] = self._nu / 2
        fin = np.isfinite(half)
        g = np.empty((P, F + N))
        gam = np.ones((P, F + N))
        if fin.all():  # the usual case (Student-T prior and decoder)
            for p, rng in enumerate(self._rngs):
                g[p] = rng.standard_normal(F + N)
                gam[p] = rng.standard_gamma(half[p])
        else:
            for p, rng in enumerate(self._rngs):
                g[p] = rng.standard_normal(F + N)
                if fin[p].any():
                    gam[p, fin[p]] = rng.standard_gamma(half[p, fin[p]])
        np.divide(gam, half, out=gam, where=fin)
        g /= np.sqrt(gam)
        return g[:, :F], g[:, F:]

    def step(self) -> np.ndarray:
        gz, ge = self._noise()
        z = gz * self._prior_scale  # (P, F)
        r = self._alpha + np.einsum("pnf,pf->pn", self._beta, z) + self._sigma * ge  # (P, N)
        r = np.clip(r, *SIM_RETURN_BOUNDS)
        self._advance(r)
        return r

    def _advance(self, r: np.ndarray) -> None:
        """Append day ``r`` ``(P, N)`` to every path and update the embedder state."""
        m = self._m
        M = m_ok = None  # noqa: N806
        if self._market is not None:
            self._market.push(r)
            M, m_ok = self._market.features()  # noqa: N806
        if self._feats is not None:
            self._feats.push(r)
            X, valid = self._feats.features()  # noqa: N806
            x = m.spec_.assemble(r, X, valid, M, m_ok)  # (P, N, D)
        else:
            x = m.spec_.assemble(r, None, None, M, m_ok)
        with torch_threads(self._threads), torch.inference_mode():
            xt = torch.from_numpy(x).reshape(-1, x.shape[-1]).to(self._dev)
            h = m.net_.step(xt, self._state)  # (P*N, H)
            self._set_params(m.net_.heads_raw(h, self._w_h, self._head_bias))

    def reset_paths(self, idx: np.ndarray, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if len(rngs) != len(idx):
            raise DataValidationError(f"reset_paths got {len(rngs)} rngs for {len(idx)} paths")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_paths):
            raise DataValidationError(f"path indices must lie in [0, {self.n_paths})")
        w = self._m.check_windows(windows, allow_2d=False)
        if w.shape[0] != len(idx):
            raise DataValidationError(f"reset_paths got {w.shape[0]} windows for {len(idx)} paths")
        with torch_threads(self._threads), torch.inference_mode():
            h, state, _ = self._m.prefill(w)
            tok = torch.from_numpy((idx[:, None] * self._N + np.arange(self._N)).reshape(-1)).to(self._dev)
            self._state.assign(tok, state)
            fresh = self._m.net_.heads_raw(h.reshape(len(idx) * self._N, -1), self._w_h, self._head_bias[tok])
        for cur, new in zip((self._alpha, self._beta, self._sigma, self._nu), self._convert(fresh), strict=True):
            cur[idx] = new
        if self._feats is not None:
            self._feats.reset(idx, w)
        if self._market is not None:
            self._market.reset(idx, w)
        for j, p in enumerate(idx):
            self._rngs[p] = rngs[j]

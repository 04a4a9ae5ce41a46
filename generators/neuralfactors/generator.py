"""NeuralFactors as a :class:`~factorgym.generators.base.ReturnGenerator` (Gopal 2024).

Next-day model, in simple returns ``r`` of the original units (paper eqs. 5-6)::

    z ~ prod_f t_{nu_z,f}(0, s_z,f)                              (F factor returns)
    r_i | z ~ t_{nu_i}(alpha_i + beta_i' z, sigma_i)             (independent given z)

with ``alpha, beta, sigma, nu`` output by the stock embedder from each asset's history.
The network works on returns divided by each asset's train-period standard deviation
``s_i``; :class:`NeuralFactorsPredictive` maps everything back (``alpha_i = s_i alpha~_i``,
``beta_i = s_i beta~_i``, ``sigma_i = s_i sigma~_i``) so densities carry the Jacobian.

The predictive distribution is in :mod:`~factorgym.generators.neuralfactors.predictive`, the
path simulator in :mod:`~factorgym.generators.neuralfactors.simulator`, the training loop in
:mod:`~factorgym.generators.neuralfactors.training`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from factorgym.artifacts import read_artifact, write_artifact
from factorgym.data import ReturnPanel, Split
from factorgym.errors import CheckpointError, DataValidationError, NotFittedError
from factorgym.features import FeatureScaler, compute_features, market_state_features
from factorgym.generators.base import (
    Predictive,
    ReturnGenerator,
    register_generator,
    torch_threads,
)
from factorgym.generators.neuralfactors.config import NeuralFactorsConfig, resolve_device
from factorgym.generators.neuralfactors.inputs import (
    IncrementalFeatures,
    InputSpec,
    batched_features,
    train_scale,
)
from factorgym.generators.neuralfactors.model import (
    MAX_SEQUENCES,
    FactorParams,
    NeuralFactorsNet,
    StreamState,
)
from factorgym.generators.neuralfactors.predictive import NeuralFactorsPredictive
from factorgym.generators.neuralfactors.simulator import SIM_RETURN_BOUNDS, NeuralFactorsSimulator
from factorgym.generators.neuralfactors.training import (
    TrainData,
    TrainResult,
    state_from_bytes,
    state_to_bytes,
    train,
)

__all__ = ["NeuralFactors", "NeuralFactorsPredictive", "NeuralFactorsSimulator", "SIM_RETURN_BOUNDS"]

#: Version of this generator's artifact layout (inside the generic artifact format).
MODEL_FORMAT = 1
MODEL_FILE = "model.zip"


@register_generator
class NeuralFactors(ReturnGenerator):
    """NeuralFactors (Gopal 2024): a conditional factor model whose exposures, alpha,
    idiosyncratic scale and tails come from a neural stock embedder, trained as a
    conditional IWAE with the moment-matched Gaussian posterior of eq. 8.

    Defaults (:class:`NeuralFactorsConfig`; evidence in ``benchmarks/results/nf_ablation.md``):
    market-state inputs and no per-asset embedding. A per-asset *risk* embedding (loadings,
    idiosyncratic scale and tails only, never alpha: ``asset_risk_embedding_dim``) with the
    paper's dropout 0.25 fits synthetic panels with time-varying factor volatility better
    (0.019-0.039 nats/asset/day above the true density instead of 0.033-0.054) and sp500's
    validation likelihood slightly better, but lost on the validation rollout diagnostics, so
    it is an option, not the default.

    Parameters
    ----------
    config : NeuralFactorsConfig, optional
    **overrides
        Fields of the config to change (``NeuralFactors(n_factors=16)``).

    Attributes
    ----------
    net_ : NeuralFactorsNet
        The trained network (best validated, Polyak-averaged weights).
    spec_ : InputSpec
        Return scales ``s_i`` and the feature scaler (fitted on train rows).
    assets_, sectors_ : tuple of str
    train_result_ : TrainResult or None
        History of the fit (None after :meth:`load`; see :attr:`fit_info_`).
    fit_info_ : dict
        ``best_val``, ``best_step``, ``elapsed``, ``history``.
    """

    kind: ClassVar[str] = "neuralfactors"

    def __init__(self, config: NeuralFactorsConfig | None = None, **overrides: Any) -> None:
        cfg = config if config is not None else NeuralFactorsConfig()
        self.config = cfg.replace(**overrides) if overrides else cfg

    def get_params(self) -> dict[str, Any]:
        return {"config": self.config}

    @property
    def min_history(self) -> int:
        return self.config.min_history

    # ---------------------------------------------------------------- fitting
    def fit(
        self,
        panel: ReturnPanel,
        split: Split,
        *,
        out_dir: str | Path | None = None,
        progress: bool = True,
        rng: np.random.Generator | None = None,
        callback: Callable[[int, dict[str, float]], None] | None = None,
    ) -> NeuralFactors:
        """Train on ``split``'s train rows, select on its validation rows; returns ``self``.

        Parameters
        ----------
        panel : ReturnPanel
        split : Split
        out_dir : path, optional
            Resumable train state (``train_state.zip``, written atomically every
            ``config.checkpoint_every`` steps) and the final model (``model.zip``). Calling
            ``fit`` again with the same configuration, seed and data resumes from the state
            and ends with the same weights as an uninterrupted run.
        progress : bool
            Show a rich progress bar.
        rng : numpy Generator, optional
            Source of the training seed (one draw); ``None`` uses ``config.seed``.
        callback : callable ``(step, logs) -> None``, optional
            Called after every optimisation step; raising from it stops training.
        """
        cfg = self.config
        seed = int(rng.integers(0, 2**62)) if rng is not None else int(cfg.seed)
        b = split.bounds(panel.dates)
        a_end, v_end = b["train"][1], b["val"][1]
        if a_end < cfg.min_history + cfg.days_per_block:
            raise DataValidationError(
                f"{panel.name} has {a_end} train days; NeuralFactors needs more than "
                f"min_history={cfg.min_history} + days_per_block={cfg.days_per_block}"
            )
        assets = tuple(panel.assets)
        sectors = self._sectors(panel)
        vocab = sorted(set(sectors))
        scale = train_scale(panel.returns[:a_end])
        scaler = None
        X = valid = None  # noqa: N806
        if cfg.use_features:
            X, valid = compute_features(panel, cfg.features)  # noqa: N806
            scaler = FeatureScaler().fit(X[:a_end], valid[:a_end])
        M = m_ok = m_scaler = None  # noqa: N806
        if cfg.market_state is not None:
            M, m_ok = market_state_features(np.asarray(panel.returns), cfg.market_state)  # noqa: N806
            m_scaler = FeatureScaler().fit(M[:a_end, None, :], m_ok[:a_end, None])
        spec = InputSpec(cfg, scale, scaler, m_scaler)
        inputs = spec.assemble(np.asarray(panel.returns), X, valid, M, m_ok)  # (T, N, D)
        dev = resolve_device(cfg.device)
        y = (panel.filled(0.0) / scale).astype(np.float32)
        rows = np.arange(panel.T)
        has_any = panel.mask.any(axis=1)
        eligible = (rows >= cfg.min_history) & has_any
        data = TrainData(
            inputs=torch.from_numpy(inputs).to(dev),
            y=torch.from_numpy(y).to(dev),
            mask=torch.from_numpy(np.array(panel.mask)).to(dev),
            asset_ids=torch.arange(len(assets), device=dev),
            sector_ids=torch.tensor([vocab.index(s) for s in sectors], device=dev),
            train_rows=rows[eligible & (rows < a_end)],
            val_rows=rows[eligible & (rows >= a_end) & (rows < v_end)],
        )
        fingerprint = self._fingerprint(panel, b)
        with torch_threads(cfg.num_threads):
            net = NeuralFactorsNet.build(cfg, len(assets), len(vocab), torch.Generator().manual_seed(seed % 2**63)).to(dev)
            result = train(net, data, cfg, seed, out_dir=out_dir, fingerprint=fingerprint, progress=progress, callback=callback)
            net.load_state_dict(result.best_state)
        net.eval()
        self.net_ = net
        self.spec_ = spec
        self.assets_ = assets
        self.sectors_ = tuple(sectors)
        self.sector_vocab_ = tuple(vocab)
        self.train_result_: TrainResult | None = result
        self.fit_info_ = {
            "best_val": result.best_val,
            "best_step": result.best_step,
            "elapsed": result.elapsed,
            "history": result.history,
            "seed": seed,
        }
        self._post_fit()
        if out_dir is not None:
            self.save(Path(out_dir) / MODEL_FILE)
        return self

    def _post_fit(self) -> None:
        self.device_ = next(self.net_.parameters()).device
        self.asset_ids_ = torch.arange(len(self.assets_), device=self.device_)
        self.sector_ids_ = torch.tensor([self.sector_vocab_.index(s) for s in self.sectors_], device=self.device_)
        with torch.no_grad():
            s, d = self.net_.prior()
        self._prior = (s.double().cpu().numpy().copy(), d.double().cpu().numpy().copy())

    def to(self, device: str) -> NeuralFactors:
        """Move the fitted model to ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``); returns ``self``.

        The config's ``device`` is updated (it is a runtime field: the model is unchanged).
        """
        self._check_fitted()
        dev = resolve_device(device)
        self.config = self.config.replace(device=device)
        self.spec_.config = self.config
        self.net_.to(dev)
        self._post_fit()
        return self

    @staticmethod
    def _sectors(panel: ReturnPanel) -> list[str]:
        if panel.static is not None and "sector" in panel.static.columns:
            return [str(v) for v in panel.static["sector"].tolist()]
        return ["(none)"] * panel.N

    @staticmethod
    def _fingerprint(panel: ReturnPanel, bounds: dict[str, tuple[int, int]]) -> str:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(panel.filled(0.0)).tobytes())
        h.update(np.ascontiguousarray(panel.mask).tobytes())
        h.update(json.dumps([list(panel.assets), NeuralFactors._sectors(panel), bounds, str(panel.dates[0])]).encode())
        return h.hexdigest()

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError("NeuralFactors is not fitted; call fit() or NeuralFactors.load()")

    # ---------------------------------------------------------------- internals
    def prior_np(self) -> tuple[np.ndarray, np.ndarray]:
        """The prior's scale ``(F,)`` and degrees of freedom ``(F,)`` (``inf``: Gaussian)."""
        self._check_fitted()
        return self._prior

    def check_windows(self, windows: np.ndarray, allow_2d: bool) -> np.ndarray:
        """Validate history windows ``(P, W, N)`` (or ``(W, N)`` when ``allow_2d``); returns
        their last ``min_history`` rows."""
        self._check_fitted()
        w = np.asarray(windows, dtype=np.float64)
        if w.ndim == 2 and allow_2d:
            pass
        elif w.ndim != 3:
            raise DataValidationError(f"windows must be {'(W, N) or ' if allow_2d else ''}(P, W, N), got shape {w.shape}")
        if w.shape[-1] != len(self.assets_):
            raise DataValidationError(f"windows have {w.shape[-1]} assets; the model was fitted on {len(self.assets_)}")
        if w.shape[-2] < self.min_history:
            raise DataValidationError(f"windows have {w.shape[-2]} days; NeuralFactors needs min_history={self.min_history}")
        if np.isinf(w).any():
            raise DataValidationError("windows contain infinite returns")
        return w[..., -self.min_history :, :]

    def _heads(self, h: torch.Tensor) -> FactorParams:
        """Heads on ``h2`` ``(..., N, H)`` -> scaled-unit parameters."""
        return self.net_.heads(h, self.asset_ids_, self.sector_ids_)

    def prefill(self, windows: np.ndarray) -> tuple[torch.Tensor, StreamState, IncrementalFeatures | None]:
        """Streaming state from windows ``(P, min_history, N)``: ``h2`` ``(P, N, H)``, state, features."""
        cfg = self.config
        R = cfg.receptive_field  # noqa: N806
        P, _, N = windows.shape  # noqa: N806
        x = self.spec_.window_inputs(windows, R)  # (P, R, N, D)
        xt = torch.from_numpy(x).to(self.device_).permute(0, 2, 1, 3).reshape(P * N, R, -1)
        h, state = self.net_.prefill(xt)
        feats = IncrementalFeatures(windows, cfg.features) if cfg.use_features else None
        return h.view(P, N, -1), state, feats

    def _h_windows(self, windows: np.ndarray, batch: int = 64) -> torch.Tensor:
        """``h2`` ``(D, N, H)`` for independent windows ``(D, min_history, N)``."""
        R = self.config.receptive_field  # noqa: N806
        batch = max(1, min(batch, MAX_SEQUENCES // max(windows.shape[-1], 1)))  # bounded attention memory
        out = []
        for a in range(0, windows.shape[0], batch):
            w = windows[a : a + batch]
            x = self.spec_.window_inputs(w, R)  # (b, R, N, D)
            b, _, N, _ = x.shape  # noqa: N806
            xt = torch.from_numpy(x).to(self.device_).permute(0, 2, 1, 3).reshape(b * N, R, -1)
            out.append(self.net_.encode(xt)[:, -1].view(b, N, -1))
        return torch.cat(out)

    def _h_series(self, series: np.ndarray, n_out: int, chunk: int = 128) -> torch.Tensor:
        """``h2`` ``(n_out, N, H)`` for the contexts ending at the last ``n_out`` rows of ``series``."""
        cfg = self.config
        R = cfg.receptive_field  # noqa: N806
        T, N = series.shape  # noqa: N806
        if cfg.sequence_model != "attention":  # recurrent: every context runs over exactly R days
            idx = np.arange(T - n_out - self.min_history + 1, T - self.min_history + 1)[:, None] + np.arange(self.min_history)
            return self._h_windows(series[idx])
        n_in = n_out + R - 1
        M, m_ok = self.spec_.market_inputs(series, n_in)  # noqa: N806
        if cfg.use_features:
            start = T - n_in - cfg.features.warmup + 1
            X, valid = batched_features(series[start:], cfg.features)  # noqa: N806
            x = self.spec_.assemble(series[T - n_in :], X[-n_in:], valid[-n_in:], M, m_ok)
        else:
            x = self.spec_.assemble(series[T - n_in :], None, None, M, m_ok)
        xt = torch.from_numpy(x).to(self.device_).permute(1, 0, 2)  # (N, n_in, D)
        out = []
        for a in range(0, n_out, chunk):
            b = min(a + chunk, n_out)
            h = self.net_.encode(xt[:, a : b + R - 1])[:, R - 1 :]  # (N, b-a, H)
            out.append(h.transpose(0, 1))
        return torch.cat(out)

    # ---------------------------------------------------------------- prediction
    def factor_params_windows(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Factor-model parameters for a batch of windows ``(D, W, N)``, in return units.

        Returns ``alpha`` ``(D, N)``, ``beta`` ``(D, N, F)``, ``sigma`` ``(D, N)``, ``nu``
        ``(D, N)``, ``prior_scale`` ``(F,)`` and ``prior_dof`` ``(F,)``. Consecutive windows
        (each the previous shifted by one day, as when scanning a panel) are computed in
        one causal pass.
        """
        w = self.check_windows(windows, allow_2d=False)
        D = w.shape[0]  # noqa: N806
        with torch_threads(self.config.inference_threads), torch.inference_mode():
            if D > 1 and np.array_equal(w[1:, :-1], w[:-1, 1:], equal_nan=True):
                series = np.concatenate([w[0], w[1:, -1]], axis=0)
                h = self._h_series(series, D)
            else:
                h = self._h_windows(w)
            p = self._heads(h)
        s = self.spec_.scale
        ps, pd = self.prior_np()
        return {
            "alpha": p.alpha.double().cpu().numpy() * s,
            "beta": p.beta.double().cpu().numpy() * s[:, None],
            "sigma": p.sigma.double().cpu().numpy() * s,
            "nu": p.nu.double().cpu().numpy(),
            "prior_scale": ps.copy(),
            "prior_dof": pd.copy(),
        }

    def predict_windows(self, windows: np.ndarray) -> list[Predictive]:
        """Batched :meth:`predict_window` over windows ``(D, W, N)``."""
        fp = self.factor_params_windows(windows)
        threads = self.config.inference_threads
        return [
            NeuralFactorsPredictive(
                fp["alpha"][d], fp["beta"][d], fp["sigma"][d], fp["nu"][d], fp["prior_scale"], fp["prior_dof"], threads=threads
            )
            for d in range(fp["alpha"].shape[0])
        ]

    def predict_window(self, window: np.ndarray) -> NeuralFactorsPredictive:
        """Distribution of the day after ``window`` ``(W, N)`` (the last ``min_history`` rows)."""
        w = np.asarray(window, dtype=np.float64)
        if w.ndim != 2:
            raise DataValidationError(f"window must be (W, N), got shape {w.shape}")
        return self.predict_windows(w[None])[0]  # type: ignore[return-value]

    def predict_range(self, panel: ReturnPanel, start: int, stop: int) -> list[Predictive]:
        """Predictives of days ``start+1 .. stop`` given rows up to ``start .. stop-1`` (one pass)."""
        if start + 1 < self.min_history or stop > panel.T or start >= stop:
            raise DataValidationError(f"invalid context range [{start}, {stop}) for min_history={self.min_history}")
        series = np.asarray(panel.returns[start + 1 - self.min_history : stop])
        idx = np.arange(stop - start)[:, None] + np.arange(self.min_history)
        return self.predict_windows(series[idx])

    def simulator_window(self, window: np.ndarray, rngs: Sequence[np.random.Generator]) -> NeuralFactorsSimulator:
        """Paths after a shared history ``(W, N)`` or per-path histories ``(P, W, N)``."""
        return NeuralFactorsSimulator(self, window, rngs)

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """One atomic artifact: config, weights, return scales, feature scaler, schema, version."""
        self._check_fitted()
        info = dict(self.fit_info_)
        meta = {
            "kind": self.kind,
            "model_format": MODEL_FORMAT,
            "torch_version": torch.__version__,
            "config": self.config.to_dict(),
            "assets": list(self.assets_),
            "sectors": list(self.sectors_),
            "sector_vocab": list(self.sector_vocab_),
            "feature_scaler": self.spec_.feature_scaler.to_dict() if self.spec_.feature_scaler is not None else None,
            "market_scaler": self.spec_.market_scaler.to_dict() if self.spec_.market_scaler is not None else None,
            "feature_names": self.config.features.names if self.config.use_features else [],
            "fit_info": info,
        }
        arrays = {"return_scale": np.asarray(self.spec_.scale, dtype=np.float64)}
        weights = {k: v.cpu() for k, v in self.net_.state_dict().items()}  # loads anywhere
        write_artifact(path, meta, arrays=arrays, blobs={"weights.pt": state_to_bytes(weights)})

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> NeuralFactors:
        """Read an artifact written by :meth:`save`; corrupt or incompatible -> CheckpointError.

        The weights are read onto the CPU, then moved to ``device`` (``"auto"``, ``"cpu"``,
        ``"cuda"``); ``None`` takes the saved config's device, or the CPU where that is CUDA
        and none is available here (a checkpoint always loads on a CPU-only machine).
        """
        path = Path(path)
        meta, arrays, blobs = read_artifact(path, expect_kind=cls.kind)
        if meta.get("model_format") != MODEL_FORMAT:
            raise CheckpointError(f"{path} has NeuralFactors format {meta.get('model_format')!r}; expected {MODEL_FORMAT}")
        try:
            cfg = NeuralFactorsConfig.from_dict(meta["config"])
            assets = tuple(str(a) for a in meta["assets"])
            sectors = tuple(str(s) for s in meta["sectors"])
            vocab = tuple(str(s) for s in meta["sector_vocab"])
            scale = np.asarray(arrays["return_scale"], dtype=np.float64)
            fs = meta["feature_scaler"]
            scaler = FeatureScaler.from_dict(fs) if fs is not None else None
            ms = meta.get("market_scaler")
            m_scaler = FeatureScaler.from_dict(ms) if ms is not None else None
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a valid NeuralFactors artifact: {exc}") from exc
        if device is None and cfg.device != "cpu" and not torch.cuda.is_available():
            device = "cpu"
        if device is not None:
            cfg = cfg.replace(device=device)
        dev = resolve_device(cfg.device)
        bad_schema = scale.shape != (len(assets),) or len(sectors) != len(assets) or (cfg.use_features and scaler is None)
        if bad_schema or (cfg.market_state is not None and m_scaler is None):
            raise CheckpointError(f"{path} has an inconsistent data schema")
        if "weights.pt" not in blobs:
            raise CheckpointError(f"{path} holds no weights")
        net = NeuralFactorsNet.build(cfg, len(assets), len(vocab))
        try:
            net.load_state_dict(state_from_bytes(blobs["weights.pt"], "weights", path))
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{path}: weights do not match the saved configuration: {exc}") from exc
        net.to(dev).eval()
        self = cls(cfg)
        self.net_ = net
        self.spec_ = InputSpec(cfg, scale, scaler, m_scaler)
        self.assets_, self.sectors_, self.sector_vocab_ = assets, sectors, vocab
        self.train_result_ = None
        self.fit_info_ = dict(meta.get("fit_info") or {})
        self._post_fit()
        return self

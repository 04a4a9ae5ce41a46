"""``DiffusionGenerator``: the factor-conditioned diffusion model behind the generator interface.

Data flow (day ``t`` -> day ``t + 1``)::

    window (W, N) of simple returns, rows <= t
      -> factors.window_factors: asset factors (XS z-scored, winsorised), day context, scale s_t
      -> x_i = [asset factors_i, context standardised over time]            (N, K)
      -> reverse diffusion of y = log(1 + r_{t+1}) / s_t given x           (S, N)
      -> r = expm1(s_t * y)                                                 simple returns

Absent assets (no full factor history, or no return on day ``t``) are masked out of
attention and get ``NaN`` samples, following the panel convention that absence is never a
zero return.

Randomness
----------
* :meth:`DiffusionPredictive.sample` draws all Gaussian noise from one ``torch.Generator``
  derived from the ``numpy.random.Generator`` it is given (:func:`torch_generator`), created
  on the model's device (so the draws of a seed differ between a CPU and a GPU).
* :class:`DiffusionPathSimulator` draws path ``p``'s noise in numpy from ``rngs[p]`` only and
  batches the network over paths, so a path's trajectory does not depend on the other paths
  (up to float32 round-off of batched matrix products, below 1e-6 of a return in tests).
* Training draws from ``numpy.random.default_rng([seed, step])``; weights are initialised from
  a ``torch.Generator`` seeded with ``seed``. The global torch RNG is never read or seeded.

Device
------
``config.device`` (``"auto"``, ``"cpu"``, ``"cuda"``; :mod:`~factorgym.generators.diffusion.device`)
decides where the network trains and samples; inputs go to it and samples come back as
numpy arrays on the CPU. Weights are saved from the CPU; :meth:`DiffusionGenerator.load` puts
them on the device asked for (by default the saved setting, or the CPU where that setting
asks for a GPU this machine lacks); :meth:`DiffusionGenerator.to` moves a fitted model.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from factorgym.data import MAX_ABS_DAILY_RETURN, ReturnPanel, Split
from factorgym.errors import DataValidationError, NotFittedError
from factorgym.features import FeatureScaler
from factorgym.generators.base import (
    ReturnGenerator,
    SamplePredictive,
    register_generator,
    torch_generator,
    torch_threads,
)
from factorgym.generators.diffusion.config import DiffusionConfig
from factorgym.generators.diffusion.device import check_device, resolve_device
from factorgym.generators.diffusion.diffusion import GaussianDiffusion
from factorgym.generators.diffusion.factors import factor_names, panel_factors, window_factors
from factorgym.generators.diffusion.model import FactorDiT
from factorgym.generators.diffusion.persistence import load_artifact, save_artifact
from factorgym.generators.diffusion.simulator import MOMENT_SEED, DiffusionPathSimulator
from factorgym.generators.diffusion.training import Trainer, TrainingSet

__all__ = ["DiffusionGenerator", "DiffusionPredictive", "DiffusionPathSimulator", "MOMENT_SEED"]

#: File name of the final artifact written to ``out_dir`` by :meth:`DiffusionGenerator.fit`.
MODEL_FILE = "diffusion.zip"


class DiffusionPredictive(SamplePredictive):
    """Sample-based next-day distribution of one day.

    Mean, covariance, marginal CDF and quantiles are estimates from ``n_moment_samples``
    draws with the fixed seed :data:`MOMENT_SEED` (common random numbers across days).
    There is no ``log_prob``: a diffusion model has no closed-form likelihood.

    Attributes
    ----------
    present : ndarray of shape (N,), bool
        Assets the model conditions on; the others are sampled as NaN.
    """

    def __init__(
        self,
        sampler: Callable[[int, np.random.Generator], np.ndarray],
        present: np.ndarray,
        n_moment_samples: int,
        samples: np.ndarray | None = None,
    ) -> None:
        super().__init__(sampler, int(present.shape[0]), n_moment_samples, seed=MOMENT_SEED, samples=samples)
        self.present = present


@register_generator
class DiffusionGenerator(ReturnGenerator):
    """Factor-conditioned diffusion transformer over the cross-section of next-day returns.

    Parameters
    ----------
    config : DiffusionConfig, optional
    **overrides
        Fields of :class:`DiffusionConfig` to change, e.g. ``max_steps=500``.

    Attributes
    ----------
    assets_ : tuple of str
    model_ : FactorDiT
        Selected EMA weights, in eval mode, on ``device_``.
    device_ : torch.device
        Where the model computes (the device of its weights).
    diffusion_ : GaussianDiffusion
    context_scaler_ : FeatureScaler or None
        Train-split time-series standardisation of the day-context columns.
    train_std_ : ndarray of shape (N,) or None
        Per-asset train std of log returns (``scale == "train_std"``).
    fit_info_ : dict
        Seed, steps, the selection criterion (``selection``), the best step and its score
        (``best_score``) and validation loss (``best_val_loss``), the history of every
        evaluation (``val_loss`` and, for a sample score, ``val_score``), device, timings.

    Examples
    --------
    >>> gen = DiffusionGenerator(max_steps=2000).fit(panel, Split())      # doctest: +SKIP
    >>> pred = gen.predict(panel, t)                                       # doctest: +SKIP
    >>> pred.sample(500, np.random.default_rng(0)).shape                   # doctest: +SKIP
    (500, 20)
    """

    kind = "diffusion"

    def __init__(self, config: DiffusionConfig | None = None, **overrides: Any) -> None:
        cfg = config if config is not None else DiffusionConfig()
        self.config = cfg.replace(**overrides) if overrides else cfg

    def __repr__(self) -> str:
        state = f"fitted on {len(self.assets_)} assets" if hasattr(self, "model_") else "unfitted"
        return f"DiffusionGenerator({state}, d_model={self.config.d_model}, n_layers={self.config.n_layers})"

    @property
    def device_(self) -> torch.device:
        """Where the fitted model computes (the device of its weights)."""
        self._check_fitted()
        return next(self.model_.parameters()).device

    @property
    def min_history(self) -> int:
        return self.config.min_history

    def get_params(self) -> dict[str, Any]:
        return {"config": self.config}

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        panel: ReturnPanel,
        split: Split,
        *,
        out_dir: str | Path | None = None,
        progress: bool = True,
        rng: np.random.Generator | None = None,
    ) -> DiffusionGenerator:
        """Train on ``split``'s train rows; keep the EMA weights with the best validation score.

        The score is ``config.selection``'s (by default the energy score of the model's
        samples on validation days; see :class:`DiffusionConfig`). Test rows are never read. Training pairs are (factors of day ``t``, return of day
        ``t + 1``) with both days in the train split; validation pairs have ``t + 1`` in the
        validation split. With ``out_dir``, a resumable train state is kept there (a rerun
        with the same config, data and ``rng`` seed continues it) and the final model is
        written to ``out_dir/diffusion.zip``.

        Parameters
        ----------
        panel : ReturnPanel
        split : Split
        out_dir : path, optional
        progress : bool
        rng : numpy.random.Generator, optional
            One integer is drawn from it as the training seed (default ``config.seed``).
        """
        cfg = self.config
        device = resolve_device(cfg.device)  # fail before any work on a machine without it
        seed = int(rng.integers(0, 2**63 - 1)) if rng is not None else int(cfg.seed)
        b = split.bounds(panel.dates)
        (tr0, tr1), (_, va1) = b["train"], b["val"]
        if tr1 - tr0 < cfg.min_history + 2:
            raise DataValidationError(
                f"the train split of {panel.name} has {tr1 - tr0} days; the factor windows need "
                f"{cfg.min_history} days of history plus training days"
            )
        if va1 <= tr1:
            raise DataValidationError(f"the validation split of {panel.name} is empty")
        t_start = time.perf_counter()
        returns = np.asarray(panel.returns[:va1])  # the test rows are never read
        avail = np.asarray(panel.mask[:va1])
        fac = panel_factors(returns, cfg)
        lr = np.log1p(np.where(avail, returns, 0.0))

        self.assets_ = tuple(panel.assets)
        self.train_std_ = None
        if cfg.scale == "train_std":
            sd = np.array([lr[:tr1][avail[:tr1, j], j].std(ddof=1) for j in range(panel.N)])
            self.train_std_ = np.maximum(np.nan_to_num(sd, nan=cfg.scale_floor), cfg.scale_floor)
        self.context_scaler_ = None
        if fac.context.shape[1]:
            ok = np.isfinite(fac.context[:tr1]).all(axis=1)
            self.context_scaler_ = FeatureScaler().fit(fac.context[:tr1][:, None, :], ok[:, None])

        x, present, scale = self._inputs(fac)  # (T, N, K), (T, N), (T, N)
        # pair t -> t + 1
        y = lr[1:] / np.where(present[:-1], scale[:-1], 1.0)
        y = np.clip(np.nan_to_num(y), -cfg.target_clip, cfg.target_clip).astype(np.float32)
        m = present[:-1] & avail[1:]
        xs = x[:-1]
        names_a, _ = factor_names(cfg)
        pc_cols = tuple(i for i, n in enumerate(names_a) if n.startswith("pc"))
        tr = slice(0, tr1 - 1)  # t + 1 <= tr1 - 1
        va = slice(tr1 - 1, va1 - 1)  # t + 1 in the validation rows
        train_set = TrainingSet(xs[tr], y[tr], m[tr], pc_cols)
        val_set = TrainingSet(xs[va], y[va], m[va], (), scale=scale[:-1][va])

        dit_cfg = cfg.dit(x.shape[-1])
        with torch_threads(cfg.num_threads):
            model = FactorDiT(dit_cfg, generator=torch.Generator().manual_seed(seed)).to(device)
            diffusion = GaussianDiffusion(
                cfg.schedule, cfg.n_diffusion_steps, cfg.skip, cfg.loss_weight, cfg.weight_cap
            ).to(device)
            trainer = Trainer(
                model, diffusion, cfg, train_set, val_set, seed=seed, out_dir=out_dir,
                fingerprint=_fingerprint(panel, va1), progress=progress,
            )
            result = trainer.run()
            model.load_state_dict(result.best_state)
        model.eval().requires_grad_(False)
        self.model_ = model
        self.diffusion_ = diffusion
        at_best = [h for h in result.history if int(h["step"]) == result.best_step]
        self.fit_info_ = {
            "seed": seed,
            "steps": result.steps,
            "selection": cfg.selection,
            "best_step": result.best_step,
            "best_score": result.best_val,
            "best_val_loss": at_best[-1]["val_loss"] if at_best else float("nan"),
            "history": result.history,
            "device": str(device),
            "resumed_from": result.resumed_from,
            "train_days": train_set.n_days,
            "val_days": val_set.n_days,
            "n_params": model.n_params,
            "train_seconds": result.seconds,
            "fit_seconds": time.perf_counter() - t_start,
            "train_range": [str(panel.dates[tr0].date()), str(panel.dates[tr1 - 1].date())],
            "val_range": [str(panel.dates[tr1].date()), str(panel.dates[va1 - 1].date())],
            "panel": panel.name,
        }
        if out_dir is not None:
            self.save(Path(out_dir) / MODEL_FILE)
        return self

    # ------------------------------------------------------------------ inputs
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this DiffusionGenerator is not fitted; call fit() or load() first")

    def _inputs(self, fac: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Network inputs from :class:`Factors`: ``x`` (..., N, K) float32, present, scale."""
        cfg = self.config
        parts = [fac.assets]
        if self.context_scaler_ is not None:
            ctx = np.clip(self.context_scaler_.transform(fac.context), -cfg.context_clip, cfg.context_clip)
            parts.append(np.broadcast_to(ctx[..., None, :], (*fac.assets.shape[:-1], ctx.shape[-1])))
        x = np.concatenate(parts, axis=-1)
        present = fac.present & np.isfinite(x).all(axis=-1)
        x = np.where(present[..., None], x, 0.0).astype(np.float32)
        scale = fac.scale if self.train_std_ is None else np.broadcast_to(self.train_std_, fac.present.shape)
        return x, present, np.where(present, scale, np.nan)

    def window_inputs(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Network inputs for history windows ``(..., W, N)``: ``x`` ``(..., N, K)``, present and
        scale ``(..., N)`` (validates the windows)."""
        self._check_fitted()
        w = np.asarray(windows, dtype=np.float64)
        if w.ndim < 2 or w.shape[-1] != len(self.assets_):
            raise DataValidationError(
                f"window has shape {w.shape}; expected (..., W, {len(self.assets_)}) for the fitted assets"
            )
        if w.shape[-2] < self.min_history:
            raise DataValidationError(
                f"window has {w.shape[-2]} days; this generator needs {self.min_history} days of history"
            )
        return self._inputs(window_factors(w, self.config))

    # ------------------------------------------------------------------ sampling core
    @property
    def n_noise_draws(self) -> int:
        """Gaussian draws of shape ``(N,)`` one scenario consumes with the configured sampler."""
        c = self.config
        return self.diffusion_.n_noise_draws(c.sampler, c.sample_steps, c.eta)

    def sample_returns(
        self, x: np.ndarray, present: np.ndarray, scale: np.ndarray, noise: torch.Tensor
    ) -> np.ndarray:
        """Scenarios of simple returns for ``D`` days.

        Parameters
        ----------
        x : ndarray (D, N, K); present, scale : ndarray (D, N)
        noise : Tensor (n_draws, D or 1, S, N)
            Per-day (or shared) pre-drawn noise of ``S`` scenarios.

        Returns
        -------
        ndarray of shape (D, S, N)
            NaN at absent assets.
        """
        cfg = self.config
        D, N = present.shape
        S = noise.shape[2]
        sb = cfg.sample_batch
        out = np.empty((D, S, N))
        dev = self.device_
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)
        mt = torch.from_numpy(np.ascontiguousarray(present)).to(dev)
        noise = noise.to(dev)
        per = max(1, sb // S) if S <= sb else 1
        model = self.model_
        with torch_threads(cfg.num_threads), torch.no_grad():
            for d0 in range(0, D, per):
                d1 = min(d0 + per, D)
                Dc = d1 - d0
                fx = model.embed_factors(xt[d0:d1], mt[d0:d1])  # (Dc, N, Dm)
                for s0 in range(0, S, sb):
                    s1 = min(s0 + sb, S)
                    sc = s1 - s0
                    nz = noise[:, d0:d1] if noise.shape[1] != 1 else noise
                    nz = nz[:, :, s0:s1].expand(-1, Dc, sc, N)  # (draws, Dc, sc, N)
                    md = mt[d0:d1]

                    def denoise(yy: torch.Tensor, n: int, fx=fx, md=md, Dc=Dc) -> torch.Tensor:
                        return model.denoise(yy, torch.full((Dc,), n, dtype=torch.int64, device=dev), fx, md)

                    y = self.diffusion_.sample(
                        denoise, nz, sampler=cfg.sampler, sample_steps=cfg.sample_steps, eta=cfg.eta,
                        clip=cfg.target_clip,
                    )  # (Dc, sc, N)
                    out[d0:d1, s0:s1] = y.to(torch.float64).cpu().numpy()
        r = np.expm1(out * scale[:, None, :])
        r = np.minimum(r, MAX_ABS_DAILY_RETURN)
        return np.where(present[:, None, :], r, np.nan)

    def torch_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``(n_draws, 1, n, N)`` standard normals from ``generator`` (on its device)."""
        shape = (self.n_noise_draws, 1, n, len(self.assets_))
        return torch.randn(shape, generator=generator, device=generator.device)

    def torch_generator(self, rng: np.random.Generator) -> torch.Generator:
        """A ``torch.Generator`` on the model's device, seeded from ``rng`` (one draw)."""
        self._check_fitted()
        return torch_generator(rng, device=str(self.device_))

    def to(self, device: str) -> DiffusionGenerator:
        """Move the fitted model to ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``); returns self.

        ``config.device`` becomes ``device``, so a later :meth:`save` records it.
        """
        self._check_fitted()
        dev = resolve_device(check_device(device))
        self.config = self.config.replace(device=device)
        self.model_ = self.model_.to(dev)
        self.diffusion_ = self.diffusion_.to(dev)
        return self

    # ------------------------------------------------------------------ interface
    def predict_window(self, window: np.ndarray) -> DiffusionPredictive:
        """Next-day distribution after ``window`` ``(W, N)`` (a sample-based predictive)."""
        w = np.asarray(window, dtype=np.float64)
        if w.ndim != 2:
            raise DataValidationError(f"predict_window takes one window (W, N), got shape {w.shape}")
        return self._predictives(w[None])[0]

    def predict_windows(self, windows: np.ndarray) -> list[DiffusionPredictive]:
        """:meth:`predict_window` for ``(D, W, N)``: the factors of all days in one pass.

        The moment draws are made lazily, day by day, when a moment, CDF or quantile is
        first asked for (the same draws either way): a caller that only samples (an
        optimizer agent drawing its own scenarios) pays for no moment draws, and one day's
        ``n_moment_samples`` scenarios already fill the sampler's batch.
        """
        w = np.asarray(windows, dtype=np.float64)
        if w.ndim != 3:
            raise DataValidationError(f"predict_windows takes windows (D, W, N), got shape {w.shape}")
        return self._predictives(w)

    def _predictives(self, windows: np.ndarray) -> list[DiffusionPredictive]:
        x, present, scale = self.window_inputs(windows)
        m = self.config.n_moment_samples
        out = []
        for d in range(windows.shape[0]):
            xd, pd_, sd = x[d : d + 1], present[d : d + 1], scale[d : d + 1]

            def sampler(n: int, rng: np.random.Generator, xd=xd, pd_=pd_, sd=sd) -> np.ndarray:
                noise = self.torch_noise(n, self.torch_generator(rng))
                return self.sample_returns(xd, pd_, sd, noise)[0]

            out.append(DiffusionPredictive(sampler, present[d].copy(), m))
        return out

    def sample_windows(self, windows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` scenarios for each of ``D`` days, batched: ``(D, W, N)`` -> ``(D, n, N)``.

        Day ``d`` draws its noise from its own stream ``rng.spawn(D)[d]``, so its scenarios
        do not depend on the other days in the batch.
        """
        w = np.asarray(windows, dtype=np.float64)
        if w.ndim != 3:
            raise DataValidationError(f"sample_windows takes windows (D, W, N), got shape {w.shape}")
        x, present, scale = self.window_inputs(w)
        streams = rng.spawn(w.shape[0])
        out = np.empty((w.shape[0], n, len(self.assets_)))
        per = max(1, self.config.sample_batch // max(n, 1))  # days per chunk: bounded noise memory
        for d0 in range(0, w.shape[0], per):
            d1 = min(d0 + per, w.shape[0])
            noise = torch.cat([self.torch_noise(n, self.torch_generator(r)) for r in streams[d0:d1]], dim=1)
            out[d0:d1] = self.sample_returns(x[d0:d1], present[d0:d1], scale[d0:d1], noise)
        return out

    def simulator_window(
        self, window: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> DiffusionPathSimulator:
        """Paths after ``window`` (``(W, N)`` shared or ``(P, W, N)``), one per stream in ``rngs``."""
        self._check_fitted()
        return DiffusionPathSimulator(self, window, rngs)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """One atomic artifact: config, weights (saved from the CPU), scalers, assets, fit
        summary (with the selection criterion and its history), versions."""
        self._check_fitted()
        save_artifact(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> DiffusionGenerator:
        """Read an artifact written by :meth:`save`; corrupt/incompatible -> CheckpointError.

        Parameters
        ----------
        path : path
        device : {"auto", "cpu", "cuda"}, optional
            Where the loaded model computes (it becomes ``config.device``). Default: the
            saved setting, except that a saved ``"cuda"`` on a machine where torch sees no
            GPU becomes ``"auto"`` (the CPU): a model trained on a GPU loads anywhere.
        """
        return load_artifact(cls, path, device)


def _fingerprint(panel: ReturnPanel, stop: int) -> str:
    """Hash of the rows a fit reads (dates, assets, returns, mask)."""
    h = hashlib.sha256()
    h.update("\x1f".join(panel.assets).encode())
    h.update(np.asarray(panel.dates[:stop].asi8).tobytes())
    h.update(np.nan_to_num(np.asarray(panel.returns[:stop]), nan=0.0).tobytes())
    h.update(np.asarray(panel.mask[:stop]).tobytes())
    return h.hexdigest()

"""Training loop: DDPM noise prediction, EMA, validation selection, atomic resumable state.

Determinism and resume
----------------------
All randomness of step ``s`` (which days, which diffusion steps, which noise, PC sign
flips) comes from ``numpy.random.default_rng([seed, s])``, and the learning rate is a pure
function of ``s``. The train state (weights, EMA weights, AdamW moments, best weights, history)
is written atomically to ``out_dir/train_state.pt`` every ``checkpoint_every`` steps, so a
run killed at any point and restarted with the same config, data and seed continues exactly
where its last state left it and ends with the same weights as an uninterrupted run (on the
same machine and thread count; sampling-only fields and ``num_threads`` may change). A state
written by a different training config, data or seed is refused with
:class:`~factorgym.errors.CheckpointError`. There is no dropout, so the global torch RNG is
never used.

The validation loss is the diffusion loss of the **EMA** weights on every validation day
with ``val_repeats`` stratified diffusion steps and noise fixed once (seed
:data:`VAL_SEED`), so successive evaluations differ only through the weights. It is recorded
at every evaluation; the weights kept are those with the best ``config.selection`` criterion:
by default the energy score of the model's samples on validation days
(:mod:`~factorgym.generators.diffusion.selection`), else that loss.

Device: the networks and every batch live on the model's device (``config.device``, resolved
by the generator); batches and the validation noise are drawn in numpy, so a fit depends on
its seed, not on the device (up to float round-off). The kept weights are held on the CPU.
"""

from __future__ import annotations

import copy
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from factorgym.artifacts import atomic_write_bytes
from factorgym.errors import CheckpointError, DataValidationError
from factorgym.generators.diffusion.config import DiffusionConfig
from factorgym.generators.diffusion.diffusion import GaussianDiffusion
from factorgym.generators.diffusion.model import FactorDiT
from factorgym.generators.diffusion.selection import ValidationScorer
from factorgym.progress import Progress

__all__ = ["TrainingSet", "TrainResult", "Trainer", "TRAIN_STATE_FILE", "VAL_SEED"]

#: File name of the resumable train state inside ``out_dir``.
TRAIN_STATE_FILE = "train_state.pt"
#: Seed of the fixed validation noise.
VAL_SEED = 20_250_926
_STATE_VERSION = 2
#: Config fields that do not affect training (a resume may change them).
_NOT_TRAINING = frozenset({"num_threads", "device", "sampler", "sample_steps", "eta", "n_moment_samples", "sample_batch"})
#: ... of which these pick the kept weights when the selection scores samples.
_SAMPLER_FIELDS = frozenset({"sampler", "sample_steps", "eta"})


def _training_fields(config: DiffusionConfig) -> dict[str, Any]:
    skip = _NOT_TRAINING if config.selection == "loss" else _NOT_TRAINING - _SAMPLER_FIELDS
    return {k: v for k, v in config.to_dict().items() if k not in skip}


@dataclass
class TrainingSet:
    """Days of (factor vectors, standardised next-day returns, presence).

    Attributes
    ----------
    x : ndarray of shape (D, N, K), float32
        Factor vectors (0 where absent).
    y : ndarray of shape (D, N), float32
        Standardised targets (0 where absent).
    mask : ndarray of shape (D, N), bool
        Asset present on the day and its next-day return observed.
    pc_cols : tuple of int
        Columns of ``x`` holding principal-component loadings (sign-flip augmentation).
    scale : ndarray of shape (D, N), optional
        Daily log-return scale of each target (1 where absent), to map targets back to
        returns (the ``"crps_ew"`` selection).
    """

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    pc_cols: tuple[int, ...] = ()
    scale: np.ndarray | None = None

    def __post_init__(self) -> None:
        keep = self.mask.any(axis=1)
        self.x = np.ascontiguousarray(self.x[keep], dtype=np.float32)
        self.y = np.ascontiguousarray(self.y[keep], dtype=np.float32)
        self.mask = np.ascontiguousarray(self.mask[keep])
        if self.scale is not None:
            sc = np.where(self.mask, np.asarray(self.scale)[keep], 1.0)
            self.scale = np.ascontiguousarray(np.nan_to_num(sc, nan=1.0), dtype=np.float64)

    @property
    def n_days(self) -> int:
        """Number of days ``D`` with at least one present asset."""
        return int(self.x.shape[0])


@dataclass
class TrainResult:
    """What :meth:`Trainer.run` returns."""

    best_state: dict[str, torch.Tensor]
    best_step: int
    #: the best value of the selection criterion (``config.selection``)
    best_val: float
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    #: training wall time, summed over every run of this fit (resumes included)
    seconds: float = 0.0
    resumed_from: int = 0


def learning_rate(config: DiffusionConfig, step: int) -> float:
    """Linear warm-up over ``warmup_steps`` then cosine decay to ``lr / 10`` at ``max_steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(config.max_steps - config.warmup_steps, 1)
    frac = min((step - config.warmup_steps) / span, 1.0)
    return config.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))


class Trainer:
    """Fits a :class:`FactorDiT` to a :class:`TrainingSet`.

    Parameters
    ----------
    model : FactorDiT
        Initialised network (trained in place).
    diffusion : GaussianDiffusion
    config : DiffusionConfig
    train, val : TrainingSet
    seed : int
        Root of the per-step random streams.
    out_dir : path, optional
        Where the resumable train state lives.
    fingerprint : str
        Identifies the data; a train state written for other data is refused.
    progress : bool
        Show a progress display (:class:`factorgym.progress.Progress`).
    """

    def __init__(
        self,
        model: FactorDiT,
        diffusion: GaussianDiffusion,
        config: DiffusionConfig,
        train: TrainingSet,
        val: TrainingSet,
        *,
        seed: int,
        out_dir: str | Path | None = None,
        fingerprint: str = "",
        progress: bool = True,
    ) -> None:
        if train.n_days == 0:
            raise DataValidationError("no training day has a present asset (history too short for the factor windows?)")
        if val.n_days == 0:
            raise DataValidationError("no validation day has a present asset; the validation split is too short")
        self.model = model
        self.diffusion = diffusion
        self.config = config
        self.train = train
        self.val = val
        self.seed = int(seed)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.fingerprint = fingerprint
        self.progress = progress
        self.device = next(model.parameters()).device
        self.ema = copy.deepcopy(model).requires_grad_(False)
        self.opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.step = 0
        self.best_state = _cpu_copy(self.ema.state_dict())
        self.best_val = math.inf
        self.best_step = 0
        self.bad_evals = 0
        self.done = False
        self.history: list[dict[str, float]] = []
        self.prior_seconds = 0.0  # wall time of earlier runs of this fit (from the train state)
        self._saved_seconds: float | None = None  # the total written into the last train state
        self._t0: float | None = None
        self._val_tensors = self._fixed_validation_noise()
        self.scorer = None if config.selection == "loss" else ValidationScorer(diffusion, config, val, self.device)

    # ------------------------------------------------------------------ state
    @property
    def state_path(self) -> Path | None:
        """``out_dir/train_state.pt`` or None."""
        return None if self.out_dir is None else self.out_dir / TRAIN_STATE_FILE

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run."""
        return {
            "version": _STATE_VERSION,
            "config": _training_fields(self.config),
            "fingerprint": self.fingerprint,
            "seed": self.seed,
            "step": self.step,
            "done": self.done,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "best_state": self.best_state,
            "best_val": self.best_val,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "history": self.history,
            "seconds": self.prior_seconds + (0.0 if self._t0 is None else time.perf_counter() - self._t0),
        }

    def save_state(self) -> None:
        """Write the train state atomically (no-op without ``out_dir``)."""
        if self.state_path is None:
            return
        buf = io.BytesIO()
        state = self.state_dict()
        self._saved_seconds = float(state["seconds"])
        torch.save(state, buf)
        atomic_write_bytes(self.state_path, buf.getvalue())

    def try_resume(self) -> bool:
        """Load ``out_dir/train_state.pt`` if present; True when a state was loaded.

        Raises
        ------
        CheckpointError
            The file is corrupt, or was written by a different config, data or seed.
        """
        path = self.state_path
        if path is None or not path.is_file():
            return False
        try:
            st = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a damaged file
            raise CheckpointError(f"train state {path} is corrupt ({exc}); delete it to start over") from exc
        if not isinstance(st, dict) or st.get("version") != _STATE_VERSION:
            raise CheckpointError(f"{path} is not a diffusion train state of version {_STATE_VERSION}")
        if st.get("config") != _training_fields(self.config):
            raise CheckpointError(
                f"train state {path} was written with a different config; use another out_dir "
                "or delete the file to start over"
            )
        if st.get("fingerprint") != self.fingerprint:
            raise CheckpointError(f"train state {path} was written for different data; use another out_dir")
        if st.get("seed") != self.seed:
            raise CheckpointError(
                f"train state {path} was written with seed {st.get('seed')}, this fit uses {self.seed}; "
                "pass the same rng to resume, or use another out_dir"
            )
        try:
            self.model.load_state_dict(st["model"])
            self.ema.load_state_dict(st["ema"])
            self.opt.load_state_dict(st["opt"])
            self.best_state = st["best_state"]
            self.best_val = float(st["best_val"])
            self.best_step = int(st["best_step"])
            self.bad_evals = int(st["bad_evals"])
            self.history = list(st["history"])
            self.prior_seconds = float(st.get("seconds", 0.0))
            self.step = int(st["step"])
            self.done = bool(st["done"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"train state {path} is incomplete or mismatched: {exc}") from exc
        return True

    # ------------------------------------------------------------------ pieces
    def _fixed_validation_noise(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Stratified steps ``(R, Dv)`` and noise ``(R, Dv, N)`` of the validation loss."""
        rng = np.random.default_rng(VAL_SEED)
        R, (Dv, N) = self.config.val_repeats, self.val.y.shape
        u = rng.random((R, Dv))
        t = np.floor((np.arange(R)[:, None] + u) / R * self.diffusion.n_steps).astype(np.int64)
        noise = rng.standard_normal((R, Dv, N)).astype(np.float32)
        t_all = torch.from_numpy(np.minimum(t, self.diffusion.n_steps - 1))
        return t_all.to(self.device), torch.from_numpy(noise).to(self.device)

    @torch.no_grad()
    def validation_loss(self, model: FactorDiT | None = None) -> float:
        """Diffusion loss of ``model`` (default: the EMA weights) on the validation days."""
        model = self.ema if model is None else model
        model.eval()
        t_all, noise_all = self._val_tensors
        x, y, m = (torch.from_numpy(a).to(self.device) for a in (self.val.x, self.val.y, self.val.mask))
        sq, cells = 0.0, 0.0
        chunk = 2048
        for r in range(t_all.shape[0]):
            for s in range(0, x.shape[0], chunk):
                sl = slice(s, s + chunk)
                out = self.diffusion.loss(model, y[sl], x[sl], m[sl], t_all[r, sl], noise_all[r, sl], reduce=False)
                sq += float(out[0].sum())
                cells += float(out[1].sum())
        return sq / max(cells, 1.0)

    def _batch(self, step: int) -> tuple[torch.Tensor, ...]:
        rng = np.random.default_rng([self.seed, step])
        B = self.config.batch_days
        idx = rng.integers(0, self.train.n_days, size=B)
        t = rng.integers(0, self.diffusion.n_steps, size=B)
        noise = rng.standard_normal((B, self.train.y.shape[1])).astype(np.float32)
        x = self.train.x[idx]  # (B, N, K) copy
        if self.train.pc_cols:
            flips = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(B, 1, len(self.train.pc_cols)))
            x[..., list(self.train.pc_cols)] *= flips
        arrays = (self.train.y[idx], x, self.train.mask[idx], t, noise)
        return tuple(torch.from_numpy(a).to(self.device) for a in arrays)

    @torch.no_grad()
    def _ema_update(self, step: int) -> None:
        decay = min(self.config.ema_decay, (1.0 + step) / (10.0 + step))
        for pe, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            pe.lerp_(p, 1.0 - decay)

    def _after_step(self, step: int) -> None:
        """Hook run after each completed optimisation step (tests use it to simulate a kill)."""

    # ------------------------------------------------------------------ loop
    def run(self) -> TrainResult:
        """Train to ``max_steps`` (or early stop), resuming from ``out_dir`` when possible."""
        cfg = self.config
        resumed = self.try_resume()
        start_step = self.step
        t0 = self._t0 = time.perf_counter()
        running, n_running = 0.0, 0
        with Progress(cfg.max_steps, "diffusion fit", enabled=self.progress) as bar:
            bar.update(start_step)
            while not self.done and self.step < cfg.max_steps:
                s = self.step
                self.model.train()
                for g in self.opt.param_groups:
                    g["lr"] = learning_rate(cfg, s)
                y, x, m, t, noise = self._batch(s)
                loss = self.diffusion.loss(self.model, y, x, m, t, noise)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.opt.step()
                self._ema_update(s)
                self.step = s + 1
                running += float(loss.detach())
                n_running += 1
                if self.step % cfg.eval_every == 0 or self.step == cfg.max_steps:
                    self._evaluate(running / max(n_running, 1))
                    running, n_running = 0.0, 0
                    rec = self.history[-1]
                    score = f"  score {rec['val_score']:.4f}" if "val_score" in rec else ""
                    bar.describe(f"diffusion fit  train {rec['train_loss']:.4f}  val {rec['val_loss']:.4f}{score}")
                if self.step >= cfg.max_steps:
                    self.done = True
                if self.step % cfg.checkpoint_every == 0 or self.done:
                    self.save_state()
                bar.advance()
                self._after_step(self.step)
        return TrainResult(
            best_state=self.best_state,
            best_step=self.best_step,
            best_val=self.best_val,
            steps=self.step,
            history=list(self.history),
            # a finished fit reports the total its final state holds, so that re-running it
            # (which resumes that state and trains nothing) reports the same time
            seconds=(
                self._saved_seconds
                if self.done and self._saved_seconds is not None
                else self.prior_seconds + time.perf_counter() - t0
            ),
            resumed_from=start_step if resumed else 0,
        )

    def validation_score(self) -> float:
        """The selection criterion of the current EMA weights (lower is better): the sample
        score of ``config.selection`` on validation days, or the validation loss."""
        if self.scorer is None:
            return self.validation_loss()
        return self.scorer.score(self.ema)

    def _evaluate(self, train_loss: float) -> None:
        val = self.validation_loss()
        rec = {"step": float(self.step), "train_loss": train_loss, "val_loss": val}
        crit = val
        if self.scorer is not None:
            crit = rec["val_score"] = float(self.validation_score())
        self.history.append(rec)
        if crit < self.best_val:
            self.best_val, self.best_step, self.bad_evals = crit, self.step, 0
            self.best_state = _cpu_copy(self.ema.state_dict())
        else:
            self.bad_evals += 1
            if self.config.patience is not None and self.bad_evals >= self.config.patience:
                self.done = True


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state dict."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}

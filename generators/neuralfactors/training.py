"""The NeuralFactors training loop (paper 3.5).

Adam with L2 weight decay on the negative CIWAE bound of
:mod:`~factorgym.generators.neuralfactors.objective`, whole days as samples (a batch is a few
runs of consecutive days, each day its own cross-section), Polyak averaging of the iterates
from ``polyak_start``, validation every ``val_every`` steps keeping the best (averaged)
weights, and a resumable train state written atomically every ``checkpoint_every`` steps.

Determinism: the randomness of step ``s`` (which days, dropout masks, IWAE noise) is
derived from ``(seed, s)`` alone, so a run resumed from a checkpoint takes exactly the steps
an uninterrupted run takes. The network and ``TrainData`` live on one device (the config's
``device``); dropout masks and IWAE noise come from a ``torch.Generator`` on that device
(the same numbers as before on the CPU; other numbers on a GPU), train states are read back
onto the CPU and moved.
"""

from __future__ import annotations

import copy
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from factorgym.artifacts import read_artifact, write_artifact
from factorgym.errors import CheckpointError, DataValidationError
from factorgym.generators.neuralfactors.config import NeuralFactorsConfig
from factorgym.generators.neuralfactors.model import NeuralFactorsNet
from factorgym.generators.neuralfactors.objective import (
    TrainData,
    block_params,
    ciwae_bound,
    evaluate_bound,
    gaussian_posterior,
    iwae_log_weights,
    student_t_logpdf,
    variance_factor,
)
from factorgym.progress import Progress

__all__ = [
    "TRAIN_STATE_FILE",
    "Adam",
    "TrainData",
    "TrainResult",
    "block_params",
    "ciwae_bound",
    "evaluate_bound",
    "gaussian_posterior",
    "iwae_log_weights",
    "learning_rate",
    "state_from_bytes",
    "state_to_bytes",
    "student_t_logpdf",
    "train",
    "variance_factor",
]

#: Name of the resumable train-state artifact under ``out_dir``.
TRAIN_STATE_FILE = "train_state.zip"
_TRAIN_STATE_KIND = "neuralfactors-train-state"


# ---------------------------------------------------------------------- loop
@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    best_state : dict
        Weights with the lowest validation loss (Polyak-averaged once averaging started).
    best_val : float
        Their validation loss (negative CIWAE bound, nats per asset-day, scaled returns).
    best_step : int
    history : list of dict
        ``{"step", "train", "val", "lr", "averaged"}`` at each validation.
    elapsed : float
        Training seconds, summed over resumed runs.
    resumed_from : int or None
        Step of the checkpoint this run resumed from.
    """

    best_state: dict[str, Tensor]
    best_val: float
    best_step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0
    resumed_from: int | None = None


def learning_rate(cfg: NeuralFactorsConfig, step: int) -> float:
    """Learning rate of (1-based) ``step``: linear warm-up, then constant or cosine."""
    if cfg.warmup_steps and step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(cfg.max_steps - cfg.warmup_steps, 1)
    frac = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


class Adam:
    """Adam (Kingma & Ba 2015) with L2 weight decay, step for step as ``torch.optim.Adam``.

    Written out (a few lines) because constructing any ``torch.optim`` optimizer imports
    ``torch._dynamo``, which costs seconds per process; the update, including the order of
    floating-point operations, follows ``torch.optim.Adam(weight_decay=...)`` (tested; a
    20-step NeuralFactors fit gives bit-identical weights and losses with either). It also
    fixes the optimizer-state layout inside resumable train states (``t``, ``m``, ``v``).

    Parameters
    ----------
    params : list of Tensor
    lr, weight_decay : float
    betas : tuple of float
    eps : float
    """

    def __init__(
        self, params: list[Tensor], lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        """Drop the gradients."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update from the current gradients (parameters without gradient are skipped)."""
        self.t += 1
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            g = p.grad if self.weight_decay == 0 else p.grad.add(p, alpha=self.weight_decay)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(bc2)).add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / bc1)

    def state_dict(self) -> dict[str, Any]:
        """Step count and moment estimates (for checkpoints)."""
        return {"t": self.t, "m": [x.clone() for x in self.m], "v": [x.clone() for x in self.v]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        m, v = list(state["m"]), list(state["v"])
        if len(m) != len(self.params) or len(v) != len(self.params) or any(
            a.shape != p.shape or b.shape != p.shape for a, b, p in zip(m, v, self.params, strict=True)
        ):
            raise ValueError("optimizer state does not match the parameters")
        self.t = int(state["t"])
        self.m = [a.to(p.device, copy=True) for a, p in zip(m, self.params, strict=True)]
        self.v = [b.to(p.device, copy=True) for b, p in zip(v, self.params, strict=True)]


def state_to_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def state_from_bytes(data: bytes, what: str, path: Path) -> Any:
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure is a corrupt checkpoint
        raise CheckpointError(f"{path}: cannot read {what}: {exc}") from exc


def _step_seed(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step])


@dataclass
class _LoopState:
    """What the training loop carries from step to step (and writes into the train state)."""

    step: int = 0  # last completed step
    n_avg: int = 0  # iterates in the Polyak average
    avg: dict[str, Tensor] | None = None  # Polyak average of the weights
    best_state: dict[str, Tensor] | None = None
    best_val: float = math.inf
    best_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0  # seconds of earlier (resumed) runs
    done: bool = False
    resumed_from: int | None = None
    ema: float | None = None  # smoothed training loss (display and history)


def _block_starts(rows: np.ndarray, n_days: int) -> np.ndarray:
    """Rows at which a run of ``n_days`` consecutive eligible training rows starts."""
    run_ok = np.zeros(len(rows), dtype=bool)
    if len(rows) >= n_days:
        run_ok[: len(rows) - n_days + 1] = rows[n_days - 1 :] - rows[: len(rows) - n_days + 1] == n_days - 1
    starts = rows[run_ok]
    if len(starts) == 0:
        raise DataValidationError(f"no run of {n_days} consecutive eligible training days; lower days_per_block")
    return starts


def _resume(state_path: Path, signature: dict[str, Any], net: NeuralFactorsNet, opt: Adam) -> _LoopState:
    """Load the train state at ``state_path`` into ``net`` and ``opt``; returns the loop state."""
    meta, _, blobs = read_artifact(state_path, expect_kind=_TRAIN_STATE_KIND)
    if meta.get("signature") != signature:
        raise CheckpointError(
            f"{state_path} was written by a different configuration, seed or dataset; "
            "use another out_dir or delete the file to start afresh"
        )
    for name in ("model", "optim"):
        if name not in blobs:
            raise CheckpointError(f"{state_path} lacks its {name} state")
    try:
        net.load_state_dict(state_from_bytes(blobs["model"], "model weights", state_path))
        opt.load_state_dict(state_from_bytes(blobs["optim"], "optimizer state", state_path))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{state_path} does not match this model: {exc}") from exc
    st = _LoopState()
    dev = next(net.parameters()).device
    if "polyak" in blobs:
        st.avg = {k: v.to(dev) for k, v in state_from_bytes(blobs["polyak"], "Polyak average", state_path).items()}
    if "best" in blobs:
        st.best_state = {k: v.to(dev) for k, v in state_from_bytes(blobs["best"], "best weights", state_path).items()}
    st.step, st.n_avg = int(meta["step"]), int(meta["n_avg"])
    st.best_val = float(meta["best_val"]) if meta["best_val"] is not None else math.inf
    st.best_step, st.history = int(meta["best_step"]), list(meta["history"])
    st.elapsed, st.done, st.resumed_from = float(meta["elapsed"]), bool(meta["done"]), st.step
    st.ema = meta.get("train_ema")
    return st


def _save_state(
    state_path: Path, signature: dict[str, Any], st: _LoopState, net: NeuralFactorsNet, opt: Adam, elapsed: float, is_done: bool
) -> None:
    """Write the resumable train state after step ``st.step`` (``elapsed``: seconds in all)."""
    blobs = {"model": state_to_bytes(net.state_dict()), "optim": state_to_bytes(opt.state_dict())}
    if st.avg is not None:
        blobs["polyak"] = state_to_bytes(st.avg)
    if st.best_state is not None:
        blobs["best"] = state_to_bytes(st.best_state)
    meta = {
        "kind": _TRAIN_STATE_KIND,
        "signature": signature,
        "step": st.step,
        "n_avg": st.n_avg,
        "best_val": None if not math.isfinite(st.best_val) else st.best_val,
        "best_step": st.best_step,
        "history": st.history,
        "elapsed": elapsed,
        "done": is_done,
        "train_ema": st.ema,
    }
    write_artifact(state_path, meta, blobs=blobs)


def _optimisation_step(
    net: NeuralFactorsNet, opt: Adam, data: TrainData, cfg: NeuralFactorsConfig, seed: int, step: int, starts: np.ndarray
) -> tuple[float, float]:
    """One Adam step on a batch drawn from ``(seed, step)``; returns the loss and learning rate."""
    rng = _step_seed(seed, step)
    dev = data.y.device
    first = torch.from_numpy(rng.choice(starts, size=cfg.blocks_per_batch)).long().to(dev)
    gen = torch.Generator(device=dev).manual_seed(int(rng.integers(0, 2**62)))
    lr = learning_rate(cfg, step)
    opt.lr = lr
    params, y, mask = block_params(net, data, first, cfg.days_per_block, gen)
    prior_scale, prior_dof = net.prior()
    eps = torch.randn((cfg.k, *y.shape[:-1], cfg.n_factors), generator=gen, device=dev)
    bound = ciwae_bound(iwae_log_weights(params, prior_scale, prior_dof, y, mask, eps))
    n_obs = mask.sum().clamp_min(1)
    loss = -bound.sum() / n_obs
    if cfg.alpha_penalty > 0:  # shrink alpha toward zero (training loss only)
        loss = loss + cfg.alpha_penalty * torch.where(mask, params.alpha**2, 0.0).sum() / n_obs
    opt.zero_grad()
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
    opt.step()
    lv = float(loss.detach())
    if not math.isfinite(lv):
        raise FloatingPointError(f"NeuralFactors training loss is {lv} at step {step}; lower lr")
    return lv, lr


def _update_average(st: _LoopState, net: NeuralFactorsNet) -> None:
    """Add the current weights to the running Polyak average."""
    st.n_avg += 1
    if st.avg is None:
        st.avg = {k: v.detach().clone() for k, v in net.state_dict().items()}
    else:
        for k, v in net.state_dict().items():
            st.avg[k].add_((v.detach() - st.avg[k]) / st.n_avg)


def _validate(
    st: _LoopState, net: NeuralFactorsNet, eval_net: NeuralFactorsNet, data: TrainData, val_eps: Tensor, loss: float, lr: float
) -> float:
    """Score the (averaged) weights on validation, record them in the history, keep the best."""
    weights = st.avg if st.avg is not None else net.state_dict()
    eval_net.load_state_dict(weights)
    val = evaluate_bound(eval_net, data, data.val_rows, val_eps) if len(data.val_rows) else loss
    st.history.append({"step": st.step, "train": st.ema, "val": val, "lr": lr, "averaged": st.avg is not None})
    if val < st.best_val:
        st.best_val, st.best_step = val, st.step
        st.best_state = {k: v.detach().clone() for k, v in weights.items()}
    return val


def train(
    net: NeuralFactorsNet,
    data: TrainData,
    cfg: NeuralFactorsConfig,
    seed: int,
    *,
    out_dir: str | Path | None = None,
    fingerprint: str = "",
    progress: bool = True,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``net`` in place; return the best validated weights and the history.

    Parameters
    ----------
    net : NeuralFactorsNet
        Freshly initialised (its weights are replaced when resuming).
    data : TrainData
    cfg : NeuralFactorsConfig
    seed : int
        Root of all training randomness (see the module docstring).
    out_dir : path, optional
        Where the train state is written every ``cfg.checkpoint_every`` steps and resumed
        from; a state from a different configuration, seed or data is refused.
    fingerprint : str
        Identifies the training data (checked on resume).
    progress : bool
        Show a progress display (:class:`factorgym.progress.Progress`).
    callback : callable ``(step, logs) -> None``, optional
        Called after every step; an exception raised there stops training (the last
        checkpoint stays valid and resumable).
    """
    if len(data.train_rows) < cfg.days_per_block:
        raise DataValidationError(
            f"only {len(data.train_rows)} training days have enough history; need at least "
            f"days_per_block={cfg.days_per_block}"
        )
    state_path = Path(out_dir) / TRAIN_STATE_FILE if out_dir is not None else None
    # a run of days_per_block days must lie in one stretch of eligible consecutive rows
    starts = _block_starts(data.train_rows, cfg.days_per_block)
    val_eps = torch.from_numpy(
        np.random.default_rng([seed, 2**31]).standard_normal((cfg.val_k, len(data.val_rows), cfg.n_factors))
    ).float().to(data.y.device)
    opt = Adam(list(net.parameters()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    signature = {"config": cfg.training_signature(), "seed": int(seed), "data": fingerprint}
    st = _resume(state_path, signature, net, opt) if state_path is not None and state_path.exists() else _LoopState()
    eval_net = copy.deepcopy(net)
    polyak_from = int(round(cfg.polyak_start * cfg.max_steps))
    t_start = time.perf_counter()
    with Progress(cfg.max_steps, "NeuralFactors", enabled=progress and not st.done) as bar:
        bar.update(st.step)
        net.train()
        for step in range(st.step + 1, cfg.max_steps + 1) if not st.done else ():
            lv, lr = _optimisation_step(net, opt, data, cfg, seed, step, starts)
            st.step = step
            st.ema = lv if st.ema is None else 0.98 * st.ema + 0.02 * lv
            if step > polyak_from:
                _update_average(st, net)
            logs = {"loss": lv, "lr": lr}
            if step % cfg.val_every == 0 or step == cfg.max_steps:
                logs["val"] = _validate(st, net, eval_net, data, val_eps, lv, lr)
            if st.history:
                bar.describe(f"NeuralFactors  loss {st.ema:.4f}  val {st.history[-1]['val']:.4f} (best {st.best_val:.4f})")
            else:
                bar.describe(f"NeuralFactors  loss {st.ema:.4f}")
            bar.update(step)
            if state_path is not None and (step % cfg.checkpoint_every == 0 or step == cfg.max_steps):
                elapsed = st.elapsed + (time.perf_counter() - t_start)
                _save_state(state_path, signature, st, net, opt, elapsed, step == cfg.max_steps)
            if callback is not None:
                callback(step, logs)
    best_state = st.best_state
    if best_state is None:  # pragma: no cover - max_steps >= 1 always validates
        best_state = net.state_dict()
    best_state = {k: v.to(data.y.device) for k, v in best_state.items()}
    elapsed_total = st.elapsed + (0.0 if st.done else time.perf_counter() - t_start)
    return TrainResult(best_state, st.best_val, st.best_step, st.history, elapsed_total, st.resumed_from)

"""The NeuralFactors process: posterior, CIWAE loss and the training loop (paper 2.3, 3.3, 3.5).

Posterior (eq. 8). Moment-match the Student-T prior and decoder by Gaussians with the same
variances, ``Sigma_z = diag(s_z^2 nu_z / (nu_z - 2))`` and ``Sigma_x = diag(sigma_i^2
nu_i / (nu_i - 2))``; then ``q(z | r) = N(mu, Lambda^{-1})`` with precision ``Lambda =
Sigma_z^{-1} + B' Sigma_x^{-1} B`` and ``mu = Lambda^{-1} B' Sigma_x^{-1} (r - alpha)``
(``mu_z = 0``). Masked assets get zero weight in ``Sigma_x^{-1}``. Everything goes through
the Cholesky factor ``L L' = Lambda`` (``cholesky_solve`` / triangular solves, no inverse);
reparameterised draws are ``z = mu + L'^{-1} eps`` with ``eps ~ N(0, I)``.

Loss (eq. 3). The conditional IWAE bound with ``k`` draws per day,
``log (1/k) sum_j p(r | z_j) p(z_j) / q(z_j | r)``, negated and divided by the number of
available assets (nats per asset and day, in units of scaled returns).

Training (paper 3.5): Adam with L2 weight decay, whole days as samples (a batch is a few
runs of consecutive days, each day its own cross-section), Polyak averaging of the iterates
from ``polyak_start``, validation every ``val_every`` steps keeping the best (averaged)
weights, and a resumable train state written atomically every ``checkpoint_every`` steps.

Determinism: the randomness of step ``s`` (which days, dropout masks, IWAE noise) is
derived from ``(seed, s)`` alone, so a run resumed from a checkpoint takes exactly the steps
an uninterrupted run takes.
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
from factorgym.generators.neuralfactors.model import FactorParams, NeuralFactorsNet

__all__ = [
    "TRAIN_STATE_FILE",
    "Adam",
    "TrainData",
    "TrainResult",
    "ciwae_bound",
    "evaluate_bound",
    "gaussian_posterior",
    "iwae_log_weights",
    "student_t_logpdf",
    "train",
    "variance_factor",
]

#: Name of the resumable train-state artifact under ``out_dir``.
TRAIN_STATE_FILE = "train_state.zip"
_TRAIN_STATE_KIND = "neuralfactors-train-state"
_LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------- densities
def student_t_logpdf(x: Tensor, loc: Tensor, scale: Tensor, nu: Tensor) -> Tensor:
    """Elementwise log density of ``t_nu(loc, scale)``; ``nu = inf`` gives the Gaussian."""
    u = (x - loc) / scale
    if bool(torch.isinf(nu).all()):
        return -0.5 * u * u - torch.log(scale) - 0.5 * _LOG_2PI
    return (
        torch.lgamma((nu + 1) / 2)
        - torch.lgamma(nu / 2)
        - 0.5 * torch.log(nu * math.pi)
        - torch.log(scale)
        - (nu + 1) / 2 * torch.log1p(u * u / nu)
    )


def variance_factor(nu: Tensor) -> Tensor:
    """``nu / (nu - 2)``: variance of a unit-scale Student-T (1 for ``nu = inf``)."""
    return torch.where(torch.isinf(nu), torch.ones_like(nu), nu / (nu - 2))


def gaussian_posterior(
    beta: Tensor, alpha: Tensor, var_x: Tensor, var_z: Tensor, y: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor]:
    """The moment-matched Gaussian posterior of eq. 8, via Cholesky.

    Parameters
    ----------
    beta : Tensor of shape (..., N, F)
    alpha, var_x, y : Tensor of shape (..., N)
        Decoder means, variances and the observed returns (finite everywhere).
    var_z : Tensor of shape (F,)
        Prior variances (``mu_z = 0``).
    mask : Tensor of shape (..., N), bool
        Available assets; the others contribute nothing.

    Returns
    -------
    mu : Tensor of shape (..., F)
        Posterior mean.
    chol : Tensor of shape (..., F, F)
        Lower Cholesky factor ``L`` of the posterior precision ``Lambda = L L'``.
    """
    w = torch.where(mask, 1.0 / var_x, torch.zeros_like(var_x))  # (..., N) = diag(Sigma_x^{-1})
    resid = torch.where(mask, y - alpha, torch.zeros_like(y))  # (..., N)
    prec = torch.einsum("...nf,...n,...ng->...fg", beta, w, beta)  # (..., F, F) = B' Sx^-1 B
    prec = prec + torch.diag_embed(1.0 / var_z)  # + Sz^-1
    chol = torch.linalg.cholesky(prec)  # (..., F, F)
    rhs = torch.einsum("...nf,...n->...f", beta, w * resid)  # (..., F) = B' Sx^-1 (r - alpha)
    mu = torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1)  # (..., F)
    return mu, chol


def iwae_log_weights(
    params: FactorParams,
    prior_scale: Tensor,
    prior_dof: Tensor,
    y: Tensor,
    mask: Tensor,
    eps: Tensor,
) -> Tensor:
    """Log importance weights ``log p(y|z_j) + log p(z_j) - log q(z_j|y)``.

    Parameters
    ----------
    params : FactorParams
        ``alpha, sigma, nu`` ``(..., N)``, ``beta`` ``(..., N, F)``.
    prior_scale, prior_dof : Tensor of shape (F,)
        ``prior_dof = inf`` for a Gaussian prior; ``params.nu = inf`` for a Gaussian decoder.
    y : Tensor of shape (..., N)
    mask : Tensor of shape (..., N), bool
    eps : Tensor of shape (k, ..., F)
        Standard normal noise; ``z_j = mu + L'^{-1} eps_j`` (reparameterised).

    Returns
    -------
    Tensor of shape (k, ...)
    """
    y = torch.where(mask, y, torch.zeros_like(y))
    var_x = params.sigma**2 * variance_factor(params.nu)  # (..., N)
    var_z = prior_scale**2 * variance_factor(prior_dof)  # (F,)
    mu, chol = gaussian_posterior(params.beta, params.alpha, var_x, var_z, y, mask)
    F = eps.shape[-1]  # noqa: N806
    # z = mu + L'^{-1} eps  (covariance L'^{-1} L^{-1} = Lambda^{-1})
    dz = torch.linalg.solve_triangular(chol.mT, eps.unsqueeze(-1), upper=True).squeeze(-1)  # (k, ..., F)
    z = mu + dz  # (k, ..., F)
    log_q = -0.5 * (eps * eps).sum(-1) - 0.5 * F * _LOG_2PI + torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    log_pz = student_t_logpdf(z, torch.zeros_like(z), prior_scale, prior_dof).sum(-1)  # (k, ...)
    loc = params.alpha + torch.einsum("...nf,k...f->k...n", params.beta, z)  # (k, ..., N)
    ll = student_t_logpdf(y, loc, params.sigma, params.nu)  # (k, ..., N)
    log_px = torch.where(mask, ll, torch.zeros_like(ll)).sum(-1)  # (k, ...)
    return log_px + log_pz - log_q


def ciwae_bound(log_w: Tensor) -> Tensor:
    """``log (1/k) sum_j exp(log_w_j)`` over the first axis: ``(k, ...)`` -> ``(...)``."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


# ---------------------------------------------------------------------- data
@dataclass
class TrainData:
    """The panel as tensors (built by the generator).

    Attributes
    ----------
    inputs : Tensor of shape (T, N, D), float32
        Model inputs of each day (see :mod:`.inputs`).
    y : Tensor of shape (T, N), float32
        Scaled returns (0 where unavailable).
    mask : Tensor of shape (T, N), bool
    asset_ids, sector_ids : LongTensor of shape (N,)
    train_rows : ndarray of int
        Target rows eligible for training (sorted; enough history, in the train split).
    val_rows : ndarray of int
        Contiguous validation target rows.
    """

    inputs: Tensor
    y: Tensor
    mask: Tensor
    asset_ids: Tensor
    sector_ids: Tensor
    train_rows: np.ndarray
    val_rows: np.ndarray


def block_params(
    net: NeuralFactorsNet, data: TrainData, first: Tensor, n_days: int, gen: torch.Generator | None
) -> tuple[FactorParams, Tensor, Tensor]:
    """Parameters for runs of ``n_days`` consecutive target days starting at rows ``first``.

    Each run is one causal pass over ``n_days + R - 1`` input days (``R`` the receptive
    field); the outputs at positions ``>= R - 1`` are exactly the per-day predictions.

    Returns
    -------
    params : FactorParams with leading shape (B, n_days)
    y, mask : Tensor of shape (B, n_days, N)
    """
    R = net.cfg.receptive_field  # noqa: N806
    B, N = first.shape[0], data.inputs.shape[1]  # noqa: N806
    rows = first[:, None] + torch.arange(n_days + R - 1) - R  # (B, S) input rows
    x = data.inputs[rows]  # (B, S, N, D)
    x = x.permute(0, 2, 1, 3).reshape(B * N, n_days + R - 1, -1)  # (B*N, S, D)
    h = net.encode(x, gen)[:, R - 1 :]  # (B*N, n_days, H)
    h = h.reshape(B, N, n_days, -1).transpose(1, 2)  # (B, n_days, N, H)
    params = net.heads(h, data.asset_ids, data.sector_ids, gen)
    targets = first[:, None] + torch.arange(n_days)  # (B, n_days)
    return params, data.y[targets], data.mask[targets]


def evaluate_bound(
    net: NeuralFactorsNet, data: TrainData, rows: np.ndarray, eps: Tensor, chunk: int = 128
) -> float:
    """Mean negative CIWAE bound (nats per available asset-day) over contiguous ``rows``.

    ``eps`` ``(k, len(rows), F)`` is the fixed noise (so repeated evaluations compare).
    """
    total, count = 0.0, 0.0
    with torch.inference_mode():
        prior_scale, prior_dof = net.prior()
        for a in range(0, len(rows), chunk):
            seg = rows[a : a + chunk]
            params, y, mask = block_params(net, data, torch.tensor([seg[0]]), len(seg), None)
            lw = iwae_log_weights(params, prior_scale, prior_dof, y, mask, eps[:, None, a : a + len(seg)])
            total += float(ciwae_bound(lw).sum())
            count += float(mask.sum())
    return -total / max(count, 1.0)


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
    floating-point operations, follows ``torch.optim.Adam(weight_decay=...)`` (tested).

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
        self.t, self.m, self.v = int(state["t"]), [a.clone() for a in m], [b.clone() for b in v]


def _to_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _from_bytes(data: bytes, what: str, path: Path) -> Any:
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure is a corrupt checkpoint
        raise CheckpointError(f"{path}: cannot read {what}: {exc}") from exc


def _step_seed(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step])


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
        Show a rich progress bar.
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
    C = cfg.days_per_block  # noqa: N806
    # a run of C days must lie in one stretch of eligible consecutive rows
    rows = data.train_rows
    run_ok = np.zeros(len(rows), dtype=bool)
    if len(rows) >= C:
        run_ok[: len(rows) - C + 1] = rows[C - 1 :] - rows[: len(rows) - C + 1] == C - 1
    starts = rows[run_ok]
    if len(starts) == 0:
        raise DataValidationError(f"no run of {C} consecutive eligible training days; lower days_per_block")
    F = cfg.n_factors  # noqa: N806
    val_eps = torch.from_numpy(
        np.random.default_rng([seed, 2**31]).standard_normal((cfg.val_k, len(data.val_rows), F))
    ).float()

    opt = Adam(list(net.parameters()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    avg: dict[str, Tensor] | None = None
    n_avg = 0
    best_state: dict[str, Tensor] | None = None
    best_val, best_step = math.inf, 0
    history: list[dict[str, Any]] = []
    step0, elapsed, resumed_from, done = 0, 0.0, None, False
    ema: float | None = None  # smoothed training loss (display and history)
    signature = {"config": cfg.training_signature(), "seed": int(seed), "data": fingerprint}

    if state_path is not None and state_path.exists():
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
            net.load_state_dict(_from_bytes(blobs["model"], "model weights", state_path))
            opt.load_state_dict(_from_bytes(blobs["optim"], "optimizer state", state_path))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{state_path} does not match this model: {exc}") from exc
        if "polyak" in blobs:
            avg = _from_bytes(blobs["polyak"], "Polyak average", state_path)
        if "best" in blobs:
            best_state = _from_bytes(blobs["best"], "best weights", state_path)
        step0, n_avg = int(meta["step"]), int(meta["n_avg"])
        best_val = float(meta["best_val"]) if meta["best_val"] is not None else math.inf
        best_step, history = int(meta["best_step"]), list(meta["history"])
        elapsed, done, resumed_from = float(meta["elapsed"]), bool(meta["done"]), step0
        ema = meta.get("train_ema")

    def save_state(step: int, is_done: bool) -> None:
        if state_path is None:
            return
        blobs = {"model": _to_bytes(net.state_dict()), "optim": _to_bytes(opt.state_dict())}
        if avg is not None:
            blobs["polyak"] = _to_bytes(avg)
        if best_state is not None:
            blobs["best"] = _to_bytes(best_state)
        meta = {
            "kind": _TRAIN_STATE_KIND,
            "signature": signature,
            "step": step,
            "n_avg": n_avg,
            "best_val": None if not math.isfinite(best_val) else best_val,
            "best_step": best_step,
            "history": history,
            "elapsed": elapsed + (time.perf_counter() - t_start),
            "done": is_done,
            "train_ema": ema,
        }
        write_artifact(state_path, meta, blobs=blobs)

    eval_net = copy.deepcopy(net)
    polyak_from = int(round(cfg.polyak_start * cfg.max_steps))
    t_start = time.perf_counter()

    bar = None
    if progress and not done:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("NeuralFactors"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.description}"), transient=False,
        )
        bar.start()
        task = bar.add_task("", total=cfg.max_steps, completed=step0)
    try:
        net.train()
        for step in range(step0 + 1, cfg.max_steps + 1) if not done else ():
            rng = _step_seed(seed, step)
            first = torch.from_numpy(rng.choice(starts, size=cfg.blocks_per_batch)).long()
            gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
            lr = learning_rate(cfg, step)
            opt.lr = lr
            params, y, mask = block_params(net, data, first, C, gen)
            prior_scale, prior_dof = net.prior()
            eps = torch.randn((cfg.k, *y.shape[:-1], F), generator=gen)
            bound = ciwae_bound(iwae_log_weights(params, prior_scale, prior_dof, y, mask, eps))
            loss = -bound.sum() / mask.sum().clamp_min(1)
            opt.zero_grad()
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise FloatingPointError(f"NeuralFactors training loss is {lv} at step {step}; lower lr")
            ema = lv if ema is None else 0.98 * ema + 0.02 * lv
            if step > polyak_from:
                n_avg += 1
                if avg is None:
                    avg = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    for k, v in net.state_dict().items():
                        avg[k].add_((v.detach() - avg[k]) / n_avg)
            logs = {"loss": lv, "lr": lr}
            if step % cfg.val_every == 0 or step == cfg.max_steps:
                weights = avg if avg is not None else net.state_dict()
                eval_net.load_state_dict(weights)
                val = evaluate_bound(eval_net, data, data.val_rows, val_eps) if len(data.val_rows) else lv
                history.append({"step": step, "train": ema, "val": val, "lr": lr, "averaged": avg is not None})
                logs["val"] = val
                if val < best_val:
                    best_val, best_step = val, step
                    best_state = {k: v.detach().clone() for k, v in weights.items()}
            if bar is not None:
                desc = f"loss {ema:.4f}" + (f"  val {history[-1]['val']:.4f} (best {best_val:.4f})" if history else "")
                bar.update(task, completed=step, description=desc)
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                save_state(step, step == cfg.max_steps)
            if callback is not None:
                callback(step, logs)
    finally:
        if bar is not None:
            bar.stop()
    if best_state is None:  # pragma: no cover - max_steps >= 1 always validates
        best_state = net.state_dict()
    elapsed_total = elapsed + (0.0 if done else time.perf_counter() - t_start)
    return TrainResult(best_state, best_val, best_step, history, elapsed_total, resumed_from)

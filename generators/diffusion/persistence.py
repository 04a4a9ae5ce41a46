"""Saving and loading the diffusion generator's single-file artifact (``DiffusionGenerator.save`` / ``load``).

Weights are written from the CPU and read onto the CPU first (``map_location="cpu"``), then
moved to the device asked for, so an artifact written on a GPU loads on a CPU-only machine.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from factorgym.artifacts import read_artifact, write_artifact
from factorgym.errors import CheckpointError
from factorgym.features import FeatureScaler
from factorgym.generators.diffusion.config import DiffusionConfig
from factorgym.generators.diffusion.device import check_device, resolve_device
from factorgym.generators.diffusion.diffusion import GaussianDiffusion
from factorgym.generators.diffusion.factors import factor_names
from factorgym.generators.diffusion.model import FactorDiT

if TYPE_CHECKING:
    from factorgym.generators.diffusion.generator import DiffusionGenerator

__all__ = ["load_artifact", "save_artifact"]


def save_artifact(gen: DiffusionGenerator, path: str | Path) -> None:
    """Write a fitted generator as one atomic artifact."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in gen.model_.state_dict().items()}, buf)
    arrays: dict[str, np.ndarray] = {}
    if gen.context_scaler_ is not None:
        arrays["context_mean"] = gen.context_scaler_.mean_
        arrays["context_scale"] = gen.context_scaler_.scale_
    if gen.train_std_ is not None:
        arrays["train_std"] = gen.train_std_
    names_a, names_c = factor_names(gen.config)
    meta = {
        "kind": gen.kind,
        "config": gen.config.to_dict(),
        "dit": gen.model_.config.to_dict(),
        "assets": list(gen.assets_),
        "asset_factors": names_a,
        "context_factors": names_c,
        "fit": gen.fit_info_,
        "torch_version": torch.__version__,
    }
    write_artifact(path, meta, arrays=arrays, blobs={"model.pt": buf.getvalue()})


def load_artifact(cls: Any, path: str | Path, device: str | None = None) -> DiffusionGenerator:
    """Read an artifact written by :func:`save_artifact` into a new ``cls`` (see ``DiffusionGenerator.load``)."""
    if device is not None:
        check_device(device)
    meta, arrays, blobs = read_artifact(path, expect_kind=cls.kind)
    try:
        cfg = DiffusionConfig.from_dict(meta["config"])
        if device is not None:
            cfg = cfg.replace(device=device)
        elif cfg.device.startswith("cuda") and not torch.cuda.is_available():
            cfg = cfg.replace(device="auto")
        gen = cls(cfg)
        gen.assets_ = tuple(meta["assets"])
        gen.fit_info_ = dict(meta.get("fit", {}))
        names_a, names_c = factor_names(cfg)
        if meta.get("asset_factors") != names_a or meta.get("context_factors") != names_c:
            raise CheckpointError(f"{path}: factor layout differs from what this library computes")
        gen.context_scaler_ = None
        if names_c:
            gen.context_scaler_ = FeatureScaler.from_dict(
                {"mean": arrays["context_mean"].tolist(), "scale": arrays["context_scale"].tolist()}
            )
            if gen.context_scaler_.mean_.shape != (len(names_c),):
                raise CheckpointError(f"{path}: context scaler has the wrong shape")
        gen.train_std_ = None
        if cfg.scale == "train_std":
            gen.train_std_ = np.asarray(arrays["train_std"], dtype=np.float64)
            if gen.train_std_.shape != (len(gen.assets_),):
                raise CheckpointError(f"{path}: train_std has the wrong shape")
        model = FactorDiT(cfg.dit(len(names_a) + len(names_c)))
        state = torch.load(io.BytesIO(blobs["model.pt"]), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except CheckpointError:
        raise
    except Exception as exc:  # a damaged blob can raise nearly anything inside torch.load
        raise CheckpointError(f"{path} is corrupt or incompatible: {type(exc).__name__}: {exc}") from exc
    dev = resolve_device(cfg.device)
    gen.model_ = model.to(dev).eval().requires_grad_(False)
    gen.diffusion_ = GaussianDiffusion(
        cfg.schedule, cfg.n_diffusion_steps, cfg.skip, cfg.loss_weight, cfg.weight_cap
    ).to(dev)
    return gen

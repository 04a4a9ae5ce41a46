"""Where the diffusion model computes: the ``device`` setting (``"auto"``, ``"cpu"``, ``"cuda"``).

``"auto"`` is CUDA when torch sees a CUDA device, else the CPU; ``"cuda"`` (or ``"cuda:K"``)
insists on a GPU and fails with a :class:`~factorgym.errors.DataValidationError` naming it
where there is none. The setting decides where training, prediction and simulation run;
weights are always saved from and loaded onto the CPU first (so a checkpoint written on a GPU
loads on a CPU-only machine), then moved.

Random numbers: training and the path simulator draw their noise in numpy (so a fit or a
path depends on its seed, not on the device, up to float round-off); a predictive
distribution's ``sample`` draws from a ``torch.Generator`` created on the model's device
(:func:`~factorgym.generators.base.torch_generator`), so its draws differ between a CPU and
a GPU for the same seed.
"""

from __future__ import annotations

import re
from typing import Any

from factorgym.errors import DataValidationError

__all__ = ["DEVICES", "check_device", "resolve_device"]

#: Accepted device settings (``"cuda:K"`` selects the K-th GPU).
DEVICES = ("auto", "cpu", "cuda")
_CUDA_K = re.compile(r"cuda:(\d+)")


def check_device(device: Any) -> str:
    """``device`` checked to be ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:K"`` (not that it exists).

    Raises
    ------
    DataValidationError
        Any other value, named in the message.
    """
    if not isinstance(device, str) or not (device in DEVICES or _CUDA_K.fullmatch(device)):
        raise DataValidationError(f"device must be one of {', '.join(DEVICES)} (or 'cuda:K'), got {device!r}")
    return device


def resolve_device(device: str) -> Any:
    """The ``torch.device`` a setting means on this machine.

    Raises
    ------
    DataValidationError
        An invalid setting, or ``"cuda"`` / ``"cuda:K"`` where torch sees no such GPU.
    """
    import torch

    check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DataValidationError(
            f"device {device!r} was asked for, but torch sees no CUDA device on this machine "
            f"(torch {torch.__version__}); use device='auto' or 'cpu'"
        )
    k = _CUDA_K.fullmatch(device)
    if k is not None and int(k.group(1)) >= torch.cuda.device_count():
        raise DataValidationError(f"device {device!r} does not exist: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(device)

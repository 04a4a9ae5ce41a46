"""The specification of a stress scenario set: :class:`StressSpec` and its validation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from factorgym.errors import DataValidationError

__all__ = ["KINDS", "NAMED_WINDOWS", "StressSpec"]

#: Named historical stress windows (inclusive dates) for ``replay`` and crisis contexts.
NAMED_WINDOWS: dict[str, tuple[str, str]] = {
    "gfc-2008": ("2008-09-15", "2009-03-09"),
    "covid-2020": ("2020-02-20", "2020-03-23"),
}

KINDS = ("factor_shock", "vol_regime", "crisis", "replay")


@dataclass(frozen=True)
class StressSpec:
    """Everything needed to regenerate a scenario set exactly.

    Parameters
    ----------
    kind : {"factor_shock", "vol_regime", "crisis", "replay"}
    run : str or None
        Generator run folder (or artifact); None only for ``replay``.
    dataset : str
        Embedded dataset name or data file the context comes from.
    date : str or None
        Last real day of the conditioning history (a non-trading date means the last
        trading day before it). For ``replay``: unused.
    window : str or None
        A :data:`NAMED_WINDOWS` key for ``replay``.
    horizon : int
        Days per scenario path (``factor_shock`` is one day).
    n_scenarios : int
    seed : int
    quantile : float or None
        ``factor_shock``: keep scenarios whose market factor (or equal-weight return) is
        below this quantile of its predictive distribution.
    shift_sd : float or None
        ``factor_shock`` (latent-factor generators only): shift the market factor by this
        many standard deviations instead (negative = market down).
    vol_scale : float
        ``vol_regime``: dispersion multiplier.
    """

    kind: str
    run: str | None = None
    dataset: str = "sp500"
    date: str | None = None
    window: str | None = None
    horizon: int = 1
    n_scenarios: int = 2000
    seed: int = 0
    quantile: float | None = 0.01
    shift_sd: float | None = None
    vol_scale: float = 2.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataValidationError(f"unknown stress kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind != "replay" and self.run is None:
            raise DataValidationError(f"stress kind {self.kind!r} needs a generator run")
        if self.kind == "replay" and self.window not in NAMED_WINDOWS:
            raise DataValidationError(
                f"replay needs a named window, one of {', '.join(NAMED_WINDOWS)}; got {self.window!r}"
            )
        if self.kind != "replay" and self.date is None:
            raise DataValidationError(f"stress kind {self.kind!r} needs a context date")
        if self.horizon < 1 or self.n_scenarios < 1:
            raise DataValidationError("horizon and n_scenarios must be >= 1")
        if self.kind == "factor_shock":
            if (self.quantile is None) == (self.shift_sd is None):
                raise DataValidationError("factor_shock needs exactly one of quantile and shift_sd")
            if self.quantile is not None and not 0 < self.quantile < 1:
                raise DataValidationError(f"quantile must be in (0, 1), got {self.quantile}")
        if self.kind == "vol_regime" and not self.vol_scale > 0:
            raise DataValidationError(f"vol_scale must be positive, got {self.vol_scale}")

    def to_json(self) -> str:
        """Canonical JSON form."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StressSpec:
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))

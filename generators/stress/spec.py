"""The specification of a stress scenario set: :class:`StressSpec` and its validation."""

from __future__ import annotations

import json
import math
import numbers
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
        Last real day of the conditioning history, ``YYYY-MM-DD`` (a non-trading date means
        the last trading day before it; a date after the data's last day is refused). Not
        for ``replay``.
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
        if self.kind == "replay":
            if self.window not in NAMED_WINDOWS:
                raise DataValidationError(
                    f"replay needs a named window, one of {', '.join(NAMED_WINDOWS)}; got {self.window!r}"
                )
            for name, value in (("run", self.run), ("date", self.date)):
                if value is not None:
                    raise DataValidationError(f"replay replays the real window {self.window}: it takes no {name} (got {value!r})")
        elif self.window is not None:
            raise DataValidationError(f"window={self.window!r} applies to replay only, not to {self.kind}")
        if self.kind != "replay":
            if self.date is None:
                raise DataValidationError(f"stress kind {self.kind!r} needs a context date")
            from factorgym.data.validation import parse_iso_date

            object.__setattr__(self, "date", parse_iso_date(self.date, "context date"))
        for name in ("horizon", "n_scenarios", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < (0 if name == "seed" else 1):
                raise DataValidationError(f"{name} must be an integer >= {0 if name == 'seed' else 1}, got {v!r}")
        if self.kind == "factor_shock" and self.horizon != 1:
            raise DataValidationError(f"factor_shock is a one-day shock; horizon must be 1, got {self.horizon}")
        if self.kind != "factor_shock" and self.shift_sd is not None:
            raise DataValidationError(f"shift_sd applies to factor_shock only, not to {self.kind}")
        for name in ("quantile", "shift_sd", "vol_scale"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v)):
                raise DataValidationError(f"{name} must be a finite number, got {v!r}")
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
        """Inverse of :meth:`to_json`.

        Raises
        ------
        DataValidationError
            For text that is not the JSON of a valid specification.
        """
        try:
            d = json.loads(text)
            if not isinstance(d, dict):
                raise TypeError(f"a JSON object is expected, got {type(d).__name__}")
            return cls(**d)
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataValidationError(f"not a stress specification: {exc}") from None

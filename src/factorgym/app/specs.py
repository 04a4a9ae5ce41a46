"""The spec grammar of the command line: how text on a command line becomes typed values.

Library code below the app floor takes typed objects and plain dicts; only this floor parses
strings.
"""

from __future__ import annotations

import json
from typing import Any

from factorgym.errors import DataValidationError

__all__ = ["parse_params"]


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["hidden=64", "sequence_model=lstm"]`` -> ``{"hidden": 64, "sequence_model": "lstm"}``."""
    out: dict[str, Any] = {}
    for p in pairs or []:
        if "=" not in p:
            raise DataValidationError(f"parameter {p!r} must look like key=value")
        k, v = p.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out

"""The one JSON sanitiser of factorgym (plain data for ``json.dumps`` from numpy, paths,
dates, classes and non-finite floats, and the inverse for numbers) and the one file-name slug.

Non-finite floats cannot be written as JSON: ``nan`` becomes ``None``; ``±inf`` becomes the
strings ``"inf"`` / ``"-inf"`` (``inf="tagged"``, turned back into floats by
:func:`numbers_from_json`) or ``None`` (``inf="null"``, for tables read by people).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = ["jsonable", "numbers_from_json", "slug"]


def jsonable(o: Any, *, inf: Literal["tagged", "null"] = "tagged", other: Literal["repr", "str"] = "repr") -> Any:
    """A JSON-safe copy of ``o``.

    Mappings become dicts with string keys, sequences and arrays lists, numpy scalars Python
    numbers, ``nan`` ``None``, ``±inf`` ``"inf"``/``"-inf"`` (or ``None`` with
    ``inf="null"``), paths strings, classes their qualified names, timestamps their date
    (midnight) or ISO form, other objects their ``repr`` (or ``str`` with ``other="str"``).
    """
    if isinstance(o, Mapping):
        return {str(k): jsonable(v, inf=inf, other=other) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [jsonable(v, inf=inf, other=other) for v in o]
    if isinstance(o, np.ndarray):
        return jsonable(o.tolist(), inf=inf, other=other)
    if isinstance(o, np.generic):
        return jsonable(o.item(), inf=inf, other=other)
    if isinstance(o, bool) or o is None or isinstance(o, int | str):
        return o
    if isinstance(o, float):
        if math.isnan(o):
            return None
        if math.isinf(o):
            return None if inf == "null" else ("inf" if o > 0 else "-inf")
        return o
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, type):
        return f"{o.__module__}.{o.__qualname__}"
    if isinstance(o, pd.Timestamp):
        return str(o.date()) if o == o.normalize() else o.isoformat()
    return str(o) if other == "str" else repr(o)


def numbers_from_json(x: Any) -> Any:
    """Inverse of :func:`jsonable` for numbers: ``"inf"``/``"-inf"`` back to floats, recursively."""
    if isinstance(x, str) and x in ("inf", "-inf"):
        return float(x)
    if isinstance(x, list):
        return [numbers_from_json(v) for v in x]
    if isinstance(x, dict):
        return {k: numbers_from_json(v) for k, v in x.items()}
    return x


def slug(
    text: str,
    taken: set[str] | None = None,
    *,
    keep: str = "_.-",
    sep: str = "_",
    default: str = "item",
    strip: str | None = None,
) -> str:
    """A file- or anchor-safe name for ``text``, unique within ``taken`` (which it extends).

    Runs of characters other than ASCII letters, digits and ``keep`` become ``sep``; the
    characters ``strip`` (default: ``sep`` and ``.``) are removed from both ends; an empty
    result is ``default``; a name already in ``taken`` gets ``{sep}2``, ``{sep}3``... appended.
    """
    ends = sep + "." if strip is None else strip
    base = re.sub(rf"[^A-Za-z0-9{re.escape(keep)}]+", sep, str(text)).strip(ends) or default
    if taken is None:
        return base
    name, i = base, 2
    while name in taken:
        name, i = f"{base}{sep}{i}", i + 1
    taken.add(name)
    return name

"""Run folders: reuse of a finished run, refusal of another spec, and replace / force."""

from __future__ import annotations

from pathlib import Path

import pytest

from factorgym.errors import DataValidationError
from factorgym.generators.runs import RunSpec, fit_run


def test_fit_run_reuses_refuses_and_replaces(tmp_path: Path) -> None:
    out = tmp_path / "lw"
    a = RunSpec(kind="ledoit_wolf", dataset="sp500", params={"window": 63})
    b = RunSpec(kind="ledoit_wolf", dataset="sp500", params={"window": 21})
    _, rec = fit_run(a, out, progress=False)
    started = rec["started"]
    (out / "train").mkdir(exist_ok=True)
    (out / "train" / "stale.txt").write_text("a's training state")
    _, again = fit_run(a, out, progress=False, replace=True)
    assert again["started"] == started  # the same spec is reused, not refitted
    assert (out / "train" / "stale.txt").is_file()
    with pytest.raises(DataValidationError, match="already holds a different run"):
        fit_run(b, out, progress=False)
    gen, rec_b = fit_run(b, out, progress=False, replace=True)
    assert rec_b["spec"] == b.identity() and gen.window == 21
    assert not (out / "train" / "stale.txt").exists()  # another spec's state is not resumed

"""Run folders: reuse of a finished run, refusal of another spec, and replace / force."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from factorgym.errors import CheckpointError, DataValidationError
from factorgym.generators import runs
from factorgym.generators.runs import (
    LOCK_NAME,
    PENDING_NAME,
    RunBusyError,
    RunSpec,
    fit_run,
    load_run,
)


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


# ---------------------------------------------------------------------------- issue 15: a run folder is either
# the old complete run or the new complete run, readable only when finished
NF_TINY = {
    "lookback": 4, "hidden": 8, "n_heads": 2, "n_factors": 2, "days_per_block": 4, "blocks_per_batch": 2,
    "k": 4, "val_k": 4, "max_steps": 12, "val_every": 6, "warmup_steps": 2, "checkpoint_every": 5,
}  # fmt: skip


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class _Killed(BaseException):
    """Stands in for SIGKILL inside the process (not an Exception: nothing cleans up)."""


def test_interrupted_force_refit_keeps_the_old_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "lw"
    a = RunSpec(kind="ledoit_wolf", params={"window": 63})
    b = RunSpec(kind="gaussian")
    fit_run(a, out, progress=False)
    from factorgym.generators.baselines.gaussian import GaussianGenerator

    def killed_fit(self, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise _Killed

    monkeypatch.setattr(GaussianGenerator, "fit", killed_fit)
    with pytest.raises(_Killed):
        fit_run(b, out, progress=False, force=True)
    gen, rec, _ = load_run(out)  # still the old complete run, described by its record
    assert rec is not None and rec["spec"] == a.identity() and gen.kind == "ledoit_wolf" and gen.window == 63
    monkeypatch.undo()
    gen, rec = fit_run(b, out, progress=False, force=True)
    gen2, rec2, _ = load_run(out)
    assert rec2 == rec and rec2["spec"]["kind"] == "gaussian" and gen2.kind == "gaussian"
    assert not (out / PENDING_NAME).exists()


def test_a_kill_while_swapping_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "lw"
    a = RunSpec(kind="ledoit_wolf", params={"window": 63})
    b = RunSpec(kind="ledoit_wolf", params={"window": 21})
    fit_run(a, out, progress=False)
    real_replace = os.replace
    calls = []

    def replace_then_die(src, dst):  # noqa: ANN001, ANN202
        calls.append(dst)
        if Path(src) == out / PENDING_NAME / "run.json":
            raise _Killed  # the new model is in place, its record is not
        return real_replace(src, dst)

    monkeypatch.setattr(runs.os, "replace", replace_then_die)
    with pytest.raises(_Killed):
        fit_run(b, out, progress=False, replace=True)
    monkeypatch.undo()
    gen, rec, _ = load_run(out)  # the new complete run: model and record agree
    assert gen.window == 21 and rec is not None and rec["spec"] == b.identity()
    _, rec_b = fit_run(b, out, progress=False)  # the next fit finishes the swap and reuses it
    assert json.loads((out / "run.json").read_text()) == rec_b and rec_b["spec"] == b.identity()
    assert not (out / PENDING_NAME).exists()
    (out / "generator.fgz").write_bytes((out / "generator.fgz").read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="not the model"):
        load_run(out)


def test_load_run_refuses_unfinished_folders(tmp_path: Path) -> None:
    out = tmp_path / "old"
    fit_run(RunSpec(kind="ledoit_wolf"), out, progress=False)
    rec = json.loads((out / "run.json").read_text())
    # a folder left by an interrupted fit of an older version: new spec, status fitting, old model
    (out / "run.json").write_text(json.dumps({**rec, "status": "fitting", "spec": {**rec["spec"], "kind": "gaussian"}}))
    with pytest.raises(CheckpointError, match=rf"{out.name} holds an unfinished fit .*factorgym fit"):
        load_run(out)
    gen, rec2 = fit_run(RunSpec(kind="gaussian"), out, progress=False)  # the same spec finishes it
    assert gen.kind == "gaussian" and load_run(out)[0].kind == "gaussian"
    pend = tmp_path / "pending"
    (pend / PENDING_NAME).mkdir(parents=True)
    with pytest.raises(CheckpointError, match="holds no finished run.*re-run"):
        load_run(pend)


def test_a_second_fit_into_a_busy_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    lock = FileLock(out / LOCK_NAME)
    lock.acquire(timeout=0)
    try:
        with pytest.raises(RunBusyError, match="being fitted by another process"):
            fit_run(RunSpec(kind="ledoit_wolf"), out, progress=False)
    finally:
        lock.release()
    fit_run(RunSpec(kind="ledoit_wolf"), out, progress=False)  # free again


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (dict(kind="ledoit_wolf", train_end="garbage"), "train_end 'garbage' is not a date"),
        (dict(kind="ledoit_wolf", val_end="2018-13-45"), "val_end '2018-13-45'"),
        (dict(kind="ledoit_wolf", train_end="1980-01-01", val_end="1985-01-01"), "split part 'train' is empty"),
        (dict(kind="ledoit_wolf", seed=-1), "seed must be a non-negative integer, got -1"),
        (dict(kind="nope"), "unknown generator 'nope'; known: .*ledoit_wolf"),
        (dict(kind="ledoit_wolf", params={"no_such": 1}), "bad parameters for generator 'ledoit_wolf'"),
    ],
)
def test_a_failed_fit_leaves_the_folder_as_it_was(tmp_path: Path, spec: dict, match: str) -> None:
    out = tmp_path / "lw"
    fresh = tmp_path / "fresh"
    fit_run(RunSpec(kind="ledoit_wolf"), out, progress=False)
    before = _snapshot(out)
    with pytest.raises(DataValidationError, match=match):
        fit_run(RunSpec(**spec), out, progress=False, force=True)
    with pytest.raises(DataValidationError, match=match):
        fit_run(RunSpec(**spec), fresh, progress=False)
    assert _snapshot(out) == before and not fresh.exists()
    fit_run(RunSpec(kind="gaussian"), out, progress=False, force=True)  # the folder is not blocked


def test_force_refits_a_finished_neuralfactors_run_and_survives_a_corrupt_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nf"
    spec = RunSpec(kind="neuralfactors", params=NF_TINY)
    gen, rec = fit_run(spec, out, progress=False)
    assert gen.train_result_.resumed_from is None and (out / "train" / "train_state.zip").is_file()
    gen2, rec2 = fit_run(spec, out, progress=False, force=True)
    assert gen2.train_result_.resumed_from is None  # trained again, not "resumed" at its last step
    assert (out / "generator.fgz").read_bytes() == _snapshot(out)["generator.fgz"]
    # an interrupted fit whose state is damaged starts over with a warning line
    (out / PENDING_NAME / "train").mkdir(parents=True)
    (out / PENDING_NAME / "run.json").write_text(json.dumps({"spec": spec.identity(), "status": "fitting"}))
    (out / PENDING_NAME / "train" / "train_state.zip").write_bytes(b"PK\x03\x04 damaged")
    capsys.readouterr()
    gen3, _ = fit_run(spec, out, progress=False, force=True)
    err = capsys.readouterr().err
    assert err.startswith("warning: cannot resume") and "starting over" in err and err.count("\n") == 1
    assert gen3.train_result_.resumed_from is None
    np.testing.assert_array_equal(gen3.fit_info_["best_val"], gen2.fit_info_["best_val"])

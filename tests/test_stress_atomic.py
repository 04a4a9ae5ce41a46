"""A scenario set (Parquet, ``.spec.json``, ``.losses.csv``) is replaced as one unit (issue 15).

Fault injection: an exception at any point of a save leaves the earlier set exactly as it was;
a process killed (``os._exit``, nothing cleans up) at any point leaves either the earlier set
or, once the new set was complete on disk, a swap that the next read finishes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factorgym.generators.stress import ScenarioSet, StressSpec, read_scenarios
from factorgym.generators.stress import io as stress_io


def _set(kind: str, n: int, seed: int) -> tuple[ScenarioSet, str]:
    spec = StressSpec(kind, run="r", date="2020-02-19", n_scenarios=n, seed=seed, horizon=2)
    paths = np.random.default_rng(seed).normal(0, 0.01, (n, 2, 3))
    s = ScenarioSet(spec, ("A", "B", "C"), paths, "2020-02-19", {"seed": seed})
    losses = pd.DataFrame({"n": [n], "mean": [float(paths.sum(axis=(1, 2)).mean())]}, index=[f"equal {kind}"]).to_csv()
    return s, losses


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _consistent(target: Path) -> str:
    """The kind of the complete set at ``target`` (its three files agree), else fail."""
    s = read_scenarios(target)
    spec = json.loads(Path(str(target) + ".spec.json").read_text())
    losses = pd.read_csv(str(target) + ".losses.csv", index_col=0)
    assert spec["kind"] == s.spec.kind and losses.index[0] == f"equal {s.spec.kind}"
    assert (losses["n"] == s.paths.shape[0]).all()
    return s.spec.kind


class _Boom(BaseException):
    """Not an Exception: the save's own cleanup must still leave the old set."""


@pytest.mark.parametrize("fail_at", range(1, 8))
def test_an_error_anywhere_in_a_save_leaves_the_old_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
    target = tmp_path / "set.parquet"
    old, old_losses = _set("vol_regime", 40, 1)
    old.save(target, losses=old_losses)
    before = _files(tmp_path)
    assert sorted(before) == ["set.parquet", "set.parquet.losses.csv", "set.parquet.spec.json"]
    new, new_losses = _set("crisis", 30, 2)
    real = os.replace
    calls = {"n": 0}

    def flaky(src, dst):  # noqa: ANN001, ANN202 - os.replace: 3 staged writes, the COMMIT file, 3 swaps
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise _Boom
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(_Boom):
        new.save(target, losses=new_losses)
    monkeypatch.setattr(os, "replace", real)
    assert calls["n"] >= fail_at  # (the rollback of a failed swap replaces files too)
    assert _files(tmp_path) == before  # byte for byte, and no staging folder left behind
    assert _consistent(target) == "vol_regime"
    new.save(target, losses=new_losses)
    assert _consistent(target) == "crisis"


def test_a_save_without_losses_removes_the_old_losses(tmp_path: Path) -> None:
    target = tmp_path / "set.parquet"
    s, losses = _set("vol_regime", 20, 1)
    s.save(target, losses=losses)
    _set("crisis", 10, 2)[0].save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.parquet", "set.parquet.spec.json"]
    assert read_scenarios(target).spec.kind == "crisis"


_CHILD = textwrap.dedent(
    """
    import os, sys
    import numpy as np, pandas as pd
    from factorgym.generators.stress import ScenarioSet, StressSpec
    kill_at, target = int(sys.argv[1]), sys.argv[2]
    spec = StressSpec("crisis", run="r", date="2020-02-19", n_scenarios=30, seed=2, horizon=2)
    paths = np.random.default_rng(2).normal(0, 0.01, (30, 2, 3))
    s = ScenarioSet(spec, ("A", "B", "C"), paths, "2020-02-19", {"seed": 2})
    losses = pd.DataFrame({"n": [30], "mean": [float(paths.sum(axis=(1, 2)).mean())]}, index=["equal crisis"]).to_csv()
    real, calls = os.replace, [0]
    def dying(src, dst):
        calls[0] += 1
        if calls[0] == kill_at:
            os._exit(9)  # like SIGKILL: no except, no finally, no cleanup
        return real(src, dst)
    os.replace = dying
    s.save(target, losses=losses)
    """
)


@pytest.mark.parametrize(
    "kill_at",
    [pytest.param(k, marks=[] if k == 6 else [pytest.mark.slow]) for k in range(1, 8)],
)
def test_a_killed_save_leaves_a_whole_set(tmp_path: Path, kill_at: int) -> None:
    """Killed before the COMMIT file (calls 1-4): the old set; after it (5-7): the new set."""
    target = tmp_path / "set.parquet"
    old, old_losses = _set("vol_regime", 40, 1)
    old.save(target, losses=old_losses)
    res = subprocess.run([sys.executable, "-c", _CHILD, str(kill_at), str(target)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 9, res.stderr
    assert any(p.name.startswith(".set.parquet.stage-") for p in tmp_path.iterdir())  # left behind by the kill
    assert _consistent(target) == ("vol_regime" if kill_at <= 4 else "crisis")  # the read finishes the swap
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.parquet", "set.parquet.losses.csv", "set.parquet.spec.json"]
    _set("crisis", 30, 2)[0].save(target, losses=_set("crisis", 30, 2)[1])
    assert _consistent(target) == "crisis"


def test_a_running_writers_staging_folder_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "set.parquet"
    s, losses = _set("vol_regime", 20, 1)
    s.save(target, losses=losses)
    other = tmp_path / f".set.parquet.stage-{os.getppid()}-abcd1234"  # a live process: our parent
    other.mkdir()
    (other / "COMMIT").write_text(json.dumps({"new": [], "remove": ["set.parquet.losses.csv"]}))
    stress_io.recover_set(target)
    assert other.is_dir() and Path(str(target) + ".losses.csv").is_file()

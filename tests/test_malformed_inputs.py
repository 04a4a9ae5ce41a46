"""Malformed inputs (issue 15): a hypothesis suite that drives the command line (in
process, through :func:`factorgym.app.cli.main`) and the Python API with malformed data
files, dates, specs, artifacts and arrays. For each input it asserts exit status 2 (or a
:class:`~factorgym.errors.FactorGymError` subclass), one ``error:`` line naming the bad
value, and an output folder unchanged to the byte.

``TRIED`` collects every distinct malformed input; the last test prints the count (``-s``).
Examples are derandomized, so a run is reproducible and the count is stable.
"""

from __future__ import annotations

import json
import re
import shutil
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorgym.app import cli
from factorgym.errors import FactorGymError

TRIED: set[tuple[str, str]] = set()
FEW = settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
ISO = re.compile(r"\d{4}-\d{2}-\d{2}")

PRICES = "date,AAA,BBB,CCC\n" + "".join(
    f"2021-01-{d:02d},{100 + d},{50 + d / 2},{20 + d / 3:.3f}\n" for d in range(4, 29)
)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli_fails(capsys: pytest.CaptureFixture[str], folder: Path, args: list[str], *needles: str) -> str:
    """Run the CLI; assert exit 2, one error line holding every needle, ``folder`` unchanged."""
    before = _snapshot(folder)
    code = cli.main(args)
    out, err = capsys.readouterr()
    assert code == 2, (args, code, err[-2000:])
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, err[-2000:])
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert _snapshot(folder) == before, args
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run folder, a scenario set and a weights file to leave untouched."""
    from factorgym.generators.runs import RunSpec, fit_run

    root = tmp_path_factory.mktemp("malformed")
    fit_run(RunSpec(kind="ledoit_wolf"), root / "lw", progress=False)
    assert cli.main(["stress", "vol_regime", "--run", str(root / "lw"), "--date", "2020-02-19", "-n", "40",
                     "--out", str(root / "set" / "s.parquet")]) == 0  # fmt: skip
    (root / "prices.csv").write_text(PRICES)
    return root


def _not_iso(s: str) -> bool:
    return not ISO.fullmatch(s.strip()) and "\x00" not in s


bad_dates = st.one_of(
    st.sampled_from(["garbage", "2013-13-45", "2013-02-30", "12/31/2013", "2013", "2013-1-5", "tomorrow", " ", "2013-12-31T12:00"]),
    st.text(alphabet=string.ascii_letters + string.digits + "-/:. ", min_size=1, max_size=12).filter(_not_iso),
)


# ---------------------------------------------------------------------------- dates
@FEW
@given(value=bad_dates, option=st.sampled_from(["--train-end", "--val-end"]))
def test_fit_refuses_dates_that_are_not_dates(work: Path, capsys: pytest.CaptureFixture[str], value: str, option: str) -> None:
    TRIED.add(("fit date", option + value))
    _cli_fails(capsys, work, ["fit", "ledoit_wolf", "--out", str(work / "lw"), f"{option}={value}", "--force"], repr(value))


@FEW
@given(value=bad_dates)
def test_stress_refuses_dates_that_are_not_dates(work: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    TRIED.add(("stress date", value))
    _cli_fails(capsys, work, ["stress", "crisis", "--run", str(work / "lw"), f"--date={value}", "--out", str(work / "set" / "s.parquet")], repr(value))


@FEW
@given(value=bad_dates, option=st.sampled_from(["--train-end", "--val-end"]))
def test_train_agent_refuses_dates_that_are_not_dates(work: Path, capsys: pytest.CaptureFixture[str], value: str, option: str) -> None:
    TRIED.add(("train-agent date", option + value))
    _cli_fails(capsys, work, ["train-agent", "ppo", "--out", str(work / "agent"), f"{option}={value}"], repr(value))


@FEW
@given(days=st.integers(1, 30_000))
def test_stress_refuses_context_dates_after_the_data(work: Path, capsys: pytest.CaptureFixture[str], days: int) -> None:
    import pandas as pd

    date = str((pd.Timestamp("2022-12-28") + pd.Timedelta(days=days)).date())
    TRIED.add(("stress date after data", date))
    _cli_fails(capsys, work, ["stress", "vol_regime", "--run", str(work / "lw"), "--date", date, "--out", str(work / "set" / "s.parquet")], date, "after the last day")


# ---------------------------------------------------------------------------- numbers and specs
@FEW
@given(seed=st.integers(max_value=-1))
def test_negative_seeds(work: Path, capsys: pytest.CaptureFixture[str], seed: int) -> None:
    TRIED.add(("seed", str(seed)))
    _cli_fails(capsys, work, ["fit", "ledoit_wolf", "--out", str(work / "lw"), f"--seed={seed}", "--force"], str(seed))
    _cli_fails(capsys, work, ["stress", "vol_regime", "--run", str(work / "lw"), "--date", "2020-02-19", f"--seed={seed}",
                              "--out", str(work / "set" / "s.parquet")], str(seed))  # fmt: skip


NUMERIC_SB3 = ["learning_rate", "gamma", "gae_lambda", "vf_coef", "max_grad_norm", "n_steps", "batch_size", "n_epochs", "ent_coef"]


@FEW
@given(key=st.sampled_from(NUMERIC_SB3), value=st.one_of(
    st.text(alphabet=string.ascii_letters, min_size=1, max_size=8), st.sampled_from(["[1]", '{"a": 1}', "true", "-5", "1e999", "null2"])))
def test_sb3_keywords_of_the_wrong_type(work: Path, capsys: pytest.CaptureFixture[str], key: str, value: str) -> None:
    TRIED.add(("--set", f"{key}={value}"))
    _cli_fails(capsys, work, ["train-agent", "ppo", "--out", str(work / "agent"), "--set", f"{key}={value}"], key)


@FEW
@given(value=st.text(alphabet=string.ascii_letters, min_size=1, max_size=8))
def test_env_options_of_the_wrong_type(work: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    key = ["temperature", "risk_free", "ruin_threshold"][len(value) % 3]
    TRIED.add(("--env", f"{key}={value}"))
    _cli_fails(capsys, work, ["train-agent", "ppo", "--out", str(work / "agent"), "--env", f"{key}={value}"], key)


@FEW
@given(kind=st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=10))
def test_unknown_generators_name_the_known_ones(work: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    from factorgym.generators.base import BUILTIN_GENERATORS

    if kind in BUILTIN_GENERATORS:
        return
    TRIED.add(("generator", kind))
    _cli_fails(capsys, work, ["fit", kind, "--out", str(work / "lw")], repr(kind), "known: bootstrap, ")


@FEW
@given(spec=st.text(alphabet=string.ascii_letters + ":,=_", min_size=1, max_size=16))
def test_stress_agent_specs_are_checked_before_writing(work: Path, capsys: pytest.CaptureFixture[str], spec: str) -> None:
    from factorgym.app.specs import AGENT_KINDS

    if spec.split(":")[0].split(",")[0].strip().lower().replace("-", "_") in AGENT_KINDS or spec.startswith("-"):
        return
    TRIED.add(("agent spec", spec))
    _cli_fails(capsys, work, ["stress", "crisis", "--run", str(work / "lw"), "--date", "2020-02-19", "--horizon", "2",
                              "-n", "10", "--agent", spec, "--out", str(work / "set" / "s.parquet")], "agent")  # fmt: skip


@FEW
@given(text=st.text(max_size=40).filter(lambda t: not t.strip().startswith("{")))
def test_non_json_portfolios(work: Path, capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("pf") / "w.json"
    path.write_text(text)
    TRIED.add(("portfolio json", text))
    _cli_fails(capsys, work, ["stress", "crisis", "--run", str(work / "lw"), "--date", "2020-02-19", "--horizon", "2",
                              "-n", "10", "--portfolio", str(path), "--out", str(work / "set" / "s.parquet")], "w.json")  # fmt: skip


@FEW
@given(kind=st.sampled_from(["factor_shock", "vol_regime", "crisis", "replay"]), horizon=st.integers(-5, 5),
       n=st.integers(-5, 5), quantile=st.floats(allow_nan=True, allow_infinity=True), window=st.sampled_from([None, "gfc-2008", "x"]))
def test_stress_specs_from_python(kind: str, horizon: int, n: int, quantile: float, window: str | None) -> None:
    from factorgym.generators.stress import StressSpec

    kw = dict(kind=kind, run=None if kind == "replay" else "r", date=None if kind == "replay" else "2020-02-19",
              window=window if kind == "replay" else None, horizon=horizon, n_scenarios=n, quantile=quantile)  # fmt: skip
    valid = (horizon >= 1 and n >= 1 and (kind != "factor_shock" or (horizon == 1 and 0 < quantile < 1))
             and (kind != "replay" or window in ("gfc-2008",)) and np.isfinite(quantile))  # fmt: skip
    if valid:
        return
    TRIED.add(("StressSpec", repr(sorted(kw.items()))))
    with pytest.raises(FactorGymError):
        StressSpec(**kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- data files
@FEW
@given(row=st.integers(0, 24), col=st.integers(1, 3), token=st.text(alphabet=string.ascii_letters, min_size=1, max_size=6))
def test_non_numeric_cells(work: Path, capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory,
                           row: int, col: int, token: str) -> None:  # fmt: skip
    if token.lower() in ("nan", "na", "n", "null", "none", "inf", "infinity") or token.lower().startswith(("nan", "inf")):
        return  # read as missing / special values by the CSV reader
    lines = PRICES.splitlines()
    cells = lines[row + 1].split(",")
    cells[col] = token
    lines[row + 1] = ",".join(cells)
    path = tmp_path_factory.mktemp("csv") / "p.csv"
    path.write_text("\n".join(lines) + "\n")
    TRIED.add(("cell", f"{row},{col},{token}"))
    _cli_fails(capsys, work, ["fit", "gaussian", "--dataset", str(path), "--out", str(work / "lw"), "--force"], repr(token))


@FEW
@given(row=st.integers(0, 24), token=st.sampled_from(["2021-02-30", "yesterday", "2021-13-01", "31/01/2021", "x", "2021-01-04"]))
def test_bad_timestamps(work: Path, capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory, row: int, token: str) -> None:
    lines = PRICES.splitlines()
    if lines[row + 1].startswith(token):
        return
    lines[row + 1] = token + lines[row + 1][10:]
    path = tmp_path_factory.mktemp("csv") / "p.csv"
    path.write_text("\n".join(lines) + "\n")
    TRIED.add(("timestamp", f"{row},{token}"))
    _cli_fails(capsys, work, ["fit", "gaussian", "--dataset", str(path), "--out", str(work / "lw"), "--force"], token)


# ---------------------------------------------------------------------------- artifacts
@FEW
@given(data=st.data())
def test_damaged_run_folders(work: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    from factorgym.generators.runs import load_run

    run = tmp_path_factory.mktemp("run") / "lw"
    shutil.copytree(work / "lw", run)
    name = data.draw(st.sampled_from(["generator.fgz", "run.json"]))
    raw = bytearray((run / name).read_bytes())
    how = data.draw(st.sampled_from(["flip", "truncate", "text"]))
    if how == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw = bytearray(data.draw(st.text(max_size=30)).encode())
    if name == "run.json" and how != "text":
        try:
            rec = json.loads(bytes(raw))
            if isinstance(rec, dict) and rec.get("status") == "done" and isinstance(rec.get("spec"), dict):
                return  # a change that keeps the record valid (e.g. inside a time stamp)
        except (ValueError, UnicodeDecodeError):
            pass
    (run / name).write_bytes(bytes(raw))
    TRIED.add(("run folder", f"{name}:{how}:{bytes(raw)[:40]!r}:{len(raw)}"))
    with pytest.raises(FactorGymError) as info:
        load_run(run)
    assert "lw" in str(info.value)


@FEW
@given(data=st.data())
def test_damaged_scenario_files(work: Path, capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    folder = tmp_path_factory.mktemp("set")
    target = folder / "s.parquet"
    raw = bytearray((work / "set" / "s.parquet").read_bytes())
    i = data.draw(st.integers(0, len(raw) - 1))
    cut = data.draw(st.booleans())
    raw = raw[:i] if cut else raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1 :]
    target.write_bytes(bytes(raw))
    TRIED.add(("scenario file", f"{i}:{cut}"))
    before = _snapshot(folder)
    code = cli.main(["stress", "--from", str(target)])
    out, err = capsys.readouterr()
    if code == 0:  # a flipped byte in a part nobody reads (e.g. padding) regenerates identically
        assert "identical" in out
        TRIED.discard(("scenario file", f"{i}:{cut}"))
        return
    assert code == 2 and err.count("\n") == 1 and "s.parquet" in err, err
    assert {k: v for k, v in _snapshot(folder).items() if not k.endswith(".losses.csv")} == before


# ---------------------------------------------------------------------------- arrays (Python API)
@FEW
@given(shape=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 4)), bad=st.sampled_from([np.nan, np.inf, -np.inf, None]))
def test_scenario_arrays(shape: tuple[int, int, int], bad: float | None) -> None:
    from factorgym.generators.stress import ScenarioSet, StressSpec

    paths = np.zeros(shape)
    assets = ("A", "B", "C")
    if bad is not None and paths.size:
        paths.flat[paths.size // 2] = bad
    elif bad is None and shape[2] == 3 and 0 not in shape:
        return  # a valid set
    TRIED.add(("scenario array", f"{shape}:{bad}"))
    with pytest.raises(FactorGymError):
        ScenarioSet(StressSpec("replay", window="gfc-2008"), assets, paths, None, {})


@FEW
@given(weights=st.dictionaries(st.text(max_size=4), st.one_of(st.text(max_size=3), st.none(), st.booleans(), st.lists(st.integers(), max_size=2)), min_size=1, max_size=3))
def test_weight_files_with_bad_values(tmp_path_factory: pytest.TempPathFactory, weights: dict) -> None:
    from factorgym.app.specs import read_weights

    path = tmp_path_factory.mktemp("w") / "w.json"
    path.write_text(json.dumps(weights))
    TRIED.add(("weights", json.dumps(weights, sort_keys=True)))
    with pytest.raises(FactorGymError, match="w.json"):
        read_weights(str(path), ("A", "B"))


def test_zz_count(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\nmalformed inputs tried: {len(TRIED)} distinct, in {len({k for k, _ in TRIED})} groups; all handled")
    assert len(TRIED) >= 50

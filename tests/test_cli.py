"""The command line: `data show` output, and one-line exit-2 errors for every user mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from factorgym.app import cli
from factorgym.data import SP500_SECTORS
from factorgym.errors import DataValidationError

PRICES = "date,AAA,BBB\n2021-01-04,100,50\n2021-01-05,101,50.5\n2021-01-06,99.5,\n2021-01-07,100.2,51\n"


def _run(*args: str, columns: int = 60) -> subprocess.CompletedProcess[str]:
    """The real entry point in a fresh interpreter, on a narrow 'terminal'."""
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "factorgym.app.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ---------------------------------------------------------------------------- subprocess
def test_data_show_sp500() -> None:
    res = _run("data", "show", "sp500")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for ticker in SP500_SECTORS:
        assert f"│ {ticker} " in out
    for sector in set(SP500_SECTORS.values()):  # never cut even on a 60-column terminal
        assert sector in out
    assert "…" not in out
    assert "1990-01-03 .. 2022-12-28" in out and "8312 days x 20 assets" in out
    assert "exogenous series: SP500" in out and "│ SP500 " in out
    assert "missing: 0 of 166240 cells" in out
    assert "caveat: Survivorship" in out and "price index without dividends" in out
    assert res.stderr == ""


def test_bad_file_in_a_fresh_interpreter(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(PRICES.replace("99.5", "nan"))
    res = _run("data", "show", str(path))
    _assert_one_line_error(res.returncode, res.stderr, "2021-01-06/AAA='nan'", "bad.csv")
    assert res.stdout == ""


def test_bad_option_in_a_fresh_interpreter() -> None:
    res = _run("data", "show", "sp500", "--layout", "diagonal")
    _assert_one_line_error(res.returncode, res.stderr, "--layout", "diagonal")


def test_console_script_points_at_main() -> None:
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="console_scripts") if ep.name == "factorgym"]
    if not eps:
        pytest.skip("factorgym is not installed as a distribution")
    assert eps[0].value == "factorgym.app.cli:main" and eps[0].load() is cli.main


# ---------------------------------------------------------------------------- in-process
def test_data_show_user_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(PRICES)
    code, out, err = _main(capsys, "data", "show", str(path))
    assert code == 0 and err == ""
    assert "read prices.csv: wide CSV of prices [date='date']; auto-detected:" in out
    assert "kind prices (all values positive" in out
    assert "prices: 3 days x 2 assets" in out and "missing: 2 of 6 cells" in out and "BBB (2)" in out
    code, out, _ = _main(capsys, "data", "show", str(path), "--kind", "prices", "--layout", "wide")
    assert code == 0 and "kind prices (" not in out and "layout wide (" not in out


def test_data_show_long_file_with_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "long.csv"
    path.write_text(
        "day,name,px,grp\n2021-01-04,A,10,x\n2021-01-04,IDX,100,\n2021-01-05,A,11,x\n2021-01-05,IDX,101,\n"
        "2021-01-06,A,12,x\n2021-01-06,IDX,99,\n"
    )
    code, out, err = _main(
        capsys, "data", "show", str(path), "--date-col", "day", "--asset-col", "name", "--value-col", "px",
        "--kind", "prices", "--exog", "IDX", "--static", "grp",
    )
    assert code == 0, err
    assert "exogenous series: IDX" in out and "static attributes: grp" in out and "│ IDX " in out


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("data", "show", "nasdaq"), ("unknown dataset 'nasdaq'", "sp500")),
        (("data", "show", "missing.csv"), ("no such data file", "missing.csv")),
        (("data", "show", "prices.xlsx"), ("unknown file extension '.xlsx'",)),
        (("data", "show", "sp500", "--kind", "prices"), ("--kind applies to data files",)),
        (("data", "show", "sp500", "--kind", "bogus"), ("--kind", "bogus")),
        (("data", "show", "sp500", "--nope"), ("No such option: --nope", "factorgym data show --help")),
        (("data", "show", "sp500", "extra"), ("unexpected extra argument",)),
        (("data", "bogus"), ("No such command 'bogus'",)),
        (("bogus",), ("No such command 'bogus'",)),
    ],
)
def test_user_errors_are_one_line(
    args: tuple[str, ...], needles: tuple[str, ...], capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(capsys, *args)
    _assert_one_line_error(code, err, *needles)
    assert out == ""


@pytest.mark.parametrize(
    ("body", "options", "needles"),
    [
        (PRICES.replace("99.5", "-1"), ("--kind", "prices"), ("non-positive prices at 2021-01-06/AAA",)),
        (PRICES.replace("99.5", "-1"), (), ("cannot tell whether", "negative values rule out prices", "--kind")),
        (PRICES.replace("2021-01-06", "2021-01-05"), (), ("duplicate dates", "2021-01-05")),
        (PRICES.replace("101", "abc"), (), ("non-numeric cells in column 'AAA' at 2021-01-05/AAA='abc'",)),
        (PRICES.replace("2021-01-07,100.2,51", "2021-01-07,100.2"), (), ("line 5 has 2",)),
        ("date,A\n2021-01-04,0.001\n2021-01-05,0.0011\n", (), ("cannot tell whether", "--kind")),
        ("", (), ("is empty",)),
        ("date,ticker,close\n2021-01-04,A,1\n2021-01-04,A,2\n", (), ("duplicate (date, asset) rows: 2021-01-04/A",)),
        ("date,A\n2021-01-04,0.5\n2021-01-05,0.7\n", ("--kind", "returns", "--layout", "wide", "--value-col", "A"),
         ("value_col applies to the long layout only",)),
    ],
)
def test_bad_data_files_are_one_line(
    body: str, options: tuple[str, ...], needles: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "data.csv"
    path.write_text(body)
    code, out, err = _main(capsys, "data", "show", str(path), *options)
    _assert_one_line_error(code, err, *needles)
    assert out == ""


def test_directory_and_unreadable_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.parquet").write_bytes(b"garbage")
    code, _, err = _main(capsys, "data", "show", str(tmp_path / "x.parquet"))
    _assert_one_line_error(code, err, "not a readable Parquet file")
    code, _, err = _main(capsys, "data", "show", str(tmp_path))
    _assert_one_line_error(code, err, "is a directory")


def test_help_and_no_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _main(capsys, "--help")
    assert code == 0 and "data" in out and err == ""
    code, out, _ = _main(capsys, "data", "show", "--help")
    assert code == 0 and "--kind" in out and "--layout" in out
    code, out, _ = _main(capsys)  # no command: help, usage-error status
    assert code == 2 and "Usage" in out


# ---------------------------------------------------------------------------- error plumbing
@pytest.fixture
def scratch_app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    """A throw-away app in place of ``cli.app``, to check how main() treats each outcome."""
    app = typer.Typer()

    @app.command("exit3")
    def exit3() -> None:
        raise typer.Exit(3)

    @app.command("abort")
    def abort() -> None:
        raise typer.Abort()

    @app.command("bad-data")
    def bad_data() -> None:
        raise DataValidationError("first line\nsecond line")

    @app.command("no-perm")
    def no_perm() -> None:
        raise PermissionError(13, "Permission denied", "/root/x.csv")

    @app.command("bug")
    def bug() -> None:
        raise RuntimeError("a bug")

    @app.command("ok")
    def ok() -> None:
        print("fine")

    monkeypatch.setattr(cli, "app", app)
    return app


def test_exit_codes_of_each_outcome(scratch_app: typer.Typer, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(capsys, "ok") == (0, "fine\n", "")
    code, _, err = _main(capsys, "exit3")
    assert code == 3 and err == ""
    code, _, err = _main(capsys, "abort")
    assert code == 1 and err == "error: aborted\n"
    code, _, err = _main(capsys, "bad-data")
    _assert_one_line_error(code, err, "first line; second line")
    code, _, err = _main(capsys, "no-perm")
    _assert_one_line_error(code, err, "Permission denied: /root/x.csv")
    with pytest.raises(RuntimeError, match="a bug"):  # bugs keep their traceback
        cli.main(["bug"])


# ---------------------------------------------------------------------------- stress
@pytest.fixture(scope="module")
def lw_sp500(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from factorgym.generators.runs import RunSpec, fit_run

    out = tmp_path_factory.mktemp("runs") / "lw"
    fit_run(RunSpec(kind="ledoit_wolf", dataset="sp500"), out, progress=False)
    return out


def test_stress_generates_saves_summarises_and_regenerates(
    lw_sp500: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import pandas as pd

    weights = tmp_path / "aapl.json"
    weights.write_text(json.dumps({"AAPL": 0.5, "XOM": 0.5}))
    target = tmp_path / "vol.parquet"
    code, out, err = _main(
        capsys, "stress", "vol_regime", "--run", str(lw_sp500), "--date", "2020-02-19", "--horizon", "3", "-n", "300",
        "--vol-scale", "3", "--portfolio", "equal", "--portfolio", str(weights), "--out", str(target),
    )
    assert code == 0, err
    assert target.is_file() and Path(str(target) + ".spec.json").is_file()
    losses = pd.read_csv(str(target) + ".losses.csv", index_col=0)
    assert list(losses.index) == ["1/N", "aapl"] and (losses["ES99"] >= losses["VaR99"]).all()
    assert (losses["VaR99"] >= losses["VaR95"]).all() and (losses["n"] == 300).all()
    # the saved specification regenerates the same paths
    code, out, err = _main(capsys, "stress", "--from", str(target))
    assert code == 0 and "identical paths" in out, err
    # a crisis set is compared with what followed the context date
    code, out, err = _main(
        capsys, "stress", "crisis", "--run", str(lw_sp500), "--date", "2020-02-19", "--horizon", "5", "-n", "100",
        "--out", str(tmp_path / "crisis.parquet"),
    )
    assert code == 0 and "what actually followed" in out and "prob_return_at_most_realised" in out, err
    code, out, err = _main(
        capsys, "stress", "replay", "--window", "covid-2020", "--out", str(tmp_path / "replay.parquet"),
        "--portfolio", "equal", "--agent", "equal_weight", "--agent", "mv:ledoit_wolf,window=60",
    )
    assert code == 0 and "1 paths" in out, err
    rep = pd.read_csv(str(tmp_path / "replay.parquet") + ".losses.csv", index_col=0)
    assert list(rep.index) == ["1/N", "agent equal_weight (after costs)", "agent mv:ledoit_wolf (after costs)"]
    # 1/N through the COVID crash: the agent pays its costs on top of the constant mix's loss
    assert rep.loc["1/N", "worst"] > 0.2
    assert 0 < rep.loc["agent equal_weight (after costs)", "worst"] - rep.loc["1/N", "worst"] < 0.01


def test_stress_user_errors_are_one_line(lw_sp500: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _main(capsys, "stress")
    _assert_one_line_error(code, err, "KIND")
    code, _, err = _main(capsys, "stress", "crisis", "--date", "2020-02-19", "--out", str(tmp_path / "x.parquet"))
    _assert_one_line_error(code, err)
    bad = tmp_path / "bad.json"
    bad.write_text('{"NOPE": 1.0}')
    code, _, err = _main(
        capsys, "stress", "vol_regime", "--run", str(lw_sp500), "--date", "2020-02-19", "-n", "50", "--portfolio", str(bad),
        "--out", str(tmp_path / "y.parquet"),
    )
    _assert_one_line_error(code, err, "NOPE")


# ---------------------------------------------------------------------------- issue 15: one consistent set
class _Killed(BaseException):
    """Stands in for SIGKILL inside the process (not an Exception: nothing cleans up)."""


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_stress_checks_portfolios_and_agents_before_writing(
    lw_sp500: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "set.parquet"
    base = ("stress", "vol_regime", "--run", str(lw_sp500), "--date", "2020-02-19", "-n", "60", "--out", str(target))
    assert _main(capsys, *base)[0] == 0
    before = _files(tmp_path)
    assert sorted(before) == ["set.parquet", "set.parquet.losses.csv", "set.parquet.spec.json"]
    (tmp_path / "bad.json").write_text("{not json")
    other = ("stress", "crisis", "--run", str(lw_sp500), "--date", "2020-02-19", "--horizon", "2", "-n", "30", "--out", str(target))
    before = _files(tmp_path)
    for extra, needle in [
        (("--portfolio", str(tmp_path / "bad.json")), "bad.json is not valid JSON"),
        (("--portfolio", "eqaul"), "portfolio 'eqaul' is neither 'equal'"),
        (("--agent", "sb3:" + str(tmp_path / "no_agent")), "no_agent"),
        (("--agent", "mv:ledoit_wolf,gama=3"), "unknown option 'gama'"),
    ]:
        code, _, err = _main(capsys, *other, *extra)
        _assert_one_line_error(code, err, needle)
        assert _files(tmp_path) == before, extra  # nothing written, nothing removed
    # killed while writing the new set: the old losses never sit beside the new scenarios
    from factorgym.generators.stress import io as stress_io

    real = stress_io.atomic_write_text

    def die(path, text):  # noqa: ANN001, ANN202
        raise _Killed

    monkeypatch.setattr(stress_io, "atomic_write_text", die)  # after the Parquet file, before its sidecar
    with pytest.raises(_Killed):
        cli.main(list(other))
    monkeypatch.setattr(stress_io, "atomic_write_text", real)
    from factorgym.generators.stress import read_scenarios

    assert read_scenarios(target).spec.kind == "vol_regime"  # the old set, intact
    assert _files(tmp_path) == before
    assert _main(capsys, *other)[0] == 0
    assert "crisis" in Path(str(target) + ".spec.json").read_text()

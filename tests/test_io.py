"""CSV / Parquet readers and writer: round trips, auto-detection, and every bad input."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factorgym.data import ReturnPanel
from factorgym.errors import DataValidationError
from factorgym.io import read_long_features, read_panel, read_panel_file, write_panel

ASSETS = ("AAA", "BBB", "CCC", "DDD")


def _panel(T: int = 40, seed: int = 0) -> ReturnPanel:  # noqa: N803
    """Returns with a leading gap (BBB), a two-day interior gap (CCC) and a trailing gap (DDD)."""
    rng = np.random.default_rng(seed)
    r = rng.normal(3e-4, 0.015, (T, len(ASSETS)))
    mask = np.ones_like(r, dtype=bool)
    mask[:5, 1] = False
    mask[10:12, 2] = False
    mask[-3:, 3] = False
    static = pd.DataFrame({"sector": ["Tech", "Energy", "Tech", "Utilities"]}, index=list(ASSETS))
    return ReturnPanel(pd.bdate_range("2021-03-01", periods=T), ASSETS, r, mask, static=static, name="demo")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


WIDE_PRICES = """date,AAA,BBB
2021-01-04,100.0,50.0
2021-01-05,101.0,50.5
2021-01-06,99.5,
2021-01-07,100.2,51.0
2021-01-08,100.9,51.3
"""


# ---------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".csv.gz"])
@pytest.mark.parametrize("layout", ["wide", "long"])
@pytest.mark.parametrize("kind", ["returns", "prices"])
def test_round_trip(tmp_path: Path, suffix: str, layout: str, kind: str) -> None:
    p = _panel()
    path = tmp_path / f"panel{suffix}"
    write_panel(p, path, layout=layout, kind=kind)  # type: ignore[arg-type]
    pf = read_panel_file(path)
    q = pf.panel
    assert (pf.format.layout, pf.format.kind) == (layout, kind)
    assert any(d.startswith(f"kind {kind}") for d in pf.format.decisions)
    assert q.dates.equals(p.dates) and q.assets == p.assets and q.name == "panel"
    np.testing.assert_array_equal(q.mask, p.mask)
    if kind == "returns":
        np.testing.assert_array_equal(q.returns, p.returns)  # exact: shortest round-trip floats
    else:
        np.testing.assert_allclose(q.returns, p.returns, rtol=0, atol=1e-14)
    # explicit arguments give the same panel and no layout/kind decisions
    pf2 = read_panel_file(path, layout=layout, kind=kind, name="x")  # type: ignore[arg-type]
    np.testing.assert_array_equal(pf2.panel.returns, q.returns)
    assert pf2.panel.name == "x"
    assert not [d for d in pf2.format.decisions if d.startswith(("layout", "kind"))]


def test_written_files_are_atomic_and_readable_by_others(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    ref.write_bytes(b"")
    path = tmp_path / "out.csv"
    write_panel(_panel(), path)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.csv", "ref"]
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(ref.stat().st_mode)


def test_prices_with_single_day_gap_cannot_be_written(tmp_path: Path) -> None:
    p = _panel()
    r = p.filled(np.nan)
    r[20, 0] = np.nan
    q = p.with_returns(r, ~np.isnan(r))
    with pytest.raises(DataValidationError, match=r"AAA is absent on 2021-03-29 only"):
        write_panel(q, tmp_path / "x.csv", kind="prices")
    write_panel(q, tmp_path / "x.csv", kind="returns")  # returns can hold it
    np.testing.assert_array_equal(read_panel(tmp_path / "x.csv").mask, q.mask)


def test_write_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"unknown file extension '\.xlsx'"):
        write_panel(_panel(), tmp_path / "x.xlsx")
    with pytest.raises(DataValidationError, match="unknown layout 'tall'"):
        write_panel(_panel(), tmp_path / "x.csv", layout="tall")  # type: ignore[arg-type]
    with pytest.raises(DataValidationError, match="base_price"):
        write_panel(_panel(), tmp_path / "x.csv", kind="prices", base_price=0.0)
    assert not list(tmp_path.iterdir())


def test_wide_prices_by_hand(tmp_path: Path) -> None:
    pf = read_panel_file(_write(tmp_path, "p.csv", WIDE_PRICES))
    p = pf.panel
    assert pf.format.kind == "prices" and pf.format.layout == "wide" and pf.format.date_col == "date"
    assert list(p.dates.strftime("%Y-%m-%d")) == ["2021-01-05", "2021-01-06", "2021-01-07", "2021-01-08"]
    np.testing.assert_allclose(p.returns[:, 0], [0.01, 99.5 / 101 - 1, 100.2 / 99.5 - 1, 100.9 / 100.2 - 1])
    np.testing.assert_array_equal(p.mask[:, 1], [True, False, False, True])  # empty cell = absent


def test_pandas_written_files(tmp_path: Path) -> None:
    """Files written by pandas with an unnamed index (CSV) or a DatetimeIndex (Parquet)."""
    p = _panel(seed=1)
    df = p.to_frame()
    df.index.name = None
    df.to_csv(tmp_path / "a.csv")  # header starts with an empty name
    df.to_parquet(tmp_path / "a.parquet")  # index stored as __index_level_0__
    for name in ("a.csv", "a.parquet"):
        q = read_panel(tmp_path / name, kind="returns")
        assert q.dates.equals(p.dates)
        np.testing.assert_array_equal(q.returns, p.returns)


def test_parquet_null_is_absent_but_nan_is_rejected(tmp_path: Path) -> None:
    dates = pa.array(pd.bdate_range("2021-01-04", periods=4).as_unit("ns").to_numpy())
    ok = pa.table({"date": dates, "AAA": pa.array([0.01, None, -0.02, 0.0], type=pa.float64())})
    pq.write_table(ok, tmp_path / "ok.parquet")
    p = read_panel(tmp_path / "ok.parquet", kind="returns")
    np.testing.assert_array_equal(p.mask[:, 0], [True, False, True, True])
    bad = pa.table({"date": dates, "AAA": pa.array([0.01, float("nan"), -0.02, 0.0], type=pa.float64())})
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(DataValidationError, match=r"NaN values in column 'AAA' at 2021-01-05/AAA.*null"):
        read_panel(tmp_path / "bad.parquet", kind="returns")


# ---------------------------------------------------------------------------- long files
LONG = """date,ticker,close,bm,sector
2021-01-04,AAA,100.0,0.5,Tech
2021-01-04,BBB,50.0,1.5,Energy
2021-01-04,IDX,1000.0,,
2021-01-05,AAA,101.0,0.6,Tech
2021-01-05,BBB,51.0,,Energy
2021-01-05,IDX,1010.0,,
2021-01-06,AAA,102.0,0.7,Tech
2021-01-06,IDX,1005.0,,
2021-01-07,AAA,101.0,0.8,Tech
2021-01-07,BBB,52.0,1.7,Energy
2021-01-07,IDX,1001.0,,
"""


def test_long_with_features_static_and_exog(tmp_path: Path) -> None:
    path = _write(tmp_path, "long.csv", LONG)
    pf = read_panel_file(path, static_cols=["sector"], exog_cols=["IDX"])
    p = pf.panel
    fmt = pf.format
    assert (fmt.layout, fmt.kind, fmt.asset_col, fmt.value_col) == ("long", "prices", "ticker", "close")
    assert fmt.feature_cols == ("bm",) and fmt.static_cols == ("sector",) and fmt.exog_cols == ("IDX",)
    assert p.assets == ("AAA", "BBB")
    assert dict(p.static["sector"]) == {"AAA": "Tech", "BBB": "Energy"}
    np.testing.assert_allclose(p.exog["IDX"].to_numpy(), [0.01, 1005 / 1010 - 1, 1001 / 1005 - 1])
    np.testing.assert_array_equal(p.mask[:, 1], [True, False, False])  # BBB has no 01-06 row
    bm = pf.features["bm"]
    assert list(bm.columns) == ["AAA", "BBB"] and len(bm) == 4  # every date of the file
    np.testing.assert_array_equal(bm["AAA"].to_numpy(), [0.5, 0.6, 0.7, 0.8])
    np.testing.assert_array_equal(bm["BBB"].to_numpy(), [1.5, np.nan, np.nan, 1.7])  # empty and absent
    assert "auto-detected" in fmt.describe() and "long CSV of prices" in fmt.describe()


def test_read_long_features_from_a_features_only_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "f.csv", "date,symbol,size,bm\n2021-01-05,B,2.0,\n2021-01-04,A,1.0,0.3\n2021-01-05,A,1.1,0.4\n")
    feats = read_long_features(path)
    assert set(feats) == {"size", "bm"}
    assert list(feats["size"].columns) == ["B", "A"]  # order of first appearance
    np.testing.assert_array_equal(feats["size"].to_numpy(), [[np.nan, 1.0], [2.0, 1.1]])
    assert list(read_long_features(path, feature_cols=["bm"])) == ["bm"]
    # from the full long file, the value column is left out
    full = read_long_features(_write(tmp_path, "long.csv", LONG), static_cols=["sector"])
    assert set(full) == {"bm"}


def test_text_column_in_long_file_explains_the_choices(tmp_path: Path) -> None:
    path = _write(tmp_path, "n.csv", "date,asset,ret,name\n2021-01-04,A,0.01,Apple\n2021-01-05,A,0.02,Apple\n")
    with pytest.raises(DataValidationError, match=r"'name' at 2021-01-04/A='Apple'.*static_cols=.*feature_cols"):
        read_panel(path)
    assert read_panel(path, feature_cols=()).N == 1
    assert dict(read_panel(path, static_cols=["name"]).static["name"]) == {"A": "Apple"}
    pf = read_panel_file(path, feature_cols=())
    assert pf.features == {} and "ignored columns 'name'" in pf.format.describe()


def test_long_order_by_asset_then_date_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.csv", "date,asset,ret\n2021-01-04,A,0.01\n2021-01-05,A,-0.02\n2021-01-04,B,0.0\n2021-01-05,B,0.03\n")
    p = read_panel(path)
    np.testing.assert_array_equal(p.returns, [[0.01, 0.0], [-0.02, 0.03]])


def test_detection_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="factorgym.io"):
        read_panel(_write(tmp_path, "p.csv", WIDE_PRICES))
    assert any("p.csv: wide CSV of prices" in m and "kind prices" in m for m in caplog.messages)


def test_non_iso_dates_need_a_format(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "date,AAA\n04/01/2021,0.01\n05/01/2021,-0.01\n06/01/2021,0.02\n")
    with pytest.raises(DataValidationError, match=r"cannot parse date '04/01/2021' \(data row 1\).*ISO 8601"):
        read_panel(path, kind="returns")
    p = read_panel(path, kind="returns", date_format="%d/%m/%Y")
    assert p.dates[0] == pd.Timestamp("2021-01-04")


# ---------------------------------------------------------------------------- bad values
@pytest.mark.parametrize(
    ("text", "kind", "pattern"),
    [
        ("nan", "returns", r"missing-value text in column 'BBB' at 2021-01-06/BBB='nan'.*leave the cell empty"),
        ("NaN", "prices", r"missing-value text in column 'BBB' at 2021-01-06/BBB='NaN'"),
        ("NA", "returns", r"missing-value text .* 2021-01-06/BBB='NA'"),
        ("inf", "returns", r"infinite returns at 2021-01-06/BBB"),
        ("-inf", "prices", r"infinite prices at 2021-01-06/BBB"),
        ("abc", "returns", r"non-numeric cells in column 'BBB' at 2021-01-06/BBB='abc'"),
        ('"1,5"', "prices", r"non-numeric cells in column 'BBB' at 2021-01-06/BBB='1,5'"),
        ("1.5", "returns", r"> \+100% at 2021-01-06/BBB"),
        ("-1.0", "returns", r"<= -100% at 2021-01-06/BBB"),
        ("0", "prices", r"non-positive prices at 2021-01-06/BBB"),
        ("-3", "prices", r"non-positive prices at 2021-01-06/BBB"),
        ("200", "prices", r"> \+100% at 2021-01-06/BBB"),
    ],
)
def test_bad_cell_named(tmp_path: Path, text: str, kind: str, pattern: str) -> None:
    base = "0.01" if kind == "returns" else "50.0"
    body = f"date,AAA,BBB\n2021-01-04,{base},{base}\n2021-01-05,{base},{base}\n2021-01-06,{base},{text}\n2021-01-07,{base},{base}\n"
    path = _write(tmp_path, "bad.csv", body)
    with pytest.raises(DataValidationError, match=pattern) as info:
        read_panel(path, kind=kind)  # type: ignore[arg-type]
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("date,A\n2021-01-04,1\n2021-01-05,1.1\n2021-01-05,1.2\n", r"duplicate dates in .*: 2021-01-05"),
        ("date,A\n2021-01-04,1\n2021-01-06,1.1\n2021-01-05,1.2\n", r"2021-01-06 is followed by 2021-01-05"),
        ("date,A\n2021-01-04,1\n,1.1\n", r"empty dates in column 'date' on data rows 2"),
        ("date,A,A\n2021-01-04,1,2\n", r"duplicate column names: 'A'"),
        ("date,A,\n2021-01-04,1,2\n2021-01-05,1,2\n", r"column 3 has no name"),
        ("date,A,B\n2021-01-04,1,2\n2021-01-05,1\n", r"wrong number of fields: line 3 has 2; the header has 3"),
        ("date,A\n2021-01-04,1,2,3\n", r"line 2 has 4; the header has 2"),
        ("date,A\n2021-01-04,1\n\n2021-01-05,\"1.1\n", r"not a readable CSV file"),
        ("date,A\n", r"header but no data rows"),
        ("", r"is empty"),
        ("date\n2021-01-04\n2021-01-05\n", r"no asset columns"),
        ("when,A\n2021-01-04,1\n2021-01-05,1.1\n", r"no date column .*pass date_col"),
        ("date,A\n2021-01-04,1.0\n", r"at least two dates"),
        ("date,A\n2021-01-04,1.0\n2021-01-05,1.1\n", r"only 1 day\(s\) of returns \(from 2 dates of prices\); at least 2"),
    ],
)
def test_bad_wide_file(tmp_path: Path, body: str, pattern: str) -> None:
    with pytest.raises(DataValidationError, match=pattern):
        read_panel(_write(tmp_path, "w.csv", body), kind="prices")


@pytest.mark.parametrize(
    ("body", "kwargs", "pattern"),
    [
        ("date,asset,ret\n2021-01-04,A,0.1\n2021-01-05,A,0.1\n2021-01-04,A,0.2\n", {}, r"duplicate \(date, asset\) rows: 2021-01-04/A"),
        ("date,asset,ret\n2021-01-05,A,0.1\n2021-01-04,A,0.1\n2021-01-04,B,0.2\n", {},
         r"dates of asset A are not sorted: 2021-01-05/A is followed by 2021-01-04"),
        ("date,asset,ret\n2021-01-04,,0.1\n2021-01-05,A,0.1\n", {}, r"empty asset names .* rows 1"),
        ("date,asset,ret\n2021-01-04,A,nan\n2021-01-05,A,0.1\n", {}, r"2021-01-04/A='nan'"),
        ("date,asset,ret,bm\n2021-01-04,A,0.1,inf\n2021-01-05,A,0.1,1\n", {}, r"infinite values in feature column 'bm' at 2021-01-04/A"),
        ("date,asset,ret,bm\n2021-01-04,A,0.1,x\n2021-01-05,A,0.1,1\n", {}, r"non-numeric cells in column 'bm' at 2021-01-04/A='x'"),
        ("date,asset,ret,sector\n2021-01-04,A,0.1,T\n2021-01-05,A,0.1,U\n", {"static_cols": ["sector"]},
         r"static column 'sector' is not constant for asset A: 'T' and 'U' \(at 2021-01-05/A\)"),
        ("date,asset,ret\n2021-01-04,A,0.1\n2021-01-05,A,0.1\n", {"asset_col": "ticker"}, r"asset column 'ticker' not found; the file has columns 'date', 'asset', 'ret'"),
        ("date,asset,ret\n2021-01-04,A,0.1\n2021-01-05,A,0.1\n", {"value_col": "close"}, r"value column 'close' not found"),
        ("date,asset,ret\n2021-01-04,A,0.1\n2021-01-05,A,0.1\n", {"date_col": "day"}, r"date column 'day' not found"),
        ("date,asset,ret\n2021-01-04,A,0.1\n2021-01-05,A,0.1\n", {"exog_cols": ["SPX"]}, r"exogenous series 'SPX' not found in asset column 'asset'"),
        ("date,asset,ret\n2021-01-04,A,0.1\n2021-01-05,A,0.1\n", {"static_cols": ["sector"]}, r"static column 'sector' not found"),
        ("date,ticker,symbol,ret\n2021-01-04,A,A,0.1\n", {}, r"several asset-identifier columns 'ticker', 'symbol'; pass asset_col"),
        ("date,asset,close,ret\n2021-01-04,A,1,0.1\n", {}, r"several possible value columns 'close', 'ret'; pass value_col"),
        ("date,asset,x,y\n2021-01-04,A,1,0.1\n", {}, r"no value column found among 'x', 'y'"),
        ("date,asset,log_ret\n2021-01-04,A,0.1\n2021-01-05,A,0.1\n", {}, r"looks like log returns"),
        ("date,A\n2021-01-04,0.1\n", {"layout": "long"}, r"no asset-identifier column found"),
        ("date,A\n2021-01-04,0.1\n2021-01-05,0.1\n", {"static_cols": ["x"]}, r"static_cols applies to the long layout only"),
        ("date,A\n2021-01-04,0.1\n2021-01-05,0.1\n", {"layout": "tall"}, r"unknown layout 'tall'"),
        ("date,A\n2021-01-04,0.1\n2021-01-05,0.1\n", {"kind": "levels"}, r"unknown kind 'levels'"),
    ],
)
def test_bad_long_file_or_arguments(tmp_path: Path, body: str, kwargs: dict, pattern: str) -> None:
    with pytest.raises(DataValidationError, match=pattern):
        read_panel_file(_write(tmp_path, "l.csv", body), **kwargs)


# ---------------------------------------------------------------------------- auto-detection
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # all positive and tiny: neither plausible prices (median <= 0.1) nor signed returns
        ("date,A,B\n2021-01-04,0.001,0.002\n2021-01-05,0.0011,0.0021\n2021-01-06,0.0012,0.0019\n", "do not look like prices"),
        # percentages: signed, but far too large for fractional returns
        ("date,A,B\n2021-01-04,1.5,-2.0\n2021-01-05,-0.7,3.1\n2021-01-06,2.2,-1.4\n", "percentages"),
        # positive but jumping around: returns would need negatives, prices would be too erratic
        ("date,A\n2021-01-04,5\n2021-01-05,0.2\n2021-01-06,7\n2021-01-07,0.3\n", "do not look like prices"),
        ("date,A\n2021-01-04,0\n2021-01-05,0.2\n2021-01-06,0.1\n", "zeros"),
    ],
)
def test_ambiguous_kind_asks_for_kind(tmp_path: Path, body: str, reason: str) -> None:
    with pytest.raises(DataValidationError, match=rf"cannot tell whether the values are prices or returns \(.*{reason}.*\); pass kind="):
        read_panel(_write(tmp_path, "a.csv", body))


def test_auto_detects_returns_and_says_why(tmp_path: Path) -> None:
    pf = read_panel_file(_write(tmp_path, "r.csv", "date,A,B\n2021-01-04,0.01,-0.02\n2021-01-05,-0.005,0.01\n"))
    assert pf.format.kind == "returns"
    assert any(d.startswith("kind returns (") and "negative" in d for d in pf.format.decisions)
    assert any(d.startswith("layout wide (") for d in pf.format.decisions)


# ---------------------------------------------------------------------------- files
def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"unknown file extension '\.xlsx' of .*x\.xlsx; expected one of \.csv"):
        read_panel(_write(tmp_path, "x.xlsx", "date,A\n"))
    with pytest.raises(FileNotFoundError, match="no such data file"):
        read_panel(tmp_path / "missing.csv")
    with pytest.raises(DataValidationError, match="is a directory"):
        read_panel(tmp_path)


def test_garbage_files(tmp_path: Path) -> None:
    (tmp_path / "g.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataValidationError, match=r"not a readable Parquet file"):
        read_panel(tmp_path / "g.parquet")
    (tmp_path / "g.csv").write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(DataValidationError, match=r"not a readable CSV file"):
        read_panel(tmp_path / "g.csv")
    (tmp_path / "g.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(DataValidationError, match=r"not a readable CSV file"):
        read_panel(tmp_path / "g.csv.gz")
    dates = pa.array(pd.bdate_range("2021-01-04", periods=2).as_unit("ns").to_numpy())
    pq.write_table(pa.table({"date": pa.array([20210104, 20210105]), "A": pa.array([0.1, 0.2])}), tmp_path / "i.parquet")
    with pytest.raises(DataValidationError, match=r"date column 'date' has type int64"):
        read_panel(tmp_path / "i.parquet")
    pq.write_table(pa.table({"date": dates, "A": pa.array([True, False])}), tmp_path / "b.parquet")
    with pytest.raises(DataValidationError, match=r"column 'A' has non-numeric type bool"):
        read_panel(tmp_path / "b.parquet", kind="returns")

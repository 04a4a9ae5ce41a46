"""Atomic writes and the artifact format: round trip, crash safety, corrupt files."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from factorgym import __version__
from factorgym.artifacts import (
    ARTIFACT_FORMAT,
    atomic_write_bytes,
    atomic_write_text,
    read_artifact,
    write_artifact,
)
from factorgym.errors import CheckpointError


def _write_sample(path: Path) -> tuple[dict, dict, dict]:
    meta = {"kind": "demo", "n": np.int64(3), "lr": np.float32(0.5), "where": Path("a/b"), "v": np.arange(3)}
    arrays = {"w": np.linspace(0, 1, 50).reshape(5, 10), "idx": np.arange(7, dtype=np.int32)}
    blobs = {"state.pt": os.urandom(3000), "empty": b""}
    write_artifact(path, meta, arrays=arrays, blobs=blobs)
    return meta, arrays, blobs


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.fga"
    _, arrays, blobs = _write_sample(path)
    meta, arr, bl = read_artifact(path, expect_kind="demo")
    assert meta["format"] == ARTIFACT_FORMAT and meta["library_version"] == __version__
    assert meta["n"] == 3 and meta["lr"] == 0.5 and meta["where"] == "a/b" and meta["v"] == [0, 1, 2]
    assert set(arr) == set(arrays) and set(bl) == set(blobs)
    for k in arrays:
        np.testing.assert_array_equal(arr[k], arrays[k])
        assert arr[k].dtype == arrays[k].dtype
    assert bl == blobs
    assert [p.name for p in tmp_path.iterdir()] == ["m.fga"]


def test_meta_only_artifact(tmp_path: Path) -> None:
    write_artifact(tmp_path / "a", {"kind": "x"})
    meta, arrays, blobs = read_artifact(tmp_path / "a")
    assert meta["kind"] == "x" and arrays == {} and blobs == {}


def test_unserialisable_meta_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not JSON-serialisable: object"):
        write_artifact(tmp_path / "a", {"kind": "x", "bad": object()})
    assert not list(tmp_path.iterdir())


def test_atomic_write_text_and_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(path, "héllo")
    atomic_write_text(path, "second")
    assert path.read_text(encoding="utf-8") == "second"
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
@pytest.mark.parametrize("existing", [False, True])
def test_failure_midway_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str, existing: bool
) -> None:
    path = tmp_path / "out.bin"
    if existing:
        path.write_bytes(b"old contents")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(path, b"new contents" * 1000)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == (["out.bin"] if existing else [])
    if existing:
        assert path.read_bytes() == b"old contents"


def test_interrupted_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt while writing (not just an OSError) cleans up too."""
    path = tmp_path / "out.bin"
    real_fdopen = os.fdopen

    class Exploding(io.RawIOBase):
        def __init__(self, f: io.BufferedWriter) -> None:
            self.f = f

        def __enter__(self) -> Exploding:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def fileno(self) -> int:
            return self.f.fileno()

        def write(self, data: bytes) -> int:  # type: ignore[override]
            self.f.write(data[: len(data) // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Exploding(real_fdopen(fd, mode)))
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"x" * 10_000)
    assert not list(tmp_path.iterdir())


def test_permissions_follow_umask_or_existing_file(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    ref.write_bytes(b"")  # created the ordinary way: 0o666 & ~umask
    new = tmp_path / "new"
    atomic_write_bytes(new, b"data")
    assert stat.S_IMODE(new.stat().st_mode) == stat.S_IMODE(ref.stat().st_mode)
    os.chmod(new, 0o640)
    atomic_write_bytes(new, b"more")
    assert stat.S_IMODE(new.stat().st_mode) == 0o640


# ---------------------------------------------------------------------------- bad files
def _zip(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no artifact at .*nothing.fga"):
        read_artifact(tmp_path / "nothing.fga")


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "m.fga"
    _write_sample(path)
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="corrupt or not a factorgym artifact"):
            read_artifact(path)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "g.fga"
    path.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(CheckpointError, match="g.fga is corrupt or not a factorgym artifact"):
        read_artifact(path)


def test_bit_flips_never_escape_as_other_errors(tmp_path: Path) -> None:
    """Any single flipped bit either still reads the same content or raises CheckpointError."""
    path = tmp_path / "m.fga"
    meta0, arrays0, blobs0 = _write_sample(path)
    good = read_artifact(path)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    caught = 0
    for pos in range(0, len(data), max(1, len(data) // 300)):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(flipped))
        try:
            meta, arrays, blobs = read_artifact(path)
        except CheckpointError:
            caught += 1
            continue
        assert meta == good[0] and blobs == good[2]
        for k in arrays:
            np.testing.assert_array_equal(arrays[k], good[1][k])
    assert caught > 100  # most flips hit checked data


@pytest.mark.parametrize(
    ("files", "pattern"),
    [
        ({"other.txt": b"x"}, "not a factorgym artifact \\(no meta.json\\)"),
        ({"meta.json": b"{not json"}, "corrupt or not a factorgym artifact"),
        ({"meta.json": b"[1, 2]"}, "meta.json is not an object"),
        ({"meta.json": b"\xff\xfe"}, "corrupt or not a factorgym artifact"),
        ({"meta.json": json.dumps({"format": 99, "kind": "demo"}).encode()}, "artifact format 99; this library reads format 1"),
        ({"meta.json": json.dumps({"kind": "demo"}).encode()}, "artifact format None"),
        ({"meta.json": json.dumps({"format": 1}).encode(), "arrays.npz": b"not an npz"}, "corrupt or not a factorgym artifact"),
    ],
)
def test_wrong_format_files(tmp_path: Path, files: dict[str, bytes], pattern: str) -> None:
    path = tmp_path / "w.fga"
    _zip(path, files)
    with pytest.raises(CheckpointError, match=pattern):
        read_artifact(path)


def test_pickled_arrays_are_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.savez(buf, obj=np.array([{"a": 1}], dtype=object))
    path = tmp_path / "p.fga"
    _zip(path, {"meta.json": json.dumps({"format": 1}).encode(), "arrays.npz": buf.getvalue()})
    with pytest.raises(CheckpointError, match="corrupt or not a factorgym artifact"):
        read_artifact(path)


def test_wrong_kind(tmp_path: Path) -> None:
    path = tmp_path / "m.fga"
    _write_sample(path)
    with pytest.raises(CheckpointError, match="holds a 'demo', expected 'neuralfactors'"):
        read_artifact(path, expect_kind="neuralfactors")


def test_the_same_contents_give_the_same_bytes(tmp_path, monkeypatch) -> None:
    """Artifacts carry no write time (issue 15: a resumed fit is compared with a clean one byte for byte)."""
    import time

    import numpy as np

    from factorgym.artifacts import write_artifact

    real = time.time
    for i, name in enumerate(("a.fgz", "b.fgz")):
        monkeypatch.setattr(time, "time", lambda i=i: real() + 86_400 * 400 * i)  # a year apart
        write_artifact(tmp_path / name, {"kind": "x"}, arrays={"w": np.arange(3.0)}, blobs={"b": b"1"})
    assert (tmp_path / "a.fgz").read_bytes() == (tmp_path / "b.fgz").read_bytes()


def test_staged_folder_replaces_whole_or_not_at_all(tmp_path):
    from factorgym.artifacts import staged_folder

    out = tmp_path / "result"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_folder(out) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("killed half-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"] and sorted(p.name for p in out.iterdir()) == ["old.txt"]
    with staged_folder(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]  # nothing stale from the old result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]

    def refuse(p):  # noqa: ANN001, ANN202
        raise ValueError(f"{p} is not mine")

    with pytest.raises(ValueError, match="not mine"), staged_folder(out, refuse):
        pass
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]


def test_check_result_folder_refuses_files_and_foreign_folders(tmp_path):
    from factorgym.artifacts import check_result_folder
    from factorgym.errors import DataValidationError

    assert check_result_folder(tmp_path / "new", "done.json", "a result") == tmp_path / "new"  # absent: fine
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataValidationError, match="is a file"):
        check_result_folder(tmp_path / "f", "done.json", "a result")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("keep")
    with pytest.raises(DataValidationError, match="holds no done.json: it is not a result"):
        check_result_folder(tmp_path / "other", "done.json", "a result")
    (tmp_path / "other" / "done.json").write_text("{}")
    check_result_folder(tmp_path / "other", "done.json", "a result")  # a previous result: replaceable

"""Atomic file writes and the single-file artifact format used for every saved model.

An artifact is a zip archive holding ``meta.json`` (format version, library version, kind,
config, data schema...), optional ``arrays.npz`` and optional named binary blobs (e.g. torch
state dicts). It is written to a temporary file in the same directory and moved into place
with :func:`os.replace`, so a crash never leaves a half-written artifact behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from factorgym.errors import CheckpointError, DataValidationError

__all__ = [
    "ARTIFACT_FORMAT", "atomic_write_bytes", "atomic_write_text", "check_result_folder", "file_sha256", "folder_lock", "read_artifact",
    "staged_folder", "write_artifact",
]  # fmt: skip

#: Bumped when the artifact layout changes incompatibly.
ARTIFACT_FORMAT = 1


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would set global state)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _file_mode(path: Path) -> int:
    """Permissions for a (re)written ``path``: the existing file's, else ``0o666 & ~umask``."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + ``os.replace``).

    The file gets ordinary permissions (those of the file it replaces, else the umask's),
    not the owner-only mode of :func:`tempfile.mkstemp`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _file_mode(path))
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_result_folder(out: str | os.PathLike[str], marker: str, what: str, label: str = "output folder") -> Path:
    """``out`` as a folder that may be replaced by a new result: absent, empty, or holding
    ``marker`` (the file a finished result of this kind writes last).

    Raises
    ------
    DataValidationError
        ``out`` is a file, or a non-empty folder without ``marker`` (``what`` names the kind
        of result in the message, ``label`` the folder).
    """
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise DataValidationError(f"{label} {p} is a file")
    if p.is_dir() and any(p.iterdir()) and not (p / marker).is_file():
        raise DataValidationError(
            f"{label} {p} is not empty and holds no {marker}: it is not {what}, so it is not replaced "
            "(choose an empty or new folder)"
        )
    return p


@contextmanager
def folder_lock(out: str | os.PathLike[str], lock_name: str, busy: Callable[[Path], Exception]) -> Iterator[Path]:
    """Create ``out`` if needed and hold the file lock ``out / lock_name`` for the block, so
    that a second process writing into the same folder is refused at once with ``busy(out)``
    (raised) instead of waiting or mixing its files with ours.

    Yields
    ------
    Path
        ``out``.
    """
    from filelock import FileLock, Timeout

    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    lock = FileLock(target / lock_name)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise busy(target) from None
    try:
        yield target
    finally:
        lock.release()


@contextmanager
def staged_folder(out: str | os.PathLike[str], check: Callable[[Path], Any] | None = None) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write a whole result into; when the block ends
    without an error it takes ``out``'s place, so ``out`` holds the old complete result or the
    new one, never a mix (an error or a kill leaves the old one and, at worst, a hidden
    ``.NAME.tmp-*`` folder).

    Parameters
    ----------
    out : path
        The folder to replace (or create).
    check : callable, optional
        ``check(out)`` raises when ``out`` must not be replaced (e.g. a folder that is not this
        kind of result); it runs before the block and again just before the swap.

    Yields
    ------
    Path
        The temporary folder to write into.
    """
    target = Path(out)
    if check is not None:
        check(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        yield tmp
        if check is not None:
            check(target)  # nothing else was written there meanwhile
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(target, old)
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_artifact(
    path: str | os.PathLike[str],
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray] | None = None,
    blobs: dict[str, bytes] | None = None,
) -> None:
    """Write one artifact file atomically. ``meta`` must be JSON-serialisable."""
    from factorgym import __version__

    meta = {"format": ARTIFACT_FORMAT, "library_version": __version__, **meta}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_entry("meta.json"), json.dumps(meta, indent=2, sort_keys=True, default=_json_default))
        if arrays:
            zf.writestr(_entry("arrays.npz"), _npz_bytes(arrays))
        for name, data in (blobs or {}).items():
            zf.writestr(_entry(f"blobs/{name}"), data)
    atomic_write_bytes(path, buf.getvalue())


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``np.savez`` with fixed time stamps (it stamps each member with the current time)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
            info = _entry(f"{key}.npy")
            info.compress_type = zipfile.ZIP_STORED
            zf.writestr(info, member.getvalue())
    return out.getvalue()


def _entry(name: str) -> zipfile.ZipInfo:
    """A zip entry with a fixed time stamp, so that the same contents give the same bytes
    (a refit or a resumed fit can then be compared with a clean one byte for byte)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def read_artifact(
    path: str | os.PathLike[str], expect_kind: str | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, bytes]]:
    """Read an artifact; raise :class:`CheckpointError` if missing, corrupt or incompatible."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no artifact at {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise CheckpointError(f"{path} is corrupt (bad CRC in {bad})")
            names = set(zf.namelist())
            if "meta.json" not in names:
                raise CheckpointError(f"{path} is not a factorgym artifact (no meta.json)")
            meta = json.loads(zf.read("meta.json"))
            if not isinstance(meta, dict):
                raise CheckpointError(f"{path} is not a factorgym artifact (meta.json is not an object)")
            arrays: dict[str, np.ndarray] = {}
            if "arrays.npz" in names:
                with np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
            blobs = {n[len("blobs/") :]: zf.read(n) for n in names if n.startswith("blobs/")}
    except CheckpointError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,  # damaged deflate data
        NotImplementedError,  # damaged compression-method bits
        RuntimeError,  # damaged flags read as "encrypted"
        json.JSONDecodeError,
        ValueError,
        OSError,
        EOFError,
    ) as exc:
        raise CheckpointError(f"{path} is corrupt or not a factorgym artifact: {exc}") from exc
    if meta.get("format") != ARTIFACT_FORMAT:
        raise CheckpointError(
            f"{path} has artifact format {meta.get('format')!r}; this library reads format {ARTIFACT_FORMAT}"
        )
    if expect_kind is not None and meta.get("kind") != expect_kind:
        raise CheckpointError(f"{path} holds a {meta.get('kind')!r}, expected {expect_kind!r}")
    return meta, arrays, blobs


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")

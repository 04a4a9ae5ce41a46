"""The output folder of a backtest, replaced as a whole: it holds either the previous
complete result or the new complete result, never a mix (a smaller re-run leaves no stale
``daily/*.csv`` or ``report.html``) and never half of one (a run that fails while writing
leaves the previous result as it was).

:func:`staged_folder` hands out a fresh temporary folder beside the target
(``.<name>.tmp-<pid>-<random>``, same file system); when the block ends without an error the
target is replaced by it with two renames (old target aside, new one in, old one deleted;
if the second rename fails the old one is put back). On an error the temporary folder is
deleted and the target is untouched. Only a folder that is empty or holds a previous
backtest (``backtest.json``) is ever replaced: :func:`check_output_folder` refuses any other
(e.g. ``--out .``), and runs first, before any work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from factorgym.artifacts import check_result_folder
from factorgym.artifacts import staged_folder as artifact_staged_folder

__all__ = ["MARKER", "check_output_folder", "staged_folder"]

#: The file that marks a folder as a backtest's output.
MARKER = "backtest.json"


def check_output_folder(out: str | os.PathLike[str]) -> Path:
    """``out`` as a Path, checked to be replaceable: absent, an empty folder or a previous
    backtest's folder.

    Raises
    ------
    DataValidationError
        When ``out`` is a file, or a non-empty folder without ``backtest.json``.
    """
    return check_result_folder(out, MARKER, "a backtest's output")


@contextmanager
def staged_folder(out: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write into; it replaces ``out`` when the block
    ends without an error (see the module docstring).

    Yields
    ------
    Path
        The temporary folder.
    """
    with artifact_staged_folder(out, check_output_folder) as tmp:
        yield tmp

"""Every script in ``examples/`` runs end to end with its ``--smoke`` flag.

Convention (stated at the top of each example): ``--smoke`` runs the whole script with a
tiny budget, writes only into a temporary folder and exits with status 0. The scripts run
in a subprocess, from an empty working directory, exactly as a user would run them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_there_are_examples():
    assert EXAMPLES, "examples/ holds no scripts"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_documents_the_smoke_convention(script):
    head = script.read_text().split('"""')[1]
    assert "--smoke" in head, f"{script.name}: document the --smoke convention in its module docstring"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_with_smoke_budget(script, tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(script), "--smoke"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), f"{script.name} printed nothing"
    assert not any(tmp_path.iterdir()), f"{script.name} --smoke wrote into the working directory"

"""Check the floors of factorgym with import-linter (the contracts in pyproject.toml).

factorgym's subpackages live in separate top-level folders (``src/factorgym``, ``generators``,
``envs``, ``agents``) that pyproject's ``package-dir`` maps into one namespace. import-linter
finds modules by walking the root package's folder, so this script lays the package out as an
installed wheel would (a copy in a temporary folder) and lints that copy.

Usage: ``python tools/lint_imports.py [--root DIR]`` (exit status 0 when every contract is kept).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def assemble(root: Path, dest: Path) -> Path:
    """Copy the package as it installs (package-dir mapping) under ``dest``; return the copy."""
    cfg = tomllib.loads((root / "pyproject.toml").read_text())
    mapping = cfg["tool"]["setuptools"]["package-dir"]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        target = dest.joinpath(*package.split("."))
        shutil.copytree(root / folder, target, ignore=ignore, dirs_exist_ok=True)
    return dest / "factorgym"


def lint(root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` over an assembled copy of ``root``'s package."""
    with tempfile.TemporaryDirectory(prefix="factorgym-lint-") as tmp:
        assemble(root, Path(tmp))
        env = {**os.environ, "PYTHONPATH": tmp}
        # the copy goes first on sys.path, ahead of an editable install's finder
        code = (
            "import sys; sys.path.insert(0, sys.argv.pop(1)); import factorgym; "
            "assert factorgym.__file__.startswith(sys.path[0]), factorgym.__file__; "
            "from importlinter.cli import lint_imports_command; lint_imports_command()"
        )
        return subprocess.run(
            [sys.executable, "-c", code, tmp, str(root / "pyproject.toml"), "--no-cache"],
            capture_output=True, text=True, env=env, cwd=tmp, check=False,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="project root (default: this checkout)")
    args = parser.parse_args()
    res = lint(args.root)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode


if __name__ == "__main__":
    raise SystemExit(main())

"""Rebuild ``benchmarks/RESULTS.md``: its headline part (everything above the first ``---``
line, edited by hand) followed by every ``benchmarks/results/*.md`` in a fixed order, each
heading demoted one level.

Usage::

    python benchmarks/assemble_results.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["neuralfactors", "nf_ablation", "rollouts", "baselines", "diffusion", "diffusion_selection", "envs", "banks", "scale", "optimizers", "agents", "evaluation", "sim2real", "sim2real_diagnosis", "sim2real_v2", "sim2real_v3", "sim2real_v4", "sim2real_v5", "demo", "load"]


def main() -> None:
    target = HERE / "RESULTS.md"
    head = target.read_text().split("\n---\n", 1)[0].rstrip() + "\n"
    files = [HERE / "results" / f"{n}.md" for n in ORDER]
    files += sorted(p for p in (HERE / "results").glob("*.md") if p not in files)
    parts = [head]
    for p in files:
        if not p.is_file():
            continue
        lines, fenced = [], False
        for ln in p.read_text().rstrip().splitlines():
            fenced ^= ln.startswith("```")
            lines.append("#" + ln if ln.startswith("#") and not fenced else ln)
        parts.append("\n".join(lines) + "\n")
    target.write_text("\n---\n\n".join(parts))
    print(f"wrote {target} ({len(parts) - 1} sections)")


if __name__ == "__main__":
    main()

"""Bytes and time of a batch's outputs: today's defaults against an earlier revision's, in the same run.

    .venv/bin/python benchmarks/output_bytes.py --baseline-rev REV [--slides 12] [--rounds 2]

REV is the revision to compare with (the last one before outputs were sized
for retention: per-cell GeoJSON and full-colour PNG QC pictures by default).
It is checked out into a git worktree under ``benchmarks/cache/`` and run
from there with this virtual environment, so both see the same libraries.
The slides are synthetic (several layouts, one or two metastases, 1,200-4,000
cells each) and cached. Each round scores them with both revisions,
interleaved, with 2 workers, and after a warm-up run of each (Numba compiles
its kernels once per checkout). Printed: wall time per variant and the ratio
to the baseline; bytes per slide of each output; MB per 1,000 cells of the
per-cell outputs; what a 500-slide day costs on disk at 0.5 and 2 million
cells per slide. Timings are medians over the rounds; the machine is shared,
so only the ratios measured side by side mean anything.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / "cache" / "output_bytes"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from _revisions import worktree  # noqa: E402
from ihc_score.synthetic import make_slide, preset  # noqa: E402

#: (preset, width, height) of the slides, repeated with new seeds up to --slides.
LAYOUTS = (("strong", 5000, 3600), ("negative", 4400, 3200), ("multi-met", 6000, 4500), ("near-cutoff", 5000, 3600))
#: Output groups: name and a test on the file's path relative to the results folder.
GROUPS = (
    ("tables (3 CSV)", lambda p: p.name in ("slides.csv", "metastases.csv", "cases.csv")),
    ("run.json + report.html", lambda p: p.name in ("run.json", "report.html")),
    ("store/", lambda p: p.parts[0] == "store"),
    ("qc/ overview", lambda p: p.parts[0] == "qc" and "-zoom." not in p.name),
    ("qc/ zooms", lambda p: p.parts[0] == "qc" and "-zoom." in p.name),
    ("detections/", lambda p: p.parts[0] == "detections"),
    ("cells/", lambda p: p.parts[0] == "cells"),
)
PER_CELL = ("detections/", "cells/")


def slides(n: int) -> Path:
    folder = CACHE / f"slides-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name, w, h = LAYOUTS[i % len(LAYOUTS)]
        path = folder / f"s{i:02d}-{name}.svs"
        if not path.exists():
            make_slide(path, preset(name, width=w, height=h, seed=500 + i))
    return folder


def score(root: Path, folder: Path, out: Path, extra: list[str]) -> float:
    """Seconds of ``cli.py score`` from the checkout ``root`` into a fresh ``out``."""
    subprocess.run(["rm", "-rf", str(out)], check=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(root / "cli.py"), "score", str(folder), "--out", str(out), "--workers",
                           "2", "-q", *extra], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{root} failed: {done.stderr[-2000:]}")
    return seconds


def sizes(out: Path) -> tuple[dict[str, int], int, int]:
    """Bytes per output group, slides and cells (slides.csv n_cells, the cells scored in regions)."""
    found = {name: 0 for name, _ in GROUPS}
    for p in out.rglob("*"):
        if p.is_file() and not p.name.startswith("."):
            rel = p.relative_to(out)
            for name, test in GROUPS:
                if test(rel):
                    found[name] += p.stat().st_size
    with open(out / "slides.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return found, len(rows), sum(int(r["n_cells"] or 0) for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-rev", required=True, help="revision whose default outputs are compared")
    ap.add_argument("--slides", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    folder = slides(args.slides)
    variants = {
        f"baseline {args.baseline_rev}": (worktree(args.baseline_rev), []),
        "current defaults": (REPO, []),
        "current + --detections geojson": (REPO, ["--detections", "geojson"]),
    }
    times: dict[str, list[float]] = {v: [] for v in variants}
    for name, (root, extra) in variants.items():  # warm-up: compile and cache the kernels of each checkout
        score(root, folder, CACHE / "warm", extra)
    measured = {}
    for _ in range(args.rounds):
        for name, (root, extra) in variants.items():
            out = CACHE / "out" / name.split()[0]
            times[name].append(score(root, folder, out, extra))
            measured[name] = sizes(out)
    base = statistics.median(next(iter(times.values())))
    print(f"{args.slides} slides, {args.rounds} rounds, 2 workers\n")
    print(f"{'variant':34s} {'wall s':>8s} {'x baseline':>10s} {'MB/slide':>9s} {'MB/1000 cells':>14s}")
    for name, ts in times.items():
        found, n_slides, n_cells = measured[name]
        total = sum(found.values())
        per_cell = sum(found[g] for g in PER_CELL)
        print(f"{name:34s} {statistics.median(ts):8.1f} {statistics.median(ts) / base:10.2f} "
              f"{(total - per_cell) / n_slides / 1e6:9.3f} {per_cell / n_cells * 1000 / 1e6:14.3f}")
    print("\nbytes per slide (per-cell outputs also per 1000 cells):")
    for group, _ in GROUPS:
        row = []
        for name in times:
            found, n_slides, n_cells = measured[name]
            text = f"{found[group] / n_slides / 1e6:.3f} MB"
            if group in PER_CELL:
                text += f" ({found[group] / n_cells * 1000 / 1e6:.3f}/1000 cells)"
            row.append(f"{text:>30s}")
        print(f"  {group:24s}" + "".join(row))
    print("\na 500-slide day on disk (fixed part per slide + per-cell part at 0.5 / 2 million cells per slide):")
    for name in times:
        found, n_slides, n_cells = measured[name]
        per_cell = sum(found[g] for g in PER_CELL) / n_cells
        fixed = (sum(found.values()) - sum(found[g] for g in PER_CELL)) / n_slides
        day = [500 * (fixed + per_cell * cells) / 1e9 for cells in (0.5e6, 2e6)]
        print(f"  {name:34s} {day[0]:6.1f} GB / {day[1]:6.1f} GB")


if __name__ == "__main__":
    main()

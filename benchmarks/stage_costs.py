"""Where a slide's scoring time goes, step by step, today and in an earlier release.

Run from the repository root::

    .venv/bin/python benchmarks/stage_costs.py [--baseline-rev 2784c20] [--rounds 2]

Scores the throughput benchmark's quick slide (``throughput.py``, 14000 x
14000 px) alone (``--workers 1 --detections none --no-qc``, and no per-cell
table where the CLI has that option), each CLI run in a child process of
its own that wraps the pipeline's steps in CPU-time counters and runs the
CLI in the same process. Prints each step's CPU seconds summed over the
slide's tiles (best of ``--rounds``), today's beside the release's with
their ratio. A step is counted where its module looks it up by name at
call time (e.g. ``detect_cells`` calling ``detect_nuclei``); a step the
release does not have shows ``-``; nested steps are counted within their
callers too, so the column does not add up. The counters cost a few
microseconds per call (about 2,000 calls per slide).

Used to tell what the speed ratio of ``body_speed.py`` is made of: the
steps both share, the new ones, and what a process pays once (imports,
loading the compiled kernels, planning).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput as T  # noqa: E402
from _revisions import REPO, worktree  # noqa: E402

#: (label, ((module, name), ...)): the steps timed, in the order printed; a step is each name that exists.
STEPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("plan the slide (tissue, artefacts, stain estimate)", (("ihc_score.run.batch", "plan_slide"),
                                                            ("ihc_score.run.pipeline", "plan_slide"))),
    ("  stain vectors from the sample", (("ihc_score.run.slide_stains", "estimate_stains"),
                                         ("ihc_score.run.plan", "estimate_stains"))),
    ("  pigment's colour left out of the sample", (("ihc_score.run.slide_stains", "_without_pigment"),)),
    ("score the tiles (after reading)", (("ihc_score.run.tile_scoring", "_score_tile"),)),
    ("  deconvolve", (("ihc_score.run.tile_scoring", "deconvolve"),)),
    ("  detect cells", (("ihc_score.run.tile_scoring", "detect_cells"),)),
    ("    background", (("ihc_score.cells.detect", "_subtract_background"),)),
    ("    smoothing", (("ihc_score.cells.detect", "_smooth"),)),
    ("    threshold + holes", (("ihc_score.cells.detect", "_foreground"),)),
    ("    maxima", (("ihc_score.cells.detect", "_maxima"),)),
    ("    watershed / assignment", (("ihc_score.cells.detect", "_partition"),)),
    ("    trim", (("ihc_score.cells.detect", "_trim"),)),
    ("    second search (faint nuclei)", (("ihc_score.cells.detect", "second_search"),)),
    ("    cell bodies from the image", (("ihc_score.cells.detect", "stained_bodies"),)),
    ("    cells as a fixed ring", (("ihc_score.cells.detect", "expand_cells"),)),
    ("    measurement", (("ihc_score.cells.detect", "measure_cells"),)),
    ("  focus", (("ihc_score.run.tile_scoring", "blurred_blocks"),)),
    ("  pigment", (("ihc_score.run.tile_scoring", "pigment_mask"),)),
)

#: Run in the child: wrap the steps, run the CLI, print the counters as JSON on the last line.
_CHILD = r"""
import importlib, json, sys, time
src, steps, argv = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
sys.path.insert(0, src)
start = time.process_time()
spent, calls = {}, {}
def wrap(module, name):
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return
    fn = getattr(mod, name, None)
    if fn is None:
        return
    key = module + ":" + name
    spent[key], calls[key] = 0.0, 0
    def timed(*args, **kwargs):
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.process_time() - t
            calls[key] += 1
    setattr(mod, name, timed)
for module, name in steps:
    wrap(module, name)
from ihc_score.cli import main
try:
    main(argv, standalone_mode=False)
except SystemExit:
    pass
spent["total"] = time.process_time() - start
print(json.dumps({k: v for k, v in spent.items() if k == "total" or calls[k]}))
"""


def _run(src: Path, slide: Path, out: Path, options: list[str]) -> dict:
    """CPU seconds of each step called (``module:name``; ``total``: from before the imports), one CLI run of ``src``."""
    steps = json.dumps([list(pair) for _, pairs in STEPS for pair in pairs])
    cmd = [sys.executable, "-c", _CHILD, str(src), steps, "score", str(slide), "--out", str(out), "--workers", "1",
           "--force", "-q", "--detections", "none", "--no-qc", *options]
    done = subprocess.run(cmd, check=True, cwd=REPO, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _seconds(run: dict[str, float], pairs: tuple[tuple[str, str], ...]) -> float | None:
    """The step's seconds in one run: the sum over those of its names the run called, None if none."""
    keys = [f"{m}:{n}" if m else n for m, n in pairs]
    found = [run[k] for k in keys if k in run]
    return sum(found) if found else None


def _cell(seconds: float | None) -> str:
    return f"{seconds:7.2f}" if seconds is not None else f"{'-':>7}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-rev", default="2784c20", help="the earlier revision to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    slide = T._slide("main", T.QUICK_SIDE)
    release = worktree(args.baseline_rev) / "src"
    runs = {"today": (REPO / "src", ["--no-cell-results"]), args.baseline_rev: (release, [])}
    best: dict[str, dict[str, float]] = {name: {} for name in runs}
    with tempfile.TemporaryDirectory(prefix="stage-costs-") as tmp:
        for k in range(args.rounds):
            for name, (src, options) in runs.items():
                spent = _run(src, slide, Path(tmp) / f"{name}-{k}", options)
                for key, seconds in spent.items():
                    best[name][key] = min(best[name].get(key, float("inf")), seconds)
    today, base = best["today"], best[args.baseline_rev]
    print(f"{T._info(slide).tissue_l0_px / 1e6:.0f} Mpx of tissue, scoring alone, 1 worker; CPU seconds, "
          f"best of {args.rounds}")
    print(f"{'step':52} {'today':>7} {args.baseline_rev:>8} {'ratio':>6}")
    for label, pairs in (*STEPS, ("whole run (imports, kernels, outputs included)", (("", "total"),))):
        a, b = (_seconds(run, pairs) for run in (today, base))
        ratio = f"{b / a:6.2f}" if a and b else f"{'-':>6}"
        print(f"{label:52} {_cell(a)} {_cell(b):>8} {ratio}")
    print("ratio: the release's seconds over today's (above 1: today is faster). The first step to call a compiled "
          "kernel (threshold + holes) also pays for importing Numba and loading the kernels, about 0.5 s")


if __name__ == "__main__":
    main()

"""What finding each cell's stained body and the faint nuclei cost: whole-slide scoring against QuPath's fixed ring.

Run from the repository root::

    .venv/bin/python benchmarks/body_speed.py [--rounds 3] [--full] [--baseline-rev REV]

Scores the throughput benchmark's slide (``throughput.py``; 14000 x 14000 px
unless ``--full``) with the CLI, one worker, scoring alone (``--detections
none --no-qc``), alternately with the shipped model (``detection.cell_body =
stained`` and the second search for faint nuclei, ``faint_pass``), the same
with cells grown by a fixed 5 um and one search (``expansion``, the cells of
earlier releases and of QuPath), and the shipped model without the second
search, ``--rounds`` times each. Prints level-0 tissue Mpx/s of each run in
wall and in CPU time of the process tree, and the speed ratios of the best
runs: shipped / fixed ring (target: at least 0.85) and with / without the
faint search. Runs are interleaved so that load on the shared machine falls
on all alike.

With ``--baseline-rev REV`` the CLI of an earlier revision (checked out in
a git worktree under ``benchmarks/cache/``, run with this virtual
environment and its own shipped model) is timed in the same rounds, and the
shipped model's speed is also given against it: the speed target of cells
found from the image is against the release before them (``2784c20``, the
fixed ring with one search and the code of its day), which the ``ring``
variant stands in for without the speed-ups made since.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput as T  # noqa: E402
from _revisions import cli, worktree  # noqa: E402
from ihc_score.model import DEFAULT_MODEL_PATH  # noqa: E402


def _variant(folder: Path, name: str, **detection: object) -> Path:
    """A copy of the shipped model with ``detection`` values changed."""
    data = json.loads(DEFAULT_MODEL_PATH.read_text())
    data["detection"].update(detection)
    data["id"] += f"-{name}"
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def _run(slide: Path, model: Path | None, out: Path, command: tuple[list[str], list[str]]) -> tuple[float, float]:
    """Wall and CPU seconds (process tree) of one scoring-only run of a CLI ``command`` (its command, options)."""
    cli_prefix, options = command
    cmd = cli_prefix + ["score", str(slide), "--out", str(out), "--workers", "1", "--force", "-q",
                        "--detections", "none", "--no-qc", *options]
    if model is not None:
        cmd += ["--model", str(model)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=T.ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="the full-size throughput slide (long)")
    parser.add_argument("--baseline-rev", help="also time this revision's CLI and shipped model (e.g. 2784c20)")
    args = parser.parse_args()
    slide = T._slide("main", T.MAIN_SIDE if args.full else T.QUICK_SIDE)
    px = T._info(slide).tissue_l0_px
    subprocess.run([sys.executable, "-c", "from ihc_score.cells import warm_up; warm_up()"], check=True)
    # scoring alone: no per-cell table either (an output since the baseline, which has no such option)
    commands = {name: (T._cli(), ["--no-cell-results"]) for name in ("shipped", "ring", "one search")}
    if args.baseline_rev:
        tree = worktree(args.baseline_rev)
        commands[args.baseline_rev] = (cli(tree), [])
        subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                        "from ihc_score.cells.kernels import warm_up; warm_up()", str(tree / "src")], check=True)
    with tempfile.TemporaryDirectory(prefix="body-speed-") as tmp:
        folder = Path(tmp)
        models = {"shipped": None, "ring": _variant(folder, "ring", cell_body="expansion", faint_pass=False),
                  "one search": _variant(folder, "one-search", faint_pass=False)}
        models.update({rev: None for rev in commands if rev not in models})
        best = {name: (float("inf"), float("inf")) for name in models}
        print(f"{px / 1e6:.0f} Mpx of tissue at level 0; scoring alone, 1 worker")
        for k in range(args.rounds):
            for name, model in models.items():
                wall, cpu = _run(slide, model, folder / f"{name}-{k}", commands[name])
                best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
                print(f"  round {k + 1} {name:10}: {wall:6.2f} s wall {px / 1e6 / wall:6.1f} Mpx/s, "
                      f"{cpu:6.2f} s CPU {px / 1e6 / cpu:6.1f} Mpx/CPU-s", flush=True)
    ratios = [("shipped", "ring", "shipped / fixed ring and one search (target >= 0.85)"),
              ("shipped", "one search", "with the second search for faint nuclei / without")]
    if args.baseline_rev:
        ratios.append(("shipped", args.baseline_rev, f"shipped / {args.baseline_rev}'s CLI and model (target >= 0.85)"))
    for a, b, what in ratios:
        (wa, ca), (wb, cb) = best[a], best[b]
        print(f"{what}, best runs: speed ratio {wb / wa:.2f} in wall time, {cb / ca:.2f} in CPU time")


if __name__ == "__main__":
    main()

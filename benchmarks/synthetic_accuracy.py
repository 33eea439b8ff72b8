"""H-score and cell counts against the synthetic ground truth.

Run from the repository root::

    .venv/bin/python benchmarks/synthetic_accuracy.py [--size 8000x6000] [--seeds 2]

Writes synthetic SVS slides (cached under ``benchmarks/cache/``) for each
case below, scores each with the default model, through the same
``score_slide`` the CLI runs, and prints the true and measured H-score,
percent positive and cell count. The truth counts every cell a detector
should find: tumour cells by their designed class, stromal nuclei as class 0
(the model has no tumour-cell filter yet). The slides are drawn with the
generator's own dyes and optics (``ihc_score.synthetic.optics``), with
hue-shifted dyes, tinted glass and JPEG quality 60 among the cases (the
non-linear scanners are compared in ``scanner_sweep.py``). ``fixed`` repeats
the score with the textbook stain vectors and a white background, to show
what the slide's own stain estimate buys. Slides are cached per generator
version.

Targets (issue "Score a folder of S100A9 slides end to end"): |H - truth| <= 10
and cell count within 10 % on every slide.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from ihc_score.model import default_model
from ihc_score.run import score_slide
from ihc_score.score import ClassCounts
from ihc_score.synthetic import DEFAULT_DYES, GENERATOR_VERSION, SCANNERS, make_slide, preset, shift_dyes

CACHE = Path(__file__).resolve().parent / "cache"
REFERENCE = SCANNERS["reference"]

#: name -> (preset, extra SynthSpec fields)
CASES: dict[str, tuple[str, dict]] = {
    "default": ("default", {}),
    "negative": ("negative", {}),
    "strong": ("strong", {}),
    "near-cutoff": ("near-cutoff", {}),
    "shifted -10deg, yellow glass": ("shifted-stains", {}),
    "shifted +12deg, dim glass": ("default", {"dyes": shift_dyes(DEFAULT_DYES, 12.0),
                                              "scanner": replace(REFERENCE, glass=(215.0, 212.0, 205.0))}),
    "shifted +20deg, dim yellow": ("default", {"dyes": shift_dyes(DEFAULT_DYES, 20.0),
                                               "scanner": replace(REFERENCE, glass=(225.0, 215.0, 190.0))}),
    "jpeg q60": ("default", {"scanner": replace(REFERENCE, jpeg_quality=60)}),
    "dense tumour": ("strong", {"tumour_density_per_mm2": 7000.0}),
}


def truth_counts(truth: dict) -> ClassCounts:
    n = truth["totals"]["n_class"]
    return ClassCounts(n["0"] + len(truth["stromal_cells"]), n["1+"], n["2+"], n["3+"])


def slide_for(name: str, seed: int, width: int, height: int) -> tuple[Path, dict]:
    base, fields = CASES[name]
    key = name.replace(" ", "_").replace(",", "").replace("+", "p")
    path = CACHE / f"{key}-s{seed}-{width}x{height}-g{GENERATOR_VERSION}.svs"
    truth_file = path.with_suffix(".truth.json")
    if not truth_file.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        make_slide(path, preset(base, width=width, height=height, seed=seed, **fields))
    return path, json.loads(truth_file.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="8000x6000", help="level-0 WxH of each slide")
    parser.add_argument("--seeds", type=int, default=2, help="slides per case")
    parser.add_argument("--analysis-mpp", type=float, default=None, help="analysis pixel size, um/px (default: the model's, 0.5)")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    model = default_model()
    if args.analysis_mpp is not None:
        model = model.with_overrides(**{"analysis.mpp_um": args.analysis_mpp})
    fixed_model = model.with_overrides(**{"stains.estimate": False})
    print(f"{'case':30} {'seed':>4} {'H true':>7} {'H ours':>7} {'dH':>6} {'dH fixed':>8} "
          f"{'%pos true':>9} {'%pos ours':>9} {'n true':>7} {'n ours':>7} {'n ratio':>7} {'s':>5}")
    worst_h = worst_n = 0.0
    for name in CASES:
        for seed in range(1, args.seeds + 1):
            path, truth = slide_for(name, seed, width, height)
            want = truth_counts(truth)
            start = time.perf_counter()
            got = score_slide(path, model, region_mode="tissue").regions[0].counts
            seconds = time.perf_counter() - start
            fixed = score_slide(path, fixed_model, region_mode="tissue").regions[0].counts
            dh, ratio = got.h_score - want.h_score, got.n / want.n
            worst_h, worst_n = max(worst_h, abs(dh)), max(worst_n, abs(ratio - 1))
            print(f"{name:30} {seed:>4} {want.h_score:7.1f} {got.h_score:7.1f} {dh:+6.1f} "
                  f"{fixed.h_score - want.h_score:+8.1f} {want.pct_positive:9.1f} {got.pct_positive:9.1f} "
                  f"{want.n:7d} {got.n:7d} {ratio:7.3f} {seconds:5.1f}")
    print(f"\nworst |dH| = {worst_h:.1f} (target <= 10); worst cell-count error = {100 * worst_n:.1f} % (target <= 10 %)")


if __name__ == "__main__":
    main()

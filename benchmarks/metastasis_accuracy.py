"""Per-metastasis H-scores and calls against the synthetic truth, with and without annotations.

Run from the repository root::

    .venv/bin/python benchmarks/metastasis_accuracy.py [--seeds 3] [--size 8000x6000]

Each seed writes (or reuses, under ``benchmarks/cache/``) a ``multi-met``
slide: a positive and a negative metastasis in brain parenchyma, a necrosis
inside the positive one, and the true outlines as QuPath GeoJSON. The slide
is scored twice through ``score_slide``: with its annotation file, and from a
copy without it (automatic regions). For every true metastasis the table
gives the true H-score, ours, the difference, the 95 % interval, the call,
and for automatic regions the IoU of the best-matching region.

Targets (issue "Score every metastasis and export per case"): every
metastasis within 10 H-score points of the truth and every call right, with
annotations; without them, IoU >= 0.8 each, no extra region, and H within 10.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import shapely
from shapely.geometry import shape

from _preset_slides import CACHE, preset_slide
from ihc_score.model import default_model
from ihc_score.run import score_slide


def slide(seed: int, width: int, height: int) -> tuple[Path, Path, dict]:
    path, truth = preset_slide(f"multimet-s{seed}-{width}x{height}", "multi-met", width=width, height=height, seed=seed)
    bare = CACHE / "bare" / path.name
    if not bare.exists():
        bare.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, bare)
    return path, bare, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--size", default="8000x6000")
    parser.add_argument("--analysis-mpp", type=float, default=None, help="analysis pixel size, um/px (default: the model's, 0.5)")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    model = default_model()
    if args.analysis_mpp is not None:
        model = model.with_overrides(**{"analysis.mpp_um": args.analysis_mpp})
    print(f"{'seed':>4} {'metastasis':14} {'mode':10} {'region':>8} {'IoU':>5} {'H true':>7} {'H ours':>7} {'dH':>6} "
          f"{'95% CI':>13} {'call':>13} {'right':>5}")
    worst, wrong, extra, low_iou = 0.0, 0, 0, 1.0
    for seed in range(1, args.seeds + 1):
        path, bare, truth = slide(seed, width, height)
        for mode, p in (("annotated", path), ("auto", bare)):
            result = score_slide(p, model)
            regions = [(r, shapely.from_wkt(r.wkt)) for r in result.regions]
            extra += max(0, len(regions) - len(truth["regions"]))
            for t in truth["regions"]:
                outline = shape(t["outline"])
                r, g = max(regions, key=lambda rg: outline.intersection(rg[1]).area)
                iou = outline.intersection(g).area / outline.union(g).area
                want = "positive" if t["h_score"] >= model.positivity.cutoff else "negative"
                dh = r.counts.h_score - t["h_score"]
                worst, wrong = max(worst, abs(dh)), wrong + (r.call.call != want)
                low_iou = min(low_iou, iou) if mode == "auto" else low_iou
                ci = f"{r.h_interval.low:.0f}-{r.h_interval.high:.0f}"
                print(f"{seed:>4} {t['name']:14} {mode:10} {r.name:>8} {iou:5.2f} {t['h_score']:7.1f} "
                      f"{r.counts.h_score:7.1f} {dh:+6.1f} {ci:>13} {r.call.call:>13} {str(r.call.call == want):>5}")
    print(f"\nworst |dH| = {worst:.1f} (target <= 10); wrong calls = {wrong}; "
          f"lowest auto IoU = {low_iou:.3f} (target >= 0.8); extra auto regions = {extra}")


if __name__ == "__main__":
    main()

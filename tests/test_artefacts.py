"""Folds, air bubbles, out-of-focus areas and pen ink: detectors against synthetic truth and real images."""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import shapely

from ihc_score.synthetic import (
    AirBubble,
    BlurPatch,
    Fold,
    PenStroke,
    SynthSpec,
    TumourRegion,
    make_layout,
    preset,
    render_region,
)
from ihc_score.synthetic.artefacts import outline
from ihc_score.synthetic.truth import build_truth, dump
from ihc_score.tissue import (
    ArtefactParams,
    block_focus,
    blur_block_px,
    blur_threshold,
    blurred_blocks,
    detect_tissue,
    find_bubbles,
    find_thumbnail_artefacts,
)

THUMB_UM = 8.0


def half(spec: SynthSpec) -> SynthSpec:
    """The same physical slide at 0.5 um/px (4x fewer pixels to render)."""
    return replace(spec, width=spec.width // 2, height=spec.height // 2, mpp_um=spec.mpp_um * 2)


ART = half(preset("artefacts"))
CLEAN = {
    "default": half(preset("default")),
    "strong": half(preset("strong")),
    "shifted-stains": half(preset("shifted-stains")),
    "multi-met": half(preset("multi-met", width=5000, height=3750)),
}


def jpeg(rgb: np.ndarray, quality: int = 85) -> np.ndarray:
    """Round trip through JPEG, as the tiles of a synthetic SVS."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@functools.lru_cache(maxsize=2)
def rendered(spec: SynthSpec) -> tuple[np.ndarray, dict]:
    """Whole slide (level 0, after JPEG) and its truth."""
    layout = make_layout(spec)
    region = render_region(layout, (0, 0), (spec.width, spec.height))
    return jpeg(region.rgb, spec.scanner.jpeg_quality), build_truth(layout, [region.stats])


def thumbnail(rgb: np.ndarray, spec: SynthSpec, um: float = THUMB_UM) -> tuple[np.ndarray, float]:
    ds = um / spec.mpp_um
    size = (int(spec.width // ds), int(spec.height // ds))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), ds


def raster(geom: shapely.Geometry, shape: tuple[int, int], ds: float) -> np.ndarray:
    """Pixels (of ``ds`` level-0 px) whose centre lies in a geometry."""
    yy, xx = (np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5) * ds
    return shapely.contains_xy(geom, xx, yy)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def block_cover(geom: shapely.Geometry, shape: tuple[int, int], b: int) -> np.ndarray:
    """Fraction of each b x b block (level-0 px, partial blocks clipped to the image) inside a geometry."""
    ny, nx = -(-shape[0] // b), -(-shape[1] // b)
    y0, x0 = np.mgrid[0:ny, 0:nx] * b
    boxes = shapely.box(x0, y0, np.minimum(x0 + b, shape[1]), np.minimum(y0 + b, shape[0]))
    return shapely.area(shapely.intersection(boxes, geom)) / shapely.area(boxes)


# --- parameters and synthetic artefacts ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"fold_window_um": 0.0}, "fold_window_um"),
        ({"fold_min_ratio": 3.0}, "fold ratios"),
        ({"fold_grow_ratio": 1.6, "fold_min_ratio": 1.5}, "fold ratios"),
        ({"bubble_min_area_um2": 5e6}, "bubble_min_area_um2"),
        ({"blur_fine_um": 4.0}, "blur_fine_um"),
        ({"blur_min_tissue_fraction": 1.5}, "blur_min_tissue_fraction"),
        ({"bubble_max_rim_angle_deg": 95.0}, "bubble_max_rim_angle_deg"),
        ({"bubble_max_rim_angle_deg": 25.0}, "bubble_grow_rim_angle_deg"),
        ({"bubble_grow_rim_od": 0.5}, "bubble_grow_rim_od"),
        ({"bubble_flank_um": -1.0}, "bubble_flank_um"),
        ({"blur_block_um": float("nan")}, "blur_block_um"),
    ],
)
def test_artefact_params_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ArtefactParams(**kwargs)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: Fold(width=0.2, length=0.1), "width and length"),
        (lambda: Fold(od_factor=1.1), "od_factor"),
        (lambda: Fold(center=(1.2, 0.5)), "center"),
        (lambda: AirBubble(radius=0.0), "radius"),
        (lambda: AirBubble(rim_um=2.0), "rim_um"),
        (lambda: BlurPatch(sigma_um=0.3), "sigma_um"),
        (lambda: BlurPatch(radii=(0.1,)), "radii"),
        (lambda: PenStroke(points=((0.1, 0.1),)), "points"),
        (lambda: PenStroke(colour="red"), "colour"),
        (lambda: PenStroke(width_um=5.0), "width_um"),
        (lambda: SynthSpec(artefacts=[Fold()]), "artefacts must be a tuple"),
        (lambda: SynthSpec(artefacts=(Fold(name="met1"),)), "names distinct"),
        (lambda: SynthSpec(artefacts=(Fold(), Fold())), "names distinct"),
    ],
)
def test_synthetic_artefact_validation(make, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make()


def test_artefact_outlines_have_their_designed_areas() -> None:
    size, mpp = (4000, 3000), 0.25
    fold = outline(Fold(center=(0.5, 0.5), length=0.5, width=0.05, angle_deg=30.0), size, mpp)
    assert fold.area == pytest.approx(2000 * 200, rel=1e-9)
    bubble = outline(AirBubble(radius=0.05, rim_um=16.0), size, mpp)
    assert bubble.area == pytest.approx(np.pi * (200 + 32) ** 2, rel=2e-3)  # rim out to its outer edge
    patch = outline(BlurPatch(radii=(0.1, 0.1)), size, mpp)
    assert patch.area == pytest.approx(np.pi * 400 * 300, rel=2e-3)
    stroke = outline(PenStroke(points=((0.1, 0.5), (0.6, 0.5)), width_um=100.0), size, mpp)
    assert stroke.area == pytest.approx(2000 * 400 + np.pi * 200**2, rel=2e-3)


def test_artefacts_far_away_change_no_pixel_and_free_slides_keep_their_truth() -> None:
    spec = SynthSpec(width=1600, height=1200, seed=3, regions=(TumourRegion(center=(0.3, 0.5), radii=(0.25, 0.35)),))
    far = replace(spec, artefacts=(Fold(center=(0.9, 0.5), length=0.1, width=0.05, name="f"),
                                   BlurPatch(center=(0.9, 0.2), radii=(0.05, 0.05), name="b")))
    rect = ((100, 300), (400, 400))
    plain = render_region(make_layout(spec), *rect, noise_key=(1,))
    with_far = render_region(make_layout(far), *rect, noise_key=(1,))
    assert np.array_equal(plain.rgb, with_far.rgb)  # wider margin, same bytes
    truth = build_truth(make_layout(spec), [plain.stats])
    assert "artefacts" not in truth and "artefacts" not in truth["spec"] and "scored" not in truth["regions"][0]
    assert '"artefacts"' not in dump(truth)


def test_artefact_blocks_render_identically_across_seams() -> None:
    spec = replace(ART, width=900, height=700, regions=(TumourRegion(center=(0.5, 0.5), radii=(0.4, 0.4)),),
                   artefacts=(Fold(center=(0.4, 0.5), length=0.6, width=0.1, name="f"),
                              AirBubble(center=(0.6, 0.4), radius=0.1, name="a"),
                              BlurPatch(center=(0.5, 0.6), radii=(0.2, 0.2), name="b"),
                              PenStroke(points=((0.1, 0.9), (0.9, 0.8)), width_um=40.0, name="p")))
    layout = make_layout(spec)
    whole = render_region(layout, (0, 0), (900, 700), noise_key=(0,)).rgb.astype(int)
    spec0 = replace(spec, scanner=replace(spec.scanner, noise_sigma=0.0))
    layout0 = make_layout(spec0)
    a = render_region(layout0, (0, 0), (900, 700)).rgb
    b = np.concatenate([render_region(layout0, (0, 0), (450, 700)).rgb,
                        render_region(layout0, (450, 0), (450, 700)).rgb], axis=1)
    assert np.array_equal(a, b)
    # the artefacts are drawn: the fold darkens, the stroke is blue
    fold_px = raster(outline(spec.artefacts[0], (900, 700), spec.mpp_um), (700, 900), 1.0)
    assert whole[fold_px].sum(axis=1).mean() < 0.8 * whole[~fold_px].sum(axis=1).mean()


# --- detection on the synthetic "artefacts" slide -------------------------------------------------


@pytest.fixture(scope="module")
def art_thumb() -> tuple[np.ndarray, float, object, object]:
    rgb, truth = rendered(ART)
    th, ds = thumbnail(rgb, ART)
    tissue = detect_tissue(th, downsample=ds, mpp_um=ART.mpp_um)
    return th, ds, tissue, find_thumbnail_artefacts(th, tissue, mpp_um=ART.mpp_um)


@pytest.mark.parametrize("kind", ["fold", "bubble"])
def test_fold_and_bubble_match_their_outlines_on_the_thumbnail(art_thumb, kind: str) -> None:
    th, ds, tissue, found = art_thumb
    a = next(x for x in ART.artefacts if isinstance(x, Fold if kind == "fold" else AirBubble))
    true = raster(outline(a, (ART.width, ART.height), ART.mpp_um), th.shape[:2], ds)
    if kind == "fold":  # a fold is only tissue; a bubble covers glass too
        true &= tissue.mask
    assert iou(getattr(found, kind), true) >= 0.7
    assert {"fold", "air_bubble"} <= set(found.flags)
    px_mm2 = (ds * ART.mpp_um / 1000) ** 2
    assert getattr(found, f"{kind}_area_mm2") == pytest.approx((getattr(found, kind) & tissue.mask).sum() * px_mm2)


@pytest.mark.parametrize("thumb_um", [2.0, 4.0])
def test_bubble_is_found_on_finer_thumbnails(thumb_um: float) -> None:
    """plan_slide reads a small slide's mask finer than 8 um/px (about 1.5 um/px for the artefacts preset)."""
    rgb, _ = rendered(ART)
    th, ds = thumbnail(rgb, ART, thumb_um)
    tissue = detect_tissue(th, downsample=ds, mpp_um=ART.mpp_um)
    found = find_bubbles(th, background=tissue.background, px_um=ds * ART.mpp_um)
    a = next(x for x in ART.artefacts if isinstance(x, AirBubble))
    true = raster(outline(a, (ART.width, ART.height), ART.mpp_um), th.shape[:2], ds)
    assert iou(found, true) >= 0.8


def _od_image(od_rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB of an OD image (base 10) on a background of 255."""
    return np.clip(np.rint(255 * 10.0 ** -od_rgb), 0, 255).astype(np.uint8)


def _ring(size: int, radius: float, width: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] - size / 2
    return (np.abs(np.hypot(xx, yy) - radius) <= width / 2).astype(np.float32)


@pytest.mark.parametrize(
    "rim_od, found",
    [
        ((0.5, 0.5, 0.5), True),  # grey: a bubble's rim
        ((0.2, 0.45, 0.62), False),  # DAB-brown (colour of the default DAB vector): a ring of positive cells
        ((0.42, 0.45, 0.19), False),  # hematoxylin-blue
    ],
)
def test_only_a_thin_grey_ring_darker_than_both_sides_is_a_bubble(rim_od, found: bool) -> None:
    """A ring (8 um wide, radius 100 um) on a uniform light-brown tissue, 4 um/px; inside a paler disc."""
    tissue_od = np.array([0.12, 0.2, 0.25], np.float32)
    size, px = 96, 4.0
    ring = _ring(size, 100 / px, 8 / px)
    yy, xx = np.mgrid[0:size, 0:size] - size / 2
    inside = (np.hypot(xx, yy) < 100 / px - 1)[..., None]
    od = tissue_od * np.where(inside, 0.6, 1.0) + ring[..., None] * np.asarray(rim_od, np.float32)
    mask = find_bubbles(_od_image(od), background=(255.0, 255.0, 255.0), px_um=px)
    assert mask.any() == found
    if found:  # inside and rim, out to the rim's outer edge (within a pixel or two)
        true = np.hypot(xx, yy) <= (100 + 4) / px
        assert mask[true].all() and iou(mask, true) >= 0.8


def test_rim_contrast_scores_a_line_not_a_blob() -> None:
    """A grey line (OD 0.5 per channel, 2 px wide) scores its OD sum; a grey disc of the same OD about 0."""
    from ihc_score.tissue.bubbles import _rim_contrast

    size = 64
    yy, xx = np.mgrid[0:size, 0:size]
    line = (np.abs(xx - 20) <= 0.5).astype(np.float32)
    blob = (np.hypot(xx - 45, yy - 32) <= 2.5).astype(np.float32)
    od = 0.1 + 0.5 * np.repeat((line + blob)[..., None], 3, axis=2)
    contrast, excess = _rim_contrast(od.astype(np.float32), 4.0)
    assert contrast[32, 20] == pytest.approx(1.5, abs=1e-4)
    assert excess[32, 20] == pytest.approx([0.5, 0.5, 0.5], abs=1e-4)
    assert contrast[32, 45] <= 0.0


def _rim_contrast_reference(od: np.ndarray, flank_px: float) -> tuple[np.ndarray, np.ndarray]:
    """``_rim_contrast`` written plainly from its docstring, in NumPy."""
    from ihc_score.tissue.bubbles import _RIM_DIRECTIONS, _shifted

    total = od.sum(axis=2)
    contrast = np.full(total.shape, -np.inf, np.float32)
    excess = np.zeros_like(od)
    for k in range(_RIM_DIRECTIONS):
        dx, dy = flank_px * np.cos(np.pi * k / _RIM_DIRECTIONS), flank_px * np.sin(np.pi * k / _RIM_DIRECTIONS)
        flank = np.maximum(_shifted(od, dx, dy), _shifted(od, -dx, -dy))
        along = np.minimum(_shifted(total, -dy, dx), _shifted(total, dy, -dx))
        score = np.minimum(total, along) - flank.sum(axis=2)
        better = score > contrast
        contrast[better] = score[better]
        excess[better] = (od - flank)[better]
    return contrast, excess


@pytest.mark.parametrize("flank_px", [1.5, 2.0, 3.3])
def test_rim_contrast_equals_its_plain_numpy_reference(art_thumb, flank_px: float) -> None:
    """The OpenCV element-wise steps give the reference's bits on the artefacts slide's thumbnail."""
    from ihc_score.stain import od_lut
    from ihc_score.tissue.bubbles import _rim_contrast

    th, _, tissue, _ = art_thumb
    od = cv2.LUT(th, np.ascontiguousarray(od_lut(tissue.background).T.reshape(1, 256, 3)))
    contrast, excess = _rim_contrast(od, flank_px)
    want_contrast, want_excess = _rim_contrast_reference(od, flank_px)
    assert np.array_equal(contrast, want_contrast) and np.array_equal(excess, want_excess)


def test_channel_sum_equals_numpy_sum_over_the_last_axis() -> None:
    from ihc_score.stain import channel_sum

    rng = np.random.default_rng(3)
    f = rng.random((37, 41, 3), np.float32) * 3
    u = rng.integers(0, 256, (500, 3), dtype=np.uint8)
    assert np.array_equal(channel_sum(f), f.sum(axis=2))
    assert channel_sum(u, np.uint16).dtype == np.uint16
    assert np.array_equal(channel_sum(u, np.uint16), u.sum(axis=1, dtype=np.uint16))


def test_pen_ink_is_found_by_detect_tissue(art_thumb) -> None:
    th, ds, tissue, _ = art_thumb
    _, truth = rendered(ART)
    strokes = [a for a in truth["artefacts"] if a["kind"] == "pen_ink"]
    assert [a["name"] for a in strokes] == ["ink-blue", "ink-green", "ink-black"]
    total = sum(a["area_total_mm2"] for a in strokes)  # ink on glass is dark enough to be a candidate too
    assert "pen_ink" in tissue.flags
    assert tissue.ink_area_mm2 == pytest.approx(total, rel=0.3)
    ink = shapely.union_all([outline(a, (ART.width, ART.height), ART.mpp_um) for a in ART.artefacts
                             if isinstance(a, PenStroke)])
    core = raster(ink.buffer(-2 * ds), th.shape[:2], ds)
    assert (tissue.mask & core).sum() <= 0.02 * core.sum()
    assert all(a["area_mm2"] > 0 for a in strokes)  # each stroke touches tissue


def test_blur_patch_blocks_are_found_and_in_focus_blocks_are_not() -> None:
    rgb, _ = rendered(ART)
    b = blur_block_px(ART.mpp_um)
    focus = block_focus(rgb, background=ART.scanner.glass, mpp_um=ART.mpp_um)
    assert focus.blurred.shape == (-(-ART.height // b), -(-ART.width // b))
    assert np.array_equal(focus.blurred, blurred_blocks(rgb, background=ART.scanner.glass, mpp_um=ART.mpp_um))
    size = (ART.width, ART.height)
    patch = next(a for a in ART.artefacts if isinstance(a, BlurPatch))
    others = shapely.union_all([outline(a, size, ART.mpp_um) for a in ART.artefacts if a is not patch])
    inside = (block_cover(outline(patch, size, ART.mpp_um), rgb.shape[:2], b) == 1.0)
    inside &= block_cover(others, rgb.shape[:2], b) == 0.0
    clear = block_cover(shapely.union(others, outline(patch, size, ART.mpp_um)), rgb.shape[:2], b) == 0.0
    tissue = focus.tissue_fraction >= 0.5
    assert (inside & tissue).sum() >= 6
    assert focus.blurred[inside & tissue].mean() >= 0.8
    assert focus.judged[clear & tissue].mean() >= 0.5  # the test is not vacuous
    assert focus.blurred[clear & tissue].mean() <= 0.02


def test_truth_lists_artefacts_and_the_cells_still_scored() -> None:
    _, truth = rendered(ART)
    kinds = {a["name"]: a["kind"] for a in truth["artefacts"]}
    assert kinds == {"fold-1": "fold", "bubble-1": "air_bubble", "blur-1": "blur", "ink-blue": "pen_ink",
                     "ink-green": "pen_ink", "ink-black": "pen_ink"}
    union = shapely.union_all([shapely.geometry.shape(a["outline"]) for a in truth["artefacts"]])
    for reg in truth["regions"]:
        cells = [c for c in truth["cells"] if c["region"] == reg["name"]]
        free = [c for c in cells if not union.contains(shapely.Point(c["l0_x"], c["l0_y"]))]
        assert reg["scored"]["n_cells"] == len(free) < len(cells)
        n = [sum(1 for c in free if c["class"] == k) for k in range(4)]
        assert reg["scored"]["h_score"] == pytest.approx((n[1] + 2 * n[2] + 3 * n[3]) / len(free) * 100)
    assert truth["scored_totals"]["n_cells"] == sum(r["scored"]["n_cells"] for r in truth["regions"])
    fold = next(a for a in truth["artefacts"] if a["kind"] == "fold")
    assert 0.8 * fold["area_total_mm2"] <= fold["area_mm2"] <= fold["area_total_mm2"]


@pytest.mark.parametrize("sigma_um, mpp_um", [(1.5, 0.5), (3.0, 0.5), (1.5, 0.25)])
def test_blur_detector_finds_patches_of_1_5_um_at_two_pixel_sizes(sigma_um: float, mpp_um: float) -> None:
    side = int(384 / mpp_um)  # 384 um of tumour, left part out of focus
    spec = SynthSpec(width=side, height=side, mpp_um=mpp_um, seed=5, tissue_pieces=0,
                     regions=(TumourRegion(center=(0.5, 0.5), radii=(0.6, 0.6)),),
                     artefacts=(BlurPatch(center=(0.0, 0.5), radii=(0.45, 0.9), sigma_um=sigma_um),))
    rgb = jpeg(render_region(make_layout(spec), (0, 0), (side, side)).rgb)
    focus = block_focus(rgb, background=spec.scanner.glass, mpp_um=mpp_um)
    b = blur_block_px(mpp_um)
    cover = block_cover(outline(spec.artefacts[0], (side, side), mpp_um), rgb.shape[:2], b)
    tissue = focus.tissue_fraction >= 0.5
    assert focus.blurred[(cover == 1.0) & tissue].mean() >= 0.8
    assert focus.blurred[(cover == 0.0) & tissue].mean() <= 0.02


# --- no false artefacts on clean slides -----------------------------------------------------------


@pytest.mark.parametrize("name", list(CLEAN))
def test_clean_presets_have_no_artefacts(name: str) -> None:
    spec = CLEAN[name]
    rgb, _ = rendered(spec)
    th, ds = thumbnail(rgb, spec)
    tissue = detect_tissue(th, downsample=ds, mpp_um=spec.mpp_um)
    found = find_thumbnail_artefacts(th, tissue, mpp_um=spec.mpp_um)
    assert found.fold_area_mm2 + found.bubble_area_mm2 <= 0.005 * tissue.area_mm2
    fine, fine_ds = thumbnail(rgb, spec, 2.0)  # as plan_slide reads a small slide
    fine_bg = detect_tissue(fine, downsample=fine_ds, mpp_um=spec.mpp_um).background
    assert not find_bubbles(fine, background=fine_bg, px_um=fine_ds * spec.mpp_um).any()
    focus = block_focus(rgb, background=tissue.background, mpp_um=spec.mpp_um)
    judged = focus.judged & (focus.tissue_fraction >= 0.5)
    assert judged.sum() >= 10
    assert focus.blurred.sum() <= 0.01 * judged.sum()


def test_switches_turn_detectors_off(art_thumb) -> None:
    th, _, tissue, _ = art_thumb
    off = find_thumbnail_artefacts(th, tissue, mpp_um=ART.mpp_um, params=ArtefactParams(folds=False, bubbles=False))
    assert not off.mask.any() and off.flags == ()
    with pytest.raises(ValueError, match="shape"):
        find_thumbnail_artefacts(th[:-1], tissue, mpp_um=ART.mpp_um)


# --- real images ----------------------------------------------------------------------------------


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_real_ihc_fields_are_in_focus(shared_data: Path) -> None:
    """Fields with cell-level ground truth were annotated nucleus by nucleus: in focus."""
    from ihc_score.stain import estimate_background

    fields = [(p, 0.3, 512) for p in sorted((shared_data / "ihc/deepliif/val").glob("*.png"))]
    fields += [(shared_data / "ihc/ki67-breast/503-05/base.png", 0.5, None), (shared_data / "ihc/skimage-ihc.png", 0.5, None)]
    fields += [(p, 0.1, None) for p in sorted((shared_data / "ihc/ki67-glioma").glob("*/original.jpg"))]
    judged_total = 0
    for path, mpp, width in fields:
        rgb = _rgb(path)[:, :width] if width else _rgb(path)
        scale = mpp / 0.5  # to the analysis pixel size, never upsampled
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else rgb
        focus = block_focus(rgb, background=estimate_background(rgb), mpp_um=max(mpp, 0.5))
        judged_total += int(focus.judged.sum())
        print(f"{path.parent.name}/{path.name}: {int(focus.blurred.sum())} of {int(focus.judged.sum())} judged blocks blurred")
        assert focus.blurred.sum() <= 0.05 * max(focus.judged.sum(), 1)
    assert judged_total >= 40


def test_real_slides_report_artefact_fractions(shared_data: Path) -> None:
    """The README calls none of these slides artefact-free: report, and check the result is consistent."""
    from ihc_score.errors import IhcScoreError
    from ihc_score.slide import open_slide

    opened = 0
    for path in sorted((shared_data / "wsi").rglob("*")):
        if path.suffix.lower() not in (".svs", ".tif", ".tiff", ".ndpi", ".dcm"):
            continue
        try:
            with open_slide(path, mpp_option_um=0.5) as slide:
                th, ds = slide.thumbnail(THUMB_UM)
                mpp = slide.mpp
        except IhcScoreError:
            continue
        tissue = detect_tissue(th, downsample=ds, mpp_um=mpp)
        found = find_thumbnail_artefacts(th, tissue, mpp_um=mpp)
        opened += 1
        share = (found.fold_area_mm2 + found.bubble_area_mm2) / tissue.area_mm2 if tissue.area_mm2 else 0.0
        print(f"{path.name}: tissue {tissue.area_mm2:.3f} mm2, fold {found.fold_area_mm2:.4f}, "
              f"bubble {found.bubble_area_mm2:.4f} mm2 ({100 * share:.1f} %)")
        assert found.fold.shape == tissue.mask.shape and 0.0 <= share <= 1.0
        assert ("fold" in found.flags) == (found.fold_area_mm2 > 0)
    assert opened >= 3


def test_a_small_dense_metastasis_is_not_a_fold(tmp_path):
    """A 3+ metastasis a few hundred um across in paler parenchyma is twice as dark as the tissue around it,
    like a fold, but round: it must be scored, not left out."""
    from ihc_score.model import default_model
    from ihc_score.run import plan_slide
    from ihc_score.synthetic import make_slide

    path = tmp_path / "small multi-met.svs"
    make_slide(path, preset("multi-met", width=3000, height=2400))
    assert plan_slide(path, default_model()).excluded.fold_mm2 == 0.0


@pytest.mark.parametrize("band_dab, is_fold", [(0.04, True), (0.5, False)])
def test_a_band_is_a_fold_only_when_both_stains_double(band_dab, is_fold):
    """A second layer doubles hematoxylin and DAB alike; a band of DAB-positive tumour among pale DAB-negative
    tissue (a viable rim around necrosis) doubles the hematoxylin too but multiplies the DAB many times."""
    from ihc_score.stain import DEFAULT_STAINS, compose_rgb
    from ihc_score.tissue import find_folds

    conc = np.zeros((200, 200, 3), np.float32)
    conc[..., 0], conc[..., 1] = 0.15, 0.02  # pale tissue, 8 um/px
    band = np.zeros((200, 200), bool)
    band[90:105, 25:175] = True  # 120 x 1200 um
    conc[band, 0], conc[band, 1] = 0.30, band_dab
    thumb = compose_rgb(conc, DEFAULT_STAINS)
    fold = find_folds(thumb, np.ones((200, 200), bool), background=(255.0, 255.0, 255.0), px_um=8.0)
    iou = (fold & band).sum() / max((fold | band).sum(), 1)
    assert (iou >= 0.7) if is_fold else not fold.any()


@pytest.mark.parametrize("px_um", [8.0, 4.0])
def test_fold_search_around_the_tissue_gives_the_folds_of_the_whole_thumbnail(px_um, monkeypatch):
    """The fold search keeps to the box around the tissue (a slide mostly of glass costs what its tissue does);
    on a thumbnail whose sides are multiples of the box's alignment, its folds are those of the whole
    thumbnail, bit for bit. At 4 um/px the thumbnail is first averaged to the fold grid, 2 x 2."""
    from ihc_score.stain import DEFAULT_STAINS, compose_rgb
    from ihc_score.tissue import artefacts
    from ihc_score.tissue.artefacts import _folds_on_grid, _folds_resampled

    f = int(8.0 // px_um)
    h, w = 512 * f, 640 * f  # 4 x 5 mm of glass, 1 x 1.3 mm of tissue in the middle
    rng = np.random.default_rng(7)
    conc = np.zeros((h, w, 3), np.float32)
    yy, xx = np.mgrid[:h, :w] / f
    tissue = ((yy - 272) / 64) ** 2 + ((xx - 336) / 80) ** 2 <= 1.0  # an ellipse: glass filled unevenly
    conc[tissue, 0] = rng.uniform(0.10, 0.20, tissue.sum())
    conc[tissue, 1] = rng.uniform(0.00, 0.04, tissue.sum())
    band = np.zeros((h, w), bool)
    band[225 * f : 240 * f, 290 * f : 382 * f] = True  # 120 x 740 um, a second layer near the tissue's edge
    conc[band, :2] *= 2.0
    thumb = compose_rgb(conc, DEFAULT_STAINS)
    bg = (255.0, 255.0, 255.0)
    params = ArtefactParams()
    searched, find_folds = [], artefacts.find_folds

    def recorded(image, *args, **kwargs):
        searched.append(image.shape[:2])
        return find_folds(image, *args, **kwargs)

    monkeypatch.setattr(artefacts, "find_folds", recorded)
    fold = _folds_on_grid(thumb, tissue, background=bg, px_um=px_um, params=params)
    whole = _folds_resampled(thumb, tissue, f, background=bg, px_um=px_um, params=params)
    assert searched[0][0] * searched[0][1] < 0.6 * searched[1][0] * searched[1][1]  # the box, then the whole
    assert (fold & band).sum() >= 0.7 * (fold | band).sum()
    np.testing.assert_array_equal(fold, whole)


# --- a slide soft all over ------------------------------------------------------------------------


@pytest.mark.parametrize("sharpness, threshold", [(None, 0.03), (1.0, 0.03), (0.06, 0.03), (0.04, 0.02), (0.01, 0.005)])
def test_the_focus_threshold_is_lowered_only_on_a_slide_soft_all_over(sharpness, threshold) -> None:
    assert blur_threshold(ArtefactParams(), sharpness) == pytest.approx(threshold)


def test_a_sharp_slide_is_not_soft_and_keeps_the_absolute_threshold() -> None:
    from ihc_score.model import default_model
    from ihc_score.run import plan_slide

    plan = plan_slide(Path(__file__).resolve().parents[1] / "sample_slides" / "synthetic-positive.svs", default_model())
    assert plan.sharpness is not None and plan.sharpness > 0.1
    assert "soft_focus" not in plan.flags


def test_a_soft_camera_field_is_flagged_and_not_left_out(shared_data: Path) -> None:
    """A SHIDC-B-Ki-67 field measures 0.02-0.04 all over: soft, not out of focus; every marked cell was annotated."""
    from ihc_score.model import default_model
    from ihc_score.run import score_slide

    field = shared_data / "ihc/shidc-ki67/shidc-p1_0299_1.jpg"
    soft = score_slide(field, default_model(), mpp_option_um=0.2, region_mode="tissue")
    assert "soft_focus" in soft.flags
    assert soft.excluded.blur_mm2 == 0.0
    absolute = default_model().with_overrides(**{"artefacts.blur_relative_sharpness": 1.0})
    before = score_slide(field, absolute, mpp_option_um=0.2, region_mode="tissue")
    assert before.excluded.blur_mm2 > 0.3 * before.tissue_area_mm2  # what an absolute threshold left out
    assert soft.regions[0].counts.n > 1.5 * before.regions[0].counts.n

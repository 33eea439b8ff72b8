"""Immune cells infiltrating synthetic metastases: share, mix, shapes, stains and truth, read from what is drawn."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from ihc_score.synthetic import (
    CLASS_THRESHOLDS,
    SCANNERS,
    SynthSpec,
    TumourRegion,
    make_layout,
    make_slide,
    preset,
    render_region,
)
from ihc_score.synthetic.tissue_types import KIND_MACROPHAGE, KIND_NEUTROPHIL, KIND_TUMOUR
from ihc_score.synthetic.truth import build_truth

QUIET = replace(SCANNERS["reference"], noise_sigma=0.0)
TYPES = ("lymphocyte", "neutrophil", "macrophage")
MIX = (0.5, 0.3, 0.2)
#: One large metastasis in brain parenchyma, 30 % of its cell positions taken by immune cells.
SPEC = SynthSpec(width=2048, height=2048, seed=4, host_tissue="brain", tissue_fraction=0.6, tissue_pieces=1,
                 stroma_density_per_mm2=1000.0, infiltrate_fraction=0.3, regions=(TumourRegion(radii=(0.42, 0.42)),))


@pytest.fixture(scope="module")
def drawn() -> tuple:
    """Layout of :data:`SPEC`, the whole slide rendered, and its truth."""
    layout = make_layout(SPEC)
    reg = render_region(layout, (0, 0), (SPEC.width, SPEC.height))
    return layout, reg, build_truth(layout, [reg.stats])


@pytest.fixture(scope="module")
def slide(drawn: tuple) -> dict:
    """Truth of :data:`SPEC`."""
    return drawn[2]


def rows_of(truth: dict, kind: str) -> list[dict]:
    return [c for c in truth["cells"] + truth["stromal_cells"] if c["type"] == kind]


def test_default_spec_draws_the_same_files_as_no_infiltrates(tmp_path: Path) -> None:
    """Leaving the fields out, or giving a fraction of 0 with any mix, writes byte-identical slides and truths."""
    base = SynthSpec(width=1024, height=1024, seed=7, host_tissue="brain")
    explicit = replace(base, infiltrate_fraction=0.0, infiltrate_mix=(0.2, 0.3, 0.5))
    a, b = make_slide(tmp_path / "a.svs", base), make_slide(tmp_path / "b.svs", explicit)
    assert (tmp_path / "a.svs").read_bytes() == (tmp_path / "b.svs").read_bytes()
    assert (tmp_path / "a.truth.json").read_bytes() == (tmp_path / "b.truth.json").read_bytes()
    assert "infiltrate_fraction" not in a["spec"] and all("infiltrate" not in r for r in a["regions"])
    assert all(c["type"] == "tumour" for c in a["cells"]) and {c["type"] for c in b["stromal_cells"]} == {"other"}
    # the spec's repr (a cache key) names the infiltrate fields only when they draw something
    assert repr(base) == repr(explicit) and "infiltrate" not in repr(base)
    assert "infiltrate_fraction=0.3" in repr(replace(base, infiltrate_fraction=0.3))


def test_default_region_renders_as_with_fraction_zero() -> None:
    base = SynthSpec(width=1024, height=1024, seed=3, scanner=QUIET)
    a = render_region(make_layout(base), (256, 256), (512, 512))
    b = render_region(make_layout(replace(base, infiltrate_fraction=0.0)), (256, 256), (512, 512))
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.concentrations, b.concentrations)
    np.testing.assert_array_equal(a.nucleus_labels, b.nucleus_labels)
    np.testing.assert_array_equal(a.cell_labels, b.cell_labels)


def test_infiltrates_take_their_share_of_the_tumour_positions(slide: dict) -> None:
    """About 30 % of a metastasis's drawn cells are immune cells, in the requested mix, at tumour cell positions."""
    region = [c for c in slide["cells"] + slide["stromal_cells"] if c["region"] == "met1"]
    immune = [c for c in region if c["type"] in TYPES]
    assert len(region) > 300
    assert len(immune) / len(region) == pytest.approx(0.3, abs=0.02)
    for t, share in zip(TYPES, MIX):
        assert sum(c["type"] == t for c in immune) / len(immune) == pytest.approx(share, abs=0.05)
    # the same positions as the tumour sheet of a slide without infiltrates: cell density holds
    with_cells = make_layout(SPEC).cells
    without = make_layout(replace(SPEC, infiltrate_fraction=0.0)).cells
    a, b = with_cells.region == 0, without.region == 0
    assert set(zip(with_cells.l0_x[a], with_cells.l0_y[a])) == set(zip(without.l0_x[b], without.l0_y[b]))


def test_lymphocytes_are_small_dark_round_and_negative(slide: dict) -> None:
    lym = rows_of(slide, "lymphocyte")
    area = np.array([c["nucleus_area_um2"] for c in lym])
    assert len(lym) > 30
    assert np.mean((area >= 20.0) & (area <= 30.0)) >= 0.95 and area.max() <= 30.0
    # a thin rim of cytoplasm: the body's equivalent diameter 1-2 um beyond the nucleus's
    rim = np.sqrt(4 / np.pi) * (np.sqrt([c["cell_area_um2"] for c in lym]) - np.sqrt(area))
    assert 0.8 <= np.median(rim) <= 2.0
    assert all(c["class"] == 0 and c["dab_cell_mean"] <= 0.1 + 1e-4 for c in lym)


def test_neutrophils_are_strongly_positive_and_macrophages_weak(slide: dict) -> None:
    neu, mac = rows_of(slide, "neutrophil"), rows_of(slide, "macrophage")
    assert len(neu) > 15 and len(mac) > 10
    assert np.mean([c["class"] >= 2 for c in neu]) >= 0.75
    assert np.mean([c["class"] <= 1 for c in mac]) >= 0.75
    # the class is the drawn mean against the thresholds
    for c in neu + mac:
        assert c["class"] == int(np.searchsorted(CLASS_THRESHOLDS, c["dab_cell_mean"], side="right"))
    # neutrophils hold their DAB in the granular cytoplasm
    assert np.mean([c["dab_cytoplasm_mean"] > c["dab_nucleus_mean"] for c in neu]) >= 0.9
    # cell sizes (equivalent diameters, um): a macrophage in a dense sheet is clipped by its territory
    size = {t: np.median([2 * np.sqrt(c["cell_area_um2"] / np.pi) for c in rows_of(slide, t)]) for t in TYPES}
    assert 6.0 < size["lymphocyte"] < 8.0 and 9.0 < size["neutrophil"] < 12.5 and size["macrophage"] > 14.0


def test_region_totals_count_tumour_cells_only(slide: dict) -> None:
    """Region and slide totals recount the tumour rows; the infiltrate counts recount the immune rows."""
    reg = slide["regions"][0]
    tumour = slide["cells"]
    assert all(c["tumour"] and c["type"] == "tumour" and c["region"] == "met1" for c in tumour)
    assert reg["n_cells"] == slide["totals"]["n_cells"] == len(tumour)
    counts = [sum(c["class"] == k for c in tumour) for k in range(4)]
    assert list(reg["n_class"].values()) == counts
    assert reg["h_score"] == pytest.approx((counts[1] + 2 * counts[2] + 3 * counts[3]) / len(tumour) * 100)
    immune = [c for c in slide["stromal_cells"] if c["type"] in TYPES]
    assert all(not c["tumour"] and c["region"] == "met1" and c["kind"] == c["type"] for c in immune)
    inf = reg["infiltrate"]
    assert [inf[f"n_{t}"] for t in TYPES] == [sum(c["type"] == t for c in immune) for t in TYPES]
    classes = np.bincount([c["class"] for c in immune], minlength=4)
    assert inf["n_cells"] == len(immune) and inf["h_score"] == pytest.approx(classes @ np.arange(4) / len(immune) * 100)
    # host cells (glia and neurons here) stay "other", outside every outline; n_host_cells counts no immune cell
    host = [c for c in slide["stromal_cells"] if c["type"] == "other"]
    assert host and all(c["kind"] in ("glia", "neuron") and c["region"] is None for c in host)
    assert reg["n_host_cells"] == 0
    assert slide["spec"]["infiltrate_fraction"] == 0.3


def _pieces_and_solidity(mask: np.ndarray) -> tuple[int, float]:
    """8-connected components of a nucleus mask and its area over that of its convex hull (pixel-edge corrected)."""
    pieces = ndimage.label(mask, structure=np.ones((3, 3)))[1]
    hull = cv2.convexHull(np.argwhere(mask)[:, ::-1].astype(np.int32))
    return pieces, float(mask.sum()) / (cv2.contourArea(hull) + 0.5 * cv2.arcLength(hull, True) + 1.0)


def test_neutrophil_nuclei_are_lobed_and_macrophage_nuclei_notched(drawn: tuple) -> None:
    """Read from the drawn nucleus labels: lobes apart or a chain far from convex; a kidney less convex than tumour."""
    layout, reg, _ = drawn
    boxes = ndimage.find_objects(reg.nucleus_labels)
    shapes = {}
    for kind in (KIND_NEUTROPHIL, KIND_MACROPHAGE, KIND_TUMOUR):
        cells = [i for i in np.flatnonzero(layout.cells.kind == kind) if i < len(boxes) and boxes[i] is not None]
        shapes[kind] = np.array([_pieces_and_solidity(reg.nucleus_labels[boxes[i]] == i + 1) for i in cells])
    neu, mac, tum = shapes[KIND_NEUTROPHIL], shapes[KIND_MACROPHAGE], shapes[KIND_TUMOUR]
    assert len(neu) > 15 and len(mac) > 10
    assert np.mean((neu[:, 0] >= 2) | (neu[:, 1] < 0.88)) >= 0.9
    assert np.mean(neu[:, 0] >= 2) >= 0.2  # some lobes drawn just apart
    assert np.all(tum[:, 0] == 1) and np.mean(tum[:, 1] > 0.95) >= 0.95
    assert np.all(mac[:, 0] == 1) and np.median(mac[:, 1]) < 0.94


def test_infiltrated_slide_renders_identically_across_block_seams() -> None:
    layout = make_layout(replace(SPEC, width=1024, height=1024, scanner=QUIET, infiltrate_fraction=0.5))
    whole = render_region(layout, (100, 200), (800, 500))
    left = render_region(layout, (100, 200), (400, 500))
    right = render_region(layout, (500, 200), (400, 500))
    np.testing.assert_allclose(np.concatenate([left.concentrations, right.concentrations], axis=1),
                               whole.concentrations, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(np.concatenate([left.nucleus_labels, right.nucleus_labels], axis=1),
                                  whole.nucleus_labels)
    np.testing.assert_array_equal(np.concatenate([left.cell_labels, right.cell_labels], axis=1), whole.cell_labels)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"infiltrate_fraction": 0.7}, "infiltrate_fraction"),
    ({"infiltrate_fraction": -0.1}, "infiltrate_fraction"),
    ({"infiltrate_mix": (0.5, 0.5, 0.5)}, "infiltrate_mix"),
    ({"infiltrate_mix": (0.5, 0.5)}, "infiltrate_mix"),
    ({"infiltrate_mix": (1.2, -0.2, 0.0)}, "infiltrate_mix"),
])
def test_infiltrate_fields_are_validated(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SynthSpec(**kwargs)


def test_infiltrated_preset_has_a_positive_and_a_negative_infiltrated_metastasis() -> None:
    spec = preset("infiltrated")
    assert spec.host_tissue == "brain" and 0.25 <= spec.infiltrate_fraction <= 0.3 and spec.infiltrate_mix == MIX
    h = {r.name: 100 * float(np.dot(r.class_proportions, np.arange(4))) for r in spec.regions}
    assert 180 <= h["met-positive"] <= 200 and 5 <= h["met-negative"] <= 25
    cells = make_layout(spec).cells
    for k in range(len(spec.regions)):
        mine = cells.region == k
        assert np.mean(cells.kind[mine] != KIND_TUMOUR) == pytest.approx(spec.infiltrate_fraction, abs=0.005)

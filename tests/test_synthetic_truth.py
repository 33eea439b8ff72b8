"""The generator's own truth and optics: a cell is what is drawn for it; a scanner changes pixels, not the truth."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import ihc_score.synthetic
from ihc_score.synthetic import (
    CLASS_THRESHOLDS,
    SCANNERS,
    STAININGS,
    Scanner,
    SynthSpec,
    TumourRegion,
    make_layout,
    make_slide,
    preset,
    render_region,
)
from ihc_score.synthetic.optics import sensor_rgb

QUIET = replace(SCANNERS["reference"], noise_sigma=0.0)
SYNTHETIC = Path(ihc_score.synthetic.__file__).resolve().parent


def whole_cells(labels: np.ndarray) -> set[int]:
    """Labels of the cell bodies that do not touch the rectangle's border (drawn whole inside it)."""
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return set(np.unique(labels).tolist()) - set(np.unique(border).tolist()) - {0}


@pytest.mark.parametrize("gap", [(0.0, 0.0), (2.0, 4.0)], ids=["touching", "gap"])
@pytest.mark.parametrize("staining", STAININGS)
def test_truth_is_the_mean_of_the_drawn_body(staining: str, gap: tuple[float, float]) -> None:
    """Per-cell truth recomputed from the rendered labels and dye amounts alone."""
    layout = make_layout(SynthSpec(width=1600, height=1600, seed=13, staining=staining, cell_gap_um=gap,
                                   regions=(TumourRegion(radii=(0.45, 0.45)),)))
    reg = render_region(layout, (400, 400), (800, 800))
    cell, nuc = reg.cell_labels.ravel(), reg.nucleus_labels.ravel()
    dab = reg.concentrations[..., 1].astype(np.float64).ravel()
    assert np.all(cell[nuc > 0] == nuc[nuc > 0])  # every nucleus pixel is in its own body
    k = int(max(cell.max(), nuc.max())) + 1
    n_cell, s_cell = np.bincount(cell, minlength=k), np.bincount(cell, weights=dab, minlength=k)
    n_nuc, s_nuc = np.bincount(nuc, minlength=k), np.bincount(nuc, weights=dab, minlength=k)
    whole = whole_cells(reg.cell_labels)
    st = reg.stats
    checked = 0
    for j, i in enumerate(st["index"]):
        lab = int(i) + 1
        if lab not in whole or st["nucleus_px"][j] == 0:
            continue
        assert n_cell[lab] == st["cell_px"][j] and n_nuc[lab] == st["nucleus_px"][j]
        assert st["dab_cell_mean"][j] == pytest.approx(s_cell[lab] / n_cell[lab], rel=1e-6, abs=1e-9)
        assert st["dab_nucleus_mean"][j] == pytest.approx(s_nuc[lab] / n_nuc[lab], rel=1e-6, abs=1e-9)
        if n_cell[lab] > n_nuc[lab]:
            cyto = (s_cell[lab] - s_nuc[lab]) / (n_cell[lab] - n_nuc[lab])
            assert st["dab_cytoplasm_mean"][j] == pytest.approx(cyto, rel=1e-5, abs=1e-7)
        if layout.cells.tumour[i]:
            assert st["dab_cell_mean"][j] == pytest.approx(layout.cells.dab_target[i], rel=1e-5)
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("staining", STAININGS)
def test_each_staining_keeps_the_designed_class(staining: str) -> None:
    layout = make_layout(SynthSpec(width=2000, height=1600, seed=2, staining=staining, scanner=QUIET,
                                   regions=(TumourRegion(radii=(0.45, 0.45)),)))
    reg = render_region(layout, (0, 0), (2000, 1600))
    st = reg.stats
    tum = layout.cells.tumour[st["index"]] & (st["nucleus_px"] > 0)
    assert tum.sum() > 300
    klass = np.searchsorted(CLASS_THRESHOLDS, st["dab_cell_mean"][tum], side="right")
    np.testing.assert_array_equal(klass, layout.cells.klass[st["index"][tum]])
    pos = tum & (st["dab_cell_mean"] >= 0.2) & (st["cell_px"] > 2 * st["nucleus_px"])
    if staining == "nuclear_cytoplasmic":
        assert np.all(st["dab_nucleus_mean"][pos] > 0.1)
        assert np.median(st["dab_cytoplasm_mean"][pos] / st["dab_nucleus_mean"][pos]) > 1.1
    else:
        assert np.all(st["dab_nucleus_mean"][pos] == 0.0)  # negative nucleus
    if staining == "membranous":  # a dark ring at the body's outer edge, a faint inside
        lab, dab = reg.cell_labels, reg.concentrations[..., 1]
        cyto = (lab > 0) & (reg.nucleus_labels == 0) & (dab > 0)
        near = ndimage.maximum_filter(lab, size=5) != ndimage.minimum_filter(lab, size=5)
        deep = ndimage.maximum_filter(lab, size=17) == ndimage.minimum_filter(lab, size=17)
        assert dab[cyto & near].mean() > 4.0 * dab[cyto & deep].mean()


def test_a_scanner_changes_the_pixels_not_the_truth(tmp_path: Path) -> None:
    base = SynthSpec(width=900, height=700, seed=4)
    regs = {name: render_region(make_layout(replace(base, scanner=name)), (0, 0), (900, 700)) for name in SCANNERS}
    ref = regs["reference"]
    for name, reg in regs.items():
        # the same up to float32 rounding of the coarse fields: a wider blur draws a wider margin
        np.testing.assert_allclose(reg.concentrations, ref.concentrations, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(reg.cell_labels, ref.cell_labels)
        for key, value in ref.stats.items():
            np.testing.assert_array_equal(reg.stats[key], value)
        if name != "reference":
            assert np.abs(reg.rgb.astype(np.int16) - ref.rgb).mean() > 3.0
    a = make_slide(tmp_path / "a.svs", base)
    b = make_slide(tmp_path / "b.svs", replace(base, scanner="scanner-b"))
    assert a["cells"] == b["cells"] and a["totals"] == b["totals"]
    assert b["scanner"] == "scanner-b" and b["background"] == list(SCANNERS["scanner-b"].glass)
    assert (tmp_path / "a.svs").read_bytes() != (tmp_path / "b.svs").read_bytes()


def test_sensor_follows_its_tone_curve_crosstalk_and_glass() -> None:
    od = np.array([[0.0, 0.0, 0.0], [0.5, 0.3, 0.1]])
    curved = Scanner(gamma=1.2, glass=(240.0, 230.0, 220.0))
    rgb = sensor_rgb(10.0 ** -od, curved).astype(np.float64)
    assert rgb[0].tolist() == [240.0, 230.0, 220.0]
    np.testing.assert_allclose(-np.log10(rgb[1] / rgb[0]), 1.2 * od[1], atol=0.01)  # OD scaled by gamma
    mixed = Scanner(crosstalk=((0.9, 0.1, 0.0), (0.0, 1.0, 0.0), (0.0, 0.05, 0.95)))
    t = 10.0 ** -od[1]
    expected = 255.0 * np.array([0.9 * t[0] + 0.1 * t[1], t[1], 0.05 * t[1] + 0.95 * t[2]])
    np.testing.assert_allclose(sensor_rgb(t, mixed), expected, atol=0.51)
    assert sensor_rgb(np.ones(3), mixed).tolist() == [255, 255, 255]  # glass stays glass


@pytest.mark.parametrize("gap_um", [0.0, 3.0])
def test_cell_gap_separates_neighbouring_bodies(gap_um: float) -> None:
    spec = SynthSpec(width=1600, height=1600, seed=6, cell_gap_um=(gap_um, gap_um), scanner=QUIET,
                     regions=(TumourRegion(radii=(0.45, 0.45)),))
    reg = render_region(make_layout(spec), (600, 600), (400, 400))
    cyto = np.where(reg.nucleus_labels == 0, reg.cell_labels, 0)
    assert (cyto > 0).mean() > 0.2

    def clash(dy: int, dx: int) -> bool:
        a = cyto[max(dy, 0): cyto.shape[0] + min(dy, 0), max(dx, 0): cyto.shape[1] + min(dx, 0)]
        b = cyto[max(-dy, 0): cyto.shape[0] + min(-dy, 0), max(-dx, 0): cyto.shape[1] + min(-dx, 0)]
        return bool(np.any((a > 0) & (b > 0) & (a != b)))

    if gap_um == 0:  # touching: neighbouring bodies share edges
        assert clash(0, 1) or clash(1, 0)
        return
    r = int(gap_um / spec.mpp_um) - 2  # pixel and distance-transform rounding
    offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if dy * dy + dx * dx <= r * r]
    assert not any(clash(dy, dx) for dy, dx in offsets)


@pytest.mark.parametrize("gap_fill", ["stroma", "glass"])
def test_gap_fill_is_stroma_or_glass(gap_fill: str) -> None:
    spec = SynthSpec(width=1600, height=1600, seed=6, cell_gap_um=(3.0, 3.0), gap_fill=gap_fill, scanner=QUIET,
                     regions=(TumourRegion(radii=(0.45, 0.45)),))
    reg = render_region(make_layout(spec), (650, 650), (300, 300))
    gap = reg.cell_labels == 0
    assert gap.mean() > 0.1
    h = reg.concentrations[..., 0][gap]
    if gap_fill == "glass":
        assert np.abs(reg.concentrations[gap]).max() == 0.0
        clear = ndimage.binary_erosion(gap, iterations=3)  # away from the blurred edges of the bodies
        assert clear.any() and np.all(reg.rgb[clear] == 255)
    else:
        assert h.mean() > 0.02


@pytest.mark.parametrize("density", [1000.0, 9000.0])
def test_density_and_nucleus_size_follow_the_spec(density: float) -> None:
    spec = SynthSpec(width=3000, height=3000, seed=8, tumour_density_per_mm2=density, nucleus_diameter_um=(5.0, 15.0),
                     cytoplasm_width_um=(1.0, 8.0))
    layout = make_layout(spec)
    cells = layout.cells.take(layout.cells.tumour)
    area_mm2 = sum(g.area for g in layout.outlines) * (spec.mpp_um * 1e-3) ** 2
    assert len(cells) / area_mm2 == pytest.approx(density, rel=0.1)
    d_um = 2 * np.sqrt(cells.radius_a * cells.radius_b) * spec.mpp_um
    assert d_um.min() >= 4.99 and d_um.max() <= 15.01
    cyto_um = cells.cytoplasm_px * spec.mpp_um
    assert cyto_um.min() >= 0.99 and cyto_um.max() <= 8.01


def test_near_cutoff_preset_straddles_the_cutoff() -> None:
    spec = preset("near-cutoff")
    cells = make_layout(spec).cells
    h = []
    for k in range(len(spec.regions)):
        n = np.bincount(cells.klass[cells.tumour & (cells.region == k)], minlength=4)
        h.append((n[1] + 2 * n[2] + 3 * n[3]) / n.sum() * 100)
    assert h[0] == pytest.approx(92.0, abs=1.0) and h[1] == pytest.approx(108.0, abs=1.0)


def test_designed_means_reach_up_to_the_thresholds() -> None:
    cells = make_layout(SynthSpec(width=3000, height=3000, seed=9)).cells
    t = cells.dab_target[cells.tumour]
    gaps = np.abs(t[:, None] - np.asarray(CLASS_THRESHOLDS)[None, :]).min(axis=1)
    assert gaps.min() >= 5e-4 - 1e-12 and (gaps < 0.02).mean() > 0.05  # cells near thresholds, never on them


def _outside_imports(path: Path) -> list[str]:
    """``ihc_score`` modules outside the synthetic package imported by a source file (any import, any place)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [n for n in names if n.startswith("ihc_score") and not n.startswith("ihc_score.synthetic")]
    return found


def test_the_generator_imports_nothing_of_the_scorer() -> None:
    """Only ihc_score.errors, and ihc_score.regions in svs.py (to write annotations), come from outside."""
    bad = {}
    for path in sorted(SYNTHETIC.glob("*.py")):
        allowed = {"ihc_score.errors"} | ({"ihc_score.regions"} if path.name == "svs.py" else set())
        extra = [m for m in _outside_imports(path) if m not in allowed]
        if extra:
            bad[path.name] = extra
    assert not bad, bad

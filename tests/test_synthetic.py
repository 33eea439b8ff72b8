"""Tests of the synthetic slide generator against its own designed truth."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import openslide
import pytest
import shapely
from shapely.geometry import shape

from ihc_score.synthetic import (
    CLASS_BANDS,
    CLASS_THRESHOLDS,
    DEFAULT_DYES,
    SCANNERS,
    Cells,
    Dyes,
    NecrosisRegion,
    Scanner,
    SynthSpec,
    TumourRegion,
    annotation_path,
    make_case,
    make_layout,
    make_slide,
    preset,
    render_region,
    shift_dyes,
    truth_path,
)
from ihc_score.synthetic.tissue_types import KIND_DUST, KIND_GHOST, KIND_GLIA, KIND_NEURON

SMALL = SynthSpec(width=2600, height=1800, seed=7)
MULTI = preset("multi-met", width=2600, height=1950, seed=21)
QUIET = replace(SCANNERS["reference"], noise_sigma=0.0)


def unmix(rgb: np.ndarray, dyes: Dyes, glass: tuple[float, float, float]) -> np.ndarray:
    """Dye amounts of an RGB image by inverting Beer-Lambert with the generator's own dyes (a linear scanner)."""
    od = -np.log10(np.maximum(rgb.astype(np.float64), 1.0) / np.asarray(glass))
    return od @ np.linalg.inv(dyes.matrix)


def h_score(counts: list[int]) -> float:
    return (counts[1] + 2 * counts[2] + 3 * counts[3]) / sum(counts) * 100


@pytest.fixture(scope="module")
def small_slide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("synth") / "small.svs"
    return path, make_slide(path, SMALL)


@pytest.fixture(scope="module")
def multi_slide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("multi") / "multi.svs"
    return path, make_slide(path, MULTI, annotations=True)


def one_cell(x: float, y: float, dab_target: float, *, diameter_um: float = 9.0, mpp_um: float = 0.25) -> Cells:
    """A single round-ish tumour cell of class decided by ``dab_target``."""
    r = 0.5 * diameter_um / mpp_um
    f32 = lambda v: np.array([v], np.float32)  # noqa: E731
    return Cells(
        l0_x=np.array([x]), l0_y=np.array([y]), radius_a=f32(r * 1.1), radius_b=f32(r / 1.1), angle=f32(0.4),
        harm2=f32(0.05), phase2=f32(1.0), harm3=f32(0.03), phase3=f32(2.0), nucleus_h_od=f32(0.35),
        cytoplasm_px=f32(4.5 / mpp_um), cytoplasm_h_od=f32(0.08), cytoplasm_ratio=f32(1.4),
        dab_target=np.array([dab_target]), klass=np.array([np.searchsorted(CLASS_THRESHOLDS, dab_target, "right")],
                                                          np.int8),
        tumour=np.array([True]), region=np.array([0], np.int16),
    )


def test_svs_opens_as_aperio_with_mpp_and_pyramid(small_slide: tuple[Path, dict]) -> None:
    path, _ = small_slide
    with openslide.OpenSlide(path) as s:
        assert s.properties["openslide.vendor"] == "aperio"
        assert float(s.properties["openslide.mpp-x"]) == pytest.approx(0.25)
        assert float(s.properties["openslide.mpp-y"]) == pytest.approx(0.25)
        assert s.dimensions == (2600, 1800)
        assert s.level_dimensions == ((2600, 1800), (650, 450))
        assert s.level_downsamples == pytest.approx((1.0, 4.0))
        assert s.properties["openslide.level[0].tile-width"] == "512"
        corner = np.asarray(s.read_region((0, 0), 0, (64, 64)).convert("RGB"), dtype=np.float64)
        assert np.abs(corner.mean(axis=(0, 1)) - 255.0).max() < 2.0  # blank glass
        assert s.properties["aperio.AppMag"] == "40"


def test_pyramid_levels_until_below_1024(tmp_path: Path) -> None:
    spec = SynthSpec(width=4200, height=1000, seed=1, tumour_density_per_mm2=0, stroma_density_per_mm2=0)
    make_slide(tmp_path / "wide.svs", spec)
    with openslide.OpenSlide(tmp_path / "wide.svs") as s:
        assert s.level_dimensions == ((4200, 1000), (1050, 250), (263, 63))


def test_truth_counts_and_hscore_follow_the_formula(small_slide: tuple[Path, dict]) -> None:
    path, truth = small_slide
    on_disk = json.loads(truth_path(path).read_text())
    assert on_disk == json.loads(json.dumps(truth))
    cells = on_disk["cells"]
    assert len(cells) > 300
    counts = [sum(c["class"] == k for c in cells) for k in range(4)]
    tot = on_disk["totals"]
    assert tot["n_cells"] == len(cells) == sum(counts)
    assert [tot["n_class"][k] for k in ("0", "1+", "2+", "3+")] == counts
    assert tot["h_score"] == pytest.approx((counts[1] + 2 * counts[2] + 3 * counts[3]) / len(cells) * 100)
    assert tot["percent_positive"] == pytest.approx((len(cells) - counts[0]) / len(cells) * 100)
    assert on_disk["thresholds"] == [0.2, 0.4, 0.6] and on_disk["compartment"] == "cell"
    assert on_disk["generator_version"] == "3" and "cell_expansion_um" not in on_disk
    assert on_disk["scanner"] == "reference" and on_disk["spec"]["scanner"]["gamma"] == 1.0
    assert on_disk["mpp_um"] == 0.25 and on_disk["seed"] == 7
    for c in cells:
        assert c["tumour"] is True and c["region"] == "met1"
        assert np.searchsorted(CLASS_THRESHOLDS, c["dab_cell_mean"], side="right") == c["class"]
        lo, hi = CLASS_BANDS[c["class"]]
        assert lo - 1e-4 <= c["dab_cell_mean"] <= hi + 1e-4  # the body holds only the cell's own DAB
        assert c["cell_area_um2"] > c["nucleus_area_um2"]
        assert 0 < c["l0_x"] < 2600 and 0 < c["l0_y"] < 1800
        assert 15.0 < c["nucleus_area_um2"] < 130.0
    assert all(c["class"] == 0 and c["tumour"] is False for c in on_disk["stromal_cells"])
    assert len(on_disk["stromal_cells"]) > 0


def test_truth_coordinates_match_the_image_after_jpeg(small_slide: tuple[Path, dict]) -> None:
    path, truth = small_slide
    with openslide.OpenSlide(path) as s:
        rgb = np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB"))
    dab = unmix(rgb, Dyes(**truth["dyes"]), tuple(truth["background"]))[..., 1]
    x = np.array([c["l0_x"] for c in truth["cells"]]).astype(int)
    y = np.array([c["l0_y"] for c in truth["cells"]]).astype(int)
    at = np.mean([dab[y + dy, x + dx] for dy in range(-2, 3) for dx in range(-2, 3)], axis=0)
    designed = np.array([c["dab_nucleus_mean"] for c in truth["cells"]])
    assert np.corrcoef(at, designed)[0, 1] > 0.9
    shifted = np.mean([dab[y + 40 + dy, x + 37 + dx] for dy in range(-2, 3) for dx in range(-2, 3)], axis=0)
    assert np.corrcoef(shifted, designed)[0, 1] < 0.5


@pytest.mark.parametrize("target", [0.05, 0.3, 0.5, 0.8])
@pytest.mark.parametrize("shift", [0.0, 10.0])
def test_single_cell_unmixes_to_designed_dab_mean(target: float, shift: float) -> None:
    dyes = shift_dyes(DEFAULT_DYES, shift)
    glass = (240.0, 235.0, 215.0) if shift else (255.0, 255.0, 255.0)
    sharp = replace(SCANNERS["reference"], glass=glass, blur_sigma_um=0.0)
    spec = SynthSpec(width=256, height=256, seed=3, dyes=dyes, scanner=sharp, tissue_fraction=0.0)
    layout = make_layout(spec, cells=one_cell(128.3, 121.7, target))
    reg = render_region(layout, (0, 0), (256, 256))
    assert reg.stats["index"].tolist() == [0]
    designed = float(reg.stats["dab_cell_mean"][0])
    assert designed == pytest.approx(target, abs=1e-6)
    cell = reg.cell_labels == 1
    nucleus = reg.nucleus_labels == 1
    assert cell.sum() == reg.stats["cell_px"][0] and nucleus.sum() == reg.stats["nucleus_px"][0]
    assert float(reg.concentrations[..., 1][cell].mean()) == pytest.approx(designed, abs=1e-4)
    measured = float(unmix(reg.rgb, dyes, glass)[..., 1][cell].mean())
    assert measured == pytest.approx(designed, abs=0.03)  # a sharp linear scanner: Beer-Lambert up to noise
    # the optics blur light, not OD: fine dark texture then reads paler (mean of -log T > -log of mean T)
    blurred = render_region(make_layout(replace(spec, scanner=replace(sharp, blur_sigma_um=0.2)),
                                        cells=one_cell(128.3, 121.7, target)), (0, 0), (256, 256))
    np.testing.assert_array_equal(blurred.concentrations, reg.concentrations)
    seen = float(unmix(blurred.rgb, dyes, glass)[..., 1][cell].mean())
    assert designed * 0.9 - 0.02 < seen < measured + 0.01
    assert reg.stats["dab_cytoplasm_mean"][0] > reg.stats["dab_nucleus_mean"][0]
    # a 9-um nucleus: area pi * 4.5^2 um^2 up to the shape jitter
    assert reg.stats["nucleus_px"][0] * 0.25**2 == pytest.approx(np.pi * 4.5**2, rel=0.15)


@pytest.mark.parametrize("fields", [
    {},
    {"staining": "membranous", "cell_gap_um": (1.0, 3.0), "gap_fill": "glass"},
    {"staining": "cytoplasmic", "scanner": replace(SCANNERS["scanner-c"], noise_sigma=0.0)},
], ids=["default", "membranous-gap-glass", "cytoplasmic-scanner-c"])
def test_regions_render_identically_across_block_seams(fields: dict) -> None:
    layout = make_layout(SynthSpec(width=1400, height=1000, seed=5, **{"scanner": QUIET, **fields}))
    whole = render_region(layout, (200, 200), (800, 500))
    left = render_region(layout, (200, 200), (400, 500))
    right = render_region(layout, (600, 200), (400, 500))
    joined = np.concatenate([left.concentrations, right.concentrations], axis=1)
    # the same to float32 rounding: per-cell sums over blocks of other sizes may round in another order
    np.testing.assert_allclose(joined, whole.concentrations, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(np.concatenate([left.cell_labels, right.cell_labels], axis=1), whole.cell_labels)
    np.testing.assert_array_equal(np.concatenate([left.rgb, right.rgb], axis=1), whole.rgb)
    both = np.concatenate([left.stats["dab_cell_mean"], right.stats["dab_cell_mean"]])
    idx = np.concatenate([left.stats["index"], right.stats["index"]])
    np.testing.assert_allclose(both[np.argsort(idx)], whole.stats["dab_cell_mean"][np.argsort(whole.stats["index"])])


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    spec = SynthSpec(width=1300, height=900, seed=11, scanner=replace(SCANNERS["scanner-a"], jpeg_quality=80),
                     tile_px=256, staining="membranous", cell_gap_um=(0.0, 2.0))
    make_slide(tmp_path / "a.svs", spec)
    make_slide(tmp_path / "b.svs", spec)
    make_slide(tmp_path / "c.svs", replace(spec, seed=12))
    a, b, c = ((tmp_path / f"{n}.svs").read_bytes() for n in "abc")
    assert a == b and a != c
    assert (tmp_path / "a.truth.json").read_bytes() == (tmp_path / "b.truth.json").read_bytes()


def test_class_counts_follow_region_proportions() -> None:
    props_a, props_b = (0.1, 0.2, 0.3, 0.4), (0.7, 0.2, 0.1, 0.0)
    spec = SynthSpec(width=12000, height=8000, seed=2, regions=(
        TumourRegion(center=(0.28, 0.5), radii=(0.2, 0.35), class_proportions=props_a, name="a"),
        TumourRegion(center=(0.74, 0.5), radii=(0.2, 0.35), class_proportions=props_b, name="b")))
    cells = make_layout(spec).cells
    for k, props in enumerate((props_a, props_b)):
        klass = cells.klass[cells.tumour & (cells.region == k)]
        n = klass.size
        assert n > 3000
        expected = np.diff(np.concatenate([[0], np.rint(np.cumsum(props) * n)]))
        np.testing.assert_array_equal(np.bincount(klass, minlength=4), expected)
    bands = np.asarray(CLASS_BANDS)
    t, k = cells.dab_target[cells.tumour], cells.klass[cells.tumour]
    assert np.all((t >= bands[k, 0]) & (t <= bands[k, 1]))
    assert np.all(cells.klass[~cells.tumour] == 0) and np.all(cells.dab_target[~cells.tumour] == 0)


@pytest.mark.parametrize(("clustering", "lo", "hi"), [(0.0, -0.12, 0.12), (0.9, 0.35, 1.0)])
def test_class_clustering_sets_neighbour_correlation(clustering: float, lo: float, hi: float) -> None:
    spec = SynthSpec(width=8000, height=8000, seed=4, class_clustering=clustering)
    cells = make_layout(spec).cells
    cells = cells.take(cells.tumour)
    xy = np.stack([cells.l0_x, cells.l0_y], axis=1)
    d2 = ((xy[:, None, :] - xy[None, ::7, :]) ** 2).sum(-1)[::7]  # a sample, no spatial index needed
    np.fill_diagonal(d2, np.inf)
    nearest = np.argmin(d2, axis=1)
    k = cells.klass[::7].astype(float)
    r = np.corrcoef(k, k[nearest])[0, 1]
    assert lo < r < hi


def test_presets_and_dye_shift() -> None:
    assert preset("default") == SynthSpec()
    assert preset("negative", seed=4).seed == 4
    assert preset("shifted-stains").scanner.glass == (240.0, 235.0, 215.0)
    assert preset("default", scanner="scanner-b").scanner == SCANNERS["scanner-b"]
    shifted = shift_dyes(DEFAULT_DYES, 10.0)
    for name in ("hematoxylin", "dab"):
        cos = np.dot(getattr(shifted, name), getattr(DEFAULT_DYES, name))
        assert np.degrees(np.arccos(cos)) == pytest.approx(10.0, abs=1e-6)
    np.testing.assert_allclose(shifted.residual, DEFAULT_DYES.residual, rtol=1e-12)
    with pytest.raises(ValueError, match="preset"):
        preset("nope")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"width": 10}, "width"), ({"mpp_um": 0.0}, "mpp_um"), ({"tile_px": 300}, "tile_px"),
     ({"scanner": "nope"}, "scanner"), ({"dyes": (0.6, 0.7, 0.3)}, "dyes"),
     ({"class_bands": ((0.0, 0.1), (0.15, 0.3), (0.45, 0.55), (0.68, 0.9))}, "class_bands"),
     ({"cytoplasm_width_um": (1.0, 12.0)}, "cytoplasm_width_um"), ({"cell_gap_um": (3.0, 1.0)}, "cell_gap_um"),
     ({"gap_fill": "air"}, "gap_fill"), ({"staining": "nuclear"}, "staining")],
)
def test_spec_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SynthSpec(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"glass": (0, 255, 255)}, "glass"), ({"jpeg_quality": 0}, "jpeg_quality"), ({"gamma": 3.0}, "gamma"),
     ({"blur_sigma_um": 2.0}, "blur_sigma_um"), ({"noise_sigma": -1.0}, "noise_sigma"),
     ({"crosstalk": ((0.9, 0.2, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))}, "crosstalk")],
)
def test_scanner_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Scanner(**kwargs)


def test_region_proportions_must_sum_to_one() -> None:
    with pytest.raises(ValueError, match="class_proportions"):
        TumourRegion(class_proportions=(0.5, 0.5, 0.5, 0.0))


def test_class_bands_set_the_designed_means() -> None:
    bands = ((0.17, 0.19), (0.21, 0.23), (0.41, 0.43), (0.61, 0.63))
    cells = make_layout(SynthSpec(width=3000, height=3000, seed=9, class_bands=bands)).cells
    cells = cells.take(cells.tumour)
    b = np.asarray(bands)
    assert len(cells) > 500
    assert np.all((cells.dab_target >= b[cells.klass, 0]) & (cells.dab_target <= b[cells.klass, 1]))


def test_unwritable_folder_raises_output_error(tmp_path: Path) -> None:
    from ihc_score.errors import OutputError

    with pytest.raises(OutputError, match="missing"):
        make_slide(tmp_path / "missing" / "x.svs", SynthSpec(width=600, height=600, seed=1))


def test_multi_met_preset_has_a_positive_and_a_negative_metastasis() -> None:
    spec = preset("multi-met")
    assert (spec.width, spec.height, spec.mpp_um, spec.host_tissue) == (8000, 6000, 0.25, "brain")
    layout = make_layout(spec)
    cells = layout.cells
    designed = [h_score(np.bincount(cells.klass[cells.tumour & (cells.region == k)], minlength=4).tolist())
                for k in range(len(spec.regions))]
    assert max(designed) >= 150 and min(designed) <= 50
    pos, neg = layout.outlines[int(np.argmax(designed))], layout.outlines[int(np.argmin(designed))]
    assert pos.distance(neg) * spec.mpp_um > 100  # separated by parenchyma
    (nec,) = layout.necrosis_outlines
    assert nec.intersection(pos.union(nec)).area > 0.5 * nec.area  # inside (or at the edge of) the positive one
    assert pos.union(nec).area > pos.area


def test_multi_met_truth_regions_follow_their_cells(multi_slide: tuple[Path, dict]) -> None:
    path, truth = multi_slide
    on_disk = json.loads(truth_path(path).read_text())
    assert on_disk == json.loads(json.dumps(truth))
    assert on_disk["host_tissue"] == "brain"
    names = [r["name"] for r in on_disk["regions"]]
    assert names == ["met-positive", "met-negative"]
    assert sum(r["n_cells"] for r in on_disk["regions"]) == on_disk["totals"]["n_cells"] == len(on_disk["cells"])
    for reg in on_disk["regions"]:
        mine = [c for c in on_disk["cells"] if c["region"] == reg["name"]]
        counts = [sum(c["class"] == k for c in mine) for k in range(4)]
        assert reg["n_cells"] == len(mine) > 100
        assert [reg["n_class"][k] for k in ("0", "1+", "2+", "3+")] == counts
        assert reg["h_score"] == pytest.approx(h_score(counts))
        assert reg["percent_positive"] == pytest.approx((len(mine) - counts[0]) / len(mine) * 100)
        outline = shape(reg["outline"])
        assert reg["area_um2"] == pytest.approx(outline.area * 0.25**2, abs=0.01)
        assert reg["n_host_cells"] == 0
    h = {r["name"]: r["h_score"] for r in on_disk["regions"]}
    assert h["met-positive"] >= 150 and h["met-negative"] <= 50
    (nec,) = on_disk["necroses"]
    assert nec["name"] == "necrosis-1" and nec["dab_od"] == MULTI.necrosis_dab_od
    assert nec["area_um2"] == pytest.approx(shape(nec["outline"]).area * 0.25**2, abs=0.01)


def test_outlines_are_valid_and_contain_exactly_their_cells(multi_slide: tuple[Path, dict]) -> None:
    _, truth = multi_slide
    outlines = {r["name"]: shape(r["outline"]) for r in truth["regions"]}
    necrosis = shape(truth["necroses"][0]["outline"])
    tx = np.array([c["l0_x"] for c in truth["cells"]])
    ty = np.array([c["l0_y"] for c in truth["cells"]])
    region = np.array([c["region"] for c in truth["cells"]])
    for name, g in outlines.items():
        assert g.is_valid and not g.is_empty and g.geom_type in ("Polygon", "MultiPolygon")
        assert 16 <= shapely.get_num_coordinates(g) <= 400
        np.testing.assert_array_equal(shapely.contains_xy(g, tx, ty), region == name)
        assert g.intersection(necrosis).area < 1.0  # necrosis cut out
    assert not shapely.contains_xy(necrosis, tx, ty).any()
    with_necrosis = outlines["met-positive"].union(necrosis)
    assert shapely.contains_xy(with_necrosis, tx, ty).sum() == (region == "met-positive").sum()
    hx = np.array([c["l0_x"] for c in truth["stromal_cells"]])
    hy = np.array([c["l0_y"] for c in truth["stromal_cells"]])
    assert all(c["region"] is None and c["kind"] in ("glia", "neuron") for c in truth["stromal_cells"])
    for g in (*outlines.values(), necrosis):
        assert not shapely.contains_xy(g, hx, hy).any()


def test_glial_nuclei_are_small_round_and_sparse() -> None:
    spec = preset("multi-met")
    layout = make_layout(spec)
    cells = layout.cells
    glia = cells.kind == KIND_GLIA
    d_um = 2 * np.sqrt(cells.radius_a[glia] * cells.radius_b[glia]) * spec.mpp_um
    assert np.all((d_um >= 4.99) & (d_um <= 7.01)) and np.all(cells.radius_a[glia] / cells.radius_b[glia] < 1.31)
    host = (cells.kind == KIND_GLIA) | (cells.kind == KIND_NEURON)
    assert np.all(cells.klass[host] == 0) and np.all(cells.dab_target[host] == 0)
    # densities over the areas they fill: tumour sheets vs parenchyma (tissue outside tumours and necrosis)
    step_mm = layout.field_step_px * spec.mpp_um * 1e-3
    paren = (layout.tissue_um > 8) & np.all(layout.tumour_um < -8, axis=0) & (layout.necrosis_um < -4)
    paren_mm2 = paren.sum() * step_mm**2
    tumour_mm2 = sum(g.area for g in layout.outlines) * (spec.mpp_um * 1e-3) ** 2
    glia_density = glia.sum() / paren_mm2
    tumour_density = cells.tumour.sum() / tumour_mm2
    assert glia_density == pytest.approx(spec.stroma_density_per_mm2, rel=0.2)
    assert tumour_density > 5 * glia_density
    assert 10 <= (cells.kind == KIND_NEURON).sum() <= 80  # a few neurons
    # the neuropil between the metastases: faint, fibrillary hematoxylin, no DAB
    reg = render_region(layout, (3900, 900), (256, 256))
    ground = reg.cell_labels == 0
    assert ground.mean() > 0.5
    h, dab = reg.concentrations[..., 0][ground], reg.concentrations[..., 1][ground]
    assert 0.015 < h.mean() < 0.06 and h.std() > 0.004 and dab.mean() < 0.03

def test_necrosis_is_pale_cell_free_debris_with_optional_dab() -> None:
    nec = NecrosisRegion(center=(0.5, 0.5), radii=(0.15, 0.15), name="n")
    base = SynthSpec(width=1200, height=1200, seed=8, regions=(TumourRegion(center=(0.5, 0.5), radii=(0.45, 0.45)),),
                     necroses=(nec,), host_tissue="brain", scanner=QUIET)
    means = {}
    for dab_od in (0.0, 0.04, 0.12):
        layout = make_layout(replace(base, necrosis_dab_od=dab_od))
        cells = layout.cells
        g = layout.necrosis_outlines[0]
        inside = shapely.contains_xy(g, cells.l0_x, cells.l0_y)
        assert not inside[cells.kind <= KIND_NEURON].any()  # no tumour or host cell in necrosis
        assert np.all(inside[(cells.kind == KIND_DUST) | (cells.kind == KIND_GHOST)])
        area_mm2 = g.area * (base.mpp_um * 1e-3) ** 2
        assert 6000 < (cells.kind == KIND_DUST).sum() / area_mm2 < 14000
        assert (cells.kind == KIND_GHOST).sum() / area_mm2 > 1000
        reg = render_region(layout, (520, 520), (160, 160))  # the necrosis core
        drawn = np.unique(reg.nucleus_labels[reg.nucleus_labels > 0] - 1)
        assert drawn.size > 10 and np.all(cells.kind[drawn] >= KIND_DUST)
        means[dab_od] = (float(reg.concentrations[..., 0].mean()), float(reg.concentrations[..., 1].mean()))
    assert means[0.0][1] == pytest.approx(0.0, abs=1e-6)
    assert 0.02 < means[0.04][1] < 0.08 and means[0.12][1] > 2 * means[0.04][1]
    layout = make_layout(base)
    tumour = render_region(layout, (560, 300), (80, 40)).concentrations[..., 0].mean()  # the tumour ring
    assert means[0.04][0] < 0.6 * tumour  # pale


def test_annotations_read_back_to_the_truth_outlines(multi_slide: tuple[Path, dict]) -> None:
    regions = pytest.importorskip("ihc_score.regions")
    path, truth = multi_slide
    geojson = annotation_path(path)
    assert geojson == path.with_suffix(".geojson") and geojson.is_file()
    anns = {a.name: a for a in regions.read_annotations(geojson)}
    assert set(anns) == {"met-positive", "met-negative", "necrosis-1"}
    for r in truth["regions"]:
        a = anns[r["name"]]
        assert a.classification == "Tumor" and not a.excluded
        assert a.geometry.equals(shape(r["outline"]))
    n = anns["necrosis-1"]
    assert n.classification == "Necrosis" and n.excluded and n.geometry.equals(shape(truth["necroses"][0]["outline"]))
    built = {r.name: r for r in regions.build_regions(list(anns.values()), slide_size=(MULTI.width, MULTI.height))}
    assert set(built) == {"met-positive", "met-negative"}
    for r in truth["regions"]:
        assert built[r["name"]].geometry.symmetric_difference(shape(r["outline"])).area < 1e-6


def test_case_slides_differ_by_seed_and_repeat_bytes(tmp_path: Path) -> None:
    spec = preset("multi-met", width=1400, height=1050, seed=3)
    (tmp_path / "a").mkdir()
    truths = make_case(tmp_path / "a", spec, 2, annotations=True)
    make_slide(tmp_path / "again.svs", spec, annotations=True)
    assert [t["seed"] for t in truths] == [3, 4]
    first = tmp_path / "a" / "slide-1"
    for suffix in (".svs", ".truth.json", ".geojson"):
        assert first.with_suffix(suffix).read_bytes() == (tmp_path / f"again{suffix}").read_bytes()
    assert (tmp_path / "a" / "slide-2.svs").read_bytes() != first.with_suffix(".svs").read_bytes()
    with pytest.raises(ValueError, match="n_slides"):
        make_case(tmp_path, spec, 0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"host_tissue": "liver"}, "host_tissue"), ({"necrosis_dab_od": 0.5}, "necrosis_dab_od"),
     ({"neuron_density_per_mm2": -1.0}, "neuron_density_per_mm2"),
     ({"necroses": (NecrosisRegion(name="met1"),)}, "necroses")],
)
def test_new_spec_fields_are_validated(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SynthSpec(**kwargs)
    with pytest.raises(ValueError, match="radii"):
        NecrosisRegion(radii=(0.0, 0.1))

"""QC pictures against a synthetic slide whose every cell is known."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import shapely

from ihc_score import outputs
from ihc_score.model import default_model
from ihc_score.outputs import CLASS_COLOURS_HEX, CLASS_COLOURS_RGB, REGION_COLOUR_RGB, hex_to_rgb, qc
from ihc_score.run import score_slide
from ihc_score.slide import open_slide
from ihc_score.stain import deconvolve
from ihc_score.synthetic import make_slide, preset


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A two-metastasis slide with a necrosis, its annotations, truth and result (with traced outlines)."""
    folder = tmp_path_factory.mktemp("qc")
    path = folder / "multi met.svs"
    truth = make_slide(path, preset("multi-met", width=3000, height=2400), annotations=True)
    result = score_slide(path, default_model(), outlines=True)
    return path, truth, result


def _truth_cells(truth: dict) -> tuple[np.ndarray, np.ndarray]:
    cells = truth["cells"] + truth["stromal_cells"]
    xy = np.array([[c["l0_x"], c["l0_y"]] for c in cells], np.float64)
    return xy, np.array([c["class"] for c in cells])


def _outlined_cells(crop: outputs.ZoomCrop) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Crop px and level-0 centre and class of every closed outline in a crop: the holes of each class colour's pixels.

    Holes smaller than 10 um^2 (gaps between touching outlines) and outlines cut by the crop's edge are left out.
    """
    out = []
    for cls, colour in enumerate(CLASS_COLOURS_RGB):
        mask = np.all(crop.rgb == colour, axis=-1).astype(np.uint8)
        contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        if hierarchy is None:
            continue
        for contour, (_, _, _, parent) in zip(contours, hierarchy[0]):
            m = cv2.moments(contour)
            x, y, w, h = cv2.boundingRect(contour)
            if parent < 0 or m["m00"] * crop.um_per_px**2 < 10:
                continue
            if x <= 1 or y <= 1 or x + w >= mask.shape[1] - 1 or y + h >= mask.shape[0] - 1:
                continue
            px = np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]])
            out.append((px, np.asarray(crop.l0_xy) + (px + 0.5) * crop.scale - 0.5, cls))
    return out


def _match_truth(scored, result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each outlined cell of every zoom crop: distance (um) to the nearest true cell, whether their classes
    agree, and the hematoxylin OD of the crop's picture at the outline's centre relative to the crop's median."""
    path, truth, _ = scored
    txy, tcls = _truth_cells(truth)
    dist, same, h_rel = [], [], []
    with open_slide(path) as slide:
        for i in range(len(result.regions)):
            for window in outputs.zoom_windows(result, i, n=5, size_um=60):
                crop = outputs.render_zoom(result, slide, window)
                hema = deconvolve(crop.rgb, result.stains)[..., 0]
                for px, l0, cls in _outlined_cells(crop):
                    d = np.hypot(*(txy - l0).T)
                    k = int(d.argmin())
                    dist.append(d[k] * result.mpp_um)
                    same.append(tcls[k] == cls)
                    c, r = np.round(px).astype(int)
                    h_rel.append(hema[r, c] / np.median(hema))
    return np.array(dist), np.array(same), np.array(h_rel)


def test_palette_is_okabe_ito():
    assert CLASS_COLOURS_HEX == ("#0072B2", "#F0E442", "#E69F00", "#D55E00")
    assert CLASS_COLOURS_RGB[3] == (213, 94, 0) and REGION_COLOUR_RGB == (0, 158, 115)
    with pytest.raises(ValueError, match="RRGGBB"):
        hex_to_rgb("0072B2")


def test_zoom_outlines_circle_the_true_cells(scored):
    """Without traced outlines each cell is a circle at its centroid: every one sits on a true cell of its class."""
    _, _, result = scored
    circles = replace(result, detail=replace(result.detail, outlines=None))
    dist, same, h_rel = _match_truth(scored, circles)
    assert len(dist) >= 60
    assert dist.max() <= 5.0  # nuclei are >= 8 um apart: a drawing off by one cell would fail
    assert np.median(dist) <= 1.0
    assert same.mean() >= 0.9
    # outlines and picture are in register: the circles' centres lie on nuclei in the crop's pixels
    assert np.percentile(h_rel, 10) >= 2.0


def test_zoom_traced_outlines_enclose_the_true_cells(scored):
    """Traced cell outlines: each encloses a true cell (cell centroid within a few um of its nucleus) of its class."""
    _, _, result = scored
    assert result.detail.outlines is not None
    dist, same, h_rel = _match_truth(scored, result)
    assert len(dist) >= 60
    assert np.median(dist) <= 2.0
    assert np.mean(dist <= 5.0) >= 0.9
    assert same.mean() >= 0.9
    assert np.median(h_rel) >= 2.0


def test_zoom_windows_span_the_range_inside_the_region(scored):
    _, _, result = scored
    d = result.detail
    for i, region in enumerate(result.regions):
        windows = outputs.zoom_windows(result, i, size_um=60)
        assert [w.label for w in windows] == ["highest DAB", "typical", "lowest DAB"]
        means = [w.mean_dab for w in windows]
        assert means[0] > means[1] > means[2]
        geom = shapely.from_wkt(region.wkt)
        for w in windows:
            (x0, y0), side = w.l0_xy, w.l0_side
            assert side == pytest.approx(60 / result.mpp_um)
            assert geom.contains(shapely.box(x0, y0, x0 + side, y0 + side))
            inside = d.membership[i] & (d.l0_x >= x0) & (d.l0_x < x0 + side) & (d.l0_y >= y0) & (d.l0_y < y0 + side)
            assert w.n_cells == inside.sum() >= 3
            assert w.mean_dab == pytest.approx(float(d.cells.dab_cell_mean[inside].mean()), abs=1e-6)


def test_thumbnail_outlines_follow_the_regions(scored):
    path, truth, result = scored
    with open_slide(path) as slide:
        image, layout = qc.slide_qc_image(result, slide)
    (ax, ay), (pw, ph) = layout.thumbnail_xy, layout.panel_size
    assert layout.scale == pytest.approx((result.l0_size[0] / pw, result.l0_size[1] / ph))
    panel = image[ay : ay + ph, ax : ax + pw]
    green = np.argwhere(np.all(panel == REGION_COLOUR_RGB, axis=-1))[:, ::-1].astype(np.float64)
    l0 = (green + 0.5) * np.asarray(layout.scale) - 0.5
    outlines = shapely.union_all([shapely.from_wkt(r.wkt).boundary for r in result.regions])
    dist_px = shapely.distance(outlines, shapely.points(l0)) / layout.scale[0]
    assert len(green) > 200
    assert dist_px.max() <= 3.0  # every pixel of the 3 px line lies on a region's outline
    # and every part of every outline is drawn
    samples = shapely.line_interpolate_point(outlines, np.linspace(0, 1, 400), normalized=True)
    spx = (shapely.get_coordinates(samples) + 0.5) / np.asarray(layout.scale) - 0.5
    nearest = np.min(np.hypot(spx[:, None, 0] - green[None, :, 0], spx[:, None, 1] - green[None, :, 1]), axis=1)
    assert nearest.max() <= 2.0
    # the regions are the designed metastases
    assert {r.name for r in result.regions} == {r["name"] for r in truth["regions"]}


def test_class_map_and_legend_match_the_counts(scored):
    path, _, result = scored
    counts = qc.legend_counts(result)
    for k, attr in enumerate(("n0", "n1", "n2", "n3")):
        assert counts[k] == sum(getattr(r.counts, attr) for r in result.regions)
    assert counts[4] == 0  # cells are detected in the annotated regions only
    # with the second region left out, its cells are shown (and counted) as outside every region
    only_first = replace(result.detail, membership=result.detail.membership[:1])
    first = replace(result, regions=result.regions[:1], detail=only_first)
    c0 = result.regions[0].counts
    assert qc.legend_counts(first) == (c0.n0, c0.n1, c0.n2, c0.n3, result.regions[1].counts.n, 0, 0)
    with open_slide(path) as slide:
        image, layout = qc.slide_qc_image(result, slide)
    assert layout.dots  # 3000 x 2400 px: cells are farther apart than map pixels
    bx, by = layout.map_xy
    d = result.detail
    px = np.round((np.column_stack([d.l0_x, d.l0_y]) + 0.5) / np.asarray(layout.scale) - 0.5).astype(int)
    at = image[by + px[:, 1], bx + px[:, 0]]
    want = np.array(CLASS_COLOURS_RGB)[d.classes]
    assert np.mean(np.all(at == want, axis=1)) >= 0.9  # each dot has its cell's class colour (a few hidden)


def test_dense_cells_give_a_majority_map(scored):
    """Cells denser than map pixels: each pixel takes the commonest class of its cells."""
    _, _, result = scored
    d = result.detail
    n = 4000
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 10, n)  # all cells in one 10 x 10 px patch
    y = rng.uniform(0, 10, n)
    classes = np.where(x < 5, 3, 0).astype(np.int8)  # left half 3+, right half negative
    cells = d.cells.take(np.zeros(n, int))
    dense = replace(d, l0_x=x, l0_y=y, classes=classes, membership=np.ones((1, n), bool), cells=cells,
                    pigmented=None)
    canvas, dots = qc._class_map(dense, (30, 30), (1.0, 1.0))
    assert not dots
    assert tuple(canvas[5, 2]) == CLASS_COLOURS_RGB[3] and tuple(canvas[5, 8]) == CLASS_COLOURS_RGB[0]


def test_outputs_are_byte_identical(scored, tmp_path):
    path, _, result = scored
    runs = []
    for k in range(2):
        with open_slide(path) as slide:
            qc.write_slide_qc(tmp_path / f"run{k}" / "slide.png", result, slide, model_id="s100a9-brain-met")
            zooms = outputs.write_zooms(tmp_path / f"run{k}", result, slide, size_um=60)
        runs.append([p.read_bytes() for p in [tmp_path / f"run{k}" / "slide.png", *zooms]])
    assert len(runs[0]) == 1 + len(result.regions)
    assert runs[0] == runs[1]
    png = cv2.imdecode(np.frombuffer(runs[0][0], np.uint8), cv2.IMREAD_COLOR)
    assert png.shape[1] >= 1000 and max(png.shape[:2]) <= 2200


def test_odd_names_give_safe_unique_files(scored, tmp_path):
    path, _, result = scored
    odd = ("../x", "a/b", "a_b", "A_B", "Métastase ü 1", "..")
    regions = tuple(replace(result.regions[i % 2], name=name) for i, name in enumerate(odd))
    membership = result.detail.membership[np.arange(len(odd)) % 2]
    detail = replace(result.detail, membership=membership)
    renamed = replace(result, slide="../evil slide.svs", regions=regions, detail=detail)
    out = tmp_path / "qc"
    with open_slide(path) as slide:
        written = outputs.write_zooms(out, renamed, slide, n_per_region=1, size_um=60)
    names = [p.name for p in written]
    assert len(set(n.lower() for n in names)) == len(odd)
    assert all(p.parent == out and p.is_file() for p in written)
    assert all("/" not in n and "\\" not in n and not n.startswith(".") for n in names)
    assert sorted(p.name for p in tmp_path.rglob("*.webp")) == sorted(names)  # nothing written elsewhere
    assert "Métastase ü 1" in names[4]
    assert outputs.zoom_file_names("s.svs", ["r"], stem="../a/b") == ["_a_b-r-zoom.webp"]


def test_without_detail(scored, tmp_path):
    """A result reused from an earlier run has no cells: the slide picture still shows the regions; no zooms."""
    path, _, result = scored
    bare = replace(result, detail=None)
    with open_slide(path) as slide:
        qc.write_slide_qc(tmp_path / "bare.png", bare, slide)
        assert outputs.write_zooms(tmp_path, bare, slide) == []
    assert (tmp_path / "bare.png").stat().st_size > 1000

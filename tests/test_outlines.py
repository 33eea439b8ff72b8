"""Cell and nucleus outlines traced from label images with known shapes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from ihc_score.cells import CellOutlines, DetectionParams, expand_cells, trace_outlines
from ihc_score.cells.outlines import _trace
from outline_reference import trace_reference

#: Area a ring gains at each corner where it passes twice (two pixels joined at a corner only).
PINCH_AREA = 0.0025


def _polygons(xy: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    index = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    return shapely.polygons(shapely.linearrings(xy, indices=index))


def _disc(shape: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def test_a_square_follows_the_pixel_edges():
    labels = np.zeros((10, 12), np.int32)
    labels[2:5, 3:7] = 7  # rows 2-4, columns 3-6
    out = trace_outlines(labels, labels, np.array([7]))
    poly = Polygon(out.cell(0))
    assert poly.equals(Polygon([(2.5, 1.5), (6.5, 1.5), (6.5, 4.5), (2.5, 4.5)]))
    assert len(out.cell(0)) == 4 and np.array_equal(out.nucleus(0), out.cell(0))


@pytest.mark.parametrize("r", [1.5, 4.0, 7.3, 12.0])
def test_disc_area_equals_its_pixel_count_and_holds_its_centroid(r):
    mask = _disc((40, 40), 19.3, 20.6, r)
    labels = mask.astype(np.int32)
    poly = Polygon(trace_outlines(labels, labels, np.array([1])).cell(0))
    ys, xs = np.nonzero(mask)
    assert poly.is_valid
    assert poly.area == mask.sum()  # pixel edges: exactly the pixels' area
    assert poly.contains(shapely.Point(xs.mean(), ys.mean()))
    assert shapely.contains_xy(poly, xs, ys).all()  # every pixel centre inside
    # and nothing beyond the pixels: the outline lies within half a pixel (L-inf) of a pixel centre
    assert poly.difference(shapely.MultiPoint(np.c_[xs, ys]).buffer(0.5, cap_style="square")).area < 1e-9


def test_touching_labels_give_separate_polygons_that_share_edges():
    labels = np.zeros((30, 40), np.int32)
    labels[_disc(labels.shape, 12, 15, 8)] = 1
    labels[_disc(labels.shape, 24, 15, 8) & (labels == 0)] = 2
    labels[3:8, 18:30] = 3  # a square touching disc 2 from above
    out = trace_outlines(labels, labels, np.array([1, 2, 3]))
    polys = [Polygon(out.cell(k)) for k in range(3)]
    for k, p in enumerate(polys, start=1):
        assert p.is_valid and p.area == (labels == k).sum()
    for i in range(3):
        for j in range(i + 1, 3):
            assert polys[i].intersection(polys[j]).area == 0.0
    assert polys[0].touches(polys[1])
    assert shapely.union_all(polys).area == (labels > 0).sum()


def test_rows_follow_ids_and_a_nucleus_lies_in_its_cell():
    nuclei = np.zeros((40, 60), np.int32)
    centres = {5: (10, 10), 2: (30, 12), 9: (48, 28)}
    for k, (cx, cy) in centres.items():
        nuclei[_disc(nuclei.shape, cx, cy, 3)] = k
    cells = expand_cells(nuclei, mpp_um=0.5, params=DetectionParams(cell_expansion_um=3.0))
    ids = np.array([9, 5, 2])
    out = trace_outlines(nuclei, cells, ids)
    assert len(out) == 3
    for row, k in enumerate(ids):
        cx, cy = centres[int(k)]
        nucleus, cell = Polygon(out.nucleus(row)), Polygon(out.cell(row))
        assert nucleus.contains(shapely.Point(cx, cy)) and cell.contains(nucleus)
        assert nucleus.area == (nuclei == k).sum() and cell.area == (cells == k).sum()
    with pytest.raises(ValueError, match=r"ids \[4\] label no pixel"):
        trace_outlines(nuclei, cells, np.array([5, 4]))


def test_small_odd_and_edge_labels():
    labels = np.zeros((12, 12), np.int32)
    labels[0:3, 0:4] = 1  # touches the image border
    labels[8, 1], labels[9, 2], labels[10, 3] = 3, 3, 3  # diagonal line: pixels joined at corners only
    labels[4:11, 5:12] = 4  # a ring around label 2: the outline ignores the hole
    labels[6, 6] = 2  # one pixel: its square
    labels[0, 10], labels[1:3, 6:9] = 5, 5  # two pieces: the larger one is outlined
    out = trace_outlines(labels, labels, np.array([1, 2, 3, 4, 5]))
    polys = [Polygon(out.cell(k)) for k in range(5)]
    assert all(p.is_valid for p in polys)
    assert polys[0].equals(Polygon([(-0.5, -0.5), (3.5, -0.5), (3.5, 2.5), (-0.5, 2.5)]))
    assert polys[1].equals(Polygon([(5.5, 5.5), (6.5, 5.5), (6.5, 6.5), (5.5, 6.5)]))
    assert polys[2].area == pytest.approx(3.0, abs=2 * PINCH_AREA)
    assert polys[3].area == 7 * 7  # ring of 48 pixels plus its one-pixel hole
    assert polys[4].area == 6 and polys[4].bounds == (5.5, 0.5, 8.5, 2.5)


def test_realistic_tile_is_exact_valid_and_without_overlaps():
    rng = np.random.default_rng(3)
    size = 384
    g = np.arange(8, size, 16.0)
    cx, cy = (a.ravel() + rng.uniform(-4, 4, a.size) for a in np.meshgrid(g, g))
    yy, xx = np.mgrid[:size, :size]
    seeds = np.ones((size, size), np.uint8)
    seeds[np.clip(np.round(cy).astype(int), 0, size - 1), np.clip(np.round(cx).astype(int), 0, size - 1)] = 0
    dist, near = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    radius = rng.uniform(3.5, 7.5, near.max() + 1)
    nuclei = np.where(dist <= radius[near], near, 0).astype(np.int32)
    cells = expand_cells(nuclei, mpp_um=0.5, params=DetectionParams())
    ids = np.unique(nuclei)[1:]
    out = trace_outlines(nuclei, cells, ids)
    cell_polys = _polygons(out.cell_xy, out.cell_offsets)
    nucleus_polys = _polygons(out.nucleus_xy, out.nucleus_offsets)
    assert len(ids) > 400 and shapely.is_valid(cell_polys).all() and shapely.is_valid(nucleus_polys).all()
    cell_px = np.bincount(cells.ravel(), minlength=ids.max() + 1)[ids]
    nucleus_px = np.bincount(nuclei.ravel(), minlength=ids.max() + 1)[ids]
    assert np.abs(shapely.area(cell_polys) - cell_px).max() <= 4 * PINCH_AREA
    assert np.abs(shapely.area(nucleus_polys) - nucleus_px).max() <= 4 * PINCH_AREA
    assert (shapely.area(shapely.difference(nucleus_polys, cell_polys)) <= 4 * PINCH_AREA).all()
    pairs = shapely.STRtree(cell_polys).query(cell_polys, predicate="intersects")
    pairs = pairs[:, pairs[0] < pairs[1]]
    assert pairs.shape[1] > len(ids)  # the cells do touch
    overlap = shapely.area(shapely.intersection(cell_polys[pairs[0]], cell_polys[pairs[1]]))
    assert overlap.max() <= 2 * PINCH_AREA


def _speckled_labels(rng: np.random.Generator, shape: tuple[int, int], n: int, gaps: float) -> np.ndarray:
    """Blobs around random seeds, punched with random gaps: pieces, holes and corner-only joins."""
    seeds = np.zeros(shape, np.int32)
    seeds.ravel()[rng.choice(seeds.size, n, replace=False)] = np.arange(1, n + 1)
    free = (seeds == 0).view(np.uint8)
    dist, near = cv2.distanceTransformWithLabels(free, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    labels = np.concatenate([[0], seeds[seeds != 0]]).astype(np.int32)[near]
    labels[(dist > rng.uniform(2.0, 8.0)) | (rng.random(shape) < gaps)] = 0
    return labels


@pytest.mark.parametrize("seed", range(40))
def test_compiled_tracer_equals_findcontours_and_numpy(seed):
    """The kernel gives, bit for bit, what cv2.findContours and NumPy give (tests/outline_reference.py)."""
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 70, 2))
    if seed % 2:
        labels = _speckled_labels(rng, (h, w), int(rng.integers(1, min(h * w, 30) + 1)), rng.uniform(0.0, 0.3))
    else:  # a few labels scattered at random: many pieces of each, equal ones among them
        labels = (rng.integers(1, 6, (h, w)) * (rng.random((h, w)) < 0.6)).astype(np.int32)
    ids = np.unique(labels[labels > 0])
    if ids.size > 2:
        ids = ids[rng.random(ids.size) < 0.8]  # labels not asked for are left alone
    if ids.size == 0:
        pytest.skip("no label drawn")
    want_xy, want_off = trace_reference(labels, ids)
    got_xy, got_off = _trace(labels, ids, "labels")
    np.testing.assert_array_equal(got_off, want_off)
    np.testing.assert_array_equal(got_xy, want_xy)


@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_compiled_tracer_on_a_checkerboard_where_the_border_passes_each_pixel_four_times(n):
    yy, xx = np.mgrid[:n, :n]
    labels = ((yy + xx) % 2 == 0).astype(np.int32)  # pixels joined at their corners only
    labels[(yy % 4 == 1) & (xx % 4 == 1)] = 2  # and single pixels of another label among them
    ids = np.unique(labels[labels > 0]).astype(np.int64)
    want_xy, want_off = trace_reference(labels, ids)
    got_xy, got_off = _trace(labels, ids, "labels")
    np.testing.assert_array_equal(got_off, want_off)
    np.testing.assert_array_equal(got_xy, want_xy)


def test_compiled_tracer_equals_reference_on_a_tile_of_cells():
    rng = np.random.default_rng(8)
    nuclei = _speckled_labels(rng, (300, 260), 250, 0.02)
    cells = expand_cells(nuclei, mpp_um=0.5, params=DetectionParams())
    ids = np.unique(nuclei)[1:]
    for labels in (nuclei, cells):
        want_xy, want_off = trace_reference(labels, ids[::-1])  # any order of ids
        got_xy, got_off = _trace(labels, ids[::-1], "labels")
        np.testing.assert_array_equal(got_off, want_off)
        np.testing.assert_array_equal(got_xy, want_xy)
    again = trace_outlines(nuclei, cells, np.concatenate([ids[:3], ids[:3]]))  # repeated ids: the same rings again
    np.testing.assert_array_equal(again.cell_xy[: again.cell_offsets[3]], again.cell_xy[again.cell_offsets[3] :])
    with pytest.raises(ValueError, match="label no pixel"):
        trace_outlines(nuclei, cells, np.array([ids[0], ids.max() + 1]))


def test_cell_outlines_container():
    a = CellOutlines(
        np.array([[0, 0], [0, 1], [1, 1.0]]), np.array([0, 3]), np.array([[0, 0], [0, 2], [2, 2], [2, 0.0]]), np.array([0, 4])
    )
    b = CellOutlines(np.array([[5, 5], [5, 6], [6, 6.0]]), np.array([0, 3]), np.array([[4, 4], [4, 7], [7, 7.0]]), np.array([0, 3]))
    both = CellOutlines.concat([a, b])
    assert len(both) == 2 and np.array_equal(both.cell(1), b.cell(0)) and np.array_equal(both.nucleus(0), a.nucleus(0))
    picked = both.take(np.array([1, 0]))
    assert np.array_equal(picked.cell(0), b.cell(0)) and np.array_equal(picked.cell(1), a.cell(0))
    assert len(both.take(np.array([False, True]))) == 1 and len(CellOutlines.empty()) == 0
    assert len(CellOutlines.concat([])) == 0 and len(both.take(np.zeros(0, int))) == 0
    moved = a.transform(2.0, 10.0, -1.0)
    assert np.array_equal(moved.cell(0), [[10, -1], [10, 3], [14, 3], [14, -1]])
    with pytest.raises(ValueError, match="cell_offsets"):
        CellOutlines(a.nucleus_xy, a.nucleus_offsets, a.cell_xy, np.array([0, 5]))
    with pytest.raises(ValueError, match="rings"):
        CellOutlines(a.nucleus_xy, a.nucleus_offsets, both.cell_xy, both.cell_offsets)
    with pytest.raises(ValueError, match="scale"):
        a.transform(0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same shape|one shape"):
        trace_outlines(np.zeros((4, 4), np.int32), np.zeros((4, 5), np.int32), np.array([1]))

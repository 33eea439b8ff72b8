"""The compiled kernels give bit-identical results to the NumPy formulations they replace."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ihc_score.cells import _detection_kernels as D
from ihc_score.cells import _kernels as K
from ihc_score.cells import cell_pigment_fraction, expand_cells, measure_cells
from ihc_score.cells._nuclei import _EDGE_FRACTION, _block_max, _fill_small_holes, _trim


def _labels(rng: np.random.Generator, shape: tuple[int, int], n: int, fill: float) -> np.ndarray:
    """Blobs numbered 1..n on a zero background: random seeds grown by a distance transform."""
    seeds = np.zeros(shape, dtype=np.int32)
    seeds.ravel()[rng.choice(seeds.size, n, replace=False)] = np.arange(1, n + 1)
    dist, near = cv2.distanceTransformWithLabels((seeds == 0).view(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    lut = np.concatenate([[0], seeds[seeds != 0]]).astype(np.int32)
    labels = lut[near]
    labels[dist > fill] = 0
    return labels


def _measure_reference(nuclei, cells, hema, dab):
    """Sums and maxima as ``np.bincount`` and ``np.maximum.at`` give them."""
    shape = nuclei.shape
    nuc, cel = nuclei.ravel(), cells.ravel()
    n = int(max(nuc.max(), cel.max()))
    idx_n, idx_c = np.flatnonzero(nuc), np.flatnonzero(cel)
    lab_n, lab_c = nuc[idx_n].astype(np.intp), cel[idx_c].astype(np.intp)
    h, d = hema.reshape(-1), dab.reshape(-1)
    row, col = np.divmod(idx_n, shape[1])
    out = [np.bincount(lab_n, minlength=n + 1)[1:].astype(np.float64), np.bincount(lab_c, minlength=n + 1)[1:].astype(np.float64)]
    out += [np.bincount(lab_n, w, minlength=n + 1)[1:] for w in (col, row, h[idx_n], d[idx_n])]
    out.append(np.bincount(lab_c, d[idx_c], minlength=n + 1)[1:])
    cyto = nuc[idx_c] == 0
    maxima = np.full(2 * n + 1, -np.inf, dtype=np.float32)
    np.maximum.at(maxima, lab_n, d[idx_n].astype(np.float32))
    np.maximum.at(maxima, lab_c[cyto] + n, d[idx_c][cyto].astype(np.float32))
    return out + [maxima[1 : n + 1], maxima[n + 1 :]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_stats_equal_bincount_sums_and_grouped_maxima(seed):
    rng = np.random.default_rng(seed)
    nuclei = _labels(rng, (97, 131), 40, 3.0)
    cells = expand_cells(nuclei, mpp_um=0.5)
    cells[rng.random(cells.shape) < 0.02] = 0  # cells need not hold all of their nucleus here
    conc = rng.gamma(1.0, 0.3, size=(*nuclei.shape, 3)).astype(np.float32)
    n = int(cells.max())
    got = K.label_stats(nuclei.ravel(), cells.ravel(), conc[..., 0].reshape(-1), conc[..., 1].reshape(-1), nuclei.shape[1], n)
    want = _measure_reference(nuclei, cells, conc[..., 0], conc[..., 1])
    assert len(got) == 14  # the nucleus shape sums follow (tested below)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g[1:], w)
    table = measure_cells(nuclei, cells, conc[..., 0], conc[..., 1], mpp_um=0.5)
    np.testing.assert_array_equal(table.a_x, (want[2] / want[0]).astype(table.a_x.dtype))
    np.testing.assert_array_equal(table.dab_cell_mean, (want[6] / want[1]).astype(table.dab_cell_mean.dtype))


def test_negative_labels_are_refused():
    nuclei = np.zeros((4, 4), dtype=np.int32)
    nuclei[1, 1] = -3
    od = np.zeros((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=">= 0"):
        measure_cells(nuclei, np.abs(nuclei), od, od, mpp_um=0.5)


def test_scatter_max_is_numpy_maximum_at_nan_included():
    rng = np.random.default_rng(3)
    values = rng.normal(size=500).astype(np.float32)
    values[[7, 300]] = np.nan
    index = rng.integers(0, 60, 500)
    want = np.full(60, -np.inf, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        np.maximum.at(want, index, values)
    got = np.full(60, -np.inf, dtype=np.float32)
    D.scatter_max(got, index, values)
    np.testing.assert_array_equal(got, want)


def _trim_reference(labels, n_labels, image, min_area, max_area):
    from skimage.measure import label

    fg_idx = np.flatnonzero(labels)
    fg_label = labels.ravel()[fg_idx].astype(np.intp)
    value = image.ravel()[fg_idx]
    peak = np.zeros(n_labels, dtype=np.float32)
    np.maximum.at(peak, fg_label, value)
    lab = np.where(value >= np.float32(_EDGE_FRACTION) * peak[fg_label], fg_label, 0)
    # only the 8-connected piece of each label that holds its peak (first in raster order) stays
    cut = np.zeros(labels.shape, dtype=np.int64)
    cut.ravel()[fg_idx] = lab
    pieces = label(cut, background=0, connectivity=2).ravel()
    first_peak = {}
    for i, lb in zip(fg_idx, fg_label):
        if image.ravel()[i] == peak[lb] and lb not in first_peak:
            first_peak[lb] = i
    lab = np.where(pieces[fg_idx] == pieces[[first_peak[lb] for lb in fg_label]], lab, 0)
    area = np.bincount(lab, minlength=1)
    keep = (area >= min_area) & (area <= max_area)
    keep[0] = False
    lut = np.zeros(len(keep), dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    out = np.zeros(labels.shape, dtype=np.int32)
    out.ravel()[fg_idx] = lut[lab]
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_trim_cuts_filters_and_renumbers_as_numpy(seed):
    rng = np.random.default_rng(seed)
    labels = _labels(rng, (120, 90), 60, 5.0) * 3  # gaps in the numbering
    image = cv2.GaussianBlur(rng.random(labels.shape).astype(np.float32), (0, 0), 2.0)
    want = _trim_reference(labels, int(labels.max()) + 1, image, 12.0, 60.0)
    got = _trim(labels.copy(), int(labels.max()) + 1, image, 12.0, 60.0)
    assert 0 < got.max() < labels.max() // 3
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_trim_of_ragged_labels_keeps_the_peak_piece_as_numpy(seed):
    """Labels of many short runs (combs, diagonal chains, speckle): the most runs to join, 8-connected only."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((70, 90), dtype=np.int32)
    labels[5:65:2, 5:45] = 1  # a comb: rows joined only by its spine
    labels[5:65, 5] = 1
    yy, xx = np.mgrid[0:70, 0:90]
    labels[((xx + yy) % 3 == 0) & (xx >= 50)] = 2  # diagonal chains, 8-connected only
    speckle = (rng.random(labels.shape) < 0.5) & (yy >= 40) & (xx >= 50)
    labels[speckle] = 3
    image = rng.random(labels.shape).astype(np.float32) * 0.5 + 0.5  # every pixel above the cut but a few
    image[rng.random(labels.shape) < 0.05] = 0.1
    want = _trim_reference(labels, 4, image, 1.0, 1e6)
    got = _trim(labels.copy(), 4, image, 1.0, 1e6)
    np.testing.assert_array_equal(got, want)
    assert got.max() == 3


def test_trim_drops_a_piece_cut_off_from_the_peak():
    """A label whose pale bridge is cut keeps only the piece holding its peak; a neighbour is untouched."""
    labels = np.zeros((12, 30), dtype=np.int32)
    image = np.zeros((12, 30), dtype=np.float32)
    labels[2:8, 2:20] = 1
    image[2:8, 2:8], image[2:8, 8:12], image[2:8, 12:20] = 1.0, 0.1, 0.6   # peak, bridge, dark piece
    labels[2:8, 22:28], image[2:8, 22:28] = 2, 0.5
    want = _trim_reference(labels, 3, image, 1.0, 1000.0)
    got = _trim(labels.copy(), 3, image, 1.0, 1000.0)
    np.testing.assert_array_equal(got, want)
    assert (got == 1).sum() == 36 and (got == 2).sum() == 36 and not got[2:8, 8:20].any()


def test_trim_numbers_the_kept_nuclei_without_gaps_even_with_no_lower_area_limit():
    """A label given no pixel, or losing them all to the cut, takes no number, whatever the area limits."""
    labels = np.zeros((10, 20), dtype=np.int32)
    image = np.zeros((10, 20), dtype=np.float32)
    labels[1:4, 1:4], image[1:4, 1:4] = 1, 1.0
    labels[6:9, 1:4], image[6:9, 1:4] = 3, -1.0  # a negative peak: every pixel below its own cut
    labels[1:4, 10:14], image[1:4, 10:14] = 4, 0.5   # label 2 has no pixel
    got = _trim(labels.copy(), 5, image, 0.0, 1000.0)
    assert sorted(np.unique(got)) == [0, 1, 2]
    assert (got == 1).sum() == 9 and (got == 2).sum() == 12


def test_trim_refuses_labels_it_cannot_relabel_in_place():
    labels = np.ones((6, 8), dtype=np.int32)
    with pytest.raises(ValueError, match="C-contiguous"):
        _trim(labels[:, ::2], 2, np.ones((6, 4), dtype=np.float32), 1.0, 100.0)


@pytest.mark.parametrize("seed", [4, 5])
def test_small_holes_filled_as_labelled_components_and_border_rule(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((80, 70)) < 0.7
    background = (~mask).view(np.uint8)
    n, lab = cv2.connectedComponents(np.ascontiguousarray(background), connectivity=4, ltype=cv2.CV_32S)
    area = np.bincount(lab.ravel(), minlength=n)
    border = np.zeros(n, dtype=bool)
    for edge in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        border[edge] = True
    fill = ~border & (area <= 3)
    fill[0] = False
    assert fill.any() and (~border & (area > 3))[1:].any()  # holes filled and holes kept
    holes = (np.ascontiguousarray(background) * ~border[lab]).astype(np.uint8)
    out = np.zeros(mask.shape, dtype=bool)
    assert D.fill_holes(holes, out, 3.0) == int(fill.sum())
    np.testing.assert_array_equal(out, fill[lab])
    # the box of _fill_small_holes is the whole mask here: every small hole is filled, nothing else
    np.testing.assert_array_equal(_fill_small_holes(mask, 3.0), mask | fill[lab])


@pytest.mark.parametrize(("seed", "density", "min_groups"), [(0, 0.003, 0), (1, 0.02, 5), (2, 0.1, 5), (3, 0.3, 5), (4, 0.6, 1), (5, 0.9, 1)])
def test_marker_labels_number_groups_as_opencv(seed, density, min_groups):
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(3, 160, 2))  # odd and even sides
    peaks = (rng.random((h, w)) < density).astype(np.uint8)
    n, want = cv2.connectedComponents(peaks, connectivity=8, ltype=cv2.CV_32S)
    idx = np.flatnonzero(peaks)
    got_n, got = D.marker_labels(idx, w)
    assert got_n == n >= min_groups + 1
    np.testing.assert_array_equal(got, want.ravel()[idx])


def test_grow_labels_is_the_nearest_block_lookup_of_expand_cells():
    rng = np.random.default_rng(5)
    nuclei = _labels(rng, (101, 77), 25, 2.0)
    radius_px = 10.0
    half = _block_max(nuclei)
    dist, near = cv2.distanceTransformWithLabels((half == 0).view(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    want = np.take(np.concatenate([[0], half[half != 0]]).astype(np.int32), near)
    want[dist > (radius_px - 1.0) / 2.0] = 0
    want = cv2.resize(want, (2 * half.shape[1], 2 * half.shape[0]), interpolation=cv2.INTER_NEAREST)[:101, :77]
    np.copyto(want, nuclei, where=nuclei != 0)
    np.testing.assert_array_equal(expand_cells(nuclei, mpp_um=0.5), want)


def test_pigment_fraction_counts_as_bincount():
    rng = np.random.default_rng(6)
    cells = _labels(rng, (60, 60), 30, 4.0)
    mask = rng.random(cells.shape) < 0.3
    n = 20  # labels above n are ignored
    lab = cells.ravel()
    area = np.bincount(lab[(lab > 0) & (lab <= n)], minlength=n + 1)[1:]
    on = lab[mask.ravel()]
    pig = np.bincount(on[(on > 0) & (on <= n)], minlength=n + 1)[1:]
    want = np.where(area > 0, pig / np.maximum(area, 1), 0.0).astype(np.float32)
    np.testing.assert_array_equal(cell_pigment_fraction(cells, mask, n), want)


def test_kernels_work_where_no_cache_folder_is_writable():
    """A read-only install without a writable home: the kernels are compiled in the process, not cached."""
    import subprocess
    import sys

    code = """
import numpy as np
import numba.core.caching as caching

def refuse(self):
    raise PermissionError("read-only file system")

caching._CacheLocator.ensure_cache_path = refuse
from ihc_score.cells import _kernels
from ihc_score.cells.measure import measure_cells

assert type(_kernels.label_stats._cache).__name__ == "NullCache"
nuclei = np.zeros((6, 6), dtype=np.int32)
nuclei[1:3, 1:3] = 1
cells = nuclei.copy()
cells[1:4, 1:4] = 1
dab = np.full((6, 6), 0.5, dtype=np.float32)
t = measure_cells(nuclei, cells, dab, dab, mpp_um=0.5)
print(t.nucleus_area_um2[0], t.cell_area_um2[0], t.a_x[0])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1.0", "2.25", "1.5"]


def _one_nucleus_reference(mask, score, a, b, level, min_ratio):
    """:func:`ihc_score.cells._detection_kernels._one_nucleus` in NumPy: the segment's pixels, then on each
    side the steps perpendicular to it that stay in the level set, against the line between the ends."""
    h, w = score.shape
    (ay, ax), (by, bx) = divmod(a, w), divmod(b, w)
    ly, lx = by - ay, bx - ax
    n, d = max(abs(ly), abs(lx)), np.hypot(ly, lx)
    k = np.arange(n + 1)
    ys, xs = ay + (2 * k * ly + n) // (2 * n), ax + (2 * k * lx + n) // (2 * n)
    inside = mask & (score >= level)
    if not inside[ys, xs].all():
        return False
    ext = np.zeros((2, n + 1))
    steps = np.arange(1, n + 1)
    for side, (dy, dx) in enumerate([(lx / d, -ly / d), (-lx / d, ly / d)]):
        oy, ox = np.floor(steps * dy + 0.5).astype(int), np.floor(steps * dx + 0.5).astype(int)
        for i in range(n + 1):
            yy, xx = ys[i] + oy, xs[i] + ox
            ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            ok[ok] = inside[yy[ok], xx[ok]]
            ext[side, i] = n if ok.all() else np.argmin(ok)
    t = np.arange(1, n) / n
    line = (1.0 - t) * ext[:, :1] + t * ext[:, n:]
    return bool(np.all(ext[:, 1:n] + 0.5 >= min_ratio * (line + 0.5)))


@pytest.mark.parametrize("seed", [0, 1])
def test_one_nucleus_is_its_numpy_formulation_and_does_not_move_with_the_image(seed):
    rng = np.random.default_rng(seed)
    score = cv2.GaussianBlur(rng.random((70, 90), dtype=np.float32), (0, 0), 4.0)
    mask = score > np.quantile(score, 0.2)
    on = np.flatnonzero(mask)
    shifted_score = np.pad(score, ((3, 0), (5, 0)))
    shifted_mask = np.pad(mask, ((3, 0), (5, 0)))
    got = []
    for a, b in rng.choice(on, size=(300, 2)):
        if a == b:
            continue
        level = np.float32(rng.uniform(0.7, 1.0)) * min(score.flat[a], score.flat[b])
        ratio = rng.uniform(0.7, 1.0)
        want = _one_nucleus_reference(mask, score, int(a), int(b), level, ratio)
        assert D._one_nucleus(mask, score, a, b, level, ratio) == want
        ya, xa = divmod(int(a), 90)
        yb, xb = divmod(int(b), 90)
        a2, b2 = (ya + 3) * 95 + xa + 5, (yb + 3) * 95 + xb + 5
        assert D._one_nucleus(shifted_mask, shifted_score, a2, b2, level, ratio) == want
        got.append(want)
    assert 10 < sum(got) < len(got) - 10


@pytest.mark.parametrize("shape", [(64, 48), (63, 47), (1, 5)])
def test_block_levels_are_the_halved_minimum_and_the_nucleus_free_maximum(shape):
    from ihc_score.cells import _body_kernels
    from ihc_score.cells._background import _halve

    rng = np.random.default_rng(3)
    image = rng.normal(0.1, 0.2, shape).astype(np.float32)  # negative values too
    nuclei = (rng.random(shape) < 0.3).astype(np.int32) * rng.integers(1, 9, shape).astype(np.int32)
    low, high = _body_kernels.block_levels(image, nuclei)
    np.testing.assert_array_equal(low, _halve(image, cv2.min))
    np.testing.assert_array_equal(high, _halve(np.where(nuclei != 0, np.float32(0.0), image), cv2.max))


def test_nucleus_shape_sums_equal_numpy_sums_and_edges():
    rng = np.random.default_rng(5)
    nuclei = _labels(rng, (61, 77), 25, 3.0)
    hema = rng.gamma(1.0, 0.3, size=nuclei.shape).astype(np.float32)
    n = int(nuclei.max())
    got = K.label_stats(nuclei.ravel(), nuclei.ravel(), hema.ravel(), hema.ravel(), nuclei.shape[1], n)[9:]
    rows, cols = np.indices(nuclei.shape)
    padded = np.pad(nuclei, 1, constant_values=-1)
    inner = np.ones(nuclei.shape, bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        inner &= padded[1 + dy:1 + dy + nuclei.shape[0], 1 + dx:1 + dx + nuclei.shape[1]] == nuclei
    lab = nuclei.ravel()
    h = hema.astype(np.float64).ravel()
    want = [np.bincount(lab, weights=w, minlength=n + 1)[1:] for w in
            (h * h, (cols * cols).ravel(), (rows * rows).ravel(), (cols * rows).ravel(), (~inner).ravel() * 1.0)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g[1:], w, rtol=1e-12)


def test_shape_of_a_disc_and_of_a_bar():
    """Golden values: a disc is round and smooth; a 4 x 24 px bar is about 6 times as long as wide."""
    yy, xx = np.mgrid[0:60, 0:90]
    nuclei = np.zeros((60, 90), np.int32)
    nuclei[(yy - 30) ** 2 + (xx - 25) ** 2 <= 12 ** 2] = 1
    nuclei[28:32, 55:79] = 2
    od = np.full(nuclei.shape, 0.4, np.float32)
    od[nuclei == 1] = np.where((yy + xx)[nuclei == 1] % 2 == 0, 0.3, 0.5)  # a checkerboard: SD exactly 0.1
    t = measure_cells(nuclei, nuclei, od, od, mpp_um=0.5)
    assert t.nucleus_elongation[0] == pytest.approx(1.0, abs=0.02)
    assert t.nucleus_elongation[1] == pytest.approx(6.0, rel=0.01)  # sqrt((24^2 / 12) / (4^2 / 12))
    assert t.hematoxylin_od_sd[0] == pytest.approx(0.1, rel=0.01) and t.hematoxylin_od_sd[1] == pytest.approx(0.0)
    assert 0.85 <= t.nucleus_roughness[0] <= 1.0  # digital edge of a disc: 2 pi r px of about 0.9 ring
    assert t.nucleus_roughness[1] > 1.3           # a bar has far more edge than a disc of its area


@pytest.mark.parametrize("shape", [(64, 48), (101, 77), (1, 1), (3, 2)])
def test_block_max_is_the_largest_label_of_each_two_by_two_block(shape):
    rng = np.random.default_rng(11)
    labels = _labels(rng, shape, max(1, shape[0] * shape[1] // 200), 3.0)
    padded = np.pad(labels, ((0, shape[0] % 2), (0, shape[1] % 2)))
    want = np.maximum(np.maximum(padded[0::2, 0::2], padded[0::2, 1::2]),
                      np.maximum(padded[1::2, 0::2], padded[1::2, 1::2]))
    np.testing.assert_array_equal(D.block_max(labels), want)
    # a strided view (the box _grow cuts out of a tile) reads the same pixels
    wide = np.zeros((shape[0], shape[1] + 3), dtype=np.int32)
    wide[:, 1:-2] = labels
    np.testing.assert_array_equal(D.block_max(wide[:, 1:-2]), want)


def test_planning_a_slide_does_not_import_numba():
    """The main process plans slides and scores no tile (``ihc_score.cells.kernels``): it needs no compiled kernel."""
    import subprocess
    import sys
    from pathlib import Path

    slide = Path(__file__).resolve().parents[1] / "sample_slides" / "synthetic-positive.svs"
    code = f"""
import sys
from ihc_score.model import default_model
from ihc_score.run.plan import plan_slide

plan = plan_slide({str(slide)!r}, default_model())
assert plan.stains.source == "estimated", plan.stains
print("numba" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]

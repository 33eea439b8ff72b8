"""Compiled kernels of nucleus detection (:mod:`ihc_score.cells._nuclei`) and of cell growth.

Small holes, maxima, markers, the split of touching nuclei, the trim and
renumbering of nuclei, and the growth of cells
(:func:`ihc_score.cells.detect.expand_cells`): each in one to three
passes over the pixels, bit-identical to the NumPy and OpenCV formulations
they replaced (``tests/test_kernels.py``); compiled and cached as described
in :mod:`ihc_score.cells._kernels`, whose conventions they follow.
"""

from __future__ import annotations

import numpy as np

from ihc_score.cells._kernels import _jit, _maximum

__all__ = [
    "trim_labels",
    "fill_holes",
    "disk_maxima",
    "marker_labels",
    "scatter_max",
    "blob_markers",
    "split_labels",
    "grow_labels",
    "warm_up",
]


@_jit
def _keep_peak_pieces(labels: np.ndarray, at: np.ndarray) -> None:
    """Zero every pixel not 8-connected, through its own label, to the label's peak pixel ``at[label]``.

    Cutting an object at a fraction of its peak can leave pieces apart from
    it (on a dark neighbour, pigment): they are not the nucleus. Union-find
    over pixel indices in raster order; a parent never lies after its pixel.
    """
    h, w = labels.shape
    parent = np.arange(h * w, dtype=np.int64)
    for y in range(h):
        for x in range(w):
            lab = labels[y, x]
            if lab == 0:
                continue
            i = y * w + x
            for dy, dx in ((0, -1), (-1, -1), (-1, 0), (-1, 1)):
                yy, xx = y + dy, x + dx
                if yy >= 0 and 0 <= xx < w and labels[yy, xx] == lab:
                    a, b = _root(parent, i), _root(parent, yy * w + xx)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
    for y in range(h):
        for x in range(w):
            lab = labels[y, x]
            if lab != 0 and _root(parent, y * w + x) != _root(parent, at[lab]):
                labels[y, x] = 0


@_jit
def trim_labels(
    labels: np.ndarray, n_labels: int, image: np.ndarray, edge_fraction: np.float32, min_area: float, max_area: float
) -> None:
    """Cut objects at ``edge_fraction`` of their peak, keep the piece holding the peak and areas within limits,
    number 1..k (:func:`ihc_score.cells._nuclei._trim`).

    Relabels ``labels`` (2-D int32, 0..n_labels - 1) in place; the numbering
    follows the order of the labels given. ``edge_fraction`` is float32,
    the product with each peak of ``image`` is taken in float32.
    """
    h, w = labels.shape
    peak = np.zeros(n_labels, dtype=np.float32)
    at = np.full(n_labels, -1, dtype=np.int64)  # first pixel (raster order) holding each label's peak
    for y in range(h):
        for x in range(w):
            lab = labels[y, x]
            if lab < 0 or lab >= n_labels:
                raise ValueError("labels must be in 0..n_labels - 1")
            if lab != 0:
                v = image[y, x]
                if at[lab] < 0 or v > peak[lab] or v != v and peak[lab] == peak[lab]:
                    at[lab] = y * w + x
                peak[lab] = _maximum(peak[lab], v)
    for y in range(h):
        for x in range(w):
            lab = labels[y, x]
            if lab != 0 and not image[y, x] >= edge_fraction * peak[lab]:
                labels[y, x] = 0
    _keep_peak_pieces(labels, at)
    area = np.zeros(n_labels, dtype=np.intp)
    top = 0
    for y in range(h):
        for x in range(w):
            lab = labels[y, x]
            if lab != 0:
                area[lab] += 1
                top = max(top, lab)
    lut = np.zeros(n_labels, dtype=np.int32)
    k = 0
    for lab in range(1, top + 1):
        if area[lab] >= min_area and area[lab] <= max_area:
            k += 1
            lut[lab] = k
    for y in range(h):
        for x in range(w):
            labels[y, x] = lut[labels[y, x]]


@_jit
def fill_holes(holes: np.ndarray, out: np.ndarray, max_area: float) -> int:
    """Set ``out`` on the 4-connected components of ``holes == 1`` of at most ``max_area`` px.

    ``holes`` (2-D uint8) is 1 on hole pixels (the background left after the
    background reaching the border was flooded) and is overwritten (2 where
    visited). ``out`` (2-D bool, same shape) is set True on the small holes.
    Returns the number of holes filled.
    """
    h, w = holes.shape
    total = 0
    for y in range(h):
        for x in range(w):
            if holes[y, x] == 1:
                total += 1
    if total == 0:
        return 0
    stack = np.empty(total, dtype=np.intp)
    filled = 0
    for y in range(h):
        for x in range(w):
            if holes[y, x] != 1:
                continue
            holes[y, x] = 2
            stack[0] = y * w + x
            n, i = 1, 0
            while i < n:  # breadth first over the hole; its pixels end up in stack[:n]
                py, px = divmod(stack[i], w)
                i += 1
                if py > 0 and holes[py - 1, px] == 1:
                    holes[py - 1, px] = 2
                    stack[n] = stack[i - 1] - w
                    n += 1
                if py < h - 1 and holes[py + 1, px] == 1:
                    holes[py + 1, px] = 2
                    stack[n] = stack[i - 1] + w
                    n += 1
                if px > 0 and holes[py, px - 1] == 1:
                    holes[py, px - 1] = 2
                    stack[n] = stack[i - 1] - 1
                    n += 1
                if px < w - 1 and holes[py, px + 1] == 1:
                    holes[py, px + 1] = 2
                    stack[n] = stack[i - 1] + 1
                    n += 1
            if n <= max_area:
                for k in range(n):
                    out[stack[k] // w, stack[k] % w] = True
                filled += 1
    return filled


@_jit
def disk_maxima(cand: np.ndarray, score: np.ndarray, dys: np.ndarray, dxs: np.ndarray) -> np.ndarray:
    """Which pixels ``cand`` (raster indices) have ``score`` >= its value at every offset ``(dys[k], dxs[k])``.

    Offsets falling outside the image are ignored; a NaN on either side
    makes a pixel no maximum (as ``score >= np.maximum`` over the offsets
    would). Offsets nearest first end the test of most pixels early (see
    :func:`ihc_score.cells._nuclei._maxima`). Returns bool, shape of ``cand``.
    """
    h, w = score.shape
    peak = np.zeros(cand.size, dtype=np.bool_)
    for i in range(cand.size):
        y, x = divmod(cand[i], w)
        v = score[y, x]
        ok = v == v
        for k in range(dys.size):
            yy = y + dys[k]
            xx = x + dxs[k]
            if yy >= 0 and yy < h and xx >= 0 and xx < w and not v >= score[yy, xx]:
                ok = False
                break
        peak[i] = ok
    return peak


@_jit
def _root(parent: np.ndarray, a: int) -> int:
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@_jit
def marker_labels(idx: np.ndarray, width: int) -> tuple[int, np.ndarray]:
    """8-connected groups of the pixels ``idx`` (raster indices, increasing), numbered as OpenCV numbers them.

    ``cv2.connectedComponents(..., connectivity=8)`` scans 2 x 2 blocks (on
    even rows and columns) in raster order and numbers the components by
    the first block each reaches; two 8-connected components never share a
    block, so that order is the order of each group's first block. Only
    the given pixels are visited. Returns the number of labels (groups + 1,
    for the background) and each pixel's label (int32, 1..groups).
    """
    n = idx.size
    parent = np.arange(n)
    up = 0  # first pixel that may touch the row above the current one
    for i in range(n):
        p = idx[i]
        y, x = divmod(p, width)
        if x > 0 and i > 0 and idx[i - 1] == p - 1:
            a, b = _root(parent, i), _root(parent, i - 1)
            parent[max(a, b)] = min(a, b)
        if y > 0:
            lo = p - width - 1 if x > 0 else p - width
            hi = p - width + 1 if x < width - 1 else p - width
            while up < i and idx[up] < lo:
                up += 1
            k = up
            while k < i and idx[k] <= hi:
                a, b = _root(parent, i), _root(parent, k)
                parent[max(a, b)] = min(a, b)
                k += 1
    half_width = (width + 1) // 2
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    for i in range(n):
        y, x = divmod(idx[i], width)
        r = _root(parent, i)
        first[r] = min(first[r], (y // 2) * half_width + x // 2)
    roots = np.flatnonzero(parent == np.arange(n))
    label = np.zeros(n, dtype=np.int32)
    for rank, k in enumerate(np.argsort(first[roots])):
        label[roots[k]] = rank + 1
    out = np.empty(n, dtype=np.int32)
    for i in range(n):
        out[i] = label[_root(parent, i)]
    return roots.size + 1, out


@_jit
def scatter_max(out: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """``np.maximum.at(out, index, values)`` for 1-D ``out``."""
    for j in range(index.size):
        out[index[j]] = _maximum(out[index[j]], values[j])


@_jit
def blob_markers(
    comp: np.ndarray, comp_label: np.ndarray, n_markers: np.ndarray, near: np.ndarray, seeds: np.ndarray,
    score: np.ndarray, peak_value: np.ndarray, core_fraction: np.float32, labels: np.ndarray, core_half: np.ndarray,
    blocks: np.ndarray,
) -> None:
    """Label the blobs; in those to split, each pixel's nearest marker and the cores (:func:`ihc_score.cells._nuclei._partition_box`).

    Parameters
    ----------
    comp : 2-D int32
        Blob (connected component of the foreground) of every pixel, 0 = none.
    comp_label : 1-D int32
        Label of each blob's pixels.
    n_markers : 1-D int
        Markers in each blob; the pixels of a blob with two or more are split.
    near : 2-D int32
        Distance-transform labels on 2 x 2 blocks (even rows and columns):
        1-based index into the raster order of the seed blocks.
    seeds : 1-D int32
        Marker of each seed block, with 0 in front.
    score : 2-D float32
        The image the markers were found on.
    peak_value : 1-D float32
        Score of each marker's peak.
    core_fraction : float32
    labels : 2-D int32, zeros
        Set to the blob's label; a pixel to split is set to its nearest
        marker when in that marker's core (score at least ``core_fraction``
        of the marker's peak), else to -1.
    core_half : 2-D int32, zeros
        Set to the largest marker of the core pixels of each block.
    blocks : 2-D uint8, zeros
        Set to 1 on the blocks holding a pixel to split.
    """
    h, w = comp.shape
    for y in range(h):
        for x in range(w):
            c = comp[y, x]
            if c == 0:
                continue
            if n_markers[c] < 2:
                labels[y, x] = comp_label[c]
                continue
            by, bx = y // 2, x // 2
            blocks[by, bx] = 1
            mk = seeds[near[by, bx]]
            if score[y, x] >= core_fraction * peak_value[mk]:
                labels[y, x] = mk
                if mk > core_half[by, bx]:
                    core_half[by, bx] = mk
            else:
                labels[y, x] = -1


@_jit
def split_labels(
    comp: np.ndarray, n_markers: np.ndarray, near: np.ndarray, seeds: np.ndarray, marker_comp: np.ndarray,
    labels: np.ndarray,
) -> None:
    """Finish :func:`blob_markers`: a pixel to split outside a core takes its nearest core's marker, 0 when that is another blob's."""
    h, w = comp.shape
    for y in range(h):
        for x in range(w):
            c = comp[y, x]
            if c == 0 or n_markers[c] < 2:
                continue
            lab = labels[y, x]
            if lab < 0:
                lab = seeds[near[y // 2, x // 2]]
            if marker_comp[lab] != c:
                lab = 0
            labels[y, x] = lab


@_jit
def grow_labels(
    box: np.ndarray, near: np.ndarray, dist: np.ndarray, seeds: np.ndarray, max_dist: np.float32
) -> np.ndarray:
    """Cells from nuclei and the nearest-nucleus map at half resolution (:func:`ihc_score.cells.detect.expand_cells`).

    Each pixel of ``box`` (2-D int32 nucleus labels) keeps its nucleus, or
    takes the nucleus of its 2 x 2 block's nearest seed block when that
    lies within ``max_dist`` (half-resolution px, float32) of it, else 0.
    """
    h, w = box.shape
    out = np.empty((h, w), dtype=np.int32)
    for y in range(h):
        for x in range(w):
            lab = box[y, x]
            if lab == 0:
                by, bx = y // 2, x // 2
                if not dist[by, bx] > max_dist:
                    lab = seeds[near[by, bx]]
            out[y, x] = lab
    return out



def warm_up() -> None:
    """Load these kernels for the argument types detection passes them (:func:`ihc_score.cells.warm_up`)."""
    one = np.ones((2, 2), dtype=np.int32)
    zero = np.zeros((2, 2), dtype=np.int32)
    image = np.ones((2, 2), dtype=np.float32)
    trim_labels(one.copy(), 2, image, np.float32(0.5), 1.0, 9.0)
    fill_holes(np.ones((4, 4), dtype=np.uint8)[1:-1, 1:-1], np.zeros((2, 2), dtype=np.bool_), 1.0)
    disk_maxima(np.zeros(1, dtype=np.intp), image, np.zeros(1, dtype=np.intp), np.zeros(1, dtype=np.intp))
    marker_labels(np.zeros(1, dtype=np.intp), 2)
    scatter_max(np.zeros(2, dtype=np.float32), np.zeros(1, dtype=np.int32), np.ones(1, dtype=np.float32))
    scatter_max(np.zeros(2, dtype=np.int32), np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.int32))
    seeds = np.zeros(2, dtype=np.int32)
    n_markers = np.zeros(2, dtype=np.int64)
    blob_markers(zero, seeds, n_markers, zero, seeds, image, image.ravel(), np.float32(0.5), zero.copy(), zero.copy(),
                 np.zeros((2, 2), dtype=np.uint8))
    split_labels(zero, n_markers, zero, seeds, seeds, zero.copy())
    for box in (np.zeros((2, 3), dtype=np.int32)[:, :2], zero):
        grow_labels(box, zero, image, seeds, np.float32(1.0))

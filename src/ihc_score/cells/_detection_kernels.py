"""Compiled kernels of nucleus detection (:mod:`ihc_score.cells._nuclei`) and of cell growth.

Small holes, maxima, markers (and which are one nucleus), the split of
touching nuclei, and the growth of cells
(:func:`ihc_score.cells.detect.expand_cells`): each in one to three
passes over the pixels, bit-identical to the NumPy and OpenCV formulations
they replaced (``tests/test_kernels.py``); compiled and cached as described
in :mod:`ihc_score.cells._kernels`, whose conventions they follow.
"""

from __future__ import annotations

import numpy as np

from ihc_score.cells._kernels import _jit, _maximum

__all__ = [
    "fill_holes",
    "disk_maxima",
    "marker_labels",
    "scatter_max",
    "blob_markers",
    "split_labels",
    "grow_labels",
    "block_max",
    "warm_up",
]


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
    blocks: np.ndarray, mask: np.ndarray, at: np.ndarray, merge_level: float, merge_convexity: float,
) -> np.ndarray:
    """Label the blobs; in those to split, each pixel's nearest marker, the cores, and which markers are one nucleus
    (:func:`ihc_score.cells._nuclei._partition_box`).

    ``comp`` (2-D int32) is each pixel's blob (0 = none), ``comp_label`` each blob's label, ``n_markers`` its
    markers: the pixels of a blob with two or more are split. ``near`` (2-D int32, on 2 x 2 blocks on even rows
    and columns) is the 1-based index of each block's nearest seed block in raster order, ``seeds`` the marker
    of each seed block with 0 in front. ``score`` (2-D float32) is the image the markers were found on,
    ``peak_value`` each marker's peak score. Set, from zeros: ``labels`` (2-D int32) to the blob's label, a pixel
    to split to its nearest marker when in that marker's core (score at least ``core_fraction``, float32, of its
    peak), else to -1; ``core_half`` (int32 on blocks) to the largest marker of each block's core pixels;
    ``blocks`` (uint8) to 1 on the blocks holding a pixel to split.

    Returns, for each marker, the smallest marker it is one nucleus with (int32): the markers of neighbouring
    blocks to split are when the segment between their first pixels ``at`` (1-D int64, raster indices) passes
    :func:`_one_nucleus` on ``mask`` (2-D bool, so two blobs fail) at ``merge_level`` of the lower peak, with
    ``merge_convexity``. Each pair is decided alone: the order does not matter.
    """
    h, w = comp.shape
    parent = np.arange(peak_value.size, dtype=np.int32)
    seen = np.zeros((2, peak_value.size), dtype=np.int32)  # each marker's last neighbour on the left and above
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
    for by in range(blocks.shape[0]):
        for bx in range(blocks.shape[1]):
            mk = seeds[near[by, bx]]
            for k in range(2 if blocks[by, bx] else 0):  # the block on the left, above
                nb = seeds[near[by - k, bx - 1 + k]] if (by if k else bx) > 0 and blocks[by - k, bx - 1 + k] else mk
                if nb != mk and seen[k, mk] != nb:  # a boundary repeats: once a run
                    seen[k, mk] = nb
                    a, b, lo = _root(parent, mk), _root(parent, nb), min(peak_value[mk], peak_value[nb])
                    if a != b and _one_nucleus(mask, score, at[mk], at[nb], merge_level * lo, merge_convexity):
                        parent[max(a, b)] = min(a, b)
    for i in range(parent.size):
        parent[i] = _root(parent, i)
    return parent


@_jit
def _one_nucleus(mask: np.ndarray, score: np.ndarray, a: int, b: int, level: float, min_ratio: float) -> bool:
    """Whether the segment between pixels ``a`` and ``b`` (raster indices) lies in one convex piece of a level set.

    Every pixel of the segment must be on ``mask`` with ``score`` >= ``level``; on each side, those pixels' extent
    perpendicular to it (at most its length) must reach ``min_ratio`` of the straight line between its ends'.
    """
    ay, ax = divmod(a, score.shape[1])
    ly, lx = b // score.shape[1] - ay, b % score.shape[1] - ax
    n, d = max(abs(ly), abs(lx)), np.sqrt(ly * ly + lx * lx)
    for k in range(n + 1):  # a valley: most pairs of nuclei stop here
        y, x = ay + (2 * k * ly + n) // (2 * n), ax + (2 * k * lx + n) // (2 * n)
        if not mask[y, x] or not score[y, x] >= level:
            return False
    for dy, dx in ((lx / d, -ly / d), (-lx / d, ly / d)):
        end_a = _reach(mask, score, level, ay, ax, dy, dx, n)
        end_b = _reach(mask, score, level, ay + ly, ax + lx, dy, dx, n)
        for k in range(1, n):  # a waist below the straight line between the ends is a cut
            need = min_ratio * ((1.0 - k / n) * end_a + k / n * end_b + 0.5) - 0.5
            y, x = ay + (2 * k * ly + n) // (2 * n), ax + (2 * k * lx + n) // (2 * n)
            if _reach(mask, score, level, y, x, dy, dx, min(n, int(np.ceil(need)))) < need:
                return False
    return True


@_jit
def _reach(mask: np.ndarray, score: np.ndarray, level: float, y: int, x: int, dy: float, dx: float, cap: int) -> int:
    """Steps (at most ``cap``) from pixel (y, x) along (dy, dx) that stay on ``mask`` with ``score`` >= ``level``."""
    h, w = score.shape
    for k in range(cap):  # offsets rounded alone, so that a shifted image takes the same steps
        yy, xx = y + int(np.floor((k + 1) * dy + 0.5)), x + int(np.floor((k + 1) * dx + 0.5))
        if yy < 0 or yy >= h or xx < 0 or xx >= w or not mask[yy, xx] or not score[yy, xx] >= level:
            return k
    return max(cap, 0)


@_jit
def split_labels(
    comp: np.ndarray, n_markers: np.ndarray, near: np.ndarray, seeds: np.ndarray, marker_comp: np.ndarray,
    labels: np.ndarray, merged: np.ndarray,
) -> None:
    """Finish :func:`blob_markers`: a pixel to split outside a core takes its nearest core's marker, 0 when that is another blob's;
    a core pixel's marker becomes ``merged[marker]`` (the ``seeds`` are already so mapped)."""
    h, w = comp.shape
    for y in range(h):
        for x in range(w):
            c = comp[y, x]
            if c == 0 or n_markers[c] < 2:
                continue
            lab = labels[y, x]
            lab = seeds[near[y // 2, x // 2]] if lab < 0 else merged[lab]
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


@_jit
def block_max(labels: np.ndarray) -> np.ndarray:
    """Largest value of each 2 x 2 block (even rows and columns) of a non-negative int32 image, zero-padded.

    One pass in raster order, where four strided NumPy maxima read the
    image four times (:func:`ihc_score.cells._nuclei._block_max`).
    """
    h, w = labels.shape
    out = np.zeros(((h + 1) // 2, (w + 1) // 2), dtype=np.int32)
    for y in range(h):
        by = y >> 1
        for x in range(w):
            v = labels[y, x]
            if v > out[by, x >> 1]:
                out[by, x >> 1] = v
    return out


def warm_up() -> None:
    """Load these kernels for the argument types detection passes them (:func:`ihc_score.cells.warm_up`)."""
    zero = np.zeros((2, 2), dtype=np.int32)
    image = np.ones((2, 2), dtype=np.float32)
    fill_holes(np.ones((4, 4), dtype=np.uint8)[1:-1, 1:-1], np.zeros((2, 2), dtype=np.bool_), 1.0)
    disk_maxima(np.zeros(1, dtype=np.intp), image, np.zeros(1, dtype=np.intp), np.zeros(1, dtype=np.intp))
    marker_labels(np.zeros(1, dtype=np.intp), 2)
    scatter_max(np.zeros(2, dtype=np.float32), np.zeros(1, dtype=np.int32), np.ones(1, dtype=np.float32))
    scatter_max(np.zeros(2, dtype=np.int32), np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.int32))
    seeds = np.zeros(2, dtype=np.int32)
    n_markers = np.zeros(2, dtype=np.int64)
    merged = blob_markers(zero, seeds, n_markers, zero, seeds, image, image.ravel(), np.float32(0.5), zero.copy(),
                          zero.copy(), np.zeros((2, 2), dtype=np.uint8), image > 0, np.zeros(4, np.int64), 0.7, 0.85)
    split_labels(zero, n_markers, zero, seeds, seeds, zero.copy(), merged)
    for box in (np.zeros((2, 3), dtype=np.int32)[:, :2], zero):
        grow_labels(box, zero, image, seeds, np.float32(1.0))
        block_max(box)

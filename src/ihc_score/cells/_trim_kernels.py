"""Compiled trim of nuclei (:func:`ihc_score.cells._nuclei._trim`): the cut at a fraction of each object's
peak, the piece holding the peak, the area limits and the renumbering.

Bit-identical to the NumPy formulation it replaced (``tests/test_kernels.py``); compiled and cached as described in
:mod:`ihc_score.cells._kernels`, whose conventions it follows.
"""

from __future__ import annotations

import numpy as np

from ihc_score.cells._detection_kernels import _root
from ihc_score.cells._kernels import _jit, _maximum

__all__ = ["trim_labels", "warm_up"]


@_jit
def _peak_pieces(labels: np.ndarray, image: np.ndarray, peak: np.ndarray, level: np.ndarray, total: int,
                 area: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of kept pixels 8-connected, through their label's kept pixels, to the run holding the label's
    peak pixel; their pixels counted in ``area``.

    A pixel is kept when it has a label and is at or above its label's ``level``; a run is kept pixels of one
    label side by side in a row; a label's peak pixel is its first pixel (raster order) equal to its ``peak``.
    Cutting an object at a fraction of its peak can leave pieces apart from it (on a dark neighbour, pigment):
    they are not the nucleus. One raster pass finds the runs and joins each to the runs of the row above that
    touch it (overlap, or meet at a corner) and share its label, in a union-find over the runs (a run-based
    connected-component labelling: memory is read in order, where a flood from each peak jumps about). A label
    with no pixel equal to its peak (every value below 0, as the peak is taken from 0) or a NaN peak keeps
    nothing. ``total`` bounds the runs.

    Returns
    -------
    keep : ndarray, bool, (n_runs,)
    start : ndarray, int64, (n_runs,)
        Raster index of each run's first pixel.
    length : ndarray, int32, (n_runs,)
    """
    h, w = labels.shape
    parent = np.empty(total + 1, dtype=np.int32)
    run_label = np.empty(total + 1, dtype=np.int32)
    run_len = np.empty(total + 1, dtype=np.int32)
    run_start = np.empty(total + 1, dtype=np.int64)
    peak_run = np.full(peak.shape[0], -1, dtype=np.int32)
    # the runs of the row above and of this row: start, end (exclusive), label, number
    above = np.empty((w, 4), dtype=np.int32)
    here = np.empty((w, 4), dtype=np.int32)
    n_above = 0
    n = 0
    for y in range(h):
        n_here = 0
        j = 0  # first run above that can still touch a run starting at or after x
        x = 0
        while x < w:
            lab = labels[y, x]
            if lab == 0:
                x += 1
                continue
            lv = level[lab]
            if not image[y, x] >= lv:
                x += 1
                continue
            end = x
            holds_peak = False
            while end < w and labels[y, end] == lab and image[y, end] >= lv:
                holds_peak |= image[y, end] == peak[lab]
                end += 1
            parent[n], run_label[n], run_len[n], run_start[n] = n, lab, end - x, y * w + x
            if holds_peak and peak_run[lab] < 0:
                peak_run[lab] = n
            while j < n_above and above[j, 1] < x:  # ends before this run's left corner: touches no later run
                j += 1
            k = j
            while k < n_above and above[k, 0] <= end:  # starts at or before this run's right corner
                if above[k, 2] == lab:
                    a, b = _root(parent, above[k, 3]), _root(parent, n)
                    if a < b:
                        parent[b] = a
                    elif b < a:
                        parent[a] = b
                k += 1
            here[n_here, 0], here[n_here, 1], here[n_here, 2], here[n_here, 3] = x, end, lab, n
            n_here += 1
            n += 1
            x = end
        above, here = here, above
        n_above = n_here
    keep = np.zeros(n, dtype=np.bool_)
    for r in range(n):
        lab = run_label[r]
        if peak_run[lab] >= 0 and _root(parent, r) == _root(parent, peak_run[lab]):
            keep[r] = True
            area[lab] += run_len[r]
    return keep, run_start[:n], run_len[:n]


@_jit
def trim_labels(
    labels: np.ndarray, n_labels: int, image: np.ndarray, edge_fraction: np.float32, min_area: float, max_area: float
) -> None:
    """Cut objects at ``edge_fraction`` of their peak, keep the piece holding the peak and areas within limits,
    number 1..k (:func:`ihc_score.cells._nuclei._trim`).

    Relabels ``labels`` (2-D C-contiguous int32, 0..n_labels - 1) in place; the numbering follows the order of
    the labels given. ``edge_fraction`` is float32, the product with each peak of ``image`` is taken in
    float32. Two passes over the image (the peaks; the runs of kept pixels and their pieces), then the kept
    runs are written over a cleared image.
    """
    h, w = labels.shape
    peak = np.zeros(n_labels, dtype=np.float32)  # from 0, as np.maximum.at on zeros: a peak is never below 0
    total = 0
    for y in range(h):
        for x in range(w):
            lab = labels[y, x]
            if lab < 0 or lab >= n_labels:
                raise ValueError("labels must be in 0..n_labels - 1")
            if lab != 0:
                total += 1
                v = image[y, x]
                peak[lab] = _maximum(peak[lab], v)
    level = np.empty(n_labels, dtype=np.float32)
    for lab in range(n_labels):
        level[lab] = edge_fraction * peak[lab]
    area = np.zeros(n_labels, dtype=np.intp)
    keep, start, length = _peak_pieces(labels, image, peak, level, total, area)
    lut = np.zeros(n_labels, dtype=np.int32)
    k = 0
    for lab in range(1, n_labels):
        if area[lab] > 0 and area[lab] >= min_area and area[lab] <= max_area:
            k += 1
            lut[lab] = k
    flat = labels.reshape(-1)
    new = np.zeros(keep.shape[0], dtype=np.int32)
    for r in range(keep.shape[0]):
        if keep[r]:
            new[r] = lut[flat[start[r]]]
    flat[:] = 0
    for r in range(keep.shape[0]):
        if new[r] != 0:
            for i in range(start[r], start[r] + length[r]):
                flat[i] = new[r]


def warm_up() -> None:
    """Load these kernels for the argument types detection passes them (:func:`ihc_score.cells.warm_up`)."""
    trim_labels(np.ones((2, 2), dtype=np.int32), 2, np.ones((2, 2), dtype=np.float32), np.float32(0.5), 1.0, 9.0)

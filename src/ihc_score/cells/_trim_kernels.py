"""Compiled trim of nuclei (:func:`ihc_score.cells._nuclei._trim`): the cut at a fraction of each object's
peak, the piece holding the peak, the area limits and the renumbering.

Bit-identical to the NumPy formulation it replaced (``tests/test_kernels.py``); compiled and cached as described in
:mod:`ihc_score.cells._kernels`, whose conventions it follows.
"""

from __future__ import annotations

import numpy as np

from ihc_score.cells._kernels import _jit, _maximum

__all__ = ["trim_labels", "warm_up"]


@_jit
def _flood_from_peaks(labels: np.ndarray, image: np.ndarray, level: np.ndarray, at: np.ndarray, total: int,
                      area: np.ndarray) -> None:
    """Mark (negate) every pixel 8-connected to its label's peak pixel ``at[label]`` through pixels of its own
    label at or above the label's ``level`` (float32 ``image`` values); count them in ``area``.

    Cutting an object at a fraction of its peak can leave pieces apart from it (on a dark neighbour, pigment):
    they are not the nucleus. The cut is made by the flood itself: it enters only pixels at or above the level,
    and what it does not reach is dropped afterwards. A label whose peak pixel is below its own level (a NaN or
    negative peak) is not flooded. The flood takes a row's run of the label at once and queues one pixel of each
    run it touches in the rows above and below (a scan-line fill: about a third of the time of a pixel-by-pixel
    flood); it touches only pixels of the label (``total`` bounds them).
    """
    h, w = labels.shape
    # A pixel is queued for a run not yet taken, touched by one taken in the row beside it: once per pair of
    # touching runs. Between two rows the touching runs form a forest (disjoint intervals can make no cycle), so
    # there are fewer such pairs than runs, and at most 2 * total + 1 pixels are queued for one label.
    stack = np.empty(2 * total + 2, dtype=np.int64)
    for lab in range(1, at.shape[0]):
        start = at[lab]
        lv = level[lab]
        if start < 0 or not image[start // w, start % w] >= lv:
            continue
        stack[0], top = start, 1
        while top > 0:
            top -= 1
            y = stack[top] // w
            x = stack[top] - y * w
            if labels[y, x] != lab:  # queued twice, taken already
                continue
            left, right = x, x
            while left > 0 and labels[y, left - 1] == lab and image[y, left - 1] >= lv:
                left -= 1
            while right < w - 1 and labels[y, right + 1] == lab and image[y, right + 1] >= lv:
                right += 1
            for k in range(left, right + 1):  # a loop: a slice assignment here costs more than the fill
                labels[y, k] = -lab
            area[lab] += right - left + 1
            for ny in (y - 1, y + 1):
                if ny < 0 or ny >= h:
                    continue
                before = False
                for nx in range(max(left - 1, 0), min(right + 2, w)):  # 8-connected: one pixel past each end
                    on = labels[ny, nx] == lab and image[ny, nx] >= lv
                    if on and not before:
                        stack[top], top = ny * w + nx, top + 1
                    before = on


@_jit
def trim_labels(
    labels: np.ndarray, n_labels: int, image: np.ndarray, edge_fraction: np.float32, min_area: float, max_area: float
) -> None:
    """Cut objects at ``edge_fraction`` of their peak, keep the piece holding the peak and areas within limits,
    number 1..k (:func:`ihc_score.cells._nuclei._trim`).

    Relabels ``labels`` (2-D int32, 0..n_labels - 1) in place; the numbering follows the order of the labels
    given. ``edge_fraction`` is float32, the product with each peak of ``image`` is taken in float32. Two
    passes over the image and a flood over the kept pixels: the peaks, the flood from each (the cut, the piece
    and the area at once), and the renumbering.
    """
    h, w = labels.shape
    peak = np.zeros(n_labels, dtype=np.float32)
    at = np.full(n_labels, -1, dtype=np.int64)  # first pixel (raster order) holding each label's peak
    total = 0
    for y in range(h):
        for x in range(w):
            lab = labels[y, x]
            if lab < 0 or lab >= n_labels:
                raise ValueError("labels must be in 0..n_labels - 1")
            if lab != 0:
                total += 1
                v = image[y, x]
                if at[lab] < 0 or v > peak[lab] or v != v and peak[lab] == peak[lab]:
                    at[lab] = y * w + x
                peak[lab] = _maximum(peak[lab], v)
    level = np.empty(n_labels, dtype=np.float32)
    for lab in range(n_labels):
        level[lab] = edge_fraction * peak[lab]
    area = np.zeros(n_labels, dtype=np.intp)
    _flood_from_peaks(labels, image, level, at, total, area)
    lut = np.zeros(n_labels, dtype=np.int32)
    k = 0
    for lab in range(1, n_labels):
        if area[lab] > 0 and area[lab] >= min_area and area[lab] <= max_area:
            k += 1
            lut[lab] = k
    for y in range(h):
        for x in range(w):
            v = labels[y, x]
            labels[y, x] = lut[-v] if v < 0 else 0  # reached (negated): its new number; the rest 0


def warm_up() -> None:
    """Load these kernels for the argument types detection passes them (:func:`ihc_score.cells.warm_up`)."""
    trim_labels(np.ones((2, 2), dtype=np.int32), 2, np.ones((2, 2), dtype=np.float32), np.float32(0.5), 1.0, 9.0)

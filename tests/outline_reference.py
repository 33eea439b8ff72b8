"""The outline tracer as ``cv2.findContours`` and NumPy formulate it: the reference for its compiled kernel.

:func:`trace_reference` traces every border of every label with
``cv2.findContours`` (``RETR_FLOODFILL``), keeps each label's largest outer
border, and turns its chain of border-pixel centres into pixel-edge
vertices with array operations. :func:`ihc_score.cells.outlines.trace_outlines`
must give the same vertices, bit for bit.
"""

from __future__ import annotations

import cv2
import numpy as np

from ihc_score.cells.cell_outlines import UNITS_PER_PX, _take_rings
from ihc_score.cells.outlines import (
    _CORNER_DX,
    _CORNER_DY,
    _FIRST_EDGE,
    _LAST_EDGE,
    _N_EDGES,
    _PINCH_UNITS,
    _SIDE_DX,
    _SIDE_DY,
    _STEP_CODE,
)


def ring_neighbours(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the previous and next vertex of every vertex, within its ring."""
    total = int(offsets[-1])
    idx = np.arange(total, dtype=np.int64)
    starts, ends = offsets[:-1], offsets[1:]
    nonempty = ends > starts
    prev = idx - 1
    nxt = idx + 1
    prev[starts[nonempty]] = ends[nonempty] - 1
    nxt[ends[nonempty] - 1] = starts[nonempty]
    return prev, nxt


def trace_reference(labels: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-edge outline of the largest piece of each label in ``ids``, packed, int64 in 1 / UNITS_PER_PX px.

    Of pieces of equal size, the first in raster order (the first point of
    an outer border is its piece's first pixel).
    """
    contours, _ = cv2.findContours(labels, cv2.RETR_FLOODFILL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        raise ValueError("no label")
    counts = np.fromiter(map(len, contours), dtype=np.int64, count=len(contours))
    pts = np.concatenate(contours).reshape(-1, 2)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    starts = offsets[:-1]
    h, w = labels.shape
    first = pts[starts]
    inside = (first[:, 0] >= 0) & (first[:, 0] < w) & (first[:, 1] >= 0) & (first[:, 1] < h)
    lab = np.zeros(len(counts), dtype=np.int64)
    lab[inside] = labels[first[inside, 1], first[inside, 0]]
    candidate = np.flatnonzero(lab > 0)
    # A label traced more than once has holes or several pieces: keep its
    # outer boundaries (twice the signed shoelace area <= 0: the region on
    # their left, y down; a hole's is > 0) and of these the piece of most
    # pixels (Pick's theorem: enclosed area + border steps / 2 + 1).
    n_traced = np.bincount(lab[candidate])
    multi = candidate[n_traced[lab[candidate]] > 1]
    if multi.size:
        m_xy, m_off = _take_rings(pts, offsets, multi)
        _, nxt = ring_neighbours(m_off)
        x, y = m_xy[:, 0].astype(np.int64), m_xy[:, 1].astype(np.int64)
        area2 = np.add.reduceat(x * y[nxt] - x[nxt] * y, m_off[:-1])
        steps = np.add.reduceat(np.maximum(np.abs(x[nxt] - x), np.abs(y[nxt] - y)), m_off[:-1])
        score = np.zeros(len(counts), dtype=np.int64)
        score[multi] = np.where(area2 <= 0, steps - area2 + 2, -1)
        candidate = candidate[score[candidate] >= 0]
    else:
        score = np.zeros(len(counts), dtype=np.int64)
    # Per label: the piece of most pixels, then the first in raster order.
    start = np.zeros(len(counts), dtype=np.int64)
    start[inside] = first[inside, 1] * w + first[inside, 0]
    order = candidate[np.lexsort((start[candidate], -score[candidate], lab[candidate]))]
    labs_sorted = lab[order]
    first_of_label = np.ones(len(order), dtype=bool)
    first_of_label[1:] = labs_sorted[1:] != labs_sorted[:-1]
    best_lab, best = labs_sorted[first_of_label], order[first_of_label]
    pos = np.searchsorted(best_lab, ids)
    pos_c = np.minimum(pos, max(len(best_lab) - 1, 0))
    found = (pos < len(best_lab)) & (best_lab[pos_c] == ids) if len(best_lab) else np.zeros(len(ids), bool)
    if not found.all():
        raise ValueError("an id labels no pixel")
    ring_xy, ring_off = _take_rings(pts, offsets, best[pos_c])
    return to_pixel_edges(ring_xy, ring_off, labels)


def to_pixel_edges(pts: np.ndarray, offsets: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outlines along pixel edges from OpenCV contours through border-pixel centres.

    ``pts`` are outer contours traced with ``CHAIN_APPROX_NONE`` (unit steps,
    region on the left of the direction of travel) in ``labels``, packed by
    ``offsets``. Each border pixel contributes the corners at the start of
    its outline edges; the first is left out where the previous edge of the
    outline runs the same way (no turn there). Returns int64 vertices in
    1 / UNITS_PER_PX px, packed, one per turn of the outline.
    """
    x = pts[:, 0].astype(np.int64)
    y = pts[:, 1].astype(np.int64)
    prev, nxt = ring_neighbours(offsets)
    # ndarray.take throughout: several times faster than indexing with an array.
    d_out = _STEP_CODE.take((x.take(nxt) - x) * 3 + (y.take(nxt) - y) + 4)
    d_in = d_out.take(prev)
    combo = d_in * 8 + d_out  # 8 * 8 + 8 for a one-pixel ring: mapped to row 64 below
    combo[d_in == 8] = 64
    n_edges = _N_EDGES.take(combo)
    # The outline's previous edge belongs to the nearest earlier pixel with
    # edges: the previous pixel, except after a concave corner (pixels
    # without edges, a few in a row at most).
    before = prev.copy()
    todo = np.flatnonzero(n_edges.take(before) == 0)
    while todo.size:
        before[todo] = prev.take(before[todo])
        todo = todo[n_edges.take(before[todo]) == 0]
    skip = (_FIRST_EDGE.take(combo) == _LAST_EDGE.take(combo.take(before))) & (combo != 64)
    counts = n_edges - skip
    counts[n_edges == 0] = 0
    end = np.cumsum(counts)
    total = int(end[-1]) if len(end) else 0
    first_out = end - counts
    owner = np.repeat(np.arange(len(x)), counts)
    row = (combo * 5 + skip - first_out).take(owner) + np.arange(total)
    xy = np.empty((total, 2), dtype=np.int64)
    np.add(x.take(owner) * UNITS_PER_PX, _CORNER_DX.take(row), out=xy[:, 0])
    np.add(y.take(owner) * UNITS_PER_PX, _CORNER_DY.take(row), out=xy[:, 1])
    ring_end = np.zeros(len(offsets), dtype=np.int64)
    ring_end[1:] = end[offsets[1:] - 1]
    # A diagonal step whose left-hand 4-neighbour is outside too joins two
    # pixels at a corner only: the outline passes that corner twice; the
    # corner is the first one the step's next pixel contributes.
    h, w = labels.shape
    diag = np.flatnonzero(d_out & 1)
    side = d_out.take(diag)
    xd, yd = x.take(diag), y.take(diag)
    lx = xd + _SIDE_DX.take(side)
    ly = yd + _SIDE_DY.take(side)
    inside = (lx >= 0) & (lx < w) & (ly >= 0) & (ly < h)
    flat = labels.ravel()
    left_in = np.zeros(len(diag), dtype=bool)
    left_in[inside] = flat.take(ly[inside] * w + lx[inside]) == flat.take(yd[inside] * w + xd[inside])
    pinch_px = nxt.take(diag[~left_in])
    if pinch_px.size:
        pinch = np.zeros(total, dtype=bool)
        pinch[first_out.take(pinch_px)] = True
        xy, ring_end = chamfer(xy, ring_end, pinch)
    return xy, ring_end


def chamfer(xy: np.ndarray, offsets: np.ndarray, cut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace each vertex where ``cut`` by two, ``_PINCH_CUT`` px along its incoming and outgoing edges.

    ``xy``: int64 vertices in 1 / UNITS_PER_PX px (edges are axis-parallel,
    so each new vertex moves along one axis only).
    """
    prev, nxt = ring_neighbours(offsets)
    i = np.flatnonzero(cut)
    n_out = np.where(cut, 2, 1)
    end = np.cumsum(n_out)
    out = np.repeat(xy, n_out, axis=0)
    to_prev = np.sign(xy[prev[i]] - xy[i])
    to_next = np.sign(xy[nxt[i]] - xy[i])
    out[end[i] - 2] += _PINCH_UNITS * to_prev
    out[end[i] - 1] += _PINCH_UNITS * to_next
    return out, np.concatenate([[0], end])[offsets]

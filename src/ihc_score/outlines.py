"""Polygon outlines of labelled nuclei and cells: :func:`trace_outlines` and the classes that hold them.

Outlines are traced for a whole tile at once: one ``cv2.findContours`` call
per label image (``RETR_FLOODFILL`` on the int32 labels traces every
connected region of equal label on its own, so touching labels never merge
and nothing has to be cut apart), then vectorised numpy over all contour
points, with no Python code per cell.

Conventions
-----------
* Label images are int32, 0 = background; coordinates (x, y) = (column,
  row) with pixel centres at integers, as in :mod:`ihc_score.cells` (pixel
  ``(c, r)`` covers ``[c - 0.5, c + 0.5] x [r - 0.5, r + 0.5]``).
* An outline runs along pixel *edges* around the label's pixels (the
  convention of QuPath's and ImageJ's ROIs traced from labels), not through
  the centres of its border pixels: OpenCV traces the border pixels'
  centres, and each is replaced by the corners of its edges that face
  outside. The polygon holds exactly the label's pixels: its area is the
  pixel count, every pixel centre is inside, two touching labels share
  their common edges and never overlap, and a nucleus lies inside its cell.
* The only simplification is lossless: vertices are kept where the outline
  turns, none along straight runs (about 25 vertices per nucleus and 40 per
  cell of 5 um expansion at 0.5 um/px). Smoother, lossy outlines are left
  to the viewer.
* Each outline is the outer boundary of the label's largest piece
  (8-connected, most pixels, holes counted as inside): holes are not drawn
  and smaller pieces of a label split in several are left out. A one-pixel
  label is its pixel's square. Every id must label at least one pixel.
* Where two pixels of one label meet at a corner only, the outline passes
  that corner twice; each visit is cut by a 0.05 px chamfer, so the ring
  does not touch itself (a valid polygon). The chamfer adds a triangle of
  0.00125 px^2 of the neighbouring pixel, the only place an outline leaves
  its label's pixels.

The outlines are held by the classes of :mod:`ihc_score.cell_outlines`
(float64 vertices) and :mod:`ihc_score.traced_outlines` (small integers),
re-exported here.
"""

from __future__ import annotations

import cv2
import numpy as np

from .cell_outlines import _IDENTITY, UNITS_PER_PX, CellOutlines, _compact, _take_rings
from .traced_outlines import OutlineParts, Outlines, TracedOutlines

__all__ = ["CellOutlines", "OutlineParts", "Outlines", "TracedOutlines", "UNITS_PER_PX", "trace_outlines"]


def trace_outlines(nuclei: np.ndarray, cells: np.ndarray, ids: np.ndarray) -> TracedOutlines:
    """Outlines of the nuclei and cells with the given label ids.

    Parameters
    ----------
    nuclei, cells : ndarray, int32, shape (H, W)
        Label images (:func:`ihc_score.cells.detect_nuclei`,
        :func:`ihc_score.cells.expand_cells`); 0 = background.
    ids : ndarray of int
        Labels to outline; row ``k`` of the result is label ``ids[k]``
        (e.g. ``np.flatnonzero(keep) + 1`` for the kept rows of the
        :class:`~ihc_score.measure.CellTable` of these labels).

    Returns
    -------
    TracedOutlines
        Pixel-edge outlines in the label images' pixel frame (pixel centres
        at integers; identity frame), stored as integers; see the module
        documentation for the convention.

    Raises
    ------
    ValueError
        The images differ in shape, are not 2-D, or an id labels no pixel
        of one of them.
    """
    nuclei = np.ascontiguousarray(nuclei, dtype=np.int32)
    cells = np.ascontiguousarray(cells, dtype=np.int32)
    if nuclei.ndim != 2 or nuclei.shape != cells.shape:
        raise ValueError(
            f"nuclei and cells must be 2-D label images of one shape, got {nuclei.shape} and {cells.shape}"
        )
    ids = np.asarray(ids, dtype=np.int64).ravel()
    if ids.size == 0:
        return TracedOutlines.empty()
    n_q, n_off = _trace(nuclei, ids, "nuclei")
    c_q, c_off = _trace(cells, ids, "cells")
    return TracedOutlines(_compact(n_q), n_off, _compact(c_q), c_off, np.zeros(len(ids), np.int32), _IDENTITY[None])


def _ring_neighbours(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _trace(labels: np.ndarray, ids: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-edge outline of the largest piece of each label in ``ids``, packed, int64 in 1 / UNITS_PER_PX px."""
    contours, _ = cv2.findContours(labels, cv2.RETR_FLOODFILL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        raise ValueError(f"{what}: ids {ids[:5].tolist()} label no pixel")
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
        _, nxt = _ring_neighbours(m_off)
        x, y = m_xy[:, 0].astype(np.int64), m_xy[:, 1].astype(np.int64)
        area2 = np.add.reduceat(x * y[nxt] - x[nxt] * y, m_off[:-1])
        steps = np.add.reduceat(np.maximum(np.abs(x[nxt] - x), np.abs(y[nxt] - y)), m_off[:-1])
        score = np.zeros(len(counts), dtype=np.int64)
        score[multi] = np.where(area2 <= 0, steps - area2 + 2, -1)
        candidate = candidate[score[candidate] >= 0]
    else:
        score = np.zeros(len(counts), dtype=np.int64)
    # Per label: the piece of most pixels, then the first traced.
    order = candidate[np.lexsort((candidate, -score[candidate], lab[candidate]))]
    labs_sorted = lab[order]
    first_of_label = np.ones(len(order), dtype=bool)
    first_of_label[1:] = labs_sorted[1:] != labs_sorted[:-1]
    best_lab, best = labs_sorted[first_of_label], order[first_of_label]
    pos = np.searchsorted(best_lab, ids)
    pos_c = np.minimum(pos, max(len(best_lab) - 1, 0))
    found = (pos < len(best_lab)) & (best_lab[pos_c] == ids) if len(best_lab) else np.zeros(len(ids), bool)
    if not found.all():
        raise ValueError(f"{what}: ids {ids[~found][:5].tolist()} label no pixel")
    ring_xy, ring_off = _take_rings(pts, offsets, best[pos_c])
    return _to_pixel_edges(ring_xy, ring_off, labels)


#: Chain-code directions (x, y), y down: code d is at 45 * d degrees, clockwise on screen.
_DIRECTIONS = np.array([(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)], dtype=np.int64)
#: Code of the step (dx, dy), indexed by ``3 dx + dy + 4``; 8 = no step (a one-pixel ring).
_STEP_CODE = np.full(9, 8, dtype=np.int64)
_STEP_CODE[3 * _DIRECTIONS[:, 0] + _DIRECTIONS[:, 1] + 4] = np.arange(8)


def _corner_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel edges an outline runs along at a border pixel, by arriving and leaving direction.

    The contour keeps the region on its left; the neighbours strictly between
    the previous pixel (direction ``d_in + 4``) and the next (``d_out``),
    swept through the right-hand side, are outside. Each 4-neighbour ``e``
    among them is an edge of the pixel on the outline, run from corner
    ``e + 1`` to corner ``e - 1``. Row ``8 * 8`` is a one-pixel ring.

    Returns
    -------
    n_edges, first_edge, last_edge : ndarray, shape (65,)
        Number of edges, and the direction the first and last face (-1 if none).
    corner_dx, corner_dy : ndarray, int64, shape (65 * 5,)
        Corners (1 / UNITS_PER_PX px from the pixel centre) at the start of
        each edge, rows padded to 5.
    """
    half = UNITS_PER_PX // 2
    n_edges = np.zeros(65, dtype=np.int64)
    first = np.full(65, -1, dtype=np.int64)
    last = np.full(65, -1, dtype=np.int64)
    corners = np.zeros((65, 5, 2), dtype=np.int64)
    for d_in in range(8):
        for d_out in range(8):
            row = d_in * 8 + d_out
            sweep = [(d_in + 3 - k) % 8 for k in range((d_in + 3 - d_out) % 8)]
            edges = [e for e in sweep if e % 2 == 0]
            n_edges[row] = len(edges)
            if edges:
                first[row], last[row] = edges[0], edges[-1]
            for j, e in enumerate(edges):
                corners[row, j] = half * _DIRECTIONS[(e + 1) % 8]
    n_edges[64], first[64], last[64] = 4, 4, 6
    corners[64, :4] = half * _DIRECTIONS[[5, 3, 1, 7]]
    return n_edges, first, last, corners[..., 0].ravel(), corners[..., 1].ravel()


_N_EDGES, _FIRST_EDGE, _LAST_EDGE, _CORNER_DX, _CORNER_DY = _corner_table()
#: Offset (x, y) of the left-hand 4-neighbour of a step, by the step's code (direction code - 1).
_SIDE_DX = np.roll(_DIRECTIONS[:, 0], 1)
_SIDE_DY = np.roll(_DIRECTIONS[:, 1], 1)

#: An outline that passes a pixel corner twice (two pixels of the label
#: joined at that corner only) would touch itself: each visit is cut by a
#: chamfer this far (px) along its two edges, so the ring stays a valid
#: polygon; it then takes in a triangle of 0.00125 px^2 of each pixel
#: beside the corner.
_PINCH_CUT = 0.05
#: :data:`_PINCH_CUT` in 1 / UNITS_PER_PX px.
_PINCH_UNITS = round(_PINCH_CUT * UNITS_PER_PX)


def _to_pixel_edges(pts: np.ndarray, offsets: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    prev, nxt = _ring_neighbours(offsets)
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
        xy, ring_end = _chamfer(xy, ring_end, pinch)
    return xy, ring_end


def _chamfer(xy: np.ndarray, offsets: np.ndarray, cut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace each vertex where ``cut`` by two, ``_PINCH_CUT`` px along its incoming and outgoing edges.

    ``xy``: int64 vertices in 1 / UNITS_PER_PX px (edges are axis-parallel,
    so each new vertex moves along one axis only).
    """
    prev, nxt = _ring_neighbours(offsets)
    i = np.flatnonzero(cut)
    n_out = np.where(cut, 2, 1)
    end = np.cumsum(n_out)
    out = np.repeat(xy, n_out, axis=0)
    to_prev = np.sign(xy[prev[i]] - xy[i])
    to_next = np.sign(xy[nxt[i]] - xy[i])
    out[end[i] - 2] += _PINCH_UNITS * to_prev
    out[end[i] - 1] += _PINCH_UNITS * to_next
    return out, np.concatenate([[0], end])[offsets]

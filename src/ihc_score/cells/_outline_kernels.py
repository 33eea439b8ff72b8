"""Compiled tracing of label outlines along pixel edges, for :func:`ihc_score.cells.outlines.trace_outlines`.

One scan of the label image finds where the border of each wanted label's
pieces starts and follows it, as OpenCV's ``findContours`` does (Suzuki and
Abe's border following, ``icvFetchContourEx_32s`` in its source): the same
chain of border pixels, in the same order, from the same first pixel. It
visits only the labels asked for, never the background's borders, and
turns the chain of each label's kept piece into pixel-edge vertices one
ring at a time, where ``findContours`` traced every border twice (once
from each side) and NumPy then made a dozen passes over all their points.

Conventions
-----------
* Labels are int32, 0 = background, pixel ``(x, y)`` = ``labels[y, x]``;
  outside the image counts as another label.
* Neighbour codes as OpenCV numbers them: code ``k`` points at ``45 k``
  degrees counter-clockwise on screen from the right (y down).
* A label's pieces are its 8-connected components. Each piece's outer
  border starts at its first pixel in raster order. The piece kept is the
  one of most pixels, holes counted as inside (Pick's theorem on the
  chain), then the first in raster order.
"""

from __future__ import annotations

import numpy as np

from ihc_score.cells._kernels import _jit

__all__ = ["trace_labels"]

#: Neighbour code k -> (dx, dy), y down (OpenCV's ``icvCodeDeltas``).
_DX = np.array([1, 1, 0, -1, -1, -1, 0, 1], dtype=np.int64)
_DY = np.array([0, -1, -1, -1, 0, 1, 1, 1], dtype=np.int64)
#: Marks of border pixels (Suzuki and Abe's positive and negative NBD).
_SEEN = 1
_RIGHT = 2


@_jit
def _same(labels: np.ndarray, y: int, x: int, lab: int) -> bool:
    h, w = labels.shape
    return y >= 0 and y < h and x >= 0 and x < w and labels[y, x] == lab


@_jit
def _follow(
    labels: np.ndarray, marks: np.ndarray, y0: int, x0: int, hole: bool,
    chain_x: np.ndarray, chain_y: np.ndarray, at: int, room: int,
) -> tuple[int, int]:
    """Follow the border that starts at ``(x0, y0)``, marking its pixels in ``marks``.

    The outer border of a piece (``hole`` False: its first pixel in raster
    order) or the border of a hole (``hole`` True: the pixel left of the
    hole's first pixel). Writes the chain of border pixels into ``chain_x``,
    ``chain_y`` from ``at``, its first ``room`` pixels at most (0 to only
    mark). Returns the chain's length and twice its signed area (shoelace).
    """
    lab = labels[y0, x0]
    s = 0 if hole else 4
    s_end = s
    while True:  # the last pixel of the chain: clockwise from the start direction
        s = (s - 1) & 7
        if _same(labels, y0 + _DY[s], x0 + _DX[s], lab) or s == s_end:
            break
    if s == s_end and not _same(labels, y0 + _DY[s], x0 + _DX[s], lab):
        marks[y0, x0] = _RIGHT  # a single pixel
        if room > 0:
            chain_x[at], chain_y[at] = x0, y0
        return 1, 0
    y1, x1 = y0 + _DY[s], x0 + _DX[s]
    y3, x3 = y0, x0
    n = 0
    area2 = 0
    while True:
        s_end = s
        while True:  # the next pixel: counter-clockwise from the one after the previous
            s += 1
            y4, x4 = y3 + _DY[s & 7], x3 + _DX[s & 7]
            if _same(labels, y4, x4, lab):
                break
        s &= 7
        if s - 1 >= 0 and s - 1 < s_end:  # the search passed the right-hand neighbour: another label
            marks[y3, x3] = _RIGHT
        elif marks[y3, x3] == 0:
            marks[y3, x3] = _SEEN
        if n < room:
            chain_x[at + n], chain_y[at + n] = x3, y3
        n += 1
        area2 += x3 * y4 - x4 * y3
        if y4 == y0 and x4 == x0 and y3 == y1 and x3 == x1:
            return n, area2
        y3, x3 = y4, x4
        s = (s + 4) & 7


@_jit
def _pieces(labels: np.ndarray, row_of: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Border chain of the kept piece of each wanted label.

    ``row_of[label]`` is the label's row in the result, -1 for a label not
    wanted. Returns the chains' pixels (x, y, packed), and per row where its
    chain starts in them and its length (0 when the label has no pixel).
    """
    h, w = labels.shape
    n_rows = 0
    for lab in range(row_of.size):
        n_rows = max(n_rows, row_of[lab] + 1)
    start = np.zeros(n_rows, dtype=np.int64)
    length = np.zeros(n_rows, dtype=np.int64)
    score = np.full(n_rows, -1, dtype=np.int64)  # the kept piece's pixels, holes included, doubled
    marks = np.zeros((h, w), dtype=np.uint8)
    # A border passes a pixel once for each arc of other labels around it,
    # four times at most: the chains fit in 4 h w (untouched pages cost no memory).
    chain_x = np.empty(4 * h * w + 1, dtype=np.int64)
    chain_y = np.empty(chain_x.size, dtype=np.int64)
    used = 0
    for y in range(h):
        row = labels[y]
        for x in range(w):
            lab = row[x]
            if lab <= 0:
                continue
            left = x == 0 or row[x - 1] != lab
            right = x == w - 1 or row[x + 1] != lab
            if not (left or right) or lab >= row_of.size or row_of[lab] < 0:  # borders start beside another label
                continue
            outer = left and marks[y, x] == 0  # a new piece
            if not (outer or (right and marks[y, x] != _RIGHT)):  # nor a hole, followed only to mark its border
                continue
            # one call for both kinds of border: Numba compiles (and inlines) a call site at a time
            room = chain_x.size - used if outer else 0
            n, area2 = _follow(labels, marks, y, x, not outer, chain_x, chain_y, used, room)
            if not outer:
                continue
            if used + n > chain_x.size:
                raise ValueError("a border longer than four times the pixels")
            k = row_of[lab]
            pixels2 = (n if n > 1 else 0) - area2 + 2  # pixels, holes included (Pick), doubled
            if pixels2 > score[k]:
                score[k], start[k], length[k] = pixels2, used, n
            used += n
    return chain_x, chain_y, start, length


@_jit
def _edges(
    labels: np.ndarray, cx: np.ndarray, cy: np.ndarray, out: np.ndarray, at: int,
    tables: tuple[np.ndarray, ...], units: int, pinch_units: int, scratch: np.ndarray,
) -> int:
    """Pixel-edge vertices of one chain, written from ``out[at]`` (``to_pixel_edges`` of ``tests/outline_reference.py``, one ring).

    ``cx``, ``cy`` are the chain's pixels; ``scratch`` is int64, shape (7,
    at least 4 times the chain's length). Returns the index after the last
    vertex written.
    """
    n = cx.size
    step_code, n_edges, first_edge, last_edge, corner_dx, corner_dy, side_dx, side_dy = tables
    d_out, combo, skip, first_out, vx, vy, pinch = (
        scratch[0], scratch[1], scratch[2], scratch[3], scratch[4], scratch[5], scratch[6]
    )
    for k in range(n):
        j = k + 1 if k + 1 < n else 0
        d_out[k] = step_code[(cx[j] - cx[k]) * 3 + (cy[j] - cy[k]) + 4]
    for k in range(n):
        d_in = d_out[k - 1 if k > 0 else n - 1]
        combo[k] = 64 if d_in == 8 else d_in * 8 + d_out[k]
    m = 0
    for k in range(n):
        ne = n_edges[combo[k]]
        skip[k] = 0
        if ne > 0:
            b = k - 1 if k > 0 else n - 1  # the nearest earlier pixel with edges
            while n_edges[combo[b]] == 0:
                b = b - 1 if b > 0 else n - 1
            if combo[k] != 64 and first_edge[combo[k]] == last_edge[combo[b]]:
                skip[k] = 1  # no turn where the previous edge runs the same way
        first_out[k] = m
        for j in range(ne - skip[k]):
            row = combo[k] * 5 + skip[k] + j
            vx[m] = cx[k] * units + corner_dx[row]
            vy[m] = cy[k] * units + corner_dy[row]
            pinch[m] = 0
            m += 1
    # A diagonal step whose left-hand 4-neighbour is another label joins two
    # pixels at a corner only: that corner, the first the next pixel gives,
    # is cut by a chamfer.
    h, w = labels.shape
    lab = labels[cy[0], cx[0]]
    for k in range(n):
        d = d_out[k]
        if d & 1 and d != 8:
            lx, ly = cx[k] + side_dx[d], cy[k] + side_dy[d]
            if not (lx >= 0 and lx < w and ly >= 0 and ly < h and labels[ly, lx] == lab):
                i = first_out[k + 1 if k + 1 < n else 0]
                if i < m:
                    pinch[i] = 1
    for i in range(m):
        if pinch[i] == 0:
            out[at, 0], out[at, 1] = vx[i], vy[i]
            at += 1
            continue
        p = i - 1 if i > 0 else m - 1
        q = i + 1 if i + 1 < m else 0
        out[at, 0] = vx[i] + pinch_units * np.sign(vx[p] - vx[i])
        out[at, 1] = vy[i] + pinch_units * np.sign(vy[p] - vy[i])
        out[at + 1, 0] = vx[i] + pinch_units * np.sign(vx[q] - vx[i])
        out[at + 1, 1] = vy[i] + pinch_units * np.sign(vy[q] - vy[i])
        at += 2
    return at


@_jit
def trace_labels(
    labels: np.ndarray, ids: np.ndarray, tables: tuple[np.ndarray, ...], units: int, pinch_units: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pixel-edge outline of the kept piece of each label ``ids[k]`` (:func:`ihc_score.cells.outlines._trace`).

    Returns the vertices (int64, (total, 2), 1 / ``units`` px, pixel
    centres at integers), the ring offsets (int64, ``len(ids) + 1``) and the
    first id that labels no pixel (-1 when all do; the outlines are then
    incomplete). ``ids`` must be > 0 and distinct.
    """
    top = 0
    for lab in ids:
        top = max(top, lab)
    row_of = np.full(top + 1, -1, dtype=np.int64)
    for k in range(ids.size):
        row_of[ids[k]] = k
    chain_x, chain_y, start, length = _pieces(labels, row_of)
    offsets = np.zeros(ids.size + 1, dtype=np.int64)
    total = 0
    longest = 1
    for k in range(ids.size):
        if length[k] == 0:
            return np.zeros((0, 2), dtype=np.int64), offsets, ids[k]
        total += length[k]
        longest = max(longest, length[k])
    # Each chain pixel gives at most 4 corners, and a corner cut in two one more.
    out = np.empty((5 * total, 2), dtype=np.int64)
    scratch = np.empty((7, 4 * longest), dtype=np.int64)
    at = 0
    for k in range(ids.size):
        i, n = start[k], length[k]
        at = _edges(labels, chain_x[i : i + n], chain_y[i : i + n], out, at, tables, units, pinch_units, scratch)
        offsets[k + 1] = at
    return out[:at].copy(), offsets, -1


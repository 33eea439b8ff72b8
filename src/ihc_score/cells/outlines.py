"""Polygon outlines of labelled nuclei and cells: :func:`trace_outlines` and the classes that hold them.

Outlines are traced for a whole tile at once, by one compiled scan of each
label image (:mod:`ihc_score.cells._outline_kernels`): it follows the border of
every piece of the labels asked for exactly as ``cv2.findContours``
(``RETR_FLOODFILL``, ``CHAIN_APPROX_NONE``) traces it, through the centres
of the border pixels, and turns the chain of each label's kept piece into
pixel-edge vertices. Each label is traced on its own, so touching labels
never merge and nothing has to be cut apart; no Python code runs per cell.

Conventions
-----------
* Label images are int32, 0 = background; coordinates (x, y) = (column,
  row) with pixel centres at integers, as in :mod:`ihc_score.cells.detect` (pixel
  ``(c, r)`` covers ``[c - 0.5, c + 0.5] x [r - 0.5, r + 0.5]``).
* An outline runs along pixel *edges* around the label's pixels (the
  convention of QuPath's and ImageJ's ROIs traced from labels), not through
  the centres of its border pixels: each border pixel of the traced chain
  is replaced by the corners of its edges that face outside. The polygon
  holds exactly the label's pixels: its area is the pixel count, every
  pixel centre is inside, two touching labels share their common edges and
  never overlap, and a nucleus lies inside its cell.
* The only simplification is lossless: vertices are kept where the outline
  turns, none along straight runs (about 25 vertices per nucleus and 40 per
  cell of 5 um expansion at 0.5 um/px). Smoother, lossy outlines are left
  to the viewer.
* Each outline is the outer boundary of the label's largest piece
  (8-connected, most pixels, holes counted as inside; of equal pieces, the
  first in raster order): holes are not drawn and smaller pieces of a
  label split in several are left out. A one-pixel label is its pixel's
  square. Every id must label at least one pixel.
* Where two pixels of one label meet at a corner only, the outline passes
  that corner twice; each visit is cut by a 0.05 px chamfer, so the ring
  does not touch itself (a valid polygon). The chamfer adds a triangle of
  0.00125 px^2 of the neighbouring pixel, the only place an outline leaves
  its label's pixels.

The outlines are held by the classes of :mod:`ihc_score.cells.cell_outlines`
(float64 vertices) and :mod:`ihc_score.cells.traced_outlines` (small integers),
both offered by :mod:`ihc_score.cells`.
"""

from __future__ import annotations

import numpy as np

from ihc_score.cells.cell_outlines import _IDENTITY, UNITS_PER_PX, _compact, _take_rings
from ihc_score.cells.traced_outlines import TracedOutlines

__all__ = ["trace_outlines"]


def trace_outlines(nuclei: np.ndarray, cells: np.ndarray, ids: np.ndarray) -> TracedOutlines:
    """Outlines of the nuclei and cells with the given label ids.

    Parameters
    ----------
    nuclei, cells : ndarray, int32, shape (H, W)
        Label images (:func:`ihc_score.cells.detect.detect_nuclei`,
        :func:`ihc_score.cells.detect.expand_cells`); 0 = background.
    ids : ndarray of int
        Labels to outline; row ``k`` of the result is label ``ids[k]``
        (e.g. ``np.flatnonzero(keep) + 1`` for the kept rows of the
        :class:`~ihc_score.cells.measure.CellTable` of these labels).

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


def _trace(labels: np.ndarray, ids: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-edge outline of the largest piece of each label in ``ids``, packed, int64 in 1 / UNITS_PER_PX px."""
    from . import _outline_kernels  # on first use: see ihc_score.cells._kernels
    if ids.min() <= 0:
        raise ValueError(f"{what}: ids {ids[ids <= 0][:5].tolist()} label no pixel")
    unique, inverse = np.unique(ids, return_inverse=True)
    xy, offsets, missing = _outline_kernels.trace_labels(labels, unique, _TABLES, UNITS_PER_PX, _PINCH_UNITS)
    if missing >= 0:
        raise ValueError(f"{what}: ids [{missing}] label no pixel")
    if len(unique) == len(ids) and (len(ids) < 2 or (np.diff(ids) > 0).all()):
        return xy, offsets
    return _take_rings(xy, offsets, inverse.ravel())


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
#: The tables above, as :func:`ihc_score.cells._outline_kernels.trace_labels` takes them.
_TABLES = (_STEP_CODE, _N_EDGES, _FIRST_EDGE, _LAST_EDGE, _CORNER_DX, _CORNER_DY, _SIDE_DX, _SIDE_DY)

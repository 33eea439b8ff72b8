"""Packed ring arrays of cell and nucleus outlines: :class:`CellOutlines` (float64 vertices) and their helpers.

Ring ``k`` of a packed array is ``xy[offsets[k]:offsets[k + 1]]``; the
helpers gather rings, check their packing and turn the small integers of
:class:`~ihc_score.cells.traced_outlines.TracedOutlines` back into float64
coordinates. Conventions of the coordinates: :mod:`ihc_score.cells.outlines`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CellOutlines", "UNITS_PER_PX"]

#: Stored units per pixel of :class:`TracedOutlines`. A traced coordinate is
#: ``c`` (a multiple of 0.5) or ``c +- 0.05`` computed in float64, and
#: ``q / UNITS_PER_PX`` (``q = 20 c`` or ``20 c +- 1``, division correctly
#: rounded) is that same double: the exact decimal lies much farther from a
#: rounding midpoint than the error of the double 0.05 (checked for every
#: coordinate up to 100000 px in the tests).
UNITS_PER_PX = 20


def _check_packed(name: str, xy: np.ndarray, offsets: np.ndarray, what: str = "xy") -> None:
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"{name}_{what} must have shape (M, 2), got {xy.shape}")
    if offsets.ndim != 1 or offsets.size < 1:
        raise ValueError(f"{name}_offsets must be one-dimensional with at least one entry, got shape {offsets.shape}")
    if offsets[0] != 0 or offsets[-1] != len(xy) or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{name}_offsets must rise from 0 to len({name}_{what}) = {len(xy)}")


def _ring_gather(offsets: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex rows and offsets of the rings ``index`` of a packed ring array, in that order."""
    starts = offsets[:-1][index]
    lengths = offsets[1:][index] - starts
    new_offsets = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    gather = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(new_offsets[-1], dtype=np.int64)
    return gather, new_offsets


def _take_rings(xy: np.ndarray, offsets: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rings ``index`` of a packed ring array, in that order (vectorised gather)."""
    gather, new_offsets = _ring_gather(offsets, index)
    return xy.take(gather, axis=0), new_offsets  # take: several times faster than xy[gather] on rows


def _row_index(index: np.ndarray, n: int) -> np.ndarray:
    """Non-negative int64 row numbers from an integer index (negatives count from the end) or a boolean mask."""
    idx = np.asarray(index)
    idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64).ravel()
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"index out of range for {n} outlines")
    return np.where(idx < 0, idx + n, idx)


#: Frame that leaves traced coordinates as they are: ``x * 1.0 + 0.0`` is ``x``.
_IDENTITY = np.array([1.0, 0.0, 0.0])


def _check_scale(scale: float) -> None:
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")


def _compact(q: np.ndarray) -> np.ndarray:
    """Integer vertices in the smallest of int16, int32, int64 that holds them."""
    if q.size == 0:
        return q.astype(np.int16)
    lo, hi = int(q.min()), int(q.max())
    for dtype in (np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return q.astype(dtype)
    return q.astype(np.int64)


def _decode(q: np.ndarray, offsets: np.ndarray, ring_frame: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Float64 output coordinates of packed integer vertices: ``(q / UNITS_PER_PX) * scale + (dx, dy)``.

    The same operations, in the same order, as :meth:`CellOutlines.transform`
    on the traced floats, so the result is the same to the last bit.
    """
    xy = np.divide(q, float(UNITS_PER_PX), dtype=np.float64)  # exactly the traced floats (UNITS_PER_PX)
    if len(xy) == 0 or not len(frames):
        return xy
    # Scalars where all frames agree (the scale, within a slide), else per
    # vertex; the same operations on every vertex either way. "* 1.0" and
    # "+ 0.0" change no value, so are skipped.
    scale, shift = frames[:, 0], frames[:, 1:]
    one_scale, one_shift = bool((scale == scale[0]).all()), bool((shift == shift[0]).all())
    if one_scale and scale[0] != 1.0:
        xy *= scale[0]
    # Shifts column by column: a scalar per column runs several times faster
    # than broadcasting a pair over rows of two.
    if one_scale and one_shift:
        for axis in (0, 1):
            if shift[0, axis] != 0.0:
                xy[:, axis] += shift[0, axis]
        return xy
    per_vertex = np.repeat(ring_frame, np.diff(offsets))
    if not one_scale:
        xy *= scale.take(per_vertex)[:, None]
    xy += shift.take(per_vertex, axis=0)
    return xy



@dataclass(frozen=True)
class CellOutlines:
    """Packed polygon outlines of cells and their nuclei, with float64 vertices.

    Any polygons (e.g. built by hand); traced outlines are kept as
    :class:`TracedOutlines`, which has the same interface. Ring ``k`` of the
    nuclei is ``nucleus_xy[nucleus_offsets[k]:nucleus_offsets[k + 1]]``
    (likewise for cells); rings are not closed (the first vertex is not
    repeated at the end). Row ``k`` belongs to cell ``k`` of the
    :class:`~ihc_score.cells.measure.CellTable` it was traced with.

    Attributes
    ----------
    nucleus_xy : ndarray, float64, shape (M, 2)
        Vertices (x, y), in whatever frame they were made in; after
        :meth:`transform`, in the frame it maps to (level-0 px in a
        :class:`~ihc_score.results.SlideDetail`).
    nucleus_offsets : ndarray, int64, shape (n + 1,)
        Start of each ring in ``nucleus_xy``, then ``M``.
    cell_xy : ndarray, float64, shape (K, 2)
    cell_offsets : ndarray, int64, shape (n + 1,)
    """

    nucleus_xy: np.ndarray
    nucleus_offsets: np.ndarray
    cell_xy: np.ndarray
    cell_offsets: np.ndarray

    def __post_init__(self) -> None:
        for name in ("nucleus", "cell"):
            xy = np.asarray(getattr(self, f"{name}_xy"), dtype=np.float64).reshape(-1, 2)
            offsets = np.asarray(getattr(self, f"{name}_offsets"), dtype=np.int64)
            _check_packed(name, xy, offsets)
            object.__setattr__(self, f"{name}_xy", xy)
            object.__setattr__(self, f"{name}_offsets", offsets)
        if len(self.nucleus_offsets) != len(self.cell_offsets):
            raise ValueError(
                f"cell_offsets has {len(self.cell_offsets) - 1} rings, nucleus_offsets {len(self.nucleus_offsets) - 1}"
            )

    def __len__(self) -> int:
        return len(self.cell_offsets) - 1

    def nucleus(self, k: int) -> np.ndarray:
        """Vertices (x, y) of nucleus ``k``, shape (m, 2), not closed."""
        return self.nucleus_xy[self.nucleus_offsets[k] : self.nucleus_offsets[k + 1]]

    def cell(self, k: int) -> np.ndarray:
        """Vertices (x, y) of cell ``k``, shape (m, 2), not closed."""
        return self.cell_xy[self.cell_offsets[k] : self.cell_offsets[k + 1]]

    def take(self, index: np.ndarray) -> CellOutlines:
        """Outlines selected by an integer index or a boolean mask, in that order."""
        idx = _row_index(index, len(self))
        n_xy, n_off = _take_rings(self.nucleus_xy, self.nucleus_offsets, idx)
        c_xy, c_off = _take_rings(self.cell_xy, self.cell_offsets, idx)
        return CellOutlines(n_xy, n_off, c_xy, c_off)

    @classmethod
    def concat(cls, parts: Sequence[CellOutlines]) -> CellOutlines:
        """Outlines of several parts, in order."""
        if not parts:
            return cls.empty()
        out = {}
        for name in ("nucleus", "cell"):
            xys = [getattr(p, f"{name}_xy") for p in parts]
            shifts = np.cumsum([0] + [len(xy) for xy in xys[:-1]])
            offsets = [np.zeros(1, np.int64)] + [getattr(p, f"{name}_offsets")[1:] + s for p, s in zip(parts, shifts)]
            out[f"{name}_xy"] = np.concatenate(xys)
            out[f"{name}_offsets"] = np.concatenate(offsets)
        return cls(**out)

    @classmethod
    def empty(cls) -> CellOutlines:
        """No outlines."""
        zero = np.zeros((0, 2), dtype=np.float64)
        return cls(zero, np.zeros(1, np.int64), zero, np.zeros(1, np.int64))

    def transform(self, scale: float, dx: float, dy: float) -> CellOutlines:
        """Outlines mapped by ``(x, y) -> (x * scale + dx, y * scale + dy)``.

        From a tile's analysis pixels (centres at integers) to level-0 pixels
        (centres at integers), with downsample ``ds`` and the tile read at
        analysis px ``(rx, ry)``: ``scale = ds``, ``dx = (rx + 0.5) * ds - 0.5``,
        ``dy = (ry + 0.5) * ds - 0.5``, the mapping of the cell centroids.
        """
        _check_scale(scale)
        shift = np.array([dx, dy], dtype=np.float64)
        return CellOutlines(
            self.nucleus_xy * scale + shift, self.nucleus_offsets, self.cell_xy * scale + shift, self.cell_offsets
        )

"""Traced outlines kept as small integers: :class:`TracedOutlines` and :class:`OutlineParts`.

Every traced vertex is a pixel corner (a multiple of 0.5 px) or a chamfer
0.05 px from one, so 20 times each coordinate is an integer.
:func:`~ihc_score.cells.outlines.trace_outlines` returns :class:`TracedOutlines`, which keeps these
integers (int16 for label images up to 1638 px wide and high) with, per
ring, the frame that maps them to output coordinates (one per traced tile):
4 bytes per vertex instead of 16 as float64, so a slide's outlines stay
small in the process that gathers them and on their way from the workers.
Float64 coordinates are made only for the rings asked for, by the same
arithmetic as mapping the traced floats (bit for bit:
:data:`~ihc_score.cells.cell_outlines.UNITS_PER_PX`).
:class:`OutlineParts` puts several of them one after another (some rows of
each) without copying them: a slide's chunks as they came from the workers.
:class:`CellOutlines` holds arbitrary float64 vertices. All three share one
interface (``nucleus_xy``, ``cell_xy``, the offsets, ``nucleus(k)``,
``cell(k)``, ``take``, ``concat``, ``transform``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ihc_score.cells.cell_outlines import (
    _IDENTITY,
    CellOutlines,
    _check_packed,
    _check_scale,
    _decode,
    _ring_gather,
    _row_index,
    _take_rings,
)

__all__ = ["TracedOutlines", "OutlineParts", "Outlines"]

@dataclass(frozen=True)
class TracedOutlines:
    """Packed pixel-edge outlines of cells and their nuclei, stored as small integers (from :func:`trace_outlines`).

    The same rings, in the same order, as a :class:`CellOutlines` would hold
    (with the same interface: ``nucleus_xy``, ``cell_xy``, :meth:`nucleus`,
    :meth:`cell`, :meth:`take`, :meth:`concat`, :meth:`transform`), but each
    vertex is kept as ``UNITS_PER_PX`` times its coordinate in the traced
    label image's pixel frame, an integer (see the module documentation),
    and each ring has a frame ``(scale, dx, dy)`` that maps those pixel
    coordinates to output coordinates (level-0 px after
    :meth:`transform`). Float64 output coordinates are computed on demand,
    bit for bit those of mapping the traced floats with
    :meth:`CellOutlines.transform`.

    Attributes
    ----------
    nucleus_q : ndarray, int16 (int32 or int64 for large label images), shape (M, 2)
        Vertices (x, y) in 1 / ``UNITS_PER_PX`` px of the traced label
        image (pixel centres at integer px); ring ``k`` is
        ``nucleus_q[nucleus_offsets[k]:nucleus_offsets[k + 1]]``, not closed.
    nucleus_offsets : ndarray, int64, shape (n + 1,)
        Start of each ring in ``nucleus_q``, then ``M``.
    cell_q : ndarray, integer, shape (K, 2)
    cell_offsets : ndarray, int64, shape (n + 1,)
    ring_frame : ndarray, int32, shape (n,)
        Row of ``frames`` of each cell and its nucleus.
    frames : ndarray, float64, shape (F, 3)
        ``(scale, dx, dy)``: a vertex maps to ``(q / UNITS_PER_PX) * scale + dx``
        (likewise y), evaluated in that order in float64; ``(1, 0, 0)`` keeps
        the label image's pixel frame.
    """

    nucleus_q: np.ndarray
    nucleus_offsets: np.ndarray
    cell_q: np.ndarray
    cell_offsets: np.ndarray
    ring_frame: np.ndarray
    frames: np.ndarray

    def __post_init__(self) -> None:
        for name in ("nucleus", "cell"):
            q = np.asarray(getattr(self, f"{name}_q"))
            if q.dtype.kind != "i":
                raise ValueError(f"{name}_q must hold signed integers, got {q.dtype}")
            q = q.reshape(-1, 2) if q.size == 0 else q
            offsets = np.asarray(getattr(self, f"{name}_offsets"), dtype=np.int64)
            _check_packed(name, q, offsets, "q")
            object.__setattr__(self, f"{name}_q", q)
            object.__setattr__(self, f"{name}_offsets", offsets)
        if len(self.nucleus_offsets) != len(self.cell_offsets):
            raise ValueError(
                f"cell_offsets has {len(self.cell_offsets) - 1} rings, nucleus_offsets {len(self.nucleus_offsets) - 1}"
            )
        ring_frame = np.asarray(self.ring_frame, dtype=np.int32).ravel()
        frames = np.asarray(self.frames, dtype=np.float64).reshape(-1, 3)
        if len(ring_frame) != len(self):
            raise ValueError(f"ring_frame has {len(ring_frame)} entries for {len(self)} rings")
        if ring_frame.size and (ring_frame.min() < 0 or ring_frame.max() >= len(frames)):
            raise ValueError(f"ring_frame must index the {len(frames)} frames")
        if not np.isfinite(frames).all() or (frames[:, 0] <= 0).any():
            raise ValueError("frames must be finite with a positive scale")
        object.__setattr__(self, "ring_frame", ring_frame)
        object.__setattr__(self, "frames", frames)

    def __len__(self) -> int:
        return len(self.cell_offsets) - 1

    @property
    def nucleus_xy(self) -> np.ndarray:
        """Vertices (x, y) of every nucleus in output coordinates, float64, shape (M, 2) (a new array)."""
        return _decode(self.nucleus_q, self.nucleus_offsets, self.ring_frame, self.frames)

    @property
    def cell_xy(self) -> np.ndarray:
        """Vertices (x, y) of every cell in output coordinates, float64, shape (K, 2) (a new array)."""
        return _decode(self.cell_q, self.cell_offsets, self.ring_frame, self.frames)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        arrays = (self.nucleus_q, self.nucleus_offsets, self.cell_q, self.cell_offsets, self.ring_frame, self.frames)
        return sum(a.nbytes for a in arrays)

    def _ring(self, q: np.ndarray, offsets: np.ndarray, k: int) -> np.ndarray:
        k = int(_row_index(np.array([k]), len(self))[0])
        ring = q[offsets[k] : offsets[k + 1]]
        return _decode(ring, np.array([0, len(ring)]), np.zeros(1, np.int32), self.frames[self.ring_frame[k]][None])

    def nucleus(self, k: int) -> np.ndarray:
        """Vertices (x, y) of nucleus ``k`` in output coordinates, float64, shape (m, 2), not closed."""
        return self._ring(self.nucleus_q, self.nucleus_offsets, k)

    def cell(self, k: int) -> np.ndarray:
        """Vertices (x, y) of cell ``k`` in output coordinates, float64, shape (m, 2), not closed."""
        return self._ring(self.cell_q, self.cell_offsets, k)

    def take(self, index: np.ndarray) -> TracedOutlines:
        """Outlines selected by an integer index or a boolean mask, in that order (integers kept)."""
        idx = _row_index(index, len(self))
        n_q, n_off = _take_rings(self.nucleus_q, self.nucleus_offsets, idx)
        c_q, c_off = _take_rings(self.cell_q, self.cell_offsets, idx)
        return TracedOutlines(n_q, n_off, c_q, c_off, self.ring_frame.take(idx), self.frames)

    @classmethod
    def concat(cls, parts: Sequence[TracedOutlines], keep: np.ndarray | None = None) -> TracedOutlines:
        """Outlines of several parts, in order; with ``keep``, only those rows.

        Parameters
        ----------
        parts : sequence of TracedOutlines
        keep : ndarray of bool, optional
            One entry per row of all parts together. The kept rings are
            gathered straight into the result, one part at a time: no
            whole-slide intermediate (a concatenation, then a take).
        """
        sizes = np.array([len(p) for p in parts], dtype=np.int64)
        rows: list[np.ndarray | None] = [None] * len(parts)  # None: every row of the part
        if keep is not None:
            mask = np.asarray(keep, dtype=bool).ravel()
            if len(mask) != sizes.sum():
                raise ValueError(f"keep has {len(mask)} entries for {int(sizes.sum())} outlines")
            rows = [np.flatnonzero(m) for m in np.split(mask, np.cumsum(sizes)[:-1])] if parts else []
        if not parts:
            return cls.empty()
        out: dict[str, np.ndarray] = {}
        for name in ("nucleus", "cell"):
            qs = [getattr(p, f"{name}_q") for p in parts]
            offsets = [getattr(p, f"{name}_offsets") for p in parts]
            lengths = [np.diff(o) if r is None else np.diff(o).take(r) for o, r in zip(offsets, rows)]
            counts = [int(n.sum()) for n in lengths]
            q = np.empty((sum(counts), 2), dtype=np.result_type(*qs))
            start = 0
            for part_q, part_offsets, r, count in zip(qs, offsets, rows, counts):
                if r is None:
                    q[start : start + count] = part_q
                else:
                    q[start : start + count] = part_q.take(_ring_gather(part_offsets, r)[0], axis=0)
                start += count
            all_offsets = np.zeros(sum(len(n) for n in lengths) + 1, dtype=np.int64)
            np.cumsum(np.concatenate(lengths), out=all_offsets[1:])
            out[f"{name}_q"], out[f"{name}_offsets"] = q, all_offsets
        shifts = np.cumsum([0] + [len(p.frames) for p in parts[:-1]])
        ring_frame = np.concatenate(
            [(p.ring_frame if r is None else p.ring_frame.take(r)) + s for p, r, s in zip(parts, rows, shifts)]
        )
        return cls(**out, ring_frame=ring_frame, frames=np.concatenate([p.frames for p in parts]))

    @classmethod
    def empty(cls) -> TracedOutlines:
        """No outlines (one identity frame, so that :meth:`transform` applies)."""
        zero = np.zeros((0, 2), dtype=np.int16)
        none = np.zeros(1, np.int64)
        return cls(zero, none, zero, none, np.zeros(0, np.int32), _IDENTITY[None])

    def transform(self, scale: float, dx: float, dy: float) -> Outlines:
        """Outlines mapped by ``(x, y) -> (x * scale + dx, y * scale + dy)``, as :meth:`CellOutlines.transform`.

        Outlines still in their label image's pixel frame (as traced) keep
        their integers and take the mapping as their frame. Outlines mapped
        already are returned as float64 :class:`CellOutlines` (two mappings
        in a row round twice, which one frame cannot express).
        """
        _check_scale(scale)
        if (self.frames == _IDENTITY).all():
            frame = np.array([scale, dx, dy], dtype=np.float64)
            return replace(self, frames=np.tile(frame, (len(self.frames), 1)))
        return self.to_cell_outlines().transform(scale, dx, dy)

    def to_cell_outlines(self) -> CellOutlines:
        """The same outlines as float64 :class:`CellOutlines` in output coordinates."""
        return CellOutlines(self.nucleus_xy, self.nucleus_offsets, self.cell_xy, self.cell_offsets)


@dataclass(frozen=True, eq=False)
class OutlineParts:
    """Outlines of several :class:`TracedOutlines` one after another, some rows of each, without copying them.

    A slide's outlines in the process that gathers them: the arrays of the
    chunks as they came from the workers, so the slide's outlines are held
    once, not once in the chunks and once more gathered. The interface of
    :class:`TracedOutlines`; :meth:`take` gathers the rows asked for into
    one :class:`TracedOutlines`.

    Attributes
    ----------
    parts : tuple of TracedOutlines
    rows : tuple of (ndarray of int64 or None)
        Per part, its rows that are rows of this object, in order; ``None``
        for all of them.
    """

    parts: tuple[TracedOutlines, ...]
    rows: tuple[np.ndarray | None, ...]

    def __post_init__(self) -> None:
        parts, rows = tuple(self.parts), tuple(self.rows)
        if len(parts) != len(rows):
            raise ValueError(f"{len(rows)} row selections for {len(parts)} parts")
        rows = tuple(None if r is None else _row_index(r, len(p)) for p, r in zip(parts, rows))
        sizes = [len(p) if r is None else len(r) for p, r in zip(parts, rows)]
        starts = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "_starts", starts)  # first row of each part here, then len(self)

    @classmethod
    def of(cls, parts: Sequence[TracedOutlines], keep: np.ndarray | None = None) -> OutlineParts:
        """``parts`` one after another; with ``keep`` (boolean, one entry per row of all parts), only those rows."""
        if keep is None:
            return cls(tuple(parts), (None,) * len(parts))
        mask = np.asarray(keep, dtype=bool).ravel()
        sizes = [len(p) for p in parts]
        if len(mask) != sum(sizes):
            raise ValueError(f"keep has {len(mask)} entries for {sum(sizes)} outlines")
        masks = np.split(mask, np.cumsum(sizes)[:-1]) if parts else []
        return cls(tuple(parts), tuple(None if m.all() else np.flatnonzero(m) for m in masks))

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _lengths(self, name: str) -> np.ndarray:
        """Vertices of each ring of ``name`` ("nucleus" or "cell"), int64, shape (n,)."""
        parts = [np.diff(getattr(p, f"{name}_offsets")) for p in self.parts]
        picked = [n if r is None else n.take(r) for n, r in zip(parts, self.rows)]
        return np.concatenate(picked or [np.zeros(0, np.int64)])

    def _offsets(self, name: str) -> np.ndarray:
        offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(self._lengths(name), out=offsets[1:])
        return offsets

    @property
    def nucleus_offsets(self) -> np.ndarray:
        """Start of each nucleus ring in ``nucleus_xy``, then its length, int64, shape (n + 1,) (a new array)."""
        return self._offsets("nucleus")

    @property
    def cell_offsets(self) -> np.ndarray:
        """Start of each cell ring in ``cell_xy``, then its length, int64, shape (n + 1,) (a new array)."""
        return self._offsets("cell")

    @property
    def nucleus_xy(self) -> np.ndarray:
        """Vertices (x, y) of every nucleus in output coordinates, float64, shape (M, 2) (a new array)."""
        return self.take(np.arange(len(self))).nucleus_xy

    @property
    def cell_xy(self) -> np.ndarray:
        """Vertices (x, y) of every cell in output coordinates, float64, shape (K, 2) (a new array)."""
        return self.take(np.arange(len(self))).cell_xy

    @property
    def nbytes(self) -> int:
        """Bytes held by the parts' arrays and the row selections."""
        return sum(p.nbytes for p in self.parts) + sum(r.nbytes for r in self.rows if r is not None)

    def _locate(self, k: int) -> tuple[int, int]:
        k = int(_row_index(np.array([k]), len(self))[0])
        part = int(np.searchsorted(self._starts, k, side="right")) - 1
        local = k - int(self._starts[part])
        rows = self.rows[part]
        return part, local if rows is None else int(rows[local])

    def nucleus(self, k: int) -> np.ndarray:
        """Vertices (x, y) of nucleus ``k`` in output coordinates, float64, shape (m, 2), not closed."""
        part, row = self._locate(k)
        return self.parts[part].nucleus(row)

    def cell(self, k: int) -> np.ndarray:
        """Vertices (x, y) of cell ``k`` in output coordinates, float64, shape (m, 2), not closed."""
        part, row = self._locate(k)
        return self.parts[part].cell(row)

    def take(self, index: np.ndarray) -> TracedOutlines:
        """Outlines selected by an integer index or a boolean mask, in that order, as one :class:`TracedOutlines`."""
        idx = _row_index(index, len(self))
        part = np.searchsorted(self._starts, idx, side="right") - 1
        local = idx - self._starts.take(part)
        order = np.argsort(part, kind="stable")  # by part, in the order asked within each
        counts = np.bincount(part, minlength=len(self.parts))
        present = np.flatnonzero(counts)
        bounds = np.concatenate([[0], np.cumsum(counts.take(present))])
        pieces = []
        for p, a, b in zip(present.tolist(), bounds[:-1].tolist(), bounds[1:].tolist()):
            rows = local.take(order[a:b])
            pieces.append(self.parts[p].take(rows if self.rows[p] is None else self.rows[p].take(rows)))
        if len(pieces) == 1:  # all from one part: its take is the answer
            return pieces[0]
        grouped = TracedOutlines.concat(pieces)
        if np.all(order[1:] > order[:-1]):
            return grouped
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return grouped.take(back)

    @classmethod
    def concat(cls, parts: Sequence[OutlineParts]) -> OutlineParts:
        """Outlines of several :class:`OutlineParts`, in order (their parts, not copied)."""
        return cls(tuple(q for p in parts for q in p.parts), tuple(r for p in parts for r in p.rows))

    @classmethod
    def empty(cls) -> OutlineParts:
        """No outlines."""
        return cls((), ())

    def transform(self, scale: float, dx: float, dy: float) -> Outlines:
        """Outlines mapped by ``(x, y) -> (x * scale + dx, y * scale + dy)``, as :meth:`TracedOutlines.transform`."""
        return self.take(np.arange(len(self))).transform(scale, dx, dy)


#: Outlines of cells and nuclei with float64 vertices on request, in any of the storages.
Outlines = CellOutlines | TracedOutlines | OutlineParts

"""Numbers and polygon rings as JSON text, formatted in bulk with numpy.

Used by :mod:`ihc_score.outputs.detections`, which writes millions of vertices per
slide: formatting them one Python call at a time would cost more than
scoring the slide.

Conventions
-----------
* Coordinates are written with two decimals, rounded as
  ``np.round(value * 100)`` (halves to even, on the scaled value), as
  ``[-]d.dd``: no exponent, no ``+``, no leading zeros; a value that
  rounds to zero hundredths is ``0.00``, without a sign.
* A ring is written closed (its first vertex again at the end).
"""

from __future__ import annotations

import numpy as np

__all__ = ["fixed_strings", "ring_texts"]

#: Put before every ring's text in the joined buffer, then cut at: never part of JSON text.
_SEP = b"\x01"


def _upper_table() -> np.ndarray:
    """4-digit ASCII groups of 0..9999 as native uint32 words: rows ``0 ..`` without, ``10000 ..`` with leading zeros.

    Leading zeros are NUL bytes (all four for 0: a group before the first
    non-zero one), deleted from the text afterwards.
    """
    n = np.arange(10000)
    padded = np.stack([48 + (n // 10**k) % 10 for k in (3, 2, 1, 0)], axis=1)
    width = np.select([n >= 1000, n >= 100, n >= 10, n >= 1], [4, 3, 2, 1], 0)
    bare = np.where(np.arange(4)[None, :] < 4 - width[:, None], 0, padded)
    return np.ascontiguousarray(np.concatenate([bare, padded]), dtype=np.uint8).view(np.uint32).ravel()


def _low_table() -> np.ndarray:
    """``dd.dd`` of 0..9999 hundredths as native uint64 words, by ``value + 10000 * above + 20000 * is_y``.

    ``above``: digits come before (the tens digit is kept when 0); else the
    number starts here, with one digit before the point at least. A y
    coordinate ends its vertex with ``]``. NUL pads on the left.
    """
    rows = [
        (f"{k // 100:02d}" if above else f"{k // 100:d}") + f".{k % 100:02d}" + ("]" if is_y else "")
        for is_y in (False, True)
        for above in (False, True)
        for k in range(10000)
    ]
    return np.frombuffer(b"".join(r.encode().rjust(8, b"\0") for r in rows), dtype=np.uint64).copy()


def _words(chars: list[bytes]) -> np.ndarray:
    """Native uint32 words of 4-byte strings (NUL-padded)."""
    return np.frombuffer(b"".join(c.ljust(4, b"\0") for c in chars), dtype=np.uint32).copy()


_UPPER = _upper_table()
_LOW = _low_table()
#: Word before a number's digits, by ``2 * kind + negative``; kinds: x of a
#: ring's first vertex, x of another vertex, y.
_PREFIX = _words([_SEP + b"[", _SEP + b"[-", b",[", b",[-", b",", b",-"])


def fixed_strings(values: np.ndarray, decimals: int) -> list[str]:
    """Each value with fixed decimals; NaN and infinities as ``""``."""
    v = np.asarray(values, dtype=np.float64)
    text = (f"%.{decimals}f\x00" * len(v) % tuple(v.tolist())).split("\x00")[:-1]
    bad = np.flatnonzero(~np.isfinite(v))
    for i in bad:
        text[i] = ""
    return text


def ring_texts(xy: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> list[bytes]:
    """Vertices ``[x,y],...,[x0,y0]`` (ASCII) of the closed rings ``rows`` of a packed ring array, 0.01 px.

    The text of a GeoJSON ring without its outer brackets. Formatted for all
    rings at once: every number becomes a few fixed-width words of ASCII
    (prefix, 4-digit groups with NUL for leading zeros, decimals), the NUL
    bytes are deleted and the text is cut at a separator before each ring.

    Parameters
    ----------
    xy : ndarray, float64, shape (M, 2)
        Vertices (x, y); rings are not closed.
    offsets : ndarray, int64, shape (n + 1,)
        Start of each ring in ``xy``, then ``M``.
    rows : ndarray of int
        Rings to write, in this order.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return []
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts + 1  # the first vertex again, closing the ring
    ring_end = np.cumsum(lengths)
    ring_first = ring_end - lengths
    total = int(ring_end[-1])
    gather = np.repeat(starts - ring_first, lengths) + np.arange(total)
    gather[ring_end - 1] = starts
    scaled = xy.take(gather, axis=0)
    scaled *= 100.0
    np.rint(scaled, out=scaled)  # np.round: halves to even
    v = scaled.astype(np.int64)  # hundredths, (total, 2)
    negative = np.flatnonzero(v.ravel() < 0)
    a = np.abs(v) if negative.size else v
    upper = a // 10000  # digits before the last two of the integer part
    n_upper = -(-len(str(int(upper.max()))) // 4) | 1  # odd: the uint64 word stays aligned
    words = np.empty((total, 2, n_upper + 3), dtype=np.uint32)  # prefix, upper groups, low (2 words)
    words[:, 0, 0] = _PREFIX[2]
    words[:, 1, 0] = _PREFIX[4]
    words[ring_first, 0, 0] = _PREFIX[0]
    if negative.size:  # rare: the prefix gets a minus sign
        first = np.zeros(total, dtype=bool)
        first[ring_first] = True
        vertex, is_y = negative // 2, negative % 2
        kind = np.where(is_y == 1, 2, np.where(first[vertex], 0, 1))
        words[vertex, is_y, 0] = _PREFIX[2 * kind + 1]
    rest = upper
    for g in range(n_upper - 1, 0, -1):  # least significant group first
        above = rest // 10000
        words[:, :, 1 + g] = _UPPER[rest - above * 10000 + 10000 * (above > 0)]
        rest = above
    words[:, :, 1] = _UPPER[rest]
    # Row of _LOW: the last four digits, + 10000 where digits come before, + 20000 for y (in place: large arrays).
    low = np.multiply(upper, -10000)
    low += a
    low += np.array([0, 20000])
    np.add(low, 10000, out=low, where=upper > 0)
    words.view(np.uint64)[:, :, -1] = _LOW[low]
    return words.tobytes().translate(None, b"\0").split(_SEP)[1:]


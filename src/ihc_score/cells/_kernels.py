"""Compiled loops over labelled pixels: how they are compiled (:func:`_jit`), and those of measurement and pigment.

Each kernel does in one to three passes over the pixels what a chain of
NumPy gathers, ``np.bincount`` and ``ufunc.at`` calls did in many passes
and temporary arrays. The arithmetic is the same and in the same order
(float64 sums in raster order, float32 products and comparisons where the
NumPy formulation had them, maxima as ``np.maximum``), so the results are
bit-identical to those formulations; ``tests/test_kernels.py`` checks each
kernel against its NumPy formulation. The kernels of nucleus detection are
in :mod:`ihc_score.cells._detection_kernels`, the outline tracer in
:mod:`ihc_score.cells._outline_kernels`; all are compiled with :func:`_jit`.

Compiled by Numba on first use (about 10 s, once after each install)
and cached on disk, beside this module or, where that is read-only, in the
user's cache folder (``NUMBA_CACHE_DIR`` chooses another); a process then
loads them all in about 0.5 s (:func:`ihc_score.cells.warm_up`). The modules that call
them import these modules inside those functions: importing Numba takes
about 0.2 s and 100 MB, which a process that scores no tile (the main
process of a batch with workers, a report) need not spend.

Conventions
-----------
Images are 2-D, or raveled (1-D, raster order) with ``width`` the row
length. Labels are >= 0, 0 = none; a negative label raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

__all__ = ["label_stats", "label_counts", "pigment_candidates", "warm_up"]


def _jit(fn: Callable) -> Callable:
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # no writable cache folder at all: compiled anew in each process
        return numba.njit(nogil=True)(fn)


@_jit
def _maximum(m: float, v: float) -> float:  # np.maximum: a NaN on either side wins
    if m != m:
        return m
    if v != v or v > m:
        return v
    return m


@_jit
def label_stats(
    nuc: np.ndarray, cel: np.ndarray, hema: np.ndarray, dab: np.ndarray, width: int, n: int
) -> tuple[np.ndarray, ...]:
    """Per-label sums and maxima of nuclei and cells, and the nuclei's sums for shape and texture, in one pass
    (:func:`ihc_score.cells.measure.measure_cells`).

    Parameters
    ----------
    nuc, cel : 1-D int32
        Nucleus and cell labels, 0..n (raster order, rows of ``width``).
    hema, dab : 1-D float
        Hematoxylin and DAB OD.
    width : int
        Row length, px.
    n : int
        Largest label.

    Returns
    -------
    area_n, area_c, sum_x, sum_y, sum_h, sum_dn, sum_dc : float64, (n + 1,)
        Nucleus and cell pixel counts, sums of nucleus column, row,
        hematoxylin, DAB, and of cell DAB (index 0 unused).
    max_n, max_c : float32, (n + 1,)
        Largest DAB OD of each nucleus and of each cytoplasm (cell pixels
        outside any nucleus); -inf where none.
    sum_hh, sum_xx, sum_yy, sum_xy, edge : float64, (n + 1,)
        Per nucleus: sums of squared hematoxylin OD, of column^2, row^2 and
        column x row, and the count of edge pixels (a 4-neighbour outside
        the nucleus or the image).
    """
    area_n, area_c, sum_x, sum_y = np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1)
    sum_h, sum_dn, sum_dc = np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1)
    max_n = np.full(n + 1, -np.inf, dtype=np.float32)
    max_c = np.full(n + 1, -np.inf, dtype=np.float32)
    sum_hh, sum_xx, sum_yy = np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1)
    sum_xy, edge = np.zeros(n + 1), np.zeros(n + 1)
    height = nuc.size // width
    for i in range(nuc.size):
        k = nuc[i]
        c = cel[i]
        if k < 0 or c < 0:
            raise ValueError("labels must be >= 0")
        if k == 0 and c == 0:
            continue
        d = dab[i]
        if k != 0:
            row = i // width
            col = i - row * width
            h = hema[i]
            area_n[k] += 1.0
            sum_x[k] += col
            sum_y[k] += row
            sum_h[k] += h
            sum_dn[k] += d
            max_n[k] = _maximum(max_n[k], np.float32(d))
            h64 = np.float64(h)
            sum_hh[k] += h64 * h64
            sum_xx[k] += col * col
            sum_yy[k] += row * row
            sum_xy[k] += col * row
            if (col == 0 or nuc[i - 1] != k or col == width - 1 or nuc[i + 1] != k
                    or row == 0 or nuc[i - width] != k or row == height - 1 or nuc[i + width] != k):
                edge[k] += 1.0
        if c != 0:
            area_c[c] += 1.0
            sum_dc[c] += d
            if k == 0:
                max_c[c] = _maximum(max_c[c], np.float32(d))
    return area_n, area_c, sum_x, sum_y, sum_h, sum_dn, sum_dc, max_n, max_c, sum_hh, sum_xx, sum_yy, sum_xy, edge


@_jit
def label_counts(labels: np.ndarray, on: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of each label 1..n, and those of them where ``on`` (int64, (n + 1,) each, index 0 unused)."""
    area = np.zeros(n + 1, dtype=np.int64)
    hits = np.zeros(n + 1, dtype=np.int64)
    for i in range(labels.size):
        lab = labels[i]
        if lab > 0 and lab <= n:
            area[lab] += 1
            if on[i]:
                hits[lab] += 1
    return area, hits


@_jit
def pigment_candidates(
    conc: np.ndarray, min_dab: np.float32, min_residual: np.float32, max_ratio: np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels passing the colour test of a pigment core (:func:`ihc_score.cells.pigment.pigment_mask`).

    ``conc`` is float32 (H, W, 3): hematoxylin, DAB, residual OD; the
    thresholds are float32, and the comparisons are made in float32 as
    OpenCV's ``compare`` makes them. Returns their rows and columns (intp,
    raster order).
    """
    h, w = conc.shape[0], conc.shape[1]
    rows = np.empty(h * w, dtype=np.intp)
    cols = np.empty(h * w, dtype=np.intp)
    k = 0
    for y in range(h):
        for x in range(w):
            d = conc[y, x, 1]
            if d >= min_dab and conc[y, x, 2] >= min_residual and conc[y, x, 0] <= d * max_ratio:
                rows[k] = y
                cols[k] = x
                k += 1
    return rows[:k].copy(), cols[:k].copy()


def warm_up() -> None:
    """Load these kernels for the argument types measurement and pigment pass them (:func:`ihc_score.cells.warm_up`)."""
    one = np.ones((2, 2), dtype=np.int32)
    rgb = np.ones((2, 2, 3), dtype=np.float32)
    flags = np.zeros((2, 2), dtype=np.bool_)
    label_stats(one.ravel(), one.ravel(), rgb[..., 0].reshape(-1), rgb[..., 1].reshape(-1), 2, 1)
    label_counts(one.ravel(), flags.ravel(), 1)
    pigment_candidates(rgb, np.float32(1.0), np.float32(0.1), np.float32(0.5))

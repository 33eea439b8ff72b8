"""Compiled loops of cell bodies (:func:`ihc_score.cells.body.stained_bodies`): hole filling and connectivity.

Each is a few passes over the pixels in raster order, where ``np.minimum.at``
over every pixel edge and a general connected-component labelling took
about four times as long. Compiled with :func:`ihc_score.cells._kernels._jit`.
"""

from __future__ import annotations

import numpy as np

from ihc_score.cells._detection_kernels import _root
from ihc_score.cells._kernels import _jit

__all__ = ["block_levels", "fill_enclosed", "from_half", "keep_connected", "stained_candidates", "warm_up"]


@_jit
def fill_enclosed(labels: np.ndarray, holes: np.ndarray, n_holes: int) -> np.ndarray:
    """Give each hole bordered (4-neighbours) by one label only, and not by the image edge, that label.

    Parameters
    ----------
    labels : ndarray, int32, (H, W)
        Labels, 0 = none.
    holes : ndarray, int32, (H, W)
        The 4-connected pieces of ``labels == 0``, numbered 1..n_holes
        (0 on labelled pixels).
    n_holes : int
        Number of pieces + 1.

    Returns
    -------
    ndarray, int32, (H, W)
        A new label image, or ``labels`` itself when no hole is filled.
    """
    h, w = labels.shape
    owner = np.zeros(n_holes, dtype=np.int32)  # 0 = none seen yet, -1 = two labels or the edge
    for y in range(h):
        for x in range(w):
            k, v = holes[y, x], labels[y, x]
            if k != 0 and (y == 0 or x == 0 or y == h - 1 or x == w - 1):
                owner[k] = -1
            # each pixel edge once: with the left and the upper neighbour, a hole on one side, a label on the other
            for j in range(2):
                if j == 0 and x == 0 or j == 1 and y == 0:
                    continue
                kk, vv = (holes[y, x - 1], labels[y, x - 1]) if j == 0 else (holes[y - 1, x], labels[y - 1, x])
                hole, lab = (k, vv) if k != 0 else (kk, v)
                if hole == 0 or lab == 0 or owner[hole] < 0:
                    continue
                if owner[hole] == 0:
                    owner[hole] = lab
                elif owner[hole] != lab:
                    owner[hole] = -1
    if not np.any(owner > 0):
        return labels
    out = labels.copy()
    for y in range(h):
        for x in range(w):
            k = holes[y, x]
            if k != 0 and owner[k] > 0:
                out[y, x] = owner[k]
    return out


@_jit
def keep_connected(candidates: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """The candidate pixels joined to their own nucleus through 4-neighbours of the same label.

    One raster pass joins each pixel to its left and upper neighbours of the
    same label (union-find over pixel indices), a second marks the pieces
    that hold a nucleus pixel, a third keeps their pixels: memory is read in
    order, where a flood from the nuclei jumps about.

    Parameters
    ----------
    candidates : ndarray, int32, (H, W)
        Each pixel's cell, 0 = none; holds every nucleus pixel with its
        own label.
    nuclei : ndarray, int32, (H, W)
        Nucleus labels.

    Returns
    -------
    ndarray, int32, (H, W)
    """
    h, w = candidates.shape
    # a pixel's parent never lies after it (roots are the smallest); set only on candidate pixels, read only there
    parent = np.empty(h * w, dtype=np.int32)
    for y in range(h):
        run = -1  # root of the left neighbour's piece while the row stays on one label
        for x in range(w):
            lab = candidates[y, x]
            if lab == 0:
                run = -1
                continue
            i = y * w + x
            left = x > 0 and candidates[y, x - 1] == lab
            r = run if left else i
            parent[i] = r
            # the upper neighbour is already joined when the upper-left one is the label too and so is the left
            if y > 0 and candidates[y - 1, x] == lab and not (left and candidates[y - 1, x - 1] == lab):
                u = _root(parent, i - w)
                if u < r:
                    parent[r] = u
                    r = u
                elif u > r:
                    parent[u] = r
                parent[i] = r
            run = r
    seeded = np.zeros(h * w, dtype=np.bool_)
    for y in range(h):
        for x in range(w):
            if nuclei[y, x] != 0:
                seeded[_root(parent, y * w + x)] = True
    out = np.zeros((h, w), dtype=np.int32)
    for y in range(h):
        for x in range(w):
            lab = candidates[y, x]
            if lab != 0 and seeded[_root(parent, y * w + x)]:
                out[y, x] = lab
    return out


@_jit
def stained_candidates(
    image: np.ndarray, background: np.ndarray, plateau: np.ndarray, reach: np.ndarray, nuclei: np.ndarray,
    min_od: np.float32, max_background_od: np.float32,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pixel's cell where it is stained or a nucleus, else 0 (steps 2-3 of :mod:`ihc_score.cells.body`).

    ``image`` is the smoothed stain OD, ``reach`` the nearest nucleus within
    reach, ``nuclei`` the nucleus labels (all (H, W)); ``background`` (the
    level of the gaps between cells) and ``plateau`` (the highest cytoplasm
    OD near each pixel) are at half resolution, a value per 2 x 2 block on
    even rows and columns. A pixel is stained when
    ``image >= b + max(min_od, (plateau - b) / 2)`` with
    ``b = min(background, max_background_od)``.

    Returns
    -------
    candidates : ndarray, int32, (H, W)
    half_candidates, half_nuclei : ndarray, int32, ((H + 1) // 2, (W + 1) // 2)
        The largest candidate and nucleus label of each 2 x 2 block.
    """
    h, w = image.shape
    out = np.zeros((h, w), dtype=np.int32)
    half = np.zeros(((h + 1) // 2, (w + 1) // 2), dtype=np.int32)
    half_nuclei = np.zeros_like(half)
    half_od = np.float32(0.5)
    for y in range(h):
        for x in range(w):
            lab = reach[y, x]
            if lab == 0:
                continue
            nucleus = nuclei[y, x]
            if nucleus != 0:
                half_nuclei[y >> 1, x >> 1] = max(half_nuclei[y >> 1, x >> 1], nucleus)
            else:
                v = image[y, x]
                b = min(background[y >> 1, x >> 1], max_background_od)
                if v < b + max(min_od, half_od * (plateau[y >> 1, x >> 1] - b)):
                    continue
            out[y, x] = lab
            half[y >> 1, x >> 1] = max(half[y >> 1, x >> 1], lab)
    return out, half, half_nuclei


@_jit
def block_levels(image: np.ndarray, nuclei: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 2 x 2 block (even rows and columns): the lowest value, and the highest with nucleus pixels as 0.

    One pass for what ``_halve(image, cv2.min)`` and ``_halve(np.where(nuclei != 0, 0, image), cv2.max)`` give
    (:func:`ihc_score.cells._background._halve`; a block cut by the image edge holds what lies inside).

    Returns
    -------
    (ndarray, ndarray), float32, ((H + 1) // 2, (W + 1) // 2)
    """
    h, w = image.shape
    hh, hw = (h + 1) // 2, (w + 1) // 2
    low = np.empty((hh, hw), dtype=np.float32)
    high = np.empty((hh, hw), dtype=np.float32)
    zero = np.float32(0.0)
    for by in range(hh):
        y0 = 2 * by
        y1 = min(y0 + 1, h - 1)  # a block cut by the edge reads its one row (or column) twice
        for bx in range(hw):
            x0 = 2 * bx
            x1 = min(x0 + 1, w - 1)
            a, b, c, d = image[y0, x0], image[y0, x1], image[y1, x0], image[y1, x1]
            low[by, bx] = min(min(a, b), min(c, d))
            a = zero if nuclei[y0, x0] != 0 else a
            b = zero if nuclei[y0, x1] != 0 else b
            c = zero if nuclei[y1, x0] != 0 else c
            d = zero if nuclei[y1, x1] != 0 else d
            high[by, bx] = max(max(a, b), max(c, d))
    return low, high


@_jit
def from_half(candidates: np.ndarray, nuclei: np.ndarray, half_candidates: np.ndarray, half_bodies: np.ndarray
              ) -> np.ndarray:
    """Full-resolution bodies from bodies found on 2 x 2 blocks (even rows and columns).

    A candidate pixel keeps its own label where its block, or one of the
    four blocks beside it, kept that label (a block on the edge between two
    cells holds one label only), and always on its own nucleus; a pixel
    that is no candidate takes its block's label where the whole block was
    a hole the block-level bodies filled, or where its block and the four
    beside it all kept that label (a pale pixel inside the cell).

    Parameters
    ----------
    candidates : ndarray, int32, (H, W)
        Each pixel's cell or 0.
    nuclei : ndarray, int32, (H, W)
        Nucleus labels (each nucleus pixel a candidate of its own label).
    half_candidates, half_bodies : ndarray, int32, ((H + 1) // 2, (W + 1) // 2)
        Each block's largest candidate label, and the bodies found on them.

    Returns
    -------
    ndarray, int32, (H, W)
    """
    h, w = candidates.shape
    hh, hw = half_bodies.shape
    out = np.zeros((h, w), dtype=np.int32)
    for y in range(h):
        by = y >> 1
        for x in range(w):
            bx = x >> 1
            lab = candidates[y, x]
            kept = half_bodies[by, bx]
            if lab == 0:
                if kept != 0 and (half_candidates[by, bx] == 0 or 0 < by < hh - 1 and 0 < bx < hw - 1
                                  and half_bodies[by - 1, bx] == kept and half_bodies[by + 1, bx] == kept
                                  and half_bodies[by, bx - 1] == kept and half_bodies[by, bx + 1] == kept):
                    out[y, x] = kept
            elif (kept == lab or nuclei[y, x] != 0
                  or by > 0 and half_bodies[by - 1, bx] == lab or by + 1 < hh and half_bodies[by + 1, bx] == lab
                  or bx > 0 and half_bodies[by, bx - 1] == lab or bx + 1 < hw and half_bodies[by, bx + 1] == lab):
                out[y, x] = lab
    return out


def warm_up() -> None:
    """Load these kernels for the argument types bodies pass them (:func:`ihc_score.cells.warm_up`)."""
    one = np.ones((3, 3), dtype=np.int32)
    fill_enclosed(one, np.zeros((3, 3), dtype=np.int32), 1)
    keep_connected(one, one)
    image = np.ones((3, 3), dtype=np.float32)
    stained_candidates(image, image, image, one, one, np.float32(0.05), np.float32(0.1))
    block_levels(image, one)
    from_half(one, one, one, one)

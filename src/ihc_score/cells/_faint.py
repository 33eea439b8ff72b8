"""The second search for nuclei: pale ones beside dark ones (:func:`ihc_score.cells.detect.detect_nuclei`, step 6).

Pure functions over arrays in pixel units, on the stage helpers of
:mod:`ihc_score.cells._nuclei`.
"""

from __future__ import annotations

import cv2
import numpy as np

from ihc_score.cells._nuclei import (
    _BOX_MARGIN_PX,
    _CORE_FRACTION,
    _EDGE_FRACTION,
    _disk,
    _foreground,
    _maxima,
    _partition,
    _smooth,
)

__all__ = ["_faint_nuclei", "_ellipse_fill", "GLASS_OD"]

#: Hematoxylin + DAB OD (against the slide's own glass) below which a pixel is as pale as glass: about a third of
#: the faintest nuclei's, above the noise of a scan's empty glass.
GLASS_OD = 0.05
#: Bands of rows are partitioned one by one only while together they cover at most this fraction of the tile.
_BANDS_MAX_FRACTION = 0.6


def _faint_nuclei(
    labels: np.ndarray, raw: np.ndarray, *, sigma_px: float, exclusion_px: float, threshold_od: float,
    max_hole_px: float, min_distance_px: float, min_area_px: float, max_area_px: float, min_peak_od: float,
    min_fill: float, min_peak_distance_px: float, stains: np.ndarray | None = None, max_glass_fraction: float = 1.0,
    min_hematoxylin_share: float = 0.0,
) -> np.ndarray:
    """``labels`` with the nuclei a first pass left out beside darker ones added (numbered after them).

    Beside a dark nucleus, the slope of its blurred edge is steeper than
    the bump of a pale neighbour, so the pale nucleus holds no maximum of
    its own, and its pixels go to the dark one's object and are trimmed
    away at a fraction of the dark peak. Here the found nuclei, widened by
    ``exclusion_px``, are set to 0 in ``raw`` (the background-subtracted
    channel before smoothing), so that smoothing it again (``sigma_px``)
    leaves no blurred edge of theirs, and the rest is searched again in
    the same steps (foreground, maxima, split, and the cut at
    ``_EDGE_FRACTION`` of each object's own peak, here on the labelled
    pixels only). A new object is a nucleus when its area is within the
    limits, it peaks at ``min_peak_od`` or more, at least
    ``min_peak_distance_px`` from the widened nuclei (a strip of stained
    cytoplasm around one peaks right against them, a nucleus in its own
    middle), and it is compact (:func:`_ellipse_fill` at least
    ``min_fill``), as a nucleus is and a strip of cytoplasm is not.

    With ``stains`` (hematoxylin and DAB OD of the same pixels, (h, w, >= 2))
    it must also be made of stain (:func:`_of_stain`): at most
    ``max_glass_fraction`` of its pixels as pale as glass, and hematoxylin
    at least ``min_hematoxylin_share`` of its mean hematoxylin + DAB. The
    light a scanner blurs mixes dark brown with what lies beside it, and
    the mixture reads partly as hematoxylin: in a narrow gap of glass
    between brown cells, and across a strongly stained cytoplasm.
    """
    from . import _detection_kernels  # on first use: see ihc_score.cells._kernels
    taken = cv2.dilate((labels > 0).view(np.uint8), _disk(exclusion_px)).view(bool)
    masked = np.where(taken, np.float32(0.0), raw)
    # Only rows near a pixel above the threshold can hold foreground or a pixel the search compares with it.
    reach = _support_px(sigma_px) + _disk(min_distance_px).shape[0] // 2 + 2
    residual = _smooth_rows(masked, sigma_px, _near_rows((masked > threshold_od).any(axis=1), reach))
    mask = _foreground(residual, threshold_od, max_hole_px) & ~taken
    if not mask.any():
        return labels
    faint, n = _partition_bands(mask, residual, _maxima(mask, residual, min_distance_px))
    at = np.flatnonzero(faint > 0)
    lab, value = faint.ravel()[at], residual.ravel()[at]
    peak = np.zeros(n, np.float32)
    _detection_kernels.scatter_max(peak, lab, value)
    cut = value >= np.float32(_EDGE_FRACTION) * peak[lab]
    at, lab, value = at[cut], lab[cut], value[cut]
    area = np.bincount(lab, minlength=n)
    top = value >= peak[lab]
    # a peak pixel about min_peak_distance_px or more from the widened nuclei (none of them nearer)
    clear = ~cv2.dilate(taken.view(np.uint8), _disk(max(min_peak_distance_px - 1.0, 1.0))).view(bool).ravel()
    peak_clear = np.zeros(n, np.float32)
    _detection_kernels.scatter_max(peak_clear, lab[top], clear[at[top]].astype(np.float32))
    keep = (area >= min_area_px) & (area <= max_area_px) & (peak >= min_peak_od) & (peak_clear > 0)
    keep &= _ellipse_fill(lab, at, raw.shape[1], n - 1) >= min_fill
    if stains is not None:
        keep &= _of_stain(lab, at, stains, n, max_glass_fraction, min_hematoxylin_share)
    keep[0] = False
    lut = np.zeros(n, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32) + np.int32(labels.max())
    out = labels.copy()
    out.ravel()[at[keep[lab]]] = lut[lab[keep[lab]]]
    return out


def _support_px(sigma_px: float) -> int:
    """Half the side of the kernel OpenCV's ``GaussianBlur`` takes for a float image and ``sigma_px`` (+-4 sigma)."""
    return (int(round(sigma_px * 8.0 + 1.0)) | 1) // 2 if sigma_px > 0 else 0


def _near_rows(rows: np.ndarray, reach: int) -> np.ndarray:
    """Rows within ``reach`` rows of a True row of ``rows`` (bool, one per image row)."""
    if reach <= 0 or not rows.any():
        return rows.copy()
    return cv2.dilate(rows.view(np.uint8)[:, None], np.ones((2 * reach + 1, 1), np.uint8))[:, 0].view(bool)


def _row_runs(rows: np.ndarray, min_gap: int = 1) -> list[tuple[int, int]]:
    """Runs ``[start, stop)`` of True in ``rows``, runs fewer than ``min_gap`` rows apart taken as one."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], rows.view(np.uint8), [0])).astype(np.int8)))
    runs: list[tuple[int, int]] = []
    for a, b in zip(edges[0::2].tolist(), edges[1::2].tolist()):
        if runs and a - runs[-1][1] < min_gap:
            runs[-1] = (runs[-1][0], b)
        else:
            runs.append((a, b))
    return runs


def _smooth_rows(image: np.ndarray, sigma_px: float, rows: np.ndarray) -> np.ndarray:
    """:func:`_smooth` of ``image`` on the True ``rows`` (the same values), 0 on the others.

    Each run of rows is smoothed with the rows within the kernel's reach
    around it (or the image's edge, replicated as on the whole image), so
    its values are those of the whole image, bit for bit. The whole image is
    smoothed when the rows are most of it.
    """
    if rows.mean() > 0.8:
        return _smooth(image, sigma_px)
    support = _support_px(sigma_px)
    out = np.zeros_like(image)
    h = image.shape[0]
    for a, b in _row_runs(rows):
        y0, y1 = max(0, a - support), min(h, b + support)
        out[a:b] = _smooth(np.ascontiguousarray(image[y0:y1]), sigma_px)[a - y0 : b - y0]
    return out


def _bands(mask: np.ndarray) -> list[tuple[int, int]]:
    """The bands ``[y0, y1)`` :func:`_partition_bands` partitions one by one (none: the whole image at once)."""
    h = mask.shape[0]
    bands = [(max(0, a - _BOX_MARGIN_PX) & ~1, min(h, b + _BOX_MARGIN_PX))
             for a, b in _row_runs(mask.any(axis=1), 2 * _BOX_MARGIN_PX + 2)]
    return bands if sum(y1 - y0 for y0, y1 in bands) <= _BANDS_MAX_FRACTION * h else []


def _partition_bands(mask: np.ndarray, score: np.ndarray, peaks: np.ndarray) -> tuple[np.ndarray, int]:
    """:func:`_partition` (at ``_CORE_FRACTION``) band by band: full-width bands of rows around the foreground.

    The faint foreground is often a few blobs scattered over the tile, and
    the box :func:`_partition` works in would be the whole tile. A band
    holds each run of foreground rows with ``_BOX_MARGIN_PX`` rows on either
    side (runs nearer than twice that are one band), as the box does, so
    each blob is split as on the whole image; the labels of each band follow
    those of the bands above it. Bands that would cover most of the image
    cost more than the image (the distance transforms have a cost per row):
    then the whole image is partitioned.
    """
    bands = _bands(mask)
    if len(bands) < 2:
        return _partition(mask, score, peaks, _CORE_FRACTION)
    labels = np.zeros(mask.shape, dtype=np.int32)
    n = 1
    for y0, y1 in bands:
        part, k = _partition(mask[y0:y1], score[y0:y1], peaks[y0:y1], _CORE_FRACTION)  # rows of C arrays: contiguous
        if n > 1:
            part[part > 0] += np.int32(n - 1)
        labels[y0:y1] = part
        n += k - 1
    return labels, n


def _of_stain(lab: np.ndarray, at: np.ndarray, stains: np.ndarray, n: int, max_glass_fraction: float,
              min_hematoxylin_share: float) -> np.ndarray:
    """Which objects (labels ``lab`` of the pixels at raster indices ``at``) are made of stain, not glass or DAB alone.

    Glass is hematoxylin + DAB below :data:`GLASS_OD`. Entry 0 is False.
    """
    flat = stains.reshape(-1, stains.shape[-1])  # a view of a contiguous image: only the object pixels are read
    h, d = flat[at, 0].astype(np.float64), flat[at, 1].astype(np.float64)
    count = np.maximum(np.bincount(lab, minlength=n), 1)
    glass = np.bincount(lab, (h + d) < GLASS_OD, minlength=n) / count
    h_sum, d_sum = np.bincount(lab, h, minlength=n), np.bincount(lab, d, minlength=n)
    ok = (glass <= max_glass_fraction) & (h_sum >= min_hematoxylin_share * np.maximum(h_sum + d_sum, 0.0))
    ok[0] = False
    return ok


def _ellipse_fill(lab: np.ndarray, at: np.ndarray, width: int, k: int) -> np.ndarray:
    """Area of each object over that of the ellipse with its second moments (1 for a disk or an ellipse).

    ``lab`` are the labels (1..k) of the pixels at raster indices ``at``.
    A ring, a crescent or a branching strip spreads its pixels far from
    their centre for its area and scores well below 1; a square 0.95.
    Entry 0 is 0.
    """
    y, x = np.divmod(at, width)
    n = np.bincount(lab, minlength=k + 1).astype(np.float64)
    safe = np.maximum(n, 1.0)
    mx, my = np.bincount(lab, x, k + 1) / safe, np.bincount(lab, y, k + 1) / safe
    vxx = np.bincount(lab, x * x.astype(np.float64), k + 1) / safe - mx * mx
    vyy = np.bincount(lab, y * y.astype(np.float64), k + 1) / safe - my * my
    vxy = np.bincount(lab, x * y.astype(np.float64), k + 1) / safe - mx * my
    ellipse = 4.0 * np.pi * np.sqrt(np.maximum(vxx * vyy - vxy * vxy, 0.0))
    fill = np.where(ellipse > 0, n / np.maximum(ellipse, 1e-12), 0.0)
    fill[0] = 0.0
    return fill

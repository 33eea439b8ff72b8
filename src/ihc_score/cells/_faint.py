"""The second search for nuclei: pale ones beside dark ones (:func:`ihc_score.cells.detect.detect_nuclei`, step 6).

Pure functions over arrays in pixel units, on the stage helpers of
:mod:`ihc_score.cells._nuclei`.
"""

from __future__ import annotations

import cv2
import numpy as np

from ihc_score.cells._nuclei import _CORE_FRACTION, _EDGE_FRACTION, _disk, _foreground, _maxima, _partition, _smooth

__all__ = ["_faint_nuclei", "_ellipse_fill", "GLASS_OD"]

#: Hematoxylin + DAB OD (against the slide's own glass) below which a pixel is as pale as glass: about a third of
#: the faintest nuclei's, above the noise of a scan's empty glass.
GLASS_OD = 0.05


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
    # raw with the widened nuclei set to 0 (a masked copy: a third of np.where's time)
    free = np.ascontiguousarray(raw, dtype=np.float32)
    residual = _smooth(cv2.bitwise_and(free, free, mask=(~taken).view(np.uint8)), sigma_px)
    mask = _foreground(residual, threshold_od, max_hole_px) & ~taken
    if not mask.any():
        return labels
    faint, n = _partition(mask, residual, _maxima(mask, residual, min_distance_px), _CORE_FRACTION)
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

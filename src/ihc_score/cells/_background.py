"""The local background of nucleus detection (:func:`ihc_score.cells.detect.detect_nuclei`, step 1).

A rolling-ball-like grey opening estimated at half resolution by an octagon
of 3 x 3 passes, and the test that tells glass from anything a threshold
could find; pure functions over arrays in pixel units.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["_halve", "_octagon_filter", "_subtract_background", "_surely_empty"]


def _octagon_passes(radius_px: float) -> tuple[int, int]:
    """Passes of a 3 x 3 square and of a 3 x 3 cross whose sum best fits a disk.

    ``k`` squares and ``m`` crosses reach ``k + m`` pixels along the axes
    and ``k + m / 2`` along the diagonals; a disk of radius r reaches r and
    r / sqrt(2). Rounding r first keeps the octagon within half a pixel of
    the disk along both.
    """
    r = max(1, int(round(radius_px)))
    crosses = int(round(2.0 * r * (1.0 - 1.0 / np.sqrt(2.0))))
    return r - crosses, crosses


_SQUARE = np.ones((3, 3), dtype=np.uint8)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def _octagon_filter(image: np.ndarray, radius_px: float, op: int) -> np.ndarray:
    """Grey erosion or dilation (``cv2.MORPH_ERODE`` / ``MORPH_DILATE``) by an octagon of ``radius_px``."""
    squares, crosses = _octagon_passes(radius_px)
    out = image
    for kernel, passes in ((_SQUARE, squares), (_CROSS, crosses)):
        if passes:
            out = cv2.morphologyEx(out, op, kernel, iterations=passes, borderType=cv2.BORDER_REPLICATE)
    return out


def _halve(image: np.ndarray, op: Callable) -> np.ndarray:
    """``op`` (``cv2.min`` / ``cv2.max``) of each 2 x 2 block on even rows and columns, the image edge-padded."""
    h, w = image.shape
    if h % 2 or w % 2:
        image = cv2.copyMakeBorder(image, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    return op(op(image[0::2, 0::2], image[0::2, 1::2]), op(image[1::2, 0::2], image[1::2, 1::2]))


#: Pixels by which the half-resolution opening is widened before it is
#: capped by the image (see :func:`_subtract_background`).
_BACKGROUND_REACH_PX = 2


def _subtract_background(image: np.ndarray, radius_px: float) -> np.ndarray:
    """Image minus a rolling-ball-like background, estimated at half resolution.

    The background is the grey opening, by an octagon of half the radius
    (a few passes of 3 x 3 kernels, within half a pixel of a disk), of the
    minima of the image's 2 x 2 blocks on even rows and columns; each block
    takes its value, widened by ``_BACKGROUND_REACH_PX`` (a grey dilation)
    and capped by the image. Without the widening, a block astride the edge
    of a structure wider than the ball keeps the low value of its outer
    pixels, and the rim left around the structure is taken for nuclei;
    with it, such a structure is removed whole, as by an opening at full
    resolution. The cap keeps the result >= 0. About a quarter of the cost
    of the opening by a disk at full resolution. The result at a pixel
    depends only on the image within about two radii of it, so a tile with
    that margin on even rows and columns reproduces the whole image.
    """
    if radius_px < 1:
        return image
    h, w = image.shape
    small = _octagon_filter(_halve(image, cv2.min), radius_px / 2.0, cv2.MORPH_ERODE)
    small = _octagon_filter(small, radius_px / 2.0, cv2.MORPH_DILATE)
    background = cv2.resize(small, (2 * small.shape[1], 2 * small.shape[0]), interpolation=cv2.INTER_NEAREST)[:h, :w]
    reach = np.ones((2 * _BACKGROUND_REACH_PX + 1,) * 2, dtype=np.uint8)
    background = cv2.dilate(background, reach, borderType=cv2.BORDER_REPLICATE)
    background = cv2.min(background, image, dst=background)
    return cv2.subtract(image, background, dst=background)


def _surely_empty(image: np.ndarray, radius_px: float, threshold_od: float) -> bool:
    """True when no pixel can pass the threshold (glass): no need to look further.

    The background is a grey opening of the image, so it is no lower than
    the image's minimum and the subtracted image is at most its range (at
    most its maximum without background subtraction); the Gaussian, a
    weighted mean, does not raise that bound. 1 % and 1e-6 OD cover rounding.
    """
    if image.size == 0:
        return True
    low, high, _, _ = cv2.minMaxLoc(image)
    if not (np.isfinite(low) and np.isfinite(high)):
        return False
    bound = high - low if radius_px >= 1 else high
    return bound * 1.01 + 1e-6 < threshold_od

"""Out-of-focus blocks of an analysis tile.

:func:`blurred_blocks` works on one analysis tile. Per block of
``blur_block_um``: the fine-scale energy (4-neighbour Laplacian of the
grey OD on a grid of about ``blur_fine_um / 1.5`` um) over the energy of
all the block's structure (band ``blur_fine_um``-``blur_coarse_um`` plus
the variance of the grey OD smoothed at ``blur_fine_um``, on a 1 um
grid). The scales are in um, so the ratio depends neither on the stain's
contrast nor (within 0.25-1 um/px) on the pixel size; in focus it is
0.5-1.6 on synthetic tissue and 0.05-0.4 on the real Ki67 fields, out of
focus (Gaussian blur 1.5-3 um) 0.005-0.02, below ``blur_max_sharpness``.
Using the whole structure rather than the coarse band alone keeps a
strong blur (which flattens the coarse band too, leaving noise and JPEG
in the fine band) below the threshold. A block is judged only when at least
``blur_min_tissue_fraction`` of it is tissue (grey OD >=
``blur_tissue_od``) and its grey OD varies by at least
``blur_min_contrast_od`` (standard deviation).

The threshold is the slide's own where the whole slide is soft
(:func:`blur_threshold`): a microscope camera's fields or a soft scanner
measure 0.02-0.06 all over, and an absolute threshold would leave half of
such a field out; there a block must also be less sharp than a fraction
of the slide's median (:func:`slide_sharpness`, from sample patches).

Blur detection needs structure: blocks of pale, smooth tissue are not
judged, and at pixel sizes coarser than about 1 um a blur of 1.5 um cannot be
seen at all. The options are the ``blur_*`` fields of
:class:`ihc_score.tissue.artefacts.ArtefactParams`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ihc_score.stain import od_lut
from ihc_score.tissue.artefact_params import ArtefactParams

__all__ = ["BlockFocus", "block_focus", "blurred_blocks", "blur_block_px", "slide_sharpness", "blur_threshold"]

#: Fewest judged blocks for a slide's median sharpness.
_MIN_JUDGED_BLOCKS = 4


def blur_block_px(mpp_um: float, params: ArtefactParams = ArtefactParams()) -> int:
    """Side of a blur block in pixels of size ``mpp_um``: ``max(1, round(blur_block_um / mpp_um))``."""
    return max(1, int(round(params.blur_block_um / mpp_um)))


def _block_mean(img: np.ndarray, b: int) -> np.ndarray:
    """Mean of each ``b x b`` block (the last row/column of blocks may be partial)."""
    h, w = img.shape
    ph, pw = -h % b, -w % b
    sums = cv2.integral(np.ascontiguousarray(img, dtype=np.float32), sdepth=cv2.CV_64F)
    ys = np.minimum(np.arange(0, h + ph + 1, b), h)
    xs = np.minimum(np.arange(0, w + pw + 1, b), w)
    s = sums[ys][:, xs]
    tot = s[1:, 1:] - s[:-1, 1:] - s[1:, :-1] + s[:-1, :-1]
    n = np.diff(ys)[:, None] * np.diff(xs)[None, :]
    return tot / np.maximum(n, 1)


@dataclass(frozen=True, eq=False)
class BlockFocus:
    """Focus measurements of the blocks of one tile (arrays of shape (ceil(h/b), ceil(w/b))).

    Parameters
    ----------
    sharpness : ndarray of float64
        Fine-band energy over structure energy (0 where the block is flat).
    contrast_od : ndarray of float64
        Standard deviation of the grey OD (smoothed at ``blur_fine_um``) in the block.
    tissue_fraction : ndarray of float64
        Fraction of the block's pixels on tissue.
    judged : ndarray of bool
        Enough tissue and contrast to judge the focus.
    blurred : ndarray of bool
        Judged and out of focus.
    """

    sharpness: np.ndarray
    contrast_od: np.ndarray
    tissue_fraction: np.ndarray
    judged: np.ndarray
    blurred: np.ndarray


def _largest_divisor(n: int, at_most: float) -> int:
    """Largest divisor of ``n`` that is at most ``at_most`` (1 at least)."""
    return max([d for d in range(1, max(int(at_most), 1) + 1) if n % d == 0])


def _shrink(img: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``k x k`` pixel groups (shape divisible by ``k``)."""
    if k == 1:
        return img
    return cv2.resize(img, (img.shape[1] // k, img.shape[0] // k), interpolation=cv2.INTER_AREA)


def slide_sharpness(patches: list[np.ndarray], *, background: tuple[float, float, float], mpp_um: float,
                    params: ArtefactParams = ArtefactParams()) -> float | None:
    """Median sharpness of the judged blocks of a slide's sample patches (None with fewer than 4 judged).

    Parameters
    ----------
    patches : list of ndarray, uint8, (h, w, 3)
        Patches spread over the slide's tissue at ``mpp_um``.
    background, mpp_um, params
        As :func:`blurred_blocks`.
    """
    values = []
    for rgb in patches:
        focus = block_focus(rgb, background=background, mpp_um=mpp_um, params=params)
        values.append(focus.sharpness[focus.judged])
    judged = np.concatenate(values) if values else np.zeros(0)
    return float(np.median(judged)) if len(judged) >= _MIN_JUDGED_BLOCKS else None


def blur_threshold(params: ArtefactParams, sharpness: float | None) -> float:
    """Sharpness below which a block of a slide is out of focus.

    ``blur_max_sharpness``, lowered to ``blur_relative_sharpness`` times the
    slide's median ``sharpness`` (:func:`slide_sharpness`) when that is
    smaller; ``blur_max_sharpness`` when the median is unknown (None).
    """
    if sharpness is None:
        return params.blur_max_sharpness
    return min(params.blur_max_sharpness, params.blur_relative_sharpness * sharpness)


def block_focus(rgb: np.ndarray, *, background: tuple[float, float, float], mpp_um: float,
                params: ArtefactParams = ArtefactParams()) -> BlockFocus:
    """Focus measurements of each block of a tile; arguments as :func:`blurred_blocks`.

    The grey OD is averaged to a grid of about ``blur_fine_um / 1.5`` um for
    the fine band (4-neighbour Laplacian) and of about 1 um for the coarse
    band and the block statistics, so the cost is a few full-size passes.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be (h, w, 3) uint8, got {rgb.dtype} {rgb.shape}")
    if not mpp_um > 0:
        raise ValueError(f"mpp_um must be > 0, got {mpp_um}")
    b = blur_block_px(mpp_um, params)
    h, w = rgb.shape[:2]
    nby, nbx = math.ceil(h / b), math.ceil(w / b)
    if h == 0 or w == 0:
        z = np.zeros((nby, nbx))
        return BlockFocus(z, z, z, z.astype(bool), z.astype(bool))
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    od = cv2.LUT(grey, od_lut((float(np.mean(background)),) * 3)[0])
    # partial blocks at the right and bottom are mirrored to full size
    if (nby * b, nbx * b) != (h, w):
        od = cv2.copyMakeBorder(od, 0, nby * b - h, 0, nbx * b - w, cv2.BORDER_REFLECT)
    kf = _largest_divisor(b, params.blur_fine_um / 1.5 / mpp_um)
    kc = _largest_divisor(b, 1.0 / mpp_um)
    fine = _shrink(od, kf)
    lap = cv2.Laplacian(fine, cv2.CV_32F, ksize=1)
    e_fine = _shrink(cv2.multiply(lap, lap), b // kf)
    grid = _shrink(od, kc)
    px = mpp_um * kc
    g1 = cv2.GaussianBlur(grid, (0, 0), max(params.blur_fine_um / px, 0.5))
    band = g1 - cv2.GaussianBlur(g1, (0, 0), max(params.blur_coarse_um / px, 1.0))
    e_coarse = _shrink(cv2.multiply(band, band), b // kc)
    # structure to judge at any scale up to the block (a strong blur flattens the coarse band too)
    mean = _shrink(g1, b // kc)
    spread = np.sqrt(np.maximum(_shrink(cv2.multiply(g1, g1), b // kc) - mean * mean, 0.0))
    on_tissue = _shrink((grid >= params.blur_tissue_od).astype(np.float32), b // kc)
    judged = (on_tissue >= params.blur_min_tissue_fraction) & (spread >= params.blur_min_contrast_od)
    sharp = np.where(e_coarse > 0, e_fine / np.maximum(e_coarse + spread * spread, 1e-30), 0.0).astype(np.float64)
    return BlockFocus(sharp, spread.astype(np.float64), on_tissue.astype(np.float64), judged,
                      judged & (sharp < params.blur_max_sharpness))


def blurred_blocks(rgb: np.ndarray, *, background: tuple[float, float, float], mpp_um: float,
                   params: ArtefactParams = ArtefactParams()) -> np.ndarray:
    """Out-of-focus blocks of one tile.

    Parameters
    ----------
    rgb : ndarray, uint8, (h, w, 3)
        One analysis tile at ``mpp_um`` (normally 0.5 um/px; 0.25-1 works).
    background : 3 floats
        Slide ``I0``, 8-bit; the grey OD is against their mean.
    mpp_um : float
        Pixel size of ``rgb``, um/px.
    params : ArtefactParams

    Returns
    -------
    ndarray of bool, (ceil(h/b), ceil(w/b)), ``b = blur_block_px(mpp_um, params)``
        True where the block holds enough tissue structure to judge and is
        out of focus; block ``(j, i)`` covers rows ``j*b:(j+1)*b`` and
        columns ``i*b:(i+1)*b``. See :func:`block_focus` for the measurements.

    Raises
    ------
    ValueError
        When ``rgb`` is not uint8 RGB or ``mpp_um`` is not positive.
    """
    return block_focus(rgb, background=background, mpp_um=mpp_um, params=params).blurred

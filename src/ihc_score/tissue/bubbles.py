"""Air bubbles under the coverslip, on the tissue thumbnail.

The refraction rim of an air bubble is a thin, dark, achromatic ring.
A thumbnail finer than ``bubble_grid_um`` is first averaged down to it
(the texture of single cells fades, a rim stays). A rim pixel is darker
than the tissue on *both* sides of it: in its best of 8 directions, the
OD sum of the pixel and of its two neighbours ``bubble_flank_um`` along
the line exceeds that of the darker flank ``bubble_flank_um`` across it
by ``bubble_min_rim_od`` (a blob, such as a nucleus or a cell cluster,
has paler neighbours along any line and scores about 0); and what it
adds to that flank, its OD vector minus the flank's, lies within
``bubble_max_rim_angle_deg`` of grey (hematoxylin or DAB texture adds
colour). The rim grows (hysteresis) into connected pixels passing
``bubble_grow_rim_od`` and ``bubble_grow_rim_angle_deg``; pieces shorter
than ``bubble_min_rim_um`` are dropped. The rim is thickened by half of
``bubble_gap_um`` to bridge its gaps; a bubble is a hole of it, grown
back as much, of ``bubble_min_area_um2``-``bubble_max_area_um2``, convex
enough (solidity >= ``bubble_min_solidity``), closely ringed by rim
(``bubble_min_rim_cover``) with little rim beyond, not darker inside
than outside, then grown by ``bubble_rim_um`` to take in the rim.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ihc_score.stain import channel_sum, od_lut
from ihc_score.tissue.artefact_params import ArtefactParams
from ihc_score.tissue.morphology import disc, hysteresis, remove_small

__all__ = ["find_bubbles"]


#: Directions (over 180 degrees) in which a rim pixel is compared with its flanks.
_RIM_DIRECTIONS = 8


def _shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``img`` sampled at ``(x + dx, y + dy)`` (bilinear; the edge repeated beyond the border)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _rim_contrast(od: np.ndarray, flank_px: float) -> tuple[np.ndarray, np.ndarray]:
    """How far each pixel stands out as a thin dark line, in its best direction.

    For each of :data:`_RIM_DIRECTIONS` directions across a line: the least
    OD sum of the pixel and its two neighbours ``flank_px`` along the line,
    minus the OD sum of the darker of the two flanks ``flank_px`` across it
    (per channel). A line scores its contrast; a blob (a nucleus, a cell
    cluster) scores about 0, its neighbours along any line being paler.

    Returns
    -------
    contrast : ndarray, float32, (h, w)
        Best score, OD sum.
    excess : ndarray, float32, (h, w, 3)
        The pixel's OD minus its darker flank's in that direction: the
        colour the line adds to what lies on either side.
    """
    total = channel_sum(od)
    contrast = np.full(total.shape, -np.inf, np.float32)
    excess = np.zeros_like(od)
    # OpenCV's element-wise max, min and masked copy: the same values as NumPy's, several times faster
    # on these (h, w, 3) float32 images (np.copyto with a broadcast mask most of all)
    for k in range(_RIM_DIRECTIONS):
        cx, cy = math.cos(math.pi * k / _RIM_DIRECTIONS), math.sin(math.pi * k / _RIM_DIRECTIONS)
        dx, dy = flank_px * cx, flank_px * cy
        flank = cv2.max(_shifted(od, dx, dy), _shifted(od, -dx, -dy))
        along = cv2.min(_shifted(total, -dy, dx), _shifted(total, dy, -dx))
        score = cv2.subtract(cv2.min(total, along), channel_sum(flank))
        better = cv2.compare(score, contrast, cv2.CMP_GT)
        cv2.max(contrast, score, dst=contrast)
        cv2.copyTo(cv2.subtract(od, flank), better, excess)
    return contrast, excess


def _rim_mask(od: np.ndarray, px_um: float, params: ArtefactParams) -> np.ndarray:
    """Rim pixels on the grid of ``od`` (pixels of ``px_um``), specks left out."""
    contrast, excess = _rim_contrast(od, max(1.5, params.bubble_flank_um / px_um))
    norm = np.sqrt(channel_sum(np.square(excess)))
    cos = channel_sum(excess) / (math.sqrt(3.0) * np.maximum(norm, 1e-6))
    strong = (contrast >= params.bubble_min_rim_od) & (cos >= math.cos(math.radians(params.bubble_max_rim_angle_deg)))
    weak = (contrast >= params.bubble_grow_rim_od) & (cos >= math.cos(math.radians(params.bubble_grow_rim_angle_deg)))
    # join a rim broken by a pixel, then drop specks (texture)
    rim = cv2.morphologyEx(hysteresis(strong, weak).view(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return remove_small(rim.view(bool), params.bubble_min_rim_um / px_um)


def _is_bubble(hole: np.ndarray, rim: np.ndarray, total: np.ndarray, params: ArtefactParams) -> bool:
    """Whether a hole enclosed by ``rim`` (arrays of one window around it) is an air bubble.

    The ring just around the hole was seen as rim, the band beyond it much
    less (a thin rim, not a mass of specks), and the inside is not darker
    than the tissue outside (upper quartiles: a bubble may lie half on glass).
    """
    ring = cv2.dilate(hole.view(np.uint8), disc(5)).view(bool)
    band = cv2.dilate(hole.view(np.uint8), disc(13)).view(bool) & ~ring
    ring &= ~hole
    if not band.any():
        return False
    cover, beyond = rim[ring].mean(), rim[band].mean()
    return bool(cover >= params.bubble_min_rim_cover and cover - beyond >= params.bubble_min_rim_cover / 2
                and np.percentile(total[hole], 75) <= np.percentile(total[band], 75) + 0.05)


def _content_box(total: np.ndarray, min_od: float, margin_px: float) -> tuple[slice, slice] | None:
    """Rows and columns around the pixels with ``total >= min_od``, widened by ``margin_px``; None without any."""
    dark = total >= min_od
    rows = np.flatnonzero(dark.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(dark.any(axis=0))
    m = int(np.ceil(margin_px))
    h, w = total.shape
    return slice(max(0, rows[0] - m), min(h, rows[-1] + m + 1)), slice(max(0, cols[0] - m), min(w, cols[-1] + m + 1))


def find_bubbles(thumb: np.ndarray, *, background: tuple[float, float, float], px_um: float,
                 params: ArtefactParams = ArtefactParams()) -> np.ndarray:
    """Air bubbles on a thumbnail: inside and rim (see the module docstring).

    Parameters
    ----------
    thumb : ndarray, uint8, (h, w, 3)
    background : 3 floats
        ``I0``, 8-bit.
    px_um : float
        Thumbnail pixel size, um.
    params : ArtefactParams

    Returns
    -------
    ndarray of bool, (h, w)
    """
    h0, w0 = thumb.shape[:2]
    img = np.ascontiguousarray(thumb)
    if params.bubble_grid_um > 1.25 * px_um:  # a fine thumbnail: average the cell texture away
        f = params.bubble_grid_um / px_um
        img = cv2.resize(img, (max(1, round(w0 / f)), max(1, round(h0 / f))), interpolation=cv2.INTER_AREA)
    grid_um = px_um * w0 / img.shape[1]
    od = cv2.LUT(img, np.ascontiguousarray(od_lut(background).T.reshape(1, 256, 3)))
    total = channel_sum(od)
    reach = max(1, int(round(params.bubble_gap_um / 2 / grid_um)))
    # Glass far from anything that could be rim (OD sum below the lower rim
    # threshold; a rim's contrast never exceeds its OD sum) can hold no rim
    # and no hole: the rest is done on the box around such pixels, widened
    # beyond the reach of every step below, which finds what the whole
    # thumbnail gives at a fraction of the cost on a slide mostly of glass.
    grid_shape = total.shape
    box = _content_box(total, params.bubble_grow_rim_od, params.bubble_flank_um / grid_um + 4 * reach + 24)
    if box is None:
        return np.zeros((h0, w0), bool)
    od, total = od[box], total[box]
    rim = _rim_mask(od, grid_um, params)
    # gaps are bridged by thickening the rim by half a gap; each hole is then grown back by as much
    # (a closing would not bridge a gap in a line one pixel wide)
    thick = cv2.dilate(rim.view(np.uint8), disc(2 * reach + 1)).view(bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((~thick).view(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    px2 = grid_um**2
    ok = stats[:, cv2.CC_STAT_AREA] * px2 <= params.bubble_max_area_um2
    ok[border] = False
    ok[0] = False  # label 0 is the rim itself
    inside = np.zeros(rim.shape, bool)
    pad = reach + 8
    for k in np.flatnonzero(ok):  # few candidates: one loop per closed ring, not per pixel
        x, y, w, h = stats[k, :4]
        sl = (slice(max(y - pad, 0), y + h + pad), slice(max(x - pad, 0), x + w + pad))
        hole = cv2.dilate((labels[sl] == k).view(np.uint8), disc(2 * reach + 1))
        contours, _ = cv2.findContours(hole, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        area = cv2.contourArea(contours[0]) if len(contours) == 1 else 0.0
        hull = cv2.contourArea(cv2.convexHull(contours[0])) if area > 0 else 0.0
        if not (params.bubble_min_area_um2 <= area * px2 <= params.bubble_max_area_um2
                and area >= params.bubble_min_solidity * hull):
            continue
        cv2.drawContours(hole, contours, -1, 1, cv2.FILLED)  # specks inside are bubble too
        if _is_bubble(hole.view(bool), rim[sl], total[sl], params):
            inside[sl] |= hole.view(bool)
    if not inside.any():
        return np.zeros((h0, w0), bool)
    if inside.shape != grid_shape:
        whole = np.zeros(grid_shape, bool)
        whole[box] = inside
        inside = whole
    if inside.shape != (h0, w0):
        inside = cv2.resize(inside.view(np.uint8), (w0, h0), interpolation=cv2.INTER_LINEAR_EXACT).view(bool)
    return cv2.dilate(inside.view(np.uint8), disc(2 * params.bubble_rim_um / px_um + 1)).view(bool)

"""Slide artefacts to leave out of the scored area: tissue folds and air bubbles, and the options of all artefacts.

Pure functions over numpy arrays (OpenCV does the filtering and the
connected components). Pen ink is found by :func:`ihc_score.tissue.detect_pen_ink`.

* :func:`find_thumbnail_artefacts` works on the tissue thumbnail (about
  8 um/px) that :func:`ihc_score.tissue.detect_tissue` was given.

  - **Fold**: tissue folded over itself is two layers, so its OD is about
    twice that of the tissue around it, for both stains. The OD sum is
    compared with a *local* reference: its median over a window
    (``fold_window_um``) much wider than a fold, glass first filled with the
    nearest tissue value. A fold is where the ratio lies in
    ``[fold_min_ratio, fold_max_ratio]``, hematoxylin OD rises by at least
    ``fold_min_ratio`` too (DAB as well where the surroundings have DAB to
    double), the OD sum is at least ``fold_min_od``, and the piece covers
    ``fold_min_area_um2``. A dense or strongly DAB-positive metastasis wider
    than half the window is its own reference (ratio about 1); at its
    border the ratio to the host tissue is usually above ``fold_max_ratio``.
  - **Air bubble**: the refraction rim is a thin, dark, achromatic ring.
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

* Out-of-focus blocks of a tile are judged in :mod:`ihc_score.focus`.

Limits (measured on synthetic slides, see ``benchmarks/artefact_accuracy.py``):
a fold over tissue that lies within half a window of a much denser tissue
(e.g. the host tissue just beside a metastasis) is missed, because the
reference there is the denser tissue; a fold wider than about a third of
``fold_window_um`` is judged against itself. A metastasis or strand
narrower than half the window with 1.5-2.6 times the OD of its
surroundings *and* both stains scaled alike looks like a fold. On
thumbnails of 1.5-4 um/px, bubbles of 45-180 um radius with rims of 8-35 um
and peak OD 0.4-1.2 per channel are found (IoU 0.75-0.96). At 8 um/px
(the thumbnail of a large slide) the same holds for rims of at least
about 15 um and 0.7 OD (IoU 0.84-0.97); a rim of 8-10 um or of 0.4-0.5
OD averages into the tissue there and its bubble is missed. Bubbles
crowded so that their rims touch are missed; a closed, thin, grey pen
circle would be taken for a bubble. Blur detection needs structure:
blocks of pale, smooth tissue are not judged, and at pixel sizes coarser
than about 1 um a blur of 1.5 um cannot be seen at all.

Conventions
-----------
OD is base 10 against the slide's background ``I0`` (``TissueMask.background``
for the thumbnail, the ``background`` argument for a tile). Thumbnail pixels
are ``downsample * mpp_um`` um; areas are reported in mm^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ihc_score.stain import DEFAULT_STAINS, StainVectors, deconvolve, od_lut

if TYPE_CHECKING:
    from ihc_score.tissue import TissueMask

__all__ = [
    "ArtefactParams",
    "ThumbnailArtefacts",
    "find_thumbnail_artefacts",
    "find_folds",
    "find_bubbles",
]


@dataclass(frozen=True)
class ArtefactParams:
    """Options of the artefact detectors (all sizes in um / um^2, OD base 10).

    Parameters
    ----------
    folds, bubbles, blur : bool
        Look for tissue folds, air bubbles, out-of-focus areas.
    fold_grid_um : float
        Folds are judged on the thumbnail averaged down to about this pixel
        size when it is finer (a small slide), so that the cells' texture
        does not dominate the references.
    fold_window_um : float
        Side of the square window of the local median reference of a fold
        (at least 2.5 times the widest fold to find).
    fold_min_elongation : float
        Length over width (minimum-area rectangle) a fold reaches: a compact
        dense metastasis smaller than the window is darker than the tissue
        around it like a fold, but round.
    fold_reach_um : float
        Distance over which the reference takes the densest local median.
    fold_min_ratio, fold_max_ratio : float
        Hematoxylin OD of a fold over its local reference: a second layer
        gives about 2 (1.5-1.9 on a thumbnail of textured tissue); above
        ``fold_max_ratio`` it is a different tissue.
    fold_grow_ratio : float
        A fold grows from pixels of ``fold_min_ratio`` into connected pixels
        whose hematoxylin ratio reaches this.
    fold_min_od : float
        Lowest OD sum (R + G + B) of a fold pixel.
    fold_min_dab_od : float
        Local DAB reference above which DAB must rise with hematoxylin.
    fold_min_dab_ratio : float
        Least DAB over its reference there (a thumbnail of dark DAB
        saturates, so less than ``fold_min_ratio``).
    fold_min_od_ratio : float
        Least OD sum over its reference (saturates too).
    fold_min_area_um2 : float
        Smallest fold.
    bubble_grid_um : float
        Pixel size the rim is looked for at: a finer thumbnail is averaged
        down to it (cell texture fades, a rim stays); a coarser one is used
        as it is.
    bubble_flank_um : float
        Distance from a rim pixel to the tissue it is compared with on each
        side (and to its neighbours along the rim); more than half the
        widest rim to find.
    bubble_min_rim_od : float
        Least OD sum by which a rim pixel (and its two neighbours along the
        rim) exceeds the darker flank, in its best direction.
    bubble_grow_rim_od : float
        A rim grows from pixels of ``bubble_min_rim_od`` into connected
        pixels that exceed their flanks by this.
    bubble_max_rim_angle_deg : float
        Largest angle between grey and a rim pixel's OD vector minus its
        darker flank's (the colour the rim adds).
    bubble_grow_rim_angle_deg : float
        The same for the pixels a rim grows into.
    bubble_min_rim_um : float
        Pieces of rim shorter than this (counted in pixels of rim) are
        specks, not rim.
    bubble_gap_um : float
        Gaps in a rim up to about this long are bridged.
    bubble_min_area_um2, bubble_max_area_um2 : float
        Area of the inside of a bubble.
    bubble_min_solidity : float
        Inside area over its convex hull's area, 0-1.
    bubble_min_rim_cover : float
        Fraction of the ring around a hole (2 px wide) that must be rim
        before gaps are bridged, 0-1.
    bubble_rim_um : float
        Rim width added around the inside.
    blur_block_um : float
        Side of a blur block.
    blur_fine_um, blur_coarse_um : float
        Scales of the fine band (grid of ``blur_fine_um / 1.5``) and of the
        coarse band (Gaussian sigmas ``blur_fine_um``-``blur_coarse_um``).
    blur_max_sharpness : float
        Fine energy over structure energy below which a judged block is out
        of focus.
    blur_min_contrast_od : float
        Standard deviation of the grey OD (smoothed at ``blur_fine_um``)
        a block needs to be judged.
    blur_tissue_od : float
        Grey OD from which a pixel counts as tissue.
    blur_min_tissue_fraction : float
        Fraction of tissue pixels a block needs to be judged, 0-1.
    """

    folds: bool = True
    bubbles: bool = True
    blur: bool = True
    fold_grid_um: float = 8.0
    fold_window_um: float = 320.0
    fold_min_elongation: float = 2.0
    fold_reach_um: float = 160.0
    fold_min_ratio: float = 1.45
    fold_grow_ratio: float = 1.25
    fold_max_ratio: float = 2.6
    fold_min_od: float = 0.15
    fold_min_dab_od: float = 0.08
    fold_min_dab_ratio: float = 1.0
    fold_min_od_ratio: float = 1.05
    fold_min_area_um2: float = 10_000.0
    bubble_grid_um: float = 4.0
    bubble_flank_um: float = 16.0
    bubble_min_rim_od: float = 0.3
    bubble_grow_rim_od: float = 0.15
    bubble_max_rim_angle_deg: float = 12.0
    bubble_grow_rim_angle_deg: float = 20.0
    bubble_min_rim_um: float = 96.0
    bubble_gap_um: float = 64.0
    bubble_min_area_um2: float = 2_000.0
    bubble_max_area_um2: float = 4_000_000.0
    bubble_min_solidity: float = 0.8
    bubble_min_rim_cover: float = 0.5
    bubble_rim_um: float = 12.0
    blur_block_um: float = 64.0
    blur_fine_um: float = 0.75
    blur_coarse_um: float = 3.0
    blur_max_sharpness: float = 0.03
    blur_min_contrast_od: float = 0.03
    blur_tissue_od: float = 0.04
    blur_min_tissue_fraction: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "bool" or isinstance(v, bool):
                continue
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{f.name} must be a positive number, got {v!r}")
        if not 1.0 < self.fold_grow_ratio <= self.fold_min_ratio < self.fold_max_ratio:
            raise ValueError(f"fold ratios must satisfy 1 < fold_grow_ratio <= fold_min_ratio < fold_max_ratio, "
                             f"got {self.fold_grow_ratio}, {self.fold_min_ratio}, {self.fold_max_ratio}")
        if not self.bubble_min_area_um2 < self.bubble_max_area_um2:
            raise ValueError(f"bubble_min_area_um2 must be < bubble_max_area_um2, "
                             f"got {self.bubble_min_area_um2}, {self.bubble_max_area_um2}")
        if not self.blur_fine_um < self.blur_coarse_um:
            raise ValueError(f"blur_fine_um must be < blur_coarse_um, got {self.blur_fine_um}, {self.blur_coarse_um}")
        for name in ("bubble_min_solidity", "bubble_min_rim_cover", "blur_min_tissue_fraction"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not self.bubble_max_rim_angle_deg <= self.bubble_grow_rim_angle_deg < 90:
            raise ValueError(f"bubble_max_rim_angle_deg <= bubble_grow_rim_angle_deg < 90 must hold, "
                             f"got {self.bubble_max_rim_angle_deg}, {self.bubble_grow_rim_angle_deg}")
        if not self.bubble_grow_rim_od <= self.bubble_min_rim_od:
            raise ValueError(f"bubble_grow_rim_od must be <= bubble_min_rim_od, "
                             f"got {self.bubble_grow_rim_od}, {self.bubble_min_rim_od}")


@dataclass(frozen=True, eq=False)
class ThumbnailArtefacts:
    """Folds and air bubbles of one slide, on the tissue mask's grid.

    Parameters
    ----------
    fold, bubble : ndarray of bool, shape (h, w)
        Area to leave out (a bubble: its rim and inside, tissue or not).
    fold_area_mm2, bubble_area_mm2 : float
        Area of each mask on tissue, mm^2.
    flags : tuple of str
        ``"fold"``, ``"air_bubble"`` when the area is not 0.
    """

    fold: np.ndarray
    bubble: np.ndarray
    fold_area_mm2: float
    bubble_area_mm2: float
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("fold", "bubble"):
            m = getattr(self, name)
            if m.dtype != np.bool_ or m.ndim != 2:
                raise ValueError(f"{name} must be a 2-D bool array, got {m.dtype} {m.shape}")
        if self.fold.shape != self.bubble.shape:
            raise ValueError(f"fold and bubble must have one shape, got {self.fold.shape}, {self.bubble.shape}")
        if self.fold_area_mm2 < 0 or self.bubble_area_mm2 < 0:
            raise ValueError("fold_area_mm2 and bubble_area_mm2 must be >= 0")
        object.__setattr__(self, "flags", tuple(self.flags))

    @property
    def mask(self) -> np.ndarray:
        """Union of the fold and bubble masks: the area to take out of the scored tissue."""
        return self.fold | self.bubble


def _disc(diameter_px: float) -> np.ndarray:
    d = max(3, 2 * int(round(diameter_px / 2)) + 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))


def _fill_nearest(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``values`` with every pixel outside ``known`` set to the value of the nearest known pixel."""
    if known.all() or not known.any():
        return values
    _, lab = cv2.distanceTransformWithLabels((~known).view(np.uint8), cv2.DIST_L2, 3,
                                             labelType=cv2.DIST_LABEL_PIXEL)
    lut = np.concatenate([np.zeros(1, values.dtype), values[known]])
    return lut[lab]


#: Largest median window OpenCV's 8-bit median filter takes in every build; wider
#: windows are taken on a coarser grid.
_MAX_MEDIAN_PX = 15


def _local_median(values: np.ndarray, window_px: int, scale: float) -> np.ndarray:
    """Median over a square window (OpenCV's O(1) 8-bit median; ``values`` quantised by ``scale``).

    A window wider than :data:`_MAX_MEDIAN_PX` (a thumbnail finer than a few
    um/px: a small image) is taken on a grid coarsened by area averaging so
    that it fits, and the result is brought back by linear interpolation.
    """
    k = max(3, 2 * (window_px // 2) + 1)
    q = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    h, w = q.shape
    factor = -(-k // _MAX_MEDIAN_PX)
    if factor > 1:
        q = cv2.resize(q, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
        k = max(3, 2 * ((k // factor) // 2) + 1)
    pad = k // 2
    q = cv2.copyMakeBorder(q, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    med = cv2.medianBlur(q, k)[pad:-pad, pad:-pad]
    if factor > 1:
        med = cv2.resize(med, (w, h), interpolation=cv2.INTER_LINEAR)
    return med.astype(np.float32) / scale


#: Largest reach (px) of the fold reference's dilation taken at the thumbnail's own resolution.
_MAX_REACH_PX = 10


def _remove_small(mask: np.ndarray, min_px: float) -> np.ndarray:
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_px
    keep[0] = False
    return keep[labels]


def _reference(values: np.ndarray, known: np.ndarray, win: int, reach: int, scale: float) -> np.ndarray:
    """Local reference of a layer: median over ``win`` px of the ``known`` pixels (others take the
    nearest known value), then its maximum within ``reach`` px, so that a pixel near denser tissue is
    compared with that tissue rather than with what lies on its other side."""
    if not known.any():
        return np.full(values.shape, np.inf, np.float32)
    filled = _fill_nearest(np.maximum(values, 0), known)
    factor = max(1, reach // _MAX_REACH_PX)
    if factor == 1:
        med = _local_median(filled, win, scale)
        return cv2.dilate(med, _disc(2 * reach + 1)) if reach > 0 else med
    # a fine thumbnail (a small slide): the reference is smooth at the scale of the reach, so it is
    # taken on a grid coarsened to keep the dilation's disc small (seconds otherwise)
    h, w = filled.shape
    small = cv2.resize(filled, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    med = cv2.dilate(_local_median(small, max(1, win // factor), scale), _disc(2 * (reach // factor) + 1))
    return cv2.resize(med, (w, h), interpolation=cv2.INTER_LINEAR)


def _hysteresis(strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Pieces of ``weak`` (8-connected) that hold a pixel of ``strong``."""
    n, labels = cv2.connectedComponents(weak.view(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[labels[strong & weak]] = True
    keep[0] = False
    return keep[labels]


def find_folds(thumb: np.ndarray, tissue: np.ndarray, *, background: tuple[float, float, float], px_um: float,
               params: ArtefactParams = ArtefactParams(), stains: StainVectors = DEFAULT_STAINS) -> np.ndarray:
    """Tissue folds on a thumbnail (see the module docstring).

    Parameters
    ----------
    thumb : ndarray, uint8, (h, w, 3)
    tissue : ndarray of bool, (h, w)
    background : 3 floats
        ``I0``, 8-bit.
    px_um : float
        Thumbnail pixel size, um.
    params : ArtefactParams
    stains : StainVectors
        Vectors to deconvolve with (their background is replaced by ``background``).

    Returns
    -------
    ndarray of bool, (h, w)
        True on a fold, within ``tissue``.
    """
    if not tissue.any():
        return np.zeros(tissue.shape, bool)
    st = StainVectors(stains.hematoxylin, stains.dab, background=background)
    conc = cv2.GaussianBlur(deconvolve(thumb, st), (3, 3), 0)
    od = cv2.GaussianBlur(cv2.LUT(np.ascontiguousarray(thumb), np.ascontiguousarray(
        od_lut(background).T.reshape(1, 256, 3))), (3, 3), 0).sum(axis=2)
    hema, dab = conc[..., 0], conc[..., 1]
    win = int(round(params.fold_window_um / px_um))
    reach = int(round(params.fold_reach_um / px_um))
    fold = np.zeros(tissue.shape, bool)
    for _ in range(2):  # the second pass leaves the first pass's folds out of the reference
        known = tissue & ~fold
        ratio_h = hema / np.maximum(_reference(hema, known, win, reach, 250.0), 1e-3)
        ratio_od = od / np.maximum(_reference(od, known, win, reach, 80.0), 1e-3)
        ref_d = _reference(dab, known, win, 0, 250.0)
        weak = tissue & (od >= params.fold_min_od) & (ratio_h >= params.fold_grow_ratio)
        # the OD sum and DAB of a thumbnail saturate and average in intensity: they need only not fall
        weak &= (ratio_h <= params.fold_max_ratio) & (ratio_od >= params.fold_min_od_ratio)
        weak &= (ref_d < params.fold_min_dab_od) | (dab >= params.fold_min_dab_ratio * ref_d)
        # ... nor rise beyond what a second layer gives: a band of DAB-positive tumour (a viable rim
        # around necrosis) among pale, DAB-negative tissue is another tissue, not a fold
        ref_d_near = _reference(dab, known, win, reach, 250.0)
        weak &= dab <= params.fold_max_ratio * np.maximum(ref_d_near, params.fold_min_dab_od)
        fold = _hysteresis(weak & (ratio_h >= params.fold_min_ratio), weak)
    fold = cv2.morphologyEx(fold.view(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)).view(bool)
    fold = _remove_small(fold, params.fold_min_area_um2 / px_um**2) & tissue
    return _elongated(fold, params.fold_min_elongation)


def _elongated(mask: np.ndarray, min_elongation: float) -> np.ndarray:
    """Pieces of ``mask`` (8-connected) whose minimum-area rectangle is at least ``min_elongation`` times longer
    than wide: a fold is a band, while a small, dense, compact metastasis in paler tissue looks like a second
    layer to the OD ratios alone."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    for k in range(1, n):  # a few pieces per slide
        x, y, w, h = stats[k, :4]
        ys, xs = np.nonzero(labels[y : y + h, x : x + w] == k)
        (_, _), (rw, rh), _ = cv2.minAreaRect(np.column_stack([xs, ys]).astype(np.float32))
        keep[k] = max(rw, rh) + 1 >= min_elongation * (min(rw, rh) + 1)
    return keep[labels]


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
    total = od.sum(axis=2)
    contrast = np.full(total.shape, -np.inf, np.float32)
    excess = np.zeros_like(od)
    for k in range(_RIM_DIRECTIONS):
        cx, cy = math.cos(math.pi * k / _RIM_DIRECTIONS), math.sin(math.pi * k / _RIM_DIRECTIONS)
        dx, dy = flank_px * cx, flank_px * cy
        flank = np.maximum(_shifted(od, dx, dy), _shifted(od, -dx, -dy))
        along = np.minimum(_shifted(total, -dy, dx), _shifted(total, dy, -dx))
        score = np.minimum(total, along) - flank.sum(axis=2)
        better = score > contrast
        contrast[better] = score[better]
        excess[better] = (od - flank)[better]
    return contrast, excess


def _rim_mask(od: np.ndarray, px_um: float, params: ArtefactParams) -> np.ndarray:
    """Rim pixels on the grid of ``od`` (pixels of ``px_um``), specks left out."""
    contrast, excess = _rim_contrast(od, max(1.5, params.bubble_flank_um / px_um))
    cos = excess.sum(axis=2) / (math.sqrt(3.0) * np.maximum(np.linalg.norm(excess, axis=2), 1e-6))
    strong = (contrast >= params.bubble_min_rim_od) & (cos >= math.cos(math.radians(params.bubble_max_rim_angle_deg)))
    weak = (contrast >= params.bubble_grow_rim_od) & (cos >= math.cos(math.radians(params.bubble_grow_rim_angle_deg)))
    # join a rim broken by a pixel, then drop specks (texture)
    rim = cv2.morphologyEx(_hysteresis(strong, weak).view(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return _remove_small(rim.view(bool), params.bubble_min_rim_um / px_um)


def _is_bubble(hole: np.ndarray, rim: np.ndarray, total: np.ndarray, params: ArtefactParams) -> bool:
    """Whether a hole enclosed by ``rim`` (arrays of one window around it) is an air bubble.

    The ring just around the hole was seen as rim, the band beyond it much
    less (a thin rim, not a mass of specks), and the inside is not darker
    than the tissue outside (upper quartiles: a bubble may lie half on glass).
    """
    ring = cv2.dilate(hole.view(np.uint8), _disc(5)).view(bool)
    band = cv2.dilate(hole.view(np.uint8), _disc(13)).view(bool) & ~ring
    ring &= ~hole
    if not band.any():
        return False
    cover, beyond = rim[ring].mean(), rim[band].mean()
    return bool(cover >= params.bubble_min_rim_cover and cover - beyond >= params.bubble_min_rim_cover / 2
                and np.percentile(total[hole], 75) <= np.percentile(total[band], 75) + 0.05)


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
    total = od.sum(axis=2)
    rim = _rim_mask(od, grid_um, params)
    # gaps are bridged by thickening the rim by half a gap; each hole is then grown back by as much
    # (a closing would not bridge a gap in a line one pixel wide)
    reach = max(1, int(round(params.bubble_gap_um / 2 / grid_um)))
    thick = cv2.dilate(rim.view(np.uint8), _disc(2 * reach + 1)).view(bool)
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
        hole = cv2.dilate((labels[sl] == k).view(np.uint8), _disc(2 * reach + 1))
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
    if inside.shape != (h0, w0):
        inside = cv2.resize(inside.view(np.uint8), (w0, h0), interpolation=cv2.INTER_LINEAR_EXACT).view(bool)
    return cv2.dilate(inside.view(np.uint8), _disc(2 * params.bubble_rim_um / px_um + 1)).view(bool)


def find_thumbnail_artefacts(thumb: np.ndarray, tissue: TissueMask, *, mpp_um: float,
                             params: ArtefactParams = ArtefactParams()) -> ThumbnailArtefacts:
    """Folds and air bubbles of a slide, on its tissue thumbnail.

    Parameters
    ----------
    thumb : ndarray, uint8, (h, w, 3)
        The RGB thumbnail :func:`ihc_score.tissue.detect_tissue` was given.
    tissue : TissueMask
        Its result (mask, downsample, background ``I0``).
    mpp_um : float
        Level-0 pixel size, um/px; a thumbnail pixel is ``tissue.downsample * mpp_um`` um.
    params : ArtefactParams

    Returns
    -------
    ThumbnailArtefacts
        Masks on the thumbnail's grid; areas counted on tissue.

    Raises
    ------
    ValueError
        When ``thumb`` and the mask differ in shape or ``mpp_um`` is not positive.
    """
    if thumb.dtype != np.uint8 or thumb.ndim != 3 or thumb.shape[:2] != tissue.mask.shape:
        raise ValueError(f"thumb must be uint8 RGB of the tissue mask's shape {tissue.mask.shape}, "
                         f"got {thumb.dtype} {thumb.shape}")
    if not mpp_um > 0:
        raise ValueError(f"mpp_um must be > 0, got {mpp_um}")
    px_um = tissue.downsample * mpp_um
    empty = np.zeros(tissue.mask.shape, bool)
    bubble = find_bubbles(thumb, background=tissue.background, px_um=px_um, params=params) if params.bubbles \
        else empty
    fold = empty
    if params.folds:
        fold = _folds_on_grid(thumb, tissue.mask & ~bubble, background=tissue.background, px_um=px_um, params=params)
    px_mm2 = (px_um / 1000.0) ** 2
    fold_mm2 = float((fold & tissue.mask).sum() * px_mm2)
    bubble_mm2 = float((bubble & tissue.mask).sum() * px_mm2)
    flags = tuple(f for f, a in (("fold", fold_mm2), ("air_bubble", bubble_mm2)) if a > 0)
    return ThumbnailArtefacts(fold, bubble, fold_mm2, bubble_mm2, flags)


def _folds_on_grid(thumb: np.ndarray, tissue: np.ndarray, *, background: tuple[float, float, float], px_um: float,
                   params: ArtefactParams) -> np.ndarray:
    """:func:`find_folds` on a thumbnail averaged down to about ``fold_grid_um`` when it is finer.

    A fold is hundreds of um across; on a fine thumbnail (a small slide) the
    cells' own texture would dominate the local references, so the fold is
    judged where that texture is averaged away and its mask brought back
    (nearest) onto the thumbnail's grid.
    """
    factor = int(params.fold_grid_um // px_um)
    if factor < 2:
        return find_folds(thumb, tissue, background=background, px_um=px_um, params=params)
    h, w = tissue.shape
    size = (max(1, w // factor), max(1, h // factor))
    small = cv2.resize(thumb, size, interpolation=cv2.INTER_AREA)
    known = cv2.resize(tissue.view(np.uint8), size, interpolation=cv2.INTER_AREA) > 0  # half or more tissue
    fold = find_folds(small, known, background=background, px_um=px_um * w / size[0], params=params)
    return cv2.resize(fold.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).view(bool) & tissue

"""Slide artefacts found on the tissue thumbnail and left out of the scored area: tissue folds and air bubbles.

Pure functions over numpy arrays (OpenCV does the filtering and the
connected components). Pen ink is found by :func:`ihc_score.tissue.mask.detect_pen_ink`.

* :func:`find_thumbnail_artefacts` works on the tissue thumbnail (about
  8 um/px) that :func:`ihc_score.tissue.mask.detect_tissue` was given.

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
    DAB may not rise beyond ``fold_max_ratio`` times the densest DAB around
    (a DAB-positive tumour rim around necrosis is another tissue, not a
    second layer), and the piece must be a band (``fold_min_elongation``).
    A thumbnail finer than ``fold_grid_um`` is averaged down to it first.
  - **Air bubble**: a closed, thin, dark and colourless refraction rim
    (:mod:`ihc_score.tissue.bubbles`).

* Out-of-focus blocks of a tile are judged in :mod:`ihc_score.tissue.focus`.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ihc_score.stain import DEFAULT_STAINS, StainVectors, channel_sum, deconvolve, od_lut
from ihc_score.tissue.artefact_params import ArtefactParams
from ihc_score.tissue.bubbles import find_bubbles
from ihc_score.tissue.morphology import disc, hysteresis, remove_small

if TYPE_CHECKING:
    from ihc_score.tissue.mask import TissueMask

__all__ = ["ThumbnailArtefacts", "find_thumbnail_artefacts", "find_folds"]


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


def _nearest_known(known: np.ndarray) -> np.ndarray | None:
    """For every pixel, 1 + the index (in ``values[known]`` order) of the nearest ``known`` pixel; None when
    every pixel or none is known (nothing to fill)."""
    if known.all() or not known.any():
        return None
    _, lab = cv2.distanceTransformWithLabels((~known).view(np.uint8), cv2.DIST_L2, 3,
                                             labelType=cv2.DIST_LABEL_PIXEL)
    return lab


def _fill_nearest(values: np.ndarray, known: np.ndarray, nearest: np.ndarray | None) -> np.ndarray:
    """``values`` with every pixel outside ``known`` set to the value of the nearest known pixel.

    ``nearest`` is :func:`_nearest_known` of ``known``, shared by the layers filled over one mask.
    """
    if nearest is None:
        return values
    lut = np.concatenate([np.zeros(1, values.dtype), values[known]])
    return lut[nearest]


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


def _reference(values: np.ndarray, known: np.ndarray, nearest: np.ndarray | None, win: int, reach: int,
               scale: float) -> np.ndarray:
    """Local reference of a layer: median over ``win`` px of the ``known`` pixels (others take the
    nearest known value, ``nearest`` being :func:`_nearest_known` of ``known``), then its maximum within
    ``reach`` px, so that a pixel near denser tissue is compared with that tissue rather than with what
    lies on its other side."""
    if not known.any():
        return np.full(values.shape, np.inf, np.float32)
    filled = _fill_nearest(np.maximum(values, 0), known, nearest)
    factor = max(1, reach // _MAX_REACH_PX)
    if factor == 1:
        med = _local_median(filled, win, scale)
        return cv2.dilate(med, disc(2 * reach + 1)) if reach > 0 else med
    # a fine thumbnail (a small slide): the reference is smooth at the scale of the reach, so it is
    # taken on a grid coarsened to keep the dilation's disc small (seconds otherwise)
    h, w = filled.shape
    small = cv2.resize(filled, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    med = cv2.dilate(_local_median(small, max(1, win // factor), scale), disc(2 * (reach // factor) + 1))
    return cv2.resize(med, (w, h), interpolation=cv2.INTER_LINEAR)


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
    od = channel_sum(cv2.GaussianBlur(cv2.LUT(np.ascontiguousarray(thumb), np.ascontiguousarray(
        od_lut(background).T.reshape(1, 256, 3))), (3, 3), 0))
    hema, dab = conc[..., 0], conc[..., 1]
    win = int(round(params.fold_window_um / px_um))
    reach = int(round(params.fold_reach_um / px_um))
    fold = np.zeros(tissue.shape, bool)
    for _ in range(2):  # the second pass leaves the first pass's folds out of the reference
        known = tissue & ~fold
        nearest = _nearest_known(known)
        ratio_h = hema / np.maximum(_reference(hema, known, nearest, win, reach, 250.0), 1e-3)
        ratio_od = od / np.maximum(_reference(od, known, nearest, win, reach, 80.0), 1e-3)
        ref_d = _reference(dab, known, nearest, win, 0, 250.0)
        weak = tissue & (od >= params.fold_min_od) & (ratio_h >= params.fold_grow_ratio)
        # the OD sum and DAB of a thumbnail saturate and average in intensity: they need only not fall
        weak &= (ratio_h <= params.fold_max_ratio) & (ratio_od >= params.fold_min_od_ratio)
        weak &= (ref_d < params.fold_min_dab_od) | (dab >= params.fold_min_dab_ratio * ref_d)
        # ... nor rise beyond what a second layer gives: a band of DAB-positive tumour (a viable rim
        # around necrosis) among pale, DAB-negative tissue is another tissue, not a fold
        ref_d_near = _reference(dab, known, nearest, win, reach, 250.0)
        weak &= dab <= params.fold_max_ratio * np.maximum(ref_d_near, params.fold_min_dab_od)
        fold = hysteresis(weak & (ratio_h >= params.fold_min_ratio), weak)
        if not fold.any():
            break  # a second pass would see the same references (most slides: no fold)
    fold = cv2.morphologyEx(fold.view(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)).view(bool)
    fold = remove_small(fold, params.fold_min_area_um2 / px_um**2) & tissue
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


def find_thumbnail_artefacts(thumb: np.ndarray, tissue: TissueMask, *, mpp_um: float,
                             params: ArtefactParams = ArtefactParams()) -> ThumbnailArtefacts:
    """Folds and air bubbles of a slide, on its tissue thumbnail.

    Parameters
    ----------
    thumb : ndarray, uint8, (h, w, 3)
        The RGB thumbnail :func:`ihc_score.tissue.mask.detect_tissue` was given.
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


#: The fold search box's edges lie on multiples of this many fold-grid pixels:
#: a multiple of the references' coarsest block (4 grid pixels with the
#: default window and reach).
_FOLD_ALIGN_PX = 16


def _folds_on_grid(thumb: np.ndarray, tissue: np.ndarray, *, background: tuple[float, float, float], px_um: float,
                   params: ArtefactParams) -> np.ndarray:
    """:func:`find_folds` around the tissue, on a thumbnail averaged down to about ``fold_grid_um`` when it is finer.

    A fold is hundreds of um across; on a fine thumbnail (a small slide) the
    cells' own texture would dominate the local references, so the fold is
    judged where that texture is averaged away and its mask brought back
    (nearest) onto the thumbnail's grid.

    Only the box around the tissue is searched, widened by
    :func:`_fold_margin_px`: glass farther out takes no part in a tissue
    pixel's references, so a slide mostly of glass costs what its tissue
    does. The box's edges lie on multiples of :data:`_FOLD_ALIGN_PX` grid
    pixels, where the references' block averages of the whole thumbnail lie
    too: on a thumbnail whose sides are such multiples, the folds are those
    of the whole thumbnail, bit for bit (with a window and reach whose
    blocks divide :data:`_FOLD_ALIGN_PX`, as the defaults' do).
    """
    factor = max(1, int(params.fold_grid_um // px_um))
    h, w = tissue.shape
    rows = np.flatnonzero(tissue.any(axis=1))
    if rows.size == 0:
        return np.zeros((h, w), bool)
    cols = np.flatnonzero(tissue.any(axis=0))
    margin, align = _fold_margin_px(px_um * factor, params) * factor, _FOLD_ALIGN_PX * factor
    y0, x0 = (max(0, int(rows[0]) - margin) // align) * align, (max(0, int(cols[0]) - margin) // align) * align
    y1 = min(h, -(-(int(rows[-1]) + 1 + margin) // align) * align)
    x1 = min(w, -(-(int(cols[-1]) + 1 + margin) // align) * align)
    box = (slice(y0, y1), slice(x0, x1))
    fold = np.zeros((h, w), bool)
    fold[box] = _folds_resampled(thumb[box], tissue[box], factor, background=background, px_um=px_um, params=params)
    return fold


def _fold_margin_px(grid_um: float, params: ArtefactParams) -> int:
    """Glass (grid pixels) kept around the tissue for the fold search.

    A tissue pixel's references reach half a window (the median) and the
    reach (the dilation) into the nearest-tissue values filled over the
    glass; the box's own edge disturbs its references as far inwards.
    Twice the sum, so neither meets the tissue.
    """
    return int(math.ceil(2.0 * (params.fold_window_um / 2.0 + params.fold_reach_um) / grid_um)) + _FOLD_ALIGN_PX


def _folds_resampled(thumb: np.ndarray, tissue: np.ndarray, factor: int, *, background: tuple[float, float, float],
                     px_um: float, params: ArtefactParams) -> np.ndarray:
    """:func:`find_folds` on ``thumb`` averaged over ``factor`` x ``factor`` blocks (1: as it is), brought back.

    The last rows and columns that do not fill a block (less than
    ``factor`` pixels at the slide's edge) hold no fold.
    """
    if factor < 2:
        return find_folds(thumb, tissue, background=background, px_um=px_um, params=params)
    h, w = tissue.shape
    hs, ws = h // factor, w // factor
    fold = np.zeros((h, w), bool)
    if hs == 0 or ws == 0:
        return fold
    whole = (slice(0, hs * factor), slice(0, ws * factor))
    small = cv2.resize(thumb[whole], (ws, hs), interpolation=cv2.INTER_AREA)
    known = cv2.resize(tissue[whole].view(np.uint8), (ws, hs), interpolation=cv2.INTER_AREA) > 0  # half or more tissue
    found = find_folds(small, known, background=background, px_um=px_um * factor, params=params)
    fold[whole] = found.repeat(factor, axis=0).repeat(factor, axis=1)
    return fold & tissue

"""Tissue mask of a whole slide from a low-resolution thumbnail.

The thumbnail (about 8 um/px) is turned into a boolean mask: glass out by an
optical-density threshold, pen ink out, small holes filled, specks dropped.
Everything here is a pure function over numpy arrays; OpenCV does the
morphology and the connected components.

Conventions
-----------
OD is base-10 against the slide's own background ``I0``
(:func:`ihc_score.stain.deconvolution.optical_density`). The tissue threshold applies to
the sum of the three channels' OD; a morphological closing then joins pale,
lacy tissue without moving the tissue edge. Sizes are in um and um^2 and are
turned into mask pixels with the thumbnail's pixel size
``downsample * mpp_um``. Hues are in degrees (0-360), saturation in 0-1 (HSV
of the 8-bit RGB).

References
----------
.. [1] N. Otsu, "A threshold selection method from gray-level histograms",
   IEEE Trans. Syst. Man Cybern. 9 (1979), 62-66.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ihc_score.checks import require_range
from ihc_score.errors import NotBrightfieldError
from ihc_score.stain import MIN_BRIGHTFIELD_BACKGROUND, channel_sum, estimate_background, od_lut
from ihc_score.tissue.morphology import fill_holes, remove_small

__all__ = ["TissueParams", "TissueMask", "detect_tissue", "detect_pen_ink", "is_brightfield"]

#: Pen-ink colours (hue range in degrees, lowest saturation 0-1). Neither
#: hematoxylin (hue about 240-290, violet-blue with OD_G >= OD_R) nor DAB
#: (hue about 15-45, brown) falls in them; the third entry catches saturated
#: dark blue ink whose hue reaches hematoxylin's, at a saturation (>= 0.75)
#: that a hematoxylin thumbnail reaches only above 1.4 OD.
_INK_HUES: tuple[tuple[float, float, float], ...] = (
    (70.0, 170.0, 0.20),  # green
    (170.0, 232.0, 0.35),  # cyan to blue
    (232.0, 260.0, 0.75),  # deep saturated blue
)
#: Black marker: the brightest channel below this (8-bit) and saturation below 0.4.
_INK_MAX_VALUE: int = 60
_INK_MAX_SATURATION_BLACK: float = 0.4
#: OD-sum scale of the 8-bit histogram the Otsu threshold is taken on.
_OTSU_OD_RANGE: float = 1.5


@dataclass(frozen=True)
class TissueParams:
    """Options of :func:`detect_tissue`.

    Parameters
    ----------
    mpp_um : float
        Pixel size (um/px) of the thumbnail to ask the slide for.
    min_tissue_od : float
        Lowest tissue threshold on the OD sum (R + G + B, base 10); Otsu's
        threshold is clamped to ``[min_tissue_od, max_tissue_od]``.
    max_tissue_od : float
        Highest tissue threshold on the OD sum. Otsu splits a slide of
        tumour, pale stroma and glass between the tumour and the rest, and
        the pale stroma (OD sum about 0.1-0.15, lacy, so paler still once
        averaged into 8 um pixels) would be lost; at 0.10 the tissue found on
        synthetic slides matches the true outline (IoU 0.94-0.99) whatever the
        thumbnail's pixel size (2-8 um), against IoU 0.70-0.85 at 0.15 and 8 um.
    min_area_um2 : float
        Tissue pieces smaller than this are specks (dust, debris) and dropped:
        500 um^2 is 8 px at 8 um/px, permissive so that small biopsy
        fragments stay.
    max_hole_um2 : float
        Holes in tissue up to this size are filled.
    exclude_pen : bool
        Remove blue, green and black pen ink.
    close_um : float
        Diameter of the disc of the morphological closing applied to the
        thresholded mask, um (0 or below 1.5 px: no closing).
    min_ink_um2 : float
        Ink-coloured pieces smaller than this are left alone (stray pixels of
        tissue, not a pen stroke).
    """

    mpp_um: float = 8.0
    min_tissue_od: float = 0.08
    max_tissue_od: float = 0.10
    min_area_um2: float = 500.0
    max_hole_um2: float = 50_000.0
    exclude_pen: bool = True
    min_ink_um2: float = 10_000.0
    close_um: float = 40.0

    def __post_init__(self) -> None:
        require_range("mpp_um", self.mpp_um, low=0.0, low_open=True, unit="um/px")
        if not 0 < self.min_tissue_od <= self.max_tissue_od:
            raise ValueError(
                f"min_tissue_od must be > 0 and <= max_tissue_od, got {self.min_tissue_od}, {self.max_tissue_od}"
            )
        if self.max_tissue_od >= _OTSU_OD_RANGE:
            raise ValueError(f"max_tissue_od must be < {_OTSU_OD_RANGE}, got {self.max_tissue_od}")
        for name in ("min_area_um2", "max_hole_um2", "min_ink_um2", "close_um"):
            require_range(name, getattr(self, name), low=0.0)


@dataclass(frozen=True, eq=False)
class TissueMask:
    """Tissue mask of one slide at thumbnail resolution.

    Parameters
    ----------
    mask : ndarray of bool, shape (h, w)
        True on tissue.
    downsample : float
        Level-0 pixels per mask pixel.
    background : tuple of 3 float
        ``I0`` estimate (R, G, B), 8-bit units.
    area_mm2 : float
        Tissue area, from the mask, the downsample and the slide's pixel size.
    flags : tuple of str
        ``"no_tissue"``, ``"pen_ink"``, ``"not_brightfield"``.
    ink_area_mm2 : float
        Area of pen ink removed from the tissue candidate, mm^2.
    threshold_od : float
        OD-sum threshold used (NaN when no threshold was taken).
    ink : ndarray of bool or None
        Pen ink removed from the tissue candidate (same grid as ``mask``).
    """

    mask: np.ndarray
    downsample: float
    background: tuple[float, float, float]
    area_mm2: float
    flags: tuple[str, ...] = ()
    ink_area_mm2: float = 0.0
    threshold_od: float = float("nan")
    ink: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mask.dtype != np.bool_ or self.mask.ndim != 2:
            raise ValueError(f"mask must be a 2-D bool array, got {self.mask.dtype} {self.mask.shape}")
        if not self.downsample > 0:
            raise ValueError(f"downsample must be > 0, got {self.downsample}")
        if self.area_mm2 < 0 or self.ink_area_mm2 < 0:
            raise ValueError(f"area_mm2 and ink_area_mm2 must be >= 0, got {self.area_mm2}, {self.ink_area_mm2}")
        object.__setattr__(self, "flags", tuple(self.flags))


def _check_rgb(thumb: np.ndarray) -> None:
    if thumb.dtype != np.uint8 or thumb.ndim != 3 or thumb.shape[2] != 3 or thumb.size == 0:
        raise ValueError(f"thumb must be a non-empty (h, w, 3) uint8 RGB array, got {thumb.dtype} {thumb.shape}")


def is_brightfield(thumb: np.ndarray) -> bool:
    """Whether a thumbnail looks like a brightfield slide.

    Brightfield: the brightest 2 % of pixels (the glass) average at least
    :data:`ihc_score.stain.estimate.MIN_BRIGHTFIELD_BACKGROUND` over R, G, B, and the
    median pixel is not dark (mean of R, G, B at least half that). A
    fluorescence slide has a black background and fails both.

    Parameters
    ----------
    thumb : ndarray, uint8, shape (h, w, 3)

    Returns
    -------
    bool
    """
    _check_rgb(thumb)
    brightness3 = channel_sum(thumb, np.uint16).reshape(-1)  # 3 x mean of R, G, B
    glass, median = np.quantile(brightness3, [0.98, 0.5]) / 3.0
    return bool(glass >= MIN_BRIGHTFIELD_BACKGROUND and median >= MIN_BRIGHTFIELD_BACKGROUND / 2)


def detect_pen_ink(thumb: np.ndarray) -> np.ndarray:
    """Pixels of blue, green or black marker ink.

    Parameters
    ----------
    thumb : ndarray, uint8, shape (h, w, 3)
        RGB.

    Returns
    -------
    ndarray of bool, shape (h, w)
        True where the colour is a saturated hue that neither hematoxylin nor
        DAB gives (see ``_INK_HUES``), or very dark and achromatic.
    """
    _check_rgb(thumb)
    hsv = cv2.cvtColor(np.ascontiguousarray(thumb), cv2.COLOR_RGB2HSV)
    hue = hsv[..., 0].astype(np.float32) * 2.0
    sat = hsv[..., 1].astype(np.float32) / 255.0
    ink = (hsv[..., 2] < _INK_MAX_VALUE) & (sat < _INK_MAX_SATURATION_BLACK)
    for lo, hi, min_sat in _INK_HUES:
        ink |= (hue >= lo) & (hue < hi) & (sat >= min_sat)
    return ink


def _otsu_threshold(od_sum: np.ndarray, lo: float, hi: float) -> float:
    """Otsu's threshold [1]_ of the OD sum, clamped to ``[lo, hi]``."""
    scaled = np.clip(od_sum * (255.0 / _OTSU_OD_RANGE), 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return float(np.clip((t + 0.5) * _OTSU_OD_RANGE / 255.0, lo, hi))


def detect_tissue(
    thumb: np.ndarray,
    *,
    downsample: float,
    mpp_um: float,
    params: TissueParams = TissueParams(),
) -> TissueMask:
    """Tissue mask of a slide thumbnail.

    Steps: brightfield check; background ``I0`` from the brightest pixels;
    OD sum and threshold (Otsu clamped to ``[min_tissue_od,
    max_tissue_od]``); closing with a disc of diameter ``close_um``; pen ink
    removed; holes up to ``max_hole_um2`` filled; pieces below
    ``min_area_um2`` dropped; ``I0`` re-estimated from the glass outside the
    tissue and ink.

    Parameters
    ----------
    thumb : ndarray, uint8, shape (h, w, 3)
        RGB thumbnail of the whole slide, ideally at ``params.mpp_um``.
    downsample : float
        Level-0 pixels per thumbnail pixel.
    mpp_um : float
        Slide pixel size, um per level-0 pixel.
    params : TissueParams

    Returns
    -------
    TissueMask
        Flags: ``"not_brightfield"`` (empty mask; the background is what was
        measured), ``"pen_ink"`` (ink strokes of at least ``min_ink_um2`` removed),
        ``"no_tissue"`` (empty mask).

    Raises
    ------
    ValueError
        If ``thumb`` is not a non-empty uint8 RGB image or a size is not positive.
    """
    _check_rgb(thumb)
    if not (downsample > 0 and mpp_um > 0):
        raise ValueError(f"downsample and mpp_um must be > 0, got {downsample}, {mpp_um}")
    px_um = downsample * mpp_um
    px_mm2 = (px_um / 1000.0) ** 2
    empty = np.zeros(thumb.shape[:2], dtype=bool)
    try:
        bg0 = estimate_background(thumb) if is_brightfield(thumb) else None
    except NotBrightfieldError:
        bg0 = None
    if bg0 is None:
        glass = np.median(thumb.reshape(-1, 3), axis=0)
        bg = (float(max(glass[0], 1)), float(max(glass[1], 1)), float(max(glass[2], 1)))
        return TissueMask(empty, float(downsample), bg, 0.0, ("not_brightfield",))

    lut = od_lut(bg0)
    od_sum = lut[0][thumb[..., 0]] + lut[1][thumb[..., 1]] + lut[2][thumb[..., 2]]
    threshold = _otsu_threshold(od_sum, params.min_tissue_od, params.max_tissue_od)
    candidate = od_sum > threshold
    close_px = 2 * int(round(params.close_um / px_um / 2)) + 1
    if close_px >= 3:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_px, close_px))
        candidate = cv2.morphologyEx(candidate.view(np.uint8), cv2.MORPH_CLOSE, disc).view(bool)

    flags: list[str] = []
    ink = empty
    if params.exclude_pen:
        strokes = remove_small(detect_pen_ink(thumb), params.min_ink_um2 / px_um**2)
        ink = cv2.dilate(strokes.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool) & candidate
    ink_px = int(ink.sum())
    tissue = fill_holes(candidate & ~ink, params.max_hole_um2 / px_um**2) & ~ink
    tissue = remove_small(tissue, params.min_area_um2 / px_um**2)
    if ink_px > 0:
        flags.append("pen_ink")
    if not tissue.any():
        flags.append("no_tissue")

    try:
        bg = estimate_background(thumb, tissue | ink)
    except ValueError:
        bg = bg0
    return TissueMask(
        mask=tissue,
        downsample=float(downsample),
        background=bg,
        area_mm2=float(tissue.sum() * px_mm2),
        flags=tuple(flags),
        ink_area_mm2=float(ink_px * px_mm2),
        threshold_od=threshold,
        ink=ink if ink_px > 0 else None,
    )

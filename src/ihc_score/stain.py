"""Colour deconvolution of brightfield H-DAB images.

Conventions
-----------
Optical density is base-10 against the slide's own background ``I0``::

    OD = -log10(max(I, 1) / I0)        per RGB channel

which is QuPath's convention, so its DAB thresholds (0.2 / 0.4 / 0.6) mean
the same here. Stain vectors are unit-length OD vectors (R, G, B). Stain
concentrations ``C`` solve ``OD = C @ M`` with ``M`` the 3x3 matrix whose rows
are the hematoxylin, DAB and residual vectors (Ruifrok & Johnston 2001).
skimage's ``rgb2hed`` uses natural logs and a fixed ``I0``; it is not this
scale and must not be mixed with it.

References
----------
.. [1] A. C. Ruifrok and D. A. Johnston, "Quantification of histochemical
   staining by color deconvolution", Anal. Quant. Cytol. Histol. 23 (2001).
.. [2] M. Macenko et al., "A method for normalizing histology slides for
   quantitative analysis", Proc. IEEE ISBI (2009), 1107-1110.

Stain type
----------
:func:`identify_stain` tells an H-DAB slide from an H&E slide (or one
stained with a pink/red chromogen alone) by the colour of what is not
hematoxylin. Each stained pixel's OD vector is split into its part along the
slide's hematoxylin vector and the part perpendicular to it; the direction
of the perpendicular part, an angle ``theta`` in the plane perpendicular to
hematoxylin, names the second stain and does not change with how much
hematoxylin the pixel also holds. ``theta`` is 0 for the Ruifrok DAB vector
(brown: blue absorbed more than green) and negative towards
``H x DAB`` (pink/red: green absorbed most): QuPath's eosin
:data:`EOSIN_QUPATH` is at -32 degrees, Ruifrok's eosin at -83, Fast Red at
-43; AEC (-12) cannot be told from DAB this way.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ihc_score.errors import NotBrightfieldError, NotDabStainError

__all__ = [
    "RUIFROK_HEMATOXYLIN",
    "RUIFROK_DAB",
    "StainVectors",
    "DEFAULT_STAINS",
    "od_lut",
    "optical_density",
    "deconvolve",
    "compose_rgb",
    "StainEstimationParams",
    "estimate_stains",
    "estimate_background",
    "angle_deg",
    "MIN_BRIGHTFIELD_BACKGROUND",
    "EOSIN_QUPATH",
    "StainTypeParams",
    "StainIdentity",
    "STAIN_KINDS",
    "identify_stain",
    "require_dab",
]

#: Ruifrok & Johnston H-DAB vectors (unit OD vectors, R, G, B), with the
#: digits of QuPath's "H-DAB default" so both tools separate alike.
RUIFROK_HEMATOXYLIN: tuple[float, float, float] = (0.65111, 0.70119, 0.29049)
RUIFROK_DAB: tuple[float, float, float] = (0.26917, 0.56824, 0.77759)
#: Eosin of QuPath's "H&E default" (unit OD vector, R, G, B): pink, green
#: absorbed most. Used to draw synthetic H&E and in the stain-type docs.
EOSIN_QUPATH: tuple[float, float, float] = (0.2159, 0.8012, 0.5581)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class StainVectors:
    """Stain OD vectors and background of one slide.

    Parameters
    ----------
    hematoxylin, dab : tuple of 3 float
        OD vectors (R, G, B); normalised to unit length on construction.
    background : tuple of 3 float
        Background intensity ``I0`` per channel, in 8-bit units (1-255).
    source : str
        ``"default"`` (Ruifrok-Johnston) or ``"estimated"`` (from the slide).
    flags : tuple of str
        QC flags raised while estimating (empty when all went well).
    """

    hematoxylin: tuple[float, float, float] = RUIFROK_HEMATOXYLIN
    dab: tuple[float, float, float] = RUIFROK_DAB
    background: tuple[float, float, float] = (255.0, 255.0, 255.0)
    source: str = "default"
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("hematoxylin", "dab"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.shape != (3,) or not np.all(np.isfinite(v)) or np.any(v < 0) or np.linalg.norm(v) == 0:
                raise ValueError(f"{name} stain vector must be 3 non-negative finite numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, tuple(float(x) for x in _unit(v)))
        bg = np.asarray(self.background, dtype=np.float64)
        if bg.shape != (3,) or np.any(bg < 1) or np.any(bg > 255):
            raise ValueError(f"background must be 3 intensities in 1-255, got {self.background!r}")
        object.__setattr__(self, "background", tuple(float(x) for x in bg))
        object.__setattr__(self, "flags", tuple(self.flags))

    @property
    def residual(self) -> tuple[float, float, float]:
        """Third vector: the unit cross product of the two stains.

        Orthogonal to both, so the matrix is as well conditioned as the two
        stains allow and OD along neither stain lands in the residual.
        """
        r = np.cross(np.asarray(self.hematoxylin), np.asarray(self.dab))
        return tuple(float(x) for x in _unit(r))

    @property
    def matrix(self) -> np.ndarray:
        """3x3 float64 matrix, rows hematoxylin, DAB, residual."""
        return np.array([self.hematoxylin, self.dab, self.residual], dtype=np.float64)


DEFAULT_STAINS = StainVectors()


def od_lut(background: tuple[float, float, float] = (255.0, 255.0, 255.0)) -> np.ndarray:
    """Lookup table of OD per channel and 8-bit intensity.

    Returns
    -------
    ndarray, float32, shape (3, 256)
        ``lut[c, i] = -log10(max(i, 1) / background[c])``. Intensities
        brighter than the background give negative OD, kept as is.
    """
    i = np.maximum(np.arange(256, dtype=np.float64), 1.0)
    bg = np.asarray(background, dtype=np.float64)[:, None]
    return (-np.log10(i[None, :] / bg)).astype(np.float32)


def _as_image(rgb: np.ndarray) -> np.ndarray:
    """View of ``rgb`` as a C-contiguous (rows, cols, 3) uint8 array for OpenCV."""
    if rgb.dtype != np.uint8 or rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB with 3 channels, got {rgb.dtype} {rgb.shape}")
    img = rgb if rgb.ndim == 3 else rgb.reshape(-1, 1, 3)
    return np.ascontiguousarray(img)


def optical_density(rgb: np.ndarray, background: tuple[float, float, float] = (255.0, 255.0, 255.0)) -> np.ndarray:
    """Optical density of an RGB uint8 image.

    Parameters
    ----------
    rgb : ndarray, uint8, shape (..., 3)
    background : tuple of 3 float
        ``I0`` per channel, 8-bit units.

    Returns
    -------
    ndarray, float32, shape (..., 3)
        Base-10 OD per channel, ``-log10(max(I, 1) / I0)``.
    """
    img = _as_image(rgb)
    if img.size == 0:
        return np.zeros(rgb.shape, dtype=np.float32)
    lut = np.ascontiguousarray(od_lut(background).T.reshape(1, 256, 3))
    return cv2.LUT(img, lut).reshape(rgb.shape)


def deconvolve(rgb: np.ndarray, stains: StainVectors = DEFAULT_STAINS) -> np.ndarray:
    """Stain concentrations of an RGB uint8 image.

    One 3-channel float32 lookup (intensity -> OD) and one 3x3 transform, both
    in OpenCV: about 200 Mpx/s on one core for a 2048 x 2048 tile.

    Parameters
    ----------
    rgb : ndarray, uint8, shape (H, W, 3) or (..., 3)
    stains : StainVectors
        Vectors and background of the slide.

    Returns
    -------
    ndarray, float32, same shape as ``rgb``
        Channels hematoxylin, DAB, residual, each in OD units along its unit
        vector (QuPath's "Hematoxylin OD" / "DAB OD"): ``C = OD @ inv(M)``.
    """
    img = _as_image(rgb)
    if img.size == 0:
        return np.zeros(rgb.shape, dtype=np.float32)
    lut = np.ascontiguousarray(od_lut(stains.background).T.reshape(1, 256, 3))
    od = cv2.LUT(img, lut)
    # cv2.transform computes dst = m @ src per pixel, so m = inv(M).T.
    m = np.ascontiguousarray(np.linalg.inv(stains.matrix).T.astype(np.float32))
    return cv2.transform(od, m).reshape(rgb.shape)


def compose_rgb(concentrations: np.ndarray, stains: StainVectors = DEFAULT_STAINS) -> np.ndarray:
    """Inverse of :func:`deconvolve`: RGB uint8 from stain concentrations.

    Parameters
    ----------
    concentrations : ndarray, float, shape (..., 3)
        Hematoxylin, DAB, residual in OD units.
    stains : StainVectors

    Returns
    -------
    ndarray, uint8, shape (..., 3)
        ``I = I0 * 10**(-C @ M)``, rounded and clipped to 0-255.
    """
    od = np.asarray(concentrations, dtype=np.float64) @ stains.matrix
    rgb = np.asarray(stains.background) * np.power(10.0, -od)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


#: Lowest mean background intensity (8-bit) of a brightfield slide; a darker
#: background means fluorescence (or an unusable scan).
MIN_BRIGHTFIELD_BACKGROUND: float = 100.0


def angle_deg(a: tuple[float, float, float] | np.ndarray, b: tuple[float, float, float] | np.ndarray) -> float:
    """Angle between two (OD) vectors, in degrees (0-180)."""
    u = _unit(np.asarray(a, dtype=np.float64))
    v = _unit(np.asarray(b, dtype=np.float64))
    return float(np.degrees(np.arccos(np.clip(u @ v, -1.0, 1.0))))


@dataclass(frozen=True)
class StainEstimationParams:
    """Options of :func:`estimate_stains`.

    Parameters
    ----------
    min_od : float
        Pixels whose OD vector is shorter (Euclidean norm, base-10 OD) are
        unstained and ignored (Macenko's beta).
    max_od : float
        Pixels with any channel OD above this are near black (clipped
        sensor, folds, ink) and ignored.
    percentile : float
        Robust extreme of the angle distribution, in percent (Macenko's
        alpha): the stains are the directions at ``percentile`` and
        ``100 - percentile``.
    max_angle_deg : float
        Sanity limit: each estimated vector must lie within this angle of its
        default, else the default is kept.
    min_separation_deg : float
        Sanity limit: the two estimated vectors must be at least this far
        apart (the defaults are 37 degrees apart).
    min_pixels : int
        Fewest stained pixels (after the OD filter) to estimate from.
    min_stain_fraction : float
        Fewest pixels dominated by each stain, as a fraction of the stained
        pixels; a stain below it keeps its default vector. Must exceed
        ``percentile / 100`` so the robust extreme falls inside the stain.
    max_samples : int
        Pixels are subsampled (fixed seed) to at most this many.
    seed : int
        Seed of the subsampling, so the estimate is deterministic.
    """

    min_od: float = 0.15
    max_od: float = 2.0
    percentile: float = 1.0
    max_angle_deg: float = 25.0
    min_separation_deg: float = 15.0
    min_pixels: int = 2000
    min_stain_fraction: float = 0.02
    max_samples: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.min_od < self.max_od:
            raise ValueError(f"min_od must be > 0 and < max_od, got min_od={self.min_od}, max_od={self.max_od}")
        if not 0.0 <= self.percentile < 25.0:
            raise ValueError(f"percentile must be in [0, 25), got {self.percentile}")
        if not 0.0 < self.max_angle_deg <= 90.0:
            raise ValueError(f"max_angle_deg must be in (0, 90], got {self.max_angle_deg}")
        if not 0.0 <= self.min_separation_deg < 90.0:
            raise ValueError(f"min_separation_deg must be in [0, 90), got {self.min_separation_deg}")
        if self.min_pixels < 10:
            raise ValueError(f"min_pixels must be >= 10, got {self.min_pixels}")
        if not self.percentile / 100.0 < self.min_stain_fraction < 0.5:
            raise ValueError(
                f"min_stain_fraction must be in (percentile/100, 0.5), got {self.min_stain_fraction}"
            )
        if self.max_samples < self.min_pixels:
            raise ValueError(f"max_samples must be >= min_pixels, got {self.max_samples}")


def _fallback(defaults: StainVectors, background: tuple[float, float, float], reason: str) -> StainVectors:
    return StainVectors(
        defaults.hematoxylin, defaults.dab, background, source="default", flags=(f"stain_fallback:{reason}",)
    )


def _principal_direction(od: np.ndarray) -> np.ndarray:
    """Unit eigenvector of the largest eigenvalue of ``od.T @ od``, pointing into positive OD."""
    _, vecs = np.linalg.eigh(od.T @ od)
    v = vecs[:, -1]
    return v if v.sum() >= 0 else -v


def _macenko_pair(od: np.ndarray, percentile: float) -> tuple[np.ndarray, np.ndarray]:
    """The two extreme stain directions of Macenko et al. [2]_.

    The OD plane through the origin that holds the most energy (the two
    leading eigenvectors of the uncentred second moment: stains are lines
    through the origin), each pixel's angle in it, and the directions at the
    ``percentile`` and ``100 - percentile`` angles.
    """
    _, vecs = np.linalg.eigh(od.T.astype(np.float64) @ od)
    plane = vecs[:, [2, 1]]
    plane *= np.where(plane.sum(axis=0) >= 0, 1.0, -1.0)
    proj = od @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, [percentile, 100.0 - percentile])
    return plane @ np.array([np.cos(lo), np.sin(lo)]), plane @ np.array([np.cos(hi), np.sin(hi)])


def _positive_unit(v: np.ndarray) -> np.ndarray | None:
    """``v`` with negative OD components set to 0, unit length; None if nothing is left."""
    v = np.clip(v, 0.0, None)
    n = np.linalg.norm(v)
    return v / n if n > 0 else None


def estimate_stains(
    rgb_pixels: np.ndarray,
    *,
    background: tuple[float, float, float],
    defaults: StainVectors = DEFAULT_STAINS,
    params: StainEstimationParams = StainEstimationParams(),
) -> StainVectors:
    """Slide-specific H and DAB vectors from tissue pixels, Macenko-style [2]_.

    Steps: subsample (fixed seed); OD against ``background``; keep pixels
    with ``min_od < |OD|`` and every channel ``<= max_od``; count the pixels
    each stain dominates under the default vectors; Macenko's plane, angles
    and robust extremes give two vectors; each is assigned to hematoxylin or
    DAB by its angle to the defaults; sanity limits decide whether to trust
    them.

    Parameters
    ----------
    rgb_pixels : ndarray, uint8, shape (N, 3) or (..., 3)
        Tissue pixels (RGB), for instance a few thousand random pixels of
        tissue tiles at the analysis pixel size.
    background : tuple of 3 float
        ``I0`` per channel, 8-bit units (see :func:`estimate_background`).
    defaults : StainVectors
        Vectors to fall back on and to assign the estimates by; its
        background is ignored.
    params : StainEstimationParams

    Returns
    -------
    StainVectors
        With ``background``; ``source="estimated"`` when at least one vector
        was estimated, else ``"default"``. Flags:

        - ``stain_fallback:<reason>``: both defaults kept; reasons
          ``too_few_pixels``, ``no_stain``, ``invalid_vector``,
          ``hematoxylin_angle``, ``dab_angle``, ``near_parallel``.
        - ``stain_fallback_dab:few_dab_pixels``: hardly any DAB (a negative
          slide); the DAB default is kept and hematoxylin estimated alone.
        - ``stain_fallback_hematoxylin:few_hematoxylin_pixels``: the converse.

    Raises
    ------
    ValueError
        If ``rgb_pixels`` is not uint8 RGB or ``background`` is out of 1-255.
    """
    bg = StainVectors(background=tuple(background)).background
    pixels = _as_image(rgb_pixels).reshape(-1, 3)
    if len(pixels) > params.max_samples:
        rng = np.random.default_rng(params.seed)
        pixels = pixels[np.sort(rng.choice(len(pixels), params.max_samples, replace=False))]
    od = optical_density(pixels, bg)
    keep = (np.linalg.norm(od, axis=1) > params.min_od) & np.all(od <= params.max_od, axis=1)
    od = od[keep]
    if len(od) < params.min_pixels:
        return _fallback(defaults, bg, "too_few_pixels")

    conc = od @ np.linalg.inv(defaults.matrix).astype(np.float32)
    is_dab = conc[:, 1] > conc[:, 0]
    min_count = max(params.min_stain_fraction * len(od), 10.0)
    enough_h, enough_dab = (~is_dab).sum() >= min_count, is_dab.sum() >= min_count
    h_def, dab_def = np.asarray(defaults.hematoxylin), np.asarray(defaults.dab)

    if enough_h and enough_dab:
        a, b = _macenko_pair(od, params.percentile)
        swap = angle_deg(a, dab_def) + angle_deg(b, h_def) < angle_deg(a, h_def) + angle_deg(b, dab_def)
        h_est, dab_est = (_positive_unit(b), _positive_unit(a)) if swap else (_positive_unit(a), _positive_unit(b))
        flags: tuple[str, ...] = ()
    elif enough_h:
        h_est, dab_est = _positive_unit(_principal_direction(od[~is_dab])), dab_def
        flags = ("stain_fallback_dab:few_dab_pixels",)
    elif enough_dab:
        h_est, dab_est = h_def, _positive_unit(_principal_direction(od[is_dab]))
        flags = ("stain_fallback_hematoxylin:few_hematoxylin_pixels",)
    else:
        return _fallback(defaults, bg, "no_stain")

    if h_est is None or dab_est is None:
        return _fallback(defaults, bg, "invalid_vector")
    if angle_deg(h_est, h_def) > params.max_angle_deg:
        return _fallback(defaults, bg, "hematoxylin_angle")
    if angle_deg(dab_est, dab_def) > params.max_angle_deg:
        return _fallback(defaults, bg, "dab_angle")
    if angle_deg(h_est, dab_est) < params.min_separation_deg:
        return _fallback(defaults, bg, "near_parallel")
    return StainVectors(tuple(h_est), tuple(dab_est), bg, source="estimated", flags=flags)


def estimate_background(rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float, float]:
    """Background intensity ``I0`` per channel from bright non-tissue pixels.

    With a tissue ``mask`` and at least 1 % of the pixels outside it, ``I0``
    is the per-channel median of the brighter half of the pixels outside
    tissue (dark borders, dust and debris are in the darker half). Otherwise
    (no mask, or tissue everywhere) it is the per-channel median of the
    brightest 2 % of all pixels.

    Parameters
    ----------
    rgb : ndarray, uint8, shape (H, W, 3) or (N, 3)
        Usually a low-resolution thumbnail of the whole slide.
    mask : ndarray of bool, shape (H, W) or (N,), optional
        True on tissue.

    Returns
    -------
    tuple of 3 float
        ``I0`` (R, G, B) in 8-bit units, 1-255.

    Raises
    ------
    NotBrightfieldError
        If the background found is darker than
        :data:`MIN_BRIGHTFIELD_BACKGROUND` (mean of the channels): a
        fluorescence slide or an unusable scan.
    ValueError
        If ``rgb`` is not uint8 RGB, is empty, or ``mask`` has another shape.
    """
    pixels = _as_image(rgb).reshape(-1, 3)
    if len(pixels) == 0:
        raise ValueError("rgb is empty: cannot estimate the background")
    fraction = 0.02
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != rgb.shape[:-1]:
            raise ValueError(f"mask shape {m.shape} does not match image shape {rgb.shape[:-1]}")
        outside = pixels[~m.reshape(-1)]
        if len(outside) >= max(0.01 * len(pixels), 1):
            pixels, fraction = outside, 0.5
    brightness = pixels.astype(np.uint16).sum(axis=1)
    cut = np.quantile(brightness, 1.0 - fraction, method="lower")
    bright = pixels[brightness >= cut]
    bg = np.median(bright, axis=0)
    if bg.mean() < MIN_BRIGHTFIELD_BACKGROUND:
        raise NotBrightfieldError(
            f"background is dark (mean intensity {bg.mean():.0f} of 255): not a brightfield slide; "
            "ihc-score scores brightfield H-DAB slides only"
        )
    return tuple(float(x) for x in np.clip(bg, 1.0, 255.0))


@dataclass(frozen=True)
class StainTypeParams:
    """Options of :func:`identify_stain`.

    Angles are in degrees; ``theta`` is the direction of a pixel's OD
    perpendicular to hematoxylin, 0 at the Ruifrok DAB vector, negative
    towards eosin (see the module notes). Fractions are of the stained pixels.

    Parameters
    ----------
    min_od, max_od : float
        A pixel is stained when its OD vector is longer than ``min_od``
        (Euclidean norm, base-10 OD) and no channel exceeds ``max_od``
        (near-black: folds, ink, clipped sensor).
    min_pixels : int
        Fewest stained pixels to decide on; with fewer the answer is
        ``"undetermined"`` and the slide is not refused.
    min_second_od : float
        A pixel holds a second stain when its OD perpendicular to
        hematoxylin is at least this (OD units) ...
    min_angle_deg : float
        ... and its OD vector is at least this far from hematoxylin. Also the
        tolerance to a hematoxylin that differs from the vector given: pure
        hematoxylin up to this angle off it is never taken for a second stain.
    dab_theta_deg : tuple of 2 float
        ``theta`` range (low, high) of DAB-like pixels. Measured DAB on real
        slides: medians -13 (drifted synthetic) to +17 degrees.
    eosin_theta_deg : tuple of 2 float
        ``theta`` range of eosin-like (pink/red) pixels. Measured eosin on two
        real H&E slides: medians -36 and -44 degrees. Must not overlap
        ``dab_theta_deg``.
    min_eosin_fraction : float
        The slide is refused only when at least this fraction of its stained
        pixels is eosin-like ...
    max_dab_ratio : float
        ... and its DAB-like fraction is below ``max_dab_ratio`` times the
        eosin-like fraction (the tail of a real eosin reaches into the DAB
        range: 0.05 times on CMU-1). A slide with DAB and a red chromogen
        whose DAB-like pixels reach this ratio is kept.
    hematoxylin_percentile : float
        Robust extreme (percent) of Macenko's angle distribution taken as the
        slide's own hematoxylin, for the second opinion (see
        :func:`identify_stain`).
    max_hematoxylin_deg : float
        The slide's own hematoxylin is used only when it lies between
        ``min_angle_deg`` and this angle from the hematoxylin given.
    min_own_dab_fraction : float
        Fewest DAB-like pixels (fraction) measured against the slide's own
        hematoxylin that overturn an ``"eosin"`` answer (besides
        ``max_dab_ratio`` times the eosin-like fraction there).
    max_samples : int
        Pixels are subsampled (fixed seed) to at most this many.
    seed : int
        Seed of the subsampling.
    """

    min_od: float = 0.15
    max_od: float = 2.0
    min_pixels: int = 2000
    min_second_od: float = 0.10
    min_angle_deg: float = 20.0
    dab_theta_deg: tuple[float, float] = (-20.0, 45.0)
    eosin_theta_deg: tuple[float, float] = (-105.0, -25.0)
    min_eosin_fraction: float = 0.10
    max_dab_ratio: float = 0.10
    hematoxylin_percentile: float = 1.0
    max_hematoxylin_deg: float = 30.0
    min_own_dab_fraction: float = 0.02
    max_samples: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.min_od < self.max_od:
            raise ValueError(f"min_od must be > 0 and < max_od, got min_od={self.min_od}, max_od={self.max_od}")
        if self.min_pixels < 10:
            raise ValueError(f"min_pixels must be >= 10, got {self.min_pixels}")
        if not self.min_second_od > 0:
            raise ValueError(f"min_second_od must be > 0, got {self.min_second_od}")
        if not 0.0 < self.min_angle_deg < 90.0:
            raise ValueError(f"min_angle_deg must be in (0, 90), got {self.min_angle_deg}")
        for name in ("dab_theta_deg", "eosin_theta_deg"):
            lo, hi = getattr(self, name)
            if not -180.0 <= lo < hi <= 180.0:
                raise ValueError(f"{name} must be (low, high) with -180 <= low < high <= 180, got {(lo, hi)}")
            object.__setattr__(self, name, (float(lo), float(hi)))
        (dlo, dhi), (elo, ehi) = self.dab_theta_deg, self.eosin_theta_deg
        if dlo < ehi and elo < dhi:
            raise ValueError(f"eosin_theta_deg {self.eosin_theta_deg} overlaps dab_theta_deg {self.dab_theta_deg}")
        if not 0.0 < self.min_eosin_fraction <= 1.0:
            raise ValueError(f"min_eosin_fraction must be in (0, 1], got {self.min_eosin_fraction}")
        if not self.max_dab_ratio >= 0.0:
            raise ValueError(f"max_dab_ratio must be >= 0, got {self.max_dab_ratio}")
        if not 0.0 <= self.hematoxylin_percentile < 25.0:
            raise ValueError(f"hematoxylin_percentile must be in [0, 25), got {self.hematoxylin_percentile}")
        if not self.min_angle_deg <= self.max_hematoxylin_deg <= 90.0:
            raise ValueError(
                f"max_hematoxylin_deg must be in [min_angle_deg, 90], got {self.max_hematoxylin_deg}"
            )
        if not 0.0 <= self.min_own_dab_fraction <= 1.0:
            raise ValueError(f"min_own_dab_fraction must be in [0, 1], got {self.min_own_dab_fraction}")
        if self.max_samples < self.min_pixels:
            raise ValueError(f"max_samples must be >= min_pixels, got {self.max_samples}")


#: Answers of :func:`identify_stain`.
STAIN_KINDS = ("h-dab", "eosin", "undetermined")


@dataclass(frozen=True)
class StainIdentity:
    """What a slide is stained with, from its tissue pixels.

    Parameters
    ----------
    kind : str
        ``"h-dab"`` (DAB found, or no eosin-like stain: hematoxylin alone is
        a DAB-negative H-DAB slide), ``"eosin"`` (an eosin-like pink/red
        stain and no DAB to speak of: H&E or a red chromogen alone; no
        H-score is given) or ``"undetermined"`` (too few stained pixels).
    n_stained : int
        Stained pixels examined (after subsampling).
    eosin_fraction, dab_fraction : float
        Fractions of the stained pixels that are eosin-like and DAB-like
        (0-1; 0 when ``n_stained`` is 0).
    """

    kind: str
    n_stained: int
    eosin_fraction: float
    dab_fraction: float

    def __post_init__(self) -> None:
        if self.kind not in STAIN_KINDS:
            raise ValueError(f"kind must be one of {STAIN_KINDS}, got {self.kind!r}")
        if self.n_stained < 0:
            raise ValueError(f"n_stained must be >= 0, got {self.n_stained}")
        for name in ("eosin_fraction", "dab_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @property
    def is_dab(self) -> bool:
        """False only for ``kind == "eosin"``: the slide is to get no H-score."""
        return self.kind != "eosin"


def _second_stain_frame(hematoxylin: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """Rows: unit hematoxylin, unit DAB part perpendicular to it (``u``), unit ``hematoxylin x DAB`` (``v``).

    Eosin has ``v < 0``.
    """
    h = _unit(np.asarray(hematoxylin, dtype=np.float64))
    d = _unit(np.asarray(RUIFROK_DAB, dtype=np.float64))
    if angle_deg(h, d) < 10.0:
        raise ValueError(f"hematoxylin {tuple(hematoxylin)} is within 10 degrees of DAB: cannot tell stains apart")
    u = _unit(d - (d @ h) * h)
    n = _unit(np.cross(h, d))
    return np.stack([h, u, n])


def identify_stain(
    rgb_pixels: np.ndarray,
    *,
    background: tuple[float, float, float],
    hematoxylin: tuple[float, float, float] = RUIFROK_HEMATOXYLIN,
    params: StainTypeParams = StainTypeParams(),
) -> StainIdentity:
    """Whether tissue pixels are stained H-DAB or with an eosin-like stain instead of DAB.

    Steps: subsample (fixed seed); OD against ``background``; keep stained
    pixels (see :class:`StainTypeParams`); for each, the OD along
    ``hematoxylin`` (``h``) and perpendicular to it, the latter as
    ``(u, v)`` with ``u`` towards the Ruifrok DAB vector and ``v`` along
    ``hematoxylin x DAB``; pixels with a second stain (perpendicular OD
    ``>= min_second_od`` and angle ``atan2(|(u, v)|, h) >= min_angle_deg``)
    are DAB-like or eosin-like by ``theta = atan2(v, u)``. The answer is
    ``"eosin"`` when the eosin-like fraction is at least
    ``min_eosin_fraction`` and the DAB-like fraction below
    ``max_dab_ratio`` times it.

    Second opinion: before answering ``"eosin"``, the fractions are measured
    again against the slide's own hematoxylin (the Macenko extreme [2]_
    nearest ``hematoxylin``, when it is ``min_angle_deg`` to
    ``max_hematoxylin_deg`` away). If DAB shows there (at least
    ``min_own_dab_fraction`` and ``max_dab_ratio`` times the eosin-like
    fraction), the answer is ``"h-dab"`` with those fractions: a
    hematoxylin far off the vector given, looking pink, does not hide the
    DAB of a slide. It never clears a slide without DAB: one pink-violet
    stain alone (hematoxylin drifted towards eosin by ``min_angle_deg`` or
    more, or an eosin-dominated H&E) cannot be told apart by colour, and is
    refused.

    Fractions are of the stained pixels; :class:`StainIdentity` holds the
    ones of the frame that decided.

    Parameters
    ----------
    rgb_pixels : ndarray, uint8, shape (N, 3) or (..., 3)
        Tissue pixels (RGB), e.g. the sample :func:`estimate_stains` gets.
    background : tuple of 3 float
        ``I0`` per channel, 8-bit units.
    hematoxylin : tuple of 3 float
        The slide's hematoxylin OD vector (estimated or default); its
        direction need not be exact (see ``min_angle_deg``). DAB is always
        the Ruifrok vector: an estimated "DAB" of an H&E slide is eosin.
    params : StainTypeParams

    Returns
    -------
    StainIdentity

    Raises
    ------
    ValueError
        If ``rgb_pixels`` is not uint8 RGB, ``background`` is out of 1-255, or
        ``hematoxylin`` is within 10 degrees of DAB.
    """
    bg = StainVectors(background=tuple(background)).background
    frame = _second_stain_frame(hematoxylin).astype(np.float32)
    pixels = _as_image(rgb_pixels).reshape(-1, 3)
    if len(pixels) > params.max_samples:
        # With replacement: a fraction needs no more, and it is 50x faster than without.
        rng = np.random.default_rng(params.seed)
        pixels = pixels[rng.integers(0, len(pixels), params.max_samples)]
    od = optical_density(pixels, bg)
    od = od[(np.einsum("ij,ij->i", od, od) > params.min_od**2) & np.all(od <= params.max_od, axis=1)]
    n = len(od)
    if n < params.min_pixels:
        return StainIdentity("undetermined", n, 0.0, 0.0)
    eosin, dab = _second_stain_fractions(od, frame, params)
    if _refused(eosin, dab, params):
        own = _own_hematoxylin(od, np.asarray(frame[0], dtype=np.float64), params)
        if own is not None:
            eosin_own, dab_own = _second_stain_fractions(od, _second_stain_frame(own).astype(np.float32), params)
            if dab_own >= max(params.min_own_dab_fraction, params.max_dab_ratio * eosin_own):
                return StainIdentity("h-dab", n, eosin_own, dab_own)
        return StainIdentity("eosin", n, eosin, dab)
    return StainIdentity("h-dab", n, eosin, dab)


def _second_stain_fractions(od: np.ndarray, frame: np.ndarray, params: StainTypeParams) -> tuple[float, float]:
    """Eosin-like and DAB-like fractions of the stained pixels ``od`` (N, 3) in ``frame``.

    See :func:`identify_stain`.
    """
    proj = od @ frame.T
    h, u, v = proj[:, 0], proj[:, 1], proj[:, 2]
    perp = np.hypot(u, v)
    # angle to hematoxylin >= min_angle  <=>  perp >= h * tan(min_angle) (always true when h <= 0)
    second = (perp >= params.min_second_od) & (perp >= h * np.float32(np.tan(np.radians(params.min_angle_deg))))
    theta = np.degrees(np.arctan2(v[second], u[second]))
    (dlo, dhi), (elo, ehi) = params.dab_theta_deg, params.eosin_theta_deg
    n = max(len(od), 1)
    dab = float(np.count_nonzero((theta >= dlo) & (theta <= dhi))) / n
    eosin = float(np.count_nonzero((theta >= elo) & (theta <= ehi))) / n
    return eosin, dab


def _refused(eosin: float, dab: float, params: StainTypeParams) -> bool:
    return eosin >= params.min_eosin_fraction and dab < params.max_dab_ratio * eosin


def _own_hematoxylin(od: np.ndarray, given: np.ndarray, params: StainTypeParams) -> np.ndarray | None:
    """The slide's own hematoxylin: the Macenko extreme [2]_ nearest ``given``.

    None when it is within ``min_angle_deg`` of ``given`` (it would not
    change the answer), more than ``max_hematoxylin_deg`` from it, or
    within 10 degrees of DAB.
    """
    ends = [_positive_unit(e) for e in _macenko_pair(od, params.hematoxylin_percentile)]
    ends = [e for e in ends if e is not None]
    if not ends:
        return None
    own = min(ends, key=lambda e: angle_deg(e, given))
    off = angle_deg(own, given)
    if off < params.min_angle_deg or off > params.max_hematoxylin_deg or angle_deg(own, RUIFROK_DAB) < 10.0:
        return None
    return own


def require_dab(
    rgb_pixels: np.ndarray,
    *,
    background: tuple[float, float, float],
    slide_name: str,
    hematoxylin: tuple[float, float, float] = RUIFROK_HEMATOXYLIN,
    params: StainTypeParams = StainTypeParams(),
) -> StainIdentity:
    """:func:`identify_stain`, raising when the slide is not stained with DAB.

    Parameters
    ----------
    rgb_pixels, background, hematoxylin, params
        As for :func:`identify_stain`.
    slide_name : str
        Name of the slide, for the message.

    Returns
    -------
    StainIdentity
        Of kind ``"h-dab"`` or ``"undetermined"``.

    Raises
    ------
    NotDabStainError
        If the kind is ``"eosin"``: H&E or a red chromogen without DAB.
    """
    found = identify_stain(rgb_pixels, background=background, hematoxylin=hematoxylin, params=params)
    if not found.is_dab:
        raise NotDabStainError(
            f"{slide_name}: stained H&E (or a red chromogen), not H-DAB: eosin-like stain in "
            f"{100 * found.eosin_fraction:.0f}% of stained pixels, DAB in {100 * found.dab_fraction:.1f}%; "
            "no H-score is given"
        )
    return found

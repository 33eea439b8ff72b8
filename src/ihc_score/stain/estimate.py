"""Slide-specific stain vectors and background intensity (Macenko estimation).

Optical density, stain vectors and concentrations follow the conventions of
:mod:`ihc_score.stain.deconvolution` (base-10 OD against the slide's own background ``I0``).

References
----------
.. [2] M. Macenko et al., "A method for normalizing histology slides for
   quantitative analysis", Proc. IEEE ISBI (2009), 1107-1110.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ihc_score.checks import require_range
from ihc_score.errors import NotBrightfieldError
from ihc_score.stain.deconvolution import (
    DEFAULT_STAINS,
    StainVectors,
    _as_image,
    angle_deg,
    channel_sum,
    optical_density,
)

__all__ = [
    "StainEstimationParams",
    "estimate_stains",
    "estimate_background",
    "MIN_BRIGHTFIELD_BACKGROUND",
]

#: Lowest mean background intensity (8-bit) of a brightfield slide; a darker
#: background means fluorescence (or an unusable scan).
MIN_BRIGHTFIELD_BACKGROUND: float = 100.0
#: Fewest pixels beyond each extreme of the stain estimate, whatever ``percentile`` says: a small field's few
#: pixels of a stain (a few hundred) would otherwise put an extreme on one or two pixels, a speck of dust or
#: pigment. The same count the estimate asks of each stain before it estimates that stain at all.
MIN_TAIL_PIXELS: int = 10


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
        require_range("percentile", self.percentile, low=0.0, high=25.0, high_open=True)
        require_range("max_angle_deg", self.max_angle_deg, low=0.0, high=90.0, low_open=True, unit="degrees")
        require_range("min_separation_deg", self.min_separation_deg, low=0.0, high=90.0, high_open=True, unit="degrees")
        require_range("min_pixels", self.min_pixels, low=10)
        if not self.percentile / 100.0 < self.min_stain_fraction < 0.5:
            raise ValueError(
                f"min_stain_fraction must be in (percentile/100, 0.5), got {self.min_stain_fraction}"
            )
        if self.max_samples < self.min_pixels:
            raise ValueError(f"max_samples must be >= min_pixels, got {self.max_samples}")


def _fallback(defaults: StainVectors, background: tuple[float, float, float], reason: str) -> StainVectors:
    return StainVectors(
        defaults.hematoxylin, defaults.dab, background, source="default", flags=(f"stain_fallback:{reason}",),
        od_scale=defaults.od_scale,
    )


def _principal_direction(od: np.ndarray) -> np.ndarray:
    """Unit eigenvector of the largest eigenvalue of ``od.T @ od``, pointing into positive OD."""
    _, vecs = np.linalg.eigh(od.T @ od)
    v = vecs[:, -1]
    return v if v.sum() >= 0 else -v


def _macenko_pair(
    od: np.ndarray, percentile: float, second: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The two extreme stain directions of Macenko et al. [2]_, each among the pixels its stain dominates.

    The OD plane through the origin that holds the most energy (the two
    leading eigenvectors of the uncentred second moment: stains are lines
    through the origin) and each pixel's angle in it. Macenko takes the
    ``percentile`` and ``100 - percentile`` angles of all pixels; where one
    stain covers far fewer pixels than the other (a negative slide's DAB, a
    strongly positive slide's hematoxylin), that percentile falls inside its
    cloud of mixed pixels and pulls its vector towards the other stain (3-4
    degrees on synthetic slides of known dyes). Here each extreme is the
    ``percentile`` of the pixels on its own side: ``second`` marks the
    pixels of the second stain (True), the others are the first's (None:
    Macenko's percentiles of all pixels).

    Returns
    -------
    (ndarray, ndarray)
        The directions at the low and at the high angle.
    """
    _, vecs = np.linalg.eigh(od.T.astype(np.float64) @ od)
    plane = vecs[:, [2, 1]]
    plane *= np.where(plane.sum(axis=0) >= 0, 1.0, -1.0)
    proj = od @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    if second is None:
        q = _tail_percentile(percentile, len(phi))
        lo, hi = np.percentile(phi, [q, 100.0 - q])
    else:
        high_side = second if np.median(phi[second]) >= np.median(phi[~second]) else ~second
        lo = np.percentile(phi[~high_side], _tail_percentile(percentile, int(np.sum(~high_side))))
        hi = np.percentile(phi[high_side], 100.0 - _tail_percentile(percentile, int(np.sum(high_side))))
    return plane @ np.array([np.cos(lo), np.sin(lo)]), plane @ np.array([np.cos(hi), np.sin(hi)])


def _tail_percentile(percentile: float, n: int) -> float:
    """``percentile``, raised so that at least :data:`MIN_TAIL_PIXELS` of ``n`` pixels lie beyond it (at most 50)."""
    return min(50.0, max(percentile, 100.0 * MIN_TAIL_PIXELS / max(n, 1)))


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
    and robust extremes (each among the pixels its stain dominates) give two
    vectors; each is assigned to hematoxylin or
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
        background is ignored, its ``od_scale`` is kept.
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
    min_count = max(params.min_stain_fraction * len(od), float(MIN_TAIL_PIXELS))
    enough_h, enough_dab = (~is_dab).sum() >= min_count, is_dab.sum() >= min_count
    h_def, dab_def = np.asarray(defaults.hematoxylin), np.asarray(defaults.dab)

    if enough_h and enough_dab:
        a, b = _macenko_pair(od, params.percentile, is_dab)
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
    return StainVectors(tuple(h_est), tuple(dab_est), bg, source="estimated", flags=flags, od_scale=defaults.od_scale)


def _order_statistic(counts: np.ndarray, k: int) -> int:
    """The ``k``-th smallest (from 0) of the values counted in ``counts`` (value -> count)."""
    return int(np.searchsorted(np.cumsum(counts), k + 1))


def _median_of_counts(counts: np.ndarray) -> float:
    """``np.median`` of the values counted in ``counts``: the mean of the two middle ones for an even count."""
    n = int(counts.sum())
    return (_order_statistic(counts, (n - 1) // 2) + _order_statistic(counts, n // 2)) / 2.0


def estimate_background(rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float, float]:
    """Background intensity ``I0`` per channel from bright non-tissue pixels.

    With a tissue ``mask`` and at least 1 % of the pixels outside it, ``I0``
    is the per-channel median of the brighter half of the pixels outside
    tissue (dark borders, dust and debris are in the darker half). Otherwise
    (no mask, or tissue everywhere) it is the per-channel median of the
    brightest 2 % of all pixels. Order statistics come from histograms of
    the 8-bit values (exactly those of sorting, a fraction of the time on a
    slide's thumbnail).

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
    n = len(pixels)
    if n == 0:
        raise ValueError("rgb is empty: cannot estimate the background")
    fraction = 0.02
    brightness = channel_sum(pixels, np.uint16)
    outside = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != rgb.shape[:-1]:
            raise ValueError(f"mask shape {m.shape} does not match image shape {rgb.shape[:-1]}")
        outside = ~m.reshape(-1)
        n_outside = int(np.count_nonzero(outside))
        if n_outside >= max(0.01 * n, 1):
            n, fraction = n_outside, 0.5
        else:
            outside = None
    # Histograms of the selected pixels, taken through 1-D masks (copying the
    # selected rows of the (N, 3) array would cost more than the rest).
    counts = np.bincount(brightness if outside is None else brightness[outside])
    bright = brightness >= _order_statistic(counts, int(np.floor((1.0 - fraction) * (n - 1))))
    if outside is not None:
        bright &= outside
    bg = np.array([_median_of_counts(np.bincount(pixels[:, c][bright], minlength=256)) for c in range(3)])
    if bg.mean() < MIN_BRIGHTFIELD_BACKGROUND:
        raise NotBrightfieldError(
            f"background is dark (mean intensity {bg.mean():.0f} of 255): not a brightfield slide; "
            "ihc-score scores brightfield H-DAB slides only"
        )
    return tuple(float(x) for x in np.clip(bg, 1.0, 255.0))

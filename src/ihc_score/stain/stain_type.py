"""Stain type: telling an H-DAB slide from an H&E slide.

Optical density and stain vectors follow the conventions of
:mod:`ihc_score.stain.deconvolution`.

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

References
----------
.. [2] M. Macenko et al., "A method for normalizing histology slides for
   quantitative analysis", Proc. IEEE ISBI (2009), 1107-1110.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ihc_score.checks import require_range
from ihc_score.errors import NotDabStainError
from ihc_score.stain.deconvolution import (
    RUIFROK_DAB,
    RUIFROK_HEMATOXYLIN,
    StainVectors,
    _as_image,
    _unit,
    angle_deg,
    optical_density,
)
from ihc_score.stain.estimate import _macenko_pair, _positive_unit

__all__ = [
    "EOSIN_QUPATH",
    "StainTypeParams",
    "StainIdentity",
    "STAIN_KINDS",
    "identify_stain",
    "require_dab",
]

#: Eosin of QuPath's "H&E default" (unit OD vector, R, G, B): pink, green
#: absorbed most. Used to draw synthetic H&E and in the stain-type docs.
EOSIN_QUPATH: tuple[float, float, float] = (0.2159, 0.8012, 0.5581)


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
        require_range("min_pixels", self.min_pixels, low=10)
        require_range("min_second_od", self.min_second_od, low=0.0, low_open=True)
        require_range("min_angle_deg", self.min_angle_deg, low=0.0, high=90.0, low_open=True, high_open=True, unit="degrees")
        for name in ("dab_theta_deg", "eosin_theta_deg"):
            lo, hi = getattr(self, name)
            if not -180.0 <= lo < hi <= 180.0:
                raise ValueError(f"{name} must be (low, high) with -180 <= low < high <= 180, got {(lo, hi)}")
            object.__setattr__(self, name, (float(lo), float(hi)))
        (dlo, dhi), (elo, ehi) = self.dab_theta_deg, self.eosin_theta_deg
        if dlo < ehi and elo < dhi:
            raise ValueError(f"eosin_theta_deg {self.eosin_theta_deg} overlaps dab_theta_deg {self.dab_theta_deg}")
        require_range("min_eosin_fraction", self.min_eosin_fraction, low=0.0, high=1.0, low_open=True)
        require_range("max_dab_ratio", self.max_dab_ratio, low=0.0)
        require_range("hematoxylin_percentile", self.hematoxylin_percentile, low=0.0, high=25.0, high_open=True)
        if not self.min_angle_deg <= self.max_hematoxylin_deg <= 90.0:
            raise ValueError(
                f"max_hematoxylin_deg must be in [min_angle_deg, 90], got {self.max_hematoxylin_deg}"
            )
        require_range("min_own_dab_fraction", self.min_own_dab_fraction, low=0.0, high=1.0)
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

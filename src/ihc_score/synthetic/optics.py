"""The generator's own optics: dye spectra, Beer-Lambert light and the scanner (pure).

Deliberately independent of the scorer's stain model (:mod:`ihc_score.stain`):
the dyes here are the generator's own measured-style numbers, not the
scorer's defaults, and the scanner adds what a real one does (blur of the
light, channel crosstalk, a tone curve, glass white balance, noise, JPEG), so
a slide is never the exact inverse of the scorer's colour deconvolution.

A pixel is made in four steps (OD base 10, light relative to the glass):

1. OD per channel (R, G, B) = each absorber's amount times its unit OD
   vector (:attr:`Dyes.matrix`), plus pigment and ink terms;
2. transmitted light ``T = 10 ** -OD`` (Beer-Lambert), per channel;
3. optical blur of ``T`` (:attr:`Scanner.blur_sigma_um`; a lens blurs
   light, not OD), drawn by :mod:`ihc_score.synthetic.render`;
4. the sensor (:func:`sensor_rgb`): channel crosstalk ``S = X @ T``, tone
   curve ``V = glass * S ** gamma``, rounded to 8 bits; then sensor noise
   and, when written, JPEG at :attr:`Scanner.jpeg_quality`.

Dye vectors
-----------
Unit OD vectors (R, G, B) at unit amount, typed as the generator's own
numbers and normalised on construction: hematoxylin (0.62, 0.72, 0.31)
and DAB (0.29, 0.55, 0.78) (each within a few degrees of published
H-DAB measurements, as real batches are); the third, residual absorber
(0.80, 0.15, 0.58) lies well off the H-DAB plane (matrix condition number
about 4) and only carries a faint texture of the section (+-0.005 OD).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "HEMATOXYLIN_OD",
    "DAB_OD",
    "RESIDUAL_OD",
    "Dyes",
    "DEFAULT_DYES",
    "shift_dyes",
    "Scanner",
    "SCANNERS",
    "transmittance",
    "sensor_rgb",
    "glass_rgb",
]

Vector = tuple[float, float, float]

#: Hematoxylin OD per channel (R, G, B) at unit amount, before normalising.
HEMATOXYLIN_OD: Vector = (0.62, 0.72, 0.31)
#: DAB OD per channel (R, G, B) at unit amount, before normalising.
DAB_OD: Vector = (0.29, 0.55, 0.78)
#: Residual (third) absorber OD per channel, before normalising.
RESIDUAL_OD: Vector = (0.80, 0.15, 0.58)
_IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def _unit_vector(v: Vector, name: str) -> Vector:
    """A non-negative finite 3-vector scaled to unit length (ValueError naming ``name`` otherwise)."""
    a = np.asarray(v, dtype=np.float64)
    if a.shape != (3,) or not np.all(np.isfinite(a)) or np.any(a < 0) or np.linalg.norm(a) == 0:
        raise ValueError(f"{name} OD vector must be 3 non-negative finite numbers, got {v!r}")
    return tuple(float(x) for x in a / np.linalg.norm(a))


@dataclass(frozen=True)
class Dyes:
    """Absorbance spectra of the dyes a slide is drawn with.

    Parameters
    ----------
    hematoxylin, dab, residual : 3 floats
        OD per channel (R, G, B, base 10) at unit amount; normalised to unit
        length on construction. Any two-stain pair may be drawn (the ``dab``
        slot may hold eosin to draw an H&E slide).
    """

    hematoxylin: Vector = HEMATOXYLIN_OD
    dab: Vector = DAB_OD
    residual: Vector = RESIDUAL_OD

    def __post_init__(self) -> None:
        for name in ("hematoxylin", "dab", "residual"):
            object.__setattr__(self, name, _unit_vector(getattr(self, name), name))
        if np.linalg.cond(self.matrix) > 1e3:
            raise ValueError("hematoxylin, dab and residual OD vectors must be linearly independent")

    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) float64, rows hematoxylin, DAB, residual: ``OD = amounts @ matrix``."""
        return np.array([self.hematoxylin, self.dab, self.residual], dtype=np.float64)


DEFAULT_DYES = Dyes()


def shift_dyes(dyes: Dyes, angle_deg: float) -> Dyes:
    """Hue-shift the hematoxylin and DAB vectors by a fixed angle (another batch or lab).

    Each unit vector ``v`` is turned by ``angle_deg`` towards ``grey x v``
    (``grey`` = (1, 1, 1)), i.e. around the grey axis, so the new vector is
    exactly ``angle_deg`` from the old one and keeps its distance from grey.
    The residual is kept.

    Parameters
    ----------
    dyes : Dyes
    angle_deg : float
        Angle, degrees; positive turns R towards G towards B.

    Raises
    ------
    ValueError
        When a turned vector has a negative component.
    """
    grey = np.ones(3) / math.sqrt(3.0)
    t = math.radians(angle_deg)
    out = []
    for v in (np.asarray(dyes.hematoxylin), np.asarray(dyes.dab)):
        d = np.cross(grey, v)
        d /= np.linalg.norm(d)
        out.append(tuple(float(x) for x in math.cos(t) * v + math.sin(t) * d))
    return Dyes(out[0], out[1], dyes.residual)


def _check_crosstalk(x: tuple[tuple[float, ...], ...]) -> tuple[Vector, Vector, Vector]:
    """Validate a sensor response matrix: 3x3, non-negative, rows summing to 1, diagonal >= 0.5."""
    a = np.asarray(x, dtype=np.float64)
    if (a.shape != (3, 3) or not np.all(np.isfinite(a)) or np.any(a < 0)
            or not np.allclose(a.sum(axis=1), 1.0, atol=1e-6) or np.any(np.diag(a) < 0.5)):
        raise ValueError(f"crosstalk must be 3x3, non-negative, rows summing to 1, diagonal >= 0.5, got {x!r}")
    return tuple(tuple(float(v) for v in row) for row in a)  # type: ignore[return-value]


@dataclass(frozen=True)
class Scanner:
    """A brightfield scanner: optics, sensor response, white balance, noise and compression.

    Parameters
    ----------
    name : str
        Name written into the truth.
    blur_sigma_um : float
        Gaussian optical blur of the transmitted light, um (0-1).
    gamma : float
        Tone curve ``V = glass * S ** gamma`` on the sensor signal ``S``
        (0.5-2; 1 = linear; a scorer assuming linear light measures about
        ``gamma`` times the true OD).
    crosstalk : 3x3 floats
        Sensor response: row ``c`` gives how much light of channels R, G, B
        channel ``c`` records (non-negative, rows sum to 1 so the glass
        stays the glass; identity = no crosstalk).
    glass : 3 floats
        Blank glass colour (white balance), 8-bit R, G, B (1-255).
    jpeg_quality : int
        JPEG quality of the tiles, 1-100.
    noise_sigma : float
        Sensor noise, 8-bit units (0-20), added after the tone curve.
    """

    name: str = "reference"
    blur_sigma_um: float = 0.2
    gamma: float = 1.0
    crosstalk: tuple[Vector, Vector, Vector] = _IDENTITY
    glass: Vector = (255.0, 255.0, 255.0)
    jpeg_quality: int = 85
    noise_sigma: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"scanner name must be a non-empty string, got {self.name!r}")
        if not 0.0 <= self.blur_sigma_um <= 1.0:
            raise ValueError(f"blur_sigma_um must be in 0-1 um, got {self.blur_sigma_um!r}")
        if not 0.5 <= self.gamma <= 2.0:
            raise ValueError(f"gamma must be in 0.5-2, got {self.gamma!r}")
        object.__setattr__(self, "crosstalk", _check_crosstalk(self.crosstalk))
        glass = tuple(float(x) for x in self.glass)
        if len(glass) != 3 or not all(1 <= x <= 255 for x in glass):
            raise ValueError(f"glass must be 3 intensities in 1-255, got {self.glass!r}")
        object.__setattr__(self, "glass", glass)
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1-100, got {self.jpeg_quality!r}")
        if not 0.0 <= self.noise_sigma <= 20.0:
            raise ValueError(f"noise_sigma must be in 0-20, got {self.noise_sigma!r}")


#: Named scanners. ``reference``: linear, no crosstalk, white glass (the
#: generator's behaviour before scanners existed); the others span the
#: spread of real brightfield scanners in tone curve, crosstalk between
#: neighbouring channels, white balance, optics and compression.
SCANNERS: dict[str, Scanner] = {
    "reference": Scanner(),
    "scanner-a": Scanner(name="scanner-a", blur_sigma_um=0.3, gamma=0.85,
                         crosstalk=((0.93, 0.07, 0.0), (0.04, 0.92, 0.04), (0.0, 0.06, 0.94)),
                         glass=(248.0, 246.0, 242.0), jpeg_quality=90, noise_sigma=1.5),
    "scanner-b": Scanner(name="scanner-b", blur_sigma_um=0.5, gamma=1.2,
                         crosstalk=((0.90, 0.10, 0.0), (0.05, 0.90, 0.05), (0.0, 0.08, 0.92)),
                         glass=(238.0, 234.0, 226.0), jpeg_quality=75, noise_sigma=2.5),
    "scanner-c": Scanner(name="scanner-c", blur_sigma_um=0.6, gamma=1.1,
                         crosstalk=((0.92, 0.06, 0.02), (0.06, 0.88, 0.06), (0.02, 0.08, 0.90)),
                         glass=(228.0, 232.0, 245.0), jpeg_quality=70, noise_sigma=3.0),
}


def transmittance(od: np.ndarray) -> np.ndarray:
    """Beer-Lambert: light transmitted per channel, relative to the glass, of an OD (base 10) array."""
    return np.power(np.float32(10.0), -np.asarray(od, dtype=np.float32))


def sensor_rgb(light: np.ndarray, scanner: Scanner) -> np.ndarray:
    """8-bit RGB a scanner records from transmitted light (before noise).

    Parameters
    ----------
    light : ndarray, float, (..., 3)
        Transmitted light per channel relative to the glass (1 = glass).
    scanner : Scanner

    Returns
    -------
    ndarray, uint8, (..., 3)
        ``glass * (crosstalk @ light) ** gamma``, rounded and clipped.
    """
    s = np.asarray(light, dtype=np.float32)
    if scanner.crosstalk != _IDENTITY:  # skipped when identity: same values, less work
        s = s @ np.asarray(scanner.crosstalk, np.float32).T
    if scanner.gamma != 1.0:
        s = np.power(np.maximum(s, 0.0), np.float32(scanner.gamma))
    v = s * np.asarray(scanner.glass, np.float32)
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def glass_rgb(scanner: Scanner) -> np.ndarray:
    """(3,) uint8: the recorded colour of blank glass."""
    return sensor_rgb(np.ones(3, np.float32), scanner)

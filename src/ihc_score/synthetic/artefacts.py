"""Slide artefacts of a synthetic slide: folds, air bubbles, out-of-focus patches, pen ink (pure).

Each artefact is a frozen dataclass placed in slide fractions; :func:`outline`
gives its exact area as a polygon (level-0 px), and two functions of
:mod:`ihc_score.synthetic.artefact_drawing` draw them into a rendered
rectangle:

* :func:`apply_absorbers` changes the drawn OD before the optics blur: a
  fold is a second layer of the same tissue, so the OD is multiplied by
  ``od_factor`` (about 1.8-2) inside the band, with a soft edge of
  :data:`EDGE_UM`; pen ink adds the OD vector of its colour.
* :func:`apply_optics` changes the transmitted light after the optics blur:
  an out-of-focus patch replaces it by a stronger Gaussian blur of the
  light (``sigma_um``); an air bubble makes its inside paler and slightly
  blurred and adds a thin, achromatic (grey) refraction rim.

Both work on any rectangle with a margin of at least :func:`margin_px`, so a
pixel is the same whichever rectangle it is rendered in. Nothing here draws
random numbers: a slide without artefacts is unchanged.

Conventions: coordinates are level-0 px (x = column, y = row), pixel ``(j, i)``
of a rectangle at ``l0_xy`` has its centre at ``(x0 + i + 0.5, y0 + j + 0.5)``;
OD is base 10; an outline is where the artefact's weight is 0.5 (a bubble's
outline holds its rim and inside; a stroke's is the polyline buffered by half
its width).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Union

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import Polygon

__all__ = [
    "Fold",
    "AirBubble",
    "BlurPatch",
    "PenStroke",
    "Artefact",
    "ARTEFACT_KINDS",
    "INK_OD",
    "EDGE_UM",
    "outline",
    "margin_px",
    "touches",
]

#: Kinds of artefact, as written into the truth.
ARTEFACT_KINDS: tuple[str, ...] = ("fold", "air_bubble", "blur", "pen_ink")
#: OD (R, G, B, base 10) of one layer of marker ink: blue RGB ~ (40, 80, 195),
#: green ~ (35, 128, 64), black ~ (29, 29, 32) on white glass.
INK_OD: dict[str, tuple[float, float, float]] = {
    "blue": (0.80, 0.50, 0.115),
    "green": (0.86, 0.30, 0.60),
    "black": (0.94, 0.94, 0.90),
}
#: Width of the soft edge of folds and out-of-focus patches, um.
EDGE_UM = 3.0
#: Soft edge of a pen stroke, um (ink spreads and lies out of focus on the coverslip).
_INK_EDGE_UM = 8.0
#: Inside an air bubble: OD scale and extra blur (um) of the hazy tissue.
_BUBBLE_PALE = 0.6
_BUBBLE_SIGMA_UM = 1.0


def _check_point(p: tuple[float, float], name: str) -> tuple[float, float]:
    if len(p) != 2 or not all(0.0 <= float(c) <= 1.0 for c in p):
        raise ValueError(f"{name} must be (x, y) fractions of the slide in 0-1, got {p!r}")
    return float(p[0]), float(p[1])


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")


@dataclass(frozen=True)
class Fold:
    """Tissue folded over itself: a band where the tissue is two layers thick.

    Parameters
    ----------
    center : (float, float)
        Centre as fractions of the slide (width, height).
    length, width : float
        Band length and width as fractions of the slide width.
    angle_deg : float
        Direction of the band's length, degrees from the x axis (y down).
    od_factor : float
        OD of every stain inside the fold over that of the tissue, 1.3-3.
    name : str
    """

    kind: ClassVar[str] = "fold"
    center: tuple[float, float] = (0.5, 0.5)
    length: float = 0.5
    width: float = 0.05
    angle_deg: float = 0.0
    od_factor: float = 1.9
    name: str = "fold1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _check_point(self.center, "center"))
        if not 0.0 < self.width <= self.length <= 3.0:
            raise ValueError(f"width and length must satisfy 0 < width <= length <= 3 (slide widths), "
                             f"got {self.width!r}, {self.length!r}")
        if not 1.3 <= self.od_factor <= 3.0:
            raise ValueError(f"od_factor must be in 1.3-3, got {self.od_factor!r}")
        _check_name(self.name)


@dataclass(frozen=True)
class AirBubble:
    """An air bubble under the coverslip: a dark grey rim, paler hazy tissue inside.

    Parameters
    ----------
    center : (float, float)
        Centre as fractions of the slide (width, height).
    radius : float
        Radius to the middle of the rim, fraction of the slide width.
    rim_um : float
        Rim width, um (10-30).
    rim_od : float
        Peak achromatic OD of the rim per channel (0.3-1.5).
    name : str
    """

    kind: ClassVar[str] = "air_bubble"
    center: tuple[float, float] = (0.5, 0.5)
    radius: float = 0.1
    rim_um: float = 15.0
    rim_od: float = 0.7
    name: str = "bubble1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _check_point(self.center, "center"))
        if not 0.0 < self.radius <= 1.0:
            raise ValueError(f"radius must be a fraction of the slide width in (0, 1], got {self.radius!r}")
        if not 5.0 <= self.rim_um <= 40.0:
            raise ValueError(f"rim_um must be in 5-40 um, got {self.rim_um!r}")
        if not 0.3 <= self.rim_od <= 1.5:
            raise ValueError(f"rim_od must be in 0.3-1.5, got {self.rim_od!r}")
        _check_name(self.name)


@dataclass(frozen=True)
class BlurPatch:
    """An out-of-focus area: an ellipse where the optics blur is ``sigma_um``.

    Parameters
    ----------
    center : (float, float)
        Centre as fractions of the slide (width, height).
    radii : (float, float)
        Semi-axes as fractions of the slide (width, height).
    angle_deg : float
        Rotation, degrees.
    sigma_um : float
        Gaussian blur of the patch, um (1-10; a detector should see >= 1.5).
    name : str
    """

    kind: ClassVar[str] = "blur"
    center: tuple[float, float] = (0.5, 0.5)
    radii: tuple[float, float] = (0.1, 0.1)
    angle_deg: float = 0.0
    sigma_um: float = 2.0
    name: str = "blur1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _check_point(self.center, "center"))
        if len(self.radii) != 2 or not all(0.0 < float(r) <= 1.0 for r in self.radii):
            raise ValueError(f"radii must be 2 fractions of the slide in (0, 1], got {self.radii!r}")
        object.__setattr__(self, "radii", (float(self.radii[0]), float(self.radii[1])))
        if not 1.0 <= self.sigma_um <= 10.0:
            raise ValueError(f"sigma_um must be in 1-10 um, got {self.sigma_um!r}")
        _check_name(self.name)


@dataclass(frozen=True)
class PenStroke:
    """A marker stroke on the coverslip: a polyline of ink.

    Parameters
    ----------
    points : tuple of (float, float)
        Vertices as fractions of the slide (width, height), at least 2.
    width_um : float
        Stroke width, um (20-2000).
    colour : str
        ``"blue"``, ``"green"`` or ``"black"`` (OD in :data:`INK_OD`).
    name : str
    """

    kind: ClassVar[str] = "pen_ink"
    points: tuple[tuple[float, float], ...] = ((0.1, 0.1), (0.3, 0.1))
    width_um: float = 150.0
    colour: str = "blue"
    name: str = "ink1"

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError(f"points must hold at least 2 (x, y) fractions, got {self.points!r}")
        object.__setattr__(self, "points", tuple(_check_point(p, "each point") for p in self.points))
        if not 20.0 <= self.width_um <= 2000.0:
            raise ValueError(f"width_um must be in 20-2000 um, got {self.width_um!r}")
        if self.colour not in INK_OD:
            raise ValueError(f"colour must be one of {', '.join(INK_OD)}, got {self.colour!r}")
        _check_name(self.name)


#: Any artefact.
Artefact = Union[Fold, AirBubble, BlurPatch, PenStroke]


def _rim_half_px(a: AirBubble, mpp_um: float) -> float:
    return 0.5 * a.rim_um / mpp_um


def outline(a: Artefact, size: tuple[int, int], mpp_um: float) -> Polygon:
    """The area of an artefact, level-0 px, clipped to the slide.

    Parameters
    ----------
    a : Fold, AirBubble, BlurPatch or PenStroke
    size : (int, int)
        Slide (width, height), level-0 px.
    mpp_um : float
        Level-0 pixel size, um/px.

    Returns
    -------
    Polygon or MultiPolygon
        Fold: the band's rectangle; bubble: the disc out to the rim's outer
        edge; blur patch: the ellipse; stroke: the polyline buffered by half
        its width (round caps).
    """
    w, h = size
    if isinstance(a, Fold):
        geom = shapely.box(-0.5 * a.length * w, -0.5 * a.width * w, 0.5 * a.length * w, 0.5 * a.width * w)
        geom = affinity.rotate(geom, a.angle_deg, origin=(0, 0))
        geom = affinity.translate(geom, a.center[0] * w, a.center[1] * h)
    elif isinstance(a, AirBubble):
        geom = shapely.Point(a.center[0] * w, a.center[1] * h).buffer(a.radius * w + _rim_half_px(a, mpp_um), 64)
    elif isinstance(a, BlurPatch):
        t = np.linspace(0.0, 2.0 * math.pi, 256, endpoint=False)
        u, v = a.radii[0] * w * np.cos(t), a.radii[1] * h * np.sin(t)
        r = math.radians(a.angle_deg)
        geom = Polygon(np.stack([a.center[0] * w + u * math.cos(r) - v * math.sin(r),
                                 a.center[1] * h + u * math.sin(r) + v * math.cos(r)], axis=1))
    else:
        pts = [(x * w, y * h) for x, y in a.points]
        geom = shapely.LineString(pts).buffer(0.5 * a.width_um / mpp_um, 32)
    return shapely.intersection(geom, shapely.box(0, 0, w, h))


def margin_px(artefacts: tuple[Artefact, ...], mpp_um: float) -> int:
    """Extra margin (level-0 px) a rectangle needs so the artefacts' blurs are exact."""
    sig = [a.sigma_um for a in artefacts if isinstance(a, BlurPatch)]
    sig += [_BUBBLE_SIGMA_UM for a in artefacts if isinstance(a, AirBubble)]
    return int(math.ceil(3.0 * max(sig, default=0.0) / mpp_um)) + 2


def touches(artefacts: tuple[Artefact, ...], size: tuple[int, int], mpp_um: float,
            rect: tuple[int, int, int, int]) -> bool:
    """Whether a rectangle ``(x0, y0, w, h)`` meets an artefact drawn on glass too (ink, bubble rim)."""
    box = shapely.box(rect[0], rect[1], rect[0] + rect[2], rect[1] + rect[3])
    return any(outline(a, size, mpp_um).buffer(_INK_EDGE_UM / mpp_um).intersects(box)
               for a in artefacts if isinstance(a, (PenStroke, AirBubble)))

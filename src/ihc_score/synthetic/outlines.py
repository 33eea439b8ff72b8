"""Outlines of a synthetic slide's metastases and necroses as polygons (pure).

The polygons are the ground truth of a slide's regions: tumour cells are
placed only where their designed centre lies inside their metastasis outline
(:func:`inside`), which already has the necroses cut out, so the outline
written into the truth is exactly the boundary used to place the cells.
Coordinates are level-0 px (x = column, y = row), rounded to 0.01 px before
use so that the written outline and the placement agree to the last digit.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from skimage import measure

__all__ = [
    "Outline",
    "field_outline",
    "necrosis_outline",
    "signed_distance_um",
    "inside",
    "geometry_dict",
    "clean",
]

#: A region outline: a valid, non-empty polygon or multipolygon (level-0 px), or an empty polygon.
Outline = Polygon | MultiPolygon

#: Vertices of a necrosis outline.
_NECROSIS_VERTICES = 96
#: Most vertices of a metastasis outline before the necroses are cut out.
_MAX_VERTICES = 240


def clean(geom: shapely.Geometry) -> Outline:
    """Rounded to 0.01 px, made valid, polygons only."""
    geom = shapely.transform(geom, lambda c: np.round(c, 2))
    geom = shapely.make_valid(geom)
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, Polygon) and not g.is_empty]
    if not parts:
        return Polygon()
    out = parts[0] if len(parts) == 1 else MultiPolygon(parts)
    return out if out.is_valid else shapely.make_valid(out)


def field_outline(field: np.ndarray, step_px: float, *, size: tuple[int, int]) -> Outline:
    """The zero contour of a coarse field (positive inside) as a polygon.

    Parameters
    ----------
    field : (ny, nx) array
        Values at grid nodes; node ``(j, i)`` lies at level-0 px
        ``(i * step_px, j * step_px)``.
    step_px : float
        Grid step, level-0 px.
    size : (int, int)
        Slide (width, height), px; the outline is clipped to it.

    Returns
    -------
    Polygon or MultiPolygon
        Marching-squares contour at 0 (holes kept by even-odd rule),
        simplified to at most about 240 vertices, rounded to 0.01 px; empty
        when the field is nowhere positive.
    """
    padded = np.pad(np.asarray(field, np.float64), 1, constant_values=-1e4)
    rings = [c for c in measure.find_contours(padded, 0.0) if len(c) >= 4]
    geom: shapely.Geometry = Polygon()
    for c in rings:
        ring = Polygon(np.stack([(c[:, 1] - 1) * step_px, (c[:, 0] - 1) * step_px], axis=1))
        geom = shapely.symmetric_difference(geom, shapely.make_valid(ring))
    geom = shapely.intersection(geom, shapely.box(0, 0, size[0], size[1]))
    tol = 0.25 * step_px / 16.0
    simple = geom
    while shapely.get_num_coordinates(simple) > _MAX_VERTICES and tol < step_px:
        tol *= 2.0
        simple = shapely.simplify(geom, tol, preserve_topology=True)
    return clean(simple)


def necrosis_outline(rng: np.random.Generator, center_px: tuple[float, float], radii_px: tuple[float, float],
                     angle_deg: float, *, size: tuple[int, int]) -> Outline:
    """A noisy ellipse (96 vertices, low harmonics of the radius), clipped to the slide.

    Parameters
    ----------
    rng : numpy Generator
    center_px, radii_px : (float, float)
        Centre and semi-axes, level-0 px.
    angle_deg : float
        Rotation, degrees.
    size : (int, int)
        Slide (width, height), px.
    """
    t = np.linspace(0.0, 2.0 * math.pi, _NECROSIS_VERTICES, endpoint=False)
    m = np.arange(2, 7)
    amp = rng.uniform(0.0, 0.12, m.size) / m * 2.0
    phase = rng.uniform(0.0, 2.0 * math.pi, m.size)
    r = 1.0 + (amp[:, None] * np.cos(m[:, None] * t[None, :] + phase[:, None])).sum(0)
    u, v = radii_px[0] * r * np.cos(t), radii_px[1] * r * np.sin(t)
    a = math.radians(angle_deg)
    x = center_px[0] + u * math.cos(a) - v * math.sin(a)
    y = center_px[1] + u * math.sin(a) + v * math.cos(a)
    geom = shapely.intersection(shapely.make_valid(Polygon(np.stack([x, y], axis=1))),
                                shapely.box(0, 0, size[0], size[1]))
    return clean(geom)


def signed_distance_um(geom: Outline, step_px: float, shape: tuple[int, int], mpp_um: float) -> np.ndarray:
    """Signed distance (um, positive inside) to an outline at the nodes of a coarse grid.

    Parameters
    ----------
    geom : Polygon or MultiPolygon
    step_px : float
        Grid step, level-0 px; node ``(j, i)`` at ``(i * step_px, j * step_px)``.
    shape : (int, int)
        Grid (ny, nx).
    mpp_um : float
        Level-0 pixel size, um/px.

    Returns
    -------
    (ny, nx) float32
    """
    ny, nx = shape
    if geom.is_empty:
        return np.full(shape, -1e4, np.float32)
    gx, gy = np.meshgrid(np.arange(nx) * step_px, np.arange(ny) * step_px)
    pts = shapely.points(gx.ravel(), gy.ravel())
    d = shapely.distance(geom.boundary, pts) * mpp_um
    sign = np.where(shapely.contains_xy(geom, gx.ravel(), gy.ravel()), 1.0, -1.0)
    return (sign * d).reshape(shape).astype(np.float32)


def inside(geom: Outline, x: np.ndarray, y: np.ndarray, *, margin_px: float = 0.0) -> np.ndarray:
    """Whether points lie inside an outline, at least ``margin_px`` from its boundary.

    Negative ``margin_px`` grows the outline. Vectorised (``shapely.contains_xy``).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if geom.is_empty or x.size == 0:
        return np.zeros(x.shape, bool)
    g = geom if margin_px == 0 else shapely.buffer(geom, -margin_px)
    if g.is_empty:
        return np.zeros(x.shape, bool)
    return shapely.contains_xy(g, x, y)


def geometry_dict(geom: Outline) -> dict:
    """GeoJSON-style geometry (``type``, ``coordinates``), level-0 px, 0.01 px precision."""
    if geom.is_empty:
        return {"type": "Polygon", "coordinates": []}
    d = shapely.geometry.mapping(geom)

    def lists(c: object) -> object:
        if isinstance(c, (tuple, list)) and c and isinstance(c[0], (int, float)):
            return [round(float(v), 2) for v in c]
        return [lists(v) for v in c]  # type: ignore[union-attr]

    return {"type": d["type"], "coordinates": lists(d["coordinates"])}

"""Drawing synthetic artefacts into a rendered rectangle (pure).

:func:`apply_absorbers` changes the drawn OD before the optics blur (folds,
pen ink); :func:`apply_optics` changes the transmitted light after it
(out-of-focus patches, air bubbles). The artefacts, their outlines and the
margin a rectangle needs are in :mod:`ihc_score.synthetic.artefacts`, whose
docstring gives the conventions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import cv2
import numpy as np
from shapely.geometry import Polygon

from ihc_score.synthetic.artefacts import (
    _BUBBLE_PALE,
    _BUBBLE_SIGMA_UM,
    _INK_EDGE_UM,
    EDGE_UM,
    INK_OD,
    AirBubble,
    Artefact,
    BlurPatch,
    Fold,
    PenStroke,
    _rim_half_px,
    outline,
)

__all__ = ["apply_absorbers", "apply_optics"]


def _window(geom: Polygon, grow_px: float, l0_xy: tuple[int, int], shape: tuple[int, int]
            ) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """Rows/columns of a rectangle within ``grow_px`` of a geometry, and their pixel-centre coordinates."""
    if geom.is_empty:
        return None
    x0, y0 = l0_xy
    bx0, by0, bx1, by1 = geom.bounds
    i0, i1 = max(int(math.floor(bx0 - grow_px - x0)), 0), min(int(math.ceil(bx1 + grow_px - x0)) + 1, shape[1])
    j0, j1 = max(int(math.floor(by0 - grow_px - y0)), 0), min(int(math.ceil(by1 + grow_px - y0)) + 1, shape[0])
    if i1 <= i0 or j1 <= j0:
        return None
    xs = (x0 + np.arange(i0, i1) + 0.5).astype(np.float64)
    ys = (y0 + np.arange(j0, j1) + 0.5).astype(np.float64)
    return slice(j0, j1), slice(i0, i1), xs, ys


def _placed(artefacts: tuple[Artefact, ...], kind: type, grow_px: float, size: tuple[int, int], mpp_um: float,
            l0_xy: tuple[int, int], shape: tuple[int, int]) -> Iterator[tuple[Artefact, tuple]]:
    """The artefacts of ``kind`` (in order) that reach the rectangle, each with its :func:`_window`."""
    for a in artefacts:
        if isinstance(a, kind):
            win = _window(outline(a, size, mpp_um), grow_px, l0_xy, shape)
            if win is not None:
                yield a, win


def _ramp(d: np.ndarray, edge_px: float) -> np.ndarray:
    """Soft step: 0.5 where the signed distance ``d`` (positive inside) is 0, linear over ``edge_px``."""
    return np.clip(d / edge_px + 0.5, 0.0, 1.0).astype(np.float32)


def _rotated(xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, angle_deg: float
             ) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    dx, dy = xs[None, :] - cx, ys[:, None] - cy
    return dx * c + dy * s, dy * c - dx * s


def _fold_weight(a: Fold, xs: np.ndarray, ys: np.ndarray, w: int, h: int, edge_px: float) -> np.ndarray:
    u, v = _rotated(xs, ys, a.center[0] * w, a.center[1] * h, a.angle_deg)
    return _ramp(0.5 * a.length * w - np.abs(u), edge_px) * _ramp(0.5 * a.width * w - np.abs(v), edge_px)


def _ellipse_weight(a: BlurPatch, xs: np.ndarray, ys: np.ndarray, w: int, h: int, edge_px: float) -> np.ndarray:
    ra, rb = a.radii[0] * w, a.radii[1] * h
    u, v = _rotated(xs, ys, a.center[0] * w, a.center[1] * h, a.angle_deg)
    return _ramp((1.0 - np.sqrt((u / ra) ** 2 + (v / rb) ** 2)) * min(ra, rb), edge_px)


def _segment_distance(xs: np.ndarray, ys: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel centre of a grid to a polyline."""
    px, py = xs[None, :], ys[:, None]
    best = np.full((ys.size, xs.size), np.inf)
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:]):
        vx, vy = bx - ax, by - ay
        t = np.clip(((px - ax) * vx + (py - ay) * vy) / max(vx * vx + vy * vy, 1e-12), 0.0, 1.0)
        best = np.minimum(best, np.hypot(px - ax - t * vx, py - ay - t * vy))
    return best


def apply_absorbers(od: np.ndarray, artefacts: tuple[Artefact, ...], *, size: tuple[int, int], mpp_um: float,
                    l0_xy: tuple[int, int]) -> np.ndarray:
    """Folds and pen ink drawn into the OD (before the optics blur).

    Parameters
    ----------
    od : ndarray, float32, (h, w, 3)
        OD (R, G, B, base 10) of a rectangle at ``l0_xy``.
    artefacts : tuple
    size : (int, int)
        Slide (width, height), level-0 px.
    mpp_um : float
    l0_xy : (int, int)
        Top-left corner of ``od``, level-0 px.

    Returns
    -------
    ndarray, float32, (h, w, 3)
        A new array; ``od`` is not changed.
    """
    out = od.copy()
    w, h = size
    edge = EDGE_UM / mpp_um
    place = (size, mpp_um, l0_xy, od.shape[:2])
    for a, (rows, cols, xs, ys) in _placed(artefacts, Fold, edge, *place):
        out[rows, cols] *= (1.0 + (a.od_factor - 1.0) * _fold_weight(a, xs, ys, w, h, edge))[..., None]
    ink_edge = _INK_EDGE_UM / mpp_um
    for a, (rows, cols, xs, ys) in _placed(artefacts, PenStroke, ink_edge, *place):
        pts = np.array([(x * w, y * h) for x, y in a.points])
        wt = _ramp(0.5 * a.width_um / mpp_um - _segment_distance(xs, ys, pts), ink_edge)
        out[rows, cols] += wt[..., None] * np.asarray(INK_OD[a.colour], np.float32)
    return out


def apply_optics(od: np.ndarray, light_blurred: np.ndarray, artefacts: tuple[Artefact, ...], *,
                 size: tuple[int, int], mpp_um: float, base_sigma_px: float, l0_xy: tuple[int, int]) -> np.ndarray:
    """Out-of-focus patches and air bubbles drawn into the optics-blurred transmitted light of a rectangle.

    Parameters
    ----------
    od : ndarray, float32, (h, w, 3)
        OD before the optics blur (after :func:`apply_absorbers`).
    light_blurred : ndarray, float32, (h, w, 3)
        Its transmitted light ``10 ** -od`` after the slide's own optics blur (``base_sigma_px``).
    artefacts, size, mpp_um, l0_xy
        As :func:`apply_absorbers`.
    base_sigma_px : float
        The slide's optics blur, level-0 px.

    Returns
    -------
    ndarray, float32, (h, w, 3)
        A new array of light. In a patch the blur is ``sqrt(sigma^2 +
        base^2)``; inside a bubble the tissue is ``0.6 x`` its OD, blurred by
        1 um more, and its rim adds grey OD ``rim_od`` (raised-cosine profile).
    """
    out = light_blurred.copy()
    w, h = size
    edge = EDGE_UM / mpp_um
    place = (size, mpp_um, l0_xy, od.shape[:2])
    light = None
    for a, (rows, cols, xs, ys) in _placed(artefacts, BlurPatch, edge, *place):
        light = np.power(np.float32(10.0), -od) if light is None else light
        s = math.hypot(a.sigma_um / mpp_um, base_sigma_px)
        strong = cv2.GaussianBlur(light, (0, 0), s)[rows, cols]
        wt = _ellipse_weight(a, xs, ys, w, h, edge)[..., None]
        out[rows, cols] += wt * (strong - out[rows, cols])
    haze = None
    for a, (rows, cols, xs, ys) in _placed(artefacts, AirBubble, edge, *place):
        half = _rim_half_px(a, mpp_um)
        if haze is None:  # once for every bubble of the rectangle
            pale = np.power(np.float32(10.0), -_BUBBLE_PALE * od)
            haze = cv2.GaussianBlur(pale, (0, 0), math.hypot(_BUBBLE_SIGMA_UM / mpp_um, base_sigma_px))
        r = a.radius * w
        d = np.hypot(xs[None, :] - a.center[0] * w, ys[:, None] - a.center[1] * h)
        wi = _ramp(r - d, edge)[..., None]
        out[rows, cols] += wi * (haze[rows, cols] - out[rows, cols])
        rim = 0.5 * (1.0 + np.cos(math.pi * np.clip((d - r) / half, -1.0, 1.0)))
        out[rows, cols] *= np.power(np.float32(10.0), -(a.rim_od * rim).astype(np.float32))[..., None]
    return out

"""Helpers shared by the stain tests."""

from __future__ import annotations

import numpy as np


def rotate(v: tuple[float, float, float], toward: tuple[float, float, float], deg: float) -> tuple[float, float, float]:
    """``v`` turned by ``deg`` degrees in the plane it spans with ``toward``."""
    u = np.asarray(v, dtype=np.float64)
    u = u / np.linalg.norm(u)
    p = np.asarray(toward, dtype=np.float64)
    p = p - (p @ u) * u
    p /= np.linalg.norm(p)
    t = np.radians(deg)
    out = np.cos(t) * u + np.sin(t) * p
    return (float(out[0]), float(out[1]), float(out[2]))

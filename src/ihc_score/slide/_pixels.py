"""Pixel conversions shared by the slide backends (private).

Every backend hands ``slide.py`` an (h, w, 3) uint8 RGB array. These helpers
turn what a decoder produced (grey, grey + alpha, RGB, RGBA, 1/8/16/32-bit,
palette) into that, with transparency composited over white so that padding
and empty areas read as glass background.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["dpi_is_placeholder", "over_white", "scale_to_uint8", "to_rgb"]

#: Pixel densities (pixels per inch) that image software writes by default and
#: that therefore say nothing about the scanner's pixel size.
_PLACEHOLDER_DPI = (72.0, 96.0)


def dpi_is_placeholder(pixels_per_inch: float) -> bool:
    """Return True for 72 or 96 dpi (within 0.5 %), the usual software defaults."""
    return any(abs(pixels_per_inch - d) <= 0.005 * d for d in _PLACEHOLDER_DPI)


def scale_to_uint8(values: np.ndarray, max_value: float) -> np.ndarray:
    """Scale integer or boolean samples in ``[0, max_value]`` to uint8 ``[0, 255]``.

    Parameters
    ----------
    values : np.ndarray
        bool, uint8, uint16 or uint32 samples.
    max_value : float
        Sample value that maps to 255 (``2**bits - 1`` unless the file says otherwise).

    Returns
    -------
    np.ndarray
        uint8 array of the same shape, rounded to nearest.
    """
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * np.uint8(255)
    if values.dtype == np.uint8 and max_value == 255:
        return values
    if values.dtype in (np.uint8, np.uint16):
        return _lut(np.iinfo(values.dtype).max + 1, float(max_value))[values]
    scaled = np.rint(values.astype(np.float32) * np.float32(255.0 / max_value))
    return np.clip(scaled, 0, 255).astype(np.uint8)


@lru_cache(maxsize=8)
def _lut(n_levels: int, max_value: float) -> np.ndarray:
    levels = np.arange(n_levels, dtype=np.float32)
    return np.clip(np.rint(levels * (255.0 / max_value)), 0, 255).astype(np.uint8)


def over_white(rgb: np.ndarray, alpha: np.ndarray, *, premultiplied: bool) -> np.ndarray:
    """Composite uint8 colour over a white background.

    Parameters
    ----------
    rgb : np.ndarray
        (h, w, 3) uint8 colour.
    alpha : np.ndarray
        (h, w) uint8 opacity, 255 = opaque.
    premultiplied : bool
        True when ``rgb`` is already multiplied by ``alpha`` (associated alpha).

    Returns
    -------
    np.ndarray
        (h, w, 3) uint8: ``c + (255 - a)`` if premultiplied, else
        ``c * a / 255 + (255 - a)``, rounded.
    """
    if alpha.size == 0 or alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha.astype(np.uint16)[..., None]
    c = rgb.astype(np.uint16)
    if not premultiplied:
        c = (c * a + 127) // 255
    return np.minimum(c + (255 - a), 255).astype(np.uint8)


def to_rgb(
    samples: np.ndarray,
    *,
    max_value: float,
    has_alpha: bool,
    premultiplied: bool = False,
    invert: bool = False,
) -> np.ndarray:
    """Turn decoded samples (h, w) or (h, w, s), s in 1..4, into (h, w, 3) uint8 RGB.

    Parameters
    ----------
    samples : np.ndarray
        Grey (s = 1), grey + alpha (s = 2), RGB (s = 3) or RGB + alpha / extra
        sample (s = 4).
    max_value : float
        Sample value of full intensity (see :func:`scale_to_uint8`).
    has_alpha : bool
        Whether the last sample of a 2- or 4-sample image is opacity.
    premultiplied : bool
        Whether that opacity is associated (colour premultiplied).
    invert : bool
        True for "min is white" grey images.

    Returns
    -------
    np.ndarray
        (h, w, 3) uint8 RGB, transparent pixels white.
    """
    arr = samples if samples.ndim == 3 else samples[..., None]
    arr8 = scale_to_uint8(arr, max_value)
    n = arr8.shape[2]
    colour = arr8[..., :1] if n <= 2 else arr8[..., :3]
    if invert:
        colour = 255 - colour
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    if has_alpha and n in (2, 4):
        return over_white(colour, arr8[..., n - 1], premultiplied=premultiplied)
    return np.ascontiguousarray(colour)

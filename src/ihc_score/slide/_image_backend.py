"""Pillow backend of :mod:`ihc_score.slide.base` for plain images (PNG, JPEG, ...) (private).

A plain image is one level. It is decoded on the first read and kept as RGB;
Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) is enforced
as a :class:`SlideOpenError`, because such images belong in a tiled pyramid.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ihc_score.errors import SlideOpenError, SlideReadError
from ihc_score.slide._pixels import dpi_is_placeholder, over_white, to_rgb
from ihc_score.slide.base import BackendRefusal, Slide

__all__ = ["ImageSlide", "open_image"]

_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_MODES_OK = {"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr"} | _ALPHA_MODES | _SIXTEEN_BIT


def open_image(path: Path, *, mpp_option_um: float | None) -> ImageSlide:
    """Open ``path`` with Pillow; raise :class:`BackendRefusal` if Pillow cannot identify it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise SlideOpenError(
            f"{path.name}: image larger than Pillow's limit of {Image.MAX_IMAGE_PIXELS} px for plain "
            "images; convert it to a tiled pyramidal TIFF (e.g. vips tiffsave --tile --pyramid)"
        ) from err
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise BackendRefusal(str(err) or type(err).__name__) from err
    try:
        return ImageSlide(path, image, mpp_option_um=mpp_option_um)
    except BaseException:
        image.close()
        raise


def _image_mpp(image: Image.Image) -> tuple[float, float] | None:
    """Pixel size in um from the image's dpi (PNG pHYs, JFIF density), unless a default."""
    dpi = image.info.get("dpi")
    if not isinstance(dpi, tuple) or len(dpi) != 2:
        return None
    try:
        dpi_x, dpi_y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError):
        return None
    if dpi_x <= 0 or dpi_y <= 0 or (dpi_is_placeholder(dpi_x) and dpi_is_placeholder(dpi_y)):
        return None
    return 25400.0 / dpi_x, 25400.0 / dpi_y


class ImageSlide(Slide):
    """A plain image read through Pillow as one level; vendor "image".

    Colour profiles are not applied. Grey, palette and CMYK images are converted
    to RGB; 16-bit grey is scaled to 8 bits (value / 257).
    """

    def __init__(self, path: Path, image: Image.Image, *, mpp_option_um: float | None) -> None:
        if image.mode not in _MODES_OK:
            raise SlideOpenError(
                f"{path.name}: image mode {image.mode}: not an RGB brightfield image; "
                "export the image as 8-bit RGB"
            )
        super().__init__(
            path,
            vendor="image",
            level_dimensions=[image.size],
            level_scales=[(1.0, 1.0)],
            slide_mpp=_image_mpp(image),
            mpp_option_um=mpp_option_um,
        )
        self._image = image
        self._rgb: np.ndarray | None = None
        self._lock = threading.Lock()

    def _decode(self) -> np.ndarray:
        image = self._image
        if image.mode in _SIXTEEN_BIT:
            grey = np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
            return to_rgb(grey, max_value=65535.0, has_alpha=False)
        has_alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
        if not has_alpha:
            return np.asarray(image.convert("RGB"))
        rgba = np.asarray(image.convert("RGBA"))
        return over_white(rgba[..., :3], rgba[..., 3], premultiplied=False)

    def _read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        with self._lock:
            if self._rgb is None:
                try:
                    self._rgb = self._decode()
                except (OSError, ValueError, SyntaxError) as err:
                    raise SlideReadError(
                        f"{self.path.name}: corrupt or truncated image data ({err}); "
                        "re-export or re-copy the image"
                    ) from err
                self._image.close()
        return self._rgb[y : y + h, x : x + w].copy()

    def _close(self) -> None:
        self._image.close()
        self._rgb = None

"""OpenSlide backend of :mod:`ihc_score.slide.base` (private).

Reads the pyramid only: ``associated_images`` (label, macro, thumbnail) is never
touched, and only whitelisted properties are copied out of the file. Levels
made of plain JPEG tiles (Aperio SVS, generic tiled TIFF) are decoded directly
by :mod:`ihc_score.slide._jpeg_tiles`, with the same pixels as OpenSlide's;
``IHC_SCORE_READER=openslide`` turns that off.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import openslide

from ihc_score.errors import SlideOpenError, SlideReadError
from ihc_score.slide._jpeg_tiles import JpegTileReader, open_jpeg_tile_reader
from ihc_score.slide._pixels import dpi_is_placeholder, over_white
from ihc_score.slide.base import BackendRefusal, Slide

__all__ = ["OpenSlideSlide", "detect_vendor", "open_openslide"]

#: Properties naming the scanner model, by preference.
_MODEL_KEYS = ("tiff.Model", "dicom.ManufacturerModelName", "leica.device-model")
_MAX_TEXT = 64
#: Largest tile (pixels) accepted; OpenSlide aborts the process when it cannot allocate a tile.
_MAX_TILE_PX = 64 * 1024 * 1024


def detect_vendor(path: Path) -> str | None:
    """OpenSlide's vendor name for ``path``, or None if OpenSlide does not recognise it."""
    try:
        return openslide.OpenSlide.detect_format(str(path))
    except (openslide.OpenSlideError, OSError, ValueError):
        return None


def open_openslide(path: Path, *, mpp_option_um: float | None) -> OpenSlideSlide:
    """Open ``path`` with OpenSlide; raise :class:`BackendRefusal` with OpenSlide's reason."""
    try:
        osr = openslide.OpenSlide(str(path))
    except (openslide.OpenSlideError, OSError, ValueError) as err:
        reason = str(err).replace(f"Reading {path}: ", "") or type(err).__name__
        raise BackendRefusal(reason) from err
    try:
        return OpenSlideSlide(path, osr, mpp_option_um=mpp_option_um)
    except BaseException:
        osr.close()
        raise


def _float(props: Mapping[str, str], key: str) -> float | None:
    try:
        value = float(props[key])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _slide_mpp(props: Mapping[str, str]) -> tuple[float, float] | None:
    """OpenSlide's mpp-x/mpp-y, unless missing or a 72/96 dpi software default."""
    mpp_x, mpp_y = _float(props, "openslide.mpp-x"), _float(props, "openslide.mpp-y")
    if mpp_x is None or mpp_y is None:
        return None
    if dpi_is_placeholder(25400.0 / mpp_x) and dpi_is_placeholder(25400.0 / mpp_y):
        return None
    return mpp_x, mpp_y


def _short_text(props: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = props.get(key, "").strip()
        if value and len(value) <= _MAX_TEXT and value.isprintable():
            return value
    return None


class OpenSlideSlide(Slide):
    """A slide read through OpenSlide (see :class:`ihc_score.slide.base.Slide`).

    OpenSlide latches errors: after one failed read every operation fails, so
    after the first :class:`SlideReadError` every read raises it again.
    """

    def __init__(self, path: Path, osr: openslide.OpenSlide, *, mpp_option_um: float | None) -> None:
        try:
            props = osr.properties
            vendor = props.get("openslide.vendor") or "unknown"
            dims = osr.level_dimensions
            downsamples = osr.level_downsamples
            mpp = _slide_mpp(props)
            objective = _float(props, "openslide.objective-power")
            model = _short_text(props, _MODEL_KEYS)
        except openslide.OpenSlideError as err:
            raise BackendRefusal(str(err)) from err
        for i in range(len(dims)):
            tile = [_float(props, f"openslide.level[{i}].tile-{side}") or 0.0 for side in ("width", "height")]
            if tile[0] * tile[1] > _MAX_TILE_PX:
                raise SlideOpenError(
                    f"{path.name}: level {i} has {tile[0]:.0f} x {tile[1]:.0f} px tiles, a corrupt header; "
                    "re-scan or re-copy the slide"
                )
        super().__init__(
            path,
            vendor=vendor,
            level_dimensions=dims,
            level_scales=[(ds, ds) for ds in downsamples],
            slide_mpp=mpp,
            mpp_option_um=mpp_option_um,
        )
        self._osr = osr
        self._os_downsamples = tuple(float(ds) for ds in downsamples)
        self._extra = {"objective_power": objective, "scanner_model": model}
        self._failure: str | None = None
        self._lock = threading.Lock()
        self._fast: JpegTileReader | None = open_jpeg_tile_reader(
            path, vendor=vendor, level_dimensions=dims, level_downsamples=downsamples, properties=props
        )

    def _extra_metadata(self) -> dict[str, Any]:
        return {k: v for k, v in self._extra.items() if v is not None}

    def _read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        if self._failure is not None:
            raise SlideReadError(self._failure)
        if self._fast is not None:
            rgb = self._fast.read(level, x, y, w, h)
            if rgb is not None:
                return rgb
        ds = self._os_downsamples[level]
        l0_xy = (round(x * ds), round(y * ds))
        try:
            image = self._osr.read_region(l0_xy, level, (w, h))
            rgba = np.asarray(image)
        except (openslide.OpenSlideError, OSError, ValueError) as err:
            with self._lock:
                self._failure = (
                    f"{self.path.name}: corrupt pixel data at level {level} near "
                    f"({l0_xy[0]}, {l0_xy[1]}) ({err}); the file is damaged: re-scan or re-copy it"
                )
            raise SlideReadError(self._failure) from err
        # openslide-python returns straight (un-premultiplied) RGBA.
        return over_white(rgba[..., :3], rgba[..., 3], premultiplied=False)

    def _read_level_halved(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray | None:
        if self._failure is not None or self._fast is None:
            return None
        return self._fast.read(level, x, y, w, h, halved=True)

    def _close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self._osr.close()

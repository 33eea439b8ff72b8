"""Whole-slide image reading: one :class:`Slide` interface over three backends.

:func:`ihc_score.slide.factory.open_slide` tries OpenSlide first (SVS, NDPI, MRXS, SCN, BIF, Philips
TIFF, DICOM, generic tiled TIFF), then tifffile for TIFF files OpenSlide
refuses (strip TIFF, OME-TIFF), then Pillow for plain images (PNG, JPEG, ...),
like openslide-python's ``open_slide()`` falls back to ``ImageSlide``.

Conventions
-----------
* Pixels are (h, w, 3) uint8 RGB arrays. Transparent pixels and everything
  outside the image read as white (255, 255, 255), i.e. glass background.
* Coordinates are (x, y) = (column, row) and sizes (width, height). ``l0_``
  names are in level-0 pixels; a level's downsample is level-0 pixels per
  level pixel.
* Pixel size ``mpp`` is in micrometres per level-0 pixel.
* Label, macro and thumbnail images stored beside the pyramid are never read:
  they can carry patient names.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from ihc_score.errors import MissingPixelSizeError, SlideOpenError

__all__ = ["Slide", "BackendRefusal"]

#: Level pixels decoded at once by :meth:`Slide.read_scaled`; larger regions are read in bands.
_CHUNK_PX = 16 * 1024 * 1024
#: A level is used for a requested downsample when its own is at most this factor larger.
_LEVEL_TOLERANCE = 1.01
_EPS = 1e-9



class BackendRefusal(Exception):
    """Raised by a backend that cannot open a file; the message is the bare reason."""


#: Most pixels read from one level to draw a slide's overview (2 Gpx):
#: real pyramids offer a level far smaller; a larger read means no pyramid.
_MAX_THUMBNAIL_SOURCE_PX = 1 << 31


class Slide(ABC):
    """An open whole-slide image (or plain image) read as RGB.

    Attributes
    ----------
    path : Path
        The slide file.
    vendor : str
        OpenSlide's vendor ("aperio", "hamamatsu", "generic-tiff", "dicom", ...),
        "tiff" for the tifffile backend, "image" for the Pillow backend.
    mpp : float
        Micrometres per level-0 pixel (mean of x and y).
    mpp_source : str
        "slide" when the file stores the pixel size, "option" when it came from
        the ``mpp`` argument of :func:`open_slide`.
    mpp_option_um : float or None
        The ``mpp`` argument as given; ignored when ``mpp_source == "slide"``.
    dimensions : tuple of int
        Level-0 (width, height) in pixels.
    level_dimensions : tuple of tuple of int
        (width, height) of every pyramid level, level 0 first.
    level_downsamples : tuple of float
        Level-0 pixels per level pixel, one per level, increasing.

    Notes
    -----
    Use as a context manager or call :meth:`close`. Not safe to share across
    processes: open the slide by path in each worker.
    """

    def __init__(
        self,
        path: Path,
        *,
        vendor: str,
        level_dimensions: Sequence[tuple[int, int]],
        level_scales: Sequence[tuple[float, float]],
        slide_mpp: tuple[float, float] | None,
        mpp_option_um: float | None,
    ) -> None:
        """Set the common attributes; called by each backend once its file is open.

        ``level_scales`` holds level-0 pixels per level pixel along x and y for
        every level; ``slide_mpp`` the file's own (x, y) pixel size in um, if any.
        Raises :class:`MissingPixelSizeError` when neither it nor ``mpp_option_um``
        is given.
        """
        self.path = path
        self.vendor = vendor
        self.level_dimensions = tuple((int(w), int(h)) for w, h in level_dimensions)
        self.dimensions = self.level_dimensions[0]
        self._scales = tuple((float(sx), float(sy)) for sx, sy in level_scales)
        self.level_downsamples = tuple((sx + sy) / 2.0 for sx, sy in self._scales)
        self.mpp_option_um = mpp_option_um
        self._slide_mpp = slide_mpp
        if slide_mpp is not None:
            self.mpp = (slide_mpp[0] + slide_mpp[1]) / 2.0
            self.mpp_source = "slide"
        elif mpp_option_um is not None:
            self.mpp = float(mpp_option_um)
            self.mpp_source = "option"
        else:
            raise MissingPixelSizeError(
                f"{path.name}: the slide does not store its pixel size; pass --mpp "
                "(micrometres per pixel, e.g. --mpp 0.25 for a 40x scan, 0.5 for 20x)"
            )
        self._closed = False

    # -- backend hooks -------------------------------------------------------------
    @abstractmethod
    def _read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Return (h, w, 3) uint8 RGB of a rectangle that lies inside ``level``."""

    @abstractmethod
    def _close(self) -> None:
        """Release the backend's file handles."""

    def _read_level_halved(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray | None:
        """(h / 2, w / 2, 3) uint8 RGB of an even rectangle inside ``level``, reduced 2x, or None.

        Optional: a backend that can give exactly what ``cv2.resize`` with
        ``cv2.INTER_AREA`` makes of :meth:`_read_level` (each 2 x 2 block
        averaged), faster than that, overrides this. None reads the full
        rectangle and resizes it.
        """
        return None

    def _extra_metadata(self) -> dict[str, Any]:
        """Backend-specific whitelisted metadata (objective power, scanner model)."""
        return {}

    # -- public API ----------------------------------------------------------------
    @property
    def level_count(self) -> int:
        """Number of pyramid levels (1 for a plain image)."""
        return len(self.level_dimensions)

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def metadata(self) -> dict[str, Any]:
        """A small whitelisted summary of the slide, safe to write into results.

        Keys: ``vendor``, ``dimensions``, ``level_count``, ``mpp_um``,
        ``mpp_x_um``, ``mpp_y_um`` (None without a stored pixel size),
        ``mpp_source``, ``mpp_option_um``, and where the file gives them
        ``objective_power`` and ``scanner_model``. No free-text fields.
        """
        mpp_x, mpp_y = self._slide_mpp if self._slide_mpp is not None else (None, None)
        meta: dict[str, Any] = {
            "vendor": self.vendor,
            "dimensions": self.dimensions,
            "level_count": self.level_count,
            "mpp_um": self.mpp,
            "mpp_x_um": mpp_x,
            "mpp_y_um": mpp_y,
            "mpp_source": self.mpp_source,
            "mpp_option_um": self.mpp_option_um,
        }
        meta.update(self._extra_metadata())
        return meta

    def best_level(self, downsample: float) -> int:
        """Level with the largest downsample not above ``downsample * 1.01`` (0 if none)."""
        best = 0
        for level, ds in enumerate(self.level_downsamples):
            if ds <= downsample * _LEVEL_TOLERANCE:
                best = level
        return best

    def read_region(
        self, l0_xy: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """Read a rectangle of one pyramid level.

        Parameters
        ----------
        l0_xy : tuple of int
            Top-left corner (x, y) in level-0 pixels; may lie outside the image.
        level : int
            Pyramid level, 0 = full resolution.
        size : tuple of int
            (width, height) in pixels of ``level``.

        Returns
        -------
        np.ndarray
            (height, width, 3) uint8 RGB; outside the image and transparent = white.

        Raises
        ------
        SlideReadError
            The pixel data cannot be decoded (corrupt tile, truncated file).
        """
        self._check_open()
        if not 0 <= int(level) < self.level_count:
            raise ValueError(f"level must be in 0..{self.level_count - 1}, got {level}")
        w, h = _check_size(size, "size")
        sx, sy = self._scales[int(level)]
        x = math.floor(int(l0_xy[0]) / sx + _EPS)
        y = math.floor(int(l0_xy[1]) / sy + _EPS)
        return self._read_box(int(level), x, y, w, h)

    def read_scaled(
        self, l0_xy: tuple[int, int], l0_size: tuple[int, int], downsample: float
    ) -> np.ndarray:
        """Read a level-0 rectangle at a given downsample.

        The best pyramid level (largest downsample <= ``downsample`` * 1.01) is
        read and resized with ``cv2.INTER_AREA``. Large regions are read in
        bands of about 16 Mpx, cut where possible at rows that keep the result
        identical to a single resize. An exact 2x reduction aligned on even
        level pixels is taken, where the backend can, from tiles it reduced
        once and cached (the same bytes).

        Parameters
        ----------
        l0_xy : tuple of int
            Top-left corner (x, y) in level-0 pixels.
        l0_size : tuple of int
            (width, height) in level-0 pixels.
        downsample : float
            Level-0 pixels per output pixel, >= 1.

        Returns
        -------
        np.ndarray
            (round(height / downsample), round(width / downsample), 3) uint8 RGB
            (at least 1 pixel along a non-empty side).
        """
        self._check_open()
        ds = float(downsample)
        if not (math.isfinite(ds) and ds >= 1.0):
            raise ValueError(f"downsample must be a finite number >= 1, got {downsample}")
        w, h = _check_size(l0_size, "l0_size")
        out_w, out_h = _scaled_len(w, ds), _scaled_len(h, ds)
        if out_w == 0 or out_h == 0:
            return np.full((out_h, out_w, 3), 255, np.uint8)
        level = self.best_level(ds)
        sx, sy = self._scales[level]
        x0, y0 = int(l0_xy[0]), int(l0_xy[1])
        bx0 = math.floor(x0 / sx + _EPS)
        by0 = math.floor(y0 / sy + _EPS)
        bw = max(1, math.ceil((x0 + w) / sx - _EPS) - bx0)
        bh = max(1, math.ceil((y0 + h) / sy - _EPS) - by0)
        if (bw, bh) == (out_w, out_h):
            return self._read_box(level, bx0, by0, bw, bh)
        if (bw, bh) == (2 * out_w, 2 * out_h) and bx0 % 2 == 0 and by0 % 2 == 0:
            halved = self._read_box_halved(level, bx0, by0, bw, bh)
            if halved is not None:
                return halved
        out = np.empty((out_h, out_w, 3), np.uint8)
        for ly0, ly1, oy0, oy1 in _bands(bh, out_h, max(1, _CHUNK_PX // bw)):
            block = self._read_box(level, bx0, by0 + ly0, bw, ly1 - ly0)
            out[oy0:oy1] = cv2.resize(block, (out_w, oy1 - oy0), interpolation=cv2.INTER_AREA)
        return out

    def thumbnail(self, max_mpp_um: float) -> tuple[np.ndarray, float]:
        """Render the whole slide from the pyramid at about ``max_mpp_um`` per pixel.

        Never uses the file's stored thumbnail image.

        Parameters
        ----------
        max_mpp_um : float
            Wanted pixel size in micrometres; the slide's own pixel size if finer
            is not available.

        Returns
        -------
        rgb : np.ndarray
            (h, w, 3) uint8 RGB of the whole slide.
        downsample : float
            Level-0 pixels per thumbnail pixel actually used (mean of x and y).
        """
        if not (math.isfinite(max_mpp_um) and max_mpp_um > 0):
            raise ValueError(f"max_mpp_um must be a positive number, got {max_mpp_um}")
        ds = max(1.0, float(max_mpp_um) / self.mpp)
        w, h = self.dimensions
        level = self.best_level(ds)
        lw, lh = self.level_dimensions[level]
        if lw * lh > _MAX_THUMBNAIL_SOURCE_PX:
            # A slide without a usable pyramid would be read whole to draw its overview.
            raise SlideOpenError(
                f"{self.path.name}: {w}x{h} px with no pyramid level near {max_mpp_um:g} um/px; "
                "convert it to a tiled pyramidal TIFF"
            )
        rgb = self.read_scaled((0, 0), (w, h), ds)
        return rgb, (w / rgb.shape[1] + h / rgb.shape[0]) / 2.0

    def close(self) -> None:
        """Close the slide; further reads raise ValueError. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    # -- internals -----------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self.path.name}: slide is closed")

    def _read_box(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Read a rectangle in ``level`` pixels, white where it leaves the image."""
        lw, lh = self.level_dimensions[level]
        ix0, iy0 = max(x, 0), max(y, 0)
        ix1, iy1 = min(x + w, lw), min(y + h, lh)
        if ix0 >= ix1 or iy0 >= iy1:
            return np.full((h, w, 3), 255, np.uint8)
        inside = self._read_level(level, ix0, iy0, ix1 - ix0, iy1 - iy0)
        if (ix0, iy0, ix1, iy1) == (x, y, x + w, y + h):
            return inside
        out = np.full((h, w, 3), 255, np.uint8)
        out[iy0 - y : iy1 - y, ix0 - x : ix1 - x] = inside
        return out

    def _read_box_halved(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray | None:
        """:meth:`_read_box` of an even rectangle reduced 2x (INTER_AREA), or None if the backend declines.

        White outside the level stays white (a block of 255 averages to 255);
        the part inside must have even bounds, so that no 2 x 2 block mixes
        image and padding.
        """
        lw, lh = self.level_dimensions[level]
        ix0, iy0 = max(x, 0), max(y, 0)
        ix1, iy1 = min(x + w, lw), min(y + h, lh)
        if ix0 >= ix1 or iy0 >= iy1:
            return np.full((h // 2, w // 2, 3), 255, np.uint8)
        if (ix1 - ix0) % 2 or (iy1 - iy0) % 2:
            return None
        inside = self._read_level_halved(level, ix0, iy0, ix1 - ix0, iy1 - iy0)
        if inside is None or (ix0, iy0, ix1, iy1) == (x, y, x + w, y + h):
            return inside
        out = np.full((h // 2, w // 2, 3), 255, np.uint8)
        out[(iy0 - y) // 2 : (iy1 - y) // 2, (ix0 - x) // 2 : (ix1 - x) // 2] = inside
        return out


def _check_size(size: tuple[int, int], name: str) -> tuple[int, int]:
    w, h = int(size[0]), int(size[1])
    if w < 0 or h < 0:
        raise ValueError(f"{name} must be non-negative (width, height), got {tuple(size)}")
    return w, h


def _scaled_len(n: int, downsample: float) -> int:
    return 0 if n == 0 else max(1, round(n / downsample))


def _bands(src_len: int, dst_len: int, max_src: int) -> Iterator[tuple[int, int, int, int]]:
    """Split a resize of ``src_len`` rows to ``dst_len`` rows into bands.

    Yields ``(src0, src1, dst0, dst1)``. When the ratio allows, bands start at
    output rows that fall on whole source rows, so that INTER_AREA gives the
    same result as one resize; otherwise band edges are rounded (<= 0.5 source
    row of shift at each edge).
    """
    ratio = Fraction(src_len, dst_len)
    if ratio.numerator <= max_src:
        step = ratio.denominator * (max_src // ratio.numerator)
    else:
        step = max(1, (max_src * dst_len) // src_len)
    for dst0 in range(0, dst_len, step):
        dst1 = min(dst_len, dst0 + step)
        src0 = min(round(dst0 * ratio), src_len - 1)
        src1 = max(src0 + 1, round(dst1 * ratio))
        yield src0, src1, dst0, dst1

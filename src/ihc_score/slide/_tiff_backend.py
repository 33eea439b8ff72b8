"""tifffile backend of :mod:`ihc_score.slide.base` for TIFF that OpenSlide refuses (private).

Strip TIFF, OME-TIFF and other TIFF layouts. The first series is used, with
its pyramid (SubIFDs or reduced-resolution pages) when there is one. Tiled
levels are read tile by tile (a small cache of decoded tiles is kept);
stripped or planar levels are decoded whole once and cached, so they are
refused above 256 Mpx.
"""

from __future__ import annotations

import math
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ihc_score.errors import MissingPixelSizeError, SlideOpenError, SlideReadError
from ihc_score.slide._pixels import dpi_is_placeholder, to_rgb
from ihc_score.slide.base import BackendRefusal, Slide

__all__ = ["TiffSlide", "is_ome", "open_tiff"]

#: Largest level decoded whole (strip or planar layout), in pixels.
_MAX_WHOLE_PAGE_PX = 256 * 1024 * 1024
#: Largest single-level image accepted at all, in pixels.
_MAX_FLAT_PX = 2**31
#: Budget of the decoded-tile cache, in bytes.
_TILE_CACHE_BYTES = 64 * 1024 * 1024
#: Micrometres per unit of TIFF ResolutionUnit (2 inch, 3 cm, 4 mm, 5 um).
_UM_PER_UNIT = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}
_UM_PER_OME_UNIT = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}
_PHOTOMETRIC_OK = {0, 1, 2, 3, 6}  # min-is-white, min-is-black, RGB, palette, YCbCr
_READ_ERRORS = (ValueError, RuntimeError, OSError, KeyError, IndexError, TypeError, ZeroDivisionError, MemoryError,
                tifffile.TiffFileError)


@dataclass(frozen=True)
class _Level:
    """One pyramid level: its page and how to turn its samples into RGB."""

    page: tifffile.TiffPage
    width: int
    height: int
    tiled: bool
    max_value: float
    has_alpha: bool
    premultiplied: bool
    invert: bool
    palette: np.ndarray | None  # (n, 3) uint8 colour table for palette images


def is_ome(path: Path) -> bool:
    """True if ``path`` is an OME-TIFF (better read here than by OpenSlide's generic TIFF)."""
    try:
        with tifffile.TiffFile(str(path)) as tif:
            return bool(tif.is_ome)
    except Exception:  # noqa: BLE001 - tifffile raises many types on corrupt files
        return False


def open_tiff(path: Path, *, mpp_option_um: float | None) -> TiffSlide:
    """Open ``path`` with tifffile; raise :class:`BackendRefusal` if it is not a readable TIFF."""
    try:
        tif = tifffile.TiffFile(str(path))
    except Exception as err:  # noqa: BLE001 - tifffile raises many types on corrupt files
        raise BackendRefusal(" ".join(str(err).split()) or type(err).__name__) from err
    try:
        return TiffSlide(path, tif, mpp_option_um=mpp_option_um)
    except (SlideOpenError, BackendRefusal, MissingPixelSizeError):
        tif.close()
        raise
    except _READ_ERRORS as err:  # tifffile parses pages lazily: a corrupt IFD fails here
        tif.close()
        raise BackendRefusal(f"corrupt TIFF structure ({type(err).__name__}: {' '.join(str(err).split())})") from err
    except BaseException:
        tif.close()
        raise


def _not_rgb(name: str, what: str) -> SlideOpenError:
    return SlideOpenError(
        f"{name}: {what}: not an RGB brightfield image; export the brightfield RGB image of the slide"
    )


def _level(page: tifffile.TiffPage, name: str) -> _Level:
    """Describe ``page`` as a level, refusing layouts that are not RGB-like."""
    sizes = (page.imagewidth, page.imagelength) + ((page.tilewidth, page.tilelength) if page.is_tiled else ())
    if not all(isinstance(v, (int, np.integer)) and v > 0 for v in sizes):
        raise BackendRefusal("invalid image or tile size in the TIFF header")
    if page.dtype is None or page.dtype.kind not in "bu":
        raise _not_rgb(name, f"sample format {page.sampleformat} {page.bitspersample}-bit")
    samples = int(page.samplesperpixel)
    if samples > 4:
        raise _not_rgb(name, f"{samples} channels per pixel")
    if page.imagedepth > 1:
        raise _not_rgb(name, f"a volume of {page.imagedepth} planes")
    photometric = int(page.photometric)
    if photometric not in _PHOTOMETRIC_OK:
        raise _not_rgb(name, f"photometric interpretation {page.photometric!r}")
    compression = int(page.compression)
    if compression != 1:
        try:
            tifffile.TIFF.DECOMPRESSORS[compression]
        except KeyError as err:
            raise BackendRefusal(f"unsupported TIFF compression {compression}") from err
    bits = 1 if page.dtype.kind == "b" else int(page.bitspersample)
    max_value = float(2**bits - 1)
    tag = page.tags.get(281)  # MaxSampleValue
    if tag is not None and bits > 8:
        value = np.max(np.atleast_1d(np.asarray(tag.value, dtype=np.float64)))
        max_value = float(value) if 0 < value < max_value else max_value
    extra = tuple(int(e) for e in (page.extrasamples or ()))
    has_alpha = samples in (2, 4) and bool(extra) and extra[0] in (1, 2)
    palette = None
    if photometric == 3:
        cmap = np.asarray(page.colormap)
        palette = np.ascontiguousarray((cmap >> 8 if cmap.max() > 255 else cmap).astype(np.uint8).T)
    tiled = bool(page.is_tiled) and int(page.planarconfig) == 1
    return _Level(
        page=page,
        width=int(page.imagewidth),
        height=int(page.imagelength),
        tiled=tiled,
        max_value=max_value,
        has_alpha=has_alpha,
        premultiplied=has_alpha and extra[0] == 1,
        invert=photometric == 0,
        palette=palette,
    )


def _pyramid(tif: tifffile.TiffFile, name: str) -> list[_Level]:
    """Levels of the first series, largest first, keeping only shrinking sizes."""
    if not tif.series:
        raise BackendRefusal("no image data in the TIFF")
    series = tif.series[0]
    base = series.levels[0]
    page0 = base.keyframe
    if math.prod(base.shape) != math.prod(page0.shape):
        raise _not_rgb(name, f"{math.prod(base.shape) // math.prod(page0.shape)} image planes")
    _check_complete(tif, page0, name)
    levels = [_level(page0, name)]
    for lvl in series.levels[1:]:
        page = lvl.keyframe
        if (
            math.prod(lvl.shape) != math.prod(page.shape)
            or page.imagewidth >= levels[-1].width
            or page.imagelength >= levels[-1].height
        ):
            break
        try:
            levels.append(_level(page, name))
        except (SlideOpenError, BackendRefusal):
            break
    return levels


def _check_complete(tif: tifffile.TiffFile, page: tifffile.TiffPage, name: str) -> None:
    """Refuse a file whose level-0 pixel data runs past its end: a copy cut short."""
    ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n]
    size = tif.filehandle.size
    if ends and max(ends) > size:
        raise SlideOpenError(
            f"{name}: the file is truncated ({size} bytes, its pixel data needs {max(ends)}); copy it again"
        )


def _ome_mpp(tif: tifffile.TiffFile) -> tuple[float, float] | None:
    """PhysicalSizeX/Y of the first OME ``Pixels`` element, in um; None if absent."""
    try:
        root = ET.fromstring(tif.ome_metadata or "")
    except ET.ParseError:
        return None
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    sizes = []
    for axis in "XY":
        try:
            value = float(pixels.get(f"PhysicalSize{axis}", "nan"))
        except ValueError:
            return None
        sizes.append(value * _UM_PER_OME_UNIT.get(pixels.get(f"PhysicalSize{axis}Unit", "µm"), math.nan))
    return (sizes[0], sizes[1]) if all(math.isfinite(v) and v > 0 for v in sizes) else None


def _rational(tag: tifffile.TiffTag | None) -> float:
    """Value of a RATIONAL tag as float (nan when missing or invalid)."""
    if tag is None:
        return math.nan
    value = tag.value
    try:
        ratio = value[0] / value[1] if isinstance(value, tuple) else float(value)
    except (TypeError, ZeroDivisionError, IndexError):
        return math.nan
    return ratio if math.isfinite(ratio) and ratio > 0 else math.nan


def _tiff_mpp(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> tuple[float, float] | None:
    """Pixel size in um from OME-XML, ImageJ metadata or resolution tags; None if absent.

    Resolution tags in inch, cm, mm or um count; 72 and 96 dpi (software
    defaults) and unit-less values do not, except ImageJ's unit-less pixels
    per micron.
    """
    ome = _ome_mpp(tif) if tif.is_ome else None
    if ome is not None:
        return ome
    px_x, px_y = _rational(page.tags.get(282)), _rational(page.tags.get(283))
    if math.isnan(px_x) or math.isnan(px_y):
        return None
    unit_tag = page.tags.get(296)
    unit = int(unit_tag.value) if unit_tag is not None else 2
    if unit == 1 and tif.is_imagej:
        micron = (tif.imagej_metadata or {}).get("unit", "") in ("micron", "um", "µm", "\\u00B5m")
        return (1.0 / px_x, 1.0 / px_y) if micron else None
    um = _UM_PER_UNIT.get(unit)
    if um is None or (dpi_is_placeholder(px_x * 25400.0 / um) and dpi_is_placeholder(px_y * 25400.0 / um)):
        return None
    return um / px_x, um / px_y


class TiffSlide(Slide):
    """A TIFF read through tifffile (see :class:`ihc_score.slide.base.Slide`); vendor "tiff"."""

    def __init__(self, path: Path, tif: tifffile.TiffFile, *, mpp_option_um: float | None) -> None:
        levels = _pyramid(tif, path.name)
        base = levels[0]
        if len(levels) == 1 and base.width * base.height > _MAX_FLAT_PX:
            raise SlideOpenError(
                f"{path.name}: {base.width}x{base.height} px without a pyramid is too large to read; "
                "convert it to a tiled pyramidal TIFF (e.g. vips tiffsave --tile --pyramid)"
            )
        for lv in levels:
            if not lv.tiled and lv.width * lv.height > _MAX_WHOLE_PAGE_PX:
                raise SlideOpenError(
                    f"{path.name}: a {lv.width}x{lv.height} px level stored in strips is too large "
                    "to read; convert it to a tiled pyramidal TIFF (e.g. vips tiffsave --tile --pyramid)"
                )
        super().__init__(
            path,
            vendor="tiff",
            level_dimensions=[(lv.width, lv.height) for lv in levels],
            level_scales=[(base.width / lv.width, base.height / lv.height) for lv in levels],
            slide_mpp=_tiff_mpp(tif, base.page),
            mpp_option_um=mpp_option_um,
        )
        self._tif = tif
        self._levels = levels
        model = base.page.tags.get(272)  # Model
        text = str(model.value).strip() if model is not None else ""
        self._model = text if text and len(text) <= 64 and text.isprintable() else None
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._pages: dict[int, np.ndarray] = {}

    def _extra_metadata(self) -> dict[str, Any]:
        return {"scanner_model": self._model} if self._model else {}

    def _rgb(self, lv: _Level, samples: np.ndarray) -> np.ndarray:
        if lv.palette is not None:
            index = samples[..., 0] if samples.ndim == 3 else samples
            return lv.palette[np.minimum(index, len(lv.palette) - 1)]
        return to_rgb(
            samples,
            max_value=lv.max_value,
            has_alpha=lv.has_alpha,
            premultiplied=lv.premultiplied,
            invert=lv.invert,
        )

    def _read_error(self, level: int, err: BaseException) -> SlideReadError:
        return SlideReadError(
            f"{self.path.name}: corrupt pixel data at level {level} ({err}); "
            "the file is damaged: re-scan or re-copy it"
        )

    def _segment(self, level: int, index: int) -> np.ndarray:
        """Decoded RGB of one tile, or of the whole page for untiled levels; cached."""
        lv = self._levels[level]
        with self._lock:
            hit = self._cache.get((level, index)) if lv.tiled else self._pages.get(level)
            if hit is not None:
                if lv.tiled:
                    self._cache.move_to_end((level, index))
                return hit
            try:
                raw = self._fetch(lv, index)
            except _READ_ERRORS as err:
                raise self._read_error(level, err) from err
        try:
            rgb = self._decode(lv, index, raw)
        except _READ_ERRORS as err:
            raise self._read_error(level, err) from err
        with self._lock:
            if not lv.tiled:
                self._pages[level] = rgb
                return rgb
            self._cache[(level, index)] = rgb
            self._cache_bytes += rgb.nbytes
            while self._cache_bytes > _TILE_CACHE_BYTES and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= old.nbytes
        return rgb

    def _fetch(self, lv: _Level, index: int) -> bytes | np.ndarray | None:
        """Compressed bytes of tile ``index`` (None if empty), or the decoded untiled page."""
        if not lv.tiled:
            raw = lv.page.asarray()
            return np.moveaxis(raw, 0, -1) if int(lv.page.planarconfig) == 2 and raw.ndim == 3 else raw
        offset, count = lv.page.dataoffsets[index], lv.page.databytecounts[index]
        if count == 0:
            return None
        self._tif.filehandle.seek(offset)
        return self._tif.filehandle.read(count)

    def _decode(self, lv: _Level, index: int, raw: bytes | np.ndarray | None) -> np.ndarray:
        """RGB of what :meth:`_fetch` returned; empty tiles are white."""
        if isinstance(raw, np.ndarray):
            rgb = self._rgb(lv, raw)
            if rgb.shape[:2] != (lv.height, lv.width):
                raise ValueError(f"decoded {rgb.shape[1]}x{rgb.shape[0]} px, expected {lv.width}x{lv.height}")
            return rgb
        if raw is None:
            return np.full((lv.page.tilelength, lv.page.tilewidth, 3), 255, np.uint8)
        segment, _, shape = lv.page.decode(raw, index, jpegtables=lv.page.jpegtables)
        return self._rgb(lv, np.asarray(segment).reshape(shape)[0])

    def _read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        lv = self._levels[level]
        if not lv.tiled:
            return self._segment(level, -1)[y : y + h, x : x + w].copy()
        tw, th = int(lv.page.tilewidth), int(lv.page.tilelength)
        tiles_x = -(-lv.width // tw)
        out = np.empty((h, w, 3), np.uint8)
        for ty in range(y // th, (y + h - 1) // th + 1):
            for tx in range(x // tw, (x + w - 1) // tw + 1):
                tile = self._segment(level, ty * tiles_x + tx)
                x0, x1 = max(x, tx * tw), min(x + w, (tx + 1) * tw)
                y0, y1 = max(y, ty * th), min(y + h, (ty + 1) * th)
                out[y0 - y : y1 - y, x0 - x : x1 - x] = tile[
                    y0 - ty * th : y1 - ty * th, x0 - tx * tw : x1 - tx * tw
                ]
        return out

    def _close(self) -> None:
        self._tif.close()

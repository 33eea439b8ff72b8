"""Direct JPEG tile decoding for the OpenSlide backend (private).

For TIFF slides whose pyramid levels are JPEG tiles (Aperio SVS with JPEG
tiles, generic tiled TIFF with JPEG), the tiles a region needs are read with
one file descriptor (``os.pread`` at the offsets tifffile lists) and decoded
with libjpeg-turbo through ``imagecodecs.jpeg8_decode``: several times faster
than OpenSlide's ``read_region``, which paints every tile through cairo as
premultiplied ARGB and hands it over through Pillow as RGBA.

The pixels are those OpenSlide returns, bit for bit. OpenSlide decodes the same
tiles with libjpeg-turbo's defaults (islow DCT, fancy upsampling) and sets the
JPEG colour space from the TIFF photometric tag (YCbCr -> JCS_YCbCr, RGB ->
JCS_RGB, whatever the JPEG markers say); this module passes the same colour
space. Where identity is not certain the reader declines and the caller reads
through OpenSlide:

* vendors other than "aperio" and "generic-tiff" (NDPI, MRXS, SCN, BIF,
  Philips, DICOM: their levels are not plain TIFF tile grids);
* levels that are not 8-bit 3-sample contiguous JPEG with RGB or YCbCr
  photometric (JPEG 2000, LZW, deflate, strips), whose TIFF page cannot be
  matched one-to-one with OpenSlide's level, or that carry a label/macro
  description;
* reads whose level coordinates OpenSlide would place at a sub-pixel offset
  (``l0 / downsample`` not an integer: OpenSlide then resamples bilinearly);
* missing (zero-length) tiles, tiles that do not decode, decode to another
  size, or whose entropy-coded data holds markers libjpeg would stop at
  (OpenSlide turns libjpeg warnings into errors; imagecodecs ignores them).

Label, macro and thumbnail pages are never read: only the pages OpenSlide uses
as pyramid levels are mapped.

Set the environment variable ``IHC_SCORE_READER=openslide`` (read when a slide
is opened) to read every slide through OpenSlide alone.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import tifffile

from ihc_score.slide._jpeg_stream import defines_restart, well_formed

__all__ = ["READER_ENV", "JpegTileReader", "fast_reader_enabled", "open_jpeg_tile_reader"]

#: Environment variable choosing the reader: "auto" (default) or "openslide".
READER_ENV = "IHC_SCORE_READER"
_READER_VALUES = ("auto", "openslide")
#: OpenSlide vendors whose levels are TIFF pages with a plain tile grid.
_VENDORS = frozenset({"aperio", "generic-tiff"})
_JPEG = 7
_PHOTOMETRIC_COLORSPACE = {2: "RGB", 6: "YCBCR"}
#: A level coordinate ``l0 / downsample`` this close to an integer is one for OpenSlide.
_INTEGER_TOL = 1e-6
#: Budget of the decoded-tile cache of the process, in bytes.
_CACHE_BYTES = 64 * 1024 * 1024
_READ_ERRORS = (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError, TypeError)
_ASSOCIATED_WORDS = ("label", "macro", "thumbnail")


def fast_reader_enabled() -> bool:
    """Whether ``IHC_SCORE_READER`` allows the direct JPEG tile reader.

    Raises
    ------
    ValueError
        The variable holds something other than "auto", "openslide" or nothing.
    """
    value = os.environ.get(READER_ENV, "").strip().lower() or "auto"
    if value not in _READER_VALUES:
        raise ValueError(f"{READER_ENV} must be one of {', '.join(_READER_VALUES)}, got {value!r}")
    return value == "auto"


@dataclass(frozen=True)
class _TileLevel:
    """Where one pyramid level's JPEG tiles are and how to decode them."""

    width: int
    height: int
    tile_w: int
    tile_h: int
    tiles_across: int
    offsets: np.ndarray  # int64 byte offset of each tile, row-major
    counts: np.ndarray  # int64 byte count of each tile
    tables: bytes | None  # JPEGTables (abbreviated tables stream) or None
    colorspace: str  # JPEG colour space OpenSlide forces: "RGB" or "YCBCR"
    restart_markers: bool  # the tables define a restart interval


def _is_associated(page: tifffile.TiffPage) -> bool:
    """True for pages whose description names them label, macro or thumbnail."""
    lines = str(page.description or "").lower().splitlines()[:2]
    return any(line.strip().startswith(_ASSOCIATED_WORDS) for line in lines)


def _tile_level(page: tifffile.TiffPage) -> _TileLevel | None:
    """Describe ``page`` if it is a level OpenSlide decodes directly as JPEG, else None."""
    colorspace = _PHOTOMETRIC_COLORSPACE.get(int(page.photometric))
    if (
        not page.is_tiled
        or int(page.compression) != _JPEG
        or colorspace is None
        or int(page.planarconfig) != 1
        or int(page.bitspersample) != 8
        or int(page.samplesperpixel) != 3
        or page.imagedepth != 1
        or _is_associated(page)
    ):
        return None
    width, height = int(page.imagewidth), int(page.imagelength)
    tile_w, tile_h = int(page.tilewidth), int(page.tilelength)
    tiles_across = -(-width // tile_w)
    offsets = np.asarray(page.dataoffsets, dtype=np.int64)
    counts = np.asarray(page.databytecounts, dtype=np.int64)
    if len(offsets) != tiles_across * -(-height // tile_h) or len(counts) != len(offsets):
        return None
    tables = bytes(page.jpegtables) if page.jpegtables is not None else None
    return _TileLevel(
        width=width,
        height=height,
        tile_w=tile_w,
        tile_h=tile_h,
        tiles_across=tiles_across,
        offsets=offsets,
        counts=counts,
        tables=tables,
        colorspace=colorspace,
        restart_markers=tables is not None and defines_restart(tables),
    )


class _TileCache:
    """Decoded tiles of the process, bounded in bytes, shared by every reader.

    Kept across readers because the pipeline opens the slide once per chunk of
    analysis tiles while neighbouring chunks overlap. Keys start with the
    file's identity (path, device, inode, size, modification time), so a
    changed file is never served from the cache. The least recently used
    tile goes first, except that tiles a read is unlikely to share with the
    next reads of a raster scan (all but its last two rows and columns of
    tiles, which overlapping reads share) are put first in line: the last
    rows must survive a whole row of reads to serve the next one.
    """

    def __init__(self, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._lock = threading.Lock()
        self._tiles: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            hit = self._tiles.get(key)
            if hit is not None:
                self._tiles.move_to_end(key)
            return hit

    def put(self, key: tuple, tile: np.ndarray) -> None:
        with self._lock:
            if key in self._tiles:
                return
            self._tiles[key] = tile
            self._bytes += tile.nbytes
            while self._bytes > self._budget and len(self._tiles) > 1:
                _, old = self._tiles.popitem(last=False)
                self._bytes -= old.nbytes

    def demote(self, keys: Sequence[tuple]) -> None:
        """Put ``keys`` first in line for eviction."""
        with self._lock:
            for key in keys:
                if key in self._tiles:
                    self._tiles.move_to_end(key, last=False)

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
            self._bytes = 0


_TILE_CACHE = _TileCache(_CACHE_BYTES)


class JpegTileReader:
    """Read rectangles of JPEG-tiled pyramid levels by decoding the tiles directly.

    Parameters
    ----------
    path : Path
        The slide file, opened read-only once.
    levels : sequence of _TileLevel or None
        One entry per OpenSlide level; None where this reader declines.
    downsamples : sequence of float
        OpenSlide's level downsamples (level-0 pixels per level pixel).

    Notes
    -----
    Thread-safe: tiles are read with ``os.pread`` and decoded without the GIL;
    decoded tiles go to a cache of the process (64 MB, guarded by a lock)
    that outlives the reader, so reopening the slide finds them again.
    """

    def __init__(
        self, path: Path, levels: Sequence[_TileLevel | None], downsamples: Sequence[float]
    ) -> None:
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._levels = tuple(levels)
        self._downsamples = tuple(float(ds) for ds in downsamples)
        self._lock = threading.Lock()
        st = os.fstat(self._fd)
        self._file_key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    @property
    def fast_levels(self) -> tuple[int, ...]:
        """Levels this reader may read (others always go through OpenSlide)."""
        return tuple(i for i, lv in enumerate(self._levels) if lv is not None)

    def read(self, level: int, x: int, y: int, w: int, h: int, *, halved: bool = False) -> np.ndarray | None:
        """(h, w, 3) uint8 RGB of a rectangle inside ``level``, or None to read it through OpenSlide.

        ``x, y, w, h`` are in pixels of ``level`` and lie inside it. None when
        the level is not mapped, when OpenSlide would read the rectangle at a
        sub-pixel offset (its level coordinate is ``round(x * ds) / ds``), or
        when a tile is missing, malformed or does not decode.

        With ``halved``, the rectangle comes back reduced 2x, (h / 2, w / 2, 3):
        each 2 x 2 block averaged as ``cv2.resize(..., cv2.INTER_AREA)`` does
        for an exact factor 2 (so the same bytes as resizing the full read).
        Each tile is reduced once and cached reduced, a quarter of the bytes.
        Needs ``x, y, w, h`` and the tile size even (None otherwise).
        """
        lv = self._levels[level]
        if lv is None or w <= 0 or h <= 0:
            return None
        ds = self._downsamples[level]
        if abs(round(x * ds) / ds - x) > _INTEGER_TOL or abs(round(y * ds) / ds - y) > _INTEGER_TOL:
            return None
        f = 2 if halved else 1
        tw, th = lv.tile_w, lv.tile_h
        if halved and (x | y | w | h | tw | th) & 1:
            return None
        tx0, tx1 = x // tw, (x + w - 1) // tw
        ty0, ty1 = y // th, (y + h - 1) // th
        out = np.empty((h // f, w // f, 3), np.uint8)
        passed = []
        for ty in range(ty0, ty1 + 1):
            for tx in range(tx0, tx1 + 1):
                index = ty * lv.tiles_across + tx
                tile = self._tile(level, lv, index, f)
                if tile is None:
                    return None
                if ty < ty1 - 1 and tx < tx1 - 1:
                    passed.append(self._key(level, index, f))
                # Level pixels of the tile inside the rectangle, then the same in output pixels.
                ax0, ax1 = max(x, tx * tw), min(x + w, (tx + 1) * tw)
                ay0, ay1 = max(y, ty * th), min(y + h, (ty + 1) * th)
                out[(ay0 - y) // f : (ay1 - y) // f, (ax0 - x) // f : (ax1 - x) // f] = tile[
                    (ay0 - ty * th) // f : (ay1 - ty * th) // f, (ax0 - tx * tw) // f : (ax1 - tx * tw) // f
                ]
        _TILE_CACHE.demote(passed)
        return out

    def decode_tile(self, level: int, index: int) -> np.ndarray | None:
        """The whole decoded tile ``index`` (row-major) of ``level``, uncached; None if declined."""
        lv = self._levels[level]
        return None if lv is None else self._decode(lv, index)

    def close(self) -> None:
        """Close the file descriptor (decoded tiles stay in the process's cache). Safe to call twice."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _key(self, level: int, index: int, factor: int) -> tuple:
        return (self._file_key, level, index, factor)

    def _tile(self, level: int, lv: _TileLevel, index: int, factor: int) -> np.ndarray | None:
        """Decoded tile ``index`` of ``level``, reduced ``factor`` (1 or 2) times; cached."""
        key = self._key(level, index, factor)
        hit = _TILE_CACHE.get(key)
        if hit is not None:
            return hit
        tile = self._decode(lv, index)
        if tile is None:
            return None
        if factor > 1:
            tile = cv2.resize(tile, (lv.tile_w // factor, lv.tile_h // factor), interpolation=cv2.INTER_AREA)
        _TILE_CACHE.put(key, tile)
        return tile

    def _decode(self, lv: _TileLevel, index: int) -> np.ndarray | None:
        count, offset = int(lv.counts[index]), int(lv.offsets[index])
        if count <= 0:
            return None
        try:
            raw = os.pread(self._fd, count, offset)
        except OSError:
            return None
        if len(raw) != count or not well_formed(raw, lv.restart_markers):
            return None
        try:
            tile = imagecodecs.jpeg8_decode(
                raw, tables=lv.tables, colorspace=lv.colorspace, outcolorspace="RGB"
            )
        except (imagecodecs.Jpeg8Error, ValueError, RuntimeError, MemoryError):
            return None
        if tile.dtype != np.uint8 or tile.shape != (lv.tile_h, lv.tile_w, 3):
            return None
        return tile


def _level_pages(tif: tifffile.TiffFile) -> list[tifffile.TiffPage]:
    """Top-level pages of the file (SubIFDs are not OpenSlide levels for these vendors)."""
    return [page for page in tif.pages if isinstance(page, tifffile.TiffPage)]


def open_jpeg_tile_reader(
    path: Path,
    *,
    vendor: str,
    level_dimensions: Sequence[tuple[int, int]],
    level_downsamples: Sequence[float],
    properties: Mapping[str, str],
) -> JpegTileReader | None:
    """A :class:`JpegTileReader` for the OpenSlide levels that are plain JPEG tile grids.

    Parameters
    ----------
    path : Path
        Slide file, already opened by OpenSlide.
    vendor : str
        OpenSlide's vendor; only "aperio" and "generic-tiff" are mapped.
    level_dimensions, level_downsamples : sequence
        OpenSlide's (width, height) and downsample of each level.
    properties : mapping
        OpenSlide's properties (``openslide.level[i].tile-width`` / ``-height``).

    Returns
    -------
    JpegTileReader or None
        None when ``IHC_SCORE_READER=openslide``, for other vendors, when the
        file cannot be parsed by tifffile or when no level qualifies.
    """
    if vendor not in _VENDORS or not fast_reader_enabled():
        return None
    try:
        with tifffile.TiffFile(str(path)) as tif:
            pages = _level_pages(tif)
            levels: list[_TileLevel | None] = []
            for i, (w, h) in enumerate(level_dimensions):
                tile_w = int(properties.get(f"openslide.level[{i}].tile-width", "0"))
                tile_h = int(properties.get(f"openslide.level[{i}].tile-height", "0"))
                same = [
                    p
                    for p in pages
                    if p.is_tiled and (int(p.imagewidth), int(p.imagelength)) == (int(w), int(h))
                ]
                level = _tile_level(same[0]) if len(same) == 1 else None
                if level is not None and (level.tile_w, level.tile_h) != (tile_w, tile_h):
                    level = None
                levels.append(level)
    except _READ_ERRORS:
        return None
    if all(lv is None for lv in levels):
        return None
    try:
        return JpegTileReader(path, levels, level_downsamples)
    except OSError:
        return None

"""Tile grid over tissue at the analysis pixel size.

The slide is analysed in an *analysis frame* whose pixels are
``downsample`` level-0 pixels wide (``a_`` prefix). Each tile has a *core*
(the cells whose centroid falls in it are counted by this tile and no other)
and is read with a *margin* on every side, wider than two cells, so that
cells near the core's edge are detected and measured whole. Cores tile the
frame exactly, so no cell is counted twice and none is lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Tile", "TileGrid", "tile_grid", "in_core"]


@dataclass(frozen=True)
class Tile:
    """One tile of the analysis frame.

    Attributes
    ----------
    index : int
        Position in the grid, row-major; the order cells are reported in.
    a_core : tuple of 4 int
        Core rectangle ``(x, y, width, height)`` in analysis pixels.
    a_read : tuple of 4 int
        Rectangle read from the slide: the core plus the margin, clipped to
        the frame.
    """

    index: int
    a_core: tuple[int, int, int, int]
    a_read: tuple[int, int, int, int]


@dataclass(frozen=True)
class TileGrid:
    """Tiles of one slide and the frame they live in.

    Attributes
    ----------
    downsample : float
        Level-0 pixels per analysis pixel.
    a_size : tuple of 2 int
        Analysis frame ``(width, height)``.
    tiles : tuple of Tile
        Tiles whose core touches tissue, row-major.
    n_grid : int
        Number of tiles in the full grid, tissue or not.
    """

    downsample: float
    a_size: tuple[int, int]
    tiles: tuple[Tile, ...]
    n_grid: int

    def l0_rect(self, a_rect: tuple[int, int, int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """Level-0 ``(x, y), (width, height)`` of an analysis rectangle."""
        x, y, w, h = a_rect
        ds = self.downsample
        l0_x, l0_y = int(round(x * ds)), int(round(y * ds))
        l0_w = int(round((x + w) * ds)) - l0_x
        l0_h = int(round((y + h) * ds)) - l0_y
        return (l0_x, l0_y), (l0_w, l0_h)


def tile_grid(
    l0_size: tuple[int, int],
    *,
    downsample: float,
    tile_px: int,
    margin_px: int,
    tissue: np.ndarray | None = None,
    tissue_downsample: float = 1.0,
) -> TileGrid:
    """Grid of tiles over the tissue of a slide.

    Parameters
    ----------
    l0_size : tuple of 2 int
        Level-0 ``(width, height)`` of the slide.
    downsample : float
        Level-0 pixels per analysis pixel (>= 1).
    tile_px : int
        Core side in analysis pixels.
    margin_px : int
        Margin read on each side of a core, in analysis pixels.
    tissue : ndarray of bool, optional
        Tissue mask; tiles whose core holds no tissue pixel are left out.
        ``None`` keeps every tile.
    tissue_downsample : float
        Level-0 pixels per mask pixel.

    Returns
    -------
    TileGrid
    """
    if downsample < 1.0:
        raise ValueError(f"downsample must be >= 1 (analysis never upsamples), got {downsample}")
    if tile_px < 16 or margin_px < 0:
        raise ValueError(f"tile_px must be >= 16 and margin_px >= 0, got {tile_px}, {margin_px}")
    a_w = max(1, int(math.floor(l0_size[0] / downsample)))
    a_h = max(1, int(math.floor(l0_size[1] / downsample)))
    nx, ny = math.ceil(a_w / tile_px), math.ceil(a_h / tile_px)
    keep = _tiles_on_tissue(nx, ny, tile_px, downsample, tissue, tissue_downsample)
    tiles = []
    for j in range(ny):
        for i in range(nx):
            if not keep[j, i]:
                continue
            x, y = i * tile_px, j * tile_px
            w, h = min(tile_px, a_w - x), min(tile_px, a_h - y)
            rx, ry = max(0, x - margin_px), max(0, y - margin_px)
            rx2, ry2 = min(a_w, x + w + margin_px), min(a_h, y + h + margin_px)
            tiles.append(Tile(j * nx + i, (x, y, w, h), (rx, ry, rx2 - rx, ry2 - ry)))
    return TileGrid(float(downsample), (a_w, a_h), tuple(tiles), nx * ny)


def _tiles_on_tissue(
    nx: int, ny: int, tile_px: int, downsample: float, tissue: np.ndarray | None, tissue_downsample: float
) -> np.ndarray:
    """Boolean (ny, nx): whether each tile core holds any tissue pixel."""
    if tissue is None:
        return np.ones((ny, nx), dtype=bool)
    # Tile edges in mask pixels; a core keeps its tile if any mask pixel it
    # overlaps is tissue (floor/ceil so thin tissue at a border is not lost).
    scale = tile_px * downsample / tissue_downsample
    xs = np.arange(nx + 1) * scale
    ys = np.arange(ny + 1) * scale
    m_h, m_w = tissue.shape
    integral = np.zeros((m_h + 1, m_w + 1), dtype=np.int64)
    integral[1:, 1:] = np.cumsum(np.cumsum(tissue.astype(np.int64), axis=0), axis=1)
    x0 = np.clip(np.floor(xs[:-1]).astype(int), 0, m_w)
    x1 = np.clip(np.ceil(xs[1:]).astype(int), 0, m_w)
    y0 = np.clip(np.floor(ys[:-1]).astype(int), 0, m_h)
    y1 = np.clip(np.ceil(ys[1:]).astype(int), 0, m_h)
    total = (
        integral[y1[:, None], x1[None, :]]
        - integral[y0[:, None], x1[None, :]]
        - integral[y1[:, None], x0[None, :]]
        + integral[y0[:, None], x0[None, :]]
    )
    return total > 0


def in_core(tile: Tile, a_x: np.ndarray, a_y: np.ndarray) -> np.ndarray:
    """Whether frame coordinates lie in a tile's core (half-open: ``x0 <= x < x0 + w``)."""
    x, y, w, h = tile.a_core
    return (a_x >= x) & (a_x < x + w) & (a_y >= y) & (a_y < y + h)

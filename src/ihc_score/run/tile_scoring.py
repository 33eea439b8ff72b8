"""Score a chunk of tiles in a worker: read, deconvolve, detect, measure, judge artefacts.

:func:`tile_tasks` cuts a planned slide into chunks of tiles; :func:`score_tiles`
is a plain function of one picklable :class:`TileTask`, so any
``concurrent.futures.Executor`` (a local process pool or a Dask cluster) can
run it. Besides the cells of each tile's core it reports what was left out:
blocks judged out of focus (their cells are dropped) and the pigment found
(cells mostly covered by it are marked, to be left out of the grading).

Conventions
-----------
Cell coordinates are in the slide's analysis frame (analysis px, pixel
centres at integers); areas are counted in analysis px on tissue in tile
cores, so that no pixel is counted twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ihc_score.cells import CellTable, cell_pigment_fraction, detect_cells, pigment_mask
from ihc_score.model import Model
from ihc_score.run.plan import SlidePlan
from ihc_score.run.tiles import Tile, in_core
from ihc_score.score import cell_type_features, predict_cell_types
from ihc_score.slide import TileReader
from ihc_score.stain import StainVectors, deconvolve
from ihc_score.tissue import blur_block_px, blur_threshold, blurred_blocks

if TYPE_CHECKING:
    from ihc_score.cells import OutlineParts, TracedOutlines

__all__ = ["TileTask", "TileResult", "tile_tasks", "score_tiles", "concat_outlines", "checks_pigment"]

#: A tile's tissue mask crop: mask pixels under its core, their origin in
#: analysis px, and analysis px per mask pixel.
TissueCrop = tuple[np.ndarray, tuple[float, float], float]


@dataclass(frozen=True)
class TileTask:
    """A chunk of tiles of one slide: everything a worker needs, picklable.

    The worker opens the slide from ``path`` with the pixel size the user gave
    (``mpp_option_um``, :attr:`SlidePlan.mpp_option_um`), as the plan did.
    ``blur_max_sharpness`` is the slide's own focus threshold
    (:func:`ihc_score.tissue.blur_threshold`).
    """

    path: str
    mpp_option_um: float | None
    downsample: float
    analysis_mpp_um: float
    tiles: tuple[Tile, ...]
    tissue_crops: tuple[TissueCrop, ...]
    stains: StainVectors
    model: Model
    outlines: bool = False
    blur_max_sharpness: float | None = None


@dataclass(frozen=True)
class TileResult:
    """Cells found in the cores of a chunk's tiles, in the slide's analysis frame.

    Attributes
    ----------
    tile_indices : tuple of int
    cells : CellTable
        Cells on tissue in the tiles' cores, out-of-focus blocks left out.
    outlines : TracedOutlines or None
        Their outlines (integers in analysis px, level-0 px on demand), when asked for.
    failed_tiles : tuple of int
        Tiles whose pixels could not be decoded, even on a second try: they
        hold no cells, and the slide reports them.
    pigment_fraction : ndarray of float32
        Per cell (rows of ``cells``), the fraction of its pixels that are
        pigment; empty when pigment is not looked for.
    blurred : tuple of (int, int, int, int)
        Out-of-focus rectangles ``(x, y, w, h)`` in analysis px, clipped to
        the tiles' cores.
    blurred_px, pigment_px : int
        Analysis pixels on tissue in the cores judged out of focus, and
        judged pigment (outside the out-of-focus blocks).
    cell_type : ndarray of int8 or None
        Per cell, its type (index into :data:`~ihc_score.score.CELL_TYPES`),
        when the model has a cell-type step; each cell typed among all the
        cells of its tile, margins included.
    cell_type_p : ndarray of float32 or None
        Per cell, the probability the cell-type model gives its type (0-1).
    """

    tile_indices: tuple[int, ...]
    cells: CellTable
    outlines: TracedOutlines | None = None
    failed_tiles: tuple[int, ...] = ()
    pigment_fraction: np.ndarray | None = None
    blurred: tuple[tuple[int, int, int, int], ...] = ()
    blurred_px: int = 0
    pigment_px: int = 0
    cell_type: np.ndarray | None = None
    cell_type_p: np.ndarray | None = None


def tile_tasks(
    plan: SlidePlan, model: Model, *, tiles_per_task: int = 4, outlines: bool = False
) -> list[TileTask]:
    """Split a planned slide into chunks of tiles for workers.

    Each task carries the small crop of the tissue mask under its tiles, not
    the whole mask, so tasks stay small when sent to another machine.
    ``outlines`` asks the workers to trace every cell's outlines too. The
    last ``2 * tiles_per_task`` tiles go one per task: handed out in order
    (a Dask cluster), the workers then finish within about a tile of each
    other instead of one idling through another's last chunk.
    """
    tasks = []
    tiles = plan.grid.tiles
    singles = max(0, len(tiles) - 2 * tiles_per_task)
    starts = [*range(0, singles, tiles_per_task), *range(singles, len(tiles))]
    for start, end in zip(starts, [*starts[1:], len(tiles)]):
        chunk = tiles[start:end]
        crops = tuple(_tissue_crop(plan, t) for t in chunk)
        tasks.append(
            TileTask(
                path=plan.path,
                mpp_option_um=plan.mpp_option_um,
                downsample=plan.grid.downsample,
                analysis_mpp_um=plan.analysis_mpp_um,
                tiles=chunk,
                tissue_crops=crops,
                stains=plan.stains,
                model=model,
                outlines=outlines,
                blur_max_sharpness=blur_threshold(model.artefacts, plan.sharpness),
            )
        )
    return tasks


def _tissue_crop(plan: SlidePlan, tile: Tile) -> TissueCrop:
    """Mask pixels under a tile core, their origin in analysis px, and analysis px per mask px."""
    scale = plan.tissue_downsample / plan.grid.downsample
    x, y, w, h = tile.a_core
    mx0, my0 = int(math.floor(x / scale)), int(math.floor(y / scale))
    mx1, my1 = int(math.ceil((x + w) / scale)) + 1, int(math.ceil((y + h) / scale)) + 1
    crop = np.ascontiguousarray(plan.tissue[my0:my1, mx0:mx1])
    return crop, (mx0 * scale, my0 * scale), scale


@dataclass(frozen=True, eq=False)
class _TileCells:
    """What one tile gives: its cells (analysis frame of the slide), outlines, pigment fractions, areas left out."""

    cells: CellTable
    outlines: TracedOutlines | None
    pigment_fraction: np.ndarray | None
    blurred: list[tuple[int, int, int, int]]
    blurred_px: int
    pigment_px: int
    cell_type: np.ndarray | None
    cell_type_p: np.ndarray | None


def score_tiles(task: TileTask) -> TileResult:
    """Detect and measure the cells of a chunk of tiles.

    Opens the slide from its path (no handle crosses a process). Keeps the
    cells whose centroid lies in a tile's core, on tissue and outside the
    blocks judged out of focus, with their coordinates moved into the
    slide's analysis frame. A tile whose pixels cannot be decoded is read
    once more from a freshly opened slide (a reader that failed once refuses
    every later read), then skipped and listed in ``failed_tiles``.

    Raises
    ------
    IhcScoreError
        The slide cannot be opened.
    """
    done: list[_TileCells] = []
    failed = []
    ds = task.downsample
    reader = TileReader(task.path, task.mpp_option_um)
    try:
        for tile, crop in zip(task.tiles, task.tissue_crops):
            (rx, ry, rw, rh) = tile.a_read
            l0_xy = (int(round(rx * ds)), int(round(ry * ds)))
            l0_size = (int(round((rx + rw) * ds)) - l0_xy[0], int(round((ry + rh) * ds)) - l0_xy[1])
            rgb = reader.read(l0_xy, l0_size, ds)
            if rgb is None:
                failed.append(tile.index)
            else:
                done.append(_score_tile(task, tile, crop, rgb))
    finally:
        reader.close()
    fractions = [d.pigment_fraction for d in done if d.pigment_fraction is not None]
    types = [d.cell_type for d in done if d.cell_type is not None]
    type_p = [d.cell_type_p for d in done if d.cell_type_p is not None]
    return TileResult(
        tuple(t.index for t in task.tiles),
        CellTable.concat([d.cells for d in done]) if done else CellTable.empty(),
        concat_outlines([d.outlines for d in done if d.outlines is not None]),
        tuple(failed),
        pigment_fraction=np.concatenate(fractions).astype(np.float32) if fractions else None,
        blurred=tuple(rect for d in done for rect in d.blurred),
        blurred_px=sum(d.blurred_px for d in done),
        pigment_px=sum(d.pigment_px for d in done),
        cell_type=np.concatenate(types) if types else None,
        cell_type_p=np.concatenate(type_p) if type_p else None,
    )


def _score_tile(task: TileTask, tile: Tile, crop: TissueCrop, rgb: np.ndarray) -> _TileCells:
    """Deconvolve, detect and measure one tile read as ``rgb``; judge its focus and pigment."""
    model, ds = task.model, task.downsample
    rx, ry = tile.a_read[0], tile.a_read[1]
    conc = deconvolve(rgb, task.stains)
    cells, nuclei, grown = detect_cells(conc, mpp_um=task.analysis_mpp_um, params=model.detection)
    a_x = cells.a_x + np.float32(rx)
    a_y = cells.a_y + np.float32(ry)
    keep = in_core(tile, a_x, a_y) & _on_tissue(crop, a_x, a_y)
    cell_type, cell_type_p = _cell_types(model, cells, task.analysis_mpp_um)
    core = _core_slices(tile)
    core_tissue = None  # the tissue under the core, made only where an area is counted
    sharp = np.ones((tile.a_core[3], tile.a_core[2]), dtype=bool)
    blurred: list[tuple[int, int, int, int]] = []
    blurred_px = pigment_px = 0
    fraction = None
    if model.artefacts.blur:
        focus = model.artefacts
        if task.blur_max_sharpness is not None:
            focus = replace(focus, blur_max_sharpness=task.blur_max_sharpness)
        blocks = blurred_blocks(rgb, background=task.stains.background, mpp_um=task.analysis_mpp_um, params=focus)
        if blocks.any():
            b = blur_block_px(task.analysis_mpp_um, model.artefacts)
            keep &= ~_in_blocks(blocks, b, cells.a_x, cells.a_y)
            blur_px = np.kron(blocks, np.ones((b, b), dtype=bool))[: rgb.shape[0], : rgb.shape[1]]
            sharp = ~blur_px[core]
            core_tissue = _core_tissue(crop, tile)
            blurred_px = int(np.count_nonzero(core_tissue & ~sharp))
            blurred = _block_rects(blocks, b, tile)
    if checks_pigment(model, task.stains):
        pig = pigment_mask(rgb, conc, mpp_um=task.analysis_mpp_um, params=model.pigment)
        if pig[core].any():
            core_tissue = _core_tissue(crop, tile) if core_tissue is None else core_tissue
            pigment_px = int(np.count_nonzero(pig[core] & core_tissue & sharp))
        fraction = cell_pigment_fraction(grown, pig, len(cells))[keep]
    outlines = None
    if task.outlines:  # rows are labels 1..n; outlines go straight to level-0 px
        from ihc_score.cells import trace_outlines

        ids = np.flatnonzero(keep) + 1
        outlines = trace_outlines(nuclei, grown, ids).transform(ds, (rx + 0.5) * ds - 0.5, (ry + 0.5) * ds - 0.5)
    return _TileCells(replace(cells, a_x=a_x, a_y=a_y).take(keep), outlines, fraction, blurred, blurred_px, pigment_px,
                      *(None if v is None else v[keep] for v in (cell_type, cell_type_p)))


def _cell_types(model: Model, cells: CellTable, mpp_um: float) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Each cell's type and its probability, among all the cells of its tile (the margin holds the neighbours)."""
    typer = model.cell_type_model
    if typer is None:
        return None, None
    features = cell_type_features(cells, mpp_um=mpp_um, neighbourhood_um=typer.neighbourhood_um, own=typer.features)
    return predict_cell_types(typer, features)


def checks_pigment(model: Model, stains: StainVectors) -> bool:
    """Whether pigment is looked for: asked by the model, with stain vectors that fit the slide.

    Pigment is told from DAB partly by its colour off the DAB vector, so the
    vectors must be the slide's own (or the model's, when it asks for no
    estimate); when the estimate fell back to the defaults the colour test
    would call dark DAB pigment (on a real Ki67 field, 8 points of its
    positive nuclei), so the slide is flagged ``pigment_unchecked`` instead.
    """
    return model.pigment.exclude and not any(f.startswith("stain_fallback") for f in stains.flags)


def concat_outlines(
    parts: list[TracedOutlines], keep: np.ndarray | None = None, *, copy: bool = True
) -> TracedOutlines | OutlineParts | None:
    """Outlines of several chunks in order, or ``None`` when there are none.

    ``keep`` (boolean, one entry per row of all chunks) selects rows. With
    ``copy=False`` the result refers to the chunks' arrays
    (:class:`~ihc_score.cells.traced_outlines.OutlineParts`) instead of gathering them, so
    a slide's outlines are not held twice while its chunks are alive.
    """
    if not parts:
        return None
    from ihc_score.cells import OutlineParts, TracedOutlines

    return TracedOutlines.concat(parts, keep=keep) if copy else OutlineParts.of(parts, keep=keep)


def _mask_index(crop: TissueCrop, a: np.ndarray, axis: int) -> np.ndarray:
    """Column (``axis`` 0, from x) or row (1, from y) of the crop's mask pixel under analysis coordinates ``a``."""
    mask, origin, scale = crop
    return np.clip(((a - origin[axis]) / scale).astype(np.int64), 0, mask.shape[1 - axis] - 1)


def _on_tissue(crop: TissueCrop, a_x: np.ndarray, a_y: np.ndarray) -> np.ndarray:
    mask = crop[0]
    if mask.size == 0:
        return np.zeros(np.broadcast_shapes(np.shape(a_x), np.shape(a_y)), dtype=bool)
    return mask[_mask_index(crop, a_y, 1), _mask_index(crop, a_x, 0)]


def _core_slices(tile: Tile) -> tuple[slice, slice]:
    """The core of a tile as slices of the image read for it."""
    x, y, w, h = tile.a_core
    rx, ry = tile.a_read[:2]
    return slice(y - ry, y - ry + h), slice(x - rx, x - rx + w)


def _core_tissue(crop: TissueCrop, tile: Tile) -> np.ndarray:
    """Tissue mask under a tile's core at analysis resolution (nearest), shape ``(h, w)`` of the core."""
    x, y, w, h = tile.a_core
    mask = crop[0]
    if mask.size == 0:
        return np.zeros((h, w), dtype=bool)
    # the mask pixel of a column depends on x only, of a row on y only
    cols = _mask_index(crop, x + np.arange(w, dtype=np.float64), 0)
    rows = _mask_index(crop, y + np.arange(h, dtype=np.float64), 1)
    return np.take(np.take(mask, rows, axis=0), cols, axis=1)


def _in_blocks(blocks: np.ndarray, b: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether image coordinates (px, pixel centres at integers) fall in a True block of side ``b``."""
    bx = np.clip((np.asarray(x) + 0.5).astype(np.int64) // b, 0, blocks.shape[1] - 1)
    by = np.clip((np.asarray(y) + 0.5).astype(np.int64) // b, 0, blocks.shape[0] - 1)
    return blocks[by, bx]


def _block_rects(blocks: np.ndarray, b: int, tile: Tile) -> list[tuple[int, int, int, int]]:
    """True blocks as rectangles in the slide's analysis frame, clipped to the tile's core."""
    rx, ry = tile.a_read[:2]
    cx, cy, cw, ch = tile.a_core
    rects = []
    for by, bx in zip(*np.nonzero(blocks)):
        x0, y0 = max(rx + bx * b, cx), max(ry + by * b, cy)
        x1, y1 = min(rx + (bx + 1) * b, cx + cw), min(ry + (by + 1) * b, cy + ch)
        if x1 > x0 and y1 > y0:
            rects.append((int(x0), int(y0), int(x1 - x0), int(y1 - y0)))
    return rects

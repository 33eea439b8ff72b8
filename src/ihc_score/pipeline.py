"""Score one slide: plan it, score its tiles, gather the result.

The work is split so that it can run anywhere: :func:`plan_slide` opens the
slide, finds tissue and estimates stains (a few seconds at most);
:func:`score_tiles` scores a chunk of tiles and is a plain function of
picklable arguments that opens the slide from its path, so any
``concurrent.futures.Executor`` (a local process pool or a Dask cluster) can
run it; :func:`finish_slide` sums the chunks. :func:`score_slide` chains them
in-process.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from .autoregions import find_metastases
from .cells import CellTable, detect_cells
from .errors import IhcScoreError, NotBrightfieldError
from .model import Model
from .region_scores import RegionResult, score_region, score_regions
from .regions import Annotation, Region, build_regions, find_annotation_file, read_annotations, region_membership
from .score import classify
from .slide import Slide, open_slide
from .stain import StainVectors, deconvolve, estimate_stains
from .tiles import Tile, TileGrid, in_core, tile_grid
from .tissue import detect_tissue

__all__ = [
    "SlidePlan",
    "TileTask",
    "TileResult",
    "RegionResult",
    "SlideResult",
    "REGION_MODES",
    "plan_slide",
    "tile_tasks",
    "score_tiles",
    "finish_slide",
    "score_slide",
    "failed_result",
]

#: How a slide without an annotation file is divided into scored regions:
#: ``auto`` finds the metastases from the cells, ``tissue`` scores all tissue
#: as one region (for fields that are all tumour, or a quick overview).
REGION_MODES = ("auto", "tissue")

#: Tissue tiles sampled to estimate the slide's stain vectors, and the side
#: (analysis px) of the patch read from the centre of each: at analysis
#: resolution pixels are pure enough for Macenko's extremes, and 8 patches of
#: 512 px give the ~2 Mpx the estimator wants.
_STAIN_SAMPLE_TILES = 8
_STAIN_SAMPLE_PX = 512


@dataclass(frozen=True)
class SlidePlan:
    """What is known about a slide before its tiles are scored.

    Attributes
    ----------
    path : str
        Absolute path of the slide file.
    vendor : str
        Reader's name for the format.
    mpp_um, mpp_source : float, str
        Level-0 pixel size and where it came from (``slide`` / ``option``).
    l0_size : tuple of 2 int
        Level-0 ``(width, height)``.
    analysis_mpp_um : float
        Pixel size the cells are analysed at.
    grid : TileGrid
        Tiles over tissue.
    tissue : ndarray of bool
        Tissue mask at ``tissue_downsample`` level-0 px per pixel.
    stains : StainVectors
        Vectors and background used for this slide.
    tissue_area_mm2 : float
    flags : tuple of str
        QC flags (tissue and stain estimation).
    regions : tuple of Region or None
        Regions drawn in the slide's annotation file, excluded areas cut out;
        ``None`` when there is no file (regions are then found from the cells,
        or the whole tissue is scored, by ``region_mode``).
    region_mode : str
        One of :data:`REGION_MODES`.
    annotation_file : str
        Name of the annotation file used, or empty.
    exclusions : tuple of Annotation
        Excluded shapes of the annotation file (necrosis, artefacts). When the
        file holds only these, regions are found as without a file and the
        exclusions are cut out of them.
    """

    path: str
    vendor: str
    mpp_um: float
    mpp_source: str
    l0_size: tuple[int, int]
    analysis_mpp_um: float
    grid: TileGrid
    tissue: np.ndarray
    tissue_downsample: float
    stains: StainVectors
    tissue_area_mm2: float
    flags: tuple[str, ...]
    regions: tuple[Region, ...] | None = None
    region_mode: str = "auto"
    annotation_file: str = ""
    exclusions: tuple[Annotation, ...] = ()


@dataclass(frozen=True)
class TileTask:
    """A chunk of tiles of one slide: everything a worker needs, picklable."""

    path: str
    mpp_um: float | None
    downsample: float
    analysis_mpp_um: float
    tiles: tuple[Tile, ...]
    tissue_crops: tuple[tuple[np.ndarray, tuple[float, float], float], ...]
    stains: StainVectors
    model: Model


@dataclass(frozen=True)
class TileResult:
    """Cells found in the cores of a chunk's tiles, in the slide's analysis frame."""

    tile_indices: tuple[int, ...]
    cells: CellTable


@dataclass(frozen=True)
class SlideResult:
    """Everything the outputs need about one slide."""

    path: str
    slide: str
    status: str
    error: str = ""
    vendor: str = ""
    mpp_um: float = float("nan")
    mpp_source: str = ""
    analysis_mpp_um: float = float("nan")
    l0_size: tuple[int, int] = (0, 0)
    tissue_area_mm2: float = float("nan")
    stains: StainVectors | None = None
    flags: tuple[str, ...] = ()
    n_tiles: int = 0
    regions: tuple[RegionResult, ...] = ()
    annotation_file: str = ""
    seconds: float = 0.0
    cells: CellTable | None = field(default=None, compare=False, repr=False)


def plan_slide(
    path: str | Path,
    model: Model,
    *,
    mpp: float | None = None,
    annotations_dir: str | Path | None = None,
    region_mode: str = "auto",
) -> SlidePlan:
    """Open a slide, find its tissue and regions, estimate its stains and lay its tiles.

    Parameters
    ----------
    path : str or Path
    model : Model
    mpp : float, optional
        Level-0 pixel size (um/px) used when the slide stores none.
    annotations_dir : str or Path, optional
        Folder searched for the slide's annotation file, besides the slide's own folder.
    region_mode : {"auto", "tissue"}
        Regions of a slide without annotation file.

    Raises
    ------
    IhcScoreError
        The slide cannot be opened, has no pixel size, is not brightfield,
        or its annotation file is unusable.
    """
    if region_mode not in REGION_MODES:
        raise ValueError(f"region_mode must be one of {REGION_MODES}, got {region_mode!r}")
    path = Path(path).resolve()
    ann_file = find_annotation_file(path, Path(annotations_dir) if annotations_dir else None)
    with open_slide(path, mpp=mpp) as slide:
        thumb, thumb_ds = slide.thumbnail(_tissue_mpp(slide, model.tissue.mpp_um))
        tissue = detect_tissue(thumb, downsample=thumb_ds, mpp_um=slide.mpp, params=model.tissue)
        if "not_brightfield" in tissue.flags:
            raise NotBrightfieldError(
                f"{path.name}: not a brightfield slide (dark background, fluorescence?); no H-score is given"
            )
        regions: tuple[Region, ...] | None = None
        exclusions: tuple[Annotation, ...] = ()
        scored = tissue.mask
        if ann_file is not None:
            shapes = read_annotations(ann_file)
            exclusions = tuple(a for a in shapes if a.excluded)
            regions = build_regions(shapes, slide_size=slide.dimensions, origin=ann_file.name) or None
            if regions is not None:
                scored = scored & _raster(regions, tissue.mask.shape, tissue.downsample)
            elif exclusions:
                scored = scored & ~_raster(_as_regions(exclusions), tissue.mask.shape, tissue.downsample)
        analysis_mpp = max(model.analysis.mpp_um, slide.mpp)
        downsample = analysis_mpp / slide.mpp
        grid = tile_grid(
            slide.dimensions,
            downsample=downsample,
            tile_px=max(16, int(round(model.analysis.tile_um / analysis_mpp))),
            margin_px=int(math.ceil(model.analysis.margin_um / analysis_mpp)),
            tissue=scored,
            tissue_downsample=tissue.downsample,
        )
        defaults = model.stains.defaults(tissue.background)
        stains = defaults
        if model.stains.estimate and grid.tiles:
            pixels = _stain_sample(slide, grid, scored, tissue.downsample)
            stains = estimate_stains(
                pixels, background=tissue.background, defaults=defaults, params=model.stains.estimation
            )
        return SlidePlan(
            path=str(path),
            vendor=slide.vendor,
            mpp_um=slide.mpp,
            mpp_source=slide.mpp_source,
            l0_size=slide.dimensions,
            analysis_mpp_um=analysis_mpp,
            grid=grid,
            tissue=scored,
            tissue_downsample=tissue.downsample,
            stains=stains,
            tissue_area_mm2=tissue.area_mm2,
            flags=tuple(tissue.flags) + tuple(stains.flags),
            regions=regions,
            region_mode=region_mode,
            annotation_file=ann_file.name if ann_file else "",
            exclusions=exclusions if regions is None else (),
        )


def _as_regions(shapes: tuple[Annotation, ...]) -> tuple[Region, ...]:
    """Excluded shapes as (repaired) regions, to draw them or test cells against them."""
    return tuple(Region(a.name, a.geometry.buffer(0), "annotation") for a in shapes)


def _raster(regions: tuple[Region, ...], shape: tuple[int, int], downsample: float) -> np.ndarray:
    """Union of region outlines drawn on a mask grid (``downsample`` level-0 px per pixel), borders included."""
    out = np.zeros(shape, np.uint8)
    for region in regions:
        for poly in getattr(region.geometry, "geoms", [region.geometry]):
            if poly.is_empty:
                continue
            rings = [np.asarray(poly.exterior.coords) / downsample] + [np.asarray(r.coords) / downsample for r in poly.interiors]
            pts = [np.round(r - 0.5).astype(np.int32) for r in rings]
            cv2.fillPoly(out, pts[:1], 1)
            cv2.polylines(out, pts[:1], True, 1)  # keep thin regions that fall between pixel centres
            for hole in pts[1:]:
                cv2.fillPoly(out, [hole], 0)
    return out.astype(bool)


#: Fewest pixels on the long side of the tissue mask: a camera field of a few
#: hundred um would otherwise give a mask of a few dozen pixels.
_MIN_MASK_PX = 1024


def _tissue_mpp(slide: Slide, mpp_um: float) -> float:
    """Pixel size of the tissue mask: the model's, or finer for a small image (never finer than level 0)."""
    long_um = max(slide.dimensions) * slide.mpp
    return max(slide.mpp, min(mpp_um, long_um / _MIN_MASK_PX))


def _stain_sample(slide: Slide, grid: TileGrid, tissue: np.ndarray, tissue_ds: float) -> np.ndarray:
    """Tissue pixels (N, 3) uint8 from tiles spread evenly over the tissue, at analysis resolution."""
    tiles = grid.tiles
    pick = np.unique(np.linspace(0, len(tiles) - 1, min(_STAIN_SAMPLE_TILES, len(tiles))).round().astype(int))
    chunks = []
    for t in (tiles[i] for i in pick):
        x, y, w, h = t.a_core
        pw, ph = min(w, _STAIN_SAMPLE_PX), min(h, _STAIN_SAMPLE_PX)
        l0_xy, l0_size = grid.l0_rect((x + (w - pw) // 2, y + (h - ph) // 2, pw, ph))
        rgb = slide.read_scaled(l0_xy, l0_size, grid.downsample)
        inside = _tissue_at(tissue, tissue_ds, rgb.shape[:2], l0_xy, grid.downsample)
        chunks.append(rgb[inside])
    return np.concatenate(chunks) if chunks else np.zeros((0, 3), np.uint8)


def _tissue_at(tissue: np.ndarray, tissue_ds: float, shape: tuple[int, int], l0_xy: tuple[int, int], ds: float) -> np.ndarray:
    """Tissue mask resampled (nearest) onto an image of ``shape`` read at ``l0_xy`` with downsample ``ds``."""
    h, w = shape
    my = ((l0_xy[1] + (np.arange(h) + 0.5) * ds) / tissue_ds).astype(np.int64)
    mx = ((l0_xy[0] + (np.arange(w) + 0.5) * ds) / tissue_ds).astype(np.int64)
    my = np.clip(my, 0, tissue.shape[0] - 1)
    mx = np.clip(mx, 0, tissue.shape[1] - 1)
    return tissue[my[:, None], mx[None, :]]


def tile_tasks(plan: SlidePlan, model: Model, *, mpp: float | None, tiles_per_task: int = 4) -> list[TileTask]:
    """Split a planned slide into chunks of tiles for workers.

    Each task carries the small crop of the tissue mask under its tiles, not
    the whole mask, so tasks stay small when sent to another machine.
    """
    tasks = []
    tiles = plan.grid.tiles
    for start in range(0, len(tiles), tiles_per_task):
        chunk = tiles[start : start + tiles_per_task]
        crops = tuple(_tissue_crop(plan, t) for t in chunk)
        tasks.append(
            TileTask(
                path=plan.path,
                mpp_um=mpp,
                downsample=plan.grid.downsample,
                analysis_mpp_um=plan.analysis_mpp_um,
                tiles=chunk,
                tissue_crops=crops,
                stains=plan.stains,
                model=model,
            )
        )
    return tasks


def _tissue_crop(plan: SlidePlan, tile: Tile) -> tuple[np.ndarray, tuple[float, float], float]:
    """Mask pixels under a tile core, their origin in analysis px, and analysis px per mask px."""
    scale = plan.tissue_downsample / plan.grid.downsample
    x, y, w, h = tile.a_core
    mx0, my0 = int(math.floor(x / scale)), int(math.floor(y / scale))
    mx1, my1 = int(math.ceil((x + w) / scale)) + 1, int(math.ceil((y + h) / scale)) + 1
    crop = np.ascontiguousarray(plan.tissue[my0:my1, mx0:mx1])
    return crop, (mx0 * scale, my0 * scale), scale


def score_tiles(task: TileTask) -> TileResult:
    """Detect and measure the cells of a chunk of tiles.

    Opens the slide from its path (no handle crosses a process). Keeps the
    cells whose centroid lies in a tile's core and on tissue, with their
    coordinates moved into the slide's analysis frame.

    Raises
    ------
    IhcScoreError
        The slide cannot be opened or a tile cannot be decoded.
    """
    tables = []
    detection = task.model.detection
    with open_slide(task.path, mpp=task.mpp_um) as slide:
        for tile, crop in zip(task.tiles, task.tissue_crops):
            (rx, ry, rw, rh) = tile.a_read
            l0_xy = (int(round(rx * task.downsample)), int(round(ry * task.downsample)))
            l0_size = (int(round((rx + rw) * task.downsample)) - l0_xy[0], int(round((ry + rh) * task.downsample)) - l0_xy[1])
            rgb = slide.read_scaled(l0_xy, l0_size, task.downsample)
            conc = deconvolve(rgb, task.stains)
            cells, _, _ = detect_cells(conc, mpp_um=task.analysis_mpp_um, params=detection)
            a_x = cells.a_x + np.float32(rx)
            a_y = cells.a_y + np.float32(ry)
            keep = in_core(tile, a_x, a_y) & _on_tissue(crop, a_x, a_y)
            tables.append(replace(cells, a_x=a_x, a_y=a_y).take(keep))
    cells = CellTable.concat(tables) if tables else CellTable.empty()
    return TileResult(tuple(t.index for t in task.tiles), cells)


def _on_tissue(crop: tuple[np.ndarray, tuple[float, float], float], a_x: np.ndarray, a_y: np.ndarray) -> np.ndarray:
    mask, (ox, oy), scale = crop
    if mask.size == 0:
        return np.zeros(a_x.shape, dtype=bool)
    mx = np.clip(((a_x - ox) / scale).astype(np.int64), 0, mask.shape[1] - 1)
    my = np.clip(((a_y - oy) / scale).astype(np.int64), 0, mask.shape[0] - 1)
    return mask[my, mx]


def finish_slide(plan: SlidePlan, results: list[TileResult], model: Model, *, seconds: float = 0.0) -> SlideResult:
    """Gather the chunks of a slide into its result: regions, counts, intervals, calls.

    Chunks are put back in tile order first, so the cell table does not
    depend on which worker finished first. Regions come from the annotation
    file, else are found from the cells (``auto``), else the whole tissue is
    one region (``tissue``).
    """
    ordered = sorted(results, key=lambda r: r.tile_indices[0] if r.tile_indices else -1)
    cells = CellTable.concat([r.cells for r in ordered]) if ordered else CellTable.empty()
    classes = classify(getattr(cells, model.classification.measurement), model.classification.thresholds)
    ds = plan.grid.downsample
    l0_x = (cells.a_x.astype(np.float64) + 0.5) * ds - 0.5
    l0_y = (cells.a_y.astype(np.float64) + 0.5) * ds - 0.5
    flags = plan.flags
    if plan.exclusions:  # an annotation file with only excluded areas: no cell there counts
        outside = ~region_membership(_as_regions(plan.exclusions), l0_x, l0_y).any(axis=0)
        classes, l0_x, l0_y, cells = classes[outside], l0_x[outside], l0_y[outside], cells.take(outside)
    score_args = {"mpp_um": plan.mpp_um, "rule": model.positivity, "intervals": model.confidence}
    if plan.regions is None and plan.region_mode == "tissue":
        region_results: tuple[RegionResult, ...] = (
            score_region("tissue", classes, l0_x, l0_y, area_mm2=plan.tissue_area_mm2, **score_args),
        )
    else:
        regions = plan.regions
        if regions is None:
            regions = find_metastases(
                l0_x, l0_y, cells.nucleus_area_um2, tissue=plan.tissue, tissue_downsample=plan.tissue_downsample,
                mpp_um=plan.mpp_um, l0_size=plan.l0_size, params=model.auto_regions,
            )  # fmt: skip
            if regions and plan.exclusions:
                shapes = [Annotation(r.name, "Tumor", r.geometry) for r in regions] + list(plan.exclusions)
                regions = build_regions(shapes, slide_size=plan.l0_size, source="auto", origin=plan.annotation_file)
            if not regions:
                flags = flags + ("no_metastasis_found",)
        region_results = score_regions(regions, classes, l0_x, l0_y, **score_args)
    return SlideResult(
        path=plan.path,
        slide=Path(plan.path).name,
        status="ok",
        vendor=plan.vendor,
        mpp_um=plan.mpp_um,
        mpp_source=plan.mpp_source,
        analysis_mpp_um=plan.analysis_mpp_um,
        l0_size=plan.l0_size,
        tissue_area_mm2=plan.tissue_area_mm2,
        stains=plan.stains,
        flags=flags,
        n_tiles=len(plan.grid.tiles),
        regions=region_results,
        annotation_file=plan.annotation_file,
        seconds=seconds,
        cells=cells,
    )


def failed_result(path: str | Path, error: BaseException | str, *, seconds: float = 0.0) -> SlideResult:
    """Result of a slide that could not be scored, with a one-line reason."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if not isinstance(error, (IhcScoreError, str)):
        message = f"{type(error).__name__}: {message}"
    p = Path(path)
    return SlideResult(path=str(p.resolve()), slide=p.name, status="failed", error=message, seconds=seconds)


def score_slide(
    path: str | Path,
    model: Model,
    *,
    mpp: float | None = None,
    annotations_dir: str | Path | None = None,
    region_mode: str = "auto",
) -> SlideResult:
    """Score one slide in this process (no executor); arguments as :func:`plan_slide`.

    Raises
    ------
    IhcScoreError
        The slide cannot be scored; batch code turns this into a failed row.
    """
    start = time.perf_counter()
    plan = plan_slide(path, model, mpp=mpp, annotations_dir=annotations_dir, region_mode=region_mode)
    results = [score_tiles(t) for t in tile_tasks(plan, model, mpp=mpp)]
    return finish_slide(plan, results, model, seconds=time.perf_counter() - start)

"""Score one slide: plan it, score its tiles, gather the result.

The work is split so that it can run anywhere: :func:`~ihc_score.plan.plan_slide`
opens the slide, finds tissue and regions and estimates stains (a few seconds
at most);
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
from typing import TYPE_CHECKING

import numpy as np
import shapely

from .autoregions import find_metastases
from .cells import CellTable, detect_cells
from .errors import IhcScoreError
from .model import Model
from .plan import REGION_MODES, SlidePlan, TileReader, as_regions, plan_slide
from .region_scores import RegionResult, score_region, score_regions
from .regions import Annotation, build_regions, region_membership
from .score import classify

from .stain import StainVectors, deconvolve
from .tiles import Tile, in_core

if TYPE_CHECKING:
    from .outlines import CellOutlines

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
    outlines: bool = False


@dataclass(frozen=True)
class TileResult:
    """Cells found in the cores of a chunk's tiles, in the slide's analysis frame.

    ``failed_tiles`` lists the tiles whose pixels could not be decoded, even
    on a second try: they hold no cells, and the slide reports them.
    """

    tile_indices: tuple[int, ...]
    cells: CellTable
    outlines: CellOutlines | None = None
    failed_tiles: tuple[int, ...] = ()


@dataclass(frozen=True, eq=False)
class SlideDetail:
    """Per-cell detail of a scored slide, for detections, cell tables and QC pictures.

    Not stored for reuse: a rerun that reuses a slide's result has no detail,
    and its per-cell outputs, written the first time, are kept.

    Attributes
    ----------
    cells : CellTable
        Measurements; ``a_x``, ``a_y`` in the slide's analysis frame.
    l0_x, l0_y : ndarray of float64
        Centroids in level-0 px.
    classes : ndarray of int8
        Class of each cell (0-3).
    membership : ndarray of bool
        ``(n_regions, n_cells)``, rows in the order of ``SlideResult.regions``.
    outlines : CellOutlines or None
        Nucleus and cell outlines in level-0 px, when traced.
    tissue : ndarray of bool
        Tissue mask at ``tissue_downsample`` level-0 px per pixel.
    exclusions : tuple of str
        WKT (level-0 px) of the annotation file's excluded areas.
    """

    cells: CellTable
    l0_x: np.ndarray
    l0_y: np.ndarray
    classes: np.ndarray
    membership: np.ndarray
    outlines: CellOutlines | None
    tissue: np.ndarray
    tissue_downsample: float
    exclusions: tuple[str, ...] = ()


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
    failed_tile_fraction: float = 0.0
    qc_picture: str = ""
    qc_zooms: tuple[str, ...] = ()
    detail: SlideDetail | None = field(default=None, compare=False, repr=False)

    @property
    def cells(self) -> CellTable | None:
        """The slide's cell measurements, when scored in this run."""
        return self.detail.cells if self.detail is not None else None


def tile_tasks(
    plan: SlidePlan, model: Model, *, mpp: float | None, tiles_per_task: int = 4, outlines: bool = False
) -> list[TileTask]:
    """Split a planned slide into chunks of tiles for workers.

    Each task carries the small crop of the tissue mask under its tiles, not
    the whole mask, so tasks stay small when sent to another machine.
    ``outlines`` asks the workers to trace every cell's outlines too.
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
                outlines=outlines,
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
    coordinates moved into the slide's analysis frame. A tile whose pixels
    cannot be decoded is read once more from a freshly opened slide (a
    reader that failed once refuses every later read), then skipped and
    listed in ``failed_tiles``.

    Raises
    ------
    IhcScoreError
        The slide cannot be opened.
    """
    tables, traced, failed = [], [], []
    detection = task.model.detection
    ds = task.downsample
    reader = TileReader(task.path, task.mpp_um)
    try:
        for tile, crop in zip(task.tiles, task.tissue_crops):
            (rx, ry, rw, rh) = tile.a_read
            l0_xy = (int(round(rx * task.downsample)), int(round(ry * task.downsample)))
            l0_size = (int(round((rx + rw) * task.downsample)) - l0_xy[0], int(round((ry + rh) * task.downsample)) - l0_xy[1])
            rgb = reader.read(l0_xy, l0_size, task.downsample)
            if rgb is None:
                failed.append(tile.index)
                continue
            conc = deconvolve(rgb, task.stains)
            cells, nuclei, grown = detect_cells(conc, mpp_um=task.analysis_mpp_um, params=detection)
            a_x = cells.a_x + np.float32(rx)
            a_y = cells.a_y + np.float32(ry)
            keep = in_core(tile, a_x, a_y) & _on_tissue(crop, a_x, a_y)
            tables.append(replace(cells, a_x=a_x, a_y=a_y).take(keep))
            if task.outlines:  # rows are labels 1..n; outlines go straight to level-0 px
                from .outlines import trace_outlines

                ids = np.flatnonzero(keep) + 1
                traced.append(trace_outlines(nuclei, grown, ids).transform(ds, (rx + 0.5) * ds - 0.5, (ry + 0.5) * ds - 0.5))
    finally:
        reader.close()
    cells = CellTable.concat(tables) if tables else CellTable.empty()
    outlines = _concat_outlines(traced)
    return TileResult(tuple(t.index for t in task.tiles), cells, outlines, tuple(failed))


def _concat_outlines(parts: list[CellOutlines]) -> CellOutlines | None:
    if not parts:
        return None
    from .outlines import CellOutlines

    return CellOutlines.concat(parts)


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
    one region (``tissue``). Tiles that could not be decoded are reported as
    ``failed_tile_fraction`` and a ``failed_tiles:<n>`` flag; past the model's
    ``analysis.max_failed_tile_fraction`` the slide is ``incomplete``, with no
    regions and no score.
    """
    ordered = sorted(results, key=lambda r: r.tile_indices[0] if r.tile_indices else -1)
    n_failed = sum(len(r.failed_tiles) for r in ordered)
    n_tiles = len(plan.grid.tiles)
    failed_fraction = n_failed / n_tiles if n_tiles else 0.0
    common = {
        "path": plan.path,
        "slide": Path(plan.path).name,
        "vendor": plan.vendor,
        "mpp_um": plan.mpp_um,
        "mpp_source": plan.mpp_source,
        "analysis_mpp_um": plan.analysis_mpp_um,
        "l0_size": plan.l0_size,
        "tissue_area_mm2": plan.tissue_area_mm2,
        "stains": plan.stains,
        "n_tiles": n_tiles,
        "annotation_file": plan.annotation_file,
        "seconds": seconds,
        "failed_tile_fraction": failed_fraction,
    }
    tile_flags = (f"failed_tiles:{n_failed}",) if n_failed else ()
    if failed_fraction > model.analysis.max_failed_tile_fraction:
        limit = model.analysis.max_failed_tile_fraction
        error = (
            f"{common['slide']}: {n_failed} of {n_tiles} tiles could not be decoded ({100 * failed_fraction:.1f} %), "
            f"more than the model's limit of {100 * limit:g} %; the slide is not scored (corrupt file? scan it again)"
        )
        return SlideResult(status="incomplete", error=error, flags=plan.flags + tile_flags, **common)
    cells = CellTable.concat([r.cells for r in ordered]) if ordered else CellTable.empty()
    classes = classify(getattr(cells, model.classification.measurement), model.classification.thresholds)
    ds = plan.grid.downsample
    l0_x = (cells.a_x.astype(np.float64) + 0.5) * ds - 0.5
    l0_y = (cells.a_y.astype(np.float64) + 0.5) * ds - 0.5
    outlines = _concat_outlines([r.outlines for r in ordered if r.outlines is not None])
    flags = plan.flags
    if plan.exclusions:  # no cell in an excluded area counts, whatever the regions
        keep = ~region_membership(as_regions(plan.exclusions), l0_x, l0_y).any(axis=0)
        classes, l0_x, l0_y, cells = classes[keep], l0_x[keep], l0_y[keep], cells.take(keep)
        outlines = outlines.take(keep) if outlines is not None else None
    values = getattr(cells, model.classification.measurement)
    score_args = {"values": values, "mpp_um": plan.mpp_um, "rule": model.positivity, "intervals": model.confidence}
    if plan.regions is None and plan.region_mode == "tissue":
        membership = np.ones((1, len(classes)), dtype=bool)
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
        membership = region_membership(regions, l0_x, l0_y) if regions else np.zeros((0, len(classes)), dtype=bool)
        region_results = score_regions(regions, classes, l0_x, l0_y, membership=membership, **score_args)
    return SlideResult(
        status="ok",
        flags=flags + tile_flags,
        regions=region_results,
        **common,
        detail=SlideDetail(
            cells=cells,
            l0_x=l0_x,
            l0_y=l0_y,
            classes=classes,
            membership=membership,
            outlines=outlines,
            tissue=plan.tissue if plan.tissue_all is None else plan.tissue_all,
            tissue_downsample=plan.tissue_downsample,
            exclusions=tuple(shapely.to_wkt(a.geometry, rounding_precision=3, trim=True) for a in plan.exclusions),
        ),
    )


def failed_result(path: str | Path, error: BaseException | str, *, seconds: float = 0.0) -> SlideResult:
    """Result of a slide that could not be scored, with a one-line reason."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if not isinstance(error, (IhcScoreError, str)):
        message = f"{type(error).__name__}: {message}"
    p = Path(path)
    for full in (str(p.resolve()), str(p)):  # folder names can name patients: keep only the file name
        if full != p.name:
            message = message.replace(full, p.name)
    return SlideResult(path=str(p.resolve()), slide=p.name, status="failed", error=message, seconds=seconds)


def score_slide(
    path: str | Path,
    model: Model,
    *,
    mpp: float | None = None,
    annotations_dir: str | Path | None = None,
    region_mode: str = "auto",
    outlines: bool = False,
) -> SlideResult:
    """Score one slide in this process (no executor); arguments as :func:`plan_slide`.

    ``outlines`` also traces every cell's outlines (``result.detail.outlines``).

    Raises
    ------
    IhcScoreError
        The slide cannot be scored; batch code turns this into a failed row.
    """
    start = time.perf_counter()
    plan = plan_slide(path, model, mpp=mpp, annotations_dir=annotations_dir, region_mode=region_mode)
    results = [score_tiles(t) for t in tile_tasks(plan, model, mpp=mpp, outlines=outlines)]
    return finish_slide(plan, results, model, seconds=time.perf_counter() - start)

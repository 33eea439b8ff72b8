"""Score one slide: plan it, score its tiles, gather the result.

The work is split so that it can run anywhere: :func:`~ihc_score.run.plan.plan_slide`
opens the slide, finds tissue, artefacts and regions and estimates stains (a
few seconds at most); :func:`~ihc_score.run.tile_scoring.score_tiles` scores a
chunk of tiles and is a plain function of picklable arguments that opens the
slide from its path, so any ``concurrent.futures.Executor`` (a local process
pool or a Dask cluster) can run it; :func:`finish_slide` sums the chunks.
:func:`score_slide` chains them in-process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from ihc_score.cells import CellTable, Outlines
from ihc_score.errors import IhcScoreError
from ihc_score.model import Model
from ihc_score.regions import Annotation, Region, SlideNuclei, build_regions, find_metastases, region_membership
from ihc_score.results import SlideDetail, SlideResult
from ihc_score.run.plan import SlidePlan, as_regions, plan_slide
from ihc_score.run.tile_scoring import TileResult, checks_pigment, concat_outlines, score_tiles, tile_tasks
from ihc_score.score import (
    RegionResult,
    classify,
    left_out_by_type,
    outside_exclusions,
    pigmented_cells,
    score_region,
    score_regions,
    with_left_out,
)
from ihc_score.tissue import ExcludedAreas

__all__ = ["finish_slide", "score_slide", "failed_result"]


def finish_slide(plan: SlidePlan, results: list[TileResult], model: Model, *, seconds: float = 0.0) -> SlideResult:
    """Gather the chunks of a slide into its result: cells, their selection and classes, regions, scores.

    Chunks are put back in tile order first, so the cell table does not
    depend on which worker finished first. Cells in excluded areas are left
    out; cells mostly covered by pigment help find the regions but are not
    graded, and each region counts them as ``n_pigmented``
    (:mod:`ihc_score.score.selection`). Regions come from the annotation
    file, else are found from the cells (``auto``), else the whole tissue is
    one region (``tissue``). Tiles that could not be decoded are reported as
    ``failed_tile_fraction`` and a ``failed_tiles:<n>`` flag; past the
    model's ``analysis.max_failed_tile_fraction`` the slide is
    ``incomplete``, with no regions and no score.
    """
    ordered = sorted(results, key=lambda r: r.tile_indices[0] if r.tile_indices else -1)
    n_failed = sum(len(r.failed_tiles) for r in ordered)
    common = _common_fields(plan, n_failed, seconds)
    tile_flags = (f"failed_tiles:{n_failed}",) if n_failed else ()
    if common["failed_tile_fraction"] > model.analysis.max_failed_tile_fraction:
        return SlideResult(
            status="incomplete", error=_incomplete_error(common, n_failed, model), flags=plan.flags + tile_flags, **common
        )
    cells = _slide_cells(plan, ordered, model)
    regions, membership, region_flags = _regions(plan, cells, model)
    left_out = left_out_by_type(cells.cell_type, model.cell_types)
    untyped = np.zeros(len(cells.classes), bool) if left_out is None else left_out
    graded = ~cells.pigmented & ~untyped
    pigmented = cells.pigmented & ~untyped  # a left-out type is counted as such, pigment or not
    values = getattr(cells.table, model.classification.measurement)
    score_args = {"mpp_um": plan.mpp_um, "rule": model.positivity, "intervals": model.confidence}
    if regions is None:  # all tissue as one region
        region_results: tuple[RegionResult, ...] = (
            score_region(
                "tissue", cells.classes[graded], cells.l0_x[graded], cells.l0_y[graded], values=values[graded],
                area_mm2=plan.tissue_area_mm2, n_pigmented=int(pigmented.sum()), **score_args,
            ),
        )  # fmt: skip
    else:
        region_results = score_regions(
            regions, cells.classes[graded], cells.l0_x[graded], cells.l0_y[graded], values=values[graded],
            membership=membership[:, graded], n_pigmented=(membership & pigmented).sum(axis=1), **score_args,
        )  # fmt: skip
    if left_out is not None:
        region_results = tuple(
            with_left_out(r, cells.cell_type[member & left_out], cells.classes[member & left_out], model.cell_types,
                          model.positivity)
            for r, member in zip(region_results, membership)
        )
    excluded = _excluded(plan, ordered, int(cells.pigmented.sum()))
    return SlideResult(
        status="ok",
        flags=plan.flags + region_flags + tile_flags + _artefact_flags(excluded) + _pigment_flags(plan, model),
        regions=region_results,
        excluded=excluded,
        **common,
        detail=SlideDetail(
            cells=cells.table,
            l0_x=cells.l0_x,
            l0_y=cells.l0_y,
            classes=cells.classes,
            membership=membership,
            outlines=cells.outlines,
            tissue=plan.tissue if plan.tissue_all is None else plan.tissue_all,
            tissue_downsample=plan.tissue_downsample,
            exclusions=tuple(shapely.to_wkt(a.geometry, rounding_precision=3, trim=True) for a in plan.exclusions),
            pigmented=cells.pigmented,
            artefacts=_artefact_mask(plan, ordered),
            cell_type=cells.cell_type,
            cell_type_p=cells.cell_type_p,
            left_out=left_out,
        ),
    )


def _common_fields(plan: SlidePlan, n_failed: int, seconds: float) -> dict[str, Any]:
    """The fields of a slide's result that do not depend on its cells."""
    n_tiles = len(plan.grid.tiles)
    return {
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
        "failed_tile_fraction": n_failed / n_tiles if n_tiles else 0.0,
    }


def _incomplete_error(common: dict[str, Any], n_failed: int, model: Model) -> str:
    """The one-line reason of a slide with too many tiles that could not be decoded."""
    limit = model.analysis.max_failed_tile_fraction
    return (
        f"{common['slide']}: {n_failed} of {common['n_tiles']} tiles could not be decoded "
        f"({100 * common['failed_tile_fraction']:.1f} %), "
        f"more than the model's limit of {100 * limit:g} %; the slide is not scored (corrupt file? scan it again)"
    )


@dataclass(frozen=True, eq=False)
class _SlideCells:
    """The cells of a slide that count (excluded areas left out), with their classes and level-0 centroids."""

    table: CellTable
    l0_x: np.ndarray
    l0_y: np.ndarray
    classes: np.ndarray
    pigmented: np.ndarray
    outlines: Outlines | None
    cell_type: np.ndarray | None = None
    cell_type_p: np.ndarray | None = None


def _per_cell(ordered: list[TileResult], name: str, dtype: type) -> np.ndarray:
    """The chunks' per-cell column ``name`` end to end, zeros for a chunk without it (its tiles all failed)."""
    return np.concatenate([np.zeros(0, dtype)] + [
        np.zeros(len(r.cells), dtype) if getattr(r, name) is None else getattr(r, name) for r in ordered])


def _slide_cells(plan: SlidePlan, ordered: list[TileResult], model: Model) -> _SlideCells:
    """Concatenate the chunks' cells, select those that count and class them (measurement -> selection -> classes)."""
    cells = CellTable.concat([r.cells for r in ordered]) if ordered else CellTable.empty()
    fraction = _per_cell(ordered, "pigment_fraction", np.float32)
    pigmented = pigmented_cells(fraction, model.pigment)
    classes = classify(getattr(cells, model.classification.measurement), model.classification.thresholds)
    ds = plan.grid.downsample
    l0_x = (cells.a_x.astype(np.float64) + 0.5) * ds - 0.5
    l0_y = (cells.a_y.astype(np.float64) + 0.5) * ds - 0.5
    cell_type = cell_type_p = None
    if model.cell_type_model is not None:
        cell_type, cell_type_p = _per_cell(ordered, "cell_type", np.int8), _per_cell(ordered, "cell_type_p", np.float32)
    keep = None
    if plan.exclusions:  # no cell in an excluded area counts, whatever the regions
        keep = outside_exclusions(as_regions(plan.exclusions), l0_x, l0_y)
        classes, l0_x, l0_y, cells, pigmented = classes[keep], l0_x[keep], l0_y[keep], cells.take(keep), pigmented[keep]
        if cell_type is not None:
            cell_type, cell_type_p = cell_type[keep], cell_type_p[keep]
    # the chunks' outlines as they are (kept rows picked, nothing copied): the slide's outlines are held once
    outlines = concat_outlines([r.outlines for r in ordered if r.outlines is not None], keep=keep, copy=False)
    return _SlideCells(cells, l0_x, l0_y, classes, pigmented, outlines, cell_type, cell_type_p)


def _regions(
    plan: SlidePlan, cells: _SlideCells, model: Model
) -> tuple[tuple[Region, ...] | None, np.ndarray, tuple[str, ...]]:
    """The slide's regions (None: all tissue as one), each cell's membership ``(n_regions, n_cells)``, and flags."""
    n = len(cells.classes)
    if plan.regions is None and plan.region_mode == "tissue":
        return None, np.ones((1, n), dtype=bool), ()
    regions, flags = plan.regions, ()
    if regions is None:
        nuclei = SlideNuclei(cells.l0_x, cells.l0_y, cells.table.nucleus_area_um2, plan.tissue,
                             plan.tissue_downsample, plan.mpp_um, plan.l0_size)
        regions = find_metastases(nuclei, model.auto_regions)
        if regions and plan.exclusions:
            shapes = [Annotation(r.name, "Tumor", r.geometry) for r in regions] + list(plan.exclusions)
            regions = build_regions(shapes, slide_size=plan.l0_size, source="auto", origin=plan.annotation_file)
        if not regions:
            flags = ("no_metastasis_found",)
    membership = region_membership(regions, cells.l0_x, cells.l0_y) if regions else np.zeros((0, n), dtype=bool)
    return regions, membership, flags


def _excluded(plan: SlidePlan, results: list[TileResult], n_pigmented: int) -> ExcludedAreas:
    """The plan's artefact areas with the tiles' out-of-focus and pigment areas added."""
    px_mm2 = (plan.analysis_mpp_um / 1000.0) ** 2
    return replace(
        plan.excluded,
        blur_mm2=sum(r.blurred_px for r in results) * px_mm2,
        pigment_mm2=sum(r.pigment_px for r in results) * px_mm2,
        n_pigmented=n_pigmented,
    )


def _artefact_flags(excluded: ExcludedAreas) -> tuple[str, ...]:
    """QC flags of the tiles' findings (the plan flags ink, folds and bubbles itself)."""
    return (("out_of_focus",) if excluded.blur_mm2 > 0 else ()) + (("pigment",) if excluded.n_pigmented else ())


def _pigment_flags(plan: SlidePlan, model: Model) -> tuple[str, ...]:
    """``pigment_unchecked`` when the model asks for pigment to be left out but the stain vectors do not allow it."""
    return ("pigment_unchecked",) if model.pigment.exclude and not checks_pigment(model, plan.stains) else ()


def _artefact_mask(plan: SlidePlan, results: list[TileResult]) -> np.ndarray | None:
    """The plan's artefact labels with the out-of-focus rectangles painted in, on the tissue-mask grid."""
    rects = [rect for r in results for rect in r.blurred]
    if plan.artefacts is None and not rects:
        return None
    shape = (plan.tissue_all if plan.tissue_all is not None else plan.tissue).shape
    mask = np.zeros(shape, np.uint8) if plan.artefacts is None else plan.artefacts.copy()
    scale = plan.grid.downsample / plan.tissue_downsample  # mask px per analysis px
    for x, y, w, h in rects:
        x0, y0 = int(x * scale), int(y * scale)
        x1, y1 = max(x0 + 1, int(np.ceil((x + w) * scale))), max(y0 + 1, int(np.ceil((y + h) * scale)))
        region = mask[y0:y1, x0:x1]
        region[region == 0] = 4
    return mask


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
    mpp_option_um: float | None = None,
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
    plan = plan_slide(path, model, mpp_option_um=mpp_option_um, annotations_dir=annotations_dir, region_mode=region_mode)
    results = [score_tiles(t) for t in tile_tasks(plan, model, outlines=outlines)]
    return finish_slide(plan, results, model, seconds=time.perf_counter() - start)

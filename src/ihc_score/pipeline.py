"""Score one slide: plan it, score its tiles, gather the result.

The work is split so that it can run anywhere: :func:`~ihc_score.plan.plan_slide`
opens the slide, finds tissue, artefacts and regions and estimates stains (a
few seconds at most); :func:`~ihc_score.tile_scoring.score_tiles` scores a
chunk of tiles and is a plain function of picklable arguments that opens the
slide from its path, so any ``concurrent.futures.Executor`` (a local process
pool or a Dask cluster) can run it; :func:`finish_slide` sums the chunks.
:func:`score_slide` chains them in-process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import shapely

from .autoregions import find_metastases
from .cells import CellTable
from .errors import IhcScoreError
from .excluded import ExcludedAreas
from .model import Model
from .plan import REGION_MODES, SlidePlan, as_regions, plan_slide
from .region_scores import RegionResult, score_region, score_regions
from .regions import Annotation, build_regions, region_membership
from .score import classify
from .stain import StainVectors
from .tile_scoring import TileResult, TileTask, checks_pigment, concat_outlines, score_tiles, tile_tasks

if TYPE_CHECKING:
    from .outlines import Outlines

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
    outlines : OutlineParts or TracedOutlines or CellOutlines or None
        Nucleus and cell outlines in level-0 px, when traced (as the chunks'
        small integers, :class:`~ihc_score.outlines.OutlineParts`;
        ``take(rows).cell_xy`` gives float64 level-0 px of those rows).
    tissue : ndarray of bool
        Tissue mask at ``tissue_downsample`` level-0 px per pixel.
    exclusions : tuple of str
        WKT (level-0 px) of the annotation file's excluded areas.
    pigmented : ndarray of bool or None
        Cells mostly covered by pigment: not graded (their ``classes`` entry is
        what the DAB channel alone would give, for pictures only).
    artefacts : ndarray of uint8 or None
        Artefact kind of each tissue-mask pixel (:data:`ihc_score.excluded.ARTEFACT_KINDS`, 0 = none).
    """

    cells: CellTable
    l0_x: np.ndarray
    l0_y: np.ndarray
    classes: np.ndarray
    membership: np.ndarray
    outlines: Outlines | None
    tissue: np.ndarray
    tissue_downsample: float
    exclusions: tuple[str, ...] = ()
    pigmented: np.ndarray | None = None
    artefacts: np.ndarray | None = None

    @property
    def shown_classes(self) -> np.ndarray:
        """Each cell's class 0-3 as shown in pictures and exports, or 4 for a cell left ungraded for pigment."""
        classes = np.asarray(self.classes, np.int64)
        return classes if self.pigmented is None else np.where(self.pigmented, 4, classes)


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
    excluded: ExcludedAreas = ExcludedAreas()
    detail: SlideDetail | None = field(default=None, compare=False, repr=False)

    @property
    def cells(self) -> CellTable | None:
        """The slide's cell measurements, when scored in this run."""
        return self.detail.cells if self.detail is not None else None


def finish_slide(plan: SlidePlan, results: list[TileResult], model: Model, *, seconds: float = 0.0) -> SlideResult:
    """Gather the chunks of a slide into its result: regions, counts, intervals, calls.

    Chunks are put back in tile order first, so the cell table does not
    depend on which worker finished first. Regions come from the annotation
    file, else are found from the cells (``auto``), else the whole tissue is
    one region (``tissue``). Cells mostly covered by pigment help find the
    regions but are not graded; each region counts them as ``n_pigmented``.
    Tiles that could not be decoded are reported as ``failed_tile_fraction``
    and a ``failed_tiles:<n>`` flag; past the model's
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
    fraction = np.concatenate(
        [r.pigment_fraction if r.pigment_fraction is not None else np.zeros(len(r.cells), np.float32) for r in ordered]
        or [np.zeros(0, np.float32)]
    )
    pigmented = (fraction >= model.pigment.max_cell_fraction) if model.pigment.exclude else np.zeros(len(cells), bool)
    classes = classify(getattr(cells, model.classification.measurement), model.classification.thresholds)
    ds = plan.grid.downsample
    l0_x = (cells.a_x.astype(np.float64) + 0.5) * ds - 0.5
    l0_y = (cells.a_y.astype(np.float64) + 0.5) * ds - 0.5
    flags = plan.flags
    keep = None
    if plan.exclusions:  # no cell in an excluded area counts, whatever the regions
        keep = ~region_membership(as_regions(plan.exclusions), l0_x, l0_y).any(axis=0)
        classes, l0_x, l0_y, cells, pigmented = classes[keep], l0_x[keep], l0_y[keep], cells.take(keep), pigmented[keep]
    # the chunks' outlines as they are (kept rows picked, nothing copied): the slide's outlines are held once
    outlines = concat_outlines([r.outlines for r in ordered if r.outlines is not None], keep=keep, copy=False)
    graded = ~pigmented
    values = getattr(cells, model.classification.measurement)
    score_args = {"mpp_um": plan.mpp_um, "rule": model.positivity, "intervals": model.confidence}
    if plan.regions is None and plan.region_mode == "tissue":
        membership = np.ones((1, len(classes)), dtype=bool)
        region_results: tuple[RegionResult, ...] = (
            score_region(
                "tissue", classes[graded], l0_x[graded], l0_y[graded], values=values[graded],
                area_mm2=plan.tissue_area_mm2, n_pigmented=int(pigmented.sum()), **score_args,
            ),
        )  # fmt: skip
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
        region_results = score_regions(
            regions, classes[graded], l0_x[graded], l0_y[graded], values=values[graded],
            membership=membership[:, graded], n_pigmented=(membership & pigmented).sum(axis=1), **score_args,
        )  # fmt: skip
    excluded = _excluded(plan, ordered, int(pigmented.sum()))
    return SlideResult(
        status="ok",
        flags=flags + tile_flags + _artefact_flags(excluded) + _pigment_flags(plan, model),
        regions=region_results,
        excluded=excluded,
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
            pigmented=pigmented,
            artefacts=_artefact_mask(plan, ordered),
        ),
    )


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

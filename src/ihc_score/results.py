"""Result types: what a scored slide, region and case hold, as plain data.

Outputs read these and nothing of the runner; the runner fills them.
:class:`~ihc_score.score.RegionResult` is made by the scoring step and is
offered here with the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ihc_score.cells import CellTable, Outlines
from ihc_score.score import ClassCounts, RegionResult
from ihc_score.stain import StainVectors
from ihc_score.tissue import ExcludedAreas

__all__ = ["SlideDetail", "SlideResult", "RegionResult", "CaseAssignment", "CaseResult"]


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
        small integers, :class:`~ihc_score.cells.traced_outlines.OutlineParts`;
        ``take(rows).cell_xy`` gives float64 level-0 px of those rows).
    tissue : ndarray of bool
        Tissue mask at ``tissue_downsample`` level-0 px per pixel.
    exclusions : tuple of str
        WKT (level-0 px) of the annotation file's excluded areas.
    pigmented : ndarray of bool or None
        Cells mostly covered by pigment: not graded (their ``classes`` entry is
        what the DAB channel alone would give, for pictures only).
    artefacts : ndarray of uint8 or None
        Artefact kind of each tissue-mask pixel (:data:`ihc_score.tissue.excluded.ARTEFACT_KINDS`, 0 = none).
    cell_type : ndarray of int8 or None
        Each cell's type (index into :data:`ihc_score.score.CELL_TYPES`) when the model has a cell-type step.
    cell_type_p : ndarray of float32 or None
        The probability the cell-type model gives each cell's type (0-1), beside ``cell_type``.
    left_out : ndarray of bool or None
        Cells of a type the model does not score (counted apart, not graded).
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
    cell_type: np.ndarray | None = None
    left_out: np.ndarray | None = None
    cell_type_p: np.ndarray | None = None

    @property
    def shown_classes(self) -> np.ndarray:
        """Each cell's class 0-3 as shown in pictures and exports, or 4 for a cell left ungraded for pigment."""
        classes = np.asarray(self.classes, np.int64)
        return classes if self.pigmented is None else np.where(self.pigmented, 4, classes)

    @property
    def shown_categories(self) -> np.ndarray:
        """:attr:`shown_classes`, with 5 for a cell of a type the model does not score (whatever its pigment)."""
        shown = self.shown_classes
        return shown if self.left_out is None else np.where(self.left_out, 5, shown)


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


@dataclass(frozen=True)
class CaseAssignment:
    """The case of one slide, the metastasis label the manifest gives it, and how it was found."""

    case: str
    metastasis: str = ""
    source: str = "file name"
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseResult:
    """Aggregate of one case.

    Attributes
    ----------
    counts : ClassCounts
        Cells of all the case's metastases together (a cell in two
        overlapping regions counts twice, as it does for each region).
    max_h_score : float
        Highest metastasis H-score (NaN without scored metastasis).
    call, reason : str
        Case call by the model's case rule and why.
    metastasis_calls : tuple of str
        ``slide/region=call`` for every metastasis, sorted.
    metastases : tuple of (str, RegionResult)
        Every scored metastasis of the case with its slide, sorted.
    """

    case: str
    n_slides: int
    n_failed_slides: int
    n_metastases: int
    counts: ClassCounts
    max_h_score: float
    call: str
    reason: str
    metastasis_calls: tuple[str, ...]
    metastases: tuple[tuple[str, RegionResult], ...] = ()

"""Scores from cells: classes, counts, H-score, Allred, intervals and calls, per region.

Each cell is 0 / 1+ / 2+ / 3+ from one measurement against increasing
thresholds (``>=``); a region's result is additive counts
(:class:`ClassCounts`), from which the H-score, percent positive, Allred
score, block-bootstrap intervals and the call are derived once.
"""

from ihc_score.score.cell_type_fit import (
    MAX_STAIN_GAP,
    MIN_CELLS_PER_TYPE,
    fit_cell_types,
    match_points,
    stain_independence,
)
from ihc_score.score.cell_types import (
    CELL_TYPES,
    FEATURE_SETS,
    NON_TUMOUR_TYPES,
    PACKAGED_CELL_TYPES_PATH,
    CellTypeModel,
    CellTypeParams,
    cell_type_features,
    cell_type_model_json,
    load_cell_type_model,
    predict_cell_types,
    resolve_cell_type_model,
    stain_check_warning,
)
from ihc_score.score.classes import (
    CLASS_LABELS,
    Call,
    CellClass,
    ClassCounts,
    ClassifyParams,
    PositivityRule,
    allred_intensity_score,
    allred_proportion_score,
    call_region,
    classify,
)
from ihc_score.score.intervals import Interval, IntervalParams, block_counts, bootstrap_intervals
from ihc_score.score.region_scores import HISTOGRAM_EDGES, RegionResult, score_region, score_regions
from ihc_score.score.selection import left_out_by_type, outside_exclusions, pigmented_cells, with_left_out

__all__ = [
    "IntervalParams", "Interval", "block_counts", "bootstrap_intervals", "CellClass", "CLASS_LABELS",
    "ClassifyParams", "PositivityRule", "ClassCounts", "Call", "classify", "allred_proportion_score",
    "allred_intensity_score", "call_region", "outside_exclusions", "pigmented_cells", "RegionResult",
    "HISTOGRAM_EDGES", "score_region", "score_regions", "CELL_TYPES", "NON_TUMOUR_TYPES", "PACKAGED_CELL_TYPES_PATH",
    "CellTypeModel", "CellTypeParams", "cell_type_features", "load_cell_type_model", "predict_cell_types",
    "resolve_cell_type_model", "MIN_CELLS_PER_TYPE", "cell_type_model_json", "fit_cell_types", "match_points",
    "left_out_by_type", "with_left_out", "FEATURE_SETS", "MAX_STAIN_GAP", "stain_independence",
    "stain_check_warning",
]

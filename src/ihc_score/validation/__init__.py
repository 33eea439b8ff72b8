"""Validation of ihc-score in a laboratory: self-test, agreement, calibration, monitoring, ROI and model changes.

These commands read a results folder written by ``ihc-score score`` (its
tables, ``run.json`` and per-cell results) and never the slides, except the
self-test, which scores the reference slides shipped with the package.
"""

from ihc_score.validation.agreement import (
    CALLS,
    Estimate,
    Iccs,
    bland_altman,
    call_agreement,
    cohen_kappa,
    fleiss_kappa,
    intraclass,
    lin_ccc,
    numeric_agreement,
)
from ihc_score.validation.agreement_pairs import parse_call, read_reference
from ihc_score.validation.agreement_raters import call_spread, numeric_spread
from ihc_score.validation.agreement_report import (
    AGREEMENT_HTML,
    AGREEMENT_JSON,
    agreement_report,
    summary_lines,
    write_agreement,
)
from ihc_score.validation.control import ControlReading, ControlStatus, MonitorOptions, read_control, record_control
from ihc_score.validation.control_page import control_summary, status_line, write_control_outputs
from ihc_score.validation.history import ControlRun, open_history
from ihc_score.validation.model_changes import CaseChange, ModelComparison, RegionChange, compare_models
from ihc_score.validation.outcomes import (
    MIN_EVENTS,
    BootstrapParams,
    OutcomeData,
    OutcomeTable,
    case_markers,
    match_outcomes,
    place_cutoff,
    read_outcomes,
    require_enough_events,
)
from ihc_score.validation.outcomes_binary import BinaryCalibration, CutoffCriterion, calibrate_binary, delong_auc
from ihc_score.validation.outcomes_page import calibration_document, outcome_record, write_calibration_page
from ihc_score.validation.outcomes_survival import (
    KaplanMeierCurve,
    SurvivalCalibration,
    calibrate_survival,
    lausen_schumacher_p,
    logrank_statistics,
)
from ihc_score.validation.page import figure_svg, html_table, new_figure, write_page
from ihc_score.validation.results_dir import model_of_results, number, read_run, read_table
from ihc_score.validation.roi_stability import RoiMoves, RoiStability, region_stability, results_roi_stability
from ihc_score.validation.selftest import (
    REFERENCE_DIR,
    SelftestOutcome,
    check_reference,
    read_expected,
    run_selftest,
    score_reference_slides,
    write_selftest,
)
from ihc_score.validation.selftest_checks import TOLERANCES, Check, check_results, check_value, truth_call
from ihc_score.validation.stored_cells import ScoringRule, StoredCells, read_stored_cells, rescore_region
from ihc_score.validation.westgard import (
    REJECTION_RULES,
    RULES,
    WARNING_RULES,
    ControlLimits,
    baseline_limits,
    latest_violations,
    violations_by_run,
    z_scores,
)

__all__ = [
    "CALLS", "Estimate", "Iccs", "intraclass", "lin_ccc", "bland_altman", "cohen_kappa", "fleiss_kappa",
    "numeric_agreement", "call_agreement", "numeric_spread", "call_spread", "parse_call", "read_reference",
    "AGREEMENT_JSON", "AGREEMENT_HTML", "agreement_report", "write_agreement", "summary_lines",
    "read_table", "read_run", "number", "model_of_results", "new_figure", "figure_svg", "html_table", "write_page",
    "RULES", "WARNING_RULES", "REJECTION_RULES", "ControlLimits", "baseline_limits", "z_scores", "violations_by_run",
    "latest_violations", "ControlRun", "open_history", "ControlReading", "MonitorOptions", "ControlStatus",
    "read_control", "record_control", "status_line", "control_summary", "write_control_outputs",
    "RegionChange", "CaseChange", "ModelComparison", "compare_models", "RoiMoves", "RoiStability",
    "region_stability", "results_roi_stability", "ScoringRule", "StoredCells", "read_stored_cells", "rescore_region",
    "MIN_EVENTS", "BootstrapParams", "OutcomeData", "OutcomeTable", "case_markers", "read_outcomes", "match_outcomes",
    "require_enough_events", "place_cutoff", "CutoffCriterion", "BinaryCalibration", "delong_auc", "calibrate_binary",
    "KaplanMeierCurve", "SurvivalCalibration", "logrank_statistics", "lausen_schumacher_p", "calibrate_survival",
    "calibration_document", "outcome_record", "write_calibration_page",
    "REFERENCE_DIR", "SelftestOutcome", "read_expected", "check_reference", "score_reference_slides", "run_selftest",
    "write_selftest", "TOLERANCES", "Check", "check_value", "check_results", "truth_call",
]

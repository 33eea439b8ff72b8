"""Validation of ihc-score in a laboratory: self-test, agreement, calibration, monitoring, ROI and model changes.

These commands read a results folder written by ``ihc-score score`` (its
tables, ``run.json`` and per-cell results) and never the slides, except the
self-test, which scores the reference slides shipped with the package.
"""

from ihc_score.validation.page import figure_svg, html_table, new_figure, write_page
from ihc_score.validation.results_dir import model_of_results, number, read_run, read_table

__all__ = [
    "read_table", "read_run", "number", "model_of_results", "new_figure", "figure_svg", "html_table", "write_page",
]

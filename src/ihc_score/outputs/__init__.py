"""Outputs written from results: CSV tables, QuPath GeoJSON, cell tables, QC pictures, the report.

Every writer reads result types (:mod:`ihc_score.results`), never the
runner, and writes atomically.
"""

from ihc_score.outputs.cell_results import (
    CELL_RESULTS_FORMAT,
    PIGMENT_CODE,
    CellResults,
    read_cell_results,
    read_cell_results_meta,
    write_cell_results,
)
from ihc_score.outputs.cells_csv import CELL_COLUMNS, write_cells_csv
from ihc_score.outputs.detections import CELL_MEASUREMENTS, write_detections_geojson
from ihc_score.outputs.palette import (
    CLASS_COLOURS_HEX,
    CLASS_COLOURS_RGB,
    CLASS_NAMES,
    EXCLUSION_COLOUR_HEX,
    EXCLUSION_COLOUR_RGB,
    PIGMENT_COLOUR_HEX,
    PIGMENT_COLOUR_RGB,
    REGION_COLOUR_HEX,
    REGION_COLOUR_RGB,
    TISSUE_COLOUR_HEX,
    TISSUE_COLOUR_RGB,
    hex_to_rgb,
)
from ihc_score.outputs.qc import QcLayout, legend_counts, slide_qc_image, write_slide_qc
from ihc_score.outputs.qc_windows import ZoomWindow, zoom_windows
from ihc_score.outputs.qc_zooms import ZoomCrop, render_zoom, write_zooms, zoom_file_names
from ihc_score.outputs.report import REPORT_NAME, build_report
from ihc_score.outputs.report_text import RESEARCH_USE, report_text
from ihc_score.outputs.tables import (
    CASE_COLUMNS,
    METASTASIS_COLUMNS,
    SLIDE_COLUMNS,
    case_rows,
    metastasis_rows,
    slide_note,
    slide_rows,
    write_csv,
    write_json,
)

__all__ = [
    "CLASS_NAMES", "CLASS_COLOURS_HEX", "CLASS_COLOURS_RGB", "REGION_COLOUR_HEX", "REGION_COLOUR_RGB",
    "TISSUE_COLOUR_HEX", "TISSUE_COLOUR_RGB", "EXCLUSION_COLOUR_HEX", "EXCLUSION_COLOUR_RGB",
    "PIGMENT_COLOUR_HEX", "PIGMENT_COLOUR_RGB", "hex_to_rgb", "SLIDE_COLUMNS", "METASTASIS_COLUMNS",
    "CASE_COLUMNS", "case_rows", "slide_rows", "slide_note", "metastasis_rows", "write_csv", "write_json",
    "CELL_MEASUREMENTS", "write_detections_geojson", "CELL_COLUMNS", "write_cells_csv", "ZoomWindow",
    "zoom_windows", "ZoomCrop", "write_zooms", "render_zoom", "zoom_file_names", "QcLayout", "write_slide_qc",
    "slide_qc_image", "legend_counts", "REPORT_NAME", "build_report", "report_text", "RESEARCH_USE",
    "CELL_RESULTS_FORMAT", "PIGMENT_CODE", "CellResults", "read_cell_results", "read_cell_results_meta",
    "write_cell_results",
]

"""Running the pipeline: plan, tile tasks, slide scoring, executors, store and batch.

:func:`plan_slide` opens a slide and finds its tissue, regions, stains and
tiles; :func:`score_tiles` scores a chunk of tiles from picklable arguments
in any worker; :func:`finish_slide` gathers the chunks into a
:class:`~ihc_score.results.SlideResult`; :func:`score_slide` chains them in
this process. :func:`run_batch` scores many slides on a local pool or a Dask
cluster, reuses stored results and writes the outputs.
:func:`calibrate_scanner` fits a new scanner's OD factor from one section
scanned on it and on the model's scanner.
:func:`watch_inbox` scores the slides a scanner writes into a folder once
they have settled (:mod:`ihc_score.run.settle`).
"""

from ihc_score.run.batch import BatchSummary, Progress, run_batch
from ihc_score.run.cases import aggregate_cases, assign_case, compile_case_pattern, read_manifest
from ihc_score.run.cell_training import (
    DEFAULT_TYPE_NAMES,
    LabelledSlide,
    labelled_cells,
    train_cell_types,
    type_mapping,
)
from ihc_score.run.detections_export import export_detections
from ihc_score.run.executors import InlineExecutor, make_executor
from ihc_score.run.lane_pool import LanePool, next_call
from ihc_score.run.options import BatchOptions
from ihc_score.run.pipeline import failed_result, finish_slide, score_slide
from ihc_score.run.plan import REGION_MODES, SlidePlan, as_regions, plan_slide
from ihc_score.run.provenance import environment, run_record
from ihc_score.run.pseudonym import Pseudonymizer, load_key_file, save_key_file
from ihc_score.run.scanner_calibration import ScannerCalibration, calibrate_scanner, tissue_concentrations
from ihc_score.run.settle import (
    Sighting,
    Signature,
    changed_slides,
    observe,
    settled,
    signature,
    slide_members,
    update_sightings,
)
from ihc_score.run.slide_outputs import write_slide_outputs
from ihc_score.run.store import STORE_FORMAT, file_fingerprint, load_result, save_result, store_path, stored_results
from ihc_score.run.tile_scoring import TileResult, TileTask, checks_pigment, concat_outlines, score_tiles, tile_tasks
from ihc_score.run.tiles import Tile, TileGrid, in_core, tile_grid
from ihc_score.run.watch import (
    WATCH_LOCK,
    StopRequest,
    WatchRound,
    WatchSettings,
    check_results_folder,
    stop_on_signals,
    watch_inbox,
    watch_lock,
)

__all__ = [
    "Signature", "Sighting", "slide_members", "signature", "observe", "update_sightings", "settled", "changed_slides",
    "WATCH_LOCK", "WatchSettings", "WatchRound", "StopRequest", "stop_on_signals", "watch_lock", "check_results_folder",
    "watch_inbox",
    "Tile", "TileGrid", "tile_grid", "in_core", "REGION_MODES", "SlidePlan", "plan_slide", "as_regions",
    "TileTask", "TileResult", "tile_tasks", "score_tiles", "concat_outlines", "checks_pigment",
    "finish_slide", "score_slide", "failed_result", "read_manifest", "compile_case_pattern", "assign_case",
    "aggregate_cases", "STORE_FORMAT", "file_fingerprint", "store_path", "save_result", "load_result", "stored_results",
    "Pseudonymizer", "load_key_file", "save_key_file", "BatchOptions", "run_record", "environment", "LanePool",
    "next_call",
    "InlineExecutor", "make_executor", "write_slide_outputs", "BatchSummary", "Progress", "run_batch",
    "ScannerCalibration", "calibrate_scanner", "tissue_concentrations", "DEFAULT_TYPE_NAMES", "LabelledSlide",
    "labelled_cells", "train_cell_types", "type_mapping", "export_detections",
]

"""Per-slide evidence written as each slide finishes: per-cell results, detections, cell table, QC pictures.

Written from the slide's per-cell detail (:class:`~ihc_score.results.SlideDetail`)
while it is in memory; the stored result that a rerun reuses does not keep
that detail, so these files are written once, when the slide is scored.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ihc_score.errors import IhcScoreError, OutputError
from ihc_score.model import Model
from ihc_score.results import SlideResult

if TYPE_CHECKING:
    from ihc_score.run.options import BatchOptions

__all__ = ["write_slide_outputs"]


def write_slide_outputs(
    out_dir: Path, result: SlideResult, stem: str, options: BatchOptions, model: Model
) -> SlideResult:
    """Write a scored slide's detections, cell table and QC pictures.

    Parameters
    ----------
    out_dir : Path
        Batch output folder.
    result : SlideResult
        A scored slide with its ``detail``.
    stem : str
        Safe, unique file stem of the slide in this batch.
    options : BatchOptions
    model : Model
        Named in the pictures; its graded measurement ranks the zoom windows.

    Returns
    -------
    SlideResult
        ``result`` with the paths of its QC pictures (relative to
        ``out_dir``), or a ``qc_failed`` flag when the slide could not be read
        again for them.

    Raises
    ------
    OutputError
        A file cannot be written (permissions, full disk): the batch stops.
    """
    from ihc_score.outputs import write_cell_results, write_cells_csv, write_detections_geojson

    if result.detail is None:
        return result
    # The QC pictures (OpenCV drawing and slide reads, mostly outside the
    # GIL) are drawn on a thread while this one formats the detections.
    # (Leaving the block waits for the pictures, also after an error here.)
    with ThreadPoolExecutor(max_workers=1) as pool:
        qc = pool.submit(_write_qc, out_dir, result, stem, model) if options.qc else None
        if options.detections != "none":
            gz = options.detections == "geojson.gz"
            write_detections_geojson(out_dir / "detections" / f"{stem}.{options.detections}", result, gzip=gz)
        if options.cell_results:
            scored = model.cell_types.scored if model.cell_type_model is not None else None
            write_cell_results(out_dir / "cells" / f"{stem}.parquet", result, scored_types=scored)
        if options.cells_csv:
            write_cells_csv(out_dir / "cells" / f"{stem}.csv.gz", result, gzip=True)
    return result if qc is None else qc.result()


def _write_qc(out_dir: Path, result: SlideResult, stem: str, model: Model) -> SlideResult:
    """The QC picture and zooms of a slide: ``result`` with their paths, or flagged ``qc_failed``."""
    from ihc_score.outputs import write_slide_qc, write_zooms
    from ihc_score.slide import open_slide

    try:
        with open_slide(result.path, mpp_option_um=result.mpp_um) as slide:
            write_slide_qc(out_dir / "qc" / f"{stem}.png", result, slide, model_id=model.id)
            zooms = write_zooms(out_dir / "qc", result, slide, stem=stem, measurement=model.classification.measurement)
        return replace(result, qc_picture=f"qc/{stem}.png", qc_zooms=tuple(f"qc/{p.name}" for p in zooms))
    except OutputError:
        raise
    except IhcScoreError as err:
        return replace(result, flags=result.flags + (f"qc_failed:{str(err)[:80]}",))

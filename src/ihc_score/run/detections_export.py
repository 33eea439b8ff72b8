"""QuPath detections written after scoring, from a results folder's per-cell results and stored slide results.

``ihc-score score`` keeps every cell in ``cells/<slide>.parquet`` and each
slide's regions in ``store/``; from these ``ihc-score detections`` writes
``detections/<slide>.geojson`` (QuPath: File > Import objects) for the
slides a pathologist wants to look at, without reading the slides or
scoring again. The cells' outlines are the ray polygons kept in the per-cell
results (:mod:`ihc_score.cells.outline_rays`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ihc_score.errors import OutputError
from ihc_score.fileio import output_lock
from ihc_score.outputs import read_cell_results, read_cell_results_meta, write_detections_geojson
from ihc_score.run.store import stored_results

__all__ = ["export_detections"]


def export_detections(
    out_dir: str | Path, *, slides: Sequence[str] = (), gz: bool = False
) -> list[tuple[str, Path, int]]:
    """Write the detections GeoJSON of a results folder's scored slides (all, or those named).

    Parameters
    ----------
    out_dir : path
        A results folder written by ``ihc-score score`` (with per-cell results).
    slides : sequence of str
        Slide names as in ``slides.csv`` (with or without their ending); empty: every scored slide.
    gz : bool
        Write ``.geojson.gz``.

    Returns
    -------
    list of (str, Path, int)
        Each slide written, its file and its number of cells.

    Raises
    ------
    OutputError
        Not a results folder, a named slide is not among its scored slides, a
        slide's per-cell results are missing or unreadable, or a file cannot
        be written (files already written stay).
    """
    out_dir = Path(out_dir)
    scored = _scored_slides(out_dir)
    wanted = set(slides)
    unknown = [s for s in wanted if s not in scored and not any(Path(n).stem == s for n in scored)]
    if unknown:
        raise OutputError(f"{out_dir}: no scored slide named {', '.join(sorted(unknown))} in slides.csv")
    files = {}
    for path in sorted((out_dir / "cells").glob("*.parquet")):
        try:
            files[read_cell_results_meta(path)["slide"]] = path  # the footer only: the cells are read once, below
        except (OSError, ValueError, KeyError) as err:
            raise OutputError(f"{path}: {err}; score that slide again into a new folder") from None
    stored = stored_results(out_dir)
    written = []
    with output_lock(out_dir):
        for name in sorted(scored):
            if wanted and name not in wanted and Path(name).stem not in wanted:
                continue
            result = stored.get(name)
            if name not in files or result is None:
                raise OutputError(f"{out_dir}: no per-cell results or stored result for slide {name} (scored with "
                                  "--no-cell-results?); score it again into a new folder to get its detections")
            cells = read_cell_results(files[name])
            result = replace(result, detail=cells.detail([g.name for g in result.regions]))
            target = out_dir / "detections" / f"{files[name].stem}.geojson{'.gz' if gz else ''}"
            write_detections_geojson(target, result, gzip=gz)
            written.append((name, target, len(cells.l0_x)))
    return written


def _scored_slides(out_dir: Path) -> list[str]:
    """Names of the slides ``slides.csv`` says were scored (status ok)."""
    try:
        with open(out_dir / "slides.csv", newline="", encoding="utf-8") as fh:
            return [row["slide"] for row in csv.DictReader(fh) if row.get("status") == "ok"]
    except FileNotFoundError:
        raise OutputError(f"{out_dir} is not an ihc-score results folder (slides.csv is missing)") from None
    except (OSError, KeyError, csv.Error) as err:
        raise OutputError(f"cannot read {out_dir / 'slides.csv'}: {err}") from None

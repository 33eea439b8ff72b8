"""Write results: atomic files, the CSV tables and ``run.json``.

Every file is written to a temporary file in the same folder and renamed over
the target, so a reader (or a rerun after a crash) sees either the old file or
the new one, never half of one. Rows are sorted and floats formatted with a
fixed number of decimals, so the same input gives byte-identical CSVs.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ihc_score.fileio import atomic_write
from ihc_score.model import Model
from ihc_score.outputs.report_text import report_text
from ihc_score.results import CaseAssignment, CaseResult, SlideResult
from ihc_score.score import NON_TUMOUR_TYPES, RegionResult, allred_intensity_score, allred_proportion_score

__all__ = [
    "SLIDE_COLUMNS",
    "METASTASIS_COLUMNS",
    "CASE_COLUMNS",
    "case_rows",
    "slide_rows",
    "slide_note",
    "metastasis_rows",
    "write_csv",
    "write_json",
]

SLIDE_COLUMNS = (
    "slide", "case", "case_source", "status", "error", "note", "annotation_file", "n_regions", "vendor", "mpp_um",
    "mpp_source", "analysis_mpp_um", "width_px", "height_px", "tissue_area_mm2", "n_tiles", "failed_tile_fraction",
    "n_cells", "n_pigmented", "ink_area_mm2", "fold_area_mm2", "bubble_area_mm2", "blur_area_mm2", "pigment_area_mm2",
    "stain_source",
    "stain_h_r", "stain_h_g", "stain_h_b", "stain_dab_r", "stain_dab_g", "stain_dab_b",
    "background_r", "background_g", "background_b", "qc_flags", "qc_picture",
)  # fmt: skip

METASTASIS_COLUMNS = (
    "case", "slide", "region", "metastasis", "region_source", "region_area_mm2", "n_cells", "n_0", "n_1plus",
    "n_2plus", "n_3plus", "n_pigmented", "scored_types", "n_lymphocyte", "n_neutrophil", "n_macrophage", "n_other",
    "left_out_h_score", "left_out_pct_positive", "h_score", "h_score_low", "h_score_high", "pct_positive",
    "pct_positive_low", "pct_positive_high", "allred", "allred_proportion", "allred_intensity", "call", "call_reason",
    "region_flags", "qc_zoom", "metric", "cutoff", "borderline", "min_cells", "compartment", "statistic",
    "thresholds", "model_id", "model_version", "model_sha256", "model_overrides",
)  # fmt: skip

CASE_COLUMNS = (
    "case", "n_slides", "n_failed_slides", "n_metastases", "n_cells", "n_0", "n_1plus", "n_2plus", "n_3plus",
    "pooled_h_score", "pooled_pct_positive", "max_metastasis_h_score", "call", "call_reason", "metastasis_calls",
    "report_text", "case_rule", "model_id", "model_version", "model_sha256", "model_overrides",
)  # fmt: skip


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write rows (dicts keyed by column) as CSV with ``\\n`` line ends, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    atomic_write(path, buf.getvalue().encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write JSON (sorted keys, indented, UTF-8) atomically."""
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))


def _cell(value: Any) -> str:
    # Floats arrive already formatted by _fixed, so every run writes the same text.
    return "" if value is None else str(value)


def _fixed(value: float, decimals: int) -> float | str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{decimals}f}"


def slide_rows(results: Sequence[tuple[CaseAssignment, SlideResult]]) -> list[dict[str, Any]]:
    """Rows of ``slides.csv``, one per slide, sorted by slide then case.

    Parameters
    ----------
    results : sequence of (CaseAssignment, SlideResult)
    """
    rows = []
    for case, r in results:
        st = r.stains
        row: dict[str, Any] = {
            "slide": r.slide,
            "case": case.case,
            "case_source": case.source,
            "status": r.status,
            "error": r.error,
            "note": slide_note(r.flags) if r.status == "ok" else "",
            "annotation_file": r.annotation_file,
            "n_regions": len(r.regions) if r.status != "failed" else "",
            "vendor": r.vendor,
            "mpp_um": _fixed(r.mpp_um, 5),
            "mpp_source": r.mpp_source,
            "analysis_mpp_um": _fixed(r.analysis_mpp_um, 5),
            "width_px": r.l0_size[0] if r.status != "failed" else "",
            "height_px": r.l0_size[1] if r.status != "failed" else "",
            "tissue_area_mm2": _fixed(r.tissue_area_mm2, 4),
            "n_tiles": r.n_tiles if r.status != "failed" else "",
            "failed_tile_fraction": _fixed(r.failed_tile_fraction, 4) if r.status != "failed" else "",
            "n_cells": sum(g.counts.n for g in r.regions) if r.status == "ok" else "",
            "n_pigmented": r.excluded.n_pigmented if r.status == "ok" else "",
            "stain_source": st.source if st else "",
            "qc_flags": ";".join(sorted(set(r.flags) | set(case.flags))),
            "qc_picture": r.qc_picture,
        }
        for column, area in (
            ("ink_area_mm2", r.excluded.ink_mm2),
            ("fold_area_mm2", r.excluded.fold_mm2),
            ("bubble_area_mm2", r.excluded.bubble_mm2),
            ("blur_area_mm2", r.excluded.blur_mm2),
            ("pigment_area_mm2", r.excluded.pigment_mm2),
        ):
            row[column] = _fixed(area, 4) if r.status == "ok" else ""
        for prefix, vec in (("stain_h", st.hematoxylin if st else None), ("stain_dab", st.dab if st else None)):
            for ch, v in zip("rgb", vec or ("", "", "")):
                row[f"{prefix}_{ch}"] = _fixed(v, 5) if vec else ""
        for ch, v in zip("rgb", st.background if st else ("", "", "")):
            row[f"background_{ch}"] = _fixed(v, 1) if st else ""
        rows.append(row)
    return sorted(rows, key=lambda r: (r["slide"], r["case"]))


#: QC flags that change what a slide's numbers mean, in words for the reader of ``slides.csv`` and the console.
FLAG_NOTES = {
    "no_metastasis_found": "no metastasis found automatically, so nothing on this slide was scored; "
    "--regions tissue scores all its tissue",
    "scanner_not_calibrated": "the model was calibrated for another scanner, so its intensities may not hold "
    "here; calibrate this scanner with ihc-score calibrate-scanner, or score with its own model",
    "soft_focus": "soft all over (a camera field or a soft scan): only blocks much softer than the rest of the "
    "slide were left out as out of focus",
}


def slide_note(flags: Iterable[str]) -> str:
    """A one-line note in words on the flags of :data:`FLAG_NOTES` among ``flags`` ("" when none)."""
    return "; ".join(FLAG_NOTES[f] for f in sorted(set(flags)) if f in FLAG_NOTES)


def _model_columns(model: Model) -> dict[str, Any]:
    return {
        "model_id": model.id,
        "model_version": model.version,
        "model_sha256": model.sha256,
        "model_overrides": ";".join(f"{k}={v}" for k, v in model.overrides),
    }


def metastasis_rows(results: Sequence[tuple[CaseAssignment, SlideResult]], model: Model) -> list[dict[str, Any]]:
    """Rows of ``metastases.csv``: one per scored region of every slide that was scored."""
    cls, pos = model.classification, model.positivity
    rows = []
    for case, r in results:
        if r.status != "ok":
            continue
        for i, g in enumerate(r.regions):
            c = g.counts
            rows.append(
                {
                    "case": case.case,
                    "slide": r.slide,
                    "region": g.name,
                    "metastasis": case.metastasis,
                    "region_source": g.source,
                    "region_area_mm2": _fixed(g.area_mm2, 4),
                    "n_cells": c.n,
                    "n_0": c.n0,
                    "n_1plus": c.n1,
                    "n_2plus": c.n2,
                    "n_3plus": c.n3,
                    "n_pigmented": g.n_pigmented,
                    **_left_out_columns(g, model),
                    "h_score": _fixed(c.h_score, 2),
                    "h_score_low": _fixed(g.h_interval.low, 2),
                    "h_score_high": _fixed(g.h_interval.high, 2),
                    "pct_positive": _fixed(c.pct_positive, 2),
                    "pct_positive_low": _fixed(g.pct_interval.low, 2),
                    "pct_positive_high": _fixed(g.pct_interval.high, 2),
                    "allred": c.allred,
                    "allred_proportion": allred_proportion_score(c),
                    "allred_intensity": allred_intensity_score(c),
                    "call": g.call.call,
                    "call_reason": g.call.reason,
                    "region_flags": ";".join(sorted(set(g.flags))),
                    "qc_zoom": r.qc_zooms[i] if i < len(r.qc_zooms) else "",
                    "metric": pos.metric,
                    "cutoff": _fixed(pos.cutoff, 2),
                    "borderline": _fixed(pos.borderline, 2),
                    "min_cells": pos.min_cells,
                    "compartment": cls.compartment,
                    "statistic": cls.statistic,
                    "thresholds": ";".join(f"{t:g}" for t in cls.thresholds),
                    **_model_columns(model),
                }
            )
    return sorted(rows, key=lambda r: (r["case"], r["slide"], r["region"]))


def _left_out_columns(g: RegionResult, model: Model) -> dict[str, Any]:
    """The cell-type step's columns of a region: types scored, cells of each type left out, and their own scores.

    Empty without a cell-type step (every cell scored) or on a result stored before it.
    """
    typed = model.cell_type_model is not None and g.left_out_counts is not None
    left = dict(g.left_out)
    out: dict[str, Any] = {"scored_types": ";".join(model.cell_types.scored) if typed else ""}
    for t in NON_TUMOUR_TYPES:
        out[f"n_{t}"] = left.get(t, 0) if typed else ""
    lc = g.left_out_counts
    out["left_out_h_score"] = _fixed(lc.h_score, 2) if typed and lc.n else ""
    out["left_out_pct_positive"] = _fixed(lc.pct_positive, 2) if typed and lc.n else ""
    return out


def case_rows(cases: Sequence[CaseResult], model: Model) -> list[dict[str, Any]]:
    """Rows of ``cases.csv``, one per case, sorted by case."""
    rows = []
    for c in cases:
        k = c.counts
        rows.append(
            {
                "case": c.case,
                "n_slides": c.n_slides,
                "n_failed_slides": c.n_failed_slides,
                "n_metastases": c.n_metastases,
                "n_cells": k.n,
                "n_0": k.n0,
                "n_1plus": k.n1,
                "n_2plus": k.n2,
                "n_3plus": k.n3,
                "pooled_h_score": _fixed(k.h_score, 2),
                "pooled_pct_positive": _fixed(k.pct_positive, 2),
                "max_metastasis_h_score": _fixed(c.max_h_score, 2),
                "call": c.call,
                "call_reason": c.reason,
                "metastasis_calls": ";".join(c.metastasis_calls),
                "report_text": report_text(c, model),
                "case_rule": model.case_rule,
                **_model_columns(model),
            }
        )
    return sorted(rows, key=lambda r: r["case"])

"""Score regions again from the cells a results folder kept, without detecting again.

A results folder scored with ``--cells`` keeps every cell's measurements in
``cells/<slide>.csv.gz``, and its ``store/`` keeps each region's outline.
From these alone a region can be scored under other class thresholds or
cut-off (``ihc-score compare-models``) or with a moved outline
(``ihc-score roi-stability``), by the same functions the scoring uses:
:func:`ihc_score.score.classify`, :func:`ihc_score.score.score_region`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ihc_score.errors import ValidationInputError
from ihc_score.fileio import safe_name
from ihc_score.model import Model
from ihc_score.outputs import PIGMENT_CODE, read_cell_results
from ihc_score.regions import Region, region_membership
from ihc_score.results import SlideResult
from ihc_score.run import stored_results
from ihc_score.score import (
    CELL_TYPES,
    ClassifyParams,
    IntervalParams,
    PositivityRule,
    RegionResult,
    classify,
    score_region,
)
from ihc_score.slide import case_of
from ihc_score.validation.results_dir import read_table

__all__ = ["ScoringRule", "StoredCells", "read_stored_cells", "stored_slides", "stored_region", "rescore_region"]


@dataclass(frozen=True)
class ScoringRule:
    """What turns measured cells into a region's call: the parts of a model that act after detection.

    Attributes
    ----------
    classification : ClassifyParams
        Compartment, statistic and class thresholds (DAB OD).
    positivity : PositivityRule
    confidence : IntervalParams
    scored_types : tuple of str or None
        Cell types counted (None: every cell, the model has no cell-type step).
    """

    classification: ClassifyParams
    positivity: PositivityRule
    confidence: IntervalParams
    scored_types: tuple[str, ...] | None = None

    @classmethod
    def of_model(cls, model: Model) -> ScoringRule:
        scored = model.cell_types.scored if model.cell_type_model is not None else None
        return cls(model.classification, model.positivity, model.confidence, scored)

    @classmethod
    def of_parameters(cls, parameters: Mapping[str, Any]) -> ScoringRule:
        """The rule of a model's resolved parameters as ``run.json`` records them (``model.parameters``)."""
        try:
            c = dict(parameters["classification"])
            c["thresholds"] = tuple(c["thresholds"])
            typer = parameters.get("cell_types") or {}
            scored = tuple(typer["scored"]) if typer.get("model") else None
            return cls(ClassifyParams(**c), PositivityRule(**parameters["positivity"]),
                       IntervalParams(**parameters["confidence"]), scored)
        except (KeyError, TypeError, ValueError) as err:
            raise ValidationInputError(f"run.json: the model's parameters are incomplete ({err}); "
                                       "score the slides again with this version") from None


@dataclass(frozen=True, eq=False)
class StoredCells:
    """The kept cells of one slide.

    Attributes
    ----------
    l0_x, l0_y : ndarray of float64
        Centroids, level-0 px.
    measurements : dict of str to ndarray
        DAB OD columns (``dab_cell_mean``, ...), NaN where not measured.
    pigmented : ndarray of bool
        Cells left ungraded because pigment covers them.
    cell_type : ndarray of object
        Each cell's type name, "" without a cell-type step.
    """

    l0_x: np.ndarray
    l0_y: np.ndarray
    measurements: dict[str, np.ndarray]
    pigmented: np.ndarray
    cell_type: np.ndarray

    def scored_type(self, rule: ScoringRule) -> np.ndarray:
        """Cells of a type ``rule`` scores (all without a cell-type step); the others are counted apart."""
        if rule.scored_types is None:
            return np.ones(len(self.l0_x), bool)
        return np.isin(self.cell_type, rule.scored_types)


def stored_slides(results_dir: str | Path) -> dict[str, SlideResult]:
    """The scored slides of a results folder (``slides.csv`` status ok) with their stored result, by name.

    Raises
    ------
    ValidationInputError
        A scored slide has no stored result (the ``store/`` folder was removed
        or holds two slides of that name).
    """
    rows = read_table(results_dir, required=("slide", "status"), what="slides")
    stored = stored_results(Path(results_dir))
    out = {}
    for row in rows:
        if row["status"] != "ok":
            continue
        result = stored.get(row["slide"])
        if result is None:
            raise ValidationInputError(
                f"{results_dir}: no single stored result for slide {row['slide']} in store/; score it again "
                "into this folder"
            )
        out[row["slide"]] = result
    return out


def read_stored_cells(results_dir: str | Path, slide: str) -> StoredCells:
    """The cells kept for ``slide`` (its name in the tables): ``cells/<stem>.parquet``, else ``cells/<stem>.csv.gz``.

    Raises
    ------
    ValidationInputError
        The folder kept no cells for the slide (scored with ``--no-cell-results``).
    """
    import pandas as pd

    stem = Path(results_dir) / "cells" / safe_name(case_of(Path(slide)))
    if stem.with_suffix(".parquet").is_file():
        return _from_cell_results(stem.with_suffix(".parquet"), slide)
    path = stem.with_name(stem.name + ".csv.gz")
    if not path.is_file():
        raise ValidationInputError(
            f"{stem.with_suffix('.parquet')}: no cells kept for slide {slide}; score it without --no-cell-results "
            "(and with --roi-margin 100 for roi-stability) into a new folder"
        )
    try:
        table = pd.read_csv(path, dtype={"class": str, "type": str, "regions": str}, keep_default_na=False,
                            na_values={c: [""] for c in ("l0_x", "l0_y")})
    except (OSError, ValueError) as err:
        raise ValidationInputError(f"{path}: unreadable ({err}); score the slide again with --cells") from None
    measurements = {
        c: pd.to_numeric(table[c], errors="coerce").to_numpy(np.float64) for c in table.columns if c.startswith("dab_")
    }
    types = table["type"].to_numpy(object) if "type" in table else np.full(len(table), "", object)
    unknown = set(types) - set(CELL_TYPES) - {""}
    if unknown:
        raise ValidationInputError(f"{path}: unknown cell type(s) {', '.join(sorted(unknown))}")
    return StoredCells(
        l0_x=table["l0_x"].to_numpy(np.float64), l0_y=table["l0_y"].to_numpy(np.float64),
        measurements=measurements, pigmented=(table["class"] == "pigment").to_numpy(bool), cell_type=types,
    )


def _from_cell_results(path: Path, slide: str) -> StoredCells:
    """The kept cells of a per-cell results file."""
    try:
        cells = read_cell_results(path)
    except (OSError, ValueError) as err:
        raise ValidationInputError(f"{err}; score slide {slide} again into a new folder") from None
    types = np.full(len(cells.l0_x), "", object)
    if cells.cell_type is not None:
        types = np.asarray(CELL_TYPES, object)[cells.cell_type]
    measurements = {
        name: np.asarray(getattr(cells.table, name), np.float64)
        for name in ("dab_nucleus_mean", "dab_nucleus_max", "dab_cytoplasm_mean", "dab_cytoplasm_max",
                     "dab_cell_mean", "dab_cell_max")
    }
    return StoredCells(cells.l0_x, cells.l0_y, measurements, cells.classes == PIGMENT_CODE, types)


def stored_region(result: RegionResult) -> Region | None:
    """The outline of a stored region as a :class:`Region` (None for the whole tissue, which has none)."""
    import shapely

    if not result.wkt:
        return None
    return Region(result.name, shapely.from_wkt(result.wkt), result.source if result.source != "tissue" else "auto")


def rescore_region(
    cells: StoredCells, region: Region | None, rule: ScoringRule, *, name: str, source: str, mpp_um: float,
    area_mm2: float, wkt: str = "",
) -> RegionResult:
    """A region's counts, intervals and call from kept cells under ``rule`` (as the scoring makes them).

    Parameters
    ----------
    region : Region or None
        Outline in level-0 px; a cell counts when its centroid is inside.
        None stands for the whole tissue (``--regions tissue``): every cell counts.
    name, source : str
        The region's name and source (``annotation``, ``auto``, ``tissue``), reported as are.
    mpp_um : float
        Level-0 pixel size, um/px (for the interval's tissue blocks).
    area_mm2 : float
        The outline's area, reported as is.
    """
    try:
        values = cells.measurements[rule.classification.measurement]
    except KeyError:
        raise ValidationInputError(f"the kept cells have no {rule.classification.measurement} column") from None
    member = np.isfinite(cells.l0_x) if region is None else region_membership([region], cells.l0_x, cells.l0_y)[0]
    member = member & cells.scored_type(rule)
    inside = member & ~cells.pigmented
    classes = classify(values[inside], rule.classification.thresholds)
    return score_region(
        name, classes, cells.l0_x[inside], cells.l0_y[inside], values=values[inside], mpp_um=mpp_um,
        area_mm2=area_mm2, rule=rule.positivity, intervals=rule.confidence, source=source, wkt=wkt,
        n_pigmented=int(np.count_nonzero(member & cells.pigmented)),
    )

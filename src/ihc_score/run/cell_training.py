"""Teach the cell-type step a department's own tissue: cells labelled in QuPath over slides, into a model file.

Each slide is scored as the scoring model scores it (its cell-type step
off, every cell kept), its cells' features taken over the whole slide
(:func:`ihc_score.score.cell_type_features`), and each labelled point
matched one-to-one to the nearest detected cell within ``match_um``; the
class names map to the cell types (:data:`DEFAULT_TYPE_NAMES`, plus the
user's own). With two slides or more, each slide is also typed by a model
fitted on the others, and those held-out figures go into the file beside
the cells it was fitted on, with the check that the model does not choose
cells by their stain: of the cells labelled tumour, the share typed tumour
in each DAB class (:func:`ihc_score.score.stain_independence`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ihc_score.errors import IhcScoreError
from ihc_score.model import Model
from ihc_score.regions import read_cell_labels
from ihc_score.run.pipeline import score_slide
from ihc_score.score import (
    CELL_TYPES,
    FEATURE_SETS,
    CellTypeModel,
    cell_type_features,
    classify,
    fit_cell_types,
    match_points,
    predict_cell_types,
    stain_independence,
)

__all__ = ["DEFAULT_TYPE_NAMES", "LabelledSlide", "labelled_cells", "type_mapping", "train_cell_types"]

#: QuPath class names (lower case) and the cell type each means; QuPath's own defaults included.
DEFAULT_TYPE_NAMES: dict[str, str] = {
    "tumor": "tumour", "tumour": "tumour", "tumor cell": "tumour", "tumour cell": "tumour", "positive": "tumour",
    "negative": "tumour", "lymphocyte": "lymphocyte", "lymphocytes": "lymphocyte", "immune cells": "lymphocyte",
    "neutrophil": "neutrophil", "neutrophils": "neutrophil", "macrophage": "macrophage", "macrophages": "macrophage",
    "microglia": "macrophage", "stroma": "other", "other": "other", "glia": "other", "endothelium": "other",
}


@dataclass(frozen=True)
class LabelledSlide:
    """The labelled cells of one slide found among its detected cells.

    ``features`` (n, 2 * len(own) + 1), ``types`` (n,) names, ``dab_class``
    (n,) each cell's class (0-3) under the scoring model.
    """

    slide: str
    features: np.ndarray
    types: np.ndarray
    n_points: int
    dab_class: np.ndarray


def type_mapping(pairs: Sequence[str] = ()) -> dict[str, str]:
    """:data:`DEFAULT_TYPE_NAMES` with ``NAME=TYPE`` pairs added (names compared in lower case).

    Raises
    ------
    ValueError
        A pair without ``=`` or naming an unknown type.
    """
    mapping = dict(DEFAULT_TYPE_NAMES)
    for pair in pairs:
        name, sep, kind = pair.partition("=")
        if not sep or not name.strip() or kind.strip() not in CELL_TYPES:
            raise ValueError(f"--map {pair!r}: write QUPATH_CLASS=TYPE with TYPE one of {', '.join(CELL_TYPES)}")
        mapping[name.strip().lower()] = kind.strip()
    return mapping


def _types_of(names: Sequence[str], mapping: Mapping[str, str], where: str) -> np.ndarray:
    unknown = sorted({n for n in names if n.lower() not in mapping})
    if unknown:
        raise IhcScoreError(f"{where}: class names {unknown} mean no cell type; map each with --map NAME=TYPE "
                            f"(types: {', '.join(CELL_TYPES)})")
    return np.array([mapping[n.lower()] for n in names])


def labelled_cells(
    slide: Path, labels: Path, model: Model, mapping: Mapping[str, str], *,
    match_um: float = 5.0, neighbourhood_um: float = 30.0, mpp_option_um: float | None = None,
    own: tuple[str, ...] = FEATURE_SETS["all"],
) -> LabelledSlide:
    """Score ``slide`` with every cell kept and pick the cells its QuPath labels mark.

    Raises
    ------
    IhcScoreError
        The slide cannot be scored, the labels cannot be read or name a class
        without a type, or no label lies within ``match_um`` of a detected cell.
    """
    try:
        points = read_cell_labels(labels)
    except ValueError as err:
        raise IhcScoreError(str(err)) from None
    types = _types_of(points.names, mapping, labels.name)
    every_cell = model.with_overrides(**{"cell_types.model": ""})
    result = score_slide(slide, every_cell, mpp_option_um=mpp_option_um, region_mode="tissue")
    if result.status != "ok" or result.detail is None:
        raise IhcScoreError(f"{slide.name}: {result.error or 'not scored'}")
    d = result.detail
    features = cell_type_features(d.cells, mpp_um=result.analysis_mpp_um, neighbourhood_um=neighbourhood_um, own=own)
    dab_class = classify(getattr(d.cells, model.classification.measurement), model.classification.thresholds)
    p, c = match_points(np.column_stack([points.l0_x, points.l0_y]) * result.mpp_um,
                        np.column_stack([d.l0_x, d.l0_y]) * result.mpp_um, match_um)
    if len(p) == 0:
        raise IhcScoreError(f"{slide.name}: none of its {len(points)} labelled cells lies within {match_um:g} um of a "
                            "detected cell (labels of another slide, or another pixel size?)")
    return LabelledSlide(slide.name, features[c], types[p], len(points), dab_class[c])


def _held_out(
    slides: Sequence[LabelledSlide], neighbourhood_um: float, own: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Each slide typed by a model fitted on the others (two slides or more).

    Returns the precision and recall per type, and the stain check of those
    types (:func:`~ihc_score.score.stain_independence`); ``({}, None)`` when
    no slide could be held out.
    """
    truth, pred, classes = [], [], []
    for i, s in enumerate(slides):
        rest = [o for j, o in enumerate(slides) if j != i]
        try:
            m = fit_cell_types(np.concatenate([o.features for o in rest]), np.concatenate([o.types for o in rest]),
                               model_id="held-out", neighbourhood_um=neighbourhood_um, own=own)
        except ValueError:
            continue  # the other slides lack a type: this slide cannot be held out
        truth.append(s.types)
        pred.append(np.asarray(CELL_TYPES)[predict_cell_types(m, s.features)[0]])
        classes.append(s.dab_class)
    if not truth:
        return {}, None
    t, p = np.concatenate(truth), np.concatenate(pred)
    out: dict[str, Any] = {"cells": int(len(t))}
    for kind in sorted(set(t)):
        tp = float(np.sum((t == kind) & (p == kind)))
        out[kind] = {"precision": round(tp / max(int(np.sum(p == kind)), 1), 3),
                     "recall": round(tp / max(int(np.sum(t == kind)), 1), 3)}
    return out, stain_independence(t, p, np.concatenate(classes))


def train_cell_types(
    slides: Sequence[LabelledSlide], *, model_id: str, neighbourhood_um: float = 30.0, record: dict[str, Any],
    own: tuple[str, ...] = FEATURE_SETS["all"],
) -> CellTypeModel:
    """A cell-type model fitted on every labelled slide, with the leave-one-slide-out figures in its ``info``.

    ``info["stain"]`` is the stain check (:func:`~ihc_score.score.stain_independence`) of
    the leave-one-slide-out types, or, with one slide, of the fitted model's own types
    of the cells it was fitted on (``in_sample``: a model biased there is biased anywhere).

    Raises
    ------
    IhcScoreError
        Too few labelled cells of a type (:func:`~ihc_score.score.cell_type_fit.fit_cell_types`).
    """
    held, stain = _held_out(slides, neighbourhood_um, own) if len(slides) > 1 else ({}, None)
    info = {**record, "slides": {s.slide: {"points": s.n_points, "matched": int(len(s.types))} for s in slides},
            "held_out_by_slide": held}
    features, types = np.concatenate([s.features for s in slides]), np.concatenate([s.types for s in slides])
    try:
        fitted = fit_cell_types(features, types, model_id=model_id, neighbourhood_um=neighbourhood_um, info=info,
                                own=own)
    except ValueError as err:
        raise IhcScoreError(str(err)) from None
    if stain is None:
        predicted = np.asarray(CELL_TYPES)[predict_cell_types(fitted, features)[0]]
        stain = {**stain_independence(types, predicted, np.concatenate([s.dab_class for s in slides])),
                 "in_sample": True}
    return replace(fitted, info={**fitted.info, "stain": stain})

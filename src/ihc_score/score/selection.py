"""Cell selection: which detected cells a region's score counts, between measurement and classes.

A detected cell is left out of every score when its centroid lies in an
excluded area (necrosis, artefacts, ``Ignore*`` shapes of the annotation
file), and it is counted but not graded when pigment (melanin,
hemosiderin) covers much of it: its brown is not DAB. With a cell-type
step (:mod:`ihc_score.score.cell_types`), a cell of a type the model does
not score is counted apart, per type and with its own classes, whatever
its pigment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ihc_score.cells import PigmentParams
from ihc_score.regions import Region, region_membership
from ihc_score.score.cell_types import CELL_TYPES, CellTypeParams
from ihc_score.score.classes import Call, ClassCounts, PositivityRule
from ihc_score.score.region_scores import RegionResult

__all__ = ["outside_exclusions", "pigmented_cells", "left_out_by_type", "with_left_out"]


def outside_exclusions(exclusions: Sequence[Region], l0_x: np.ndarray, l0_y: np.ndarray) -> np.ndarray:
    """True for each cell whose centroid (level-0 px) lies in no excluded area.

    A centroid on the outline of an excluded area counts as outside it
    (:func:`ihc_score.regions.region_membership`).
    """
    if not exclusions:
        return np.ones(len(l0_x), dtype=bool)
    return ~region_membership(exclusions, l0_x, l0_y).any(axis=0)


def pigmented_cells(pigment_fraction: np.ndarray, params: PigmentParams) -> np.ndarray:
    """True for each cell left ungraded for pigment: at least ``params.max_cell_fraction`` of its pixels.

    Parameters
    ----------
    pigment_fraction : ndarray of float32
        Per cell, the fraction (0-1) of its pixels found to be pigment.
    params : PigmentParams
        ``exclude`` False grades every cell.
    """
    if not params.exclude:
        return np.zeros(len(pigment_fraction), dtype=bool)
    return pigment_fraction >= params.max_cell_fraction


def left_out_by_type(cell_type: np.ndarray | None, params: CellTypeParams) -> np.ndarray | None:
    """True for each cell whose type (index into :data:`CELL_TYPES`) the model does not score; None untyped."""
    if cell_type is None:
        return None
    scored = np.array([CELL_TYPES.index(t) for t in params.scored])
    return ~np.isin(cell_type, scored)


def with_left_out(
    result: RegionResult, cell_type: np.ndarray, classes: np.ndarray, params: CellTypeParams, rule: PositivityRule
) -> RegionResult:
    """A region's result with the cells the cell-type step left out: per type, their classes, and the call's reason.

    Parameters
    ----------
    result : RegionResult
        Scored on the cells of the scored types.
    cell_type, classes : ndarray
        Type index and class of each left-out cell of the region.
    params : CellTypeParams
    rule : PositivityRule
        For the reason of a call with too few scored cells.
    """
    per_type = tuple((t, int(np.sum(cell_type == k))) for k, t in enumerate(CELL_TYPES) if t not in params.scored)
    n_left = int(len(cell_type))
    notes = []
    scored_name = "/".join(params.scored)
    if result.counts.n < rule.min_cells:
        notes.append(f"{result.counts.n} {scored_name} cells, fewer than the {rule.min_cells} required")
    total = n_left + result.counts.n + result.n_pigmented
    if total and n_left / total > params.max_left_out_fraction:
        notes.append(f"{100.0 * n_left / total:.0f} % of its cells are not {scored_name} cells and are left out "
                     f"(more than {100.0 * params.max_left_out_fraction:g} %)")
    call = result.call
    if notes:
        kept = [] if result.counts.n < rule.min_cells else [call.reason] if call.reason else []
        call = Call(call.call, "; ".join(kept + notes))
    return replace(result, call=call, left_out=per_type, left_out_counts=ClassCounts.from_classes(classes))

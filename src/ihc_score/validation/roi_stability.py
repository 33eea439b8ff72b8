"""How much a metastasis' score depends on where its outline was drawn (CAP recommendation 4).

Two pathologists never draw the same outline. Each region's outline is moved
as another operator might draw it: shifted in eight directions, grown and
shrunk, and the region is scored again from the kept cells (nothing is
detected again). The spread of the H-score over these outlines, and whether
any of them changes the call, says how much the result rests on the drawing.

An annotated region's cells are kept only as far as the scoring looked: its
outline plus the ``--roi-margin`` band. Moves that would reach beyond it are
left out and said so; automatic regions have their cells all over the tissue.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely import affinity

from ihc_score.errors import ValidationInputError
from ihc_score.regions import Region
from ihc_score.score import RegionResult
from ihc_score.validation.results_dir import read_run
from ihc_score.validation.stored_cells import (
    ScoringRule,
    StoredCells,
    read_stored_cells,
    rescore_region,
    stored_region,
    stored_slides,
)

__all__ = ["RoiMoves", "RoiStability", "moved_outlines", "region_stability", "results_roi_stability"]


@dataclass(frozen=True)
class RoiMoves:
    """The outline moves tried, in micrometres.

    Parameters
    ----------
    shifts_um : tuple of float
        Distances each outline is shifted, in each of 8 directions (every 45 degrees).
    buffers_um : tuple of float
        Distances it is grown (positive) or shrunk (negative) by, all round.
    """

    shifts_um: tuple[float, ...] = (25.0, 50.0, 100.0)
    buffers_um: tuple[float, ...] = (-100.0, -50.0, -25.0, 25.0, 50.0, 100.0)

    def __post_init__(self) -> None:
        if any(not 0 < s <= 1000 for s in self.shifts_um) or any(not -1000 <= b <= 1000 or b == 0
                                                                 for b in self.buffers_um):
            raise ValueError("shifts must be within (0, 1000] um and buffers within [-1000, 1000] um, not 0")

    def reach_um(self) -> float:
        """How far outside the drawn outline the moves reach, um."""
        return max([*self.shifts_um, *(b for b in self.buffers_um if b > 0), 0.0])


@dataclass(frozen=True)
class RoiStability:
    """A region's scores over its moved outlines.

    Attributes
    ----------
    h_score, call : float, str
        Of the outline as drawn, from the kept cells.
    n_moves : int
        Moved outlines scored (moves that reach beyond the kept cells, or
        shrink the region away, are not counted).
    h_sd, h_min, h_max : float
        Standard deviation (ddof 1) and range of the H-score over the drawn and moved outlines.
    pct_sd : float
        Standard deviation of percent positive.
    n_call_changes : int
        Moved outlines whose call differs from the drawn outline's.
    changed_calls : tuple of str
        ``move=call`` for each of them.
    note : str
        Moves left out and why ("" when none).
    """

    h_score: float
    call: str
    n_moves: int
    h_sd: float
    h_min: float
    h_max: float
    pct_sd: float
    n_call_changes: int
    changed_calls: tuple[str, ...]
    note: str = ""


def moved_outlines(region: Region, moves: RoiMoves, *, mpp_um: float) -> Iterator[tuple[str, Region]]:
    """Each moved outline with its label (``shift 50 um 45 deg``, ``grow 25 um``, ``shrink 100 um``).

    Shrinking can remove a small region altogether; such moves are skipped.
    """
    for dist in moves.shifts_um:
        for k in range(8):
            angle = 45 * k
            dx = dist / mpp_um * math.cos(math.radians(angle))
            dy = -dist / mpp_um * math.sin(math.radians(angle))  # y down: 90 deg points up the screen
            geom = affinity.translate(region.geometry, dx, dy)
            yield f"shift {dist:g} um {angle} deg", Region(region.name, geom, region.source)
    for dist in moves.buffers_um:
        geom = shapely.make_valid(region.geometry.buffer(dist / mpp_um))
        geom = shapely.union_all([p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > 0])
        if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
            continue
        yield f"{'grow' if dist > 0 else 'shrink'} {abs(dist):g} um", Region(region.name, geom, region.source)


def region_stability(
    cells: StoredCells, stored: RegionResult, region: Region, rule: ScoringRule, *, mpp_um: float,
    moves: RoiMoves = RoiMoves(), kept_reach_um: float = math.inf,
) -> RoiStability:
    """Score ``region`` as drawn and moved, from kept cells, and summarise the spread.

    Parameters
    ----------
    stored : RegionResult
        The region as scored (for its name, source and area).
    region : Region
        Its outline in level-0 px.
    kept_reach_um : float
        How far beyond the outline cells were kept (the ``--roi-margin`` for
        annotated regions, infinite for automatic ones); moves reaching
        further are left out.
    """
    kw = {"name": stored.name, "source": stored.source, "mpp_um": mpp_um, "area_mm2": stored.area_mm2}
    drawn = rescore_region(cells, region, rule, **kw)
    allowed = RoiMoves(
        tuple(s for s in moves.shifts_um if s <= kept_reach_um + 1e-9),
        tuple(b for b in moves.buffers_um if b <= kept_reach_um + 1e-9),
    )
    dropped = sorted({*moves.shifts_um, *(b for b in moves.buffers_um if b > 0)} - {*allowed.shifts_um,
                                                                                   *allowed.buffers_um})
    h, pct, changed = [drawn.counts.h_score], [drawn.counts.pct_positive], []
    for label, moved in moved_outlines(region, allowed, mpp_um=mpp_um):
        r = rescore_region(cells, moved, rule, **kw)
        h.append(r.counts.h_score)
        pct.append(r.counts.pct_positive)
        if r.call.call != drawn.call.call:
            changed.append(f"{label}={r.call.call}")
    note = ""
    if dropped:
        note = (f"moves of {', '.join(f'{d:g}' for d in dropped)} um outwards left out: cells were kept only "
                f"{kept_reach_um:g} um beyond the outline (score with --roi-margin {max(dropped):g} --cells)")
    values, pcts = np.asarray(h, np.float64), np.asarray(pct, np.float64)
    finite = values[np.isfinite(values)]
    return RoiStability(
        h_score=drawn.counts.h_score, call=drawn.call.call, n_moves=len(h) - 1,
        h_sd=float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan,
        h_min=float(finite.min()) if finite.size else math.nan, h_max=float(finite.max()) if finite.size else math.nan,
        pct_sd=float(np.nanstd(pcts, ddof=1)) if np.isfinite(pcts).sum() > 1 else math.nan,
        n_call_changes=len(changed), changed_calls=tuple(changed), note=note,
    )


def results_roi_stability(
    results_dir: str | Path, moves: RoiMoves = RoiMoves()
) -> list[tuple[str, str, str, RoiStability]]:
    """``(slide, region, source, stability)`` of every outlined region of a results folder, sorted.

    The rule is the one the results were made with (``run.json``); regions
    scored as the whole tissue have no outline and are left out.

    Raises
    ------
    ValidationInputError
        The folder has no ``run.json``, no stored results or no kept cells.
    """
    run = read_run(results_dir)
    if not run.get("model"):
        raise ValidationInputError(f"{results_dir}: no run.json; give a folder written by ihc-score score")
    rule = ScoringRule.of_parameters(run["model"]["parameters"])
    margin = float((run.get("options") or {}).get("roi_margin_um") or 0.0)
    out = []
    for name, result in sorted(stored_slides(results_dir).items()):
        outlined = [(g, r) for g in result.regions if (r := stored_region(g)) is not None]
        if not outlined:
            continue
        cells = read_stored_cells(results_dir, name)
        for stored, region in outlined:
            reach = margin if stored.source == "annotation" else math.inf
            s = region_stability(cells, stored, region, rule, mpp_um=result.mpp_um, moves=moves, kept_reach_um=reach)
            out.append((name, stored.name, stored.source, s))
    return out

"""What a new model would change: every metastasis and case call, from the cells a results folder kept.

Before a laboratory adopts a new model file (new thresholds, a calibrated
cut-off), the calls it would give on slides already scored are listed, so
the change is reviewed and documented (CAP recommendation 6, change
control). The kept cells are graded again under the new model's
classification, positivity, interval and scored cell types; what acts
before the cells (tissue, stains, detection, the cell-type model) cannot be
replayed from them and is named instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ihc_score.errors import ValidationInputError
from ihc_score.model import Model
from ihc_score.results import SlideResult
from ihc_score.run import aggregate_cases
from ihc_score.validation.results_dir import read_run, read_table
from ihc_score.validation.stored_cells import (
    ScoringRule,
    read_stored_cells,
    rescore_region,
    stored_region,
    stored_slides,
)

__all__ = ["RegionChange", "CaseChange", "ModelComparison", "compare_models", "unreplayed_sections"]

#: Sections that act before the cells exist: a change to them needs the slides scored again.
BEFORE_CELLS = ("analysis", "tissue", "stains", "detection", "auto_regions", "artefacts", "pigment")


@dataclass(frozen=True)
class RegionChange:
    """One metastasis under the results' model (``old``) and the new one."""

    slide: str
    region: str
    old_h_score: float
    new_h_score: float
    old_pct_positive: float
    new_pct_positive: float
    old_call: str
    new_call: str
    new_reason: str

    @property
    def changed(self) -> bool:
        return self.old_call != self.new_call


@dataclass(frozen=True)
class CaseChange:
    """One case's call under the results' model and the new one."""

    case: str
    old_call: str
    new_call: str

    @property
    def changed(self) -> bool:
        return self.old_call != self.new_call


@dataclass(frozen=True)
class ModelComparison:
    """Every metastasis and case of a results folder under two models.

    Attributes
    ----------
    regions, cases : tuple
        All of them, sorted; ``changed`` says which calls differ.
    unreplayed : tuple of str
        Sections that differ but act before the cells (see :data:`BEFORE_CELLS`).
    replay_mismatches : tuple of str
        ``slide/region`` whose call, replayed under the results' own model,
        differs from the stored call (cells rounded in the kept table on a
        threshold); expected empty.
    """

    regions: tuple[RegionChange, ...]
    cases: tuple[CaseChange, ...]
    unreplayed: tuple[str, ...]
    replay_mismatches: tuple[str, ...]


def unreplayed_sections(old: Model, new: Model) -> tuple[str, ...]:
    """The sections in which ``new`` differs from ``old`` that cannot be replayed on kept cells."""
    names = [s for s in BEFORE_CELLS if getattr(old, s) != getattr(new, s)]
    if (old.cell_types.model, old.cell_types.sha256) != (new.cell_types.model, new.cell_types.sha256):
        names.append("cell_types.model")
    return tuple(names)


def compare_models(results_dir: str | Path, old: Model, new: Model) -> ModelComparison:
    """Grade a results folder's kept cells under ``new`` and compare every call with ``old``'s.

    Parameters
    ----------
    results_dir : path
        Scored with ``old`` (with or without one-run overrides) and ``--cells``.
    old, new : Model

    Raises
    ------
    ValidationInputError
        The folder was scored with another model than ``old``, or kept no cells.
    """
    run = read_run(results_dir)
    scored_with = (run.get("model") or {}).get("sha256")
    if scored_with != old.sha256:
        raise ValidationInputError(
            f"{results_dir} was scored with model sha256 {str(scored_with)[:12]}, not with {old.id} {old.version} "
            f"(sha256 {old.sha256[:12]}): give the model file the results were made with as OLD"
        )
    old_rule = ScoringRule.of_parameters(run["model"]["parameters"])  # with the run's overrides, if any
    new_rule = ScoringRule.of_model(new)
    cases = {r["slide"]: r["case"] for r in read_table(results_dir, required=("slide", "case"), what="slides")}
    regions, mismatches, old_slides, new_slides = [], [], [], []
    for name, result in sorted(stored_slides(results_dir).items()):
        cells = read_stored_cells(results_dir, name)
        new_regions = []
        for stored in result.regions:
            kw = {"name": stored.name, "source": stored.source, "mpp_um": result.mpp_um,
                  "area_mm2": stored.area_mm2, "wkt": stored.wkt}
            a = rescore_region(cells, stored_region(stored), old_rule, **kw)
            b = rescore_region(cells, stored_region(stored), new_rule, **kw)
            if a.call.call != stored.call.call:
                mismatches.append(f"{name}/{stored.name}")
            new_regions.append(b)
            regions.append(RegionChange(
                name, stored.name, stored.counts.h_score, b.counts.h_score, stored.counts.pct_positive,
                b.counts.pct_positive, stored.call.call, b.call.call, b.call.reason,
            ))  # fmt: skip
        old_slides.append((cases.get(name, name), result))
        new_slides.append((cases.get(name, name), dataclasses.replace(result, regions=tuple(new_regions))))
    return ModelComparison(
        tuple(regions), _case_changes(old_slides, new_slides, old.case_rule, new.case_rule),
        unreplayed_sections(old, new), tuple(mismatches),
    )


def _case_changes(
    old: Sequence[tuple[str, SlideResult]], new: Sequence[tuple[str, SlideResult]], old_rule: str, new_rule: str
) -> tuple[CaseChange, ...]:
    """Each case's call by its rule under both models (the scored slides of the folder only)."""
    before = {c.case: c.call for c in aggregate_cases(old, case_rule=old_rule)}
    after = {c.case: c.call for c in aggregate_cases(new, case_rule=new_rule)}
    return tuple(CaseChange(case, before[case], after[case]) for case in sorted(before))

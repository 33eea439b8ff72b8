"""Control-slide monitoring: read a batch's control, add it to the history, judge it by the Westgard rules.

The limits of a segment (one model, one lot of control material) are the
laboratory's target (``--target MEAN,SD``) or the mean and SD of the
segment's first ``baseline_n`` runs (20 by default, at least 10). Until those
runs are in, each batch's control is recorded and reported as "collecting
baseline (k/N)", and no rule is applied. The baseline runs count as history
for the runs after them (a 10-x run may start among them): they are real
observations of the same control under the same model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ihc_score.errors import ValidationInputError
from ihc_score.validation.history import (
    ControlRun,
    control_runs,
    find_run,
    history_transaction,
    insert_run,
    open_history,
)
from ihc_score.validation.results_dir import model_of_results, number, read_run, read_table
from ihc_score.validation.westgard import ControlLimits, baseline_limits, latest_violations, rejects, z_scores

__all__ = [
    "DEFAULT_BASELINE_RUNS", "MIN_BASELINE_RUNS", "ControlReading", "MonitorOptions", "ControlStatus", "read_control",
    "segment_limits", "judge_run", "record_control", "segment_series",
]  # fmt: skip

#: Baseline runs when neither ``--baseline`` nor ``--target`` says otherwise (Westgard et al. 1981: at least 20).
DEFAULT_BASELINE_RUNS = 20
#: Fewest baseline runs accepted; below 20 the command warns that the SD is less certain.
MIN_BASELINE_RUNS = 10


@dataclass(frozen=True)
class ControlReading:
    """A batch's control slide, read from its results folder (H-score 0-300, percent positive 0-100)."""

    control: str
    region: str
    results_dir: str
    started_utc: str
    h_score: float
    pct_positive: float | None
    n_cells: int | None
    model_id: str
    model_version: str
    model_sha256: str

    @property
    def batch_id(self) -> str:
        """``<results folder's absolute path> @ <started_utc>``: the same batch added twice has the same id."""
        return f"{self.results_dir} @ {self.started_utc}"


@dataclass(frozen=True)
class MonitorOptions:
    """How a batch is judged: the laboratory's target, the baseline length, a new segment."""

    target: tuple[float, float] | None = None
    baseline_n: int | None = None
    new_baseline: bool = False


@dataclass(frozen=True)
class ControlStatus:
    """What the history says about one batch's control.

    Attributes
    ----------
    run : ControlRun
        The batch's row (as added, or as stored for a batch added before).
    segment_runs : tuple of ControlRun
        The segment's runs up to and including ``run``.
    limits : ControlLimits or None
        None while the baseline is collected.
    duplicate : bool
        The batch was already in the history; nothing was added.
    earlier_runs : int
        Runs of this control in earlier segments (other models or control lots).
    """

    run: ControlRun
    segment_runs: tuple[ControlRun, ...]
    limits: ControlLimits | None
    duplicate: bool
    earlier_runs: int

    @property
    def rules(self) -> tuple[str, ...]:
        return self.run.rules

    @property
    def out_of_control(self) -> bool:
        return bool(rejects(self.rules))

    @property
    def baseline_progress(self) -> tuple[int, int]:
        """``(k, N)``: runs collected of the segment's baseline of N."""
        return min(len(self.segment_runs), self.run.baseline_n), self.run.baseline_n


def _cell(row: dict[str, str], column: str, where: str) -> float | None:
    value = number(row.get(column, ""), where=f"{where} {column}")
    return None if math.isnan(value) else value


def _pick_row(rows: list[dict[str, str]], control: str, region: str | None, where: str) -> dict[str, str]:
    mine = [r for r in rows if r["slide"] == control]
    if not mine:
        slides = sorted({r["slide"] for r in rows})
        shown = ", ".join(slides[:20]) + (f" (and {len(slides) - 20} more)" if len(slides) > 20 else "")
        raise ValidationInputError(f"{where}: no slide {control!r} (slides: {shown or 'none'}); check --control")
    regions = sorted(r["region"] for r in mine)
    if region is not None:
        mine = [r for r in mine if r["region"] == region]
        if not mine:
            raise ValidationInputError(f"{where}: {control} has no region {region!r} (regions: {', '.join(regions)})")
    if len(mine) > 1:
        raise ValidationInputError(
            f"{where}: {control} has {len(mine)} regions ({', '.join(regions)}); choose one with --region"
        )
    return mine[0]


def read_control(results_dir: str | Path, control: str, region: str | None = None) -> ControlReading:
    """The control slide's H-score and the batch's identity and model, from a results folder.

    Raises
    ------
    ValidationInputError
        No such slide or region, several regions without ``region``, an empty
        H-score (the control was not scored), no ``started_utc`` or no model
        sha256 in ``run.json``.
    """
    folder = Path(results_dir).resolve()
    where = str(folder / "metastases.csv")
    row = _pick_row(read_table(folder, required=("slide", "region", "h_score"), what="metastases"),
                    control, region, where)
    h_score = _cell(row, "h_score", where)
    if h_score is None:
        raise ValidationInputError(
            f"{where}: the control {control} ({row['region']}) has no H-score (call {row.get('call') or 'none'}, "
            f"{row.get('n_cells') or 0} cells); score it again or leave this batch out"
        )
    run = read_run(folder)
    started = str(run.get("started_utc") or "")
    _parse_utc(started, folder)
    model = model_of_results(folder)
    sha = model.get("sha256") or row.get("model_sha256", "")
    if not sha:
        raise ValidationInputError(f"{folder}: neither run.json nor metastases.csv gives the model's sha256")
    n_cells = _cell(row, "n_cells", where)
    return ControlReading(
        control=control, region=row["region"], results_dir=str(folder), started_utc=started, h_score=h_score,
        pct_positive=_cell(row, "pct_positive", where), n_cells=None if n_cells is None else int(n_cells),
        model_id=model.get("id") or row.get("model_id", ""),
        model_version=model.get("version") or row.get("model_version", ""), model_sha256=sha,
    )


def _parse_utc(text: str, folder: Path) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationInputError(
            f"{folder / 'run.json'}: no ISO 8601 started_utc (got {text!r}); the batch cannot be placed in time"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def segment_limits(runs: Sequence[ControlRun]) -> ControlLimits | None:
    """The limits in force for the last of a segment's runs: its target, else the baseline once complete, else None."""
    last = runs[-1]
    if last.target_mean is not None and last.target_sd is not None:
        return ControlLimits(mean=last.target_mean, sd=last.target_sd, source="target", n_runs=0)
    if len(runs) <= last.baseline_n:
        return None
    return baseline_limits([r.h_score for r in runs[: last.baseline_n]])


def judge_run(runs: Sequence[ControlRun]) -> tuple[ControlRun, ControlLimits | None]:
    """The last of a segment's runs with its ``z``, ``status`` and ``flagged`` set from the runs before it."""
    limits = segment_limits(runs)
    last = runs[-1]
    if limits is None:
        return dataclasses.replace(last, z=None, status="collecting baseline", flagged=""), None
    z = z_scores([r.h_score for r in runs], limits)
    rules = latest_violations(z)
    status = "out of control" if rejects(rules) else "warning" if rules else "in control"
    return dataclasses.replace(last, z=float(z[-1]), status=status, flagged=",".join(rules)), limits


def _new_run(reading: ControlReading, previous: Sequence[ControlRun], options: MonitorOptions) -> ControlRun:
    """The reading as a run of the history, placed in its segment; refuses a model change and an earlier batch."""
    last = previous[-1] if previous else None
    if last is not None:
        _check_order(reading, last)
    if last is not None and last.model_sha256 != reading.model_sha256 and not options.new_baseline:
        raise ValidationInputError(
            f"the model changed since {reading.control}'s last run ({last.model_id} {last.model_sha256[:12]} -> "
            f"{reading.model_id} {reading.model_sha256[:12]}); its limits do not apply: add --new-baseline"
        )
    fresh = last is None or options.new_baseline
    segment = 1 if last is None else last.segment + int(options.new_baseline)
    baseline_n = options.baseline_n or (DEFAULT_BASELINE_RUNS if fresh else last.baseline_n)
    target = options.target or (None if fresh else _target_of(last))
    return ControlRun(
        batch_id=reading.batch_id, **dataclasses.asdict(reading), segment=segment, baseline_n=baseline_n,
        target_mean=target[0] if target else None, target_sd=target[1] if target else None,
        z=None, status="", flagged="", recorded_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _target_of(run: ControlRun) -> tuple[float, float] | None:
    return None if run.target_mean is None or run.target_sd is None else (run.target_mean, run.target_sd)


def _check_order(reading: ControlReading, last: ControlRun) -> None:
    folder = Path(reading.results_dir)
    if _parse_utc(reading.started_utc, folder) < _parse_utc(last.started_utc, folder):
        raise ValidationInputError(
            f"{folder}: this batch started ({reading.started_utc}) before the last one in the history "
            f"({last.started_utc}); the rules need runs in order, so it cannot be added now"
        )


def _status(run: ControlRun, runs: Sequence[ControlRun], duplicate: bool) -> ControlStatus:
    segment = tuple(r for r in runs if r.segment == run.segment)
    upto = segment[: next(i for i, r in enumerate(segment) if r.batch_id == run.batch_id) + 1]
    earlier = sum(r.segment < run.segment for r in runs)
    return ControlStatus(run=run, segment_runs=upto, limits=segment_limits(upto), duplicate=duplicate,
                         earlier_runs=earlier)


def record_control(
    history: str | Path,
    reading: ControlReading,
    options: MonitorOptions = MonitorOptions(),
    *,
    publish: Callable[[ControlStatus], Any] | None = None,
) -> ControlStatus:
    """Add a batch's control to the history and judge it; a batch already there is judged as stored, not added.

    Parameters
    ----------
    history : path
        The SQLite history (created on first use).
    reading : ControlReading
    options : MonitorOptions
    publish : callable, optional
        Called with the status before the history is committed (to write the
        batch's pages): if it raises, the run is not added.

    Raises
    ------
    ValidationInputError
        Unreadable history, a model change without ``new_baseline``, a batch
        older than the last one, or a baseline with SD 0. The history is then unchanged.
    """
    conn = open_history(history)
    try:
        with history_transaction(conn):
            stored = find_run(conn, reading.batch_id, reading.control)
            runs = control_runs(conn, reading.control)
            if stored is not None:
                status = _status(stored, runs, duplicate=True)
            else:
                new = _new_run(reading, runs, options)
                segment = [r for r in runs if r.segment == new.segment]
                judged, _ = judge_run([*segment, new])
                insert_run(conn, judged)
                status = _status(judged, [*runs, judged], duplicate=False)
            if publish is not None:
                publish(status)
    finally:
        conn.close()
    return status


def segment_series(status: ControlStatus) -> np.ndarray:
    """z-scores of the segment's runs against the status's limits (NaN everywhere when there are none)."""
    values = [r.h_score for r in status.segment_runs]
    if status.limits is None:
        return np.full(len(values), np.nan)
    return z_scores(values, status.limits)

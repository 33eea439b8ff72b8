"""Outcomes of a laboratory's own cases matched to the marker of a results folder, and the shared cut-off arithmetic.

A department sets its own S100A9 cut-off on its own outcomes: each case's
marker is the largest score among its scored metastases (the case rule
``any_positive`` calls a case positive when any metastasis reaches the
cut-off, so the case is positive exactly when this maximum does), and its
outcome is either binary (``outcome`` 1/0) or a time to an event
(``time``, ``event`` 1/0). Cases with an outcome but no score, and scored
cases without an outcome, are listed, never dropped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ihc_score.errors import ValidationInputError
from ihc_score.validation.results_dir import number, read_table

__all__ = [
    "MIN_EVENTS",
    "OutcomeData",
    "OutcomeTable",
    "BootstrapParams",
    "case_markers",
    "read_outcomes",
    "match_outcomes",
    "require_enough_events",
    "place_cutoff",
    "percentile_interval",
]

#: Fewest events (and, for a binary outcome, fewest cases without the event) a cut-off is calibrated on.
MIN_EVENTS = 10


@dataclass(frozen=True)
class BootstrapParams:
    """How the bootstrap intervals are drawn.

    Parameters
    ----------
    resamples : int
        Number of bootstrap resamples (>= 1000 for percentile intervals of 95 %).
    seed : int
        Seed of ``numpy.random.default_rng``: the same seed gives the same intervals.
    level : float
        Coverage of every interval, e.g. 0.95.
    """

    resamples: int = 2000
    seed: int = 0
    level: float = 0.95

    def __post_init__(self) -> None:
        if int(self.resamples) != self.resamples or self.resamples < 1000:
            raise ValueError(f"resamples must be an integer >= 1000, got {self.resamples!r}")
        if not 0.5 <= self.level < 1.0:
            raise ValueError(f"level must be within 0.5 and 1, got {self.level!r}")


@dataclass(frozen=True)
class OutcomeData:
    """Cases with both a marker and an outcome, and the cases left out (with why).

    Attributes
    ----------
    endpoint : {"binary", "time_to_event"}
    cases : tuple of str
        Analysed cases, sorted.
    marker : tuple of float
        Each case's marker (the largest score of its scored metastases), in the
        model's metric units (H-score 0-300 or % positive cells 0-100).
    outcome : tuple of int
        Binary outcome, 1 = the event (empty for time-to-event).
    time, event : tuple of float, tuple of int
        Time to the event or censoring (the file's unit) and 1 = event,
        0 = censored (empty for a binary outcome).
    no_score : tuple of str
        Cases of the outcomes file with no scored metastasis in the results.
    no_outcome : tuple of str
        Scored cases absent from the outcomes file or with a blank outcome.
    """

    endpoint: Literal["binary", "time_to_event"]
    cases: tuple[str, ...]
    marker: tuple[float, ...]
    outcome: tuple[int, ...] = ()
    time: tuple[float, ...] = ()
    event: tuple[int, ...] = ()
    no_score: tuple[str, ...] = ()
    no_outcome: tuple[str, ...] = ()

    @property
    def n_events(self) -> int:
        """Number of events among the analysed cases."""
        return int(sum(self.outcome if self.endpoint == "binary" else self.event))


@dataclass(frozen=True)
class OutcomeTable:
    """The rows of an outcomes file.

    Attributes
    ----------
    endpoint : {"binary", "time_to_event"}
        ``binary`` for a file with ``outcome``, ``time_to_event`` for ``time`` and ``event``.
    rows : tuple of (str, tuple of float or None)
        ``(case, (outcome,))`` or ``(case, (time, event))`` in file order;
        None where the fields are blank (the outcome is not known).
    """

    endpoint: Literal["binary", "time_to_event"]
    rows: tuple[tuple[str, tuple[float, ...] | None], ...]


def case_markers(results_dir: str | Path, metric: str) -> tuple[dict[str, float], tuple[str, ...]]:
    """Each case's marker from ``metastases.csv``: the maximum of ``metric`` over its scored metastases.

    Parameters
    ----------
    results_dir : path
        A folder written by ``ihc-score score``.
    metric : {"h_score", "pct_positive"}
        The model's ``positivity.metric``.

    Returns
    -------
    markers : dict of str to float
        Case -> largest score of its metastases (regions with an empty score are not scored).
    unscored : tuple of str
        Cases whose metastases all have an empty score, sorted.

    Raises
    ------
    ValidationInputError
        The table is missing, lacks the columns, or a score is not a number.
    """
    path = Path(results_dir) / "metastases.csv"
    rows = read_table(results_dir, required=("case", metric), what="metastases")
    markers: dict[str, float] = {}
    seen: set[str] = set()
    for i, row in enumerate(rows):
        case = row["case"]
        seen.add(case)
        value = number(row[metric], where=f"{path} row {i + 2} ({metric})")
        if math.isfinite(value):
            markers[case] = max(value, markers.get(case, -math.inf))
    return markers, tuple(sorted(seen - set(markers)))


def _binary(text: str, where: str) -> int | None:
    """0 or 1 from a field (``""`` -> None; ``1.0`` is 1)."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value not in (0.0, 1.0):
        raise ValidationInputError(f"{where}: must be 1 (event) or 0 (no event), got {text!r}")
    return int(value)


def read_outcomes(path: str | Path) -> OutcomeTable:
    """Outcomes by case from a CSV file with ``case`` and ``outcome``, or ``case``, ``time`` and ``event``.

    ``outcome`` and ``event`` are 1 (the event, e.g. no response to
    whole-brain radiotherapy, intracranial progression) or 0; ``time`` is
    the time to the event or to the last follow-up (any unit, >= 0). Blank
    fields mean the outcome is not known: the case is listed, not analysed.

    Raises
    ------
    ValidationInputError
        Missing file or columns, both kinds of columns, an empty or repeated
        case, a value other than 0/1, a negative or non-numeric time, or one
        of ``time``/``event`` blank without the other; the message names the
        file and the row (as a spreadsheet numbers it, the header being row 1).
    """
    rows = read_table(path, required=("case",), what="outcomes file")
    if not rows:
        raise ValidationInputError(f"{path}: no cases; give one row per case")
    columns = set(rows[0])
    binary, survival = "outcome" in columns, {"time", "event"} <= columns
    if binary == survival:
        raise ValidationInputError(
            f"{path}: give either an 'outcome' column (1/0) or 'time' and 'event' columns, "
            f"{'not both' if binary else 'found neither'}"
        )
    out: list[tuple[str, tuple[float, ...] | None]] = []
    first_row: dict[str, int] = {}
    for i, row in enumerate(rows):
        where, case = f"{path} row {i + 2}", row["case"]
        if not case:
            raise ValidationInputError(f"{where}: the case is empty")
        if case in first_row:
            raise ValidationInputError(f"{where}: case {case!r} is also on row {first_row[case]}; give it once")
        first_row[case] = i + 2
        out.append((case, _binary_row(row, where) if binary else _survival_row(row, where)))
    return OutcomeTable("binary" if binary else "time_to_event", tuple(out))


def _binary_row(row: dict[str, str], where: str) -> tuple[float, ...] | None:
    value = _binary(row["outcome"], f"{where} (outcome)")
    return None if value is None else (float(value),)


def _survival_row(row: dict[str, str], where: str) -> tuple[float, ...] | None:
    time = number(row["time"], where=f"{where} (time)")
    event = _binary(row["event"], f"{where} (event)")
    if math.isnan(time) and event is None:
        return None
    if math.isnan(time) or event is None:
        raise ValidationInputError(f"{where}: give both time and event, or leave both blank")
    if not math.isfinite(time) or time < 0:
        raise ValidationInputError(f"{where} (time): must be a number >= 0, got {row['time']!r}")
    return (time, float(event))


def match_outcomes(markers: dict[str, float], outcomes: OutcomeTable) -> OutcomeData:
    """The cases with both a marker and an outcome, sorted by case, and the sorted lists of those left out.

    Parameters
    ----------
    markers : dict of str to float
        From :func:`case_markers` (cases without a scored metastasis are absent).
    outcomes : OutcomeTable
        From :func:`read_outcomes`.
    """
    known = {case: value for case, value in outcomes.rows if value is not None}
    cases = tuple(sorted(set(markers) & set(known)))
    no_score = tuple(sorted({case for case, _ in outcomes.rows} - set(markers)))
    no_outcome = tuple(sorted(set(markers) - set(known)))
    marker = tuple(markers[c] for c in cases)
    if outcomes.endpoint == "binary":
        return OutcomeData(
            "binary", cases, marker, outcome=tuple(int(known[c][0]) for c in cases),
            no_score=no_score, no_outcome=no_outcome,
        )
    return OutcomeData(
        "time_to_event", cases, marker, time=tuple(known[c][0] for c in cases),
        event=tuple(int(known[c][1]) for c in cases), no_score=no_score, no_outcome=no_outcome,
    )


def require_enough_events(data: OutcomeData, source: str | Path, *, minimum: int = MIN_EVENTS) -> None:
    """Refuse a calibration on fewer than ``minimum`` events (or, for a binary outcome, non-events).

    Raises
    ------
    ValidationInputError
        One line: the counts and what to do.
    """
    n, events = len(data.cases), data.n_events
    counts = [(events, "events")]
    if data.endpoint == "binary":
        counts.append((n - events, "cases without the event"))
    for count, what in counts:
        if count < minimum:
            raise ValidationInputError(
                f"{source}: {count} {what} among the {n} cases with both a score and an outcome; "
                f"a cut-off needs at least {minimum}: add cases"
            )


def place_cutoff(values: np.ndarray, threshold: float) -> float:
    """A round cut-off that splits ``values`` as ``value >= threshold`` does.

    The cut-off is placed in the gap between ``threshold`` (an observed
    value) and the next lower observed value, at the gap's midpoint rounded
    to 0.1 (or 0.01 when the gap is narrower; ``threshold`` itself when
    narrower still), so the calibrated rule calls every analysed case as the
    chosen split did and does not sit on a case's value.

    Parameters
    ----------
    values : numpy.ndarray
        Observed marker values.
    threshold : float
        An observed value: cases with ``value >= threshold`` are positive.
    """
    below = values[values < threshold]
    if below.size == 0:
        return float(threshold)
    low = float(below.max())
    mid = (low + threshold) / 2.0
    for decimals in (1, 2):
        rounded = round(mid, decimals)
        if low < rounded <= threshold:
            return float(rounded)
    return float(threshold)


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13); NaN samples (no estimate) are ignored."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return (math.nan, math.nan)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return (float(low), float(high))

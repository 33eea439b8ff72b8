"""Cell classes, additive counts, H-score, Allred and the positivity call.

Pure functions over arrays and counts (QuPath's ``PositiveCellDetection`` and
``DetectionPathClassCounts`` are the reference for the structure): a cell is
classified from one measurement against increasing thresholds with ``>=``;
a region's result is the sum of per-tile counts, and every ratio is derived
once from those sums.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ihc_score.score.intervals import Interval

__all__ = [
    "CellClass",
    "CLASS_LABELS",
    "ClassifyParams",
    "PositivityRule",
    "ClassCounts",
    "Call",
    "classify",
    "allred_proportion_score",
    "allred_intensity_score",
    "call_region",
]

Compartment = Literal["nucleus", "cytoplasm", "cell"]
Statistic = Literal["mean", "max"]


class CellClass(enum.IntEnum):
    """Intensity class of one cell."""

    NEGATIVE = 0
    WEAK = 1
    MODERATE = 2
    STRONG = 3


#: Labels used in every output, indexed by :class:`CellClass`.
CLASS_LABELS: tuple[str, ...] = ("0", "1+", "2+", "3+")


@dataclass(frozen=True)
class ClassifyParams:
    """Which measurement grades a cell, and where the class boundaries are.

    Parameters
    ----------
    compartment : {"nucleus", "cytoplasm", "cell"}
        Cell compartment whose DAB OD is used.
    statistic : {"mean", "max"}
        Statistic of the DAB OD over the compartment.
    thresholds : tuple of float
        DAB OD boundaries (base-10 OD, QuPath's scale). Three increasing values
        give classes 0 / 1+ / 2+ / 3+; a single value gives 0 / 1+ only.
        A value equal to a threshold belongs to the higher class.
    """

    compartment: Compartment = "cell"
    statistic: Statistic = "mean"
    thresholds: tuple[float, ...] = (0.2, 0.4, 0.6)

    def __post_init__(self) -> None:
        if self.compartment not in ("nucleus", "cytoplasm", "cell"):
            raise ValueError(f"compartment must be nucleus, cytoplasm or cell, got {self.compartment!r}")
        if self.statistic not in ("mean", "max"):
            raise ValueError(f"statistic must be mean or max, got {self.statistic!r}")
        t = tuple(float(x) for x in self.thresholds)
        if len(t) not in (1, 3):
            raise ValueError(f"thresholds must be 1 or 3 values, got {len(t)}")
        if not all(np.isfinite(t)) or any(b <= a for a, b in zip(t, t[1:])):
            raise ValueError(f"thresholds must be finite and strictly increasing, got {t}")
        object.__setattr__(self, "thresholds", t)

    @property
    def measurement(self) -> str:
        """Name of the :class:`~ihc_score.cells.detect.CellTable` column used, e.g. ``dab_cell_mean``."""
        return f"dab_{self.compartment}_{self.statistic}"


def classify(values: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    """Class of each cell from its measurement.

    Parameters
    ----------
    values : ndarray of float
        One DAB OD measurement per cell.
    thresholds : tuple of float
        Increasing class boundaries; ``value >= thresholds[k]`` puts a cell in
        class ``k + 1`` or higher. NaN values are class 0.

    Returns
    -------
    ndarray of int8
        Class per cell, 0 to ``len(thresholds)``.
    """
    v = np.asarray(values, dtype=np.float64)
    out = np.searchsorted(np.asarray(thresholds, dtype=np.float64), v, side="right").astype(np.int8)
    out[np.isnan(v)] = 0
    return out


@dataclass(frozen=True)
class ClassCounts:
    """Number of cells per class; additive over tiles and regions.

    Ratios are properties derived from the counts, so summing two
    ``ClassCounts`` and then taking the H-score is always right, whereas
    averaging H-scores is not.
    """

    n0: int = 0
    n1: int = 0
    n2: int = 0
    n3: int = 0

    def __post_init__(self) -> None:
        for name in ("n0", "n1", "n2", "n3"):
            v = getattr(self, name)
            if int(v) != v or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
            object.__setattr__(self, name, int(v))

    @classmethod
    def from_classes(cls, classes: np.ndarray) -> ClassCounts:
        """Counts of an array of cell classes (0-3)."""
        c = np.bincount(np.asarray(classes, dtype=np.int64).ravel(), minlength=4)
        if c.size > 4:
            raise ValueError("cell classes must be 0 to 3")
        return cls(*(int(x) for x in c))

    def __add__(self, other: ClassCounts) -> ClassCounts:
        if not isinstance(other, ClassCounts):
            return NotImplemented
        return ClassCounts(self.n0 + other.n0, self.n1 + other.n1, self.n2 + other.n2, self.n3 + other.n3)

    @property
    def n(self) -> int:
        """Total number of cells."""
        return self.n0 + self.n1 + self.n2 + self.n3

    @property
    def n_positive(self) -> int:
        """Cells of class 1+ or higher."""
        return self.n1 + self.n2 + self.n3

    @property
    def h_score(self) -> float:
        """H-score, 0-300: ``(1 n1 + 2 n2 + 3 n3) / n * 100``; NaN without cells."""
        if self.n == 0:
            return float("nan")
        return 100.0 * (self.n1 + 2 * self.n2 + 3 * self.n3) / self.n

    @property
    def pct_positive(self) -> float:
        """Percentage of cells of class 1+ or higher, 0-100; NaN without cells."""
        if self.n == 0:
            return float("nan")
        return 100.0 * self.n_positive / self.n

    @property
    def allred(self) -> int:
        """Allred score 0 or 2-8: proportion score plus intensity score."""
        return allred_proportion_score(self) + allred_intensity_score(self)


def allred_proportion_score(counts: ClassCounts) -> int:
    """Allred proportion score from the fraction of positive cells.

    0: none; 1: < 1 %; 2: 1-10 %; 3: 10-33 %; 4: 33-67 %; 5: > 67 %
    (Allred et al., Mod. Pathol. 1998; lower bounds inclusive, as QuPath).
    """
    if counts.n == 0 or counts.n_positive == 0:
        return 0
    p = counts.n_positive / counts.n
    if p < 0.01:
        return 1
    if p < 0.10:
        return 2
    if p < 1 / 3:
        return 3
    if p < 2 / 3:
        return 4
    return 5


def allred_intensity_score(counts: ClassCounts) -> int:
    """Allred intensity score: mean class of the positive cells, rounded (1-3), 0 if none.

    Rounding is half up, so a mean of exactly 1.5 scores 2.
    """
    if counts.n_positive == 0:
        return 0
    mean = (counts.n1 + 2 * counts.n2 + 3 * counts.n3) / counts.n_positive
    return int(np.floor(mean + 0.5))


@dataclass(frozen=True)
class PositivityRule:
    """How a region's counts become a positive / negative / indeterminate call.

    Parameters
    ----------
    metric : {"h_score", "pct_positive"}
        The region value compared with the cut-off.
    cutoff : float
        A region is positive when ``metric >= cutoff``.
    borderline : float
        Half width of the band around the cut-off, in the metric's units; a
        value with ``|metric - cutoff| < borderline`` is indeterminate.
    min_cells : int
        Fewer scored cells than this make the call indeterminate.
    """

    metric: Literal["h_score", "pct_positive"] = "h_score"
    cutoff: float = 100.0
    borderline: float = 10.0
    min_cells: int = 500

    def __post_init__(self) -> None:
        if self.metric not in ("h_score", "pct_positive"):
            raise ValueError(f"metric must be h_score or pct_positive, got {self.metric!r}")
        top = 300.0 if self.metric == "h_score" else 100.0
        if not 0.0 <= float(self.cutoff) <= top:
            raise ValueError(f"cutoff must be within 0-{top:g} for {self.metric}, got {self.cutoff!r}")
        if not float(self.borderline) >= 0.0:
            raise ValueError(f"borderline must be >= 0, got {self.borderline!r}")
        if int(self.min_cells) != self.min_cells or self.min_cells < 1:
            raise ValueError(f"min_cells must be a positive integer, got {self.min_cells!r}")
        object.__setattr__(self, "cutoff", float(self.cutoff))
        object.__setattr__(self, "borderline", float(self.borderline))
        object.__setattr__(self, "min_cells", int(self.min_cells))

    def value(self, counts: ClassCounts) -> float:
        """The region value this rule compares with the cut-off."""
        return counts.h_score if self.metric == "h_score" else counts.pct_positive


@dataclass(frozen=True)
class Call:
    """A region's call and why."""

    call: Literal["positive", "negative", "indeterminate"]
    reason: str = field(default="")


def call_region(counts: ClassCounts, rule: PositivityRule, *, interval: Interval | None = None) -> Call:
    """Positive, negative or indeterminate call of a region from its counts.

    Parameters
    ----------
    counts : ClassCounts
        Cells of the region, summed over tiles.
    rule : PositivityRule
    interval : Interval, optional
        Confidence interval of the rule's metric; when given, a value whose
        interval holds the cut-off is indeterminate.

    Returns
    -------
    Call
        ``indeterminate`` with a reason when there are fewer than
        ``rule.min_cells`` cells, the value lies inside the borderline band,
        or the interval holds the cut-off (checked in that order); else
        ``positive`` when ``value >= cutoff``, ``negative`` otherwise.
    """
    if counts.n < rule.min_cells:
        return Call("indeterminate", f"{counts.n} cells, fewer than the {rule.min_cells} required")
    value = rule.value(counts)
    if abs(value - rule.cutoff) < rule.borderline:
        return Call(
            "indeterminate",
            f"{rule.metric} {value:.1f} within {rule.borderline:g} of the cut-off {rule.cutoff:g}",
        )
    if interval is not None and interval.holds(rule.cutoff):
        return Call(
            "indeterminate",
            f"{rule.metric} interval {interval.low:.1f}-{interval.high:.1f} holds the cut-off {rule.cutoff:g}",
        )
    return Call("positive" if value >= rule.cutoff else "negative")

"""Several pathologists: their agreement among themselves, and whether the tool lies within their spread.

Leave-one-out comparison: for each rater ``j``, rater ``j`` and the tool are
each compared with the same reference: for scores the mean score of the
other raters, by ICC(A,1); for calls each of the other raters, by Cohen's
kappa averaged over them (Light's kappa, Light 1971 Psychol Bull 76:365-377;
a majority of the others would tie whenever two of them disagree). The tool is
*within* the raters' spread when the mean of its leave-one-out values lies
between the lowest and the highest rater's value, *above* when it beats every
rater, *below* when every rater beats it. Comparing the tool with the mean of
all raters and a rater with the mean of the others would favour the tool (a
mean of more raters is less noisy), hence the matched references.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ihc_score.validation.agreement import MIN_PAIRS, Estimate, cohen_kappa, confusion, finite, fleiss_kappa, intraclass

__all__ = ["LeaveOneOut", "RaterSpread", "majority", "numeric_spread", "call_spread", "SPREAD_METHOD"]

#: What :class:`RaterSpread` computes, written beside it in the JSON.
SPREAD_METHOD = (
    "for each rater, that rater's and the tool's agreement with the other raters: scores, ICC(A,1) with the mean of "
    "the other raters' scores; calls, Cohen's kappa with each other rater, averaged; the tool is within the raters' "
    "spread when the mean of its values lies between the lowest and highest rater's value, above or below otherwise"
)


def majority(calls: Sequence[str]) -> str | None:
    """The most frequent call, or None when there is none or two calls tie for most frequent."""
    top = Counter(calls).most_common(2)
    if not top or len(top) == 2 and top[0][1] == top[1][1]:
        return None
    return top[0][0]


@dataclass(frozen=True)
class LeaveOneOut:
    """Rater ``rater``'s and the tool's agreement with the other raters over ``n`` items (see the module docstring)."""

    rater: str
    n: int
    rater_vs_others: float
    tool_vs_others: float

    def to_json(self) -> dict[str, Any]:
        return {"rater": self.rater, "n": self.n, "rater_vs_others": finite(self.rater_vs_others),
                "tool_vs_others": finite(self.tool_vs_others)}


@dataclass(frozen=True)
class RaterSpread:
    """Agreement among ``k`` raters on ``n`` items rated by all of them and by the tool; see the module docstring.

    Attributes
    ----------
    statistic : str
        ``icc_a1`` (scores) or ``cohen_kappa`` (calls): the leave-one-out statistic.
    among : Estimate or None
        ICC(A,1) among the raters with its CI (scores) or Fleiss' kappa (calls, no CI).
    among_statistic : str
        ``icc_a1`` or ``fleiss_kappa``.
    """

    statistic: str
    among_statistic: str
    n: int
    k: int
    among: Estimate | None = None
    leave_one_out: tuple[LeaveOneOut, ...] = ()
    note: str = ""

    @property
    def rater_range(self) -> tuple[float, float]:
        """Lowest and highest rater's leave-one-out value (NaN when none is defined)."""
        values = [v.rater_vs_others for v in self.leave_one_out if math.isfinite(v.rater_vs_others)]
        return (min(values), max(values)) if values else (math.nan, math.nan)

    @property
    def tool_mean(self) -> float:
        """Mean of the tool's leave-one-out values (NaN when none is defined)."""
        values = [v.tool_vs_others for v in self.leave_one_out if math.isfinite(v.tool_vs_others)]
        return float(np.mean(values)) if values else math.nan

    @property
    def position(self) -> str:
        """``below``, ``within`` or ``above`` the raters' range; empty when undefined."""
        (lo, hi), tool = self.rater_range, self.tool_mean
        if not (math.isfinite(lo) and math.isfinite(tool)):
            return ""
        return "below" if tool < lo else "above" if tool > hi else "within"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "k": self.k, "statistic": self.statistic, "method": SPREAD_METHOD}
        if self.note:
            return {**out, "note": self.note}
        lo, hi = self.rater_range
        return {
            **out, self.among_statistic: self.among.to_json() if self.among else None,
            "leave_one_out": [v.to_json() for v in self.leave_one_out],
            "rater_range": [finite(lo), finite(hi)], "tool_mean": finite(self.tool_mean),
            "tool_position": self.position or None,
        }


def numeric_spread(tool: ArrayLike, raters: ArrayLike, names: Sequence[str]) -> RaterSpread:
    """ICC(A,1) among raters and the leave-one-out ICC(A,1) of each rater and of the tool.

    Parameters
    ----------
    tool : array_like, shape (n,)
        The tool's scores of the items rated by every rater.
    raters : array_like, shape (n, k)
        Each rater's scores of the same items, columns in the order of ``names``.
    """
    t, m = np.asarray(tool, dtype=float), np.asarray(raters, dtype=float).reshape(len(tool), len(names))
    n, k = m.shape
    base = RaterSpread("icc_a1", "icc_a1", n, k)
    if n < MIN_PAIRS or k < 2:
        return _short(base)
    runs = []
    for j, name in enumerate(names):
        others = np.delete(m, j, axis=1).mean(axis=1)
        runs.append(LeaveOneOut(name, n, intraclass(np.column_stack([m[:, j], others])).absolute.value,
                                intraclass(np.column_stack([t, others])).absolute.value))
    return RaterSpread("icc_a1", "icc_a1", n, k, among=intraclass(m).absolute, leave_one_out=tuple(runs))


def call_spread(tool: Sequence[str], raters: Sequence[Sequence[str]], names: Sequence[str]) -> RaterSpread:
    """Fleiss' kappa among raters, and each rater's and the tool's Cohen's kappa with the other raters, averaged.

    Parameters
    ----------
    tool : sequence of str, length n
        The tool's calls of the items called by every rater.
    raters : sequence of sequences of str, shape (n, k)
        Each item's calls by the raters, in the order of ``names``.
    """
    n, k = len(tool), len(names)
    base = RaterSpread("cohen_kappa", "fleiss_kappa", n, k)
    if n < MIN_PAIRS or k < 2:
        return _short(base)
    columns = [[row[j] for row in raters] for j in range(k)]

    def kappa(a: Sequence[str], b: Sequence[str]) -> float:
        return cohen_kappa(confusion(a, b)).value

    runs = []
    for j, name in enumerate(names):
        others = [columns[i] for i in range(k) if i != j]
        runs.append(LeaveOneOut(name, n, _mean([kappa(o, columns[j]) for o in others]),
                                _mean([kappa(o, tool) for o in others])))
    return RaterSpread("cohen_kappa", "fleiss_kappa", n, k, among=Estimate(fleiss_kappa(raters)),
                       leave_one_out=tuple(runs))


def _mean(values: list[float]) -> float:
    finite_values = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite_values)) if finite_values else math.nan


def _short(base: RaterSpread) -> RaterSpread:
    if base.k < 2:
        note = "a single rater"
    else:
        note = f"{base.n} item(s) rated by every rater and the tool; at least {MIN_PAIRS} are needed"
    return RaterSpread(base.statistic, base.among_statistic, base.n, base.k, note=note)

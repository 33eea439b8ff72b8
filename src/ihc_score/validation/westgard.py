"""Westgard multirule quality control of a control slide's H-score: limits, z-scores and the rules each run breaks.

A control slide (the same block, a new section) is stained and scanned with
every batch; its H-score is one control observation per run. The rules are
those of Westgard, Barry, Hunt and Groth (1981), "A multi-rule Shewhart chart
for quality control in clinical chemistry", Clin Chem 27:493-501, applied to
the z-score of each run, ``z = (H - mean) / SD``:

========  =====================================================================
1-2s      this run beyond 2 SD (either side): a warning, never a rejection
1-3s      this run beyond 3 SD
2-2s      this run and the previous one beyond 2 SD on the same side
R-4s      this run beyond 2 SD on one side and the previous run beyond 2 SD on the other
4-1s      this run and the three before it beyond 1 SD on the same side
10-x      this run and the nine before it on the same side of the mean
========  =====================================================================

"Beyond" is strict (``z > 2``, not ``z >= 2``). Two choices differ from the
1981 paper and are stated here:

* R-4s is defined there within one run (the range of two controls measured
  together exceeds 4 SD). With one control slide per batch there is no
  within-run range, so the rule is applied to two consecutive runs, as the
  paper's across-run rules are; it then signals a change of imprecision
  between batches.
* The 1981 flowchart looks at the other rules only after a 1-2s warning. Here
  every rule is checked on every run (as computer implementations commonly
  do), so a drift inside 2 SD is caught by 4-1s or 10-x without waiting for a
  value beyond 2 SD.

A missing value (NaN) is beyond nothing and breaks every run of consecutive values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ihc_score.errors import ValidationInputError

__all__ = [
    "RULES", "WARNING_RULES", "REJECTION_RULES", "ControlLimits", "baseline_limits", "z_scores", "rule_matrix",
    "violations_by_run", "latest_violations", "rejects",
]  # fmt: skip

#: Every rule, in the order they are reported.
RULES = ("1-2s", "1-3s", "2-2s", "R-4s", "4-1s", "10-x")
#: Rules that only warn: the run is still accepted.
WARNING_RULES = ("1-2s",)
#: Rules that reject the run: the batch is out of control.
REJECTION_RULES = ("1-3s", "2-2s", "R-4s", "4-1s", "10-x")


@dataclass(frozen=True)
class ControlLimits:
    """Mean and SD of a control's H-score that z-scores are measured against.

    Attributes
    ----------
    mean, sd : float
        H-score units (0-300); ``sd > 0``.
    source : str
        ``target`` (set by the laboratory) or ``baseline`` (estimated from the first runs).
    n_runs : int
        Runs the baseline was estimated from; 0 for a target.
    """

    mean: float
    sd: float
    source: str
    n_runs: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.sd) and self.sd > 0):
            raise ValidationInputError(
                f"control limits need a finite mean and an SD above 0, got {self.mean}, {self.sd}"
            )

    def line(self, k: float) -> float:
        """The H-score ``k`` SD from the mean (``k`` may be negative)."""
        return self.mean + k * self.sd


def baseline_limits(values: Sequence[float]) -> ControlLimits:
    """Limits from a baseline series: its mean and sample SD (``ddof=1``), as Westgard et al. (1981) set them.

    Parameters
    ----------
    values : sequence of float
        H-scores of the baseline runs, in run order; NaN is not allowed.

    Raises
    ------
    ValidationInputError
        Fewer than 2 values, a missing value, or an SD of 0 (every run gave the
        same H-score); the message says to set the limits with ``--target``.
    """
    x = np.asarray(values, dtype=float)
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise ValidationInputError(
            f"the baseline needs at least 2 H-scores, all present (got {x.size}); set the limits with --target MEAN,SD"
        )
    sd = float(np.std(x, ddof=1))
    if not sd > 0:
        raise ValidationInputError(
            f"the {x.size} baseline runs all gave H-score {x[0]:g} (SD 0); set the limits with --target MEAN,SD"
        )
    return ControlLimits(mean=float(np.mean(x)), sd=sd, source="baseline", n_runs=int(x.size))


def z_scores(values: Sequence[float], limits: ControlLimits) -> np.ndarray:
    """``(value - mean) / SD`` of each value (NaN stays NaN)."""
    return (np.asarray(values, dtype=float) - limits.mean) / limits.sd


def _windows(z: np.ndarray, n: int) -> np.ndarray:
    """Windows of the last ``n`` values ending at each run (``(..., runs, n)``); runs before the n-th get NaN."""
    pad = np.full(z.shape[:-1] + (n - 1,), np.nan)
    return np.lib.stride_tricks.sliding_window_view(np.concatenate([pad, z], axis=-1), n, axis=-1)


def _same_side(z: np.ndarray, n: int, k: float) -> np.ndarray:
    """True where the run and the ``n - 1`` before it are all above ``+k`` or all below ``-k``."""
    w = _windows(z, n)
    with np.errstate(invalid="ignore"):
        return np.all(w > k, axis=-1) | np.all(w < -k, axis=-1)


def rule_matrix(z: Sequence[float] | np.ndarray) -> dict[str, np.ndarray]:
    """For each rule, whether each run breaks it, given the runs before it.

    Parameters
    ----------
    z : array of float, shape (..., runs)
        z-scores in run order along the last axis (earlier series may be
        stacked along the first axes, for simulations).

    Returns
    -------
    dict of str to bool array of z's shape
        Keyed by :data:`RULES`.
    """
    z = np.asarray(z, dtype=float)
    if z.ndim == 0 or z.shape[-1] == 0:
        return {rule: np.zeros(z.shape if z.ndim else (0,), dtype=bool) for rule in RULES}
    pair = _windows(z, 2)
    with np.errstate(invalid="ignore"):
        range_4s = ((pair[..., 0] > 2) & (pair[..., 1] < -2)) | ((pair[..., 0] < -2) & (pair[..., 1] > 2))
    return {
        "1-2s": _same_side(z, 1, 2.0),
        "1-3s": _same_side(z, 1, 3.0),
        "2-2s": _same_side(z, 2, 2.0),
        "R-4s": range_4s,
        "4-1s": _same_side(z, 4, 1.0),
        "10-x": _same_side(z, 10, 0.0),
    }


def violations_by_run(z: Sequence[float]) -> list[tuple[str, ...]]:
    """The rules each run of a series breaks (in :data:`RULES` order), judged on that run and the runs before it."""
    matrix = rule_matrix(np.asarray(z, dtype=float).reshape(-1))
    n = len(np.asarray(z).reshape(-1))
    return [tuple(rule for rule in RULES if matrix[rule][i]) for i in range(n)]


def latest_violations(z: Sequence[float]) -> tuple[str, ...]:
    """The rules the last run of ``z`` breaks, given the runs before it; ``()`` for an empty series."""
    by_run = violations_by_run(z)
    return by_run[-1] if by_run else ()


def rejects(rules: Sequence[str]) -> tuple[str, ...]:
    """The rejection rules among ``rules`` (empty when the run is in control, perhaps with a 1-2s warning)."""
    return tuple(rule for rule in rules if rule in REJECTION_RULES)

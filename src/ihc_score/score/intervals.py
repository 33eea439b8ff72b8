"""Confidence intervals of a region's H-score and percent positive.

Cells of one region are not independent: stain intensity drifts across a
slide, tumour cells cluster, fixation differs from edge to centre. A formula
that treats every cell as an independent draw gives intervals far too
narrow on a slide of 100,000 cells. Instead the region is cut into square
tissue blocks (default 250 um), and the *blocks* are resampled with
replacement (a spatial block bootstrap, Kuensch 1989 / Hall 1985): each
resample sums the class counts of the blocks drawn, and the H-score and
percent positive are computed from those sums, as for the region itself.
The 95 % interval is the 2.5th-97.5th percentile of the resamples.

Pure functions over arrays; deterministic for a given seed.

References
----------
.. [1] H. R. Kuensch, "The jackknife and the bootstrap for general stationary
   observations", Ann. Statist. 17 (1989).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ihc_score.checks import require_range

__all__ = ["IntervalParams", "Interval", "block_counts", "bootstrap_intervals"]


@dataclass(frozen=True)
class IntervalParams:
    """How region intervals are computed and used.

    Parameters
    ----------
    block_um : float
        Side of the square tissue blocks resampled together, um. Larger than
        the scale over which neighbouring cells resemble each other.
    n_resamples : int
        Bootstrap resamples.
    level : float
        Coverage of the interval (0.95 for 95 %).
    min_blocks : int
        Fewer occupied blocks than this give no interval (NaN): a bootstrap
        over a handful of blocks says little.
    seed : int
        Seed of the resampling, so the same cells give the same interval.
    indeterminate_if_crossing : bool
        Whether a call whose interval holds the cut-off becomes indeterminate.
    """

    block_um: float = 250.0
    n_resamples: int = 1000
    level: float = 0.95
    min_blocks: int = 5
    seed: int = 0
    indeterminate_if_crossing: bool = True

    def __post_init__(self) -> None:
        require_range("block_um", self.block_um, low=0.0, low_open=True, unit="um")
        if int(self.n_resamples) != self.n_resamples or self.n_resamples < 100:
            raise ValueError(f"n_resamples must be an integer >= 100, got {self.n_resamples!r}")
        require_range("level", self.level, low=0.5, high=1.0, high_open=True)
        if int(self.min_blocks) != self.min_blocks or self.min_blocks < 2:
            raise ValueError(f"min_blocks must be an integer >= 2, got {self.min_blocks!r}")


@dataclass(frozen=True)
class Interval:
    """A two-sided interval; both ends NaN when it could not be computed."""

    low: float = float("nan")
    high: float = float("nan")

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))

    def holds(self, value: float) -> bool:
        """Whether ``value`` lies in the interval where the call would flip: ``low < value <= high``.

        A region is positive when its value is ``>= cutoff``; if every
        resample is at or above the cut-off (``low >= cutoff``) the call is
        stable, and if every one is below (``high < cutoff``) too.
        """
        return self.defined and self.low < value <= self.high


def block_counts(l0_x: np.ndarray, l0_y: np.ndarray, classes: np.ndarray, *, block_px: float) -> np.ndarray:
    """Class counts per occupied square block.

    Parameters
    ----------
    l0_x, l0_y : ndarray
        Cell centroids, level-0 px.
    classes : ndarray of int
        Cell classes 0-3.
    block_px : float
        Block side in level-0 px.

    Returns
    -------
    ndarray of int64, shape (n_blocks, 4)
        Rows ordered by block (row-major), so the result does not depend on
        cell order.
    """
    if len(classes) == 0:
        return np.zeros((0, 4), np.int64)
    bx = np.floor(np.asarray(l0_x, np.float64) / block_px).astype(np.int64)
    by = np.floor(np.asarray(l0_y, np.float64) / block_px).astype(np.int64)
    key = (by - by.min()) * (bx.max() - bx.min() + 1) + (bx - bx.min())
    _, inverse = np.unique(key, return_inverse=True)
    counts = np.zeros((inverse.max() + 1, 4), np.int64)
    np.add.at(counts, (inverse, np.asarray(classes, np.int64)), 1)
    return counts


def bootstrap_intervals(counts: np.ndarray, params: IntervalParams = IntervalParams()) -> tuple[Interval, Interval]:
    """Block-bootstrap intervals of the H-score and the percent positive.

    Parameters
    ----------
    counts : ndarray, shape (n_blocks, 4)
        Class counts per block (:func:`block_counts`).
    params : IntervalParams

    Returns
    -------
    (Interval, Interval)
        H-score (0-300) and percent positive (0-100). NaN when there are
        fewer than ``params.min_blocks`` blocks.
    """
    counts = np.asarray(counts, np.int64)
    k = counts.shape[0]
    if k < params.min_blocks:
        return Interval(), Interval()
    rng = np.random.default_rng(params.seed)
    # How often each block is drawn in each resample: multinomial(k; 1/k each).
    weights = rng.multinomial(k, np.full(k, 1.0 / k), size=params.n_resamples)
    resampled = weights @ counts  # (n_resamples, 4)
    n = resampled.sum(axis=1).astype(np.float64)
    n[n == 0] = np.nan  # a resample of empty blocks only: no value
    h = 100.0 * (resampled[:, 1] + 2 * resampled[:, 2] + 3 * resampled[:, 3]) / n
    pct = 100.0 * resampled[:, 1:].sum(axis=1) / n
    alpha = (1.0 - params.level) / 2.0
    q = [100 * alpha, 100 * (1 - alpha)]
    h_lo, h_hi = np.nanpercentile(h, q)
    p_lo, p_hi = np.nanpercentile(pct, q)
    return Interval(float(h_lo), float(h_hi)), Interval(float(p_lo), float(p_hi))

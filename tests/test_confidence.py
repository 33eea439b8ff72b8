"""Block-bootstrap intervals: coverage against truth, spatial correlation, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ihc_score.score import (
    ClassCounts,
    Interval,
    IntervalParams,
    PositivityRule,
    block_counts,
    bootstrap_intervals,
    call_region,
)


def test_block_counts_by_hand():
    x = np.array([10, 20, 260, 270, 900])
    y = np.array([10, 30, 10, 10, 10])
    cls = np.array([0, 3, 1, 1, 2])
    counts = block_counts(x, y, cls, block_px=250)
    assert counts.tolist() == [[1, 0, 0, 1], [0, 2, 0, 0], [0, 0, 1, 0]]
    # cell order does not matter
    order = np.array([4, 2, 0, 3, 1])
    assert block_counts(x[order], y[order], cls[order], block_px=250).tolist() == counts.tolist()


def test_uniform_region_gives_a_tight_interval_around_the_value():
    counts = np.tile([25, 25, 25, 25], (200, 1))  # every block H = 150
    h, pct = bootstrap_intervals(counts)
    assert h.low == pytest.approx(150) and h.high == pytest.approx(150)
    assert pct.low == pytest.approx(75) and pct.high == pytest.approx(75)


def test_patchy_region_is_wider_than_independent_cells_would_say():
    """Half the blocks all 3+, half all 0: H = 150, but the blocks, not the cells, are the units."""
    counts = np.array([[0, 0, 0, 100]] * 20 + [[100, 0, 0, 0]] * 20)
    h, _ = bootstrap_intervals(counts)
    # A binomial interval over 4000 independent cells would be about +-4.6 H points;
    # 40 blocks give a standard error of 150 / sqrt(40) * ... about +-47.
    assert h.low < 120 and h.high > 180
    assert h.low < 150 < h.high


def test_interval_covers_the_truth_at_about_the_nominal_rate():
    """Simulated slides: blocks whose positivity drifts; the 95 % interval covers the true mean ~95 % of the time."""
    rng = np.random.default_rng(5)
    covered, trials = 0, 200
    for t in range(trials):
        p = np.clip(rng.normal(0.5, 0.15, 60), 0, 1)  # each block's own fraction positive
        pos = rng.binomial(50, p)
        counts = np.stack([50 - pos, pos, np.zeros(60, int), np.zeros(60, int)], 1)
        _, pct = bootstrap_intervals(counts, IntervalParams(seed=t, n_resamples=400))
        covered += pct.low <= 50.0 <= pct.high
    assert 0.88 <= covered / trials <= 0.99


def test_too_few_blocks_give_no_interval_and_same_seed_same_result():
    h, pct = bootstrap_intervals(np.array([[10, 0, 0, 0]] * 4))
    assert not h.defined and math.isnan(pct.low)
    counts = np.random.default_rng(0).integers(0, 30, (50, 4))
    assert bootstrap_intervals(counts) == bootstrap_intervals(counts)


def test_interval_holding_the_cutoff_makes_the_call_indeterminate():
    rule = PositivityRule(cutoff=100, borderline=0, min_cells=1)
    counts = ClassCounts(0, 0, 0, 10)  # H 300, positive on its own
    assert call_region(counts, rule, interval=Interval(250, 310)).call == "positive"
    assert call_region(counts, rule, interval=Interval(100, 310)).call == "positive"  # low == cutoff: every resample >= cutoff
    c = call_region(counts, rule, interval=Interval(99.9, 310))
    assert c.call == "indeterminate" and "holds the cut-off 100" in c.reason
    assert call_region(ClassCounts(10, 0, 0, 0), rule, interval=Interval(0, 99.9)).call == "negative"
    assert call_region(counts, rule, interval=Interval()).call == "positive"  # undefined interval: no effect


def test_params_validation():
    with pytest.raises(ValueError, match="block_um"):
        IntervalParams(block_um=0)
    with pytest.raises(ValueError, match="level"):
        IntervalParams(level=1.0)

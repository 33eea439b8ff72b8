"""Classifier edges, H-score, Allred and calls against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ihc_score.score import (
    CellClass,
    ClassCounts,
    ClassifyParams,
    PositivityRule,
    allred_intensity_score,
    allred_proportion_score,
    call_region,
    classify,
)


def test_classify_threshold_edges_go_up():
    t = (0.2, 0.4, 0.6)
    values = np.array([0.0, 0.1999999, 0.2, 0.3999999, 0.4, 0.5999999, 0.6, 2.5, -0.1, np.nan])
    assert classify(values, t).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 0, 0]


def test_classify_single_threshold_gives_two_classes():
    assert classify(np.array([0.14, 0.15, 0.9]), (0.15,)).tolist() == [0, 1, 1]


def test_classify_params_validation():
    assert ClassifyParams().measurement == "dab_cell_mean"
    assert ClassifyParams("nucleus", "max", (0.3,)).measurement == "dab_nucleus_max"
    with pytest.raises(ValueError, match="increasing"):
        ClassifyParams(thresholds=(0.4, 0.2, 0.6))
    with pytest.raises(ValueError, match="1 or 3"):
        ClassifyParams(thresholds=(0.2, 0.4))
    with pytest.raises(ValueError, match="compartment"):
        ClassifyParams(compartment="membrane")  # type: ignore[arg-type]


def test_h_score_by_hand():
    # 10 cells: 4 negative, 3 weak, 2 moderate, 1 strong -> (3 + 4 + 3) / 10 * 100 = 100
    c = ClassCounts(4, 3, 2, 1)
    assert c.n == 10 and c.n_positive == 6
    assert c.h_score == pytest.approx(100.0)
    assert c.pct_positive == pytest.approx(60.0)
    assert ClassCounts(0, 0, 0, 7).h_score == pytest.approx(300.0)
    assert ClassCounts(7, 0, 0, 0).h_score == 0.0


def test_counts_are_additive_not_averaged():
    a, b = ClassCounts(90, 0, 0, 10), ClassCounts(0, 0, 0, 900)
    pooled = a + b
    assert pooled == ClassCounts(90, 0, 0, 910)
    # H-scores 30 and 300 average to 165, but the pooled cells give 273.
    assert pooled.h_score == pytest.approx(100 * 3 * 910 / 1000)


def test_from_classes_and_zero_cells():
    c = ClassCounts.from_classes(np.array([0, 3, 3, 1, CellClass.MODERATE]))
    assert c == ClassCounts(1, 1, 1, 2)
    empty = ClassCounts.from_classes(np.array([], dtype=np.int8))
    assert empty.n == 0 and math.isnan(empty.h_score) and math.isnan(empty.pct_positive)
    assert empty.allred == 0
    with pytest.raises(ValueError):
        ClassCounts(-1, 0, 0, 0)


@pytest.mark.parametrize(
    ("counts", "proportion", "intensity", "total"),
    [
        (ClassCounts(100, 0, 0, 0), 0, 0, 0),
        (ClassCounts(1000, 5, 0, 0), 1, 1, 2),  # 0.5 % weak
        (ClassCounts(99, 1, 0, 0), 2, 1, 3),  # exactly 1 % -> 2
        (ClassCounts(90, 0, 10, 0), 3, 2, 5),  # exactly 10 % -> 3
        (ClassCounts(60, 0, 0, 40), 4, 3, 7),  # 40 %
        (ClassCounts(0, 1, 0, 1), 5, 2, 7),  # mean class 2.0
        (ClassCounts(0, 1, 1, 0), 5, 2, 7),  # mean 1.5 rounds half up to 2
        (ClassCounts(10, 45, 45, 0), 5, 2, 7),  # 90 %
    ],
)
def test_allred_by_hand(counts, proportion, intensity, total):
    assert allred_proportion_score(counts) == proportion
    assert allred_intensity_score(counts) == intensity
    assert counts.allred == total


def test_call_rules():
    rule = PositivityRule(metric="h_score", cutoff=100, borderline=10, min_cells=10)
    assert call_region(ClassCounts(5, 0, 0, 0), rule).call == "indeterminate"
    assert "fewer than the 10" in call_region(ClassCounts(5, 0, 0, 0), rule).reason
    assert call_region(ClassCounts(0, 0, 0, 10), rule).call == "positive"  # 300
    assert call_region(ClassCounts(10, 0, 0, 0), rule).call == "negative"  # 0
    # H = 110: exactly at the band's edge -> outside the band -> positive
    assert call_region(ClassCounts(0, 9, 1, 0), rule).call == "positive"
    # H = 105 -> inside the band
    c = call_region(ClassCounts(1, 17, 2, 0), rule)
    assert c.call == "indeterminate" and "within 10" in c.reason
    # cutoff counts as positive (>=) when there is no band
    exact = PositivityRule(metric="pct_positive", cutoff=50, borderline=0, min_cells=1)
    assert call_region(ClassCounts(1, 1, 0, 0), exact).call == "positive"
    assert call_region(ClassCounts(2, 1, 0, 0), exact).call == "negative"


def test_rule_validation():
    with pytest.raises(ValueError, match="cutoff"):
        PositivityRule(metric="pct_positive", cutoff=150)
    with pytest.raises(ValueError, match="min_cells"):
        PositivityRule(min_cells=0)
    with pytest.raises(ValueError, match="metric"):
        PositivityRule(metric="allred")  # type: ignore[arg-type]

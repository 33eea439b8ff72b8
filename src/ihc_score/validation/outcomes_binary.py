"""A cut-off of the marker on a binary outcome: ROC curve, AUC, the chosen cut-off and how far to trust it.

A case is positive when its marker is at or above the cut-off, and the
event (outcome 1) is what a positive case should predict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ihc_score.errors import ValidationInputError
from ihc_score.validation.outcomes import BootstrapParams, percentile_interval, place_cutoff

__all__ = ["CutoffCriterion", "BinaryCalibration", "delong_auc", "choose_binary_cutoff", "calibrate_binary"]


@dataclass(frozen=True)
class CutoffCriterion:
    """How the cut-off is chosen.

    Parameters
    ----------
    kind : {"youden", "sensitivity", "specificity", "fixed"}
        ``youden``: the largest sensitivity + specificity - 1 (Youden 1950);
        ``sensitivity``: the best specificity among cut-offs whose sensitivity
        is at least ``value`` (and the best sensitivity among those);
        ``specificity``: the converse; ``fixed``: the cut-off ``value`` as it is.
    value : float
        The target (0-1] or the fixed cut-off; unused for ``youden``.
    """

    kind: Literal["youden", "sensitivity", "specificity", "fixed"] = "youden"
    value: float = math.nan

    def __post_init__(self) -> None:
        if self.kind not in ("youden", "sensitivity", "specificity", "fixed"):
            raise ValueError(f"kind must be youden, sensitivity, specificity or fixed, got {self.kind!r}")
        if self.kind in ("sensitivity", "specificity") and not 0.0 < self.value <= 1.0:
            raise ValueError(f"the target {self.kind} must be within 0 and 1, got {self.value!r}")
        if self.kind == "fixed" and not math.isfinite(self.value):
            raise ValueError("a fixed cut-off needs a value")

    @property
    def label(self) -> str:
        """e.g. ``youden``, ``sensitivity>=0.9``, ``fixed``."""
        return f"{self.kind}>={self.value:g}" if self.kind in ("sensitivity", "specificity") else self.kind


@dataclass(frozen=True)
class BinaryCalibration:
    """Statistics of a cut-off chosen on a binary outcome.

    Attributes
    ----------
    n, n_events : int
        Analysed cases and events (outcome 1) among them.
    auc, auc_se : float
        Area under the ROC curve of the continuous marker (scikit-learn) and
        its DeLong standard error. The AUC has no fitted parameter, so its
        apparent value needs no optimism correction.
    auc_ci : (float, float)
        DeLong 95 % interval (normal, clipped to [0, 1]).
    cutoff : float
        The chosen cut-off in the metric's units (positive when marker >= cutoff).
    cutoff_ci : (float, float)
        Percentile interval of the cut-off re-chosen in stratified bootstrap
        resamples (NaN for a fixed cut-off).
    sensitivity, specificity : float
        At the cut-off; ``*_ci`` Wilson intervals (statsmodels ``proportion_confint``).
    true_positives, false_negatives, true_negatives, false_positives : int
        The 2x2 table at the cut-off.
    rule_auc_apparent : float
        AUC of the dichotomised rule, i.e. its balanced accuracy
        (sensitivity + specificity) / 2, on the cases the cut-off was chosen on.
    rule_auc_optimism, rule_auc_corrected : float
        Harrell's bootstrap optimism of that value (the cut-off re-chosen in
        each resample; mean of its value in the resample minus its value on
        the original cases) and the apparent value less the optimism: what to
        expect of the rule on new cases of the same kind. Zero optimism for a
        fixed cut-off (nothing is chosen on the data).
    roc_fpr, roc_tpr, roc_thresholds : tuple of float
        The ROC curve's points (1 - specificity, sensitivity, threshold),
        thresholds descending, without scikit-learn's leading ``inf``.
    criterion : str
        :attr:`CutoffCriterion.label`.
    resamples, seed : int
        Of the bootstrap.
    warnings : tuple of str
        E.g. a marker that goes with fewer events, not more.
    """

    n: int
    n_events: int
    auc: float
    auc_se: float
    auc_ci: tuple[float, float]
    cutoff: float
    cutoff_ci: tuple[float, float]
    sensitivity: float
    sensitivity_ci: tuple[float, float]
    specificity: float
    specificity_ci: tuple[float, float]
    true_positives: int
    false_negatives: int
    true_negatives: int
    false_positives: int
    rule_auc_apparent: float
    rule_auc_optimism: float
    rule_auc_corrected: float
    roc_fpr: tuple[float, ...]
    roc_tpr: tuple[float, ...]
    roc_thresholds: tuple[float, ...]
    criterion: str
    resamples: int
    seed: int
    warnings: tuple[str, ...] = ()


def delong_auc(marker: np.ndarray, outcome: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """AUC with DeLong's standard error and normal interval.

    The AUC is the Mann-Whitney statistic: the fraction of (event,
    non-event) pairs in which the event has the higher marker, ties counted
    one half. Its variance is DeLong's structural-component estimate
    ``var(V10)/m + var(V01)/n`` (DeLong, DeLong & Clarke-Pearson 1988,
    Biometrics 44:837-845), computed from mid-ranks as in Sun & Xu 2014
    (IEEE Signal Processing Letters 21:1389-1393).

    Returns
    -------
    auc, se, low, high : float
        The interval is ``auc -/+ z * se`` clipped to [0, 1].
    """
    from scipy.stats import norm, rankdata

    marker, outcome = np.asarray(marker, float), np.asarray(outcome, int)
    pos, neg = marker[outcome == 1], marker[outcome == 0]
    m, n = pos.size, neg.size
    if m < 2 or n < 2:
        raise ValueError("DeLong's variance needs at least two cases of each outcome")
    all_ranks = rankdata(np.concatenate([pos, neg]))
    # Placement values: V10[i] = share of non-events below event i, V01[j] = share of events above non-event j.
    v10 = (all_ranks[:m] - rankdata(pos)) / n
    v01 = 1.0 - (all_ranks[m:] - rankdata(neg)) / m
    auc = float(v10.mean())
    se = math.sqrt(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    z = float(norm.ppf(0.5 + level / 2.0))
    return auc, se, max(0.0, auc - z * se), min(1.0, auc + z * se)


def _roc(marker: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ROC point (scikit-learn ``roc_curve``, no point dropped), without the leading ``inf`` threshold."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(outcome, marker, drop_intermediate=False)
    return fpr[1:], tpr[1:], thresholds[1:]


def choose_binary_cutoff(marker: np.ndarray, outcome: np.ndarray, criterion: CutoffCriterion) -> float:
    """The cut-off (marker >= cutoff is positive) the criterion chooses; NaN when no cut-off meets the target.

    Among equally good thresholds the highest is taken (Youden), or the one
    with the better other figure (targets). The returned value is placed by
    :func:`~ihc_score.validation.outcomes.place_cutoff` between observed values.
    """
    if criterion.kind == "fixed":
        return float(criterion.value)
    fpr, tpr, thresholds = _roc(marker, outcome)
    if criterion.kind == "youden":
        index = int(np.argmax(tpr - fpr))  # first maximum: the highest threshold
    else:
        sens = criterion.kind == "sensitivity"
        reached = (tpr if sens else 1.0 - fpr) >= criterion.value - 1e-12
        if not reached.any():
            return math.nan
        best, other = (1.0 - fpr, tpr) if sens else (tpr, 1.0 - fpr)
        order = np.lexsort((-other, -best))  # best first, then the better other figure
        index = int(order[np.flatnonzero(reached[order])[0]])
    return place_cutoff(np.asarray(marker, float), float(thresholds[index]))


def _balanced_accuracy(marker: np.ndarray, outcome: np.ndarray, cutoff: float) -> float:
    """(sensitivity + specificity) / 2 of ``marker >= cutoff``: the AUC of the dichotomised rule."""
    if not math.isfinite(cutoff):
        return math.nan
    positive = marker >= cutoff
    return 0.5 * (positive[outcome == 1].mean() + (~positive[outcome == 0]).mean())


def _bootstrap(
    marker: np.ndarray, outcome: np.ndarray, criterion: CutoffCriterion, boot: BootstrapParams
) -> tuple[np.ndarray, np.ndarray]:
    """Cut-offs re-chosen in stratified resamples and the optimism of each (Harrell 2015, section 5.3.4).

    Events and non-events are resampled apart, so each resample keeps the
    numbers of both. The optimism of a resample is the balanced accuracy of
    its own cut-off on the resample less that on the original cases.
    """
    rng = np.random.default_rng(boot.seed)
    events, others = np.flatnonzero(outcome == 1), np.flatnonzero(outcome == 0)
    cutoffs, optimism = np.full(boot.resamples, math.nan), np.full(boot.resamples, math.nan)
    for b in range(boot.resamples):
        take = np.concatenate([rng.choice(events, events.size), rng.choice(others, others.size)])
        x, y = marker[take], outcome[take]
        cut = choose_binary_cutoff(x, y, criterion)
        cutoffs[b] = cut
        optimism[b] = _balanced_accuracy(x, y, cut) - _balanced_accuracy(marker, outcome, cut)
    return cutoffs, optimism


def _wilson(count: int, total: int, level: float) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    if total == 0:
        return (math.nan, math.nan)
    low, high = proportion_confint(count, total, alpha=1.0 - level, method="wilson")
    return (float(low), float(high))


def calibrate_binary(
    marker: np.ndarray,
    outcome: np.ndarray,
    criterion: CutoffCriterion | None = None,
    boot: BootstrapParams | None = None,
) -> BinaryCalibration:
    """Choose and appraise a cut-off of the marker on a binary outcome.

    Parameters
    ----------
    marker : numpy.ndarray
        Each case's marker (metric units); higher should mean the event.
    outcome : numpy.ndarray
        1 = event, 0 = no event.
    criterion : CutoffCriterion, optional
        Youden's index by default.
    boot : BootstrapParams, optional
        Resamples, seed and level of every bootstrap interval.

    Returns
    -------
    BinaryCalibration

    Raises
    ------
    ValidationInputError
        No cut-off reaches the sensitivity or specificity asked for.

    Notes
    -----
    AUC interval: DeLong. Cut-off interval: percentile of the cut-off re-chosen
    in stratified bootstrap resamples (fixed seed). Sensitivity and
    specificity intervals: Wilson score. Optimism: Harrell's bootstrap of
    the dichotomised rule's balanced accuracy (Harrell, Regression Modeling
    Strategies, 2nd ed. 2015, section 5.3.4; Steyerberg, Clinical Prediction
    Models, 2019, ch. 17).
    """
    criterion, boot = criterion or CutoffCriterion(), boot or BootstrapParams()
    marker, outcome = np.asarray(marker, float), np.asarray(outcome, int)
    auc, se, auc_low, auc_high = delong_auc(marker, outcome, boot.level)
    cutoff = choose_binary_cutoff(marker, outcome, criterion)
    if not math.isfinite(cutoff):
        raise ValidationInputError(f"no cut-off reaches {criterion.kind} {criterion.value:g} on these cases")
    positive, event = marker >= cutoff, outcome == 1
    tp, fn = int((positive & event).sum()), int((~positive & event).sum())
    tn, fp = int((~positive & ~event).sum()), int((positive & ~event).sum())
    apparent = _balanced_accuracy(marker, outcome, cutoff)
    if criterion.kind == "fixed":
        cutoff_ci, optimism = (math.nan, math.nan), 0.0
    else:
        cutoffs, optimisms = _bootstrap(marker, outcome, criterion, boot)
        cutoff_ci, optimism = percentile_interval(cutoffs, boot.level), float(np.nanmean(optimisms))
    fpr, tpr, thresholds = _roc(marker, outcome)
    warnings = () if auc >= 0.5 else (
        f"AUC {auc:.3f} < 0.5: a higher marker goes with fewer events here, not more",
    )
    return BinaryCalibration(
        n=int(marker.size), n_events=int(event.sum()), auc=auc, auc_se=se, auc_ci=(auc_low, auc_high),
        cutoff=cutoff, cutoff_ci=cutoff_ci,
        sensitivity=tp / (tp + fn), sensitivity_ci=_wilson(tp, tp + fn, boot.level),
        specificity=tn / (tn + fp), specificity_ci=_wilson(tn, tn + fp, boot.level),
        true_positives=tp, false_negatives=fn, true_negatives=tn, false_positives=fp,
        rule_auc_apparent=apparent, rule_auc_optimism=optimism, rule_auc_corrected=apparent - optimism,
        roc_fpr=tuple(map(float, fpr)), roc_tpr=tuple(map(float, tpr)), roc_thresholds=tuple(map(float, thresholds)),
        criterion=criterion.label, resamples=boot.resamples, seed=boot.seed, warnings=warnings,
    )

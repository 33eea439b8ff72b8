"""A cut-off of the marker on a time to an event: maximally selected log-rank, Kaplan-Meier, Cox and C-index.

A case is positive when its marker is at or above the cut-off; a marker
that predicts the event gives a hazard ratio (positive vs negative) above 1.
"""

from __future__ import annotations

import math
import warnings as _warnings
from dataclasses import dataclass

import numpy as np

from ihc_score.errors import ValidationInputError
from ihc_score.validation.outcomes import BootstrapParams, percentile_interval, place_cutoff

__all__ = [
    "KaplanMeierCurve",
    "SurvivalCalibration",
    "logrank_statistics",
    "lausen_schumacher_p",
    "selectable_thresholds",
    "calibrate_survival",
]

#: Shares of cases below the cut-off between which the cut-off is searched (the marker's 10th-90th percentile).
MIN_SHARE, MAX_SHARE = 0.1, 0.9


@dataclass(frozen=True)
class KaplanMeierCurve:
    """Kaplan-Meier estimate of one group (lifelines), with its pointwise 95 % interval (exponential Greenwood)."""

    group: str
    time: tuple[float, ...]
    survival: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    at_risk: tuple[int, ...]
    median: float


@dataclass(frozen=True)
class SurvivalCalibration:
    """Statistics of a cut-off chosen on a time to an event.

    Attributes
    ----------
    n, n_events : int
        Analysed cases and events among them.
    c_index, c_index_ci : float, (float, float)
        Harrell's concordance of the continuous marker with the time (higher
        marker, earlier event; lifelines), and its percentile bootstrap interval.
    cutoff, cutoff_ci : float, (float, float)
        The cut-off (positive when marker >= cutoff) and the percentile
        interval of the cut-off re-chosen in bootstrap resamples (NaN for a
        fixed cut-off).
    method : str
        ``maxstat_logrank`` (maximally selected log-rank) or ``fixed``.
    logrank_chi2, p_logrank : float
        Log-rank test at the cut-off (lifelines); the p-value is naive when the
        cut-off was selected on these data (it ignores the search).
    p_lausen_schumacher : float
        The maximally selected statistic's p-value by Lausen & Schumacher's
        approximation (1992), which accounts for the search over cut-offs.
    p_permutation : float
        The same by permutation: the share of marker permutations whose
        maximal statistic reaches the observed one (with one added to both counts).
    hazard_ratio, hazard_ratio_ci, hazard_ratio_p : float, (float, float), float
        Cox proportional-hazards ratio of positive vs negative (lifelines
        ``CoxPHFitter``), its 95 % Wald interval and p-value; optimistic when
        the cut-off was selected on these data.
    n_positive, n_negative, events_positive, events_negative : int
        Group sizes and events at the cut-off.
    curves : tuple of KaplanMeierCurve
        ``negative`` and ``positive``.
    profile_thresholds, profile_chi2 : tuple of float
        The log-rank statistic of every cut-off searched (``marker >= threshold``).
    resamples, seed : int
        Of the bootstrap and the permutations.
    warnings : tuple of str
    """

    n: int
    n_events: int
    c_index: float
    c_index_ci: tuple[float, float]
    cutoff: float
    cutoff_ci: tuple[float, float]
    method: str
    logrank_chi2: float
    p_logrank: float
    p_lausen_schumacher: float
    p_permutation: float
    hazard_ratio: float
    hazard_ratio_ci: tuple[float, float]
    hazard_ratio_p: float
    n_positive: int
    n_negative: int
    events_positive: int
    events_negative: int
    curves: tuple[KaplanMeierCurve, ...]
    profile_thresholds: tuple[float, ...]
    profile_chi2: tuple[float, ...]
    resamples: int
    seed: int
    warnings: tuple[str, ...] = ()


def logrank_statistics(marker: np.ndarray, time: np.ndarray, event: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Standardised log-rank statistic Z of ``marker >= threshold`` vs the rest, for many thresholds at once.

    ``Z = (O - E) / sqrt(V)`` with O the positive group's events and E, V their
    hypergeometric mean and variance summed over the distinct event times
    (Mantel 1966; the same statistic as lifelines' ``logrank_test``, whose
    chi-square is ``Z**2``). Z > 0: the positive group has more events than
    expected. Computed from cumulative at-risk counts, O(n x event times).
    """
    marker, time, event = np.asarray(marker, float), np.asarray(time, float), np.asarray(event, int)
    event_times = np.unique(time[event == 1])
    order = np.argsort(-marker, kind="stable")
    at_risk = time[order, None] >= event_times[None, :]
    failed = (time[order, None] == event_times[None, :]) & (event[order, None] == 1)
    cum_risk = np.vstack([np.zeros((1, event_times.size)), np.cumsum(at_risk, axis=0)])
    cum_fail = np.vstack([np.zeros((1, event_times.size)), np.cumsum(failed, axis=0)])
    n_pos = np.searchsorted(-marker[order], -np.asarray(thresholds, float), side="right")  # cases >= threshold
    n1, d1 = cum_risk[n_pos], cum_fail[n_pos]
    n, d = cum_risk[-1], cum_fail[-1]
    expected = (n1 * d / n).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.where(n > 1, n1 * (n - n1) * d * (n - d) / (n**2 * (n - 1)), 0.0).sum(axis=1)
        z = (d1.sum(axis=1) - expected) / np.sqrt(variance)
    return np.where(variance > 0, z, 0.0)


def lausen_schumacher_p(statistic: float, low: float = MIN_SHARE, high: float = MAX_SHARE) -> float:
    """Approximate p-value of a maximally selected standardised statistic ``|Z|`` (capped at 1).

    ``p = phi(b) (b - 1/b) log(high (1 - low) / (low (1 - high))) + 4 phi(b) / b``
    with ``phi`` the standard normal density and the cut-offs searched between
    the ``low`` and ``high`` quantiles (Lausen & Schumacher 1992, Biometrics
    48:73-85; as in the R package maxstat, ``pLausen92``). The approximation
    holds in the upper tail; below ``b = 1.1``, where it stops decreasing
    (and below 1 turns meaningless), the p-value is 1.
    """
    b = abs(float(statistic))
    if b <= 1.1:
        return 1.0
    density = math.exp(-b * b / 2.0) / math.sqrt(2.0 * math.pi)
    p = density * (b - 1.0 / b) * math.log(high * (1.0 - low) / (low * (1.0 - high))) + 4.0 * density / b
    return float(min(1.0, max(0.0, p)))


def selectable_thresholds(marker: np.ndarray, low: float = MIN_SHARE, high: float = MAX_SHARE) -> np.ndarray:
    """Observed values ``v`` for which the share of cases below ``v`` lies within [low, high], ascending."""
    marker = np.sort(np.asarray(marker, float))
    values = np.unique(marker)
    share_below = np.searchsorted(marker, values, side="left") / marker.size
    return values[(share_below >= low - 1e-12) & (share_below <= high + 1e-12)]


def _maxstat(marker: np.ndarray, time: np.ndarray, event: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """The maximally selected log-rank cut-off (placed between observed values), max |Z|, the thresholds and Z."""
    thresholds = selectable_thresholds(marker)
    if thresholds.size == 0:
        return math.nan, math.nan, thresholds, thresholds
    z = logrank_statistics(marker, time, event, thresholds)
    best = int(np.argmax(np.abs(z)))  # first maximum: the lowest such cut-off
    return place_cutoff(marker, float(thresholds[best])), float(abs(z[best])), thresholds, z


def _c_index(marker: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    from lifelines.utils import concordance_index

    return float(concordance_index(time, -marker, event))  # lifelines expects a predicted survival time


def _bootstrap(
    marker: np.ndarray, time: np.ndarray, event: np.ndarray, boot: BootstrapParams, select: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Cut-off re-selected (when ``select``) and C-index of each ordinary bootstrap resample of the cases."""
    rng = np.random.default_rng(boot.seed)
    cutoffs, c_index = np.full(boot.resamples, math.nan), np.full(boot.resamples, math.nan)
    for b in range(boot.resamples):
        take = rng.integers(0, marker.size, marker.size)
        x, t, e = marker[take], time[take], event[take]
        if e.sum() == 0:
            continue
        c_index[b] = _c_index(x, t, e)
        if select:
            cutoffs[b] = _maxstat(x, t, e)[0]
    return cutoffs, c_index


def _permutation_p(
    marker: np.ndarray, time: np.ndarray, event: np.ndarray, observed: float, boot: BootstrapParams
) -> float:
    """Share of permutations of the marker whose maximal |Z| reaches the observed one ((k + 1) / (B + 1))."""
    rng = np.random.default_rng((boot.seed, 1))  # a stream apart from the bootstrap's
    thresholds = selectable_thresholds(marker)  # a permutation keeps the marker's values
    reached = 0
    for _ in range(boot.resamples):
        z = logrank_statistics(rng.permutation(marker), time, event, thresholds)
        reached += bool(np.max(np.abs(z)) >= observed - 1e-9)
    return (reached + 1) / (boot.resamples + 1)


def _curve(group: str, time: np.ndarray, event: np.ndarray) -> KaplanMeierCurve:
    from lifelines import KaplanMeierFitter

    km = KaplanMeierFitter().fit(time, event, label=group)
    bounds = km.confidence_interval_survival_function_
    return KaplanMeierCurve(
        group=group,
        time=tuple(map(float, km.survival_function_.index)),
        survival=tuple(map(float, km.survival_function_[group])),
        low=tuple(map(float, bounds.iloc[:, 0])),
        high=tuple(map(float, bounds.iloc[:, 1])),
        at_risk=tuple(int(v) for v in km.event_table["at_risk"]),
        median=float(km.median_survival_time_),
    )


def _cox(
    time: np.ndarray, event: np.ndarray, positive: np.ndarray, level: float
) -> tuple[float, float, float, float, list[str]]:
    """Hazard ratio of positive vs negative, its Wald interval and p-value (lifelines ``CoxPHFitter``)."""
    import pandas as pd
    from lifelines import CoxPHFitter

    frame = pd.DataFrame({"time": time, "event": event, "positive": positive.astype(int)})
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        fit = CoxPHFitter(alpha=1.0 - level).fit(frame, duration_col="time", event_col="event")
    coef = float(fit.params_["positive"])
    low, high = (float(v) for v in fit.confidence_intervals_.loc["positive"])
    notes = [f"Cox model: {str(w.message).splitlines()[0]}" for w in caught if "onvergence" in w.category.__name__]
    return math.exp(coef), math.exp(low), math.exp(high), float(fit.summary.loc["positive", "p"]), notes


def calibrate_survival(
    marker: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    *,
    fixed_cutoff: float | None = None,
    boot: BootstrapParams | None = None,
) -> SurvivalCalibration:
    """Choose and appraise a cut-off of the marker on a time to an event.

    Parameters
    ----------
    marker : numpy.ndarray
        Each case's marker (metric units).
    time : numpy.ndarray
        Time to the event or to the last follow-up (any unit).
    event : numpy.ndarray
        1 = the event happened at ``time``, 0 = censored.
    fixed_cutoff : float, optional
        Keep this cut-off instead of selecting one.
    boot : BootstrapParams, optional
        Resamples (also the number of permutations), seed and level.

    Returns
    -------
    SurvivalCalibration

    Raises
    ------
    ValidationInputError
        No cut-off can be searched (the marker takes too few values), or the
        cut-off leaves one group empty.

    Notes
    -----
    The cut-off maximises the two-sided log-rank statistic over cut-offs
    that leave 10-90 % of the cases negative (Lausen & Schumacher 1992;
    Hothorn & Lausen 2003, Computational Statistics & Data Analysis
    43:121-137). Selecting the cut-off inflates the log-rank statistic and the
    hazard ratio at it: the naive p-value is reported beside the
    Lausen-Schumacher and permutation p-values that account for the search.
    """
    boot = boot or BootstrapParams()
    marker, time, event = np.asarray(marker, float), np.asarray(time, float), np.asarray(event, int)
    cutoff, best, thresholds, z = _maxstat(marker, time, event)
    if fixed_cutoff is None and not math.isfinite(cutoff):
        raise ValidationInputError("the marker takes too few distinct values to search a cut-off between its deciles")
    cutoff = float(fixed_cutoff) if fixed_cutoff is not None else cutoff
    positive = marker >= cutoff
    if positive.all() or not positive.any():
        every = "positive" if positive.any() else "negative"
        raise ValidationInputError(f"the cut-off {cutoff:g} calls every case {every}; no groups to compare")
    return _appraise(marker, time, event, cutoff, fixed_cutoff is None, best, thresholds, z, boot)


def _appraise(
    marker: np.ndarray, time: np.ndarray, event: np.ndarray, cutoff: float, selected: bool, best: float,
    thresholds: np.ndarray, z: np.ndarray, boot: BootstrapParams,
) -> SurvivalCalibration:
    from lifelines.statistics import logrank_test

    positive = marker >= cutoff
    test = logrank_test(time[positive], time[~positive], event[positive], event[~positive])
    hr, hr_low, hr_high, hr_p, notes = _cox(time, event, positive, boot.level)
    cutoffs, c_boot = _bootstrap(marker, time, event, boot, selected)
    if hr < 1:
        notes.append(f"hazard ratio {hr:.2f} < 1: positive cases have fewer events here, not more")
    return SurvivalCalibration(
        n=int(marker.size), n_events=int(event.sum()),
        c_index=_c_index(marker, time, event), c_index_ci=percentile_interval(c_boot, boot.level),
        cutoff=cutoff, cutoff_ci=percentile_interval(cutoffs, boot.level) if selected else (math.nan, math.nan),
        method="maxstat_logrank" if selected else "fixed",
        logrank_chi2=float(test.test_statistic), p_logrank=float(test.p_value),
        p_lausen_schumacher=lausen_schumacher_p(best) if selected else math.nan,
        p_permutation=_permutation_p(marker, time, event, best, boot) if selected else math.nan,
        hazard_ratio=hr, hazard_ratio_ci=(hr_low, hr_high), hazard_ratio_p=hr_p,
        n_positive=int(positive.sum()), n_negative=int((~positive).sum()),
        events_positive=int(event[positive].sum()), events_negative=int(event[~positive].sum()),
        curves=tuple(_curve(g, time[m], event[m]) for g, m in (("negative", ~positive), ("positive", positive))),
        profile_thresholds=tuple(map(float, thresholds)), profile_chi2=tuple(float(v * v) for v in z),
        resamples=boot.resamples, seed=boot.seed, warnings=tuple(notes),
    )

"""Agreement statistics of the tool's scores with pathologists' scores (pure functions).

Continuous scores (H-score 0-300, percent positive 0-100) are compared by the
intraclass correlation ICC(A,1), Lin's concordance correlation coefficient,
Bland-Altman bias and limits of agreement and the Pearson and Spearman
correlations; calls (positive / negative / indeterminate) by Cohen's kappa
and the confusion table, and the raters among themselves by ICC(A,1) and
Fleiss' kappa. Differences are always tool minus reference; every interval is
a two-sided 95 % confidence interval. A statistic that is undefined for the
data (constant scores, a single category) is NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "CALLS", "MIN_PAIRS", "Estimate", "Iccs", "BlandAltman", "Correlation", "NumericAgreement", "CallAgreement",
    "finite", "intraclass", "lin_ccc", "bland_altman", "correlations", "confusion", "cohen_kappa", "fleiss_kappa",
    "numeric_agreement", "call_agreement",
]

#: Call labels, in the order of the confusion table's rows (reference) and columns (tool).
CALLS = ("positive", "negative", "indeterminate")
#: Fewest pairs for which a metric's statistics are computed.
MIN_PAIRS = 3
_Z975 = 1.959963984540054  # standard normal 97.5 % quantile


def finite(value: Any) -> float | None:
    """``value`` as a float for JSON, or None when it is missing or not finite (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Estimate:
    """A statistic and its 95 % confidence interval (NaN bounds when the interval is undefined)."""

    value: float
    low: float = math.nan
    high: float = math.nan

    def to_json(self) -> dict[str, float | None]:
        return {"value": finite(self.value), "ci_low": finite(self.low), "ci_high": finite(self.high)}


@dataclass(frozen=True)
class Iccs:
    """Single-rater intraclass correlations of ``n`` targets rated by ``k`` raters (Shrout & Fleiss 1979).

    Attributes
    ----------
    one_way : Estimate
        ICC(1,1): one-way random effects.
    absolute : Estimate
        ICC(2,1) = McGraw & Wong's ICC(A,1): two-way random effects, absolute
        agreement (a rater's systematic offset lowers it).
    consistency : Estimate
        ICC(3,1) = ICC(C,1): two-way mixed effects, consistency (offsets ignored).
    """

    one_way: Estimate
    absolute: Estimate
    consistency: Estimate
    n: int
    k: int


@contextmanager
def _pingouin_full_precision() -> Iterator[Any]:
    # pingouin rounds its CI95 column to 2 decimals by default (pingouin.options); keep every digit.
    import pingouin

    saved = dict(pingouin.options)
    for key in [k for k in pingouin.options if k.startswith("round")]:
        del pingouin.options[key]
    pingouin.options["round"] = None
    try:
        yield pingouin
    finally:
        pingouin.options.clear()
        pingouin.options.update(saved)


def intraclass(ratings: ArrayLike) -> Iccs:
    """ICC(1,1), ICC(2,1) and ICC(3,1) with their 95 % CIs, by ``pingouin.intraclass_corr``.

    Parameters
    ----------
    ratings : array_like, shape (n, k)
        One row per target (item), one column per rater; no missing values.

    Notes
    -----
    Shrout PE, Fleiss JL (1979) Intraclass correlations: uses in assessing
    rater reliability. Psychol Bull 86:420-428. McGraw KO, Wong SP (1996)
    Forming inferences about some intraclass correlation coefficients.
    Psychol Methods 1:30-46 (the CI of ICC(A,1)).
    """
    import pandas as pd

    m = np.asarray(ratings, dtype=float)
    if m.ndim != 2 or m.shape[0] < 2 or m.shape[1] < 2 or not np.isfinite(m).all():
        raise ValueError(f"ratings must be a finite (n >= 2, k >= 2) matrix, got shape {m.shape}")
    n, k = m.shape
    long = pd.DataFrame({"target": np.repeat(np.arange(n), k), "rater": np.tile(np.arange(k), n), "x": m.ravel()})
    with _pingouin_full_precision() as pingouin, np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = pingouin.intraclass_corr(data=long, targets="target", raters="rater", ratings="x")
    # Rows 0-2 are the single-rater ICC(1,1), ICC(2,1), ICC(3,1) (pingouin's documented order).
    est = [Estimate(float(table["ICC"].iloc[i]), *(float(c) for c in table["CI95"].iloc[i])) for i in range(3)]
    return Iccs(one_way=est[0], absolute=est[1], consistency=est[2], n=n, k=k)


def lin_ccc(x: ArrayLike, y: ArrayLike) -> Estimate:
    """Lin's concordance correlation coefficient of two paired measurements, with its 95 % CI.

    ``rho_c = 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2)`` with moments
    over ``n`` (not ``n - 1``). The CI is found on Fisher's ``z = atanh(rho_c)``
    with the asymptotic variance of Lin (1989, corrected 2000)::

        var(z) = 1/(n-2) [ (1-r^2) rho_c^2 / ((1-rho_c^2) r^2)
                           + 2 rho_c^3 (1-rho_c) u^2 / (r (1-rho_c^2)^2)
                           - rho_c^4 u^4 / (2 r^2 (1-rho_c^2)^2) ]

    where ``r`` is Pearson's correlation and ``u = (mean_x - mean_y) / sqrt(s_x s_y)``.

    Notes
    -----
    Lin LI (1989) A concordance correlation coefficient to evaluate
    reproducibility. Biometrics 45:255-268; Lin LI (2000) A note on the
    concordance correlation coefficient. Biometrics 56:324-325. No CI
    (NaN bounds) when ``rho_c`` is +-1 or ``r`` is 0, or with fewer than 3 pairs.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = a.size
    with np.errstate(all="ignore"):
        sxx, syy = a.var(), b.var()
        sxy = ((a - a.mean()) * (b - b.mean())).mean()
        shift = a.mean() - b.mean()
        rho = 2 * sxy / (sxx + syy + shift**2)
        r = sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan
        if n < 3 or not (math.isfinite(rho) and abs(rho) < 1 and math.isfinite(r) and r != 0):
            return Estimate(float(rho))
        u2 = shift**2 / math.sqrt(sxx * syy)
        one = 1 - rho**2
        var_z = (
            (1 - r**2) * rho**2 / (one * r**2)
            + 2 * rho**3 * (1 - rho) * u2 / (r * one**2)
            - rho**4 * u2**2 / (2 * r**2 * one**2)
        ) / (n - 2)
    if not var_z > 0:
        return Estimate(float(rho))
    z, half = math.atanh(rho), _Z975 * math.sqrt(var_z)
    return Estimate(float(rho), math.tanh(z - half), math.tanh(z + half))


@dataclass(frozen=True)
class BlandAltman:
    """Bland-Altman bias and 95 % limits of agreement of tool minus reference, each with its 95 % CI.

    Attributes
    ----------
    n : int
    bias : Estimate
        Mean difference; CI ``bias +- t(n-1) s / sqrt(n)``.
    sd : float
        Standard deviation of the differences (``n - 1`` denominator).
    loa_low, loa_high : Estimate
        ``bias -+ 1.96 s``; CI ``limit +- t(n-1) sqrt(3 s^2 / n)``.
    """

    n: int
    bias: Estimate
    sd: float
    loa_low: Estimate
    loa_high: Estimate

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n, "bias": self.bias.to_json(), "sd": finite(self.sd), "loa_low": self.loa_low.to_json(),
            "loa_high": self.loa_high.to_json(),
        }


def bland_altman(tool: ArrayLike, reference: ArrayLike) -> BlandAltman:
    """Bias and limits of agreement of ``tool - reference`` with the approximate CIs of Bland & Altman.

    Notes
    -----
    Bland JM, Altman DG (1986) Statistical methods for assessing agreement
    between two methods of clinical measurement. Lancet i:307-310; Bland JM,
    Altman DG (1999) Measuring agreement in method comparison studies. Stat
    Methods Med Res 8:135-160 (standard error of a limit approximately
    ``sqrt(3 s^2 / n)``).
    """
    from scipy import stats

    d = np.asarray(tool, dtype=float) - np.asarray(reference, dtype=float)
    n = d.size
    if n < 2:
        return BlandAltman(n, Estimate(float(d.mean()) if n else math.nan), math.nan, Estimate(math.nan),
                           Estimate(math.nan))
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    t = float(stats.t.ppf(0.975, n - 1))
    se_bias, se_limit = sd / math.sqrt(n), math.sqrt(3 * sd**2 / n)
    lo, hi = bias - _Z975 * sd, bias + _Z975 * sd
    return BlandAltman(
        n=n,
        bias=Estimate(bias, bias - t * se_bias, bias + t * se_bias),
        sd=sd,
        loa_low=Estimate(lo, lo - t * se_limit, lo + t * se_limit),
        loa_high=Estimate(hi, hi - t * se_limit, hi + t * se_limit),
    )


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient and its two-sided p-value (scipy)."""

    r: float
    p: float

    def to_json(self) -> dict[str, float | None]:
        return {"r": finite(self.r), "p": finite(self.p)}


def correlations(x: ArrayLike, y: ArrayLike) -> tuple[Correlation, Correlation]:
    """Pearson's and Spearman's correlation (``scipy.stats``); NaN for constant input."""
    from scipy import stats

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return Correlation(math.nan, math.nan), Correlation(math.nan, math.nan)
    pr, sr = stats.pearsonr(a, b), stats.spearmanr(a, b)
    return Correlation(float(pr.statistic), float(pr.pvalue)), Correlation(float(sr.statistic), float(sr.pvalue))


def confusion(reference: Sequence[str], tool: Sequence[str], labels: Sequence[str] = CALLS) -> np.ndarray:
    """Counts of each (reference, tool) pair of labels: rows reference, columns tool, in the order of ``labels``."""
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)), dtype=int)
    for r, t in zip(reference, tool, strict=True):
        table[index[r], index[t]] += 1
    return table


def cohen_kappa(table: ArrayLike) -> Estimate:
    """Cohen's (unweighted) kappa of a square agreement table with its 95 % CI (``statsmodels``).

    Categories that neither rater used are left out (they change nothing but
    a zero margin). NaN when only one category is used: agreement beyond
    chance is then undefined.

    Notes
    -----
    Cohen J (1960) A coefficient of agreement for nominal scales. Educ
    Psychol Meas 20:37-46; the CI uses the large-sample variance of Fleiss,
    Cohen & Everitt (1969) as ``statsmodels.stats.inter_rater.cohens_kappa``.
    """
    from statsmodels.stats.inter_rater import cohens_kappa as _sm_cohens_kappa

    t = np.asarray(table, dtype=float)
    used = (t.sum(axis=0) + t.sum(axis=1)) > 0
    t = t[np.ix_(used, used)]
    if t.shape[0] < 2:
        return Estimate(math.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _sm_cohens_kappa(t)
    return Estimate(float(res.kappa), float(res.kappa_low), float(res.kappa_upp))


def fleiss_kappa(calls: Sequence[Sequence[Hashable]]) -> float:
    """Fleiss' kappa of items each rated by the same number of raters (``statsmodels``); NaN if undefined.

    Parameters
    ----------
    calls : sequence of sequences
        One row per item, one category per rater (any hashable labels).

    Notes
    -----
    Fleiss JL (1971) Measuring nominal scale agreement among many raters.
    Psychol Bull 76:378-382.
    """
    from statsmodels.stats.inter_rater import aggregate_raters
    from statsmodels.stats.inter_rater import fleiss_kappa as _sm_fleiss_kappa

    labels = sorted({c for row in calls for c in row}, key=str)
    if len(calls) < 2 or len(labels) < 2:
        return math.nan
    codes = np.array([[labels.index(c) for c in row] for row in calls])
    counts, _ = aggregate_raters(codes, n_cat=len(labels))
    with np.errstate(all="ignore"):
        return float(_sm_fleiss_kappa(counts, method="fleiss"))


@dataclass(frozen=True)
class NumericAgreement:
    """Agreement of the tool with a reference on one continuous score; statistics None when ``n < MIN_PAIRS``."""

    n: int
    icc_a1: Estimate | None = None
    ccc: Estimate | None = None
    bland_altman: BlandAltman | None = None
    pearson: Correlation | None = None
    spearman: Correlation | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        if self.note:
            return {"n": self.n, "note": self.note}
        out: dict[str, Any] = {"n": self.n}
        for name in ("icc_a1", "ccc", "bland_altman", "pearson", "spearman"):
            out[name] = getattr(self, name).to_json()
        return out


def numeric_agreement(tool: ArrayLike, reference: ArrayLike) -> NumericAgreement:
    """ICC(A,1), Lin's CCC, Bland-Altman (tool minus reference) and correlations of paired scores."""
    t, r = np.asarray(tool, dtype=float), np.asarray(reference, dtype=float)
    n = int(t.size)
    if n < MIN_PAIRS:
        return NumericAgreement(n, note=f"{n} pair(s); at least {MIN_PAIRS} are needed for statistics")
    pearson, spearman = correlations(t, r)
    return NumericAgreement(
        n=n, icc_a1=intraclass(np.column_stack([t, r])).absolute, ccc=lin_ccc(t, r),
        bland_altman=bland_altman(t, r), pearson=pearson, spearman=spearman,
    )


@dataclass(frozen=True)
class CallAgreement:
    """Agreement of the tool's calls with reference calls: Cohen's kappa and the confusion table."""

    n: int
    kappa: Estimate | None
    table: tuple[tuple[int, ...], ...]
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.n,
            "confusion": {"rows": "reference", "columns": "tool", "labels": list(CALLS),
                          "table": [list(row) for row in self.table]},
        }
        if self.note:
            out["note"] = self.note
        else:
            out["kappa"] = self.kappa.to_json() if self.kappa else None
        return out


def call_agreement(tool: Sequence[str], reference: Sequence[str]) -> CallAgreement:
    """Cohen's kappa (95 % CI) and the confusion table (rows reference, columns tool) of paired calls."""
    table = confusion(reference, tool)
    n = len(tool)
    rows = tuple(tuple(int(c) for c in row) for row in table)
    if n < MIN_PAIRS:
        return CallAgreement(n, None, rows, note=f"{n} pair(s); at least {MIN_PAIRS} are needed for statistics")
    return CallAgreement(n, cohen_kappa(table), rows)

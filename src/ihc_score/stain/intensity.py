"""Scanner calibration of stain intensity: one section scanned on two scanners (pure).

A scanner's tone curve (the gamma of its light response) multiplies every
OD it records: with ``V = S ** gamma`` the OD is ``gamma`` times the true
one, for both stains alike. Nothing inside one slide tells that apart from a
stronger stain (the hematoxylin level of fields of one data set varies more,
a coefficient of variation of 0.4-0.6 on real Ki67 fields, than a tone curve
moves it), so the correction comes from the same section scanned on both
scanners: the quantiles of its stain concentrations on the new scanner,
scaled by one factor, must fall on those of the reference scanner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ihc_score.checks import require_range

__all__ = ["ScannerScale", "scanner_scale"]

#: Fewest tissue pixels per scan to fit from.
MIN_PIXELS = 1000


@dataclass(frozen=True)
class ScannerScale:
    """OD factor that maps a new scanner's stain concentrations onto a reference scanner's.

    Attributes
    ----------
    scale : float
        Multiply the new scanner's concentrations (both stains) by this;
        the least-squares factor over the matched quantiles of both stains.
    hematoxylin_scale, dab_scale : float
        The same fitted on each stain alone (NaN when the stain is too
        faint in the section to fit); they differ when the scanners differ
        by more than a tone curve (channel crosstalk, blur).
    residual : float
        Root mean square of ``scale * new / reference - 1`` over the matched
        quantiles: how far one factor is from mapping the two scans.
    n_quantiles : int
        Matched quantile pairs the factor was fitted on.
    """

    scale: float
    hematoxylin_scale: float
    dab_scale: float
    residual: float
    n_quantiles: int


def _matched(reference: np.ndarray, new: np.ndarray, qs: np.ndarray, min_od: float) -> tuple[np.ndarray, np.ndarray]:
    r, n = np.percentile(reference, qs), np.percentile(new, qs)
    keep = (r >= min_od) & (n >= min_od)
    return r[keep], n[keep]


def _fit(r: np.ndarray, n: np.ndarray) -> float:
    return float(np.dot(r, n) / np.dot(n, n)) if len(r) >= 3 else float("nan")


def scanner_scale(
    reference: np.ndarray,
    new: np.ndarray,
    *,
    quantiles: tuple[float, float] = (50.0, 99.0),
    min_od: float = 0.02,
) -> ScannerScale:
    """Fit the OD factor between two scans of one section from their stain quantiles.

    Parameters
    ----------
    reference, new : ndarray, float, shape (N, 2+) and (M, 2+)
        Hematoxylin and DAB concentrations (OD, columns 0 and 1) of tissue
        pixels of the same section on the reference scanner and on the new
        one, each deconvolved with its own slide's stain vectors and
        background. The pixels need not correspond one to one, only sample
        the same tissue.
    quantiles : (float, float)
        Percentile range matched, in steps of 1 (the tissue's upper half by
        default: the glass-like lower half carries noise and no stain).
    min_od : float
        Quantiles below this OD on either scan are left out (no stain).

    Returns
    -------
    ScannerScale

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_PIXELS` pixels in a scan, or fewer than 3
        quantile pairs above ``min_od`` in both stains together.
    """
    ref, nw = np.asarray(reference, np.float64), np.asarray(new, np.float64)
    if ref.ndim != 2 or nw.ndim != 2 or ref.shape[1] < 2 or nw.shape[1] < 2:
        raise ValueError("concentrations must be (N, 2+) arrays: hematoxylin, DAB")
    if min(len(ref), len(nw)) < MIN_PIXELS:
        raise ValueError(f"too little tissue to calibrate: {min(len(ref), len(nw))} pixels (need {MIN_PIXELS})")
    lo, hi = quantiles
    require_range("quantiles[0]", lo, low=0.0, high=hi, high_open=True)
    require_range("quantiles[1]", hi, low=lo, high=100.0, low_open=True)
    qs = np.arange(lo, hi + 0.5, 1.0)
    pairs = [_matched(ref[:, c], nw[:, c], qs, min_od) for c in (0, 1)]
    r = np.concatenate([p[0] for p in pairs])
    n = np.concatenate([p[1] for p in pairs])
    if len(r) < 3:
        raise ValueError("neither stain rises above the glass in both scans: nothing to calibrate on")
    scale = _fit(r, n)
    return ScannerScale(
        scale=scale,
        hematoxylin_scale=_fit(*pairs[0]),
        dab_scale=_fit(*pairs[1]),
        residual=float(np.sqrt(np.mean((scale * n / r - 1.0) ** 2))),
        n_quantiles=len(r),
    )

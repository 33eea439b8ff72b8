"""QC zoom windows: where in a scored region to show its highest, typical and lowest DAB.

:func:`zoom_windows` picks square windows of a region from its cells'
centroids and measurements; :mod:`ihc_score.outputs.qc_zooms` draws and writes
them; :mod:`ihc_score.outputs` offers these names. Conventions are those of
:mod:`ihc_score.outputs.qc`: level-0 px, um, OD base 10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from ihc_score.results import SlideResult

__all__ = ["ZoomWindow", "zoom_windows"]


@dataclass(frozen=True)
class ZoomWindow:
    """A square window of a region chosen for a zoom crop.

    Attributes
    ----------
    label : str
        ``highest DAB``, ``typical``, ``lowest DAB`` (or a percentile).
    l0_xy : tuple of float
        Top-left corner, level-0 px.
    l0_side : float
        Side, level-0 px.
    mean_dab : float
        Mean of the measurement over the region's cells whose centroid lies in the window (OD).
    n_cells : int
        Those cells.
    """

    label: str
    l0_xy: tuple[float, float]
    l0_side: float
    mean_dab: float
    n_cells: int


def _window_labels(n: int) -> list[tuple[float, str]]:
    if n == 1:
        return [(0.5, "typical")]
    out = []
    for k in range(n):
        q = 1.0 - k / (n - 1)
        name = {1.0: "highest DAB", 0.0: "lowest DAB", 0.5: "typical"}.get(q, f"{q * 100:.0f}th percentile DAB")
        out.append((q, name))
    return out


def zoom_windows(
    result: SlideResult,
    region_index: int,
    *,
    n: int = 3,
    size_um: float = 150.0,
    measurement: str = "dab_cell_mean",
) -> tuple[ZoomWindow, ...]:
    """Windows of a region showing the range of its cells' DAB.

    Square windows of side ``size_um`` on a grid of step ``size_um / 2``;
    a window's value is the mean ``measurement`` of the region's cells
    (membership from ``result.detail.membership``) whose centroid lies in
    it. Windows with fewer than half the median number of cells (at least
    3) are left out, as are windows not wholly inside the region's outline
    when there are any that are (else those less than half inside, or than
    the most any window has inside). Of the rest, the windows at the quantiles
    1 (highest), 0.5 (median, "typical") and 0 (lowest) of the window
    means are chosen, each the nearest in rank that does not overlap one
    already chosen.

    Parameters
    ----------
    result : SlideResult
        A scored slide with ``detail``.
    region_index : int
        Index in ``result.regions`` (and row of ``result.detail.membership``).
    n : int
        Windows wanted: quantiles 1, ..., 0 of the window means evenly spaced
        (3: highest, typical, lowest; 1: typical).
    size_um : float
        Side of a window, um.
    measurement : str
        :class:`~ihc_score.cells.detect.CellTable` column averaged (OD), e.g. the
        model's ``classification.measurement``.

    Returns
    -------
    tuple of ZoomWindow
        Highest first; fewer than ``n`` (or none) when the region has too few cells.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not (math.isfinite(size_um) and size_um > 0):
        raise ValueError(f"size_um must be a positive length in um, got {size_um}")
    d = result.detail
    if d is None or d.membership.shape[0] <= region_index:
        return ()
    values = np.asarray(getattr(d.cells, measurement), np.float64)
    member = d.membership[region_index] & np.isfinite(values)
    if not member.any():
        return ()
    x, y, v = d.l0_x[member], d.l0_y[member], values[member]
    side = size_um / result.mpp_um
    half = side / 2.0
    ox, oy = float(x.min()) - half / 2.0, float(y.min()) - half / 2.0
    bx = np.floor((x - ox) / half).astype(np.int64)
    by = np.floor((y - oy) / half).astype(np.int64)
    nbx, nby = int(bx.max()) + 2, int(by.max()) + 2
    flat = by * nbx + bx
    count_bins = np.bincount(flat, minlength=nbx * nby).reshape(nby, nbx)
    sum_bins = np.bincount(flat, v, minlength=nbx * nby).reshape(nby, nbx)
    count = count_bins[:-1, :-1] + count_bins[1:, :-1] + count_bins[:-1, 1:] + count_bins[1:, 1:]
    total = sum_bins[:-1, :-1] + sum_bins[1:, :-1] + sum_bins[:-1, 1:] + sum_bins[1:, 1:]
    jj, ii = np.nonzero(count > 0)
    counts = count[jj, ii]
    min_cells = max(3, int(math.ceil(0.5 * float(np.median(counts)))))
    keep = counts >= min_cells
    jj, ii = jj[keep], ii[keep]
    x0, y0 = ox + ii * half, oy + jj * half
    inside = _inside_fraction(result, region_index, x0, y0, side)
    best = inside >= (1.0 if (inside >= 1.0).any() else min(0.5, float(inside.max())))
    jj, ii, x0, y0 = jj[best], ii[best], x0[best], y0[best]
    means = total[jj, ii] / count[jj, ii]
    order = np.lexsort((ii, jj, means))  # by mean, ties by position: deterministic
    chosen: list[int] = []
    picks: dict[float, int] = {}
    targets = _window_labels(n)
    for q, _ in sorted(targets, key=lambda t: abs(t[0] - 0.5), reverse=True):  # extremes first
        want = q * (len(order) - 1)
        ranks = np.argsort(np.abs(np.arange(len(order)) - want), kind="stable")
        free = [r for r in ranks if order[r] not in chosen]
        clear = [r for r in free if all(max(abs(ii[order[r]] - ii[c]), abs(jj[order[r]] - jj[c])) >= 2 for c in chosen)]
        pick = (clear or free or [None])[0]
        if pick is not None:
            chosen.append(int(order[pick]))
            picks[q] = int(order[pick])
    out = []
    for q, name in targets:
        if q in picks:
            k = picks[q]
            out.append(ZoomWindow(name, (float(x0[k]), float(y0[k])), side, float(means[k]), int(count[jj[k], ii[k]])))
    return tuple(out)


def _inside_fraction(result: SlideResult, region_index: int, x0: np.ndarray, y0: np.ndarray, side: float) -> np.ndarray:
    """Part (0-1) of each window inside the region's outline; for the whole-tissue region, 1 where centred on tissue."""
    wkt = result.regions[region_index].wkt if region_index < len(result.regions) else ""
    if wkt:
        geom = shapely.from_wkt(wkt)
        shapely.prepare(geom)
        boxes = shapely.box(x0, y0, x0 + side, y0 + side)
        full = shapely.contains(geom, boxes).astype(np.float64)
        if full.any():
            return full
        return shapely.area(shapely.intersection(geom, boxes)) / (side * side)
    d = result.detail
    tissue, tds = d.tissue, d.tissue_downsample
    mx = np.clip(((x0 + side / 2) / tds).astype(np.int64), 0, tissue.shape[1] - 1)
    my = np.clip(((y0 + side / 2) / tds).astype(np.int64), 0, tissue.shape[0] - 1)
    return tissue[my, mx].astype(np.float64)

"""Scores of every region of a slide from its classified cells.

A cell counts for a region when its centroid lies inside the region's
outline (excluded areas are already cut out of it); a cell inside two
overlapping regions counts for both. Counts are summed, ratios derived once
from the sums, an interval computed by block bootstrap, and the call made by
the model's positivity rule. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from ihc_score.regions import Region, region_membership
from ihc_score.score.classes import Call, ClassCounts, PositivityRule, call_region
from ihc_score.score.intervals import Interval, IntervalParams, block_counts, bootstrap_intervals

__all__ = ["RegionResult", "HISTOGRAM_EDGES", "score_region", "score_regions"]

#: Bin edges (OD) of each region's histogram of the graded measurement:
#: 0.05 OD bins from 0 to 1.5; values outside fall in the first or last bin.
HISTOGRAM_EDGES: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(31))


@dataclass(frozen=True)
class RegionResult:
    """Scores of one scored region.

    Attributes
    ----------
    name : str
        Stable region name (annotation name, ``auto-<n>``, or ``tissue``).
    source : str
        ``annotation``, ``auto`` or ``tissue`` (the whole tissue, no regions).
    counts : ClassCounts
        Cells of the region per class.
    call : Call
    area_mm2 : float
        Area of the region's outline (tissue area for ``tissue``).
    h_interval, pct_interval : Interval
        95 % block-bootstrap intervals of the H-score and percent positive.
    flags : tuple of str
        QC flags of the region (repaired outline, overlaps, ...).
    wkt : str
        Outline in level-0 px as WKT; empty for ``tissue``.
    histogram : tuple of int
        Cells per bin of :data:`HISTOGRAM_EDGES` of the graded measurement.
    n_pigmented : int
        Cells of the region left ungraded because pigment covers them (not in ``counts``).
    left_out : tuple of (str, int)
        With a cell-type step: each type the model does not score and its
        cells in the region (not in ``counts``); empty without one.
    left_out_counts : ClassCounts or None
        Classes of those cells: their own stain (e.g. S100A9 of myeloid cells).
    """

    name: str
    counts: ClassCounts
    call: Call
    area_mm2: float
    source: str = "tissue"
    h_interval: Interval = Interval()
    pct_interval: Interval = Interval()
    flags: tuple[str, ...] = ()
    wkt: str = ""
    histogram: tuple[int, ...] = ()
    n_pigmented: int = 0
    left_out: tuple[tuple[str, int], ...] = ()
    left_out_counts: ClassCounts | None = None


def histogram(values: np.ndarray) -> tuple[int, ...]:
    """Cells per bin of :data:`HISTOGRAM_EDGES`; out-of-range values clipped into the end bins, NaN dropped."""
    v = np.asarray(values, np.float64)
    v = np.clip(v[np.isfinite(v)], HISTOGRAM_EDGES[0], HISTOGRAM_EDGES[-1] - 1e-9)
    return tuple(int(c) for c in np.histogram(v, bins=np.asarray(HISTOGRAM_EDGES))[0])


def score_region(
    name: str,
    classes: np.ndarray,
    l0_x: np.ndarray,
    l0_y: np.ndarray,
    *,
    values: np.ndarray,
    mpp_um: float,
    area_mm2: float,
    rule: PositivityRule,
    intervals: IntervalParams,
    source: str = "tissue",
    flags: tuple[str, ...] = (),
    wkt: str = "",
    n_pigmented: int = 0,
) -> RegionResult:
    """Counts, intervals and call of the cells of one region.

    Parameters
    ----------
    classes : ndarray of int
        Class (0-3) of each cell of the region.
    l0_x, l0_y : ndarray
        Their centroids, level-0 px (for the spatial blocks).
    values : ndarray
        Their graded measurement (DAB OD), for the histogram.
    mpp_um : float
        Level-0 pixel size, um/px.
    n_pigmented : int
        Cells of the region not graded because of pigment (reported, not counted).
    """
    counts = ClassCounts.from_classes(classes)
    blocks = block_counts(l0_x, l0_y, classes, block_px=intervals.block_um / mpp_um)
    h_iv, pct_iv = bootstrap_intervals(blocks, intervals)
    metric_iv = h_iv if rule.metric == "h_score" else pct_iv
    call: Call = call_region(counts, rule, interval=metric_iv if intervals.indeterminate_if_crossing else None)
    return RegionResult(name, counts, call, area_mm2, source, h_iv, pct_iv, flags, wkt, histogram(values), n_pigmented)


def score_regions(
    regions: Sequence[Region],
    classes: np.ndarray,
    l0_x: np.ndarray,
    l0_y: np.ndarray,
    *,
    values: np.ndarray,
    mpp_um: float,
    rule: PositivityRule,
    intervals: IntervalParams,
    membership: np.ndarray | None = None,
    n_pigmented: np.ndarray | None = None,
) -> tuple[RegionResult, ...]:
    """Score every region from the slide's classified cells.

    Parameters
    ----------
    regions : sequence of Region
        Outlines in level-0 px.
    classes, l0_x, l0_y, values : ndarray
        Class, centroid (level-0 px) and graded measurement of every cell of the slide.
    membership : ndarray of bool, optional
        ``(n_regions, n_cells)`` from :func:`~ihc_score.regions.geometry.region_membership`, if already computed.
    n_pigmented : ndarray of int, optional
        Per region, cells left ungraded because of pigment.

    Returns
    -------
    tuple of RegionResult
        In the order of ``regions``.
    """
    if not regions:
        return ()
    inside = region_membership(regions, l0_x, l0_y) if membership is None else membership
    mm2_per_px = (mpp_um / 1000.0) ** 2
    results = []
    pigmented = np.zeros(len(regions), np.int64) if n_pigmented is None else np.asarray(n_pigmented)
    for region, member, n_pig in zip(regions, inside, pigmented):
        results.append(
            score_region(
                region.name,
                classes[member],
                l0_x[member],
                l0_y[member],
                values=values[member],
                mpp_um=mpp_um,
                area_mm2=float(region.geometry.area) * mm2_per_px,
                rule=rule,
                intervals=intervals,
                source=region.source,
                flags=tuple(region.flags),
                wkt=shapely.to_wkt(region.geometry, rounding_precision=3, trim=True),
                n_pigmented=int(n_pig),
            )
        )
    return tuple(results)

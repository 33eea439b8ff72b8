"""Property-based tests of the scoring maths, stain separation and annotation round trips."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, Polygon

from ihc_score.regions import (
    Region,
    build_regions,
    is_excluded,
    load_annotations,
    region_membership,
    write_asap_xml,
    write_geojson,
    write_imagescope_xml,
)
from ihc_score.score import (
    ClassCounts,
    Interval,
    IntervalParams,
    PositivityRule,
    allred_intensity_score,
    allred_proportion_score,
    block_counts,
    bootstrap_intervals,
    call_region,
    classify,
)
from ihc_score.stain import DEFAULT_STAINS, StainVectors, compose_rgb, deconvolve, od_lut, optical_density

FAST = settings(max_examples=200, deadline=None)
MEDIUM = settings(max_examples=60, deadline=None)
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

counts_st = st.builds(
    ClassCounts,
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)
nonempty_counts_st = counts_st.filter(lambda c: c.n > 0)
finite = st.floats(-5.0, 5.0, allow_nan=False, allow_infinity=False)


@st.composite
def increasing_thresholds(draw: st.DrawFn) -> tuple[float, ...]:
    k = draw(st.sampled_from([1, 3]))
    values = sorted(set(draw(st.lists(finite, min_size=k, max_size=k, unique=True))))
    assume(len(values) == k)
    return tuple(values)


@st.composite
def rules(draw: st.DrawFn) -> PositivityRule:
    metric = draw(st.sampled_from(["h_score", "pct_positive"]))
    top = 300.0 if metric == "h_score" else 100.0
    return PositivityRule(
        metric=metric,
        cutoff=draw(st.floats(0.0, top)),
        borderline=draw(st.floats(0.0, 50.0)),
        min_cells=draw(st.integers(1, 2000)),
    )


# -- ClassCounts, H-score, percent positive ------------------------------------------------------


@FAST
@given(counts_st)
def test_h_score_and_pct_in_range(c: ClassCounts) -> None:
    if c.n == 0:
        assert math.isnan(c.h_score) and math.isnan(c.pct_positive)
        return
    assert 0.0 <= c.h_score <= 300.0
    assert 0.0 <= c.pct_positive <= 100.0
    # H-score = 100 * mean class, percent positive = 100 * fraction of classes >= 1.
    assert c.h_score == pytest.approx(100.0 * float(Fraction(c.n1 + 2 * c.n2 + 3 * c.n3, c.n)), rel=1e-12)
    assert c.pct_positive == pytest.approx(100.0 * float(Fraction(c.n_positive, c.n)), rel=1e-12)
    assert c.pct_positive <= c.h_score <= 3.0 * c.pct_positive * (1 + 1e-12)


@FAST
@given(counts_st, counts_st, counts_st)
def test_counts_addition_is_a_commutative_monoid(a: ClassCounts, b: ClassCounts, c: ClassCounts) -> None:
    assert a + b == b + a
    assert (a + b) + c == a + (b + c)
    assert a + ClassCounts() == a
    assert (a + b).n == a.n + b.n and (a + b).n_positive == a.n_positive + b.n_positive


@FAST
@given(nonempty_counts_st, nonempty_counts_st)
def test_h_score_of_a_sum_is_the_cell_weighted_mean(a: ClassCounts, b: ClassCounts) -> None:
    s = a + b
    for metric in ("h_score", "pct_positive"):
        va, vb, vs = getattr(a, metric), getattr(b, metric), getattr(s, metric)
        assert min(va, vb) - 1e-9 <= vs <= max(va, vb) + 1e-9
        assert vs == pytest.approx((va * a.n + vb * b.n) / s.n, rel=1e-9, abs=1e-9)


@FAST
@given(st.lists(st.integers(0, 3), max_size=200))
def test_from_classes_counts_each_class(classes: list[int]) -> None:
    c = ClassCounts.from_classes(np.array(classes, dtype=np.int8))
    assert (c.n0, c.n1, c.n2, c.n3) == tuple(classes.count(k) for k in range(4))


# -- classify -----------------------------------------------------------------------------------


values_st = st.lists(
    st.one_of(finite, st.sampled_from([0.2, 0.4, 0.6, -0.0, math.inf, -math.inf, math.nan])), max_size=60
)


@FAST
@given(values_st, increasing_thresholds())
def test_classify_is_the_ge_definition(values: list[float], thresholds: tuple[float, ...]) -> None:
    # Values equal to the thresholds themselves must go up.
    v = np.array(values + list(thresholds), dtype=np.float64)
    got = classify(v, thresholds)
    want = [0 if math.isnan(x) else sum(x >= t for t in thresholds) for x in v]
    assert got.dtype == np.int8
    assert got.tolist() == want


@FAST
@given(st.lists(finite, min_size=1, max_size=60), increasing_thresholds())
def test_classify_is_monotone(values: list[float], thresholds: tuple[float, ...]) -> None:
    v = np.sort(np.array(values))
    got = classify(v, thresholds)
    assert np.all(np.diff(got.astype(int)) >= 0)
    assert got.min() >= 0 and got.max() <= len(thresholds)


# -- Allred ---------------------------------------------------------------------------------------


def _proportion_by_definition(c: ClassCounts) -> int:
    if c.n_positive == 0:
        return 0
    p = Fraction(c.n_positive, c.n)
    for score, upper in ((1, Fraction(1, 100)), (2, Fraction(1, 10)), (3, Fraction(1, 3)), (4, Fraction(2, 3))):
        if p < upper:
            return score
    return 5


allred_counts_st = st.one_of(
    counts_st,
    # Near the bounds: n = 300 gives exactly 1 %, 10 %, 1/3 and 2/3 for 3, 30, 100, 200 positives.
    st.builds(lambda k, cls: ClassCounts(300 - k, *(k if j == cls else 0 for j in (1, 2, 3))),
              st.sampled_from([0, 1, 2, 3, 4, 29, 30, 31, 99, 100, 101, 199, 200, 201, 300]), st.integers(1, 3)),
    # Mean class of the positives exactly 1.5 or 2.5.
    st.builds(lambda a, lo: ClassCounts(a, lo, lo, 0), st.integers(0, 50), st.integers(1, 50)),
    st.builds(lambda a, lo: ClassCounts(a, 0, lo, lo), st.integers(0, 50), st.integers(1, 50)),
)


@FAST
@given(allred_counts_st)
def test_allred_matches_its_definition(c: ClassCounts) -> None:
    prop = allred_proportion_score(c)
    inten = allred_intensity_score(c)
    assert prop == _proportion_by_definition(c)
    if c.n_positive == 0:
        assert inten == 0
    else:
        mean = Fraction(c.n1 + 2 * c.n2 + 3 * c.n3, c.n_positive)
        assert inten == math.floor(mean + Fraction(1, 2))  # half up
        assert 1 <= inten <= 3
    assert c.allred == prop + inten
    assert c.allred in {0, 2, 3, 4, 5, 6, 7, 8}
    assert (c.allred == 0) == (c.n_positive == 0)


# -- call_region ----------------------------------------------------------------------------------


@FAST
@given(counts_st, rules(), st.integers(1, 10**5))
def test_adding_strong_cells_keeps_a_positive_call(c: ClassCounts, rule: PositivityRule, k: int) -> None:
    more = c + ClassCounts(n3=k)
    assert rule.value(more) >= rule.value(c) or c.n == 0
    if call_region(c, rule).call == "positive":
        assert call_region(more, rule).call == "positive"
    # ... and a negative call never becomes positive by adding negative cells.
    if call_region(c, rule).call == "negative":
        assert call_region(c + ClassCounts(n0=k), rule).call == "negative"


@st.composite
def intervals(draw: st.DrawFn) -> Interval | None:
    kind = draw(st.sampled_from(["none", "nan", "finite"]))
    if kind == "none":
        return None
    if kind == "nan":
        return Interval()
    a, b = sorted(draw(st.lists(st.floats(0.0, 300.0), min_size=2, max_size=2)))
    return Interval(a, b)


@FAST
@given(counts_st, rules(), intervals())
def test_call_is_indeterminate_exactly_under_the_documented_conditions(
    c: ClassCounts, rule: PositivityRule, interval: Interval | None
) -> None:
    got = call_region(c, rule, interval=interval)
    few = c.n < rule.min_cells
    value = rule.value(c)
    band = not few and abs(value - rule.cutoff) < rule.borderline
    crossing = interval is not None and interval.defined and interval.low < rule.cutoff <= interval.high
    if few or band or crossing:
        assert got.call == "indeterminate" and got.reason
        if few:
            assert "cells" in got.reason
    else:
        assert got.call == ("positive" if value >= rule.cutoff else "negative")


# -- bootstrap intervals --------------------------------------------------------------------------


@MEDIUM
@given(st.tuples(*[st.integers(0, 500)] * 4).filter(lambda t: sum(t) > 0), st.integers(2, 40), st.integers(0, 2**32))
def test_identical_blocks_give_a_point_interval_at_the_estimate(
    row: tuple[int, int, int, int], k: int, seed: int
) -> None:
    counts = np.tile(np.array(row, np.int64), (k, 1))
    params = IntervalParams(n_resamples=200, min_blocks=2, seed=seed)
    h, pct = bootstrap_intervals(counts, params)
    total = ClassCounts(*(int(x) for x in counts.sum(axis=0)))
    for interval, estimate in ((h, total.h_score), (pct, total.pct_positive)):
        assert interval.defined
        assert interval.low - 1e-9 <= estimate <= interval.high + 1e-9
        assert interval.high - interval.low < 1e-9


block_matrix_st = st.integers(1, 30).flatmap(
    lambda k: st.lists(st.tuples(*[st.integers(0, 200)] * 4), min_size=k, max_size=k)
)


@MEDIUM
@given(block_matrix_st, st.integers(0, 2**32), st.integers(2, 8))
def test_bootstrap_is_deterministic_for_a_seed_and_bounded(rows: list, seed: int, min_blocks: int) -> None:
    counts = np.array(rows, np.int64).reshape(-1, 4)
    assume(counts.sum() > 0)
    params = IntervalParams(n_resamples=200, min_blocks=min_blocks, seed=seed)
    first = bootstrap_intervals(counts, params)
    assert bootstrap_intervals(counts.copy(), params) == first
    h, pct = first
    if len(counts) < min_blocks:
        assert not h.defined and not pct.defined
        return
    assert 0.0 <= h.low <= h.high <= 300.0
    assert 0.0 <= pct.low <= pct.high <= 100.0
    # Every resample lies between the smallest and largest value of a non-empty block.
    occupied = counts[counts.sum(axis=1) > 0]
    hs = [ClassCounts(*map(int, r)).h_score for r in occupied]
    assert min(hs) - 1e-9 <= h.low and h.high <= max(hs) + 1e-9


@MEDIUM
@given(st.lists(st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4), st.integers(0, 3)), max_size=80),
       st.floats(1.0, 2000.0), st.randoms(use_true_random=False))
def test_block_counts_sum_to_class_counts_and_ignore_order(cells: list, block_px: float, rnd) -> None:
    x = np.array([c[0] for c in cells], np.float64)
    y = np.array([c[1] for c in cells], np.float64)
    classes = np.array([c[2] for c in cells], np.int64)
    got = block_counts(x, y, classes, block_px=block_px)
    assert got.sum(axis=0).tolist() == np.bincount(classes, minlength=4)[:4].tolist()
    n_blocks = len({(math.floor(a / block_px), math.floor(b / block_px)) for a, b, _ in cells})
    assert got.shape == (n_blocks, 4) and np.all(got.sum(axis=1) > 0)
    order = list(range(len(cells)))
    rnd.shuffle(order)
    assert np.array_equal(block_counts(x[order], y[order], classes[order], block_px=block_px), got)


# -- stain separation -----------------------------------------------------------------------------


def _roundtrip_bound(conc: np.ndarray, stains: StainVectors) -> np.ndarray:
    """Largest error of deconvolve(compose_rgb(conc)) per concentration from 8-bit rounding; NaN where clipped.

    ``conc`` is (..., 3); rounding an intensity I by <= 0.5 grey levels moves its OD by at most
    log10(I / (I - 0.5)), and the inverse stain matrix spreads that over the concentrations.
    """
    od = np.asarray(conc, np.float64) @ stains.matrix
    intensity = np.asarray(stains.background) * np.power(10.0, -od)
    clipped = np.any((intensity < 1.5) | (intensity > 254.5), axis=-1)
    od_err = np.log10(np.abs(intensity / (intensity - 0.5)))
    bound = od_err @ np.abs(np.linalg.inv(stains.matrix)) + 2e-5  # + float32 arithmetic
    bound[clipped] = np.nan
    return bound


@MEDIUM
@given(
    st.floats(0.0, 1.5), st.floats(0.0, 1.5), st.floats(-0.15, 0.15),
    st.tuples(st.integers(160, 255), st.integers(160, 255), st.integers(160, 255)),
)
def test_deconvolve_inverts_compose_within_quantisation(h: float, d: float, r: float, bg: tuple) -> None:
    stains = StainVectors(background=tuple(float(v) for v in bg))
    conc = np.array([h, d, r], np.float64)
    bound = _roundtrip_bound(conc, stains)
    assume(not np.isnan(bound).any())
    rgb = compose_rgb(conc.reshape(1, 1, 3), stains)
    back = deconvolve(rgb, stains)[0, 0].astype(np.float64)
    assert np.all(np.abs(back - conc) <= bound), (back, conc, bound)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32))
def test_deconvolve_inverts_compose_on_images(seed: int) -> None:
    rng = np.random.default_rng(seed)
    conc = np.column_stack([rng.uniform(0, 1.2, 4096), rng.uniform(0, 1.2, 4096), rng.uniform(-0.1, 0.1, 4096)])
    bound = _roundtrip_bound(conc, DEFAULT_STAINS)
    keep = ~np.isnan(bound).any(axis=1)
    assert keep.sum() > 1000
    conc, bound = conc[keep], bound[keep]
    back = deconvolve(compose_rgb(conc.reshape(1, -1, 3)), DEFAULT_STAINS).reshape(-1, 3)
    assert np.all(np.abs(back - conc) <= bound)


@FAST
@given(st.tuples(st.integers(1, 255), st.integers(1, 255), st.integers(1, 255)))
def test_od_lut_identities(bg: tuple[int, int, int]) -> None:
    lut = od_lut(tuple(float(v) for v in bg))
    assert lut.shape == (3, 256) and lut.dtype == np.float32
    i = np.arange(256)
    for c in range(3):
        assert lut[c, bg[c]] == 0.0  # background is OD 0
        np.testing.assert_allclose(lut[c], np.log10(bg[c]) - np.log10(np.maximum(i, 1)), atol=2e-6)
        assert lut[c, 0] == lut[c, 1]  # 0 is treated as 1
        assert np.all(np.diff(lut[c, 1:]) < 0)
    # The difference of two intensities does not depend on the background.
    np.testing.assert_allclose(lut[:, 10] - lut[:, 100], 1.0, atol=2e-6)
    rgb = np.array([[[bg[0], 0, 255]]], np.uint8)
    np.testing.assert_array_equal(optical_density(rgb, tuple(float(v) for v in bg))[0, 0],
                                  [lut[0, bg[0]], lut[1, 0], lut[2, 255]])


def test_od_lut_golden_values() -> None:
    lut = od_lut()
    assert lut[0, 255] == 0.0
    assert lut[1, 1] == pytest.approx(2.406540, abs=1e-6)  # log10(255)
    assert lut[2, 25] == pytest.approx(1.008600, abs=1e-6)  # log10(255 / 25)
    assert lut[0, 128] == pytest.approx(0.299330, abs=1e-6)  # log10(255 / 128)


# -- annotations: write, read back, membership ---------------------------------------------------


def _star(draw: st.DrawFn, cx: float, cy: float, r_min: float, r_max: float) -> list[tuple[float, float]]:
    n = draw(st.integers(5, 12))
    jitter = draw(st.lists(st.floats(-0.3, 0.3), min_size=n, max_size=n))
    radii = draw(st.lists(st.floats(r_min, r_max), min_size=n, max_size=n))
    out = []
    for k in range(n):
        t = 2 * math.pi * (k + jitter[k]) / n
        out.append((cx + radii[k] * math.cos(t), cy + radii[k] * math.sin(t)))
    return out


@st.composite
def star_polygons(draw: st.DrawFn, cx: float, cy: float) -> Polygon:
    """Star-shaped polygon about (cx, cy) with 0-2 holes that stay inside its inscribed disc."""
    r_min = draw(st.floats(50.0, 300.0))
    shell = _star(draw, cx, cy, r_min, r_min * draw(st.floats(1.0, 3.0)))
    # Angular gaps < 0.64 pi keep the disc of radius 0.53 r_min inside the shell.
    n_holes = draw(st.integers(0, 2))
    holes = []
    d = 0.25 * r_min
    for k in range(n_holes):
        hx = cx + (d if k == 0 else -d) * (1 if n_holes == 2 else 0)
        holes.append(_star(draw, hx, cy, 0.05 * r_min, 0.2 * r_min))
    poly = Polygon(shell, holes)
    assume(poly.is_valid)
    return poly


name_st = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters=" -_.:&<>\"'"), min_size=1,
                  max_size=12).map(str.strip).filter(lambda s: bool(s) and not is_excluded(s))


@st.composite
def region_sets(draw: st.DrawFn) -> list[Region]:
    """1-3 non-overlapping regions (polygons or two-part multipolygons) in separate 1500 px cells."""
    n = draw(st.integers(1, 3))
    names = draw(st.lists(name_st, min_size=n, max_size=n, unique=True))
    out = []
    for i in range(n):
        x0, y0 = 2000.0 * i + draw(st.floats(1000.0, 1001.0)), draw(st.floats(1000.0, 1001.0))
        parts = [draw(star_polygons(x0, y0))]
        if draw(st.booleans()):
            parts.append(draw(star_polygons(x0, y0 + 2000.0)))
        geom = parts[0] if len(parts) == 1 else MultiPolygon(parts)
        cls = draw(st.sampled_from(["", "Tumor", "Metastasis", "Positive"]))
        out.append(Region(names[i], geom, "annotation", cls))
    return out


def _same_geometry(a, b) -> bool:
    return a.symmetric_difference(b).area <= 1e-9 * max(a.area, 1.0) and abs(a.area - b.area) <= 1e-9 * a.area


@SLOW
@given(region_sets(), st.sampled_from(["geojson", "imagescope", "asap"]))
def test_write_then_read_gives_the_same_regions(tmp_path: Path, regions: list[Region], fmt: str) -> None:
    path = tmp_path / f"roundtrip.{fmt}"
    {"geojson": write_geojson, "imagescope": write_imagescope_xml, "asap": write_asap_xml}[fmt](path, regions)
    loaded = load_annotations(path)
    back = build_regions(loaded.annotations, slide_size=(10_000, 10_000))
    assert [r.name for r in back] == [r.name for r in regions]
    assert [r.classification for r in back] == [r.classification for r in regions]
    for want, got in zip(regions, back):
        assert _same_geometry(want.geometry, got.geometry)
        assert "repaired_geometry" not in got.flags and "clipped_to_slide" not in got.flags
        if fmt == "geojson":  # coordinates are written exactly
            assert shapely.equals_exact(want.geometry, got.geometry, tolerance=0.0)
    if fmt == "asap":  # holes come back as exclusions, one per hole
        n_holes = sum(len(p.interiors) for r in regions for p in getattr(r.geometry, "geoms", [r.geometry]))
        assert sum(a.excluded for a in loaded.annotations) == n_holes


@MEDIUM
@given(region_sets(), st.integers(0, 2**32))
def test_membership_agrees_with_scalar_contains(regions: list[Region], seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = []
    for r in regions:
        x0, y0, x1, y1 = r.geometry.bounds
        pts.append(np.column_stack([rng.uniform(x0 - 10, x1 + 10, 300), rng.uniform(y0 - 10, y1 + 10, 300)]))
        for p in getattr(r.geometry, "geoms", [r.geometry]):
            for ring in [p.exterior, *p.interiors]:
                xy = np.asarray(ring.coords)
                pts.append(xy)  # vertices: on the outline, so outside
                pts.append((xy[:-1] + xy[1:]) / 2)  # edge midpoints (on or next to the outline)
                pts.append(xy[:1] + [[0.0, 1e-9]])
    pts.append(np.array([[np.nan, 1000.0], [1000.0, np.nan], [np.inf, np.inf]]))
    xy = np.concatenate(pts)
    got = region_membership(regions, xy[:, 0], xy[:, 1])
    assert got.shape == (len(regions), len(xy))
    for i, r in enumerate(regions):
        want = [bool(np.isfinite(x) and np.isfinite(y) and r.geometry.contains(Point(x, y))) for x, y in xy]
        assert got[i].tolist() == want
    vertices = np.concatenate([np.asarray(p.exterior.coords) for r in regions
                               for p in getattr(r.geometry, "geoms", [r.geometry])])
    assert not region_membership(regions, vertices[:, 0], vertices[:, 1]).any()

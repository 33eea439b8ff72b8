"""Checks of the self-test: each number of the reference slides against its expected value and tolerance (pure).

A check compares one value read from a results folder (``slides.csv``,
``metastases.csv``) with the value stored in the reference's
``expected.json``, within the tolerance stated beside it there. Two bases:

* ``release``: the value the packaged model gave on the reference slide when
  the reference was made. These checks are tight: any real change of the
  scoring (a parameter, a library that changes a result, a broken install)
  moves at least one of them.
* ``truth``: what the generator drew (:mod:`ihc_score.synthetic`). These are
  loose, the tool's accuracy budget against ground truth: they say that the
  release values were right, not only unchanged.

Tolerances (:data:`TOLERANCES`)
-------------------------------
The release tolerances absorb what may differ between installations without
the method changing: JPEG decoding (decoder builds and SIMD paths may round a
pixel differently by one level) and floating point (BLAS, SIMD reductions,
numba). Both move a cell's mean OD far less than a class band (0.2 OD), so
they flip only the few cells within a hair of a class threshold or of the
nucleus detection threshold; one cell moved by one class moves the H-score of
~850 cells by 0.12. Measured with ``benchmarks/make_selftest_reference.py
--perturb``, which scores the reference slides with every decoded pixel value
moved by a random -1, 0 or +1 (far more than a decoder difference, which
leaves most pixels alone): H-scores moved by at most 0.91 (0.36 with another
draw of the noise, 0.28 with 10 % of the values moved), percent positive by at
most 0.32 points, cell counts by at most 6 cells (0.7 %), stain vectors by at
most 0.09 degree, areas left out not at all. Hence H-score +-1.0, percent
positive +-1.0 point, cells +-1 % (at least 2), stain vectors within 1
degree, areas left out for folds, ink and bubbles within 10 % (at least 0.001
mm^2, 16 tissue-thumbnail pixels of ~8 um), status, regions and calls equal.
Real changes of the method are larger: class thresholds moved by 0.005 OD
(0.205 / 0.405 / 0.605) move every reference H-score by 2.1-2.7 and fail all
five H-score checks; by 0.01 OD, by 3.1-5.4.

The truth tolerances are the tool's error budget, not its platform noise:
H-score within 15 points of the drawn H-score (the model's borderline band is
+-10; the release values are 3-11 off, the negative slide most), the call
equal to the truth's where the drawn H-score is outside the borderline band,
cell counts within 10 % of the drawn tumour cells (release: 1-5 % fewer),
stain vectors within 5 degrees of the dyes drawn (release: at most 3.0; the
drifted slide's dyes are 10 degrees off the defaults), and each drawn
artefact's area found at 0.5-2 times its size (release: 0.96-1.06).

A value that cannot be read (empty field, no such region) or is not finite
(NaN) fails its check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ihc_score.errors import ValidationInputError
from ihc_score.validation.results_dir import read_table

__all__ = [
    "TOLERANCES", "BASES", "Check", "check_value", "tolerance_text", "observed_value", "check_results",
    "release_checks", "truth_checks", "truth_call",
]  # fmt: skip

#: A value of a check: text (status, call, sha256), a number, a vector (stain), or None when absent.
Value = str | float | tuple[float, ...] | None

#: Where an expected value comes from.
BASES: tuple[str, ...] = ("model", "file", "release", "truth")

#: Tolerance of each kind of check (see the module docstring for the reasons). Kinds: ``equal``; ``abs`` and
#: ``rel`` (|value - expected| <= max(abs, rel * |expected|)); ``max_angle_deg`` (angle between vectors);
#: ``ratio`` ([low, high] of value / expected).
TOLERANCES: dict[str, dict[str, Any]] = {
    "equal": {"equal": True},
    "n_cells": {"abs": 2.0, "rel": 0.01},
    "h_score": {"abs": 1.0},
    "pct_positive": {"abs": 1.0},
    "stain": {"max_angle_deg": 1.0},
    "area_mm2": {"abs": 0.001, "rel": 0.1},
    "truth_h_score": {"abs": 15.0},
    "truth_n_cells": {"abs": 0.0, "rel": 0.1},
    "truth_stain": {"max_angle_deg": 5.0},
    "truth_area": {"ratio": [0.5, 2.0]},
}

#: Metrics that name a stain vector, and the ``slides.csv`` columns of its R, G, B.
_STAINS = {"stain_hematoxylin": ("stain_h_r", "stain_h_g", "stain_h_b"),
           "stain_dab": ("stain_dab_r", "stain_dab_g", "stain_dab_b")}
#: Areas left out of the scored tissue, in ``slides.csv``.
AREA_COLUMNS = ("fold_area_mm2", "ink_area_mm2", "bubble_area_mm2")
#: Per-region values compared with the release.
_REGION_TOLERANCES = {"n_cells": "n_cells", "h_score": "h_score", "pct_positive": "pct_positive", "call": "equal"}


@dataclass(frozen=True)
class Check:
    """One value compared with its expected value.

    Attributes
    ----------
    slide : str
        Reference slide file name (``(model)`` for the model check).
    metric : str
        ``sha256``, a ``slides.csv`` column, ``stain_hematoxylin`` /
        ``stain_dab`` (unit OD vector R, G, B) or ``<region>.<column>`` of
        ``metastases.csv``.
    basis : str
        One of :data:`BASES`.
    observed, expected : str, float, tuple of float or None
    tolerance : dict
        As in :data:`TOLERANCES`.
    passed : bool
    deviation : float
        |observed - expected|, the angle in degrees, or the ratio; NaN for
        equality checks and values that cannot be compared.
    """

    slide: str
    metric: str
    basis: str
    observed: Value
    expected: Value
    tolerance: Mapping[str, Any]
    passed: bool
    deviation: float = math.nan

    def line(self) -> str:
        """``PASS|FAIL slide metric value expected tolerance`` on one line."""
        return (f"{'PASS' if self.passed else 'FAIL'} {self.slide} {self.metric} {format_value(self.observed)} "
                f"{format_value(self.expected)} {tolerance_text(self.tolerance)} ({self.basis})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: vectors as lists, non-finite numbers as None."""
        return {"slide": self.slide, "metric": self.metric, "basis": self.basis, "observed": _jsonable(self.observed),
                "expected": _jsonable(self.expected), "tolerance": dict(self.tolerance), "passed": self.passed,
                "deviation": _jsonable(self.deviation)}


def _jsonable(value: Value) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_value(value: Value) -> str:
    """A value as one word: numbers to 6 significant digits, vectors comma-joined, sha256 to 12 characters."""
    if value is None:
        return "missing"
    if isinstance(value, tuple):
        return ",".join(f"{v:.4f}" for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:12]
    return text or "(empty)"


def tolerance_text(tolerance: Mapping[str, Any]) -> str:
    """A tolerance as one word: ``equal``, ``+-1``, ``+-max(2,1%)``, ``<=1deg``, ``x0.5-2``."""
    if tolerance.get("equal"):
        return "equal"
    if "max_angle_deg" in tolerance:
        return f"<={float(tolerance['max_angle_deg']):g}deg"
    if "ratio" in tolerance:
        low, high = tolerance["ratio"]
        return f"x{float(low):g}-{float(high):g}"
    a, r = float(tolerance.get("abs", 0.0)), float(tolerance.get("rel", 0.0))
    if r == 0.0:
        return f"+-{a:g}"
    return f"+-{100 * r:g}%" if a == 0.0 else f"+-max({a:g},{100 * r:g}%)"


def _as_float(value: Value) -> float:
    if isinstance(value, (str, float, int)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def _angle_deg(a: Value, b: Value) -> float:
    """Angle between two vectors, degrees; NaN when either is missing, of another length, zero or not finite."""
    if not isinstance(a, tuple) or not isinstance(b, tuple) or len(a) != len(b) or not a:
        return math.nan
    u, v = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if not (math.isfinite(nu) and math.isfinite(nv)) or nu == 0.0 or nv == 0.0:
        return math.nan
    return math.degrees(math.acos(float(np.clip(np.dot(u, v) / (nu * nv), -1.0, 1.0))))


def check_value(observed: Value, expected: Value, tolerance: Mapping[str, Any]) -> tuple[bool, float]:
    """Whether ``observed`` is within ``tolerance`` of ``expected``, and the deviation.

    Parameters
    ----------
    observed, expected : str, float, tuple of float or None
        Text compares as text; a number expected makes the observed text a
        number; vectors compare by angle.
    tolerance : dict
        One kind of :data:`TOLERANCES`.

    Returns
    -------
    (bool, float)
        Passed, and |observed - expected| (``abs``/``rel``), the angle in
        degrees (``max_angle_deg``), observed / expected (``ratio``) or NaN
        (``equal``). A missing or non-finite value never passes.

    Raises
    ------
    ValidationInputError
        The tolerance is of no known kind.
    """
    if tolerance.get("equal"):
        if isinstance(expected, (int, float)) and not isinstance(expected, bool):
            o, e = _as_float(observed), float(expected)
            return bool(math.isfinite(o) and o == e), math.nan
        return observed is not None and str(observed) == str(expected), math.nan
    if "max_angle_deg" in tolerance:
        angle = _angle_deg(observed, expected)
        return bool(angle <= float(tolerance["max_angle_deg"])), angle
    o, e = _as_float(observed), _as_float(expected)
    if "ratio" in tolerance:
        low, high = (float(x) for x in tolerance["ratio"])
        ratio = o / e if e > 0 and math.isfinite(o) else math.nan
        return bool(low <= ratio <= high), ratio
    if "abs" in tolerance or "rel" in tolerance:
        allowed = max(float(tolerance.get("abs", 0.0)), float(tolerance.get("rel", 0.0)) * abs(e))
        deviation = abs(o - e)
        return bool(deviation <= allowed), deviation
    raise ValidationInputError(f"unknown tolerance {dict(tolerance)!r}; expected.json is damaged, reinstall ihc-score")


def observed_value(metric: str, slide_row: Mapping[str, str] | None,
                   region_rows: Sequence[Mapping[str, str]]) -> Value:
    """The value of ``metric`` for one slide of a results folder (None when it has none).

    Parameters
    ----------
    metric : str
        A ``slides.csv`` column, ``stain_hematoxylin`` / ``stain_dab``, or
        ``<region>.<column>`` of ``metastases.csv``.
    slide_row : dict or None
        The slide's row of ``slides.csv``.
    region_rows : sequence of dict
        The slide's rows of ``metastases.csv``.
    """
    if metric in _STAINS:
        if slide_row is None:
            return None
        return tuple(_as_float(slide_row.get(c, "")) for c in _STAINS[metric])
    region, dot, column = metric.rpartition(".")
    if dot:
        row = next((r for r in region_rows if r.get("region") == region), None)
        return None if row is None or column not in row else row[column]
    return None if slide_row is None or metric not in slide_row else slide_row[metric]


def _tables(results_dir: Path) -> tuple[dict[str, dict[str, str]], list[dict[str, str]]]:
    slides = read_table(results_dir, what="slides", required=("slide", "status"))
    regions = read_table(results_dir, what="metastases", required=("slide", "region"))
    return {row["slide"]: row for row in slides}, regions


def check_results(results_dir: str | Path, specs: Sequence[Mapping[str, Any]],
                  known: Mapping[tuple[str, str], Value] | None = None) -> tuple[Check, ...]:
    """Every check of ``specs`` against a results folder.

    Parameters
    ----------
    results_dir : path
        Folder written by ``ihc-score score`` of the reference slides.
    specs : sequence of dict
        ``slide``, ``metric``, ``basis``, ``expected``, ``tolerance`` (the
        ``checks`` of ``expected.json``).
    known : dict, optional
        Observed values not in the results, by ``(slide, metric)`` (the
        files' sha256).

    Raises
    ------
    ValidationInputError
        The folder lacks its tables, or a spec lacks a field.
    """
    slides, regions = _tables(Path(results_dir))
    known = known or {}
    checks = []
    for spec in specs:
        try:
            slide, metric, basis, expected, tol = (spec[k] for k in ("slide", "metric", "basis", "expected",
                                                                    "tolerance"))
        except (KeyError, TypeError):
            raise ValidationInputError(f"a check in expected.json lacks a field: {spec!r}") from None
        if (slide, metric) in known:
            observed = known[(slide, metric)]
        else:
            observed = observed_value(metric, slides.get(slide), [r for r in regions if r["slide"] == slide])
        expected = tuple(expected) if isinstance(expected, list) else expected
        if isinstance(observed, str) and isinstance(expected, (int, float)) and not isinstance(expected, bool):
            observed = _as_float(observed)
        passed, deviation = check_value(observed, expected, tol)
        checks.append(Check(slide, metric, basis, observed, expected, tol, passed, deviation))
    return tuple(checks)


def truth_call(h_score: float, cutoff: float, borderline: float) -> str | None:
    """The call of a drawn H-score: None inside the borderline band (``|H - cutoff| < borderline``)."""
    if abs(h_score - cutoff) < borderline:
        return None
    return "positive" if h_score >= cutoff else "negative"


def _spec(slide: str, metric: str, basis: str, expected: Value, kind: str) -> dict[str, Any]:
    return {"slide": slide, "metric": metric, "basis": basis, "expected": _jsonable(expected),
            "tolerance": TOLERANCES[kind]}


def release_checks(results_dir: str | Path, slide: str) -> list[dict[str, Any]]:
    """The release checks of one reference slide, with the values its results folder holds now.

    Status, number of regions, each region's cells, H-score, percent
    positive and call, both stain vectors and the areas left out for folds,
    ink and bubbles.

    Raises
    ------
    ValidationInputError
        The slide is not in the folder or was not scored.
    """
    slides, regions = _tables(Path(results_dir))
    row = slides.get(slide)
    if row is None or row["status"] != "ok":
        raise ValidationInputError(f"{slide}: not scored in {results_dir}; it cannot be a reference slide")
    mine = [r for r in regions if r["slide"] == slide]
    specs = [_spec(slide, "status", "release", row["status"], "equal"),
             _spec(slide, "n_regions", "release", float(row["n_regions"]), "equal")]
    for region in sorted(r["region"] for r in mine):
        for column, kind in _REGION_TOLERANCES.items():
            value = observed_value(f"{region}.{column}", row, mine)
            specs.append(_spec(slide, f"{region}.{column}", "release",
                               value if kind == "equal" else _as_float(value), kind))
    specs += [_spec(slide, metric, "release", observed_value(metric, row, mine), "stain") for metric in _STAINS]
    specs += [_spec(slide, column, "release", _as_float(row[column]), "area_mm2") for column in AREA_COLUMNS]
    return specs


def truth_checks(slide: str, region: str, truth: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The truth checks of one reference slide with one metastasis, scored as ``region``.

    Parameters
    ----------
    truth : dict
        ``h_score``, ``n_cells`` (of the tumour cells that should be scored),
        ``call`` (None inside the borderline band: not checked),
        ``hematoxylin`` and ``dab`` (unit OD vectors drawn) and
        ``artefacts_mm2`` (``slides.csv`` area column -> drawn area).
    """
    specs = [_spec(slide, f"{region}.h_score", "truth", float(truth["h_score"]), "truth_h_score"),
             _spec(slide, f"{region}.n_cells", "truth", float(truth["n_cells"]), "truth_n_cells")]
    if truth.get("call") is not None:
        specs.append(_spec(slide, f"{region}.call", "truth", truth["call"], "equal"))
    specs += [_spec(slide, f"stain_{dye}", "truth", tuple(truth[dye]), "truth_stain") for dye in ("hematoxylin", "dab")]
    specs += [_spec(slide, column, "truth", float(area), "truth_area")
              for column, area in sorted(truth.get("artefacts_mm2", {}).items())]
    return specs

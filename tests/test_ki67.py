"""Ki67 accuracy of the whole pipeline (``score_slide``) on real images with ground truth.

Runs ``benchmarks/ki67_accuracy.py``'s ``evaluate()`` once (a few seconds);
skipped when ``../shared/data`` is absent.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "ki67_accuracy.py"

#: Largest allowed |our percent positive - truth's|, percentage points.
MAX_DIFF_POINTS = 10.0
#: Lowest detection recall on the glioma fields (every nucleus outlined there is a real one).
MIN_GLIOMA_RECALL = 0.7
GLIOMA_FIELDS = (
    "ki67-glioma/1309620-A2-27",
    "ki67-glioma/1329941-B3-25",
)


def _benchmark_module():
    name = "ki67_accuracy"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows(shared_data: Path) -> dict:
    found = _benchmark_module().evaluate(shared_data)
    if not found:
        pytest.skip("no Ki67 images with ground truth under ../shared/data/ihc")
    return {r.image: r for r in found}


def test_every_image_is_scored(rows: dict):
    bench = _benchmark_module()
    assert set(rows) == {name for name, *_ in bench.IMAGES}


def test_percent_positive_within_10_points(rows: dict):
    off = {
        name: f"truth {r.truth_positive_pct:.1f} %, ours {r.our_positive_pct:.1f} %"
        for name, r in rows.items()
        if not (math.isfinite(r.difference) and abs(r.difference) <= MAX_DIFF_POINTS)
    }
    assert not off, off


@pytest.mark.parametrize("field", GLIOMA_FIELDS)
def test_glioma_detection_recall(rows: dict, field: str):
    r = rows[field]
    assert r.recall >= MIN_GLIOMA_RECALL, f"{field}: recall {r.recall:.2f} ({r.field_cells} cells kept)"

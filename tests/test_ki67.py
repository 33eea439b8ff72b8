"""Ki67 accuracy of the whole pipeline (``score_slide``) on real images with ground truth.

Runs ``benchmarks/ki67_accuracy.py``'s ``evaluate()`` once over the five data
sets (about 15 s); skipped when ``../shared/data`` is absent.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
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
#: Sets with fields more than 10 points off today (see benchmarks/README.md, ki67_loso.py).
KNOWN_OFF = {
    "shidc-ki67": "unannotated stroma counted as negative cells (a field of 40 marked cells holds 163 nuclei), "
                  "weak positives below 0.2 OD",
    "bcdata-ki67": "pale negative nuclei still lost beside dark positive ones (recall 0.85 with the second "
                   "search, 0.64 without), so 10 of 13 fields are too positive (mean error 6.6, three fields over "
                   "10); 9 % of the cells, clumps of the darkest positive nuclei, called pigmented",
}


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


@pytest.mark.parametrize(
    "data_set",
    [pytest.param(s, marks=pytest.mark.xfail(reason=KNOWN_OFF[s], strict=True)) if s in KNOWN_OFF else s
     for s in _benchmark_module().SETS],
)  # fmt: skip
def test_percent_positive_within_10_points(rows: dict, data_set: str):
    mine = {name: r for name, r in rows.items() if _benchmark_module().set_of(name) == data_set}
    off = {
        name: f"truth {r.truth_positive_pct:.1f} %, ours {r.our_positive_pct:.1f} %"
        for name, r in mine.items()
        if not (math.isfinite(r.difference) and abs(r.difference) <= MAX_DIFF_POINTS)
    }
    assert not off, off


@pytest.mark.parametrize("field", GLIOMA_FIELDS)
def test_glioma_detection_recall(rows: dict, field: str):
    r = rows[field]
    assert r.recall >= MIN_GLIOMA_RECALL, f"{field}: recall {r.recall:.2f} ({r.field_cells} cells kept)"


@pytest.mark.parametrize("data_set", ["shidc-ki67", "bcdata-ki67"])
def test_point_truth_matches_the_data_sets_counts(shared_data: Path, data_set: str):
    """Every point counts (lymphocytes as negative cells); label 1 is positive."""
    bench = _benchmark_module()
    counts = json.loads((shared_data / "ihc" / data_set / "truth.json").read_text())
    images = bench.available(shared_data, (data_set,))
    assert len(images) == 13
    for _name, kind, path, _mpp in images:
        truth = bench.load_truth(kind, path)
        c = counts[path.name]
        assert (int(truth.positive.sum()), len(truth.xy)) == (c["n_pos"], c["n_pos"] + c["n_neg"] + c["n_lymphocytes"])


def test_set_summary_pools_fields(rows: dict):
    bench = _benchmark_module()
    summaries = {s.name: s for s in bench.summarize(list(rows.values()))}
    assert list(summaries) == list(bench.SETS)
    for name, s in summaries.items():
        mine = [r for r in rows.values() if bench.set_of(r.image) == name]
        assert s.n_fields == len(mine)
        assert s.mae == pytest.approx(np.mean([abs(r.difference) for r in mine]))
        assert abs(s.worst_difference) == pytest.approx(max(abs(r.difference) for r in mine))
        assert s.recall == pytest.approx(sum(r.true_positives for r in mine) / sum(r.truth_cells for r in mine))

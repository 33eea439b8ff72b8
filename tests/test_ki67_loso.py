"""The selection logic of ``benchmarks/ki67_loso.py`` on made-up numbers (no data, no scoring)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def loso():
    _module("ki67_accuracy")  # imported by name from ki67_loso
    return _module("ki67_loso")


def _metrics(loso, best: dict[str, tuple[int, int, int]]) -> dict:
    """Each set has loss 10 everywhere except 0 at its own best (analysis size, variant, cut-off)."""
    shape = (len(loso.ANALYSIS_MPPS), 3, len(loso.DAB_CUTS))
    out = {}
    for name, idx in best.items():
        mae = np.full(shape, 10.0)
        mae[idx] = 0.0
        out[name] = (mae, mae.copy(), np.ones(shape[:2]))
    return out


def test_choose_ignores_the_held_out_set(loso):
    params = loso.variants({"sigma_um": (1.0, 1.5, 2.0)})
    metrics = _metrics(loso, {"a": (0, 1, 2), "b": (0, 1, 2), "c": (1, 2, 0)})
    setting, loss = loso.choose(metrics, ("a", "b"), params)
    assert (setting.analysis_mpp_um, setting.params.sigma_um, setting.dab_cut) == (
        loso.ANALYSIS_MPPS[0], 1.5, loso.DAB_CUTS[2]
    )
    assert loss == 0.0
    setting, _ = loso.choose(metrics, ("c",), params)
    assert (setting.params.sigma_um, setting.dab_cut) == (2.0, loso.DAB_CUTS[0])


def test_loss_penalises_recall_below_target(loso):
    mae = np.array([[1.0, 2.0]])
    assert loso.loss(mae, np.array([0.80])) == pytest.approx(mae + 100 * 0.05)
    assert loso.loss(mae, np.array([0.90])) == pytest.approx(mae)


def test_verdict_needs_every_held_out_set_no_worse(loso):
    acc = _module("ki67_accuracy")

    def summary(mae: float, recall: float = 0.9):
        return acc.SetSummary("x", 1, mae, "x/1", mae, recall, 1.0)

    defaults = {"a": summary(3.0), "b": summary(3.0)}
    assert loso.verdict({"a": summary(2.0), "b": summary(3.2)}, defaults)[0]
    assert not loso.verdict({"a": summary(1.0), "b": summary(4.0)}, defaults)[0]
    assert not loso.verdict({"a": summary(2.0), "b": summary(2.0, recall=0.8)}, defaults)[0]


def test_faint_variants_are_the_search_off_then_on_with_every_pair_of_limits(loso):
    variants = loso.faint_variants()
    assert not variants[0].faint_pass and all(v.faint_pass for v in variants[1:])
    pairs = {(v.faint_min_peak_od, v.faint_min_fill) for v in variants[1:]}
    assert len(pairs) == len(variants) - 1 == len(loso.FAINT_GRID["faint_min_peak_od"]) * len(loso.FAINT_GRID["faint_min_fill"])
    # the shipped model searches with the first pair: the search off, and the other pairs, are named
    assert "faint_pass=False" in loso.Setting(0.5, variants[0], 0.2).describe()
    assert loso.Setting(0.5, variants[1], 0.2).describe().endswith("detection as default")
    assert "faint_min_fill=0.85" in loso.Setting(0.5, variants[2], 0.2).describe()

"""``benchmarks/_optical_ceiling.py``: what the light lets any scorer see, against the drawn truth."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

from ihc_score.synthetic import TumourRegion, make_slide, preset

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def ceiling():
    spec = importlib.util.spec_from_file_location("_optical_ceiling", BENCHMARKS / "_optical_ceiling.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_optical_ceiling", module)
    spec.loader.exec_module(module)
    return module


def _spec(staining: str, blur_um: float):
    spec = preset(
        "default", width=1024, height=1024, seed=4, tissue_fraction=0.0, tissue_pieces=1,
        stroma_density_per_mm2=0.0, tumour_density_per_mm2=5000.0,
        regions=(TumourRegion(center=(0.5, 0.5), radii=(0.6, 0.6), class_proportions=(0.3, 0.3, 0.25, 0.15)),),
        staining=staining,
    )
    return dataclasses.replace(spec, scanner=dataclasses.replace(spec.scanner, blur_sigma_um=blur_um, noise_sigma=0.0))


def test_without_blur_the_light_shows_the_drawn_truth(ceiling, tmp_path):
    # no blur and no noise: each pixel's DAB is recovered up to 8-bit rounding, so every class is the drawn one
    spec = _spec("membranous", 0.0)
    truth = make_slide(tmp_path / "s.svs", spec)
    level0, reduced = ceiling.optical_h_scores(spec, tuple(truth["thresholds"]), 2 * spec.mpp_um)
    assert level0 == pytest.approx(truth["totals"]["h_score"], abs=1.0)
    assert reduced < level0  # the 2 x 2 reduction averages light: a dark ring beside a pale interior is paler


def test_the_blurred_ring_loses_a_class(ceiling, tmp_path):
    # 0.5 um of optical blur on a 1 um ring: a third of its OD is lost in the light before any scorer
    spec = _spec("membranous", 0.5)
    truth = make_slide(tmp_path / "s.svs", spec)
    level0, _ = ceiling.optical_h_scores(spec, tuple(truth["thresholds"]), 2 * spec.mpp_um)
    assert level0 < truth["totals"]["h_score"] - 30.0


def test_analysis_pixel_must_be_a_whole_multiple(ceiling):
    spec = _spec("membranous", 0.2)
    with pytest.raises(ValueError, match="whole multiple"):
        ceiling.optical_h_scores(spec, (0.2, 0.4, 0.6), 1.5 * spec.mpp_um)

"""Scanner calibration: the OD factor between two scans of one section, the model it writes, the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ihc_score.cli import main
from ihc_score.errors import ModelError
from ihc_score.model import DEFAULT_MODEL_PATH, default_model, derive_model, load_model
from ihc_score.outputs import slide_note
from ihc_score.run import score_slide
from ihc_score.stain import StainVectors, deconvolve, scanner_scale


def _section(seed: int, n: int = 20_000, dab: bool = True) -> np.ndarray:
    """Concentrations (H, DAB, residual) of a section's tissue pixels: gamma-distributed stains."""
    rng = np.random.default_rng(seed)
    h = rng.gamma(2.0, 0.12, n)
    d = rng.gamma(1.5, 0.2, n) if dab else np.zeros(n)
    return np.stack([h, d, np.zeros(n)], axis=1)


def test_a_tone_curve_is_undone_by_one_factor():
    reference = _section(1)
    new = 1.25 * _section(2)  # another sample of the same tissue, every OD 1.25 times as large (gamma 1.25)
    fit = scanner_scale(reference, new)
    assert fit.scale == pytest.approx(0.8, rel=0.02)
    assert fit.hematoxylin_scale == pytest.approx(0.8, rel=0.02) and fit.dab_scale == pytest.approx(0.8, rel=0.02)
    assert fit.residual < 0.03
    assert scanner_scale(reference, reference).scale == pytest.approx(1.0, abs=1e-9)


def test_stains_scaled_apart_show_in_the_residual_and_per_stain_factors():
    reference = _section(1)
    new = _section(2) * np.array([1.0, 1.5, 1.0])  # DAB alone 1.5 times: not a tone curve
    fit = scanner_scale(reference, new)
    assert fit.hematoxylin_scale == pytest.approx(1.0, rel=0.03)
    assert fit.dab_scale == pytest.approx(1 / 1.5, rel=0.03)
    assert fit.residual > 0.1


def test_a_section_without_dab_is_fitted_on_hematoxylin_alone():
    fit = scanner_scale(_section(1, dab=False), 0.9 * _section(2, dab=False))
    assert np.isnan(fit.dab_scale)
    assert fit.scale == pytest.approx(1 / 0.9, rel=0.02)


def test_too_little_tissue_or_no_stain_is_refused():
    with pytest.raises(ValueError, match="too little tissue"):
        scanner_scale(_section(1, n=500), _section(2))
    with pytest.raises(ValueError, match="neither stain"):
        scanner_scale(np.zeros((5000, 3)), np.zeros((5000, 3)))


def test_deconvolution_applies_the_od_scale():
    rgb = np.random.default_rng(0).integers(20, 250, (16, 16, 3), dtype=np.uint8)
    base = deconvolve(rgb, StainVectors())
    np.testing.assert_allclose(deconvolve(rgb, StainVectors(od_scale=1.5)), 1.5 * base, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="od_scale"):
        StainVectors(od_scale=0.1)


def test_a_derived_model_is_new_valid_and_records_its_origin(tmp_path):
    out = tmp_path / "new.json"
    record = {"kind": "scanner", "date": "2026-12-07", "od_scale": 0.85}
    model = derive_model(None, out, new_id="s100a9-scanner-b", values={"stains.od_scale": 0.85}, record=record)
    assert model.id == "s100a9-scanner-b" and model.stains.od_scale == 0.85
    assert model.calibrations == (record,)
    assert model.classification == default_model().classification
    assert load_model(out).sha256 == model.sha256 != default_model().sha256
    with pytest.raises(ModelError, match="never overwritten"):
        derive_model(None, out, new_id="x", values={}, record=record)
    bad = tmp_path / "bad.json"
    with pytest.raises(ModelError, match="od_scale"):
        derive_model(None, bad, new_id="x", values={"stains.od_scale": 9.0}, record=record)
    assert not bad.exists()


def test_a_model_with_malformed_calibrations_is_refused(tmp_path):
    data = json.loads(DEFAULT_MODEL_PATH.read_text())
    data["calibrations"] = [{"date": "no kind"}]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="calibrations"):
        load_model(path)


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> dict[str, Path]:
    """Two sections, each drawn under the reference scanner and under scanner-b (tone curve gamma 1.2)."""
    d = tmp_path_factory.mktemp("scans")
    out = {}
    for seed in (4, 5):
        for scanner in ("reference", "scanner-b"):
            path = d / f"s{seed}-{scanner}.svs"
            res = CliRunner().invoke(main, ["synth", str(path), "--width", "2048", "--height", "1536", "--seed",
                                            str(seed), "--scanner", scanner, "--tissue-fraction", "0.6"])
            assert res.exit_code == 0, res.output
            out[f"{seed}-{scanner}"] = path
    return out


def test_calibrate_scanner_brings_another_section_back_to_the_reference(scans, tmp_path):
    out = tmp_path / "scanner-b.json"
    res = CliRunner().invoke(main, ["calibrate-scanner", str(scans["4-reference"]), str(scans["4-scanner-b"]),
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "OD factor" in res.output and "model written" in res.output
    model = load_model(out)
    assert 0.78 < model.stains.od_scale < 0.92  # gamma 1.2 with scanner-b's blur and crosstalk
    (record,) = model.calibrations
    assert record["kind"] == "scanner" and len(record["new_sha256"]) == 64 and record["new_scan"] == "s4-scanner-b.svs"
    assert (record["reference_scanner"], record["new_scanner"]) == ("ihc-score synthetic reference",
                                                                     "ihc-score synthetic scanner-b")
    # Section 5 was not calibrated on: its H-score on scanner-b moves back to the reference scan's.
    h = {key: score_slide(scans[key], m, region_mode="tissue").regions[0].counts.h_score
         for key, m in (("5-reference", default_model()), ("5-scanner-b", default_model()))}
    calibrated = score_slide(scans["5-scanner-b"], model, region_mode="tissue")
    assert abs(h["5-scanner-b"] - h["5-reference"]) > 10
    assert abs(calibrated.regions[0].counts.h_score - h["5-reference"]) < 5
    # The model holds for scanner-b only: a slide of another scanner is flagged, and none is by the shipped model.
    assert "scanner_not_calibrated" not in calibrated.flags
    other = score_slide(scans["5-reference"], model, region_mode="tissue")
    assert "scanner_not_calibrated" in other.flags
    assert "calibrate-scanner" in slide_note(other.flags) and slide_note(calibrated.flags) == ""
    assert "scanner_not_calibrated" not in score_slide(scans["5-reference"], default_model(), region_mode="tissue").flags


def test_calibrate_scanner_never_overwrites_and_names_a_bad_scan(scans, tmp_path):
    out = tmp_path / "exists.json"
    out.write_text("{}")
    res = CliRunner().invoke(main, ["calibrate-scanner", str(scans["4-reference"]), str(scans["4-scanner-b"]),
                                    "--out", str(out)])
    assert res.exit_code == 1 and "never overwritten" in res.output and out.read_text() == "{}"
    broken = tmp_path / "broken.svs"
    broken.write_bytes(b"not a slide")
    res = CliRunner().invoke(main, ["calibrate-scanner", str(scans["4-reference"]), str(broken),
                                    "--out", str(tmp_path / "new.json")])
    assert res.exit_code == 1 and "broken.svs" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "new.json").exists()

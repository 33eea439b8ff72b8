"""Per-metastasis scores on a synthetic slide with two metastases, parenchyma and necrosis."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import shapely
from click.testing import CliRunner
from shapely.geometry import shape

from ihc_score.cli import main
from ihc_score.model import default_model
from ihc_score.run import score_slide
from ihc_score.synthetic import make_slide, preset

SAMPLES = Path(__file__).resolve().parents[1] / "sample_slides"


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    """A multi-metastasis slide (one positive, one negative, a necrosis inside the positive one) and its truth."""
    d = tmp_path_factory.mktemp("multi")
    path = d / "multi.svs"
    truth = make_slide(path, preset("multi-met", width=6000, height=4500, seed=2), annotations=True)
    return path, truth


@pytest.fixture(scope="module")
def model():
    return default_model()


def test_annotated_metastases_match_truth(multi, model):
    path, truth = multi
    result = score_slide(path, model)
    assert result.annotation_file == "multi.geojson"
    got = {r.name: r for r in result.regions}
    assert set(got) == {r["name"] for r in truth["regions"]}
    for region in truth["regions"]:
        r = got[region["name"]]
        assert r.source == "annotation"
        assert abs(r.counts.h_score - region["h_score"]) <= 10, region["name"]
        assert abs(r.counts.n - region["n_cells"]) <= 0.1 * region["n_cells"]
        want = "positive" if region["h_score"] >= 100 else "negative"
        assert r.call.call == want, (region["name"], r.call)
        assert r.h_interval.low <= r.counts.h_score <= r.h_interval.high
        # the necrosis is cut out of the region's outline
        assert r.area_mm2 == pytest.approx(region["area_um2"] / 1e6, rel=0.02)
        assert "exclusions_cut" in r.flags or not truth["necroses"] or region["name"] != "met-positive"


def test_automatic_regions_find_the_metastases(multi, model, tmp_path):
    path, truth = multi
    bare = tmp_path / "bare.svs"
    shutil.copy(path, bare)  # no annotation file beside this copy
    result = score_slide(bare, model)
    assert result.annotation_file == ""
    found = [(r, shapely.from_wkt(r.wkt)) for r in result.regions]
    assert [r.name for r, _ in found] == [f"auto-{i + 1}" for i in range(len(found))]
    assert len(found) == len(truth["regions"])  # none extra, none missed
    for region in truth["regions"]:
        true_shape = shape(region["outline"])
        best, iou = max(
            ((r, true_shape.intersection(g).area / true_shape.union(g).area) for r, g in found), key=lambda t: t[1]
        )
        assert iou >= 0.8, (region["name"], iou)
        assert abs(best.counts.h_score - region["h_score"]) <= 10, region["name"]
        assert best.source == "auto"


def test_malformed_annotation_fails_only_its_slide(multi, tmp_path):
    path, _ = multi
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(path, d / "bad.svs")
    (d / "bad.geojson").write_text('{"type": "FeatureCollection", "features": [')
    shutil.copy(SAMPLES / "synthetic-negative.svs", d / "good.svs")
    res = CliRunner().invoke(main, ["score", str(d), "--out", str(tmp_path / "out"), "--workers", "1"])
    assert res.exit_code == 1
    with open(tmp_path / "out" / "slides.csv", newline="") as fh:
        rows = {r["slide"]: r for r in csv.DictReader(fh)}
    assert rows["bad.svs"]["status"] == "failed" and "bad.geojson" in rows["bad.svs"]["error"]
    assert rows["good.svs"]["status"] == "ok"


def test_case_of_two_slides_and_three_metastases(multi, tmp_path):
    path, truth = multi
    d = tmp_path / "case"
    d.mkdir()
    shutil.copy(path, d / "P1-A.svs")
    shutil.copy(path.with_suffix(".geojson"), d / "P1-A.geojson")
    shutil.copy(SAMPLES / "synthetic-negative.svs", d / "P1-B.svs")
    shutil.copy(SAMPLES / "synthetic-positive.svs", d / "P2.svs")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("slide,case,metastasis\nP1-A.svs,patient-1,frontal\nP1-B.svs,patient-1,cerebellar\nP2.svs,patient-2,\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["score", str(d), "--out", str(out), "--manifest", str(manifest), "--workers", "1"])
    assert res.exit_code == 0, res.output
    with open(out / "cases.csv", newline="") as fh:
        cases = {r["case"]: r for r in csv.DictReader(fh)}
    with open(out / "metastases.csv", newline="") as fh:
        mets = list(csv.DictReader(fh))
    p1 = cases["patient-1"]
    assert (p1["n_slides"], p1["n_metastases"]) == ("2", "3")
    p1_mets = [m for m in mets if m["case"] == "patient-1"]
    assert len(p1_mets) == 3 and {m["metastasis"] for m in p1_mets} == {"frontal", "cerebellar"}
    pooled = [sum(int(m[k]) for m in p1_mets) for k in ("n_0", "n_1plus", "n_2plus", "n_3plus")]
    assert [int(p1[k]) for k in ("n_0", "n_1plus", "n_2plus", "n_3plus")] == pooled
    h = 100 * (pooled[1] + 2 * pooled[2] + 3 * pooled[3]) / sum(pooled)
    assert float(p1["pooled_h_score"]) == pytest.approx(h, abs=0.006)
    assert float(p1["max_metastasis_h_score"]) == max(float(m["h_score"]) for m in p1_mets)
    assert p1["call"] == "positive"  # met-positive of P1-A
    assert cases["patient-2"]["call"] == "positive" and cases["patient-2"]["n_metastases"] == "1"
    assert json.loads((out / "run.json").read_text())["options"]["manifest"] is True


def test_detections_match_the_metastasis_table(multi, tmp_path):
    """Cells in detections/<slide>.geojson per region and class equal metastases.csv; QuPath object types only."""
    path, _ = multi
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(path, d / "m.svs")
    shutil.copy(path.with_suffix(".geojson"), d / "m.geojson")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["score", str(d), "--out", str(out), "--workers", "1", "--cells",
                                    "--detections", "geojson"])
    assert res.exit_code == 0, res.output
    collection = json.loads((out / "detections" / "m.geojson").read_text())
    assert collection["type"] == "FeatureCollection"
    kinds = {f["properties"]["objectType"] for f in collection["features"]}
    assert kinds == {"annotation", "cell"}
    names = {"Negative": "n_0", "1+": "n_1plus", "2+": "n_2plus", "3+": "n_3plus"}
    counted: dict[tuple[str, str], int] = {}
    for f in collection["features"]:
        assert shape(f["geometry"]).is_valid
        if f["properties"]["objectType"] != "cell":
            continue
        nucleus = shape(f["nucleusGeometry"])  # inside its cell, but for 0.01 px rounding of the coordinates
        assert nucleus.difference(shape(f["geometry"])).area <= 1e-3 * nucleus.area
        for region in f["properties"]["regions"]:
            key = (region, names[f["properties"]["classification"]["name"]])
            counted[key] = counted.get(key, 0) + 1
    with open(out / "metastases.csv", newline="") as fh:
        mets = list(csv.DictReader(fh))
    for m in mets:
        for column in names.values():
            assert counted.get((m["region"], column), 0) == int(m[column]), (m["region"], column)
        assert (out / m["qc_zoom"]).is_file()
    assert (out / "cells" / "m.csv.gz").is_file() and (out / "report.html").is_file()

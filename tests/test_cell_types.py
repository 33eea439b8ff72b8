"""Cell types: features, prediction, model files, fitting, and the scoring of tumour cells only."""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from ihc_score.cells import CellTable
from ihc_score.errors import ModelError
from ihc_score.model import DEFAULT_MODEL_PATH, load_model
from ihc_score.regions import CellLabels, read_cell_labels, write_cell_labels
from ihc_score.score import (
    CELL_TYPES,
    CellTypeModel,
    cell_type_features,
    load_cell_type_model,
    predict_cell_types,
    stain_check_warning,
)
from ihc_score.score.cell_type_fit import fit_cell_types, match_points, stain_independence
from ihc_score.score.cell_types import SHAPE_FEATURES, _feature_names, cell_type_model_json

N_FEATURES = len(_feature_names())
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _table(xy_px, area_um2, hema=0.3):
    n = len(xy_px)
    xy = np.asarray(xy_px, np.float32)
    ones = np.ones(n, np.float32)
    return CellTable(
        a_x=xy[:, 0], a_y=xy[:, 1], nucleus_area_um2=np.asarray(area_um2, np.float32), cell_area_um2=4 * ones * 25,
        hematoxylin_od_mean=hema * ones, hematoxylin_od_sd=0.05 * ones, nucleus_elongation=ones,
        nucleus_roughness=ones, dab_nucleus_mean=0 * ones, dab_nucleus_max=0 * ones, dab_cytoplasm_mean=0 * ones,
        dab_cytoplasm_max=0 * ones, dab_cell_mean=0 * ones, dab_cell_max=0 * ones,
    )


def _model(types=("tumour", "lymphocyte"), area_weight=4.0, **kw) -> CellTypeModel:
    """Lymphocyte when the nucleus is small: its logit rises by ``area_weight`` per unit of -log(area / 50 um^2)."""
    coef = [[0.0] * N_FEATURES, [-area_weight] + [0.0] * (N_FEATURES - 1)]
    return CellTypeModel(id="toy", types=types, mean=(math.log(50.0),) + (0.0,) * (N_FEATURES - 1),
                         scale=(1.0,) * N_FEATURES, coef=tuple(map(tuple, coef)), intercept=(0.0, 0.0), **kw)


def test_features_by_hand():
    # three nuclei at 0, 10 and 100 um on a line (0.5 um/px): the first two are each other's only neighbours
    table = _table([(0, 0), (20, 0), (200, 0)], [20.0, 80.0, 50.0])
    f = cell_type_features(table, mpp_um=0.5, neighbourhood_um=30.0)
    assert f.shape == (3, N_FEATURES)
    np.testing.assert_allclose(f[:, 0], np.log([20.0, 80.0, 50.0]))
    np.testing.assert_allclose(f[:, 5], np.log(100.0 / np.array([20.0, 80.0, 50.0])))
    np.testing.assert_allclose(f[:, 6], np.log([80.0, 20.0, 50.0]))  # neighbour mean; alone: its own value
    np.testing.assert_allclose(f[:, -1], np.log1p([1, 1, 0]))


def test_a_missing_value_takes_the_median_not_a_type():
    table = _table([(0, 0), (20, 0), (200, 0)], [20.0, 80.0, 50.0])
    sd = table.hematoxylin_od_sd.copy()
    sd[:] = [0.1, np.nan, 0.3]
    f = cell_type_features(CellTable(**{**table.__dict__, "hematoxylin_od_sd": sd}), mpp_um=0.5, neighbourhood_um=30.0)
    assert np.isfinite(f).all() and f[1, 2] == pytest.approx(0.2)


def test_prediction_is_the_softmax_by_hand():
    model = _model()
    table = _table([(0, 0), (500, 0)], [50.0 * math.exp(-0.5), 50.0 * math.exp(0.5)])
    kind, p = predict_cell_types(model, cell_type_features(table, mpp_um=0.5, neighbourhood_um=30.0))
    # logits (0, 2) and (0, -2): lymphocyte with 1 / (1 + e^-2), tumour with the same
    assert [CELL_TYPES[k] for k in kind] == ["lymphocyte", "tumour"]
    np.testing.assert_allclose(p, 1 / (1 + math.exp(-2.0)), rtol=1e-6)


def test_model_file_round_trip_and_refusals(tmp_path):
    model = _model(info={"trained_on": ["toy"]})
    path = tmp_path / "types.json"
    path.write_text(cell_type_model_json(model))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_cell_type_model(path, sha) == model
    with pytest.raises(ValueError, match="sha256 differs"):
        load_cell_type_model(path, "0" * 64)
    data = json.loads(path.read_text())
    data["features"] = data["features"][:-1]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="features must be"):
        load_cell_type_model(path)
    with pytest.raises(ValueError, match="types must be"):
        _model(types=("tumour", "plasma cell"))


def test_a_model_of_shape_features_alone_reads_only_their_columns(tmp_path):
    table = _table([(0, 0), (20, 0), (200, 0)], [20.0, 80.0, 50.0], hema=0.3)
    darker = CellTable(**{**table.__dict__, "hematoxylin_od_mean": table.hematoxylin_od_mean * 3,
                          "cell_area_um2": table.cell_area_um2 * 2})
    full = cell_type_features(table, mpp_um=0.5, neighbourhood_um=30.0)
    shape = cell_type_features(table, mpp_um=0.5, neighbourhood_um=30.0, own=SHAPE_FEATURES)
    assert shape.shape == (3, 2 * len(SHAPE_FEATURES) + 1)
    # area, elongation, roughness and their neighbour means are the full set's columns 0, 3, 4, 6, 9, 10; count last
    np.testing.assert_array_equal(shape, full[:, [0, 3, 4, 6, 9, 10, 12]])
    # what the stain can change (hematoxylin density, the stained body) leaves them as they were
    np.testing.assert_array_equal(cell_type_features(darker, mpp_um=0.5, neighbourhood_um=30.0, own=SHAPE_FEATURES),
                                  shape)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (100, shape.shape[1]))
    x[50:, 0] += 3
    model = fit_cell_types(x, np.array(["lymphocyte"] * 50 + ["tumour"] * 50), model_id="shape",
                           neighbourhood_um=30.0, own=SHAPE_FEATURES)
    path = tmp_path / "shape.json"
    path.write_text(cell_type_model_json(model))
    back = load_cell_type_model(path)
    assert back == model and back.features == SHAPE_FEATURES
    assert json.loads(path.read_text())["features"][-1] == "log1p_neighbours"
    data = json.loads(path.read_text())
    data["features"] = ["nucleus_elongation", "log_nucleus_area_um2", "nucleus_roughness",
                        "nb_nucleus_elongation", "nb_log_nucleus_area_um2", "nb_nucleus_roughness", "log1p_neighbours"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="in that order"):
        load_cell_type_model(path)
    with pytest.raises(ValueError, match="features must be"):
        _model(features=("dab_cell_mean",))


def test_the_stain_check_by_hand():
    # 30 tumour cells of class 0 (27 typed tumour), 30 of class 3+ (15 typed tumour), 5 of 1+ (too few to
    # compare), and 10 lymphocytes, whose types do not enter
    truth = np.array(["tumour"] * 65 + ["lymphocyte"] * 10)
    classes = np.array([0] * 30 + [3] * 30 + [1] * 5 + [3] * 10)
    typed = np.array(["tumour"] * 27 + ["other"] * 3 + ["tumour"] * 15 + ["lymphocyte"] * 15 + ["tumour"] * 5
                     + ["lymphocyte"] * 10)
    check = stain_independence(truth, typed, classes)
    assert check["kept_by_class"] == {"0": 0.9, "3+": 0.5}
    assert check["cells_by_class"] == {"0": 30, "1+": 5, "3+": 30}
    assert check["gap"] == pytest.approx(0.4) and check["stain_dependent"]
    even = stain_independence(truth, np.where(truth == "tumour", "tumour", "lymphocyte"), classes)
    assert even["gap"] == 0.0 and not even["stain_dependent"]
    assert stain_independence(truth[:30], typed[:30], classes[:30])["gap"] is None  # one class: nothing to compare


def test_a_model_that_follows_the_stain_is_named_by_its_own_check():
    assert stain_check_warning(None) is None
    assert stain_check_warning(_model(info={"stain": {"gap": 0.04, "stain_dependent": False}})) is None
    taught = stain_check_warning(_model(info={"stain": {"gap": 0.25, "stain_dependent": True}}))
    assert "differs by up to 25%" in taught and "its labelled cells" in taught
    per_set = {"a": {"gap": 0.05, "stain_dependent": False}, "b": {"gap": 0.17, "stain_dependent": True}}
    packaged = stain_check_warning(_model(info={"stain_check": per_set}))
    assert "up to 17%" in packaged and "(b)" in packaged


def test_fit_separates_two_clusters_and_refuses_too_few():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (200, N_FEATURES)), rng.normal(0, 1, (200, N_FEATURES))])
    x[200:, 0] += 4.0  # the second group's nuclei are larger
    y = np.array(["lymphocyte"] * 200 + ["tumour"] * 200)
    model = fit_cell_types(x, y, model_id="fit", neighbourhood_um=30.0)
    kind, _ = predict_cell_types(model, x)
    assert np.mean(np.asarray(CELL_TYPES)[kind] == y) > 0.95
    assert model.types == ("tumour", "lymphocyte")
    assert model.info["cells_per_type"] == {"tumour": 200, "lymphocyte": 200}
    with pytest.raises(ValueError, match="too few: lymphocyte"):
        fit_cell_types(x[190:], y[190:], model_id="fit", neighbourhood_um=30.0)
    with pytest.raises(ValueError, match="unknown cell types"):
        fit_cell_types(x[:3], ["tumour", "t cell", "tumour"], model_id="fit", neighbourhood_um=30.0)


def test_points_match_one_to_one_closest_first():
    points = np.array([[0.0, 0.0], [3.0, 0.0], [50.0, 50.0]])
    cells = np.array([[1.0, 0.0], [4.5, 0.0], [20.0, 0.0]])
    p, c = match_points(points, cells, 5.0)
    assert sorted(zip(p.tolist(), c.tolist())) == [(0, 0), (1, 1)]


def _scoring_model(tmp_path, typer: CellTypeModel, **section) -> Path:
    (tmp_path / "types.json").write_text(cell_type_model_json(typer))
    data = json.loads(DEFAULT_MODEL_PATH.read_text())
    data["cell_types"] = {"model": "types.json",
                          "sha256": hashlib.sha256((tmp_path / "types.json").read_bytes()).hexdigest(), **section}
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    return path


def test_the_scoring_model_names_its_cell_type_model_by_path_and_sha256(tmp_path):
    model = load_model(_scoring_model(tmp_path, _model()))
    assert model.cell_type_model == _model() and model.cell_types.scored == ("tumour",)
    (tmp_path / "types.json").write_text(cell_type_model_json(_model(area_weight=5.0)))
    with pytest.raises(ModelError, match="sha256 differs"):
        load_model(tmp_path / "model.json")
    with pytest.raises(ModelError, match="never predicts"):
        load_model(_scoring_model(tmp_path, _model(), scored=["macrophage"]))
    with pytest.raises(ModelError, match="margin_um"):
        load_model(_scoring_model(tmp_path, _model(neighbourhood_um=60.0)))


def test_left_out_cells_are_counted_apart_in_every_output(tmp_path):
    from click.testing import CliRunner

    from ihc_score.cli import main

    slide = Path(__file__).resolve().parents[1] / "sample_slides" / "synthetic-positive.svs"
    # every nucleus under 50 um^2 a lymphocyte, the rest tumour: the synthetic glia and small nuclei are left out
    model = _scoring_model(tmp_path, _model(area_weight=40.0, types=("tumour", "lymphocyte")))
    out = tmp_path / "out"
    args = ["score", str(slide), "--out", str(out), "--model", str(model), "--regions", "tissue", "--workers", "1",
            "--cells", "--detections", "geojson"]
    assert CliRunner().invoke(main, args).exit_code == 0
    (row,) = list(csv.DictReader((out / "metastases.csv").open()))
    with gzip.open(next((out / "cells").glob("*.csv.gz")), "rt") as f:
        cells = list(csv.DictReader(f))
    small = [c for c in cells if float(c["nucleus_area_um2"]) < 50 * math.exp(-0.25)]
    big = [c for c in cells if float(c["nucleus_area_um2"]) > 50 * math.exp(0.25)]
    assert small and all(c["type"] == "lymphocyte" for c in small) and all(c["type"] == "tumour" for c in big)
    # each type's probability by hand: the logits differ by 40 log(area / 50 um^2), a logistic of that
    for c in cells:
        margin = 40.0 * abs(math.log(float(c["nucleus_area_um2"]) / 50.0))
        assert float(c["type_p"]) == pytest.approx(1.0 / (1.0 + math.exp(-margin)), abs=0.006)
    from ihc_score.outputs import read_cell_results

    kept = read_cell_results(next((out / "cells").glob("*.parquet")))
    np.testing.assert_allclose(kept.cell_type_p, [float(c["type_p"]) for c in cells], atol=0.006)
    n_lymph = sum(c["type"] == "lymphocyte" for c in cells)
    assert row["scored_types"] == "tumour" and int(row["n_lymphocyte"]) == n_lymph > 0
    assert int(row["n_cells"]) + int(row["n_pigmented"]) + n_lymph == len(cells)
    assert row["n_other"] == "0" and row["left_out_h_score"] != ""
    features = json.loads(next((out / "detections").glob("*.geojson")).read_text())["features"]
    shown = [f["properties"]["classification"]["name"] for f in features if f["properties"]["objectType"] == "cell"]
    assert shown.count("Lymphocyte") == n_lymph
    assert {"Tumor: Negative", "Tumor: 3+"} <= set(shown)  # QuPath's derived class: type, then class
    assert any((out / "qc").glob("*.png"))
    assert f"not tumour: {n_lymph} lymphocyte, their H-score" in (out / "report.html").read_text()


@pytest.fixture(scope="module")
def celltype_benchmark():
    if not (DATA / "celltypes" / "brca-m2c").is_dir():
        pytest.skip("../shared/data/celltypes not present")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "cell_types.py"
    spec = importlib.util.spec_from_file_location("cell_types_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cell_types_benchmark"] = module
    spec.loader.exec_module(module)
    return module


def test_lymphocytes_and_tumour_cells_of_held_out_breast_patches(celltype_benchmark):
    """brca-m2c's own validation split, typed by a model fitted without it: precision and recall >= 0.85."""
    fields = [f for f in celltype_benchmark.load_fields() if f.set != "shidc-ki67"]
    held = [f for f in fields if f.set == "brca-m2c" and f.group == "validation"]
    pred = np.concatenate(celltype_benchmark.held_out_predictions(fields, held))
    truth = np.concatenate([f.types for f in held])
    precision, recall, n = celltype_benchmark._pr(truth, pred, "lymphocyte", ("lymphocyte", "tumour"))
    assert n > 1000 and precision >= 0.85 and recall >= 0.85


def _qupath_points(points: list[dict], path: Path) -> None:
    """SHIDC's points as QuPath exports point annotations: one MultiPoint feature per class."""
    names = tuple({1: "Tumor", 2: "Tumor", 3: "Lymphocyte"}[q["label_id"]] for q in points)
    write_cell_labels(path, CellLabels(np.array([q["x"] for q in points], float),
                                       np.array([q["y"] for q in points], float), names))


def test_labelled_cells_are_written_as_qupath_point_sets_and_read_back(tmp_path):
    labels = CellLabels(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]), ("Tumor", "Lymphocyte", "Tumor"))
    write_cell_labels(tmp_path / "l.geojson", labels)
    data = json.loads((tmp_path / "l.geojson").read_text())
    assert [f["geometry"]["type"] for f in data["features"]] == ["MultiPoint", "MultiPoint"]
    back = read_cell_labels(tmp_path / "l.geojson")  # grouped by class, in order within each
    assert back.names == ("Tumor", "Tumor", "Lymphocyte")
    np.testing.assert_array_equal(back.l0_x, [1.0, 3.0, 2.0])
    np.testing.assert_array_equal(back.l0_y, [4.0, 6.0, 5.0])
    # a QuPath cell object: its nucleus's centroid, not its outline's
    cell = {"type": "Feature", "properties": {"objectType": "cell", "classification": {"names": ["Tumor", "2+"]}},
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [40, 0], [40, 40], [0, 40], [0, 0]]]},
            "nucleusGeometry": {"type": "Polygon", "coordinates": [[[2, 2], [6, 2], [6, 6], [2, 6], [2, 2]]]}}
    (tmp_path / "c.geojson").write_text(json.dumps([cell]))
    one = read_cell_labels(tmp_path / "c.geojson")
    assert one.names == ("Tumor: 2+",) and (one.l0_x[0], one.l0_y[0]) == (4.0, 4.0)


def test_train_cells_from_qupath_points_on_real_fields(tmp_path):
    """Three SHIDC Ki67 fields labelled as QuPath exports them: a model is written that the scorer accepts."""
    from click.testing import CliRunner

    from ihc_score.cli import main

    folder = DATA / "ihc" / "shidc-ki67"
    names = ["shidc-p1_0299_10", "shidc-p1_0299_5", "shidc-p1_0313_1"]  # lymphocytes on each
    if not all((folder / f"{n}.jpg").is_file() for n in names):
        pytest.skip("../shared/data/ihc/shidc-ki67 not present")
    labels = tmp_path / "labels"
    labels.mkdir()
    for n in names:
        _qupath_points(json.loads((folder / f"{n}.points.json").read_text()), labels / f"{n}.geojson")
    out = tmp_path / "types.json"
    args = ["train-cells", *[str(folder / f"{n}.jpg") for n in names], "--labels", str(labels), "--out", str(out),
            "--mpp", "0.2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    typer = load_cell_type_model(out)
    assert typer.types == ("tumour", "lymphocyte")
    assert set(typer.info["slides"]) == {f"{n}.jpg" for n in names}
    assert all(s["matched"] >= 0.6 * s["points"] for s in typer.info["slides"].values())
    assert "lymphocyte" in typer.info["held_out_by_slide"]
    assert "sha256" in result.output and "held out by slide" in result.output
    stain = typer.info["stain"]  # Ki67-positive (1+ and above) and negative tumour cells, held out by slide
    assert not stain.get("in_sample") and set(stain["kept_by_class"]) <= {"0", "1+", "2+", "3+"}
    assert sum(stain["cells_by_class"].values()) > 100 and "stain check (held out by slide)" in result.output
    again = CliRunner().invoke(main, args)  # the model file is never overwritten
    assert again.exit_code == 1 and "exists" in again.output
    shape_out = tmp_path / "shape.json"
    args[args.index("--out") + 1] = str(shape_out)
    shaped = CliRunner().invoke(main, [*args, "--features", "shape"])
    assert shaped.exit_code == 0, shaped.output
    assert load_cell_type_model(shape_out).features == SHAPE_FEATURES


def test_train_cells_refuses_unknown_class_names(tmp_path):
    from click.testing import CliRunner

    from ihc_score.cli import main

    slide = Path(__file__).resolve().parents[1] / "sample_slides" / "synthetic-positive.svs"
    labels = tmp_path / "synthetic-positive.geojson"
    labels.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [10, 10]},
         "properties": {"classification": {"name": "Plasma cell"}}}]}))
    result = CliRunner().invoke(main, ["train-cells", str(slide), "--labels", str(tmp_path), "--out",
                                       str(tmp_path / "t.json")])
    assert result.exit_code == 1 and "--map NAME=TYPE" in result.output and "Plasma cell" in result.output
    assert not (tmp_path / "t.json").exists()


def test_the_class_map_counts_left_out_cells_apart(tmp_path):
    from ihc_score.outputs import legend_counts
    from ihc_score.run import score_slide

    slide = Path(__file__).resolve().parents[1] / "sample_slides" / "synthetic-negative.svs"
    model = load_model(_scoring_model(tmp_path, _model(area_weight=40.0)))
    result = score_slide(slide, model, region_mode="tissue")
    counts = legend_counts(result)
    (region,) = result.regions
    assert counts[6] == dict(region.left_out)["lymphocyte"] == int(result.detail.left_out.sum()) > 0
    assert sum(counts[:4]) == region.counts.n and counts[5] == region.n_pigmented
    assert region.left_out_counts.n == counts[6]


def test_a_model_taught_on_one_infiltrated_slide_keeps_the_tumour_h_score_of_another(tmp_path):
    """Labels of every drawn cell of one slide (QuPath points), taught with train-cells; another seed scored with it.

    The packaged model has never seen a macrophage; a department's own labels are how it learns one.
    """
    from click.testing import CliRunner

    from ihc_score.cli import main
    from ihc_score.run import score_slide
    from ihc_score.synthetic import make_slide, preset

    def slide(seed: int) -> tuple[Path, dict]:
        path = tmp_path / f"infiltrated-{seed}.svs"
        spec = preset("infiltrated", seed=seed, width=4000, height=3000, infiltrate_fraction=0.3)
        return path, make_slide(path, spec, annotations=True)

    taught, truth = slide(1)
    rows = truth["cells"] + truth["stromal_cells"]
    labels = tmp_path / "labels"
    labels.mkdir()
    write_cell_labels(labels / f"{taught.stem}.geojson", CellLabels(
        np.array([r["l0_x"] for r in rows]), np.array([r["l0_y"] for r in rows]),
        tuple(r["type"].capitalize() for r in rows)))
    out = tmp_path / "ours.json"
    result = CliRunner().invoke(main, ["train-cells", str(taught), "--labels", str(labels), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_cell_type_model(out).types == ("tumour", "lymphocyte", "neutrophil", "macrophage")  # host cells lie
    # outside the annotated metastases, where no cell is detected
    other, other_truth = slide(2)
    model = load_model(DEFAULT_MODEL_PATH).with_overrides(**{
        "cell_types.model": str(out), "cell_types.sha256": hashlib.sha256(out.read_bytes()).hexdigest()})
    scored = {g.name: g for g in score_slide(other, model).regions}
    for region in other_truth["regions"]:
        g = scored[region["name"]]
        assert abs(g.counts.h_score - region["h_score"]) <= 5, (region["name"], g.counts.h_score, region["h_score"])
        left = dict(g.left_out)
        assert left["neutrophil"] > 0.5 * region["infiltrate"]["n_neutrophil"]
        assert left["macrophage"] > 0.5 * region["infiltrate"]["n_macrophage"]


def test_a_model_derived_into_another_folder_still_finds_its_cell_type_model(tmp_path):
    from ihc_score.model import derive_model

    source = _scoring_model(tmp_path, _model())  # names types.json beside it
    elsewhere = tmp_path / "calibrated"
    elsewhere.mkdir()
    record = {"kind": "scanner", "date": "2026-12-07", "od_scale": 0.9}
    derived = derive_model(source, elsewhere / "new.json", new_id="n", values={"stains.od_scale": 0.9}, record=record)
    assert derived.cell_type_model == _model()
    assert Path(json.loads((elsewhere / "new.json").read_text())["cell_types"]["model"]).is_absolute()


def test_score_with_the_packaged_cell_types_from_the_command_line(tmp_path):
    from click.testing import CliRunner

    from ihc_score.cli import main

    slide = Path(__file__).resolve().parents[1] / "sample_slides" / "synthetic-negative.svs"
    out = tmp_path / "out"
    base = ["score", str(slide), "--out", str(out), "--regions", "tissue", "--workers", "1", "--detections", "none",
            "--no-qc"]
    result = CliRunner().invoke(main, [*base, "--cell-types", "packaged"])
    assert result.exit_code == 0, result.output
    # the packaged model keeps fewer Ki67-positive than negative tumour cells of sets it never saw: said at the start
    assert "warning: cell-type model cell-types: its stain check found" in result.output
    assert "bcdata-ki67" in result.output
    (row,) = list(csv.DictReader((out / "metastases.csv").open()))
    assert row["scored_types"] == "tumour" and row["n_lymphocyte"] != ""
    assert "cell_types.model=" in row["model_overrides"] and "cell_types.sha256=" in row["model_overrides"]
    bad = CliRunner().invoke(main, [*base, "--cell-types", str(tmp_path / "none.json")])
    assert bad.exit_code == 2 and "no such file" in bad.output

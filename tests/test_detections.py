"""QuPath GeoJSON detections and the per-cell CSV, on slide results with known cells."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import box, shape

from ihc_score.cells import CellOutlines, CellTable
from ihc_score.errors import OutputError
from ihc_score.outputs import CELL_COLUMNS, CLASS_COLOURS_RGB, CLASS_NAMES, write_cells_csv, write_detections_geojson
from ihc_score.results import SlideDetail, SlideResult
from ihc_score.score import CLASS_LABELS, Call, ClassCounts, Interval, RegionResult

SAMPLES = Path(__file__).resolve().parents[1] / "sample_slides"

#: Two overlapping regions and one excluded square (level-0 px).
REGIONS = {"met A": box(0, 0, 1000, 1000), "met B": box(800, 0, 1800, 1000)}
EXCLUDED = box(1900, 1900, 2000, 2000)


def _square_rings(cx: np.ndarray, cy: np.ndarray, half: float) -> tuple[np.ndarray, np.ndarray]:
    """Packed squares (4 vertices, not closed) of side 2 * half around each centre."""
    corners = np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]], dtype=np.float64) * half
    xy = (np.stack([cx, cy], axis=1)[:, None, :] + corners).reshape(-1, 2)
    return xy, np.arange(len(cx) + 1, dtype=np.int64) * 4


def make_result(n_side: int = 30, *, outlines: bool = True) -> SlideResult:
    """A slide of ``n_side``^2 cells on a 60 px grid, classes cycling 0..3, known regions."""
    g = np.arange(n_side) * 60.0 + 10.005  # .005: rounding to 0.01 px is visible in the file
    l0_x, l0_y = (a.ravel() for a in np.meshgrid(g, g))
    n = len(l0_x)
    rng = np.random.default_rng(0)
    classes = (np.arange(n) % 4).astype(np.int8)
    dab = np.array([0.1, 0.3, 0.5, 0.7])[classes] + rng.uniform(0, 0.05, n)
    cytoplasm = dab.copy()
    cytoplasm[::97] = np.nan  # cells without cytoplasm pixels
    table = CellTable(
        a_x=l0_x / 2, a_y=l0_y / 2, nucleus_area_um2=np.full(n, 25.0), cell_area_um2=np.full(n, 100.0),
        hematoxylin_od_mean=np.full(n, 0.3), hematoxylin_od_sd=np.full(n, 0.05), nucleus_elongation=np.full(n, 1.2),
        nucleus_roughness=np.full(n, 1.0), dab_nucleus_mean=dab, dab_nucleus_max=dab + 0.1,
        dab_cytoplasm_mean=cytoplasm, dab_cytoplasm_max=cytoplasm + 0.1, dab_cell_mean=dab, dab_cell_max=dab + 0.1,
    )  # fmt: skip
    membership = np.stack([shapely.contains_xy(g, l0_x, l0_y) for g in REGIONS.values()])
    cell_outlines = None
    if outlines:
        c_xy, c_off = _square_rings(l0_x, l0_y, 10.0)
        n_xy, n_off = _square_rings(l0_x, l0_y, 5.0)
        cell_outlines = CellOutlines(n_xy, n_off, c_xy, c_off)
    regions = tuple(
        RegionResult(
            name, ClassCounts.from_classes(classes[member]), Call("positive"), geom.area * 0.25e-6, "annotation",
            Interval(100.0, 160.0), Interval(), ("overlaps",), shapely.to_wkt(geom),
        )
        for (name, geom), member in zip(REGIONS.items(), membership)
    )  # fmt: skip
    detail = SlideDetail(
        cells=table, l0_x=l0_x, l0_y=l0_y, classes=classes, membership=membership, outlines=cell_outlines,
        tissue=np.ones((4, 4), bool), tissue_downsample=500.0, exclusions=(shapely.to_wkt(EXCLUDED),),
    )  # fmt: skip
    return SlideResult(path="/x/s.svs", slide="s.svs", status="ok", mpp_um=0.25, regions=regions, detail=detail)


@pytest.fixture(scope="module")
def result() -> SlideResult:
    return make_result()


@pytest.fixture(scope="module")
def written(result, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("det") / "s.geojson"
    write_detections_geojson(path, result)
    return path


def _counts_by_region(features: list[dict], names: list[str]) -> dict[str, ClassCounts]:
    labels = {name: i for i, name in enumerate(CLASS_NAMES)}
    out = {}
    for name in names:
        classes = [labels[f["properties"]["classification"]["name"]] for f in features if name in f["properties"]["regions"]]
        out[name] = ClassCounts.from_classes(np.array(classes, dtype=np.int64))
    return out


def test_geojson_is_a_qupath_feature_collection(written, result):
    doc = json.loads(written.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection"
    features = doc["features"]
    kinds = [f["properties"]["objectType"] for f in features]
    assert kinds.count("annotation") == 3 and kinds.count("cell") == len(result.detail.classes)
    for f in features:
        assert f["type"] == "Feature" and f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        geom = shape(f["geometry"])
        assert geom.is_valid and not geom.is_empty
    regions = [f for f in features if f["properties"].get("classification", {}).get("name") == "Tumor"]
    assert [f["properties"]["name"] for f in regions] == ["met A", "met B"]
    a = regions[0]["properties"]
    assert a["measurements"]["ihc-score: Num cells"] == result.regions[0].counts.n
    assert a["measurements"]["ihc-score: H-score"] == round(result.regions[0].counts.h_score, 2)
    assert a["measurements"]["ihc-score: H-score low"] == 100.0
    assert "ihc-score: Positive % low" not in a["measurements"]  # undefined interval: no NaN, no null
    assert all(isinstance(v, (int, float)) for v in a["measurements"].values())
    assert a["metadata"]["call"] == "positive"
    assert shape(regions[0]["geometry"]).equals(REGIONS["met A"])
    (excluded,) = [f for f in features if f["properties"].get("classification", {}).get("name") == "Ignore*"]
    assert shape(excluded["geometry"]).equals(EXCLUDED)


def test_cells_carry_outlines_classes_and_measurements(written, result):
    features = [f for f in json.loads(written.read_text(encoding="utf-8"))["features"] if f["properties"]["objectType"] == "cell"]
    d = result.detail
    order = np.lexsort((np.arange(len(d.classes)), d.l0_x, d.l0_y))
    first = features[0]
    k = order[0]
    cell, nucleus = shape(first["geometry"]), shape(first["nucleusGeometry"])
    # 0.01 px rounding: 10.005 - 10 = 0.005 is written as 0.01 or 0.00, never more
    assert cell.bounds == pytest.approx((d.l0_x[k] - 10, d.l0_y[k] - 10, d.l0_x[k] + 10, d.l0_y[k] + 10), abs=0.0051)
    assert cell.area == pytest.approx(400.0, abs=0.5) and cell.contains(nucleus)
    coords = first["geometry"]["coordinates"][0]
    assert coords[0] == coords[-1] and all(round(v, 2) == v for xy in coords for v in xy)
    for f, k in zip(features, order):
        p = f["properties"]
        assert p["classification"] == {"name": CLASS_NAMES[d.classes[k]], "color": list(CLASS_COLOURS_RGB[d.classes[k]])}
        m = p["measurements"]
        assert m["Cell: DAB OD mean"] == pytest.approx(d.cells.dab_cell_mean[k], abs=5e-5)
        assert m["Nucleus: Area µm^2"] == 25.0
        if np.isnan(d.cells.dab_cytoplasm_mean[k]):
            assert "Cytoplasm: DAB OD mean" not in m  # QuPath reads a missing measurement as NaN
        else:
            assert m["Cytoplasm: DAB OD mean"] == pytest.approx(d.cells.dab_cytoplasm_mean[k], abs=5e-5)
        assert p["regions"] == [name for name, member in zip(REGIONS, d.membership[:, k]) if member]


def test_cells_per_region_and_class_match_the_region_counts(written, result):
    features = [f for f in json.loads(written.read_text(encoding="utf-8"))["features"] if f["properties"]["objectType"] == "cell"]
    counts = _counts_by_region(features, list(REGIONS))
    for region in result.regions:
        assert counts[region.name] == region.counts
        assert region.counts.n > 0
    assert counts["met A"] != counts["met B"]


def test_bytes_are_deterministic_and_gzip_holds_the_same_text(written, result, tmp_path):
    again = tmp_path / "again.geojson"
    write_detections_geojson(again, result)
    assert again.read_bytes() == written.read_bytes()
    gz1, gz2 = tmp_path / "a.geojson.gz", tmp_path / "sub" / "b.geojson.gz"
    write_detections_geojson(gz1, result, gzip=True)
    write_detections_geojson(gz2, result, gzip=True)
    assert gz1.read_bytes() == gz2.read_bytes()  # mtime 0, no file name in the header
    assert gzip.decompress(gz1.read_bytes()) == written.read_bytes()
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_without_outlines_cells_are_points(tmp_path):
    res = make_result(4, outlines=False)
    path = tmp_path / "p.geojson"
    write_detections_geojson(path, res)
    cells = [f for f in json.loads(path.read_text(encoding="utf-8"))["features"] if f["properties"]["objectType"] == "cell"]
    assert len(cells) == 16 and all(f["geometry"]["type"] == "Point" and "nucleusGeometry" not in f for f in cells)


def test_unwritable_target_raises_and_keeps_nothing(result, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        write_detections_geojson(blocker / "s.geojson", result)
    with pytest.raises(ValueError, match="no per-cell detail"):
        write_cells_csv(tmp_path / "c.csv.gz", SlideResult(path="/x/t.svs", slide="t.svs", status="ok"))


def test_cells_csv(result, tmp_path):
    path = tmp_path / "cells" / "s.csv.gz"
    write_cells_csv(path, result)
    data = path.read_bytes()
    write_cells_csv(tmp_path / "again.csv.gz", result)
    assert (tmp_path / "again.csv.gz").read_bytes() == data
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(data).decode("utf-8"))))
    d = result.detail
    assert list(rows[0]) == [name for name, _ in CELL_COLUMNS] and len(rows) == len(d.classes)
    assert [int(r["cell"]) for r in rows] == list(range(1, len(rows) + 1))
    keys = [(float(r["l0_y"]), float(r["l0_x"])) for r in rows]
    assert keys == sorted(keys)
    order = np.lexsort((np.arange(len(d.classes)), d.l0_x, d.l0_y))
    for r, k in zip(rows, order):
        assert r["class"] == CLASS_LABELS[d.classes[k]]
        assert r["dab_cell_mean"] == f"{d.cells.dab_cell_mean[k]:.4f}"
        assert r["l0_x"] == f"{d.l0_x[k]:.2f}"
        assert r["dab_cytoplasm_mean"] == ("" if np.isnan(d.cells.dab_cytoplasm_mean[k]) else f"{d.cells.dab_cytoplasm_mean[k]:.4f}")
    for region in result.regions:
        classes = [CLASS_LABELS.index(r["class"]) for r in rows if region.name in r["regions"].split(";")]
        assert ClassCounts.from_classes(np.array(classes)) == region.counts
    assert {r["regions"] for r in rows} == {"", "met A", "met B", "met A;met B"}


def test_real_slide_end_to_end(tmp_path):
    from ihc_score.model import default_model
    from ihc_score.run import score_slide

    res = score_slide(SAMPLES / "synthetic-positive.svs", default_model(), outlines=True)
    assert res.detail is not None and res.detail.outlines is not None and res.regions
    path = tmp_path / "real.geojson.gz"
    write_detections_geojson(path, res, gzip=True)
    features = json.loads(gzip.decompress(path.read_bytes()))["features"]
    cells = [f for f in features if f["properties"]["objectType"] == "cell"]
    assert len(cells) == len(res.detail.classes)
    counts = _counts_by_region(cells, [r.name for r in res.regions])
    for region in res.regions:
        assert counts[region.name] == region.counts
    polys = [shape(f["geometry"]) for f in cells[::25]]
    nuclei = [shape(f["nucleusGeometry"]) for f in cells[::25]]
    assert all(p.is_valid for p in polys) and all(q.is_valid for q in nuclei)
    assert all(p.buffer(0.05).contains(q) for p, q in zip(polys, nuclei))


def test_coordinates_are_written_to_the_nearest_hundredth():
    from ihc_score.outputs.detections import _ring_strings

    rng = np.random.default_rng(5)
    xy = np.c_[rng.uniform(-50, 200000, 999), rng.choice([0.0, 0.004, 0.006, 0.5, 99999.995, -0.3], 999)]
    offsets = np.arange(0, 1000, 3)
    rings = _ring_strings(xy, offsets, np.arange(len(offsets) - 1))
    for k, text in enumerate(rings):
        parsed = np.array(json.loads(text))
        ring = xy[offsets[k] : offsets[k + 1]]
        assert np.array_equal(parsed[0], parsed[-1]) and len(parsed) == len(ring) + 1
        assert np.abs(parsed[:-1] - ring).max() <= 0.005 + 1e-6
        assert all(len(v.split(".")[1]) == 2 for v in text.replace("[", "").replace("]", "").split(","))


def test_files_get_the_usual_permissions(result, tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    path = tmp_path / "c.csv.gz"
    write_cells_csv(path, result)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask

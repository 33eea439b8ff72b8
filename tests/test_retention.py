"""Outputs sized for keeping: per-cell results in Parquet, detections written later from them, compact QC pictures."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from shapely.geometry import Polygon

from ihc_score.cells import RAYS, CellOutlines, codes_to_radii, radial_outlines, radial_radii, radii_to_codes
from ihc_score.cli import main
from ihc_score.outputs import CLASS_COLOURS_RGB, read_cell_results

SAMPLES = Path(__file__).resolve().parents[1] / "sample_slides"


# The ray outlines, by hand

def _rings(*polys: np.ndarray) -> CellOutlines:
    xy = np.concatenate(polys)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in polys])])
    return CellOutlines(xy, offsets, xy, offsets)


def test_rays_of_a_square_and_a_circle_are_their_distances_to_the_outline():
    square = np.array([[-4.0, -4.0], [4.0, -4.0], [4.0, 4.0], [-4.0, 4.0]]) + [100.0, 50.0]
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    circle = np.c_[7.0 * np.cos(angles), 7.0 * np.sin(angles)] + [10.0, 10.0]
    nucleus_r, _ = radial_radii(_rings(square, circle), np.array([100.0, 10.0]), np.array([50.0, 10.0]))
    ray = np.arange(RAYS) * 2 * np.pi / RAYS
    # a ray at angle a leaves the 8-px square at 4 / max(|cos a|, |sin a|)
    assert np.allclose(nucleus_r[0], 4.0 / np.maximum(np.abs(np.cos(ray)), np.abs(np.sin(ray))))
    assert np.allclose(nucleus_r[1], 7.0, atol=7.0 * (1 - np.cos(np.pi / 200)) + 1e-9)


def test_codes_keep_radii_to_half_a_step_and_outlines_go_back_through_the_ray_points():
    radii = np.array([[3.0, 10.1, 0.0, 200.0] * 4])  # level-0 px at 0.25 um/px
    back = codes_to_radii(radii_to_codes(radii, mpp_um=0.25), mpp_um=0.25)
    assert np.allclose(back[0, :2], [3.0, 10.0]) and back[0, 3] == 200.0  # steps of 0.25 um = 1 px
    outl = radial_outlines(np.array([5.0]), np.array([6.0]), back, np.zeros_like(back))
    assert outl.nucleus(0)[1] == pytest.approx([5.0 + 10.0 * np.cos(np.pi / 8), 6.0 + 10.0 * np.sin(np.pi / 8)])
    assert len(outl.cell(0)) == 0  # nothing stored: no ring


# Scoring with the default outputs

@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """The positive sample slide scored with the default outputs plus the traced detections and the cell CSV."""
    out = tmp_path_factory.mktemp("retention")
    res = CliRunner().invoke(main, ["score", str(SAMPLES / "synthetic-positive.svs"), "--out", str(out), "--workers",
                                    "1", "--detections", "geojson", "--cells"])
    assert res.exit_code == 0, res.output
    return out


def test_cell_results_hold_every_cell_as_the_cell_table_does(scored):
    cells = read_cell_results(scored / "cells" / "synthetic-positive.parquet")
    with gzip.open(scored / "cells" / "synthetic-positive.csv.gz", "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(cells.l0_x) > 1000
    for name in ("l0_x", "l0_y", "nucleus_area_um2", "hematoxylin_od_sd", "nucleus_roughness", "dab_cytoplasm_mean",
                 "dab_cell_max"):
        kept = cells.l0_x if name == "l0_x" else cells.l0_y if name == "l0_y" else getattr(cells.table, name)
        want = np.array([float(r[name]) if r[name] else np.nan for r in rows])
        assert np.allclose(kept, want, atol=1e-6, equal_nan=True), name  # the CSV's decimals, exactly
    assert [("pigment" if c == 4 else ("0", "1+", "2+", "3+")[c]) for c in cells.classes] == [r["class"] for r in rows]
    assert [";".join(g) for g in cells.regions] == [r["regions"] for r in rows]
    assert cells.meta["slide"] == "synthetic-positive.svs" and cells.meta["regions"] == ["auto-1"]


def test_cell_results_take_less_than_0_05_mb_per_1000_cells(scored):
    size = (scored / "cells" / "synthetic-positive.parquet").stat().st_size
    n = len(read_cell_results(scored / "cells" / "synthetic-positive.parquet").l0_x)
    assert size / n * 1000 / 1e6 <= 0.05  # measured 0.044 on this slide of 1688 cells kept
    assert size < (scored / "cells" / "synthetic-positive.csv.gz").stat().st_size


def test_ray_outlines_overlap_the_traced_ones(scored):
    traced = json.loads((scored / "detections" / "synthetic-positive.geojson").read_text())["features"]
    res = CliRunner().invoke(main, ["detections", str(scored), "--gz"])
    assert res.exit_code == 0, res.output
    n = len(read_cell_results(scored / "cells" / "synthetic-positive.parquet").l0_x)
    assert f"synthetic-positive.svs: {n} cells -> " in res.output
    later = json.loads(gzip.decompress((scored / "detections" / "synthetic-positive.geojson.gz").read_bytes()))
    # cells in the order of their centroids: kept to 0.01 px, so cells within 0.01 px of a row may swap
    def key(f: dict) -> str:
        return json.dumps([f["properties"]["classification"], f["properties"]["measurements"]], sort_keys=True)

    a = sorted((f for f in traced if f["properties"]["objectType"] == "cell"), key=key)
    b = sorted((f for f in later["features"] if f["properties"]["objectType"] == "cell"), key=key)
    assert len(a) == len(b)
    iou = []
    for fa, fb in zip(a, b):
        pa, pb = fa["properties"], fb["properties"]
        assert pa["classification"] == pb["classification"] and pa["measurements"] == pb["measurements"]
        ring_a, ring_b = Polygon(fa["geometry"]["coordinates"][0]), Polygon(fb["geometry"]["coordinates"][0])
        iou.append(ring_a.intersection(ring_b).area / ring_a.union(ring_b).area)
    assert np.mean(iou) > 0.88 and np.percentile(iou, 5) > 0.8  # measured 0.91 and 0.86
    regions = [f for f in later["features"] if f["properties"]["objectType"] == "annotation"]
    assert regions == [f for f in traced if f["properties"]["objectType"] == "annotation"]


def test_detections_command_refuses_what_it_cannot_write(scored, tmp_path):
    res = CliRunner().invoke(main, ["detections", str(scored), "--slide", "nope.svs"])
    assert res.exit_code == 1 and "no scored slide named nope.svs" in res.output
    out = tmp_path / "bare"
    res = CliRunner().invoke(main, ["score", str(SAMPLES / "synthetic-negative.svs"), "--out", str(out), "--workers",
                                    "1", "--no-cell-results", "--no-qc"])
    assert res.exit_code == 0 and not (out / "cells").exists() and not (out / "detections").exists()
    res = CliRunner().invoke(main, ["detections", str(out), "--slide", "synthetic-negative"])
    assert res.exit_code == 1 and "--no-cell-results" in res.output and len(res.output.strip().splitlines()) == 1


def test_qc_pictures_are_a_palette_png_and_a_webp_zoom_under_half_a_megabyte(scored):
    overview = Image.open(scored / "qc" / "synthetic-positive.png")
    zoom = Image.open(scored / "qc" / "synthetic-positive-auto-1-zoom.webp")
    assert overview.format == "PNG" and overview.mode == "P" and zoom.format == "WEBP"
    palette = np.array([rgb for _, rgb in overview.convert("RGB").getcolors(maxcolors=256)])
    for colour in CLASS_COLOURS_RGB:  # the class map's colours survive the palette
        assert np.abs(palette - colour).sum(axis=1).min() <= 3, colour
    total = sum(p.stat().st_size for p in (scored / "qc").iterdir())
    assert total <= 0.5e6  # measured 0.37 MB (one metastasis)
    # the zoom's outlines keep their colours: the 3+ outline colour is still there after compression
    rgb = np.asarray(zoom.convert("RGB")).reshape(-1, 3).astype(int)
    assert (np.abs(rgb - [213, 94, 0]).sum(axis=1) < 40).sum() > 1000

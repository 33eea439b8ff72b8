"""Kept cells scored again: ROI reproducibility, model comparison, change control and the report sentence."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from shapely.geometry import box, shape

import ihc_score.cli.reanalysis  # noqa: F401 - registers roi-stability and compare-models
from ihc_score.cli import main
from ihc_score.model import DEFAULT_MODEL_PATH, default_model, derive_model
from ihc_score.outputs import report_text
from ihc_score.regions import Region, region_membership
from ihc_score.results import CaseResult
from ihc_score.score import Call, ClassCounts, ClassifyParams, Interval, IntervalParams, PositivityRule, RegionResult
from ihc_score.synthetic import make_slide, preset
from ihc_score.validation import RoiMoves, ScoringRule, StoredCells, region_stability
from ihc_score.version import __version__

FAST = ["--no-qc", "--detections", "none", "--workers", "1"]


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ROI moves on hand-made cells: left half 3+, right half 0, a square across the border

def _half_and_half() -> StoredCells:
    x, y = np.meshgrid(np.arange(10.0, 4000.0, 20.0), np.arange(10.0, 4000.0, 20.0))
    x, y = x.ravel(), y.ravel()
    dab = np.where(x < 2000, 0.8, 0.0)
    return StoredCells(x, y, {"dab_cell_mean": dab}, np.zeros(x.size, bool), np.full(x.size, "", object))


RULE = ScoringRule(ClassifyParams("cell", "mean", (0.2, 0.4, 0.6)), PositivityRule("h_score", 140.0, 5.0, 100),
                   IntervalParams(indeterminate_if_crossing=False))
SQUARE = Region("square", box(1000, 1000, 3000, 3000), "annotation")
STORED = RegionResult("square", ClassCounts(), Call("positive"), 1.0, "annotation")


def test_moved_outlines_give_the_scores_computed_by_hand():
    # 0.5 um/px: 100 um is 200 px. Drawn: 50 of 100 columns are 3+, H = 150. Shifted 100 um right: 40 of 100
    # columns (x 1210..1990) are 3+, H = 120; left: 60, H = 180. Grown or shrunk all round: still half, H = 150.
    s = region_stability(_half_and_half(), STORED, SQUARE, RULE, mpp_um=0.5, moves=RoiMoves((100.0,), (-100.0, 100.0)))
    assert s.h_score == pytest.approx(150.0)
    assert s.n_moves == 8 + 2
    assert s.h_min == pytest.approx(120.0) and s.h_max == pytest.approx(180.0)
    # positive at 150 (cut-off 140, band 5); the shifts with a rightward part fall to 120 or (45 deg) 120 + ...
    assert "shift 100 um 0 deg=negative" in s.changed_calls
    assert not any(c.startswith(("shift 100 um 180", "grow", "shrink")) for c in s.changed_calls)
    assert s.note == ""


def test_moves_beyond_the_kept_cells_are_left_out_and_said():
    moves = RoiMoves((25.0, 100.0), (-50.0, 50.0))
    s = region_stability(_half_and_half(), STORED, SQUARE, RULE, mpp_um=0.5, moves=moves, kept_reach_um=25.0)
    assert s.n_moves == 8 + 1  # shifts of 25 um and the shrink only
    assert "50, 100 um outwards left out" in s.note and "--roi-margin 100" in s.note


# The report sentence, by hand

def test_report_text_names_method_versions_value_interval_call_and_research_use():
    model = default_model()
    lead = RegionResult("met-a", ClassCounts(100, 200, 300, 400), Call("positive"), 1.0, "annotation",
                        h_interval=Interval(182.4, 217.6))
    other = RegionResult("met-b", ClassCounts(900, 100, 0, 0), Call("negative"), 1.0, "annotation")
    case = CaseResult("P1", 1, 0, 2, lead.counts + other.counts, 200.0, "positive", "", (),
                      metastases=(("s1.svs", other), ("s1.svs", lead)))
    # H-score of met-a = (200 + 600 + 1200) / 1000 * 100 = 200
    assert report_text(case, model) == (
        f"S100A9 immunohistochemistry quantified by digital image analysis (ihc-score {__version__}, scoring model "
        f"s100a9-brain-met {model.version}): H-score 200 (95 % CI 182-218; highest of 2 metastases, 1000 cells "
        "scored); S100A9 positive (cut-off H-score >= 100). For research use until validated in this laboratory."
    )
    none = CaseResult("P2", 1, 1, 0, ClassCounts(), math.nan, "indeterminate", "slide(s) not scored: s2.svs", ())
    assert "no H-score (slide(s) not scored: s2.svs); call indeterminate" in report_text(none, model)


# End to end on a synthetic slide with two annotated metastases

@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """The multi-metastasis slide scored with its annotations, cells kept, with and without a 100 um margin."""
    d = tmp_path_factory.mktemp("reanalysis")
    (d / "slides").mkdir()
    truth = make_slide(d / "slides" / "multi.svs", preset("multi-met", width=6000, height=4500, seed=2),
                       annotations=True)
    outs = {}
    for name, extra in (("margin", ["--roi-margin", "100"]), ("plain", [])):
        res = CliRunner().invoke(main, ["score", str(d / "slides"), "--out", str(d / name), "--cells", *FAST, *extra])
        assert res.exit_code == 0, res.output
        outs[name] = d / name
    return truth, outs


def test_margin_keeps_cells_around_the_outline_without_changing_the_scores(scored):
    truth, outs = scored
    with_margin, plain = rows(outs["margin"] / "metastases.csv"), rows(outs["plain"] / "metastases.csv")
    for a, b in zip(with_margin, plain):
        assert a["region"] == b["region"] and abs(int(a["n_cells"]) - int(b["n_cells"])) <= 0.005 * int(b["n_cells"])
        assert abs(float(a["h_score"]) - float(b["h_score"])) <= 1.0
    assert json.loads((outs["margin"] / "run.json").read_text())["options"]["roi_margin_um"] == 100.0
    outside = [c for c in rows_gz(outs["margin"] / "cells" / "multi.csv.gz") if not c["regions"]]
    assert not [c for c in rows_gz(outs["plain"] / "cells" / "multi.csv.gz") if not c["regions"]]
    assert len(outside) > 100  # the cells of the band are kept, in no region
    outlines = shapely.union_all([shape(r["outline"]) for r in truth["regions"]])
    far = max(outlines.distance(shapely.Point(float(c["l0_x"]), float(c["l0_y"]))) for c in outside)
    assert far * truth["mpp_um"] <= 100 + 10  # and no further than the margin (the tissue mask's 8 um pixels)


def rows_gz(path: Path) -> list[dict[str, str]]:
    import gzip

    with gzip.open(path, "rt", newline="") as fh:
        return list(csv.DictReader(fh))


def test_roi_stability_follows_the_drawn_truth_of_the_moved_outlines(scored):
    truth, outs = scored
    res = CliRunner().invoke(main, ["roi-stability", str(outs["margin"]), "--shifts", "100", "--buffers", "-100,100"])
    assert res.exit_code == 0, res.output
    got = {r["region"]: r for r in rows(outs["margin"] / "roi-stability.csv")}
    drawn = truth["cells"] + truth["stromal_cells"]
    x, y = np.array([c["l0_x"] for c in drawn]), np.array([c["l0_y"] for c in drawn])
    cls = np.array([c["class"] for c in drawn])
    mpp = truth["mpp_um"]
    for region in truth["regions"]:
        outline = shape(region["outline"])
        true_h = []
        for geom in [outline, *(shapely.affinity.translate(outline, 100 / mpp * math.cos(math.radians(a)),
                                                           -100 / mpp * math.sin(math.radians(a)))
                                for a in range(0, 360, 45)),
                     outline.buffer(-100 / mpp), outline.buffer(100 / mpp)]:
            inside = region_membership([Region("r", geom, "annotation")], x, y)[0]
            true_h.append(100.0 * cls[inside].mean())
        row = got[region["name"]]
        assert row["n_moves"] == "10" and row["note"] == ""
        # the tool's spread over the moved outlines is the drawn cells' spread, within a few points
        assert float(row["h_score_roi_sd"]) == pytest.approx(np.std(true_h, ddof=1), abs=4.0), region["name"]
        assert float(row["h_score_roi_min"]) == pytest.approx(min(true_h), abs=12.0)
        assert float(row["h_score_roi_max"]) == pytest.approx(max(true_h), abs=12.0)


def test_roi_stability_without_margin_leaves_outward_moves_out(scored):
    _, outs = scored
    res = CliRunner().invoke(main, ["roi-stability", str(outs["plain"]), "--out", str(outs["plain"] / "r.csv")])
    assert res.exit_code == 0, res.output
    for row in rows(outs["plain"] / "r.csv"):
        assert row["n_moves"] == "3"  # the three shrinks
        assert "--roi-margin 100" in row["note"]


def test_compare_models_lists_the_calls_a_new_cutoff_changes(scored, tmp_path):
    _, outs = scored
    same = CliRunner().invoke(main, ["compare-models", str(DEFAULT_MODEL_PATH), str(DEFAULT_MODEL_PATH),
                                     str(outs["plain"])])
    assert same.exit_code == 0 and "0 of 2 metastasis calls and 0 of 1 case calls would change" in same.output
    assert "not reproduced" not in same.output  # the stored calls replay exactly from the kept cells
    strict = derive_model(None, tmp_path / "strict.json", new_id="strict", values={"positivity.cutoff": 290.0},
                          record={"kind": "test"})
    res = CliRunner().invoke(main, ["compare-models", str(DEFAULT_MODEL_PATH), str(tmp_path / "strict.json"),
                                    str(outs["plain"]), "--out", str(tmp_path / "c.csv")])
    assert res.exit_code == 0, res.output
    assert "met-positive: positive -> negative" in res.output and "case multi: positive -> negative" in res.output
    table = {(r["level"], r["region"] or r["case"]): r for r in rows(tmp_path / "c.csv")}
    assert table[("metastasis", "met-positive")]["changed"] == "1"
    assert table[("metastasis", "met-negative")]["changed"] == "0"
    assert strict.positivity.cutoff == 290.0


def test_compare_models_names_what_it_cannot_replay_and_refuses_the_wrong_old_model(scored, tmp_path):
    _, outs = scored
    derive_model(None, tmp_path / "det.json", new_id="det", values={"detection.threshold_od": 0.1},
                 record={"kind": "test"})
    res = CliRunner().invoke(main, ["compare-models", str(DEFAULT_MODEL_PATH), str(tmp_path / "det.json"),
                                    str(outs["plain"])])
    assert res.exit_code == 0 and "differ in detection" in res.output
    res = CliRunner().invoke(main, ["compare-models", str(tmp_path / "det.json"), str(DEFAULT_MODEL_PATH),
                                    str(outs["plain"])])
    assert res.exit_code == 1 and "give the model file the results were made with" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_a_results_folder_refuses_another_model(scored, tmp_path):
    _, outs = scored
    derive_model(None, tmp_path / "other.json", new_id="other", values={"positivity.cutoff": 120.0},
                 record={"kind": "test"})
    before = (outs["plain"] / "metastases.csv").read_bytes()
    res = CliRunner().invoke(main, ["score", str(outs["plain"].parent / "slides"), "--out", str(outs["plain"]),
                                    "--model", str(tmp_path / "other.json"), "--cells", *FAST])
    assert res.exit_code == 1 and "holds results of another model" in res.output
    assert (outs["plain"] / "metastases.csv").read_bytes() == before


def test_an_out_of_control_batch_is_flagged_in_its_report(scored, tmp_path):
    import ihc_score.cli.monitor  # noqa: F401 - registers monitor

    _, outs = scored
    folder = tmp_path / "batch"
    import shutil

    shutil.copytree(outs["plain"], folder)
    h = float(next(r for r in rows(folder / "metastases.csv") if r["region"] == "met-positive")["h_score"])
    args = ["monitor", str(folder), "--control", "multi.svs", "--region", "met-positive",
            "--history", str(tmp_path / "h.sqlite")]
    res = CliRunner().invoke(main, [*args, "--target", f"{h - 40:.1f},10"])  # 4 SD above the laboratory's mean
    assert res.exit_code == 3 and "OUT OF CONTROL: 1-3s" in res.output
    page = (folder / "report.html").read_text()
    assert 'class="control out"' in page and "Do not report this batch" in page and 'href="control.html"' in page

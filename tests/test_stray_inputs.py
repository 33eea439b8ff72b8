"""No silent empties, no stray inputs: empty slides said, old outputs skipped, --out as input, missing slides."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ihc_score.cli import main
from ihc_score.model import load_model
from ihc_score.results import SlideResult
from ihc_score.run import InlineExecutor, aggregate_cases, run_batch
from ihc_score.score import Call, ClassCounts, RegionResult
from ihc_score.slide import discover_slides
from ihc_score.slide.discovery import OUTPUT_SUBFOLDERS
from ihc_score.synthetic import make_slide, preset

SAMPLES = Path(__file__).resolve().parents[1] / "sample_slides"
NO_MET_NOTE = (
    "no metastasis found automatically, so nothing on this slide was scored; --regions tissue scores all its tissue"
)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def score(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["score", *args, "--workers", "1"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """``neg.svs``: one negative metastasis (auto regions find it); ``nomet.svs``: brain tissue without any tumour."""
    d = tmp_path_factory.mktemp("source")
    shutil.copy(SAMPLES / "synthetic-negative.svs", d / "neg.svs")
    truth = make_slide(d / "nomet.svs", preset("default", width=2048, height=1536, seed=2, regions=()))
    assert truth["totals"]["n_cells"] == 0  # truly no tumour cell: "no metastasis found" is the right answer
    (d / "nomet.truth.json").unlink()
    return d


@pytest.fixture
def slides(source, tmp_path) -> Path:
    d = tmp_path / "slides"
    shutil.copytree(source, d)
    return d


# 1. A slide where automatic regions find no metastasis


def test_no_metastasis_found_is_said_counted_and_not_a_failure(slides, tmp_path):
    (slides / "empty.svs").write_bytes(b"")  # a failed slide, to see the three counts apart
    code, out = score(str(slides), "--out", str(tmp_path / "out"))
    assert code == 1  # for empty.svs only
    progress, table_row = [ln for ln in out.splitlines() if "nomet.svs" in ln]
    assert re.fullmatch(rf"\[[123]/3\] nomet\.svs: {re.escape(NO_MET_NOTE)}", progress)
    assert table_row.split() == ["nomet.svs", "-", "0", "-", "-", "-", "no", "metastasis", "found"]
    assert re.search(r"1/3 slides scored \(0 reused\), 1 with no metastasis found, 1 failed or incomplete, in .*"
                     r"\(\d+\.\d slides/h\)\. Results in ", out)
    by_slide = {r["slide"]: r for r in rows(tmp_path / "out" / "slides.csv")}
    assert (by_slide["nomet.svs"]["status"], by_slide["nomet.svs"]["note"]) == ("ok", NO_MET_NOTE)
    assert "no_metastasis_found" in by_slide["nomet.svs"]["qc_flags"]
    assert by_slide["neg.svs"]["note"] == by_slide["empty.svs"]["note"] == ""
    case = {c["case"]: c for c in rows(tmp_path / "out" / "cases.csv")}["nomet"]
    assert case["call"] == "indeterminate" and case["call_reason"].startswith("no metastasis found automatically")


def test_batch_summary_counts_empty_slides_apart_and_exits_0(slides, tmp_path):
    paths = [slides / "neg.svs", slides / "nomet.svs"]
    summary = run_batch(paths, tmp_path / "auto", load_model(), executor=InlineExecutor())
    assert (summary.n_scored, summary.n_no_metastasis, summary.n_failed, summary.exit_code) == (1, 1, 0, 0)
    # the advice holds: all tissue as one region scores the slide
    code, out = score(*map(str, paths), "--out", str(tmp_path / "tissue"), "--regions", "tissue")
    assert code == 0 and "2/2 slides scored (0 reused), 0 with no metastasis found, 0 failed" in out
    assert "no metastasis found automatically" not in out
    assert int(rows(tmp_path / "tissue" / "slides.csv")[1]["n_cells"]) > 0


# 2. An earlier output folder inside an input folder


def test_earlier_output_folder_inside_the_input_is_skipped(slides):
    code, out = score(str(slides), "--out", str(slides / "results"))
    assert code == 0 and "skipping" not in out
    assert list((slides / "results" / "qc").glob("*.png"))  # the QC pictures a second run must not take for slides
    code, out = score(str(slides), "--out", str(slides / "results-2"))
    assert code == 0, out
    assert [r["slide"] for r in rows(slides / "results-2" / "slides.csv")] == ["neg.svs", "nomet.svs"]
    skips = [ln for ln in out.splitlines() if ln.startswith("skipping")]
    want = f"skipping cells/, qc/, store/ in {slides / 'results'}: output of an earlier ihc-score run, not slides"
    assert skips == [want]


def test_output_folders_are_told_by_what_ihc_score_writes(tmp_path):
    (tmp_path / "copied" / "qc").mkdir(parents=True)  # a results folder copied without its hidden lock
    for name in ("run.json", "slides.csv", "qc/a.png", "kept.svs"):
        (tmp_path / "copied" / name).write_bytes(b"x")
    (tmp_path / "lab" / "qc").mkdir(parents=True)  # the lab's own slide list, and slides in a folder named qc
    for name in ("slides.csv", "qc/field.png"):
        (tmp_path / "lab" / name).write_bytes(b"x")
    (tmp_path / "killed" / "qc").mkdir(parents=True)  # a batch killed before its tables: only its lock
    for name in (".ihc-score.lock", "qc/b.png"):
        (tmp_path / "killed" / name).write_bytes(b"")
    skipped: list[tuple[Path, tuple[str, ...]]] = []
    found = discover_slides([tmp_path, tmp_path / "copied"], on_skip=lambda *told: skipped.append(told))
    assert [p.name for p in found] == ["field.png", "kept.svs"]
    assert sorted(skipped) == [(tmp_path / "copied", ("qc",)), (tmp_path / "killed", ("qc",))]  # once per folder
    assert set(OUTPUT_SUBFOLDERS) == {"store", "qc", "detections", "cells"}  # the folders a batch writes


# 3. --out equal to an input folder


def test_out_equal_to_the_input_scores_its_slides_and_skips_its_outputs(slides):
    before = {p.name: p.read_bytes() for p in slides.glob("*.svs")}
    code, out = score(str(slides), "--out", str(slides))
    assert code == 0, out
    assert [r["slide"] for r in rows(slides / "slides.csv")] == ["neg.svs", "nomet.svs"]
    code, out = score(str(slides), "--out", str(slides))  # now qc/ holds PNGs: still only the two slides
    assert code == 0 and "reusing 2" in out and "skipping" not in out
    assert [r["slide"] for r in rows(slides / "slides.csv")] == ["neg.svs", "nomet.svs"]
    assert {p.name: p.read_bytes() for p in slides.glob("*.svs")} == before


# 4. A --manifest slide that is not found


def test_missing_manifest_slides_are_warned_and_their_cases_indeterminate(slides, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("slide,case\nneg.svs,P1\nlost.svs,P1\nnomet.svs,P2\ngone.svs,P3\n")
    code, out = score(str(slides), "--out", str(tmp_path / "out"), "--manifest", str(manifest))
    assert code == 1
    warnings = [ln for ln in out.splitlines() if ln.startswith("warning:")]
    assert warnings == [
        f"warning: the manifest lists {s} (case {c}) but no such file is under the given paths; "
        "add its folder or fix the manifest (the case is indeterminate)"
        for s, c in (("lost.svs", "P1"), ("gone.svs", "P3"))
    ]
    last = "1/2 slides scored (0 reused), 1 with no metastasis found, 0 failed or incomplete, 2 of the manifest"
    assert re.search(re.escape(last + " not found, in ") + r".* slides/h\)\. Results in ", out)
    cases = {c["case"]: c for c in rows(tmp_path / "out" / "cases.csv")}
    assert sorted(cases) == ["P1", "P2", "P3"]
    p1, p3 = cases["P1"], cases["P3"]
    assert (p1["call"], p1["n_slides"], p1["n_metastases"]) == ("indeterminate", "1", "1")
    assert p1["call_reason"] == (
        "1 slide of the manifest not found: lost.svs (1 other slide was scored, but a missing slide could hold a "
        "positive metastasis)"
    )
    assert (p3["call"], p3["n_slides"]) == ("indeterminate", "0")
    assert p3["call_reason"] == "1 slide of the manifest not found: gone.svs"


def test_missing_manifest_slides_keep_pseudonyms(slides, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("slide,case\nneg.svs,Smith\nlost-Smith.svs,Smith\n")
    args = ["--manifest", str(manifest), "--pseudonymize", str(tmp_path / "key.json")]
    code, out = score(str(slides / "neg.svs"), "--out", str(tmp_path / "out"), *args)
    assert code == 1
    (case,) = rows(tmp_path / "out" / "cases.csv")
    assert case["case"].startswith("case-") and case["call"] == "indeterminate"
    assert case["call_reason"].startswith("1 slide of the manifest not found: slide-")
    assert "Smith" not in (tmp_path / "out" / "cases.csv").read_text() and "Smith" not in out


def region(name: str, call: str) -> RegionResult:
    return RegionResult(name, ClassCounts(10, 0, 0, 0), Call(call), 1.0, source="annotation")


@pytest.mark.parametrize(
    ("found", "missing", "call", "reason"),
    [
        ([], ["b.svs", "a.svs"], "indeterminate", "2 slides of the manifest not found: a.svs, b.svs"),
        (["negative", "negative"], ["c.svs"], "indeterminate",
         "1 slide of the manifest not found: c.svs (2 other slides were scored, but a missing slide could hold a "
         "positive metastasis)"),
        # any_positive: no missing slide can undo a positive metastasis, as no failed slide can
        (["positive"], ["c.svs"], "positive",
         "positive metastasis: s0.svs/r; 1 slide of the manifest not found: c.svs"),
    ],
)
def test_case_call_with_missing_slides(found, missing, call, reason):
    results = [
        ("K", SlideResult(path=f"/x/s{i}.svs", slide=f"s{i}.svs", status="ok", regions=(region("r", c),)))
        for i, c in enumerate(found)
    ]
    (case,) = aggregate_cases(results, missing=[(m, "K") for m in missing])
    assert (case.case, case.n_slides, case.call, case.reason) == ("K", len(found), call, reason)

"""``ihc-score selftest``: the shipped reference slides, their expected values, the checks and the command.

One end-to-end run scores the reference slides (module fixture, ~10 s on one
core); every other test reuses its results or scores nothing.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

import ihc_score.cli.selftest  # noqa: F401 - registers the command
from ihc_score.cli._group import main
from ihc_score.model import load_model
from ihc_score.validation import (
    REFERENCE_DIR,
    TOLERANCES,
    check_reference,
    check_value,
    read_expected,
    truth_call,
    write_selftest,
)
from ihc_score.validation import selftest as selftest_module
from ihc_score.validation.selftest import default_out_dir


@pytest.fixture(scope="module")
def selftest_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    """The whole self-test through the command line, once."""
    out = tmp_path_factory.mktemp("selftest") / "run"
    res = CliRunner().invoke(main, ["selftest", "--out", str(out)])
    return res, out


def _copy_reference(dest: Path) -> Path:
    shutil.copytree(REFERENCE_DIR, dest)
    return dest


def _edit_expected(reference: Path, edit: Callable[[dict], None]) -> None:
    path = reference / "expected.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


# -- the reference itself ----------------------------------------------------------------------------------------


def test_reference_slides_are_small_and_each_gives_a_call() -> None:
    """Five slides, <= 8 MB in all; each metastasis has the model's minimum of cells; truth calls off the band."""
    expected, _ = read_expected()
    model = load_model(None)
    assert expected["made_with"]["model_sha256"] == model.sha256
    slides = expected["slides"]
    assert sorted(slides) == ["artefacts.svs", "drifted-stains.svs", "intermediate.svs", "negative.svs",
                              "positive.svs"]
    assert sum((REFERENCE_DIR / name).stat().st_size for name in slides) <= 8e6
    n_cells = {c["slide"]: c["expected"] for c in expected["checks"]
               if c["basis"] == "release" and c["metric"].endswith(".n_cells")}
    assert set(n_cells) == set(slides) and min(n_cells.values()) >= model.positivity.min_cells
    truth = {name: s["truth"] for name, s in slides.items()}
    assert 130 <= truth["intermediate.svs"]["h_score"] <= 150  # near the cut-off, clearly above its band
    assert truth["negative.svs"]["call"] == "negative" and truth["positive.svs"]["call"] == "positive"
    assert set(truth["artefacts.svs"]["artefacts_mm2"]) == {"fold_area_mm2", "ink_area_mm2", "bubble_area_mm2"}
    for check in expected["checks"]:  # every check states its tolerance
        assert check["tolerance"] in TOLERANCES.values()


# -- the check function ------------------------------------------------------------------------------------------


def test_check_value_tolerances() -> None:
    h = TOLERANCES["h_score"]  # +-1.0
    assert check_value(185.9, 185.0, h) == (True, pytest.approx(0.9))
    assert check_value("184.0", 185.0, h)[0]  # table text is read as a number; the edge is inside
    assert not check_value(186.2, 185.0, h)[0]
    assert not check_value(math.nan, 185.0, h)[0]
    assert not check_value("", 185.0, h)[0] and not check_value(None, 185.0, h)[0]
    n = TOLERANCES["n_cells"]  # max(2 cells, 1 %)
    assert check_value(909, 900, n)[0] and not check_value(910, 900, n)[0]
    assert check_value(12, 10, n)[0] and not check_value(13, 10, n)[0]
    eq = TOLERANCES["equal"]
    assert check_value("positive", "positive", eq)[0] and not check_value("indeterminate", "positive", eq)[0]
    assert check_value("1", 1.0, eq)[0] and not check_value(None, "ok", eq)[0]
    angle = TOLERANCES["stain"]  # 1 degree
    a = (1.0, 0.0, 0.0)
    near = (math.cos(math.radians(0.9)), math.sin(math.radians(0.9)), 0.0)
    far = (math.cos(math.radians(1.1)), math.sin(math.radians(1.1)), 0.0)
    assert check_value(near, a, angle) == (True, pytest.approx(0.9))
    assert not check_value(far, a, angle)[0]
    assert not check_value((math.nan, 0.0, 0.0), a, angle)[0] and not check_value((0.0, 0.0, 0.0), a, angle)[0]
    ratio = TOLERANCES["truth_area"]  # 0.5-2 times
    assert check_value(0.02, 0.0203, ratio)[0] and not check_value(0.009, 0.0203, ratio)[0]
    assert not check_value(0.05, 0.0203, ratio)[0] and not check_value(math.nan, 0.0203, ratio)[0]
    with pytest.raises(ValueError, match="unknown tolerance"):
        check_value(1.0, 1.0, {"within": 3})


def test_truth_call_leaves_the_borderline_band_unchecked() -> None:
    assert truth_call(139.9, 100.0, 10.0) == "positive"
    assert truth_call(30.0, 100.0, 10.0) == "negative"
    assert truth_call(110.0, 100.0, 10.0) == "positive"  # |H - cut-off| < borderline is the band
    assert truth_call(91.0, 100.0, 10.0) is None


def test_default_out_dir_is_new(tmp_path: Path) -> None:
    first = default_out_dir(tmp_path, date(2025, 3, 4))
    assert first == tmp_path / "ihc-score-selftest-2025-03-04"
    first.mkdir()
    assert default_out_dir(tmp_path, date(2025, 3, 4)).name == "ihc-score-selftest-2025-03-04-2"


# -- the command, end to end -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_selftest_passes_and_writes_its_record(selftest_run: tuple[object, Path]) -> None:
    res, out = selftest_run
    assert res.exit_code == 0, res.output
    expected, digest = read_expected()
    lines = [line for line in res.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert len(lines) == len(expected["checks"]) + 1  # + the model's sha256
    assert all(line.startswith("PASS ") for line in lines)
    assert "PASS positive.svs auto-1.h_score" in res.stdout and "self-test passed" in res.stdout
    record = json.loads((out / "selftest.json").read_text())
    assert record["passed"] is True and record["n_failed"] == 0 and record["n_checks"] == len(lines)
    assert record["model"]["sha256"] == load_model(None).sha256 and record["expected"]["sha256"] == digest
    assert record["environment"]["python"] and record["seconds"] < 120
    page = (out / "selftest.html").read_text()
    assert "PASSED: all" in page and 'class="fail"' not in page
    for name in ("slides.csv", "metastases.csv", "cases.csv", "run.json"):
        assert (out / "results" / name).is_file()


@pytest.mark.slow
def test_one_shifted_expected_value_fails_exactly_that_check(selftest_run: tuple[object, Path],
                                                              tmp_path: Path) -> None:
    _, out = selftest_run
    reference = _copy_reference(tmp_path / "reference")
    target = ("intermediate.svs", "auto-1.h_score", "release")

    def shift(by: float) -> Callable[[dict], None]:
        def edit(data: dict) -> None:
            (spec,) = [c for c in data["checks"] if (c["slide"], c["metric"], c["basis"]) == target]
            spec["expected"] += by
        return edit

    _edit_expected(reference, shift(0.9))  # inside +-1.0: still passes
    assert check_reference(out / "results", reference).exit_code == 0
    _edit_expected(reference, shift(0.3))  # 1.2 off now
    outcome = check_reference(out / "results", reference)
    assert outcome.exit_code == 1
    assert [(c.slide, c.metric, c.basis) for c in outcome.failed] == [target]
    assert outcome.failed[0].deviation == pytest.approx(1.2)
    page_dir = tmp_path / "record"
    page_dir.mkdir()
    write_selftest(replace(outcome, out_dir=page_dir), reference_dir=reference)
    record = json.loads((page_dir / "selftest.json").read_text())
    assert record["passed"] is False and record["n_failed"] == 1
    assert 'class="fail"' in (page_dir / "selftest.html").read_text()


@pytest.mark.slow
def test_a_damaged_reference_slide_fails_its_file_check(selftest_run: tuple[object, Path], tmp_path: Path) -> None:
    _, out = selftest_run
    reference = _copy_reference(tmp_path / "reference")
    with open(reference / "negative.svs", "r+b") as fh:
        fh.seek(500_000)
        fh.write(b"\0" * 16)
    failed = check_reference(out / "results", reference).failed
    assert [(c.slide, c.metric, c.basis) for c in failed] == [("negative.svs", "sha256", "file")]


def test_another_model_fails_without_scoring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = _copy_reference(tmp_path / "reference")
    _edit_expected(reference, lambda data: data["made_with"].update(model_sha256="0" * 64))
    monkeypatch.setattr(selftest_module, "REFERENCE_DIR", reference)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["selftest", "--out", str(out)])
    assert res.exit_code == 1
    assert "FAIL (model) sha256" in res.stdout
    assert sum("is not the model the reference values were made with" in line for line in res.stdout.splitlines()) == 1
    assert not (out / "results").exists()  # nothing scored
    record = json.loads((out / "selftest.json").read_text())
    assert record["passed"] is False and record["n_checks"] == 1


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "earlier.txt").write_text("x")
    res = CliRunner().invoke(main, ["selftest", "--out", str(tmp_path)])
    assert res.exit_code == 1
    assert res.output.strip().count("\n") == 0 and "not an empty folder" in res.output
    assert not (tmp_path / "selftest.json").exists()


def test_a_results_folder_without_tables_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        check_reference(tmp_path)

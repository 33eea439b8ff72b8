"""Cases: manifest, pattern, fallback, and the aggregate of a case."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ihc_score.errors import IhcScoreError
from ihc_score.results import SlideResult
from ihc_score.run import aggregate_cases, assign_case, compile_case_pattern, read_manifest
from ihc_score.score import Call, ClassCounts, RegionResult


def region(name: str, counts: ClassCounts, call: str) -> RegionResult:
    return RegionResult(name, counts, Call(call), 1.0, source="annotation")


def slide(name: str, *regions: RegionResult, status: str = "ok") -> SlideResult:
    return SlideResult(path=f"/x/{name}", slide=name, status=status, regions=regions)


def test_two_slides_three_metastases_aggregate_as_documented():
    a = slide("A1.svs", region("m1", ClassCounts(100, 0, 0, 0), "negative"), region("m2", ClassCounts(0, 0, 0, 50), "positive"))
    b = slide("A2.svs", region("m3", ClassCounts(50, 50, 0, 0), "negative"))
    (case,) = aggregate_cases([("A", a), ("A", b)])
    assert (case.n_slides, case.n_metastases, case.n_failed_slides) == (2, 3, 0)
    # pooled: all cells of the three metastases together, not the mean of their H-scores
    assert case.counts == ClassCounts(150, 50, 0, 50)
    assert case.counts.h_score == pytest.approx(100 * (50 + 150) / 250)  # 80, whereas the mean of 0, 300, 50 is 116.7
    assert case.max_h_score == pytest.approx(300)
    assert case.call == "positive" and "A1.svs/m2" in case.reason
    assert case.metastasis_calls == ("A1.svs/m1=negative", "A1.svs/m2=positive", "A2.svs/m3=negative")


@pytest.mark.parametrize(
    ("calls", "failed", "want"),
    [
        (["negative", "negative"], False, "negative"),
        (["negative", "indeterminate"], False, "indeterminate"),
        (["indeterminate", "positive"], False, "positive"),
        (["negative"], True, "indeterminate"),  # a slide not scored could hold the positive metastasis
        (["positive"], True, "positive"),
        ([], False, "indeterminate"),
    ],
)
def test_case_rule_any_positive(calls, failed, want):
    slides = [("C", slide("s1.svs", *(region(f"r{i}", ClassCounts(1, 0, 0, 0), c) for i, c in enumerate(calls))))]
    if failed:
        slides.append(("C", slide("s2.svs", status="failed")))
    (case,) = aggregate_cases(slides)
    assert case.call == want
    if not calls and not failed:
        assert case.reason == "no metastasis scored" and math.isnan(case.max_h_score)


def test_cases_are_separate_and_sorted():
    out = aggregate_cases([("B", slide("b.svs")), ("A", slide("a.svs"))])
    assert [c.case for c in out] == ["A", "B"]


def test_manifest_pattern_and_fallback(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("Slide,Case,Metastasis\nscans/A-1 HE.svs,P001,frontal\nB.svs,P002,\n", encoding="utf-8")
    manifest = read_manifest(m)
    assert manifest == {"A-1 HE.svs": ("P001", "frontal"), "B.svs": ("P002", "")}
    got = assign_case(Path("/d/A-1 HE.svs"), "A-1 HE", manifest=manifest)
    assert (got.case, got.metastasis, got.source) == ("P001", "frontal", "manifest")
    rx = compile_case_pattern(r"^(?P<case>[A-Z]+\d+)_")
    assert assign_case(Path("/d/PT17_block2.svs"), "PT17_block2", pattern=rx).case == "PT17"
    miss = assign_case(Path("/d/other.svs"), "other", manifest=manifest, pattern=rx)
    assert miss.case == "other" and set(miss.flags) == {"not_in_manifest", "case_pattern_no_match"}
    assert assign_case(Path("/d/x.svs"), "x").source == "file name"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slide,patient\na.svs,1\n", "columns"),
        ("slide,case\na.svs,\n", "must not be empty"),
        ("slide,case\na.svs,1\nsub/a.svs,2\n", "listed twice"),
    ],
)
def test_bad_manifests(tmp_path, text, message):
    m = tmp_path / "m.csv"
    m.write_text(text)
    with pytest.raises(IhcScoreError, match=message):
        read_manifest(m)


def test_bad_patterns():
    with pytest.raises(IhcScoreError, match="named group"):
        compile_case_pattern(r"(\d+)")
    with pytest.raises(IhcScoreError, match="not a valid"):
        compile_case_pattern(r"(?P<case>[")

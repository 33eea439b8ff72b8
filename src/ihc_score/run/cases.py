"""Cases (patients): which slides belong together, and the case call.

A slide's case comes from a manifest CSV (columns ``slide``, ``case`` and an
optional ``metastasis`` label), else from a regular expression with a named
group ``case`` matched against the file name, else the file name without its
ending. A case's result pools the cells of all its metastases and applies the
model's case rule to the metastasis calls.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

from ihc_score.errors import IhcScoreError
from ihc_score.results import CaseAssignment, CaseResult, SlideResult
from ihc_score.score import ClassCounts

__all__ = ["read_manifest", "compile_case_pattern", "assign_case", "aggregate_cases"]


def read_manifest(path: Path) -> dict[str, tuple[str, str]]:
    """Map slide file name -> (case, metastasis label) from a manifest CSV.

    The ``slide`` column holds a file name (``A12.svs``) or a path whose last
    part is the file name; ``case`` is required, ``metastasis`` optional.

    Raises
    ------
    IhcScoreError
        Unreadable file, missing column, empty case, or a slide listed twice.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
            if "slide" not in columns or "case" not in columns:
                raise IhcScoreError(f"manifest {path}: needs the columns 'slide' and 'case', found {columns}")
            out: dict[str, tuple[str, str]] = {}
            for line, row in enumerate(reader, start=2):
                row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                slide, case = Path(row["slide"].replace("\\", "/")).name, row["case"]
                if not slide or not case:
                    raise IhcScoreError(f"manifest {path} line {line}: 'slide' and 'case' must not be empty")
                if slide in out:
                    raise IhcScoreError(f"manifest {path} line {line}: slide {slide!r} is listed twice")
                out[slide] = (case, row.get("metastasis", ""))
            return out
    except OSError as err:
        raise IhcScoreError(f"manifest {path}: cannot read it ({err.strerror or err})") from err
    except (csv.Error, UnicodeDecodeError) as err:
        raise IhcScoreError(f"manifest {path}: not a readable CSV ({err})") from err


def compile_case_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a ``--case-pattern``; it must have a named group ``case``.

    Raises
    ------
    IhcScoreError
    """
    try:
        rx = re.compile(pattern)
    except re.error as err:
        raise IhcScoreError(f"--case-pattern {pattern!r} is not a valid regular expression ({err})") from err
    if "case" not in rx.groupindex:
        raise IhcScoreError(f"--case-pattern {pattern!r} needs a named group, e.g. (?P<case>[A-Z]+-\\d+)")
    return rx


def assign_case(
    slide: Path, stem: str, *, manifest: dict[str, tuple[str, str]] | None = None, pattern: re.Pattern[str] | None = None
) -> CaseAssignment:
    """The case of a slide: manifest, else pattern, else ``stem``.

    A slide missing from the manifest, or whose name the pattern does not
    match, falls back to the next source and carries a QC flag saying so.
    """
    flags: list[str] = []
    if manifest is not None:
        if slide.name in manifest:
            case, label = manifest[slide.name]
            return CaseAssignment(case, label, "manifest")
        flags.append("not_in_manifest")
    if pattern is not None:
        m = pattern.search(slide.name)
        if m and m.group("case"):
            return CaseAssignment(m.group("case"), "", "pattern", tuple(flags))
        flags.append("case_pattern_no_match")
    return CaseAssignment(stem, "", "file name", tuple(flags))


def aggregate_cases(results: Sequence[tuple[str, SlideResult]], *, case_rule: str = "any_positive") -> list[CaseResult]:
    """One result per case, sorted by case.

    Case rule ``any_positive``: positive if any metastasis is positive;
    otherwise indeterminate if any metastasis is indeterminate, any slide of
    the case failed, or no metastasis was scored; otherwise negative.
    """
    if case_rule != "any_positive":
        raise ValueError(f"unknown case rule {case_rule!r}")
    by_case: dict[str, list[SlideResult]] = {}
    for case, r in results:
        by_case.setdefault(case, []).append(r)
    out = []
    for case in sorted(by_case):
        slides = by_case[case]
        failed = sorted(r.slide for r in slides if r.status != "ok")  # failed or incomplete
        regions = [(r.slide, g) for r in slides if r.status == "ok" for g in r.regions]
        counts = sum((g.counts for _, g in regions), ClassCounts())
        h = [g.counts.h_score for _, g in regions if g.counts.n]
        calls = sorted(f"{s}/{g.name}={g.call.call}" for s, g in regions)
        positive = [f"{s}/{g.name}" for s, g in regions if g.call.call == "positive"]
        undecided = [f"{s}/{g.name}" for s, g in regions if g.call.call == "indeterminate"]
        if positive:
            call, reason = "positive", "positive metastasis: " + ", ".join(sorted(positive))
        elif failed:
            call, reason = "indeterminate", "slide(s) not scored: " + ", ".join(failed)
        elif undecided:
            call, reason = "indeterminate", "indeterminate metastasis: " + ", ".join(sorted(undecided))
        elif not regions:
            call, reason = "indeterminate", "no metastasis scored"
        else:
            call, reason = "negative", f"every metastasis negative ({len(regions)})"
        out.append(
            CaseResult(
                case=case,
                n_slides=len(slides),
                n_failed_slides=len(failed),
                n_metastases=len(regions),
                counts=counts,
                max_h_score=max(h) if h else float("nan"),
                call=call,
                reason=reason,
                metastasis_calls=tuple(calls),
            )
        )
    return out

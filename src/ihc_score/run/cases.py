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
from collections.abc import Mapping, Sequence
from pathlib import Path

from ihc_score.errors import IhcScoreError
from ihc_score.results import CaseAssignment, CaseResult, SlideResult
from ihc_score.score import ClassCounts, RegionResult

__all__ = ["read_manifest", "compile_case_pattern", "assign_case", "missing_slides", "aggregate_cases"]


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


def missing_slides(manifest: Mapping[str, tuple[str, str]] | None, slides: Sequence[Path]) -> list[tuple[str, str]]:
    """``(slide file name, case)`` of every manifest row whose slide is not among ``slides``, sorted by case, slide."""
    names = {Path(s).name for s in slides}
    rows = ((name, case) for name, (case, _) in (manifest or {}).items() if name not in names)
    return sorted(rows, key=lambda row: (row[1], row[0]))


def aggregate_cases(
    results: Sequence[tuple[str, SlideResult]],
    *,
    case_rule: str = "any_positive",
    missing: Sequence[tuple[str, str]] = (),
) -> list[CaseResult]:
    """One result per case, sorted by case.

    Case rule ``any_positive``: positive if any metastasis is positive;
    otherwise indeterminate if a slide of the case is missing (``missing``:
    ``(slide, case)`` of manifest rows whose slide was not found) or failed,
    any metastasis is indeterminate, or no metastasis was scored; otherwise
    negative. A case whose every slide is missing still gets its result.
    """
    if case_rule != "any_positive":
        raise ValueError(f"unknown case rule {case_rule!r}")
    by_case: dict[str, list[SlideResult]] = {}
    for case, r in results:
        by_case.setdefault(case, []).append(r)
    lost: dict[str, list[str]] = {}
    for name, case in missing:
        lost.setdefault(case, []).append(name)
        by_case.setdefault(case, [])
    return [_case_result(case, by_case[case], sorted(lost.get(case, ()))) for case in sorted(by_case)]


def _case_result(case: str, slides: Sequence[SlideResult], missing: Sequence[str]) -> CaseResult:
    """The pooled counts and the call of one case from its slides found, and the names of its slides missing."""
    failed = sorted(r.slide for r in slides if r.status != "ok")  # failed or incomplete
    regions = [(r.slide, g) for r in slides if r.status == "ok" for g in r.regions]
    h = [g.counts.h_score for _, g in regions if g.counts.n]
    call, reason = _case_call(slides, regions, failed, missing)
    return CaseResult(
        case=case,
        n_slides=len(slides),
        n_failed_slides=len(failed),
        n_metastases=len(regions),
        counts=sum((g.counts for _, g in regions), ClassCounts()),
        max_h_score=max(h) if h else float("nan"),
        call=call,
        reason=reason,
        metastasis_calls=tuple(sorted(f"{s}/{g.name}={g.call.call}" for s, g in regions)),
        metastases=tuple(sorted(regions, key=lambda sg: (sg[0], sg[1].name))),
    )


def _case_call(
    slides: Sequence[SlideResult], regions: Sequence[tuple[str, RegionResult]], failed: Sequence[str],
    missing: Sequence[str],
) -> tuple[str, str]:
    """The case call by ``any_positive`` and its one-line reason."""
    positive = sorted(f"{s}/{g.name}" for s, g in regions if g.call.call == "positive")
    undecided = sorted(f"{s}/{g.name}" for s, g in regions if g.call.call == "indeterminate")
    not_scored = "slide(s) not scored: " + ", ".join(failed)
    if positive:  # a slide missing or failed cannot undo a positive metastasis
        return "positive", "; ".join(["positive metastasis: " + ", ".join(positive)] + _missing_note(missing, 0))
    if missing:
        n_found = sum(r.status == "ok" for r in slides)
        return "indeterminate", "; ".join(_missing_note(missing, n_found) + ([not_scored] if failed else []))
    if failed:
        return "indeterminate", not_scored
    if undecided:
        return "indeterminate", "indeterminate metastasis: " + ", ".join(undecided)
    if not regions:
        if slides and all("no_metastasis_found" in r.flags for r in slides):
            return "indeterminate", "no metastasis found automatically; --regions tissue scores all tissue"
        return "indeterminate", "no metastasis scored"
    return "negative", f"every metastasis negative ({len(regions)})"


def _missing_note(missing: Sequence[str], n_found: int) -> list[str]:
    """``["2 slides of the manifest not found: a.svs, b.svs"]`` (and why the case waits for them), or ``[]``."""
    if not missing:
        return []
    n = len(missing)
    note = f"{n} slide{'s' if n > 1 else ''} of the manifest not found: {', '.join(missing)}"
    if n_found:
        others = f"{n_found} other slide{'s were' if n_found > 1 else ' was'} scored"
        note += f" ({others}, but a missing slide could hold a positive metastasis)"
    return [note]

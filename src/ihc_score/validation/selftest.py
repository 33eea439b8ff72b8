"""Installation check: score the reference slides shipped with the package and compare every number.

CAP's guideline for quantitative image analysis of IHC (Bui et al., Arch
Pathol Lab Med 2019, recommendation 1) asks a laboratory to use a validated
system, so each installation is verified where it runs. The package ships five small synthetic
Aperio SVS slides in ``validation/reference/`` (a positive, a negative, an
intermediate one clearly above the cut-off, one with drifted stains and yellow
glass, one with a fold, an air bubble and pen ink) and ``expected.json``: the
values the packaged model gave on them when they were made, the values the
generator drew, and the tolerance of each check (see
:mod:`ihc_score.validation.selftest_checks` for the reasons of each).

:func:`run_selftest` scores them into ``DIR/results/`` with the packaged model,
compares, and writes ``DIR/selftest.json`` (every check and the machine's
record) and ``DIR/selftest.html``. The reference values belong to one model:
when the packaged model's sha256 is not the one they were made with, nothing
is scored and the self-test fails.
"""

from __future__ import annotations

import hashlib
import html
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ihc_score.errors import ValidationInputError
from ihc_score.fileio import file_sha256
from ihc_score.validation.page import html_table, write_page
from ihc_score.validation.results_dir import model_of_results
from ihc_score.validation.selftest_checks import TOLERANCES, Check, check_results, format_value, tolerance_text

if TYPE_CHECKING:
    from ihc_score.model import Model
    from ihc_score.run import Progress

__all__ = ["REFERENCE_DIR", "EXPECTED_NAME", "SelftestOutcome", "read_expected", "default_out_dir",
           "check_reference", "score_reference_slides", "run_selftest", "write_selftest"]

#: The reference slides and ``expected.json`` installed with the package.
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
#: File of expected values in a reference folder.
EXPECTED_NAME = "expected.json"
#: Version of the layout of ``expected.json`` this module reads.
EXPECTED_FORMAT = 1
#: Subfolder of the self-test folder holding the scoring results.
RESULTS_SUBDIR = "results"


@dataclass(frozen=True)
class SelftestOutcome:
    """The checks of one self-test and what they were made with.

    Attributes
    ----------
    checks : tuple of Check
        The model check first, then each slide's file, release and truth checks.
    model : dict
        ``id``, ``version``, ``sha256`` of the model that scored (or would have).
    expected : dict
        ``sha256`` of ``expected.json`` and its ``made_with`` record.
    note : str
        One line when the self-test could not score (model mismatch).
    out_dir : Path or None
        The self-test folder, once written.
    seconds : float
        Wall time of scoring and checking.
    """

    checks: tuple[Check, ...]
    model: Mapping[str, str]
    expected: Mapping[str, Any]
    note: str = ""
    out_dir: Path | None = None
    seconds: float = field(default=float("nan"))

    @property
    def failed(self) -> tuple[Check, ...]:
        """The checks that failed."""
        return tuple(c for c in self.checks if not c.passed)

    @property
    def passed(self) -> bool:
        """Every check passed (and there was at least one)."""
        return bool(self.checks) and not self.failed

    @property
    def exit_code(self) -> int:
        """0 when every check passed, else 1."""
        return 0 if self.passed else 1


def read_expected(reference_dir: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """``expected.json`` of a reference folder and its sha256.

    Raises
    ------
    ValidationInputError
        The file is missing, not JSON, of another format or lacks a section.
    """
    path = Path(reference_dir or REFERENCE_DIR) / EXPECTED_NAME
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except (OSError, ValueError) as err:
        raise ValidationInputError(f"{path}: unreadable ({err}); reinstall ihc-score") from None
    if not isinstance(data, dict) or data.get("format") != EXPECTED_FORMAT:
        raise ValidationInputError(f"{path}: not an expected-values file of format {EXPECTED_FORMAT}; "
                                   "reinstall ihc-score")
    missing = [k for k in ("made_with", "slides", "checks") if not data.get(k)]
    if missing:
        raise ValidationInputError(f"{path}: lacks {', '.join(missing)}; reinstall ihc-score")
    return data, hashlib.sha256(raw).hexdigest()


def default_out_dir(parent: Path, today: date) -> Path:
    """``parent/ihc-score-selftest-<date>``, or with ``-2``, ``-3``, ... when that name is taken."""
    base = parent / f"ihc-score-selftest-{today.isoformat()}"
    k, path = 1, base
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def _prepare_out_dir(out_dir: Path) -> None:
    """Create the self-test folder; refuse a file or a non-empty folder (its results would mix with earlier ones)."""
    if out_dir.is_file() or (out_dir.is_dir() and any(out_dir.iterdir())):
        raise ValidationInputError(f"{out_dir}: exists and is not an empty folder; give --out a new folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValidationInputError(f"{out_dir}: cannot create it ({err.strerror or err}); "
                                   "give --out a folder you can write") from None


def _file_sha256(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _model_check(observed: str | None, expected: dict[str, Any]) -> Check:
    want = str(expected["made_with"].get("model_sha256", ""))
    return Check("(model)", "sha256", "model", observed, want, TOLERANCES["equal"], observed == want)


def check_reference(results_dir: str | Path, reference_dir: str | Path | None = None) -> SelftestOutcome:
    """Compare a results folder of the reference slides with their expected values (no scoring).

    Parameters
    ----------
    results_dir : path
        Where the reference slides were scored (``DIR/results`` of a self-test).
    reference_dir : path, optional
        Folder with the slides and ``expected.json`` (default: the packaged one).

    Returns
    -------
    SelftestOutcome
        The model the results were made with (from their ``run.json``)
        against the one the reference values belong to, each slide file's
        sha256, then every check of ``expected.json``.

    Raises
    ------
    ValidationInputError
        ``expected.json`` or the results' tables are unusable.
    """
    reference = Path(reference_dir or REFERENCE_DIR)
    expected, digest = read_expected(reference)
    model = model_of_results(results_dir)
    known = {(slide, "sha256"): _file_sha256(reference / slide) for slide in expected["slides"]}
    checks = (_model_check(model.get("sha256"), expected), *check_results(results_dir, expected["checks"], known))
    return SelftestOutcome(checks, model, {"sha256": digest, "made_with": expected["made_with"]})


def run_selftest(
    out_dir: str | Path | None = None,
    *,
    reference_dir: str | Path | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    argv: Sequence[str] = (),
) -> SelftestOutcome:
    """Score the reference slides with the packaged model, check every value, write the record.

    Parameters
    ----------
    out_dir : path, optional
        A new or empty folder (default: :func:`default_out_dir` in the
        current folder, today's date).
    reference_dir : path, optional
        Folder with the slides and ``expected.json`` (default: the packaged one).
    workers : int
        Worker processes (1: in this process, on one core).
    progress : ihc_score.run.Progress, optional
        Callbacks of the batch.
    argv : sequence of str
        The command, recorded in ``run.json`` and the record.

    Returns
    -------
    SelftestOutcome
        With ``out_dir`` and ``seconds`` set; ``selftest.json`` and
        ``selftest.html`` written there.

    Raises
    ------
    ValidationInputError
        The folder exists and is not empty, ``expected.json`` or a reference
        slide is missing or unreadable.
    """
    from ihc_score.model import load_model

    started = time.monotonic()
    reference = Path(reference_dir or REFERENCE_DIR)
    expected, digest = read_expected(reference)
    slides = [reference / name for name in sorted(expected["slides"])]
    absent = [p.name for p in slides if not p.is_file()]
    if absent:
        raise ValidationInputError(f"{reference}: the reference slide(s) {', '.join(absent)} are missing; "
                                   "reinstall ihc-score")
    out = Path(out_dir) if out_dir is not None else default_out_dir(Path.cwd(), date.today())
    _prepare_out_dir(out)
    model = load_model(None)
    identity = {"id": model.id, "version": model.version, "sha256": model.sha256}
    if model.sha256 != expected["made_with"].get("model_sha256"):
        note = (f"the packaged model {model.id} {model.version} (sha256 {model.sha256[:12]}) is not the model the "
                f"reference values were made with (sha256 {str(expected['made_with'].get('model_sha256'))[:12]}); "
                "the self-test cannot vouch for it: reinstall ihc-score, or regenerate the reference for this model")
        outcome = SelftestOutcome((_model_check(model.sha256, expected),), identity,
                                  {"sha256": digest, "made_with": expected["made_with"]}, note=note)
    else:
        score_reference_slides(slides, out / RESULTS_SUBDIR, model, workers=workers, progress=progress, argv=argv)
        outcome = check_reference(out / RESULTS_SUBDIR, reference)
    outcome = replace(outcome, out_dir=out, seconds=time.monotonic() - started)
    write_selftest(outcome, reference_dir=reference, argv=argv)
    return outcome


def score_reference_slides(slides: Sequence[Path], results_dir: Path, model: Model, *, workers: int = 1,
                           progress: Progress | None = None, argv: Sequence[str] = ()) -> None:
    """Score the reference slides as ``ihc-score score --regions auto`` does, with QC pictures to look at.

    The reference values are made (``benchmarks/make_selftest_reference.py``)
    and checked through this one function, so both score alike.
    """
    from ihc_score.run import BatchOptions, make_executor, run_batch

    executor, name = make_executor(workers)
    with executor:
        run_batch(slides, results_dir, model, executor=executor, options=BatchOptions(region_mode="auto"),
                  progress=progress, argv=list(argv), executor_name=name)


def write_selftest(outcome: SelftestOutcome, *, reference_dir: str | Path | None = None,
                   argv: Sequence[str] = ()) -> None:
    """Write ``selftest.json`` and ``selftest.html`` into ``outcome.out_dir``.

    Raises
    ------
    ValueError
        ``outcome.out_dir`` is not set.
    OutputError
        The folder cannot be written.
    """
    from ihc_score.outputs import write_json
    from ihc_score.run import environment
    from ihc_score.version import __version__

    if outcome.out_dir is None:
        raise ValueError("the outcome has no out_dir to write into")
    out = Path(outcome.out_dir)
    seconds = outcome.seconds if outcome.seconds == outcome.seconds else None
    record = {
        "passed": outcome.passed, "n_checks": len(outcome.checks), "n_failed": len(outcome.failed),
        "note": outcome.note, "checks": [c.to_dict() for c in outcome.checks], "model": dict(outcome.model),
        "expected": dict(outcome.expected), "reference_dir": str(Path(reference_dir or REFERENCE_DIR)),
        "results_dir": RESULTS_SUBDIR, "ihc_score": __version__, "environment": environment(),
        "command": list(argv), "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": None if seconds is None else round(seconds, 1),
    }
    write_json(out / "selftest.json", record)
    write_page(out / "selftest.html", "ihc-score self-test", _page_sections(outcome, reference_dir),
               inputs={"command": " ".join(argv) or "ihc-score selftest",
                       "model": " ".join(str(outcome.model.get(k, "?")) for k in ("id", "version", "sha256")),
                       "expected.json sha256": str(outcome.expected.get("sha256", "")),
                       "reference values made with": json.dumps(outcome.expected.get("made_with", {}),
                                                                sort_keys=True),
                       "scoring results": f"{RESULTS_SUBDIR}/"})


def _page_sections(outcome: SelftestOutcome, reference_dir: str | Path | None) -> list[tuple[str, str]]:
    """Result, checks table (pass/fail rows) and the reference slides of the self-test page."""
    n, bad = len(outcome.checks), len(outcome.failed)
    verdict = (f'<p class="pass">PASSED: all {n} checks within tolerance.</p>' if outcome.passed else
               f'<p class="fail">FAILED: {bad} of {n} checks outside tolerance.</p>')
    if outcome.note:
        verdict += f'<p class="fail">{html.escape(outcome.note)}</p>'
    rows = [("PASS" if c.passed else "FAIL", c.slide, c.metric, c.basis, format_value(c.observed),
             format_value(c.expected), tolerance_text(c.tolerance),
             "" if c.deviation != c.deviation else f"{c.deviation:.4g}") for c in outcome.checks]
    table = html_table(("result", "slide", "metric", "basis", "value", "expected", "tolerance", "deviation"), rows,
                       classes=["pass" if c.passed else "fail" for c in outcome.checks])
    note = ('<p class="note">basis: release = the value the packaged model gave when the reference was made '
            "(tight tolerances: only platform differences); truth = what the generator drew (the tool's error "
            "budget); file = the reference slide's sha256; model = the scoring model's sha256.</p>")
    try:
        slides = read_expected(reference_dir)[0]["slides"]
    except ValidationInputError:
        slides = {}
    about = html_table(("slide", "what it checks", "drawn H-score", "drawn call"),
                       [(name, s.get("what", ""), format_value(s.get("truth", {}).get("h_score")),
                         s.get("truth", {}).get("call") or "borderline") for name, s in sorted(slides.items())])
    return [("Result", verdict), ("Checks", note + table), ("Reference slides", about)]

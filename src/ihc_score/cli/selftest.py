"""``ihc-score selftest``: the installation check, scoring the reference slides shipped with the package."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ihc_score.cli._group import main

__all__ = ["selftest_command"]


@main.command("selftest")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="New or empty folder for the record and the scoring results "
                   "[default: ihc-score-selftest-<date> in the current folder].")
def selftest_command(out_dir: Path | None) -> None:
    """Check this installation: score the reference slides shipped with ihc-score with the packaged model and
    compare every number with the value expected for it, within its stated tolerance.

    Five small synthetic slides (positive, negative, intermediate, drifted
    stains, artefacts) are scored into OUT/results/. Each check prints one
    line, PASS or FAIL, with the slide, the value, the expected value and the
    tolerance: against the values the packaged model gave when the reference
    was made (tight: only platform differences), and against what was drawn
    on the slides (the tool's error budget). OUT/selftest.json records every
    check with the machine, the versions and the model's sha256;
    OUT/selftest.html shows them. Takes well under 2 minutes on one core.

    Exit status: 0 every check passed, 1 a check failed, the packaged model is
    not the one the reference values were made with, or OUT is not empty.
    """
    from ihc_score.errors import IhcScoreError
    from ihc_score.run import Progress
    from ihc_score.validation import run_selftest

    argv = ["ihc-score", "selftest", *(["--out", str(out_dir)] if out_dir is not None else [])]
    progress = Progress(on_slide=lambda result, reused: click.echo(f"scored {result.slide}", err=True))
    try:
        outcome = run_selftest(out_dir, progress=progress, argv=argv)
    except IhcScoreError as err:
        raise click.ClickException(str(err)) from None
    for check in outcome.checks:
        click.echo(check.line())
    if outcome.note:
        click.echo(outcome.note)
    n, bad = len(outcome.checks), len(outcome.failed)
    verdict = f"self-test passed: all {n} checks" if outcome.passed else f"self-test FAILED: {bad} of {n} checks"
    click.echo(f"{verdict} ({outcome.seconds:.0f} s); record: {outcome.out_dir / 'selftest.html'}")
    sys.exit(outcome.exit_code)

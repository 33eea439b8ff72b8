"""Progress of ``ihc-score score``: plain lines in a log, the live display on a terminal, the summary's rate."""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import ihc_score.cli.scoring  # noqa: F401 - registers ``score``
from ihc_score.cli._group import main
from ihc_score.cli.progress import Reporter, eta_seconds, format_duration, slides_per_hour
from ihc_score.run import BatchSummary

SAMPLES = Path(__file__).resolve().parents[1] / "sample_slides"
ESCAPE = re.compile(r"\x1b|\r")


class FakeClock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def result(slide: str, status: str = "ok", error: str = "") -> SimpleNamespace:
    """What the reporter and the summary read of a SlideResult: a slide without regions."""
    return SimpleNamespace(slide=slide, status=status, flags=(), error=error, regions=())


def drive(reporter: Reporter, clock: FakeClock) -> BatchSummary:
    """A batch of 4 slides over 192 s: 1 reused, 1 failed when planned, 2 scored (100 and 300 tiles)."""
    p = reporter.progress()
    p.on_start(4, 1)
    p.on_slide(result("old.svs"), True)
    p.on_slide_tiles("a.svs", 0, 100)
    p.on_tiles(0, 100)
    p.on_slide(result("bad.svs", "failed", "bad.svs: not a slide"), False)
    p.on_slide_tiles("b.svs", 0, 300)
    p.on_tiles(0, 400)
    done = 0
    for _ in range(100):  # a chunk of 4 tiles every 1.92 s, a's first
        clock.now += 1.92
        name = "a.svs" if done < 100 else "b.svs"
        done += 4
        p.on_tiles(done, 400)
        p.on_slide_tiles(name, 4, 100 if name == "a.svs" else 300)
        if done in (100, 400):
            p.on_slide(result(name), False)
    results = tuple((None, result(n)) for n in ("a.svs", "b.svs", "old.svs")) + ((None, result("bad.svs", "failed")),)
    return BatchSummary(results, ("old.svs",), Path("out"))


def test_duration_rate_and_eta_by_hand() -> None:
    assert [format_duration(s) for s in (4.24, 45, 192, 7500)] == ["4.2 s", "45 s", "3 min 12 s", "2 h 5 min"]
    assert slides_per_hour(2, 192) == pytest.approx(37.5)  # 2 slides in 192 s = 2 / (192 / 3600) h
    assert slides_per_hour(0, 192) is None
    # 200 of 400 planned tiles in 100 s: 200 more at 2 tiles/s
    assert eta_seconds(100, 200, 400) == pytest.approx(100)
    # one slide of 400 tiles planned, a second not yet: counted at 400, so 600 more at 2 tiles/s
    assert eta_seconds(100, 200, 400, planned=1, unplanned=1) == pytest.approx(300)
    assert eta_seconds(100, 0, 400) is None


def test_plain_lines_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    reporter = Reporter(False, clock=clock)  # capsys's stderr is not a terminal
    assert reporter.console is None
    summary = drive(reporter, clock)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[:3] == [
        "reusing 1 slide result(s) already scored with this model (--force to redo)",
        "[1/4] old.svs reused",
        "[2/4] bad.svs failed: bad.svs: not a slide",
    ]
    assert [line for line in lines if line.startswith("[")][2:] == ["[3/4] a.svs ok", "[4/4] b.svs ok"]
    assert not ESCAPE.search(err)
    # a line on a slide in progress at its first chunk >= 60 s after its plan or its last line: none on a.svs
    # (done at 48 s); on b.svs at chunks 32, 64 and 96 (t = 61.44, 122.88, 184.32 s), b.svs's tiles 4 * (i - 25)
    beats = [line for line in lines if line.startswith("...")]
    assert [b.split(";")[0] for b in beats] == [f"... b.svs: tiles {n}/300" for n in (28, 156, 284)]
    # ETA at t = 61.44 s: 128 tiles done, 272 to go at 128 / 61.44 tiles/s = 130.56 s
    assert beats[0].endswith("; batch tiles 128/400, ETA 2 min 11 s")
    reporter.summary(summary)
    out = capsys.readouterr().out.splitlines()
    # 2 slides scored in this run (reused and failed ones left out) in 192 s: 37.5 slides/h
    assert out[-1] == ("3/4 slides scored (1 reused), 0 with no metastasis found, 1 failed or incomplete, "
                       "in 3 min 12 s (37.5 slides/h). Results in out/")


def test_quiet_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    reporter = Reporter(True, clock=clock, console=None)
    reporter.skipped(Path("old"), ["qc", "store"])
    reporter.summary(drive(reporter, clock))
    assert capsys.readouterr() == ("", "")
    reporter.progress().on_missing("lost.svs", "case 9")  # a case made indeterminate is said even when quiet
    assert capsys.readouterr().err.startswith("warning: the manifest lists lost.svs (case case 9)")


def test_live_display_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    clock = FakeClock()
    screen = io.StringIO()
    reporter = Reporter(False, console=Console(force_terminal=True, file=screen, width=120), clock=clock)
    p = reporter.progress()
    p.on_start(3, 0)
    assert reporter.live is not None
    p.on_slide_tiles("a [red].svs", 0, 100)
    p.on_tiles(0, 100)
    clock.now += 30
    p.on_slide_tiles("a [red].svs", 40, 100)
    p.on_tiles(40, 100)
    p.on_slide(result("b.svs", "failed", "b.svs: not a slide"), False)  # the line above, then the display again
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "[1/3] b.svs failed: b.svs: not a slide" in text
    # one slide of 100 tiles planned, one failed, one still to plan (counted at 100): 160 tiles at 40 per 30 s
    assert re.search(r"slides 1/3 .* tiles 40/100 +30 s elapsed, ETA 2 min 0 s", text)
    assert re.search(r"a \[red\]\.svs .* tiles 40/100", text)  # names are no markup
    assert capsys.readouterr().err == ""  # nothing besides the display
    reporter.summary(BatchSummary(((None, result("b.svs", "failed")),), (), Path("out")))
    assert reporter.live is None


def test_score_command_in_a_log(tmp_path: Path) -> None:
    slide = SAMPLES / "synthetic-negative.svs"
    res = CliRunner().invoke(main, ["score", str(slide), "--out", str(tmp_path), "--workers", "1", "--no-qc"])
    assert res.exit_code == 0, res.output
    assert not ESCAPE.search(res.output)
    assert "[1/1] synthetic-negative.svs ok" in res.stderr.splitlines()
    last = res.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"1/1 slides scored \(0 reused\), .*, in (?:(\d+) min )?(\d+(\.\d)?) s \((\d+\.\d) slides/h\)\. "
                     r"Results in .*/", last)
    assert m, last
    seconds, rate = 60 * int(m[1] or 0) + float(m[2]), float(m[4])
    half = 0.05 if m[3] else 0.5  # the wall time is shown to 0.1 s below 10 s, to 1 s above
    # the rate is 1 slide over the wall time
    assert 3600 / (seconds + half) - 0.05 <= rate <= 3600 / (seconds - half) + 0.05
    again = CliRunner().invoke(main, ["score", str(slide), "--out", str(tmp_path), "--workers", "1", "--no-qc"])
    last = again.stdout.strip().splitlines()[-1]
    assert "1/1 slides scored (1 reused)" in last and "slides/h" not in last  # nothing scored in this run

"""Progress of ``ihc-score score`` on stderr, and its summary on stdout.

On a terminal a live display (``rich``) shows the slides done, the tiles
of the batch and of each slide in progress, the elapsed time and an ETA;
each finished slide prints its line above it. Elsewhere (a log, a pipe)
plain lines are written: one per finished slide and, for a slide still in
progress, one every :data:`HEARTBEAT_S` seconds with its tiles done. No
escape codes then. ``rich`` is imported only when a live display starts.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # annotations only: rich and the scoring packages load when used
    from rich.console import Console, RenderableType
    from rich.live import Live

    from ihc_score.results import SlideResult
    from ihc_score.run import BatchSummary, Progress

__all__ = ["HEARTBEAT_S", "Reporter", "eta_seconds", "format_duration", "slides_per_hour"]

HEARTBEAT_S = 60.0
"""Seconds between two plain lines on a slide in progress (a log shows life during a large slide)."""

_NAME_WIDTH = 40  # slide names longer than this are shortened in the live display


def format_duration(seconds: float) -> str:
    """A duration in words: ``4.2 s``, ``45 s``, ``3 min 12 s``, ``2 h 5 min``."""
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def slides_per_hour(n_slides: int, seconds: float) -> float | None:
    """Throughput in slides per hour, ``n_slides * 3600 / seconds``; None when no slide or no time."""
    return n_slides * 3600.0 / seconds if n_slides > 0 and seconds > 0 else None


def eta_seconds(elapsed_s: float, done: int, total: int, *, planned: int = 1, unplanned: int = 0) -> float | None:
    """Seconds left for a batch's tiles at its mean rate so far.

    Parameters
    ----------
    elapsed_s : float
        Seconds since scoring began.
    done, total : int
        Tiles scored so far, and tiles of the slides planned so far.
    planned, unplanned : int
        Slides planned (their tile count known) and slides still to plan,
        which are counted at the mean tiles of a planned slide.

    Returns
    -------
    float or None
        ``(expected - done) * elapsed_s / done`` with
        ``expected = total * (1 + unplanned / planned)``; None until a tile
        is done.
    """
    if done <= 0 or elapsed_s <= 0 or planned <= 0:
        return None
    expected = total * (1.0 + unplanned / planned)
    return max(expected - done, 0.0) * elapsed_s / done


@dataclass
class _SlideTiles:
    """Tiles of a slide in progress, and when its last plain line was written (clock seconds)."""

    done: int
    total: int
    last_line: float


def _terminal(console: Console | None) -> Console | None:
    """The console of a live display: ``console``, or stderr's when a (not dumb) terminal; None for plain lines."""
    if console is None:
        if not sys.stderr.isatty():
            return None
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_dumb_terminal:
            return None
    return console if console.is_terminal else None


def _short(name: str) -> str:
    """``name`` cut in its middle to :data:`_NAME_WIDTH` characters."""
    if len(name) <= _NAME_WIDTH:
        return name
    half = (_NAME_WIDTH - 3) // 2
    return name[:half] + "..." + name[-(_NAME_WIDTH - 3 - half) :]


class Reporter:
    """Progress of a batch on stderr (live on a terminal, plain lines otherwise) and its summary on stdout.

    Parameters
    ----------
    quiet : bool
        No progress and no summary; only the warnings on manifest slides not found.
    console : rich.console.Console, optional
        Where the live display goes; by default stderr's console when stderr is a terminal, else plain lines.
    clock : callable, optional
        Seconds of a monotonic clock (``time.monotonic``); the wall time, ETA and plain-line pace use it.
    """

    def __init__(
        self, quiet: bool, *, console: Console | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.quiet = quiet
        self.clock = clock
        self.began = self.scoring_began = clock()
        self.console = None if quiet else _terminal(console)
        self.live: Live | None = None
        self.n_slides = self.n_reused = self.n_done = 0
        self.n_run = 0  # slides read to their end in this run: not reused, not failed (the slides/h)
        self.n_planned = self.n_unplanned_done = 0
        self.tiles = (0, 0)
        self.slides: dict[str, _SlideTiles] = {}  # slides planned and not finished, by name
        self.lock = threading.Lock()  # the live display renders in its own thread

    def progress(self) -> Progress:
        """The callbacks for :func:`ihc_score.run.run_batch`."""
        from ihc_score.run import Progress

        return Progress(on_start=self._start, on_tiles=self._tiles, on_slide_tiles=self._slide_tiles,
                        on_slide=self._slide, on_missing=self._missing)

    def skipped(self, folder: Path, subfolders: Sequence[str]) -> None:
        """Say that an earlier output folder's outputs are not scored as slides (discovery calls it once per folder)."""
        names = ", ".join(f"{name}/" for name in subfolders)
        self._say(f"skipping {names} in {folder}: output of an earlier ihc-score run, not slides")

    def eta(self) -> float | None:
        """Seconds left for the batch's tiles (see :func:`eta_seconds`); None until a tile is done."""
        done, total = self.tiles
        unplanned = max(self.n_slides - self.n_reused - self.n_planned - self.n_unplanned_done, 0)
        return eta_seconds(self.clock() - self.scoring_began, done, total, planned=self.n_planned, unplanned=unplanned)

    def close(self) -> None:
        """Stop the live display (it is erased); the lines printed above it stay."""
        if self.live is not None:
            self.live.stop()
            self.live = None
            atexit.unregister(self.close)

    def _say(self, line: str) -> None:
        """Write a line of progress: above the live display, or on stderr."""
        if self.quiet:
            return
        if self.live is not None:
            self.live.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            click.echo(line, err=True)

    def _missing(self, slide: str, case: str) -> None:
        # even when quiet: a case is reported indeterminate because of it
        click.echo(
            f"warning: the manifest lists {slide} (case {case}) but no such file is under the given paths; "
            "add its folder or fix the manifest (the case is indeterminate)",
            err=True,
        )

    def _start(self, n_slides: int, n_reused: int) -> None:
        self.n_slides, self.n_reused = n_slides, n_reused
        self.scoring_began = self.clock()
        if n_reused:
            self._say(f"reusing {n_reused} slide result(s) already scored with this model (--force to redo)")
        if self.console is not None:
            from rich.live import Live

            # transient: the display is erased when the batch ends, above it stay the slides' lines
            self.live = Live(get_renderable=self._render, console=self.console, refresh_per_second=2, transient=True)
            self.live.start()
            atexit.register(self.close)  # an interrupted batch leaves the terminal as it found it

    def _tiles(self, done: int, total: int) -> None:
        self.tiles = (done, total)

    def _slide_tiles(self, slide: str, new: int, total: int) -> None:
        now = self.clock()
        with self.lock:
            if new == 0 and slide not in self.slides:  # just planned
                self.slides[slide] = _SlideTiles(0, total, now)
                self.n_planned += 1
                return
            tiles = self.slides.get(slide)
            if tiles is None:  # a chunk scored after its slide failed: the slide is reported
                return
            tiles.done += new
        if self.live is None and 0 < tiles.done < tiles.total and now - tiles.last_line >= HEARTBEAT_S:
            tiles.last_line = now
            eta = self.eta()
            tail = "" if eta is None else f"; batch tiles {self.tiles[0]}/{self.tiles[1]}, ETA {format_duration(eta)}"
            self._say(f"... {slide}: tiles {tiles.done}/{tiles.total}{tail}")

    def _slide(self, result: SlideResult, reused: bool) -> None:
        with self.lock:
            self.n_done += 1
            if not reused and self.slides.pop(result.slide, None) is None:
                self.n_unplanned_done += 1  # failed before its plan, or its file could not be read
            if not reused and result.status == "ok":
                self.n_run += 1
        from ihc_score.outputs import slide_note  # the words of slides.csv's note column

        note = slide_note(result.flags) if result.status == "ok" else ""
        what = " reused" if reused else ("" if note else f" {result.status}")  # "ok" would belie the note
        detail = f": {result.error}" if result.error else (f": {note}" if note else "")
        if self.live is not None:
            self.live.refresh()  # the display printed again below the line is its last one: bring it up to date
        self._say(f"[{self.n_done}/{self.n_slides}] {result.slide}{what}{detail}")

    def _render(self) -> RenderableType:
        """The live display: the batch's slides and tiles with elapsed time and ETA, then each slide in progress."""
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text  # plain text: a slide name is no markup

        eta = self.eta()
        timing = f"{format_duration(self.clock() - self.scoring_began)} elapsed, ETA "
        timing += format_duration(eta) if eta is not None else "-"
        with self.lock:
            done, total = self.tiles
            rows = [(f"slides {self.n_done}/{self.n_slides}", done, total, timing)]
            rows += [(f"  {_short(name)}", s.done, s.total, "") for name, s in self.slides.items() if s.done > 0]
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, overflow="ellipsis")
        for label, d, t, text in rows:
            grid.add_row(Text(label), ProgressBar(total=t or None, completed=d, width=30), Text(f"tiles {d}/{t}"),
                         Text(text))
        return grid

    def summary(self, summary: BatchSummary) -> None:
        """The table of regions and the batch's line on stdout, with its wall time and slides per hour."""
        self.close()
        if self.quiet:
            return
        for line in _table(summary):
            click.echo(line)
        seconds = self.clock() - self.began
        rate = slides_per_hour(self.n_run, seconds)
        timing = f", in {format_duration(seconds)}" + (f" ({rate:.1f} slides/h)" if rate is not None else "")
        n, s = len(summary.results), summary
        missing = f", {len(s.missing)} of the manifest not found" if s.missing else ""
        click.echo(
            f"\n{s.n_scored}/{n} slides scored ({len(s.reused)} reused), {s.n_no_metastasis} with no metastasis "
            f"found, {s.n_failed} failed or incomplete{missing}{timing}. Results in {s.out_dir}/"
        )


def _table(summary: BatchSummary) -> list[str]:
    """The summary table's lines: a row per scored region, or per slide without one."""
    rows: list[tuple[str, ...]] = [("slide", "region", "cells", "H-score", "95% CI", "% pos", "call")]
    for _, r in summary.results:
        if r.status != "ok":
            rows.append((r.slide, "-", "-", "-", "-", "-", r.status.upper()))
        elif not r.regions:
            empty = "no metastasis found" if "no_metastasis_found" in r.flags else "no region"
            rows.append((r.slide, "-", "0", "-", "-", "-", empty))
        for g in r.regions:
            c, iv = g.counts, g.h_interval
            h = "-" if c.n == 0 else f"{c.h_score:.1f}"
            ci = f"{iv.low:.0f}-{iv.high:.0f}" if iv.defined else "-"
            p = "-" if c.n == 0 else f"{c.pct_positive:.1f}"
            rows.append((r.slide, g.name, str(c.n), h, ci, p, g.call.call))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    left = (0, 1, 6)
    return [
        "  ".join(v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))).rstrip()
        for row in rows
    ]

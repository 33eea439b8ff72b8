"""``ihc-score watch``: score the slides a scanner writes into a folder as they settle, until stopped."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ihc_score.cli._group import main
from ihc_score.cli.scoring import warn_stain_check

if TYPE_CHECKING:  # only for annotations: importing these at run time would slow down --help
    from ihc_score.model import Model
    from ihc_score.results import SlideResult
    from ihc_score.run import BatchOptions, WatchRound, WatchSettings

__all__ = ["watch"]


@main.command()
@click.argument("inbox", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Results folder (created if needed); its tables cover every settled slide of INBOX.")
@click.option("--settle", "settle_s", type=click.FloatRange(0.1, 86400.0), default=60.0, show_default=True, metavar="SECONDS", help="Score a slide once all its files kept their size and time this long; longer than the scanner's longest pause while writing.")
@click.option("--poll", "poll_s", type=click.FloatRange(0.05, 3600.0), default=5.0, show_default=True, metavar="SECONDS", help="Seconds between two looks at INBOX (at most --settle).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Scoring model JSON (default: the packaged S100A9 brain-metastasis model).")
@click.option("--mpp", type=click.FloatRange(0.01, 100.0), help="Pixel size in um/px for slides that store none (PNG/JPEG fields).")
@click.option("--annotations", "annotations_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Folder with annotation files (<slide stem>.geojson/.json/.xml), searched besides each slide's folder.")
@click.option("--regions", "region_mode", type=click.Choice(["auto", "tissue"]), default="auto", show_default=True, help="Regions of a slide without annotation file.")
@click.option("--workers", type=click.IntRange(1, 512), help="Worker processes [default: all cores].")
@click.option("--once", is_flag=True, help="Look for --settle seconds, score what settled, and exit (for cron).")
@click.option("--quiet", "-q", is_flag=True, help="Print only failed slides and warnings.")
def watch(
    inbox: Path, out_dir: Path, settle_s: float, poll_s: float, model_path: Path | None, mpp: float | None,
    annotations_dir: Path | None, region_mode: str, workers: int | None, once: bool, quiet: bool,
) -> None:
    """Score each slide written into INBOX once it has stopped changing, and keep --out's tables current.

    A slide (with its MRXS data folder or DICOM files, and its annotation
    file) is read only after none of its files changed size or modification
    time for --settle seconds. Every round rewrites slides.csv,
    metastases.csv, cases.csv, run.json and report.html over all settled
    slides; slides scored before are reused, so a restart repeats nothing.
    SIGTERM or Ctrl-C stops it (a round in progress is abandoned; the tables
    of the previous round stay).

    Exit status: 0 stopped by SIGTERM or Ctrl-C (or --once with every slide
    scored); 1 the results folder holds another model's results, another
    watcher's, or cannot be written (said at start, before any waiting), a
    write failed later (full disk), or with --once a slide failed; 2 usage
    error.
    """
    from ihc_score.errors import IhcScoreError
    from ihc_score.run import WatchSettings, check_results_folder, watch_lock

    if poll_s > settle_s:
        raise click.UsageError(f"--poll ({poll_s:g} s) must not be longer than --settle ({settle_s:g} s)")
    model = _load_model(model_path)
    warn_stain_check(model)
    options = _options(mpp, annotations_dir, region_mode)
    settings = WatchSettings(settle_s=settle_s, poll_s=poll_s, once=once)
    try:
        check_results_folder(out_dir, model)
        with watch_lock(out_dir):
            code = _watch(inbox, out_dir, model, options, settings, workers, quiet)
    except IhcScoreError as err:
        raise click.ClickException(str(err)) from None
    sys.exit(code)


def _load_model(model_path: Path | None) -> Model:
    """The model of ``--model`` (or the packaged one); a bad one is a usage error."""
    from ihc_score.errors import ModelError
    from ihc_score.model import load_model

    try:
        return load_model(model_path)
    except ModelError as err:
        raise click.UsageError(str(err)) from None


def _options(mpp: float | None, annotations_dir: Path | None, region_mode: str) -> BatchOptions:
    """The batch options of every round (the rest as ``ihc-score score`` has them by default)."""
    from ihc_score.run import BatchOptions

    return BatchOptions(mpp_option_um=mpp, annotations_dir=annotations_dir, region_mode=region_mode)


def _watch(
    inbox: Path, out_dir: Path, model: Model, options: BatchOptions, settings: WatchSettings, workers: int | None,
    quiet: bool,
) -> int:
    """Run the watcher on one executor for its whole life; the exit status."""
    from ihc_score.run import StopRequest, make_executor, stop_on_signals, watch_inbox

    executor, name = make_executor(workers or os.cpu_count() or 1)
    stop = StopRequest()
    printer = _Printer(quiet)
    with stop_on_signals(stop):
        try:
            if not quiet:
                how = "once" if settings.once else f"every {settings.poll_s:g} s until SIGTERM or Ctrl-C"
                click.echo(f"watching {inbox} {how}: a slide is scored once unchanged for {settings.settle_s:g} s; "
                           f"results in {out_dir}", err=True)
            summary = watch_inbox(
                inbox, out_dir, model, executor=executor, options=options, settings=settings, stop=stop,
                on_round=printer.round, on_warning=printer.warning,
                argv=_command_line(click.get_current_context()), executor_name=name,
            )
        finally:
            executor.shutdown(wait=True, cancel_futures=True)  # signals still come to ``stop``: no second interrupt
    if stop.requested:
        if not quiet:
            click.echo(f"stopped ({signal.Signals(stop.signum).name}); results in {out_dir}", err=True)
        return 0
    if summary is None and not quiet:
        click.echo(f"no slide in {inbox} settled within {settings.settle_s:g} s; nothing scored", err=True)
    return summary.exit_code if summary is not None else 0


def _command_line(ctx: click.Context) -> list[str]:
    """The command as given, rebuilt from the parsed parameters (for run.json)."""
    words = ["ihc-score", ctx.info_name or "watch"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value is False:
            continue
        if isinstance(param, click.Argument):
            words.append(str(value))
        elif value is True:
            words.append(param.opts[0])
        else:
            words += [param.opts[0], str(value)]
    return words


class _Printer:
    """A line per new slide on stdout (time, slide, status, H-score and call per region); warnings on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def round(self, done: WatchRound) -> None:
        for result, reused in done.new:
            if not self.quiet or result.status != "ok":
                click.echo(slide_line(result, reused))
        if not self.quiet:
            s = done.summary
            click.echo(f"{len(s.results)} slide(s) in the tables ({len(done.new)} new, {s.n_failed} failed); "
                       f"round of {done.seconds:.1f} s", err=True)

    def warning(self, message: str) -> None:
        click.echo(f"warning: {message}", err=True)


def slide_line(result: SlideResult, reused: bool) -> str:
    """``<local time>  <slide>  <status>  <region> H-score <h> <call>; ...`` (or the reason it failed)."""
    status = "reused" if reused else result.status
    if result.status != "ok":
        detail = result.error
    elif not result.regions:
        detail = "no metastasis found" if "no_metastasis_found" in result.flags else "no region"
    else:
        detail = "; ".join(
            f"{g.name} H-score {'-' if g.counts.n == 0 else f'{g.counts.h_score:.1f}'} {g.call.call}"
            for g in result.regions
        )
    return f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {result.slide}  {status}  {detail}"

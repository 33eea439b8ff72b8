"""``ihc-score monitor``: the control slide of a batch, added to its history and judged by the Westgard rules."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from ihc_score.cli._group import main, parse_floats

__all__ = ["monitor_command", "EXIT_OUT_OF_CONTROL"]

#: Exit status of a batch whose control breaks a rejection rule.
EXIT_OUT_OF_CONTROL = 3


def _target(text: str | None) -> tuple[float, float] | None:
    values = parse_floats(text, "--target")
    if values is None:
        return None
    if len(values) != 2 or not values[1] > 0 or not all(v == v and abs(v) != float("inf") for v in values):
        raise click.BadParameter(f"expected MEAN,SD with SD above 0 (H-score units), got {text!r}",
                                 param_hint="--target")
    return values[0], values[1]


def _command_text(results_dir: Path, control: str, history: Path, extra: list[str]) -> str:
    return shlex.join(["ihc-score", "monitor", str(results_dir), "--control", control, "--history", str(history),
                       *extra])


@main.command("monitor")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--control", "control", required=True, metavar="NAME",
              help="The control slide: its 'slide' value in metastases.csv.")
@click.option("--history", "history", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The control's history (SQLite file), created on first use.")
@click.option("--region", metavar="NAME", help="The control's region, when the slide has several.")
@click.option("--target", "target_text", metavar="MEAN,SD",
              help="The laboratory's mean and SD of the control's H-score (kept for later batches of this model).")
@click.option("--baseline", "baseline_n", type=click.IntRange(min=10), metavar="N",
              help="Runs the mean and SD are estimated from when no --target is set [default: 20; 10-19 warns].")
@click.option("--new-baseline", is_flag=True,
              help="Start a new segment (new model or new lot of control material): limits from its own runs only.")
@click.option("--chart", "chart", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the Levey-Jennings page to this file.")
def monitor_command(
    results_dir: Path, control: str, history: Path, region: str | None, target_text: str | None,
    baseline_n: int | None, new_baseline: bool, chart: Path | None,
) -> None:
    """Add the batch's control slide (--control) in RESULTS_DIR to its history and judge it (Westgard rules).

    The control slide is stained and scanned with every batch; its H-score is
    compared with the limits of its segment (one model): the laboratory's
    --target, or the mean and SD of the segment's first --baseline runs.
    Until those are in, the value is recorded as "collecting baseline (k/N)".
    Rejection rules: 1-3s, 2-2s, R-4s (across two consecutive runs, one
    control per batch), 4-1s, 10-x; 1-2s is a warning. A batch already in the
    history is not added again; a new model is refused without --new-baseline.
    Writes RESULTS_DIR/control.json and RESULTS_DIR/control.html.

    Exit status: 0 in control (or collecting baseline, or a 1-2s warning), 1 bad input (history unchanged),
    2 usage error, 3 out of control.
    """
    from ihc_score.errors import IhcScoreError
    from ihc_score.outputs import build_report
    from ihc_score.validation import MonitorOptions, read_control, record_control, status_line, write_control_outputs

    target = _target(target_text)
    if baseline_n is not None and baseline_n < 20:
        click.echo(f"warning: a baseline of {baseline_n} runs gives a less certain SD than the 20 Westgard et al. "
                   "advise", err=True)
    extra = [*(["--region", region] if region else []), *(["--target", target_text] if target_text else []),
             *(["--baseline", str(baseline_n)] if baseline_n else []), *(["--new-baseline"] if new_baseline else [])]
    command = _command_text(results_dir, control, history, extra)
    options = MonitorOptions(target=target, baseline_n=baseline_n, new_baseline=new_baseline)
    try:
        reading = read_control(results_dir, control, region)
        status = record_control(
            history, reading, options,
            publish=lambda s: write_control_outputs(results_dir, s, history, chart=chart, command=command),
        )
    except (IhcScoreError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    try:
        build_report(results_dir)  # the batch's report shows the control's verdict
    except IhcScoreError as err:
        click.echo(f"warning: report.html not updated ({err})", err=True)
    if status.duplicate:
        click.echo(f"note: this batch is already in {history} for {control} (added {status.run.recorded_utc}); "
                   "not added again", err=True)
    if "1-2s" in status.rules and not status.out_of_control:
        click.echo(f"warning: 1-2s: the control is beyond 2 SD of its mean (z {status.run.z:+.2f}); the batch is "
                   "accepted, watch the next runs", err=True)
    click.echo(status_line(status))
    if status.out_of_control:
        click.get_current_context().exit(EXIT_OUT_OF_CONTROL)

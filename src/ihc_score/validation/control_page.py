"""A batch's control-slide outputs: ``control.json`` (the verdict) and ``control.html`` (the Levey-Jennings page).

``control.json``'s ``out_of_control`` (true when a rejection rule fires) and
``status`` (``collecting baseline``, ``in control``, ``warning``, ``out of
control``) are what the batch's report and other programs read.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from ihc_score.fileio import atomic_write, file_sha256
from ihc_score.outputs import write_json
from ihc_score.validation.control import ControlStatus, segment_series
from ihc_score.validation.page import figure_svg, html_table, new_figure, write_page
from ihc_score.validation.westgard import REJECTION_RULES, RULES, WARNING_RULES, rejects, violations_by_run

__all__ = ["CONTROL_JSON", "CONTROL_HTML", "verdict", "status_line", "control_summary", "write_control_outputs"]

CONTROL_JSON = "control.json"
CONTROL_HTML = "control.html"

#: What each rule means for one control per batch (Westgard et al. 1981, Clin Chem 27:493).
RULE_TEXT = {
    "1-2s": "this run beyond 2 SD: warning only, the batch is accepted",
    "1-3s": "this run beyond 3 SD",
    "2-2s": "this run and the previous one beyond 2 SD on the same side",
    "R-4s": "this run beyond 2 SD on one side, the previous run beyond 2 SD on the other (with one control per batch "
            "the within-run range rule is applied across two consecutive runs)",
    "4-1s": "this run and the three before it beyond 1 SD on the same side",
    "10-x": "this run and the nine before it on the same side of the mean",
}  # fmt: skip


def _finite(value: float | None, decimals: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), decimals)


def verdict(status: ControlStatus) -> str:
    """The verdict in words.

    ``collecting baseline (k/N)``, ``in control``, ``in control (warning: 1-2s)`` or ``OUT OF CONTROL: 2-2s, ...``.
    """
    if status.limits is None:
        k, n = status.baseline_progress
        return f"collecting baseline ({k}/{n})"
    bad = rejects(status.run.rules)
    if bad:
        return f"OUT OF CONTROL: {', '.join(bad)}"
    warn = [r for r in status.run.rules if r in WARNING_RULES]
    return "in control" + (f" (warning: {', '.join(warn)})" if warn else "")


def status_line(status: ControlStatus) -> str:
    """One line: the control's H-score, its z and the :func:`verdict`."""
    run = status.run
    z = "" if run.z is None else f", z {run.z:+.2f}"
    return f"control {run.control} ({run.region}): H-score {run.h_score:.2f}{z}; {verdict(status)}"


def control_summary(status: ControlStatus, history: str | Path) -> dict[str, Any]:
    """The content of ``control.json`` (finite numbers only; no date but the batch's own)."""
    run, limits = status.run, status.limits
    k, n = status.baseline_progress
    return {
        "control": run.control,
        "region": run.region,
        "batch_id": run.batch_id,
        "started_utc": run.started_utc,
        "h_score": _finite(run.h_score),
        "pct_positive": _finite(run.pct_positive),
        "n_cells": run.n_cells,
        "z": _finite(run.z),
        "status": run.status,
        "out_of_control": status.out_of_control,
        "rules_violated": list(run.rules),
        "rejection_rules_violated": list(rejects(run.rules)),
        "warning_rules_violated": [r for r in run.rules if r in WARNING_RULES],
        "line": status_line(status),
        "limits": None if limits is None else {
            "mean": _finite(limits.mean), "sd": _finite(limits.sd), "source": limits.source,
            "baseline_runs": limits.n_runs,
        },
        "baseline": {"collected": k, "required": n},
        "segment": run.segment,
        "segment_runs": len(status.segment_runs),
        "earlier_segment_runs": status.earlier_runs,
        "model": {"id": run.model_id, "version": run.model_version, "sha256": run.model_sha256},
        "history": str(Path(history).resolve()),
        "already_in_history": status.duplicate,
        "rules_checked": list(RULES),
        "rejection_rules": list(REJECTION_RULES),
        "chart": CONTROL_HTML,
    }


def _chart_rules(status: ControlStatus) -> list[tuple[str, ...]]:
    """Rules of each run of the segment against the current limits; baseline runs are not judged."""
    if status.limits is None:
        return [() for _ in status.segment_runs]
    by_run = violations_by_run(segment_series(status))
    judged_from = status.limits.n_runs  # 0 for a target
    return [rules if i >= judged_from else () for i, rules in enumerate(by_run)]


def levey_jennings_svg(status: ControlStatus) -> str:
    """The segment's H-scores by run with the mean and +-1/2/3 SD lines; rejections red, warnings orange."""
    values = np.array([r.h_score for r in status.segment_runs])
    x = np.arange(1, len(values) + 1)
    rules = _chart_rules(status)
    fig = new_figure(8.0, 4.2)
    ax = fig.add_subplot()
    ax.plot(x, values, color="#555", lw=0.8, zorder=1)
    limits = status.limits
    if limits is not None:
        for k, style, colour in ((0, "-", "#1b6e20"), (1, ":", "#888"), (2, "--", "#e08000"), (3, "-", "#b00020")):
            for sign in (1, -1) if k else (1,):
                ax.axhline(limits.line(sign * k), ls=style, color=colour, lw=1.0, zorder=0)
                label = "mean" if k == 0 else f"{sign * k:+d} SD"
                ax.annotate(label, (1.0, limits.line(sign * k)), xycoords=("axes fraction", "data"),
                            xytext=(3, 0), textcoords="offset points", va="center", fontsize=8, color=colour)
    n_base = 0 if limits is None else limits.n_runs
    if limits is None:
        n_base = len(values)
    base = x <= n_base
    ax.scatter(x[base], values[base], facecolors="white", edgecolors="#333", s=22, zorder=2, label="baseline run")
    ax.scatter(x[~base], values[~base], color="#333", s=22, zorder=2, label="judged run")
    for i, run_rules in enumerate(rules):
        if not run_rules:
            continue
        colour = "#b00020" if rejects(run_rules) else "#e08000"
        ax.scatter([x[i]], [values[i]], color=colour, s=60, marker="D", zorder=3)
        ax.annotate(",".join(run_rules), (x[i], values[i]), xytext=(0, 7), textcoords="offset points",
                    ha="center", fontsize=7, color=colour)
    ax.scatter([x[-1]], [values[-1]], facecolors="none", edgecolors="#0050b0", s=150, lw=1.5, zorder=4,
               label="this batch")
    ax.set_xlabel("run of this segment (batch order)")
    ax.set_ylabel("control H-score")
    ax.set_title(f"{status.run.control} ({status.run.region})", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    return figure_svg(fig)


def _summary_table(status: ControlStatus, history: str | Path) -> str:
    run, limits = status.run, status.limits
    k, n = status.baseline_progress
    rows = [
        ("verdict", status_line(status)),
        ("batch", run.batch_id),
        ("H-score / % positive / cells", f"{run.h_score:.2f} / {run.pct_positive} / {run.n_cells}"),
        ("limits", "none yet" if limits is None else f"mean {limits.mean:.2f}, SD {limits.sd:.2f} ({limits.source}"
         + (f" of the first {limits.n_runs} runs)" if limits.source == "baseline" else ")")),
        ("baseline", f"{k}/{n} runs"),
        ("model", f"{run.model_id} {run.model_version} sha256 {run.model_sha256}"),
        ("segment", f"{run.segment} ({len(status.segment_runs)} runs; {status.earlier_runs} runs in earlier segments, "
                    "not shown)"),
        ("history", str(Path(history).resolve())),
    ]
    if status.duplicate:
        rows.append(("note", f"this batch was already in the history (added {run.recorded_utc}); not added again"))
    return html_table(("item", "value"), rows)


def _runs_table(status: ControlStatus) -> str:
    z = segment_series(status)
    rules = _chart_rules(status)
    rows, classes = [], []
    for i, (r, zi, rr) in enumerate(zip(status.segment_runs, z, rules)):
        rows.append((i + 1, r.started_utc, r.results_dir, f"{r.h_score:.2f}", "" if np.isnan(zi) else f"{zi:+.2f}",
                     ", ".join(rr), r.status))
        classes.append("fail" if rejects(rr) else "")
    header = ("run", "started (UTC)", "results folder", "H-score", "z", "rules (these limits)", "status when added")
    return html_table(header, rows, classes=classes)


def _page_sections(status: ControlStatus, history: str | Path) -> list[tuple[str, str]]:
    verdict = html.escape(status_line(status))
    cls = "fail" if status.out_of_control else "pass"
    rules = html_table(("rule", "meaning", "kind"),
                       [(r, RULE_TEXT[r], "warning" if r in WARNING_RULES else "rejection") for r in RULES])
    note = ('<p class="note">Westgard, Barry, Hunt, Groth (1981) Clin Chem 27:493. Every rule is checked on every run '
            "(1-2s is not used as a gate); the baseline runs are not judged but count as the history of later runs. "
            "Limits: the laboratory's target (--target) or the mean and SD of the segment's first runs.</p>")
    return [
        ("Verdict", f'<p class="{cls}">{verdict}</p>' + _summary_table(status, history)),
        ("Levey-Jennings chart", f'<div class="plots">{levey_jennings_svg(status)}</div>'),
        ("Runs of this segment", _runs_table(status)),
        ("Rules", rules + note),
    ]


def write_control_outputs(
    results_dir: str | Path, status: ControlStatus, history: str | Path, *, chart: str | Path | None = None,
    command: str = "",
) -> tuple[Path, Path]:
    """Write ``control.json`` and ``control.html`` into the results folder (and the page to ``chart`` too).

    Returns
    -------
    (Path, Path)
        The JSON and HTML files.
    """
    folder = Path(results_dir)
    json_path, html_path = folder / CONTROL_JSON, folder / CONTROL_HTML
    write_json(json_path, control_summary(status, history))
    table = folder / "metastases.csv"
    inputs = {
        "results folder": str(folder.resolve()),
        "metastases.csv sha256": file_sha256(table) if table.is_file() else "",
        "history": str(Path(history).resolve()),
        "command": command,
    }
    write_page(html_path, f"Control slide {status.run.control}: {verdict(status)}",
               _page_sections(status, history), inputs=inputs)
    if chart is not None:
        atomic_write(Path(chart), html_path.read_bytes())
    return json_path, html_path

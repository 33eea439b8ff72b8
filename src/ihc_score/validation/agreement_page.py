"""``agreement.html``: scatter and Bland-Altman plots, the confusion table and the statistics as text.

The page is drawn from the report dictionary alone (what ``agreement.json``
holds), so the page and the JSON cannot disagree.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ihc_score.validation.agreement_pairs import METRICS
from ihc_score.validation.page import figure_svg, html_table, new_figure, write_page

__all__ = ["write_agreement_page"]

_LABELS = {"h_score": ("H-score", 300.0), "pct_positive": ("% positive", 100.0)}


def _num(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _ci(est: dict[str, Any] | None, spec: str = ".3f") -> tuple[str, str]:
    if not est:
        return "n/a", ""
    low, high = est.get("ci_low"), est.get("ci_high")
    interval = "" if low is None or high is None else f"{_num(low, spec)} to {_num(high, spec)}"
    return _num(est.get("value"), spec), interval


def _points(report: dict[str, Any], metric: str) -> tuple[list[float], list[float]]:
    pairs = [p for p in report["pairs"] if p["tool"][metric] is not None and p["reference"][metric] is not None]
    return [p["reference"][metric] for p in pairs], [p["tool"][metric] for p in pairs]


def _scatter(report: dict[str, Any], metric: str) -> str:
    label, top = _LABELS[metric]
    ref, tool = _points(report, metric)
    fig = new_figure(4.6, 4.2)
    ax = fig.add_subplot()
    ax.plot([0, top], [0, top], color="0.5", linestyle="--", linewidth=1, label="identity (tool = reference)")
    ax.scatter(ref, tool, s=16, alpha=0.75, color="#1f5fa8", label=f"items (n = {len(ref)})")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel=f"reference {label}", ylabel=f"tool {label}",
           title=f"{label}: tool against reference")
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize="small")
    return figure_svg(fig)


def _bland_altman_plot(report: dict[str, Any], metric: str, block: dict[str, Any]) -> str:
    label, top = _LABELS[metric]
    ref, tool = _points(report, metric)
    fig = new_figure(4.6, 4.2)
    ax = fig.add_subplot()
    diffs = [t - r for t, r in zip(tool, ref)]
    ax.scatter([(t + r) / 2 for t, r in zip(tool, ref)], diffs, s=16, alpha=0.75, color="#1f5fa8")
    ax.axhline(0, color="0.7", linewidth=1)
    ba = block.get("bland_altman") or {}
    lines = [(name, (ba.get(name) or {}).get("value")) for name in ("bias", "loa_low", "loa_high")]
    for name, value in lines:
        if value is not None:
            ax.axhline(value, color="#b00020", linestyle="-" if name == "bias" else "--", linewidth=1)
            ax.annotate(f"{'bias' if name == 'bias' else 'LoA'} {value:+.1f}", (0.98 * top, value), ha="right",
                        va="bottom", fontsize="small", color="#b00020")
    span = [0.0, *diffs, *(v for _, v in lines if v is not None)]
    pad = 0.12 * (max(span) - min(span) or 1.0)  # room for the labels above the lines
    ax.set(ylim=(min(span) - pad, max(span) + pad), xlim=(0, top), xlabel=f"mean of tool and reference {label}",
           ylabel=f"tool - reference {label}",
           title=f"{label}: Bland-Altman")
    return figure_svg(fig)


def _numeric_rows(metric: str, block: dict[str, Any], who: str, *, short: bool = False) -> list[tuple[str, ...]]:
    if "note" in block:
        return [(metric, who, str(block["n"]), "note", block["note"], "")]
    ba = block["bland_altman"]
    rows = [
        ("ICC(A,1)", *_ci(block["icc_a1"])), ("Lin's CCC", *_ci(block["ccc"])),
        ("bias (tool - reference)", *_ci(ba["bias"], ".2f")),
    ]
    if not short:
        rows += [
            ("SD of differences", _num(ba["sd"], ".2f"), ""),
            ("lower limit of agreement", *_ci(ba["loa_low"], ".2f")),
            ("upper limit of agreement", *_ci(ba["loa_high"], ".2f")),
            ("Pearson r", _num(block["pearson"]["r"]), f"p = {_num(block['pearson']['p'], '.2g')}"),
            ("Spearman rho", _num(block["spearman"]["r"]), f"p = {_num(block['spearman']['p'], '.2g')}"),
        ]
    return [(metric, who, str(block["n"]), *row) for row in rows]


def _spread_table(block: dict[str, Any], statistic: str) -> str:
    spread = block.get("raters") or {}
    if not spread or "note" in spread:
        return f'<p class="note">Raters among themselves: {html.escape(spread.get("note", "n/a"))}</p>'
    among = spread["icc_a1"] if statistic == "icc_a1" else spread["fleiss_kappa"]
    rows = [(v["rater"], str(v["n"]), _num(v["rater_vs_others"]), _num(v["tool_vs_others"]))
            for v in spread["leave_one_out"]]
    name = "ICC(A,1)" if statistic == "icc_a1" else "Cohen's kappa"
    value, interval = _ci(among)
    interval = f" (95 % CI {interval})" if interval else ""
    return (
        f"<p>Raters among themselves ({spread['k']} raters, {spread['n']} items): "
        f"{'ICC(A,1)' if statistic == 'icc_a1' else 'Fleiss kappa'} {value}{interval}. "
        f"The tool is <b>{html.escape(str(spread['tool_position']))}</b> the raters' spread "
        f"(tool {_num(spread['tool_mean'])}, raters {_num(spread['rater_range'][0])} to "
        f"{_num(spread['rater_range'][1])}).</p>"
        + html_table(("left-out rater", "items", f"rater's {name} vs the others", f"tool's {name} vs the same"), rows)
        + f'<p class="note">Method: {html.escape(spread["method"])}.</p>'
    )


def _numeric_section(report: dict[str, Any], metric: str, block: dict[str, Any]) -> str:
    parts = [f'<div class="plots">{_scatter(report, metric)}{_bland_altman_plot(report, metric, block)}</div>']
    rows = _numeric_rows(metric, block, block["against"])
    for rater, sub in (block.get("per_rater") or {}).items():
        rows += _numeric_rows(metric, sub, f"rater {rater}", short=True)
    parts.append(html_table(("metric", "against", "n", "statistic", "value", "95 % CI"), rows))
    if "raters" in block:
        parts.append(_spread_table(block, "icc_a1"))
    return "\n".join(parts)


def _call_section(block: dict[str, Any]) -> str:
    conf = block["confusion"]
    rows = [(f"reference {label}", *map(str, counts)) for label, counts in zip(conf["labels"], conf["table"])]
    parts = [html_table(("", *(f"tool {label}" for label in conf["labels"])), rows)]
    if "note" in block:
        parts.append(f'<p class="note">n = {block["n"]}: {html.escape(block["note"])}</p>')
    else:
        value, interval = _ci(block["kappa"])
        parts.append(f"<p>Cohen's kappa (n = {block['n']}, against {html.escape(block['against'])}): {value} "
                     f"(95 % CI {interval or 'n/a'})</p>")
    per = [(r, str(b["n"]), *_ci(b.get("kappa"))) for r, b in (block.get("per_rater") or {}).items()]
    if per:
        parts.append(html_table(("rater", "n", "tool's Cohen's kappa", "95 % CI"), per))
        parts.append(f"<p>Items whose raters tie for the majority call (left out of the kappa against the "
                     f"majority): {block.get('no_majority', 0)}</p>")
    if "raters" in block:
        parts.append(_spread_table(block, "cohen_kappa"))
    return "\n".join(parts)


def _unpaired_section(report: dict[str, Any]) -> str:
    parts = []
    for title, rows in (("Reference rows without a tool row", report["unmatched"]["reference"]),
                        ("Tool rows without a reference row", report["unmatched"]["tool"]),
                        ("Paired items not scored by the tool", report["not_scored"])):
        if not rows:
            parts.append(f"<p>{title}: none.</p>")
            continue
        header = list(rows[0])
        body = [[", ".join(r[h]) if isinstance(r[h], list) else r[h] for h in header] for r in rows]
        parts.append(f"<p>{title}: {len(rows)}</p>" + html_table(header, body))
    return "\n".join(parts)


def write_agreement_page(path: str | Path, report: dict[str, Any], lines: list[str] | None = None) -> None:
    """Write ``agreement.html`` from an agreement report (see ``agreement_report``)."""
    inputs = report["inputs"]
    model = inputs["results"]["model"]
    record = {
        "reference file": inputs["reference"]["file"], "reference sha256": inputs["reference"]["sha256"],
        "results folder": inputs["results"]["folder"],
        "model": " ".join(f"{k} {model[k]}" for k in ("id", "version", "sha256") if k in model) or "unknown",
    }
    intro = (f"<p>{report['n_paired']} paired {html.escape(report['level'])} item(s); raters: "
             f"{html.escape(', '.join(report['raters']) or 'one reference')}. Differences are tool minus reference; "
             "intervals are 95 % confidence intervals.</p>")
    if lines:
        intro += "<pre>" + html.escape("\n".join(lines)) + "</pre>"
    sections = [("Summary", intro)]
    for metric in METRICS:
        block = report["metrics"].get(metric)
        if block is None:
            continue
        if metric == "call":
            sections.append(("Calls", _call_section(block)))
        else:
            sections.append((_LABELS[metric][0], _numeric_section(report, metric, block)))
    sections.append(("Not paired", _unpaired_section(report)))
    write_page(path, "ihc-score agreement with pathologists", sections, inputs=record)

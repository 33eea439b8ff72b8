"""The agreement of a results folder with a reference file: ``agreement.json``, ``agreement.html`` and a summary.

With several raters the tool is compared with the raters' mean score
(calls: the majority call; items whose raters tie are left out and counted)
and with each rater, and the raters with each other
(:mod:`ihc_score.validation.agreement_raters`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ihc_score.fileio import file_sha256
from ihc_score.outputs import write_json
from ihc_score.validation.agreement import call_agreement, finite, numeric_agreement
from ihc_score.validation.agreement_pairs import METRICS, NUMERIC_METRICS, Key, Paired, pair, read_reference, read_tool
from ihc_score.validation.agreement_raters import call_spread, majority, numeric_spread
from ihc_score.validation.results_dir import model_of_results

__all__ = ["AGREEMENT_JSON", "AGREEMENT_HTML", "agreement_report", "write_agreement", "summary_lines"]

AGREEMENT_JSON = "agreement.json"
AGREEMENT_HTML = "agreement.html"
_CONVENTIONS = {
    "difference": "tool minus reference",
    "intervals": "two-sided 95 % confidence intervals",
    "icc_a1": "ICC(2,1) of Shrout & Fleiss 1979 = ICC(A,1) of McGraw & Wong 1996 (pingouin), tool and reference as "
    "two raters",
    "ccc": "Lin 1989/2000, CI by Fisher z transform",
    "bland_altman": "Bland & Altman 1986/1999; CI of a limit +- t(n-1) sqrt(3 s^2 / n)",
    "kappa": "Cohen's unweighted kappa (statsmodels), confusion table rows reference, columns tool",
    "several_raters": "reference = the raters' mean score and majority call (ties left out)",
}


def _consensus(p: Paired, key: Key, metric: str) -> Any:
    """The reference value of an item: the rater's value, the raters' mean score or their majority call."""
    given = [v[metric] for v in p.ratings[key].values()]
    if metric == "call":
        calls = [c for c in given if c is not None]
        return majority(calls) if calls else None
    numbers = [x for x in given if not math.isnan(x)]
    return float(np.mean(numbers)) if numbers else math.nan


def _has(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _numeric_block(p: Paired, metric: str) -> dict[str, Any]:
    items = [k for k in p.items if _has(p.tool[k][metric]) and _has(_consensus(p, k, metric))]
    tool = [p.tool[k][metric] for k in items]
    block = numeric_agreement(tool, [_consensus(p, k, metric) for k in items]).to_json()
    raters = p.reference.raters
    block["against"] = "rater mean" if p.reference.several_raters else "reference"
    if not p.reference.several_raters:
        return block
    per = {}
    for r in raters:
        got = [k for k in p.items if _has(p.tool[k][metric]) and _has(p.ratings[k].get(r, {}).get(metric))]
        per[r] = numeric_agreement([p.tool[k][metric] for k in got], [p.ratings[k][r][metric] for k in got]).to_json()
    block["per_rater"] = per
    full = [k for k in items if all(_has(p.ratings[k].get(r, {}).get(metric)) for r in raters)]
    matrix = [[p.ratings[k][r][metric] for r in raters] for k in full]
    block["raters"] = numeric_spread([p.tool[k][metric] for k in full], matrix, raters).to_json()
    return block


def _call_block(p: Paired) -> dict[str, Any]:
    scored = [k for k in p.items if _has(p.tool[k]["call"])]
    items = [k for k in scored if _has(_consensus(p, k, "call"))]
    block = call_agreement([p.tool[k]["call"] for k in items], [_consensus(p, k, "call") for k in items]).to_json()
    raters = p.reference.raters
    block["against"] = "rater majority" if p.reference.several_raters else "reference"
    if not p.reference.several_raters:
        return block
    block["no_majority"] = sum(1 for k in scored if any(_has(v["call"]) for v in p.ratings[k].values())) - len(items)
    per = {}
    for r in raters:
        got = [k for k in scored if _has(p.ratings[k].get(r, {}).get("call"))]
        per[r] = call_agreement([p.tool[k]["call"] for k in got], [p.ratings[k][r]["call"] for k in got]).to_json()
    block["per_rater"] = per
    full = [k for k in scored if all(_has(p.ratings[k].get(r, {}).get("call")) for r in raters)]
    matrix = [[p.ratings[k][r]["call"] for r in raters] for k in full]
    block["raters"] = call_spread([p.tool[k]["call"] for k in full], matrix, raters).to_json()
    return block


def _pairs(p: Paired) -> list[dict[str, Any]]:
    out = []
    for key in p.items:
        tool = {m: p.tool[key][m] for m in p.reference.metrics}
        ref = {m: _consensus(p, key, m) for m in p.reference.metrics}
        out.append({
            "item": p.describe(key), "n_raters": len(p.ratings[key]),
            "tool": {m: v if m == "call" else finite(v) for m, v in tool.items()},
            "reference": {m: v if m == "call" else finite(v) for m, v in ref.items()},
        })  # fmt: skip
    return out


def agreement_report(results_dir: str | Path, reference_path: str | Path) -> dict[str, Any]:
    """Everything ``agreement.json`` holds: inputs, per-metric statistics, the pairs and what was not paired.

    Parameters
    ----------
    results_dir : path
        A folder written by ``ihc-score score``.
    reference_path : path
        The reference CSV (see :mod:`ihc_score.validation.agreement_pairs`).

    Raises
    ------
    ValidationInputError
        The reference file or the results folder's table is unusable.
    """
    reference = read_reference(reference_path)
    table, tool = read_tool(results_dir, reference.level)
    p = pair(reference, tool)
    metrics: dict[str, Any] = {m: _numeric_block(p, m) for m in reference.metrics if m in NUMERIC_METRICS}
    if "call" in reference.metrics:
        metrics["call"] = _call_block(p)
    return {
        "level": reference.level,
        "inputs": {
            "reference": {"file": reference.path.name, "sha256": file_sha256(reference.path)},
            "results": {"folder": str(results_dir), "table": table.name, "model": model_of_results(results_dir)},
        },
        "raters": [r for r in reference.raters if r],
        "conventions": _CONVENTIONS,
        "metrics": metrics,
        "n_paired": len(p.items),
        "pairs": _pairs(p),
        "unmatched": {"reference": list(p.unmatched_reference), "tool": list(p.unmatched_tool)},
        "not_scored": list(p.not_scored),
    }


def write_agreement(results_dir: str | Path, reference_path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write ``agreement.json`` and ``agreement.html`` into ``out_dir`` (created) and return the report.

    Raises
    ------
    ValidationInputError
        Bad inputs (see :func:`agreement_report`).
    OutputError
        ``out_dir`` cannot be written.
    """
    from ihc_score.validation.agreement_page import write_agreement_page

    report = agreement_report(results_dir, reference_path)
    out = Path(out_dir)  # created by the first write
    write_json(out / AGREEMENT_JSON, report)
    write_agreement_page(out / AGREEMENT_HTML, report, summary_lines(report))
    return report


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _numeric_line(metric: str, block: dict[str, Any]) -> str:
    if "note" in block:
        return f"{metric}: n={block['n']}, {block['note']}"
    icc, ba = block["icc_a1"], block["bland_altman"]
    line = (
        f"{metric}: n={block['n']}, ICC(A,1) {_fmt(icc['value'])} [{_fmt(icc['ci_low'])}, {_fmt(icc['ci_high'])}], "
        f"CCC {_fmt(block['ccc']['value'])}, bias {_fmt(ba['bias']['value'], '+.1f')} "
        f"[LoA {_fmt(ba['loa_low']['value'], '+.1f')}, {_fmt(ba['loa_high']['value'], '+.1f')}]"
    )
    spread = block.get("raters")
    if spread and "note" not in spread:
        among = spread["icc_a1"]["value"]
        position = spread["tool_position"] or "n/a"
        line += f"; raters among themselves ICC(A,1) {_fmt(among)}, tool {position} their spread"
    return line


def _call_line(block: dict[str, Any]) -> str:
    if "note" in block:
        return f"call: n={block['n']}, {block['note']}"
    kappa = block["kappa"]
    line = f"call: n={block['n']}, kappa {_fmt(kappa['value'])} [{_fmt(kappa['ci_low'])}, {_fmt(kappa['ci_high'])}]"
    spread = block.get("raters")
    if spread and "note" not in spread:
        line += (f"; raters among themselves Fleiss kappa {_fmt(spread['fleiss_kappa']['value'])}, "
                 f"tool {spread['tool_position'] or 'n/a'} their spread")
    return line


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One line per metric (n, ICC(A,1) [CI], CCC, bias [LoA]; kappa [CI]) and one for what was not paired."""
    blocks = [(m, report["metrics"][m]) for m in METRICS if m in report["metrics"]]
    lines = [_call_line(b) if m == "call" else _numeric_line(m, b) for m, b in blocks]
    un = report["unmatched"]
    lines.append(
        f"unmatched: {len(un['reference'])} reference row(s) without a tool row, {len(un['tool'])} tool row(s) "
        f"without a reference; not scored by the tool: {len(report['not_scored'])} item(s)"
    )
    return lines

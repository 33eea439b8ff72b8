"""The record of an outcome calibration: its JSON document, the model's calibration entry and its HTML page."""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ihc_score.validation.outcomes import OutcomeData
from ihc_score.validation.outcomes_binary import BinaryCalibration
from ihc_score.validation.outcomes_survival import SurvivalCalibration
from ihc_score.validation.page import figure_svg, html_table, new_figure, write_page

__all__ = ["calibration_document", "outcome_record", "write_calibration_page", "json_ready"]

_CURVES = ("roc_fpr", "roc_tpr", "roc_thresholds", "curves", "profile_thresholds", "profile_chi2")


def json_ready(value: Any) -> Any:
    """``value`` with tuples as lists, numpy scalars as Python numbers and NaN or infinities as None."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def calibration_document(
    data: OutcomeData,
    result: BinaryCalibration | SurvivalCalibration,
    *,
    metric: str,
    previous_cutoff: float,
    date: str,
    inputs: dict[str, Any],
    unscored: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything the calibration found, JSON-ready: statistics, curves, the cases used and those left out.

    Parameters
    ----------
    data : OutcomeData
        The analysed cases.
    result : BinaryCalibration or SurvivalCalibration
    metric : str
        The model's ``positivity.metric``.
    previous_cutoff : float
        The cut-off of the model calibrated.
    date : str
        ISO date (UTC) of the calibration.
    inputs : dict
        Files and their sha256, models in and out, options.
    unscored : sequence of str
        Cases of the results whose metastases all lack a score.
    """
    binary = isinstance(result, BinaryCalibration)
    stats = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name not in _CURVES}
    doc: dict[str, Any] = {
        "kind": "outcome",
        "endpoint": data.endpoint,
        "date": date,
        "metric": metric,
        "previous_cutoff": previous_cutoff,
        "cutoff": result.cutoff,
        "cutoff_ci": result.cutoff_ci,
        "method": result.criterion if binary else result.method,
        "n_cases": result.n,
        "n_events": result.n_events,
        "statistics": stats,
        "cases": _case_rows(data, result.cutoff),
        "left_out": {
            "outcome_without_score": data.no_score,
            "score_without_outcome": data.no_outcome,
            "results_cases_without_scored_metastasis": tuple(sorted(unscored)),
        },
        "inputs": inputs,
    }
    if binary:
        doc["auc"], doc["auc_ci"], doc["auc_ci_method"] = result.auc, result.auc_ci, "DeLong"
        doc["roc"] = {"fpr": result.roc_fpr, "tpr": result.roc_tpr, "threshold": result.roc_thresholds}
    else:
        doc["c_index"], doc["c_index_ci"], doc["c_index_ci_method"] = result.c_index, result.c_index_ci, "bootstrap"
        doc["kaplan_meier"] = [dataclasses.asdict(c) for c in result.curves]
        doc["logrank_profile"] = {"threshold": result.profile_thresholds, "chi2": result.profile_chi2}
    return json_ready(doc)


def _case_rows(data: OutcomeData, cutoff: float) -> list[dict[str, Any]]:
    rows = []
    for i, case in enumerate(data.cases):
        row: dict[str, Any] = {"case": case, "marker": data.marker[i]}
        if data.endpoint == "binary":
            row["outcome"] = data.outcome[i]
        else:
            row["time"], row["event"] = data.time[i], data.event[i]
        row["call"] = "positive" if data.marker[i] >= cutoff else "negative"
        rows.append(row)
    return rows


def _rounded(value: Any, decimals: int) -> Any:
    if isinstance(value, list):
        return [_rounded(v, decimals) for v in value]
    return round(value, decimals) if isinstance(value, float) else value


def outcome_record(document: dict[str, Any]) -> dict[str, Any]:
    """The entry for the new model's ``calibrations``: kind ``outcome``, inputs' sha256, counts, figures, date."""
    inputs = document["inputs"]
    record: dict[str, Any] = {
        "kind": "outcome",
        "date": document["date"],
        "endpoint": document["endpoint"],
        "method": document["method"],
        "metric": document["metric"],
        "outcomes_file": Path(inputs["outcomes"]).name,
        "outcomes_sha256": inputs["outcomes_sha256"],
        "results_model_sha256": inputs["results_model"].get("sha256"),
        "n_cases": document["n_cases"],
        "n_events": document["n_events"],
        "previous_cutoff": document["previous_cutoff"],
        "cutoff": document["cutoff"],
        "cutoff_ci": _rounded(document["cutoff_ci"], 2),
        "cutoff_ci_method": "percentile bootstrap" if document["cutoff_ci"][0] is not None else None,
        "resamples": document["statistics"]["resamples"],
        "seed": document["statistics"]["seed"],
        "report": inputs.get("report"),
    }
    stats = document["statistics"]
    if document["endpoint"] == "binary":
        record.update({
            "auc": _rounded(document["auc"], 4), "auc_ci": _rounded(document["auc_ci"], 4), "auc_ci_method": "DeLong",
            "sensitivity": _rounded(stats["sensitivity"], 4), "specificity": _rounded(stats["specificity"], 4),
            "rule_auc_corrected": _rounded(stats["rule_auc_corrected"], 4),
        })
    else:
        record.update({
            "c_index": _rounded(document["c_index"], 4),
            "c_index_ci": _rounded(document["c_index_ci"], 4),
            "c_index_ci_method": "percentile bootstrap",
            "hazard_ratio": _rounded(stats["hazard_ratio"], 4),
            "hazard_ratio_ci": _rounded(stats["hazard_ratio_ci"], 4),
            "p_logrank": stats["p_logrank"], "p_lausen_schumacher": stats["p_lausen_schumacher"],
        })
    return json_ready(record)


def _interval(value: Any, ci: Any, fmt: str = ".3f") -> str:
    if value is None:
        return "n/a"
    text = f"{value:{fmt}}"
    if ci and ci[0] is not None:
        text += f" [{ci[0]:{fmt}}, {ci[1]:{fmt}}]"
    return text


def _p(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def _summary_rows(doc: dict[str, Any]) -> list[tuple[str, str]]:
    s, metric = doc["statistics"], doc["metric"]
    rows = [
        ("cases analysed", str(doc["n_cases"])),
        ("events", str(doc["n_events"])),
        (f"cut-off ({metric}), 95 % CI", _interval(doc["cutoff"], doc["cutoff_ci"], ".1f")),
        ("previous cut-off", f"{doc['previous_cutoff']:g}"),
        ("method", str(doc["method"])),
    ]
    if doc["endpoint"] == "binary":
        rows += [
            ("AUC, 95 % CI (DeLong)", _interval(doc["auc"], doc["auc_ci"])),
            ("sensitivity, 95 % CI (Wilson)", _interval(s["sensitivity"], s["sensitivity_ci"])),
            ("specificity, 95 % CI (Wilson)", _interval(s["specificity"], s["specificity_ci"])),
            ("TP / FN / TN / FP", f"{s['true_positives']} / {s['false_negatives']} / {s['true_negatives']} / "
                                  f"{s['false_positives']}"),
            ("rule AUC (balanced accuracy): apparent", _interval(s["rule_auc_apparent"], None)),
            ("rule AUC: optimism-corrected (Harrell)", _interval(s["rule_auc_corrected"], None)),
        ]
    else:
        rows += [
            ("C-index, 95 % CI (bootstrap)", _interval(doc["c_index"], doc["c_index_ci"])),
            ("hazard ratio positive vs negative, 95 % CI (Cox)",
             _interval(s["hazard_ratio"], s["hazard_ratio_ci"], ".2f")),
            ("log-rank p at the cut-off (naive)", _p(s["p_logrank"])),
            ("p adjusted for the search: Lausen-Schumacher", _p(s["p_lausen_schumacher"])),
            ("p adjusted for the search: permutation", _p(s["p_permutation"])),
            ("positive: cases / events", f"{s['n_positive']} / {s['events_positive']}"),
            ("negative: cases / events", f"{s['n_negative']} / {s['events_negative']}"),
        ]
    return rows + [(f"bootstrap resamples (seed {s['seed']})", str(s["resamples"]))]


def _roc_svg(doc: dict[str, Any]) -> str:
    s = doc["statistics"]
    fig = new_figure(4.6, 4.4)
    ax = fig.add_subplot()
    ax.plot([0.0, *doc["roc"]["fpr"]], [0.0, *doc["roc"]["tpr"]], drawstyle="default", color="#1f4e79")
    ax.plot([0, 1], [0, 1], color="#999", linestyle=":", linewidth=1)
    ax.plot([1 - s["specificity"]], [s["sensitivity"]], "o", color="#b00020")
    ax.annotate(f"cut-off {doc['cutoff']:g}", (1 - s["specificity"], s["sensitivity"]), xytext=(8, -14),
                textcoords="offset points", color="#b00020")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.02),
           title=f"ROC: AUC {doc['auc']:.3f} [{doc['auc_ci'][0]:.3f}, {doc['auc_ci'][1]:.3f}]")
    return figure_svg(fig)


def _km_svg(doc: dict[str, Any]) -> str:
    s = doc["statistics"]
    fig = new_figure(5.6, 4.2)
    ax = fig.add_subplot()
    for curve, colour in zip(doc["kaplan_meier"], ("#1f4e79", "#b00020")):
        label = f"{curve['group']} (n={curve['at_risk'][0]})"
        ax.step(curve["time"], curve["survival"], where="post", color=colour, label=label)
        ax.fill_between(curve["time"], curve["low"], curve["high"], step="post", color=colour, alpha=0.12)
    naive = " (naive)" if doc["method"] != "fixed" else ""
    ax.set(xlabel="time", ylabel="event-free proportion", ylim=(0, 1.02),
           title=f"cut-off {doc['cutoff']:g}: log-rank p {_p(s['p_logrank'])}{naive}, HR {s['hazard_ratio']:.2f}")
    ax.legend(loc="best")
    return figure_svg(fig)


def _profile_svg(doc: dict[str, Any]) -> str:
    profile = doc["logrank_profile"]
    fig = new_figure(4.6, 3.6)
    ax = fig.add_subplot()
    ax.plot(profile["threshold"], profile["chi2"], color="#1f4e79")
    ax.axvline(doc["cutoff"], color="#b00020", linestyle="--")
    ax.set(xlabel=f"cut-off ({doc['metric']})", ylabel="log-rank chi-square", title="cut-offs searched")
    return figure_svg(fig)


_METHODS = {
    "binary": (
        "Each case's marker is the largest score of its scored metastases (case rule any_positive). ROC curve and AUC "
        "by scikit-learn, AUC interval by DeLong's method. The cut-off is placed between observed values; its "
        "interval is the percentile interval of the cut-off re-chosen in stratified bootstrap resamples. Sensitivity "
        "and specificity intervals are Wilson score intervals. The AUC of the continuous marker has no fitted "
        "parameter; the optimism reported is that of the dichotomised rule (its balanced accuracy, the AUC of a "
        "two-level rule) with the cut-off re-chosen in each resample (Harrell's bootstrap)."
    ),
    "time_to_event": (
        "Each case's marker is the largest score of its scored metastases (case rule any_positive). The cut-off "
        "maximises the log-rank statistic over cut-offs leaving 10-90 % of cases negative; the naive log-rank p is "
        "optimistic, the Lausen-Schumacher (1992) and permutation p-values account for the search, and the hazard "
        "ratio at a selected cut-off is optimistic too. Kaplan-Meier curves, log-rank test, Cox hazard ratio and "
        "Harrell's C-index by lifelines; C-index and cut-off intervals by the percentile bootstrap of cases."
    ),
}
_BORDERLINE = (
    " Scored with the new model, a metastasis within the model's positivity.borderline of the cut-off (or with too "
    "few cells) is called indeterminate; here every case is counted positive or negative by its marker alone."
)


def write_calibration_page(path: str | Path, document: dict[str, Any]) -> None:
    """Write the calibration's HTML page: the figures, the plot (ROC or Kaplan-Meier), the cases left out."""
    binary = document["endpoint"] == "binary"
    plots = [_roc_svg(document)] if binary else [_km_svg(document), _profile_svg(document)]
    left_rows = [(what.replace("_", " "), len(cases), ", ".join(cases) or "-")
                 for what, cases in document["left_out"].items()]
    notes = "".join(f'<p class="fail">{html.escape(w)}</p>' for w in document["statistics"]["warnings"])
    columns = [k for k in (document["cases"] or [{}])[0] if k not in ("case", "marker")]
    case_rows = [[r["case"], f"{r['marker']:g}", *(r[k] for k in columns)] for r in document["cases"]]
    model_out = document["inputs"].get("model_out", {})
    new_model = html.escape(f"New model: {model_out.get('path')} (id {model_out.get('id')})")
    new_model = f"<p>{new_model}</p>"
    inputs = document["inputs"]
    record = {k: str(v) for k, v in inputs.items() if not isinstance(v, dict)}
    record |= {f"{k} {kk}": str(vv) for k, v in inputs.items() if isinstance(v, dict) for kk, vv in v.items()}
    write_page(
        path,
        f"Outcome calibration of {inputs['model_in']['id']}: cut-off {document['cutoff']:g}",
        [
            ("Result", notes + html_table(("figure", "value"), _summary_rows(document)) + new_model),
            ("Plots", f'<div class="plots">{"".join(plots)}</div>'),
            ("Cases left out", html_table(("why", "cases", "which"), left_rows)),
            ("Method", f'<p class="note">{html.escape(_METHODS[document["endpoint"]] + _BORDERLINE)}</p>'),
            ("Cases analysed", html_table(["case", document["metric"], *columns], case_rows)),
        ],
        inputs=record,
    )

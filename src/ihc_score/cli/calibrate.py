"""``ihc-score calibrate``: a department's own cut-off of the marker, set on its own cases' outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ihc_score.cli._group import main

if TYPE_CHECKING:
    from ihc_score.model import Model
    from ihc_score.validation import OutcomeData

__all__ = ["calibrate_command"]

#: Cases named on the console before "..." (the JSON lists them all).
_SHOWN = 20


@main.command("calibrate")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("outcomes", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The new model file (JSON); never overwritten.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The model RESULTS_DIR was scored with (default: the packaged S100A9 model).")
@click.option("--id", "new_id", help="Id of the new model [default: the model's id + '-calibrated-' + the date].")
@click.option("--version", "new_version", help="Version of the new model [default: the model's + '+cal.' + the date].")
@click.option("--sensitivity", type=click.FloatRange(0.0, 1.0, min_open=True),
              help="Binary outcome: the cut-off with the best specificity whose sensitivity is at least this.")
@click.option("--specificity", type=click.FloatRange(0.0, 1.0, min_open=True),
              help="Binary outcome: the cut-off with the best sensitivity whose specificity is at least this.")
@click.option("--keep-cutoff", is_flag=True, help="Appraise the model's current cut-off instead of choosing one.")
@click.option("--resamples", type=click.IntRange(1000, 100_000), default=2000, show_default=True,
              help="Bootstrap resamples (and permutations) of every interval.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap and the permutations.")
def calibrate_command(
    results_dir: Path, outcomes: Path, out_path: Path, model_path: Path | None, new_id: str | None,
    new_version: str | None, sensitivity: float | None, specificity: float | None, keep_cutoff: bool,
    resamples: int, seed: int,
) -> None:
    """Write a model with the cut-off set on OUTCOMES (a CSV file of case outcomes) for the cases scored in
    RESULTS_DIR.

    OUTCOMES has a column ``case`` and either ``outcome`` (1 = the event, e.g.
    no response to whole-brain radiotherapy; 0 = none) or ``time`` and
    ``event`` (time to e.g. intracranial progression; 1 = event, 0 =
    censored). A case's marker is the largest score (the model's metric) of
    its scored metastases, since a case is positive when any metastasis is.

    Binary outcome: ROC curve, AUC with DeLong's interval, the cut-off by
    Youden's index (or --sensitivity / --specificity) with a bootstrap
    interval, sensitivity and specificity with Wilson intervals, and the
    rule's optimism-corrected AUC. Time to event: the maximally selected
    log-rank cut-off with naive, Lausen-Schumacher and permutation p-values,
    Kaplan-Meier curves, Cox hazard ratio, C-index. At least 10 events (and
    10 cases without, for a binary outcome) are needed.

    Writes NEW.json (--out) with the cut-off, a new id and version and a
    record under ``calibrations``, and beside it NEW.calibration.json (every
    statistic, the curves, the cases used and left out) and
    NEW.calibration.html.

    Exit status: 0 written, 1 refused (too few events, bad values, results
    scored with another model, the file exists).
    """
    from ihc_score.errors import IhcScoreError
    from ihc_score.model import load_model, require_new_model_path

    if (sensitivity is not None) + (specificity is not None) + keep_cutoff > 1:
        raise click.UsageError("give at most one of --sensitivity, --specificity and --keep-cutoff")
    try:
        model = load_model(model_path)
        require_new_model_path(out_path)  # before any work
        _require_same_model(results_dir, model, model_path)
        data, unscored = _outcome_data(results_dir, outcomes, model, sensitivity, specificity)
        document = _calibrate(data, model, sensitivity, specificity, keep_cutoff, resamples, seed)
        document = _write(document, data, unscored, results_dir, outcomes, out_path, model, model_path,
                          new_id, new_version)
    except (IhcScoreError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    _report(document, data, out_path)


def _require_same_model(results_dir: Path, model: Model, model_path: Path | None) -> None:
    """Refuse results made by another model: the cut-off must be set on scores of the model it goes into."""
    from ihc_score.errors import ValidationInputError
    from ihc_score.validation import model_of_results, read_run

    scored_with = model_of_results(results_dir)
    if scored_with.get("sha256") and scored_with["sha256"] != model.sha256:
        raise ValidationInputError(
            f"{results_dir} was scored with model {scored_with.get('id', '?')} (sha256 {scored_with['sha256'][:12]}), "
            f"not {model_path or 'the packaged model'} (sha256 {model.sha256[:12]}): the cut-off must be calibrated "
            "on scores made by the same model; pass that model with --model"
        )
    # Options given for that run only (other than the call rule) changed the scores the model alone would give.
    overrides = [o for o in (read_run(results_dir).get("model") or {}).get("overrides") or []
                 if not str(o[0]).startswith("positivity.")]
    if overrides:
        raise ValidationInputError(
            f"{results_dir} was scored with {overrides[0][0]}={overrides[0][1]} set for that run only: the cut-off "
            "must be calibrated on scores of the model itself; write a model with that value and score again with it"
        )


def _outcome_data(
    results_dir: Path, outcomes: Path, model: Model, sensitivity: float | None, specificity: float | None
) -> tuple[OutcomeData, tuple[str, ...]]:
    from ihc_score.errors import ValidationInputError
    from ihc_score.validation import case_markers, match_outcomes, read_outcomes, require_enough_events

    markers, unscored = case_markers(results_dir, model.positivity.metric)
    table = read_outcomes(outcomes)
    if table.endpoint != "binary" and (sensitivity is not None or specificity is not None):
        raise ValidationInputError(
            f"{outcomes}: --sensitivity and --specificity apply to a binary outcome ('outcome' column), "
            "this file has 'time' and 'event'"
        )
    data = match_outcomes(markers, table)
    require_enough_events(data, outcomes)
    return data, unscored


def _calibrate(
    data: OutcomeData, model: Model, sensitivity: float | None, specificity: float | None, keep_cutoff: bool,
    resamples: int, seed: int,
) -> Any:
    import numpy as np

    from ihc_score.validation import BootstrapParams, CutoffCriterion, calibrate_binary, calibrate_survival

    boot = BootstrapParams(resamples=resamples, seed=seed)
    marker = np.asarray(data.marker, float)
    if data.endpoint == "time_to_event":
        fixed = model.positivity.cutoff if keep_cutoff else None
        return calibrate_survival(marker, np.asarray(data.time), np.asarray(data.event), fixed_cutoff=fixed, boot=boot)
    if keep_cutoff:
        criterion = CutoffCriterion("fixed", model.positivity.cutoff)
    elif sensitivity is not None:
        criterion = CutoffCriterion("sensitivity", sensitivity)
    elif specificity is not None:
        criterion = CutoffCriterion("specificity", specificity)
    else:
        criterion = CutoffCriterion("youden")
    return calibrate_binary(marker, np.asarray(data.outcome), criterion, boot)


def _write(
    result: Any, data: OutcomeData, unscored: tuple[str, ...], results_dir: Path, outcomes: Path, out_path: Path,
    model: Model, model_path: Path | None, new_id: str | None, new_version: str | None,
) -> dict[str, Any]:
    """Write the new model, then its ``.calibration.json`` and ``.html`` beside it; the document written."""
    from datetime import datetime, timezone

    from ihc_score.fileio import file_sha256
    from ihc_score.model import DEFAULT_MODEL_PATH, derive_model
    from ihc_score.outputs import write_json
    from ihc_score.validation import calibration_document, model_of_results, outcome_record, write_calibration_page

    date = datetime.now(timezone.utc).date().isoformat()
    json_path = out_path.with_name(f"{out_path.stem}.calibration.json")
    html_path = out_path.with_name(f"{out_path.stem}.calibration.html")
    version = new_version or (f"{model.version}.cal.{date}" if "+" in model.version else f"{model.version}+cal.{date}")
    inputs: dict[str, Any] = {
        "results_dir": str(results_dir),
        "results_model": model_of_results(results_dir),
        "outcomes": str(outcomes),
        "outcomes_sha256": file_sha256(outcomes),
        "model_in": {"path": str(model_path or DEFAULT_MODEL_PATH), "id": model.id, "version": model.version,
                     "sha256": model.sha256},
        "report": json_path.name,
    }
    document = calibration_document(
        data, result, metric=model.positivity.metric, previous_cutoff=model.positivity.cutoff, date=date,
        inputs=inputs, unscored=unscored,
    )
    new = derive_model(
        model_path, out_path, new_id=new_id or f"{model.id}-calibrated-{date}",
        values={"positivity.cutoff": document["cutoff"], "version": version}, record=outcome_record(document),
    )
    document["inputs"]["model_out"] = {"path": str(out_path), "id": new.id, "version": new.version,
                                       "sha256": new.sha256}
    write_json(json_path, document)
    write_calibration_page(html_path, document)
    return document


def _number(value: float | None, fmt: str = ".3f") -> str:
    return "n/a" if value is None else f"{value:{fmt}}"


def _names(cases: list[str]) -> str:
    shown = ", ".join(cases[:_SHOWN])
    return shown + (f", ... ({len(cases) - _SHOWN} more in the JSON)" if len(cases) > _SHOWN else "")


def _report(document: dict[str, Any], data: OutcomeData, out_path: Path) -> None:
    """A few lines: counts, the cases left out, the figures, the files written."""
    s, metric = document["statistics"], document["metric"]

    def ci(pair: list[Any], fmt: str) -> str:
        return f" [{pair[0]:{fmt}}, {pair[1]:{fmt}}]" if pair and None not in pair else ""

    click.echo(f"{document['n_cases']} cases, {document['n_events']} events ({data.endpoint.replace('_', ' ')})")
    for what, cases in (("have an outcome but no score", data.no_score),
                        ("are scored but have no outcome", data.no_outcome)):
        if cases:
            click.echo(f"{len(cases)} cases {what} (left out): {_names(list(cases))}")
    if document["endpoint"] == "binary":
        click.echo(f"AUC {document['auc']:.3f}{ci(document['auc_ci'], '.3f')} (DeLong); rule AUC apparent "
                   f"{_number(s['rule_auc_apparent'])}, optimism-corrected {_number(s['rule_auc_corrected'])}")
        tail = (f"sensitivity {s['sensitivity']:.2f}{ci(s['sensitivity_ci'], '.2f')}, "
                f"specificity {s['specificity']:.2f}{ci(s['specificity_ci'], '.2f')}")
    else:
        click.echo(f"C-index {_number(document['c_index'])}{ci(document['c_index_ci'], '.3f')}; HR positive vs "
                   f"negative {_number(s['hazard_ratio'], '.2f')}{ci(s['hazard_ratio_ci'], '.2f')}")
        adjusted = "" if document["method"] == "fixed" else (
            f" (naive), adjusted for the search {_number(s['p_lausen_schumacher'], '.2g')} (Lausen-Schumacher), "
            f"{_number(s['p_permutation'], '.2g')} (permutation)")
        tail = f"log-rank p {_number(s['p_logrank'], '.2g')}{adjusted}"
    click.echo(f"cut-off {metric} {document['cutoff']:g}{ci(document['cutoff_ci'], '.1f')} "
               f"(was {document['previous_cutoff']:g}; {document['method']}): {tail}")
    for warning in s["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    model_out, report = document["inputs"]["model_out"], out_path.with_name(f"{out_path.stem}.calibration.html")
    click.echo(f"model written: {out_path} (id {model_out['id']}, version {model_out['version']}, "
               f"sha256 {model_out['sha256'][:12]}); report: {report}")
    if not document["inputs"]["results_model"]:
        click.echo("note: the results folder has no run.json; the model it was scored with is not checked", err=True)

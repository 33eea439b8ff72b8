"""Outcome calibration: a cut-off recovered from outcomes drawn around a known one, golden AUCs, the command."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import ihc_score.cli.calibrate  # noqa: F401  (registers the command)
from ihc_score.cli._group import main
from ihc_score.errors import ValidationInputError
from ihc_score.model import load_model
from ihc_score.validation import (
    BootstrapParams,
    CutoffCriterion,
    calibrate_binary,
    calibrate_survival,
    case_markers,
    delong_auc,
    lausen_schumacher_p,
    logrank_statistics,
    place_cutoff,
)

BOOT = BootstrapParams(resamples=1000, seed=0)


def _binary_truth(seed: int = 0, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Marker uniform 0-300; P(event) 0.85 at or above 120, 0.15 below."""
    rng = np.random.default_rng(seed)
    marker = np.round(rng.uniform(0.0, 300.0, n), 2)
    outcome = (rng.random(n) < np.where(marker >= 120.0, 0.85, 0.15)).astype(int)
    return marker, outcome


def _survival_truth(seed: int = 0, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Marker uniform 0-300; exponential times, hazard 3 times as high at or above 150; uniform censoring."""
    rng = np.random.default_rng(seed)
    marker = np.round(rng.uniform(0.0, 300.0, n), 2)
    event_time = rng.exponential(1.0 / (0.05 * np.where(marker >= 150.0, 3.0, 1.0)))
    censor_time = rng.uniform(0.0, 40.0, n)
    time = np.round(np.minimum(event_time, censor_time), 3)
    return marker, time, (event_time <= censor_time).astype(int)


# --- binary outcome -------------------------------------------------------------------------------------------


def test_binary_cutoff_drawn_from_a_known_step_is_recovered():
    marker, outcome = _binary_truth()
    r = calibrate_binary(marker, outcome, boot=BOOT)
    assert r.cutoff_ci[0] <= 120.0 <= r.cutoff_ci[1]
    assert abs(r.cutoff - 120.0) <= 20.0
    from sklearn.metrics import roc_auc_score

    assert r.auc == pytest.approx(roc_auc_score(outcome, marker), abs=1e-12)
    assert 0.0 <= r.auc_ci[0] < r.auc < r.auc_ci[1] <= 1.0
    # The 2x2 table and the figures agree with the rule marker >= cut-off.
    positive = marker >= r.cutoff
    assert r.true_positives == int((positive & (outcome == 1)).sum())
    assert r.sensitivity == pytest.approx(positive[outcome == 1].mean())
    assert r.specificity == pytest.approx((~positive[outcome == 0]).mean())
    assert r.sensitivity_ci[0] < r.sensitivity < r.sensitivity_ci[1]
    # Youden's index at the cut-off is the largest over every observed threshold.
    youden = [(marker[outcome == 1] >= t).mean() + (marker[outcome == 0] < t).mean() - 1 for t in np.unique(marker)]
    assert r.sensitivity + r.specificity - 1 == pytest.approx(max(youden))
    # A cut-off chosen on the data looks better on them than it will on new cases.
    assert r.rule_auc_optimism > 0 and r.rule_auc_corrected < r.rule_auc_apparent
    assert r.rule_auc_apparent == pytest.approx((r.sensitivity + r.specificity) / 2)


def test_the_optimism_correction_predicts_new_cases():
    """The optimism-corrected rule AUC is nearer the rule's AUC on new cases than the apparent one (on average)."""
    apparent, corrected, fresh = [], [], []
    for seed in range(4):
        marker, outcome = _binary_truth(seed, n=80)
        r = calibrate_binary(marker, outcome, boot=BOOT)
        new_marker, new_outcome = _binary_truth(100 + seed, n=20_000)
        positive = new_marker >= r.cutoff
        fresh.append(0.5 * (positive[new_outcome == 1].mean() + (~positive[new_outcome == 0]).mean()))
        apparent.append(r.rule_auc_apparent)
        corrected.append(r.rule_auc_corrected)
    assert abs(np.mean(corrected) - np.mean(fresh)) < abs(np.mean(apparent) - np.mean(fresh))


@pytest.mark.parametrize("kind", ["sensitivity", "specificity"])
def test_a_target_is_reached_with_the_best_other_figure(kind: str):
    marker, outcome = _binary_truth()
    r = calibrate_binary(marker, outcome, CutoffCriterion(kind, 0.9), boot=BOOT)
    reached, other = (r.sensitivity, r.specificity) if kind == "sensitivity" else (r.specificity, r.sensitivity)
    assert reached >= 0.9
    best_other = 0.0
    for t in np.unique(marker):
        sens, spec = (marker[outcome == 1] >= t).mean(), (marker[outcome == 0] < t).mean()
        target, alternative = (sens, spec) if kind == "sensitivity" else (spec, sens)
        if target >= 0.9:
            best_other = max(best_other, alternative)
    assert other == pytest.approx(best_other)
    assert r.criterion == f"{kind}>=0.9"


def test_golden_auc_and_delong_interval_of_a_tiny_example():
    # Events 3, 5, 8 against non-events 1, 4, 6: 6 of 9 pairs ordered, AUC 2/3. Placement values
    # V10 = (1/3, 2/3, 1) and V01 = (1, 2/3, 1/3) have variance 1/9 each: var(AUC) = 1/27 + 1/27.
    marker, outcome = np.array([3.0, 5.0, 8.0, 1.0, 4.0, 6.0]), np.array([1, 1, 1, 0, 0, 0])
    auc, se, low, high = delong_auc(marker, outcome)
    assert auc == pytest.approx(2 / 3)
    assert se == pytest.approx(math.sqrt(2 / 27))
    assert low == pytest.approx(2 / 3 - 1.959964 * math.sqrt(2 / 27), abs=1e-6) and high == 1.0
    # With ties (counted one half): events 2, 3, 3 against 1, 2, 3 order 6.5 of 9 pairs;
    # V10 = (1/2, 5/6, 5/6), V01 = (1, 5/6, 1/3): variances 1/27 and 13/108, var(AUC) = 17/324.
    auc, se, low, high = delong_auc(np.array([2.0, 3.0, 3.0, 1.0, 2.0, 3.0]), outcome)
    assert auc == pytest.approx(6.5 / 9)
    assert se == pytest.approx(math.sqrt(17) / 18)
    assert 0.0 <= low < auc < high <= 1.0


def test_the_cutoff_sits_between_observed_values():
    values = np.array([10.0, 20.0, 20.0, 35.55, 35.57, 50.0])
    assert place_cutoff(values, 50.0) == 42.8  # midpoint of 35.57 and 50, to 0.1
    assert place_cutoff(values, 35.57) == 35.56  # a narrow gap: to 0.01
    assert place_cutoff(values, 10.0) == 10.0  # the lowest value: every case positive
    assert place_cutoff(np.array([1.0, 1.0004]), 1.0004) == 1.0004  # narrower still: the value itself


# --- time to event -------------------------------------------------------------------------------------------


def test_survival_cutoff_drawn_from_a_known_step_is_recovered():
    from lifelines.statistics import logrank_test

    marker, time, event = _survival_truth()
    r = calibrate_survival(marker, time, event, boot=BOOT)
    assert r.cutoff_ci[0] <= 150.0 <= r.cutoff_ci[1]
    assert abs(r.cutoff - 150.0) <= 30.0
    assert r.hazard_ratio_ci[0] <= 3.0 <= r.hazard_ratio_ci[1]
    assert r.p_logrank < 0.01
    # The search is paid for: both adjusted p-values exceed the naive one and stay small here.
    assert r.p_logrank < r.p_lausen_schumacher < 0.01
    assert r.p_logrank < r.p_permutation < 0.01
    assert r.c_index_ci[0] < r.c_index < r.c_index_ci[1] and r.c_index > 0.55
    # The vectorised log-rank statistic at the cut-off is lifelines' one.
    positive = marker >= r.cutoff
    chi2 = logrank_test(time[positive], time[~positive], event[positive], event[~positive]).test_statistic
    z = logrank_statistics(marker, time, event, np.array([marker[positive].min()]))
    assert z[0] ** 2 == pytest.approx(chi2, rel=1e-9) and z[0] > 0
    assert max(r.profile_chi2) == pytest.approx(r.logrank_chi2, rel=1e-9)
    assert [c.group for c in r.curves] == ["negative", "positive"]
    assert r.curves[0].at_risk[0] == r.n_negative and r.curves[1].survival[-1] < r.curves[0].survival[-1]


def test_no_association_gives_no_small_adjusted_p():
    marker, time, event = _survival_truth(seed=3)
    shuffled = np.random.default_rng(7).permutation(marker)
    r = calibrate_survival(shuffled, time, event, boot=BOOT)
    assert r.p_permutation > 0.05 and r.p_lausen_schumacher > 0.05
    assert r.p_logrank < r.p_permutation


def test_lausen_schumacher_formula():
    # b = 3, cut-offs between deciles: phi(3) (3 - 1/3) log(81) + 4 phi(3) / 3.
    phi = math.exp(-4.5) / math.sqrt(2 * math.pi)
    assert lausen_schumacher_p(3.0) == pytest.approx(phi * (8 / 3) * math.log(81) + 4 * phi / 3)
    assert lausen_schumacher_p(0.3) == lausen_schumacher_p(1.0) == 1.0  # no upper tail: no approximation
    values = [lausen_schumacher_p(b) for b in np.linspace(0.0, 5.0, 501)]
    assert all(later <= earlier for earlier, later in zip(values, values[1:]))  # never smaller for a smaller b


def test_a_kept_cutoff_is_appraised_not_chosen():
    marker, time, event = _survival_truth()
    r = calibrate_survival(marker, time, event, fixed_cutoff=100.0, boot=BOOT)
    assert r.cutoff == 100.0 and r.method == "fixed" and math.isnan(r.cutoff_ci[0])
    assert math.isnan(r.p_lausen_schumacher) and r.n_positive == int((marker >= 100).sum())
    with pytest.raises(ValidationInputError, match="every case positive"):
        calibrate_survival(marker, time, event, fixed_cutoff=0.0, boot=BOOT)


# --- the command ---------------------------------------------------------------------------------------------


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _results(folder: Path, markers: dict[str, float], sha256: str | None, overrides: tuple = ()) -> Path:
    """A results folder: each case's marker on one metastasis, a lower one and an unscored one beside it."""
    folder.mkdir()
    rows = []
    for case, value in markers.items():
        rows.append([case, f"{case}-a", "M1", f"{value:.2f}", f"{value / 3:.2f}", "positive", 900])
        rows.append([case, f"{case}-a", "M2", f"{value / 2:.2f}", f"{value / 6:.2f}", "negative", 700])
        rows.append([case, f"{case}-b", "M3", "", "", "indeterminate", 0])
    rows.append(["NOSCORE", "NOSCORE-a", "M1", "", "", "indeterminate", 0])
    header = ["case", "slide", "region", "h_score", "pct_positive", "call", "n_cells"]
    _write_csv(folder / "metastases.csv", header, rows)
    if sha256 is not None:
        model = {"id": "s100a9-brain-met", "version": "0.1.0", "sha256": sha256, "overrides": list(overrides)}
        (folder / "run.json").write_text(json.dumps({"model": model}), encoding="utf-8")
    return folder


def _binary_study(tmp_path: Path, sha256: str | None = "packaged", n: int = 200, events_kept: int | None = None):
    marker, outcome = _binary_truth(n=n)
    cases = [f"C{i:03d}" for i in range(n)]
    results = _results(tmp_path / "results", dict(zip(cases, marker)),
                       load_model(None).sha256 if sha256 == "packaged" else sha256)
    cases, outcome = cases[2:], outcome[2:]  # C000 and C001 are scored without an outcome
    if events_kept is not None:  # events beyond the first ``events_kept`` become non-events
        outcome = np.where(np.cumsum(outcome) > events_kept, 0, outcome)
    rows = [[c, int(o)] for c, o in zip(cases, outcome)] + [["NOSCORE", 1], ["ELSEWHERE", 0]]
    outcomes = _write_csv(tmp_path / "outcomes.csv", ["case", "outcome"], rows)
    return results, outcomes


def _invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_case_marker_is_the_largest_scored_metastasis(tmp_path: Path):
    results = _results(tmp_path / "results", {"A": 210.0, "B": 40.0}, None)
    markers, unscored = case_markers(results, "h_score")
    assert markers == {"A": 210.0, "B": 40.0} and unscored == ("NOSCORE",)
    assert case_markers(results, "pct_positive")[0] == {"A": 70.0, "B": pytest.approx(13.33)}


def test_calibrate_command_writes_a_new_model_and_its_record(tmp_path: Path):
    results, outcomes = _binary_study(tmp_path)
    out = tmp_path / "models" / "local.json"
    out.parent.mkdir()
    run = _invoke("calibrate", results, outcomes, "--out", out, "--resamples", 1000, "--seed", 3)
    assert run.exit_code == 0, run.output
    new, doc = load_model(out), json.loads((tmp_path / "models" / "local.calibration.json").read_text())
    assert new.positivity.cutoff == doc["cutoff"] and abs(new.positivity.cutoff - 120.0) <= 20.0
    assert new.positivity.metric == "h_score" and new.id.startswith("s100a9-brain-met-calibrated-")
    assert new.version.startswith("0.1.0+cal.")
    record = new.calibrations[-1]
    assert record["kind"] == "outcome" and record["endpoint"] == "binary" and record["method"] == "youden"
    assert record["outcomes_sha256"] == hashlib.sha256(outcomes.read_bytes()).hexdigest()
    assert record["results_model_sha256"] == load_model(None).sha256
    assert record["n_cases"] == 198 and record["cutoff_ci"][0] <= record["cutoff"] <= record["cutoff_ci"][1]
    assert record["auc_ci"][0] < record["auc"] < record["auc_ci"][1] and record["seed"] == 3
    # Nothing left out silently: the console and the JSON name them.
    assert doc["left_out"]["outcome_without_score"] == ["ELSEWHERE", "NOSCORE"]
    assert doc["left_out"]["score_without_outcome"] == ["C000", "C001"]
    assert "ELSEWHERE, NOSCORE" in run.output and "C000, C001" in run.output
    assert "AUC" in run.output and "model written" in run.output
    page = (tmp_path / "models" / "local.calibration.html").read_text()
    assert "<svg" in page and "ROC" in page
    # The same inputs give the same statistics; an existing file is refused and left as it was.
    before = out.read_bytes()
    again = _invoke("calibrate", results, outcomes, "--out", out, "--resamples", 1000, "--seed", 3)
    assert again.exit_code == 1 and "exists" in again.output and len(again.output.strip().splitlines()) == 1
    assert out.read_bytes() == before
    other = tmp_path / "models" / "again.json"
    assert _invoke("calibrate", results, outcomes, "--out", other, "--resamples", 1000, "--seed", 3).exit_code == 0
    assert json.loads(other.with_name("again.calibration.json").read_text())["statistics"] == doc["statistics"]


def test_calibrate_command_on_time_to_event(tmp_path: Path):
    marker, time, event = _survival_truth()
    cases = [f"C{i:03d}" for i in range(marker.size)]
    results = _results(tmp_path / "results", dict(zip(cases, marker)), load_model(None).sha256)
    outcomes = _write_csv(tmp_path / "pfs.csv", ["case", "time", "event"],
                          [[c, t, e] for c, t, e in zip(cases, time, event)])
    out = tmp_path / "pfs-model.json"
    run = _invoke("calibrate", results, outcomes, "--out", out, "--resamples", 1000, "--id", "local", "--version", "2")
    assert run.exit_code == 0, run.output
    new = load_model(out)
    assert (new.id, new.version) == ("local", "2") and abs(new.positivity.cutoff - 150.0) <= 30.0
    record = new.calibrations[-1]
    assert record["endpoint"] == "time_to_event" and record["method"] == "maxstat_logrank"
    assert record["hazard_ratio_ci"][0] <= 3.0 <= record["hazard_ratio_ci"][1] and "c_index" in record
    doc = json.loads(out.with_name("pfs-model.calibration.json").read_text())
    assert [c["group"] for c in doc["kaplan_meier"]] == ["negative", "positive"]
    assert "Lausen-Schumacher" in run.output and "HR" in run.output
    assert "<svg" in out.with_name("pfs-model.calibration.html").read_text()
    refused = _invoke("calibrate", results, outcomes, "--out", tmp_path / "x.json", "--sensitivity", "0.9")
    assert refused.exit_code == 1 and "binary outcome" in refused.output


def test_results_of_another_model_are_refused(tmp_path: Path):
    results, outcomes = _binary_study(tmp_path, sha256="0" * 64)
    out = tmp_path / "new.json"
    run = _invoke("calibrate", results, outcomes, "--out", out)
    assert run.exit_code == 1 and "same model" in run.output and len(run.output.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "new.calibration.json").exists()


@pytest.mark.parametrize(
    ("override", "refused"),
    [(("classification.thresholds", "0.1,0.3,0.5"), True), (("positivity.cutoff", "80"), False)],
)
def test_results_scored_with_a_changed_parameter_are_refused(tmp_path: Path, override: tuple, refused: bool):
    marker, outcome = _binary_truth(n=60)
    cases = [f"C{i:02d}" for i in range(60)]
    results = _results(tmp_path / "results", dict(zip(cases, marker)), load_model(None).sha256, (override,))
    outcomes = _write_csv(tmp_path / "o.csv", ["case", "outcome"], [[c, o] for c, o in zip(cases, outcome)])
    run = _invoke("calibrate", results, outcomes, "--out", tmp_path / "new.json", "--keep-cutoff")
    assert run.exit_code == (1 if refused else 0), run.output
    assert ("for that run only" in run.output) == refused


def test_results_without_run_json_are_calibrated_with_a_note(tmp_path: Path):
    results, outcomes = _binary_study(tmp_path, sha256=None)
    run = _invoke("calibrate", results, outcomes, "--out", tmp_path / "new.json", "--keep-cutoff")
    assert run.exit_code == 0, run.output
    assert "no run.json" in run.output and load_model(tmp_path / "new.json").positivity.cutoff == 100.0


def test_too_few_events_are_refused(tmp_path: Path):
    results, outcomes = _binary_study(tmp_path, events_kept=9)
    run = _invoke("calibrate", results, outcomes, "--out", tmp_path / "new.json")
    assert run.exit_code == 1
    assert len(run.output.strip().splitlines()) == 1
    assert "9 events" in run.output and "at least 10" in run.output
    assert not (tmp_path / "new.json").exists()


def test_too_few_non_events_are_refused(tmp_path: Path):
    results = _results(tmp_path / "results", {f"C{i}": float(i) for i in range(30)}, None)
    outcomes = _write_csv(tmp_path / "o.csv", ["case", "outcome"], [[f"C{i}", int(i >= 3)] for i in range(30)])
    run = _invoke("calibrate", results, outcomes, "--out", tmp_path / "new.json")
    assert run.exit_code == 1 and "3 cases without the event" in run.output


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (["case", "outcome"], [["A", 1], ["B", "yes"]], "row 3 (outcome): must be 1 (event) or 0"),
        (["case", "outcome"], [["A", 1], ["A", 0]], "row 3: case 'A' is also on row 2"),
        (["case", "time", "event"], [["A", -2, 1]], "row 2 (time): must be a number >= 0"),
        (["case", "time", "event"], [["A", "", 1]], "row 2: give both time and event"),
        (["case", "time", "event"], [["A", "soon", 1]], "row 2 (time): 'soon' is not a number"),
        (["case", "outcome", "time", "event"], [["A", 1, 3, 1]], "not both"),
        (["case", "response"], [["A", 1]], "found neither"),
    ],
)
def test_bad_outcomes_give_one_line_naming_the_row(tmp_path: Path, header, rows, message):
    results = _results(tmp_path / "results", {"A": 10.0}, None)
    outcomes = _write_csv(tmp_path / "o.csv", header, rows)
    run = _invoke("calibrate", results, outcomes, "--out", tmp_path / "new.json")
    assert run.exit_code == 1
    assert len(run.output.strip().splitlines()) == 1 and message in run.output and "o.csv" in run.output


def test_options_that_exclude_each_other_are_a_usage_error(tmp_path: Path):
    results, outcomes = _binary_study(tmp_path, n=40)
    run = _invoke("calibrate", results, outcomes, "--out", tmp_path / "n.json", "--sensitivity", 0.9, "--keep-cutoff")
    assert run.exit_code == 2

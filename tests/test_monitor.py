"""Control-slide monitoring: the Westgard rules, the SQLite history and ``ihc-score monitor``.

The rules are checked against hand-made z-series (Westgard et al. 1981, Clin
Chem 27:493), against the exact in-control rate of each rule for independent
N(0, 1) z-scores, and against the expected waiting time for r consecutive
successes (Feller, An Introduction to Probability Theory, vol. 1, XIII.7) after
a shift of the mean.
"""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import norm

import ihc_score.cli.monitor  # noqa: F401  (registers the command)
from ihc_score.cli._group import main
from ihc_score.errors import ValidationInputError
from ihc_score.validation import (
    REJECTION_RULES,
    ControlReading,
    MonitorOptions,
    baseline_limits,
    latest_violations,
    read_control,
    record_control,
    violations_by_run,
    z_scores,
)
from ihc_score.validation.westgard import rejects, rule_matrix

SHA_A = "a" * 64
SHA_B = "b" * 64

# ---------------------------------------------------------------- the rules on hand-made series

TRIPS = {
    "1-3s": [0.0, 3.2],
    "2-2s": [0.0, 2.5, 2.5],
    "R-4s": [2.2, -2.3],
    "4-1s": [1.2, 1.2, 1.2, 1.2],
    "10-x": [0.3] * 10,
}
MISSES = {
    "1-3s": [[0.0, 2.9], [0.0, 3.0]],  # beyond is strict
    "2-2s": [[0.0, 1.9, 2.5], [0.0, -2.5, 2.5], [2.5, 0.0, 2.5]],
    "R-4s": [[2.2, -1.9], [2.2, 2.3], [2.2, 0.0, -2.3]],
    "4-1s": [[1.2, 1.2, 1.2], [1.2, 1.2, -1.2, 1.2], [1.2, 1.2, 1.2, 0.9]],
    "10-x": [[0.3] * 9, [0.3] * 9 + [-0.3], [0.3] * 4 + [0.0] + [0.3] * 5],
}


@pytest.mark.parametrize("rule", REJECTION_RULES)
def test_each_rejection_rule_trips_alone_on_its_series(rule: str) -> None:
    assert rejects(latest_violations(TRIPS[rule])) == (rule,)


@pytest.mark.parametrize("rule", REJECTION_RULES)
def test_each_rejection_rule_holds_on_near_misses(rule: str) -> None:
    for series in MISSES[rule]:
        assert rule not in latest_violations(series), series


def test_one_2s_is_a_warning_only() -> None:
    assert latest_violations([0.0, 2.5]) == ("1-2s",)
    assert rejects(("1-2s",)) == ()
    assert latest_violations([0.0, 1.99]) == ()


def test_two_2s_is_two_2s_and_not_one_3s() -> None:
    assert latest_violations([0.0, 2.5, 2.5]) == ("1-2s", "2-2s")


def test_a_missing_run_breaks_consecutive_runs() -> None:
    assert "4-1s" not in latest_violations([1.2, 1.2, math.nan, 1.2])
    assert latest_violations([]) == ()


def test_every_run_is_judged_on_itself_and_the_runs_before_it() -> None:
    z = np.random.default_rng(3).normal(0.8, 1.3, 60)
    assert violations_by_run(z) == [latest_violations(z[: i + 1]) for i in range(len(z))]


def test_in_control_rate_of_each_rule_is_the_normal_one() -> None:
    """Per-run rate of each rule for independent N(0, 1) z, against its exact value."""
    z = np.random.default_rng(7).standard_normal(1_000_000)
    matrix = rule_matrix(z)
    q1, q2, q3 = norm.sf(1), norm.sf(2), norm.sf(3)
    truth = {"1-2s": 2 * q2, "1-3s": 2 * q3, "2-2s": 2 * q2**2, "R-4s": 2 * q2**2, "4-1s": 2 * q1**4,
             "10-x": 2 * 0.5**10}
    for rule, p in truth.items():
        seen = matrix[rule][9:].mean()
        se = math.sqrt(p * (1 - p) / (len(z) - 9))
        assert abs(seen - p) < 5 * se, (rule, seen, p)


def _feller_mean_wait(p: float, r: int) -> float:
    """Expected trials until the first run of r successes of probability p (Feller vol. 1, XIII.7)."""
    return (1 - p**r) / ((1 - p) * p**r)


@pytest.mark.parametrize(
    ("rule", "p", "r"),
    [("4-1s", norm.cdf(0.5), 4), ("10-x", norm.cdf(1.5), 10), ("1-3s", norm.sf(1.5) + norm.cdf(-4.5), 1)],
)
def test_runs_until_a_rule_fires_after_a_shift_of_1_5_sd(rule: str, p: float, r: int) -> None:
    """Mean run length to the first firing with known limits and a +1.5 SD shift, against Feller's formula."""
    z = np.random.default_rng(11).normal(1.5, 1.0, (4000, 300))
    fired = rule_matrix(z)[rule]
    assert fired.any(axis=1).all()
    wait = fired.argmax(axis=1) + 1
    truth = _feller_mean_wait(p, r)
    assert abs(wait.mean() - truth) < 4 * wait.std(ddof=1) / math.sqrt(len(wait)), (wait.mean(), truth)


# ---------------------------------------------------------------- the history, through record_control


def _reading(i: int, h: float, sha: str = SHA_A, control: str = "CTRL") -> ControlReading:
    return ControlReading(
        control=control, region="R1", results_dir=f"/batches/b{i:03d}",
        started_utc=(datetime(2026, 1, 1, 8, tzinfo=timezone.utc) + timedelta(days=i)).isoformat(), h_score=float(h),
        pct_positive=50.0, n_cells=5000, model_id="s100a9", model_version="1.0", model_sha256=sha,
    )


def _count(history: Path) -> int:
    with sqlite3.connect(history) as conn:
        return conn.execute("SELECT COUNT(*) FROM control_runs").fetchone()[0]


def test_baseline_is_collected_then_limits_are_its_mean_and_sd(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    values = np.random.default_rng(1).normal(150, 8, 21)
    for i, h in enumerate(values[:20]):
        status = record_control(history, _reading(i, h))
        assert status.limits is None and status.run.status == "collecting baseline"
        assert status.baseline_progress == (i + 1, 20) and not status.out_of_control
    status = record_control(history, _reading(20, values[20]))
    assert status.limits is not None
    assert status.limits.mean == pytest.approx(np.mean(values[:20]))
    assert status.limits.sd == pytest.approx(np.std(values[:20], ddof=1))
    assert status.run.z == pytest.approx((values[20] - np.mean(values[:20])) / np.std(values[:20], ddof=1))


def _history_with_baseline(history: Path, seed: int) -> tuple[np.random.Generator, int]:
    rng = np.random.default_rng(seed)
    for i, h in enumerate(rng.normal(150, 8, 20)):
        record_control(history, _reading(i, h))
    return rng, 20


def test_a_drift_of_1_5_sd_trips_4_1s_first(tmp_path: Path) -> None:
    """20 in-control runs of N(150, 8), then the mean moves up by 12 (1.5 SD): 4-1s fires before 1-3s."""
    history = tmp_path / "h.sqlite"
    rng, i = _history_with_baseline(history, seed=3)
    bound = math.ceil(_feller_mean_wait(norm.cdf(0.5), 4))  # 11 runs: 4-1s alone, on average
    for k in range(1, bound + 1):
        status = record_control(history, _reading(i + k - 1, rng.normal(162, 8)))
        if status.out_of_control:
            break
    assert status.out_of_control, f"no rejection within {bound} runs"
    assert rejects(status.rules) == ("4-1s",) and "1-3s" not in status.rules
    assert k == 8  # after 7 runs in control (or warned)


def test_a_jump_of_3_5_sd_trips_1_3s_at_once(tmp_path: Path) -> None:
    """A run 3.5 SD above the mean of the chart's limits (the baseline's estimates, not the simulation's 150, 8)."""
    history = tmp_path / "h.sqlite"
    _, i = _history_with_baseline(history, seed=3)
    limits = record_control(history, _reading(i, 150)).limits
    status = record_control(history, _reading(i + 1, limits.line(3.5)))
    assert status.run.z == pytest.approx(3.5) and status.run.status == "out of control"
    assert rejects(status.rules) == ("1-3s",)


def test_a_target_sets_the_limits_from_the_first_run_and_is_kept(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    status = record_control(history, _reading(0, 170), MonitorOptions(target=(150.0, 5.0)))
    assert status.limits.source == "target" and status.run.z == pytest.approx(4.0) and status.out_of_control
    status = record_control(history, _reading(1, 155))  # no --target: the one set before holds
    assert status.run.z == pytest.approx(1.0) and status.run.status == "in control"


def test_the_same_batch_is_not_added_twice(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    first = record_control(history, _reading(0, 150))
    again = record_control(history, _reading(0, 150))
    assert again.duplicate and not first.duplicate and _count(history) == 1


def test_a_model_change_is_refused_unless_a_new_baseline_starts(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    rng, i = _history_with_baseline(history, seed=4)
    record_control(history, _reading(i, 150))
    with pytest.raises(ValidationInputError, match="model changed.*--new-baseline"):
        record_control(history, _reading(i + 1, 150, sha=SHA_B))
    assert _count(history) == 21
    status = record_control(history, _reading(i + 1, 150, sha=SHA_B), MonitorOptions(new_baseline=True))
    assert status.run.segment == 2 and status.limits is None and status.baseline_progress == (1, 20)
    assert status.earlier_runs == 21 and len(status.segment_runs) == 1


def test_an_older_batch_is_refused(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    record_control(history, _reading(5, 150))
    with pytest.raises(ValidationInputError, match="before the last one"):
        record_control(history, _reading(4, 150))


def test_a_failure_while_publishing_leaves_the_history_as_it_was(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    record_control(history, _reading(0, 150))

    def fail(_: object) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        record_control(history, _reading(1, 150), publish=fail)
    assert _count(history) == 1


def test_a_baseline_of_one_value_repeated_asks_for_a_target() -> None:
    with pytest.raises(ValidationInputError, match="--target"):
        baseline_limits([150.0] * 20)
    assert baseline_limits([140.0, 160.0]).sd == pytest.approx(math.sqrt(200))
    assert z_scores([160.0], baseline_limits([140.0, 160.0]))[0] == pytest.approx(10 / math.sqrt(200))


# ---------------------------------------------------------------- the command, on small results folders

COLUMNS = ("case", "slide", "region", "n_cells", "h_score", "pct_positive", "call", "model_id", "model_version",
           "model_sha256")


def _batch(root: Path, i: int, h: float | str, *, sha: str = SHA_A, regions: tuple[str, ...] = ("R1",),
           control: str = "CTRL") -> Path:
    folder = root / f"batch{i:02d}"
    folder.mkdir(parents=True)
    rows = [("c0", control, region, "4000", str(h), "40.00", "positive", "s100a9", "1.0", sha) for region in regions]
    rows.append(("c1", "patient-1", "R1", "900", "80.00", "10.00", "negative", "s100a9", "1.0", sha))
    text = "\n".join(",".join(r) for r in (COLUMNS, *rows)) + "\n"
    (folder / "metastases.csv").write_text(text, encoding="utf-8")
    started = f"2026-03-{1 + i:02d}T09:00:00+00:00"
    run = {"started_utc": started, "finished_utc": started.replace("09:", "10:"),
           "model": {"id": "s100a9", "version": "1.0", "sha256": sha}}
    (folder / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return folder


def _monitor(folder: Path, history: Path, *extra: str):
    return CliRunner().invoke(main, ["monitor", str(folder), "--control", "CTRL", "--history", str(history), *extra])


def test_command_collects_a_baseline_then_judges_each_batch(tmp_path: Path) -> None:
    history = tmp_path / "control.sqlite"
    sd = math.sqrt(1000 / 9)  # SD of 140, 160 five times each
    for i in range(10):
        res = _monitor(_batch(tmp_path, i, 140 + 20 * (i % 2)), history, "--baseline", "10")
        assert res.exit_code == 0, res.output
        assert f"collecting baseline ({i + 1}/10)" in res.stdout and "less certain SD" in res.stderr
    folder = _batch(tmp_path, 10, 155)
    res = _monitor(folder, history)
    assert res.exit_code == 0 and res.stdout.strip().endswith(f"z {5 / sd:+.2f}; in control"), res.output
    summary = json.loads((folder / "control.json").read_text())
    assert summary["status"] == "in control" and summary["out_of_control"] is False
    assert summary["limits"] == {"mean": 150.0, "sd": round(sd, 4), "source": "baseline", "baseline_runs": 10}
    page = (folder / "control.html").read_text()
    assert "<svg" in page and "Levey-Jennings" in page

    res = _monitor(folder, history)  # the same batch again
    assert res.exit_code == 0 and "not added again" in res.stderr and _count(history) == 11

    res = _monitor(_batch(tmp_path, 11, 173), history)  # z +2.18: a warning only
    assert res.exit_code == 0 and "warning: 1-2s" in res.stderr and "in control (warning: 1-2s)" in res.stdout

    folder = _batch(tmp_path, 12, 187)
    chart = tmp_path / "lj.html"
    res = _monitor(folder, history, "--chart", str(chart))
    assert res.exit_code == 3, res.output
    assert res.stdout.strip().endswith(f"z {37 / sd:+.2f}; OUT OF CONTROL: 1-3s, 2-2s")
    summary = json.loads((folder / "control.json").read_text())
    assert summary["out_of_control"] is True and summary["rejection_rules_violated"] == ["1-3s", "2-2s"]
    assert "OUT OF CONTROL" in (folder / "control.html").read_text() and chart.read_bytes().startswith(b"<!DOCTYPE")

    res = _monitor(_batch(tmp_path, 13, 150, sha=SHA_B), history)
    assert res.exit_code == 1 and "model changed" in res.output and len(res.output.strip().splitlines()) == 1
    assert _count(history) == 13
    res = _monitor(tmp_path / "batch13", history, "--new-baseline")
    assert res.exit_code == 0 and "collecting baseline (1/20)" in res.stdout


def test_command_bad_inputs_leave_the_history_untouched(tmp_path: Path) -> None:
    history = tmp_path / "control.sqlite"
    assert _monitor(_batch(tmp_path, 0, 150), history).exit_code == 0
    before = history.read_bytes()
    cases = [
        (_batch(tmp_path, 1, 150, control="OTHER"), [], "no slide 'CTRL'"),
        (_batch(tmp_path, 2, ""), [], "has no H-score"),
        (_batch(tmp_path, 3, 150, regions=("R1", "R2")), [], "choose one with --region"),
        (_batch(tmp_path, 4, "high"), [], "is not a number"),
    ]
    for folder, extra, message in cases:
        res = _monitor(folder, history, *extra)
        assert res.exit_code == 1 and message in res.output and len(res.output.strip().splitlines()) == 1, res.output
        assert not (folder / "control.json").exists()
    assert history.read_bytes() == before
    assert _monitor(tmp_path / "batch03", history, "--region", "R2").exit_code == 0


def test_command_refuses_an_unreadable_history_and_bad_options(tmp_path: Path) -> None:
    folder = _batch(tmp_path, 0, 150)
    history = tmp_path / "notes.sqlite"
    history.write_bytes(b"not a database at all, just text" * 10)
    res = _monitor(folder, history)
    assert res.exit_code == 1 and "control history" in res.output
    assert history.read_bytes() == b"not a database at all, just text" * 10
    assert _monitor(folder, tmp_path / "h.sqlite", "--baseline", "5").exit_code == 2
    assert _monitor(folder, tmp_path / "h.sqlite", "--target", "150").exit_code == 2
    assert _monitor(folder, tmp_path / "h.sqlite", "--target", "150,0").exit_code == 2
    assert not (tmp_path / "h.sqlite").exists()


def test_read_control_takes_the_batch_identity_from_run_json(tmp_path: Path) -> None:
    folder = _batch(tmp_path, 0, "151.25")
    reading = read_control(folder, "CTRL")
    assert reading.h_score == 151.25 and reading.n_cells == 4000 and reading.pct_positive == 40.0
    assert reading.batch_id == f"{folder.resolve()} @ 2026-03-01T09:00:00+00:00"
    assert reading.model_sha256 == SHA_A

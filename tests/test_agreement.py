"""``ihc-score agree``: agreement statistics on published worked examples, and the command on known truth."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import ihc_score.cli.agree  # noqa: F401  (registers the command)
from ihc_score.cli._group import main
from ihc_score.errors import ValidationInputError
from ihc_score.outputs import CASE_COLUMNS, METASTASIS_COLUMNS, write_csv
from ihc_score.validation import (
    agreement_report,
    bland_altman,
    call_agreement,
    cohen_kappa,
    fleiss_kappa,
    intraclass,
    lin_ccc,
    parse_call,
)

SAMPLES = Path(__file__).resolve().parents[1] / "sample_slides"
MODEL = {"id": "s100a9-test", "version": "9.9.9", "sha256": "ab" * 32}


# --------------------------------------------------------------------------- statistics on worked examples


def test_icc_shrout_fleiss_1979_table():
    """Shrout & Fleiss (1979) Table 2, 6 targets x 4 judges: ICC(1,1) .17, ICC(2,1) .29, ICC(3,1) .71 (Table 4)."""
    ratings = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    icc = intraclass(ratings)
    assert (icc.n, icc.k) == (6, 4)
    assert round(icc.one_way.value, 2) == 0.17
    assert round(icc.absolute.value, 2) == 0.29
    assert round(icc.consistency.value, 2) == 0.71
    for est in (icc.one_way, icc.absolute, icc.consistency):
        assert est.low < est.value < est.high
    # CI of ICC(A,1) by McGraw & Wong (1996), kept at full precision (pingouin rounds to 2 decimals by default)
    assert icc.absolute.low == pytest.approx(0.0188, abs=5e-4) and icc.absolute.high == pytest.approx(0.761, abs=5e-4)


def test_lin_ccc_hand_example_and_shift():
    # x = 1,2,3,4 and y = 2,3,3,5: means 2.5 and 3.25; with n denominators s_x^2 = 5/4 = 1.25,
    # s_y^2 = (1.5625 + 0.0625 + 0.0625 + 3.0625)/4 = 1.1875, s_xy = (1.875 + 0.125 - 0.125 + 2.625)/4 = 1.125,
    # so rho_c = 2 * 1.125 / (1.25 + 1.1875 + 0.75^2) = 2.25 / 3.0 = 0.75.
    ccc = lin_ccc([1, 2, 3, 4], [2, 3, 3, 5])
    assert ccc.value == pytest.approx(0.75, abs=1e-12)
    assert -1 < ccc.low < 0.75 < ccc.high < 1
    # y = x + 2: Pearson 1, but rho_c = 2 s^2 / (2 s^2 + 2^2) with s^2 = 8.25 (x = 0..9): 16.5 / 20.5 < 1
    x = np.arange(10.0)
    shifted = lin_ccc(x, x + 2)
    assert shifted.value == pytest.approx(16.5 / 20.5, abs=1e-12)
    assert np.corrcoef(x, x + 2)[0, 1] == pytest.approx(1.0)


def test_lin_ccc_and_bland_altman_intervals_cover_the_truth():
    """Coverage of the 95 % intervals over 1500 simulated studies (binomial SD 0.006)."""
    rng = np.random.default_rng(7)
    true_ccc = 2 * 0.9 / (1 + 0.97 + 0.3**2)  # x ~ N(0,1), y = 0.9 x + 0.3 + N(0, 0.4^2)
    hits = np.zeros(4)
    reps = 1500
    for _ in range(reps):
        x = rng.normal(0, 1, 40)
        c = lin_ccc(x, 0.9 * x + 0.3 + rng.normal(0, 0.4, 40))
        ba = bland_altman(rng.normal(5, 10, 60), np.zeros(60))
        hits += [c.low <= true_ccc <= c.high, ba.bias.low <= 5 <= ba.bias.high,
                 ba.loa_low.low <= 5 - 1.96 * 10 <= ba.loa_low.high,
                 ba.loa_high.low <= 5 + 1.96 * 10 <= ba.loa_high.high]
    assert np.all((hits / reps > 0.93) & (hits / reps < 0.97)), hits / reps


def test_cohen_kappa_worked_example():
    # 50 items: both positive 20, reference positive / tool negative 5, reference negative / tool positive 10,
    # both negative 15. p_o = 35/50 = 0.70; margins reference 25/25, tool 30/20, so
    # p_e = (25*30 + 25*20) / 50^2 = 0.50 and kappa = (0.70 - 0.50) / (1 - 0.50) = 0.40.
    reference = ["positive"] * 25 + ["negative"] * 25
    tool = ["positive"] * 20 + ["negative"] * 5 + ["positive"] * 10 + ["negative"] * 15
    result = call_agreement(tool, reference)
    assert result.table == ((20, 5, 0), (10, 15, 0), (0, 0, 0))
    assert result.kappa.value == pytest.approx(0.40, abs=1e-12)
    # the large-sample SE sqrt(p_o (1 - p_o) / (n (1 - p_e)^2)) = 0.1296 gives 0.146-0.654; statsmodels' variance
    # of Fleiss, Cohen & Everitt (1969) is close to it
    assert result.kappa.low == pytest.approx(0.40 - 1.96 * 0.1296, abs=0.01)
    assert result.kappa.high == pytest.approx(0.40 + 1.96 * 0.1296, abs=0.01)
    assert math.isnan(cohen_kappa([[30, 0], [0, 0]]).value)  # one category: no agreement beyond chance


def test_fleiss_kappa_fleiss_1971_example():
    """10 subjects, 14 raters, 5 categories (Fleiss 1971, as worked on Wikipedia): P = 0.378, Pe = 0.213, 0.210."""
    counts = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
              [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    calls = [[f"c{j}" for j, n in enumerate(row) for _ in range(n)] for row in counts]
    assert fleiss_kappa(calls) == pytest.approx(0.210, abs=5e-4)


def test_call_spellings():
    for text, want in (("Positive", "positive"), ("POS", "positive"), ("1", "positive"), ("neg", "negative"),
                       ("0", "negative"), ("Indeterminate", "indeterminate"), ("", None)):
        assert parse_call(text, where="x") == want
    with pytest.raises(ValidationInputError, match="'maybe' is not one of"):
        parse_call("maybe", where="x")


# --------------------------------------------------------------------------- synthetic results folders


def _results(folder: Path, rows: list[dict], *, cases: list[dict] | None = None) -> Path:
    """A results folder with the tool's real metastases.csv / cases.csv columns and a run.json."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "metastases.csv", METASTASIS_COLUMNS, rows)
    write_csv(folder / "cases.csv", CASE_COLUMNS, cases or [])
    (folder / "run.json").write_text(json.dumps({"model": MODEL}))
    return folder


def _csv(path: Path, header: str, rows: list[tuple]) -> Path:
    path.write_text(header + "\n" + "".join(",".join(str(c) for c in row) + "\n" for row in rows))
    return path


def _call(h: float) -> str:
    return "positive" if h >= 110 else "negative" if h < 90 else "indeterminate"


def _agree(*args: str):
    return CliRunner().invoke(main, ["agree", *map(str, args)])


def _load(out: Path) -> dict:
    def no_nan(text: str):
        raise AssertionError(f"{text} in agreement.json")

    return json.loads((out / "agreement.json").read_text(), parse_constant=no_nan)


@pytest.fixture(scope="module")
def truth():
    """60 metastases (20 slides x 3) with known H-score and percent positive."""
    rng = np.random.default_rng(20240611)
    keys = [(f"S{i // 3 + 1:02d}.svs", f"met{i % 3 + 1}") for i in range(60)]
    return keys, rng.uniform(40, 260, 60), rng.uniform(10, 90, 60), rng


@pytest.fixture(scope="module")
def tool_folder(truth, tmp_path_factory):
    keys, h, pct, _ = truth
    rows = [{"case": s[:3], "slide": s, "region": r, "h_score": f"{hh:.2f}", "pct_positive": f"{pp:.2f}",
             "call": _call(hh), "model_id": MODEL["id"]} for (s, r), hh, pp in zip(keys, h, pct)]
    return _results(tmp_path_factory.mktemp("tool") / "results", rows)


def test_one_pathologist_bias_and_icc_recovered(truth, tool_folder, tmp_path):
    """Reference = truth - 5 + N(0, 10) (tool minus reference: bias +5, SD 10), pct -2 + N(0, 4); 6 calls flipped."""
    keys, h, pct, _ = truth
    rng = np.random.default_rng(5)
    ref_h = np.round(h - 5 + rng.normal(0, 10, 60), 2)
    ref_p = np.round(pct - 2 + rng.normal(0, 4, 60), 2)
    assert ref_h.min() >= 0 and ref_p.min() >= 0 and ref_p.max() <= 100
    calls = [_call(x) for x in h]
    flip = {"positive": "neg", "negative": "POS", "indeterminate": "Positive"}
    ref_calls = [flip[c] if i % 10 == 0 else c for i, c in enumerate(calls)]
    ref = _csv(tmp_path / "reference.csv", "slide,region,h_score,pct_positive,call",
               [(s, r, a, b, c) for (s, r), a, b, c in zip(keys, ref_h, ref_p, ref_calls)])
    res = _agree(tool_folder, ref, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "agreement.html").stat().st_size > 10_000
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["agreement.html", "agreement.json"]
    report = _load(tmp_path / "out")
    hs = report["metrics"]["h_score"]
    ba = hs["bland_altman"]
    assert hs["n"] == 60 and ba["bias"]["value"] == pytest.approx(np.mean(np.round(h, 2) - ref_h), abs=1e-9)
    assert ba["bias"]["ci_low"] < 5 < ba["bias"]["ci_high"] and abs(ba["bias"]["value"] - 5) < 4
    assert 7 < ba["sd"] < 13
    assert ba["loa_low"]["ci_low"] < 5 - 19.6 < ba["loa_low"]["ci_high"]
    assert ba["loa_high"]["ci_low"] < 5 + 19.6 < ba["loa_high"]["ci_high"]
    assert hs["icc_a1"]["value"] > 0.9 and hs["icc_a1"]["ci_low"] < hs["icc_a1"]["value"] < hs["icc_a1"]["ci_high"]
    assert hs["ccc"]["value"] > 0.9 and hs["pearson"]["r"] > 0.95 and hs["pearson"]["p"] < 1e-10
    pp = report["metrics"]["pct_positive"]["bland_altman"]["bias"]
    assert pp["ci_low"] < 2 < pp["ci_high"]
    call = report["metrics"]["call"]
    table = np.zeros((3, 3), int)
    labels = ["positive", "negative", "indeterminate"]
    for c, r in zip(calls, [parse_call(x, where="") for x in ref_calls]):
        table[labels.index(r), labels.index(c)] += 1
    assert call["confusion"]["table"] == table.tolist() and call["confusion"]["labels"] == labels
    po, pe = np.trace(table) / 60, (table.sum(0) * table.sum(1)).sum() / 60**2
    assert call["kappa"]["value"] == pytest.approx((po - pe) / (1 - pe), abs=1e-12)
    assert report["inputs"]["results"]["model"] == MODEL and len(report["inputs"]["reference"]["sha256"]) == 64
    assert report["unmatched"] == {"reference": [], "tool": []} and report["not_scored"] == []
    lines = res.output.splitlines()
    assert lines[0].startswith("h_score: n=60, ICC(A,1) ") and "bias +" in lines[0] and "[LoA " in lines[0]
    assert lines[2].startswith("call: n=60, kappa ") and lines[3].startswith("unmatched: 0 reference")
    assert _agree(tool_folder, ref, "--out", tmp_path / "again").exit_code == 0
    assert (tmp_path / "again" / "agreement.json").read_bytes() == (tmp_path / "out" / "agreement.json").read_bytes()


def _three_raters(truth, tmp_path: Path) -> Path:
    """Raters A, B, C = truth + (-5, 0, +5) + N(0, 10); C did not score two items; calls from their own scores."""
    keys, h, _, _ = truth
    rng = np.random.default_rng(11)
    rows = []
    for rater, offset in (("A", -5), ("B", 0), ("C", 5)):
        scores = np.clip(h + offset + rng.normal(0, 10, 60), 0, 300)
        for i, ((s, r), x) in enumerate(zip(keys, scores)):
            given = "" if rater == "C" and i < 2 else f"{x:.2f}"
            rows.append((s, r, rater, given, _call(x)))
    return _csv(tmp_path / "raters.csv", "slide,region,rater,h_score,call", rows)


def test_three_pathologists(truth, tool_folder, tmp_path):
    ref = _three_raters(truth, tmp_path)
    res = _agree(tool_folder, ref, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    report = _load(tmp_path / "out")
    assert report["raters"] == ["A", "B", "C"]
    hs = report["metrics"]["h_score"]
    assert hs["against"] == "rater mean" and hs["n"] == 60
    bias = {r: hs["per_rater"][r]["bland_altman"]["bias"] for r in "ABC"}
    for rater, want in (("A", 5), ("B", 0), ("C", -5)):  # tool minus rater
        assert bias[rater]["ci_low"] < want < bias[rater]["ci_high"], rater
    assert hs["per_rater"]["C"]["n"] == 58
    mean_bias = hs["bland_altman"]["bias"]
    assert mean_bias["ci_low"] < 0 < mean_bias["ci_high"]
    spread = hs["raters"]
    assert (spread["n"], spread["k"]) == (58, 3) and spread["icc_a1"]["value"] > 0.9
    # the noiseless tool agrees with the other raters' mean better than any rater does
    assert spread["tool_position"] == "above" and spread["tool_mean"] > spread["rater_range"][1]
    assert [v["rater"] for v in spread["leave_one_out"]] == ["A", "B", "C"]
    call = report["metrics"]["call"]
    assert call["raters"]["fleiss_kappa"]["value"] > 0.6 and set(call["per_rater"]) == {"A", "B", "C"}
    assert call["kappa"]["value"] > 0.7
    # calls drawn from the raters' noisy scores: the tool (the truth's calls) agrees with each rater more than they do
    assert call["raters"]["tool_position"] == "above"
    assert "raters among themselves ICC(A,1)" in res.output and "tool above their spread" in res.output


def test_noisy_tool_is_below_the_raters(truth, tmp_path):
    keys, h, pct, _ = truth
    rng = np.random.default_rng(3)
    noisy = np.clip(h + rng.normal(0, 40, 60), 0, 300)
    rows = [{"slide": s, "region": r, "h_score": f"{x:.2f}", "pct_positive": "", "call": ""}
            for (s, r), x in zip(keys, noisy)]
    report = agreement_report(_results(tmp_path / "noisy", rows), _three_raters(truth, tmp_path))
    assert report["metrics"]["h_score"]["raters"]["tool_position"] == "below"
    assert report["metrics"]["call"]["n"] == 0 and "note" in report["metrics"]["call"]
    assert len(report["not_scored"]) == 60 and report["not_scored"][0]["metrics"] == ["call"]


def test_case_level_uses_the_maximum_metastasis_h_score(tmp_path):
    cases = [{"case": f"P{i}", "pooled_h_score": "10.00", "max_metastasis_h_score": f"{50.0 * i:.2f}",
              "pooled_pct_positive": f"{10.0 * i:.2f}", "call": "positive" if i >= 3 else "negative"}
             for i in range(1, 6)]
    folder = _results(tmp_path / "res", [], cases=cases)
    # reference = the maximum metastasis H-score +1, -1, +2, -2, 0: bias exactly 0 (far from it against the pooled)
    ref = _csv(tmp_path / "cases.csv", "Case,H_Score,call",
               [(f"P{i}", 50 * i + d, "pos" if i >= 3 else "neg") for i, d in zip(range(1, 6), (1, -1, 2, -2, 0))])
    res = _agree(folder, ref, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    report = _load(tmp_path / "out")
    assert report["level"] == "case" and report["inputs"]["results"]["table"] == "cases.csv"
    assert report["metrics"]["h_score"]["bland_altman"]["bias"]["value"] == pytest.approx(0, abs=1e-12)
    assert report["metrics"]["call"]["kappa"]["value"] == pytest.approx(1.0)


def test_unmatched_and_unscored_rows_are_listed(tmp_path):
    rows = [{"slide": "S1.svs", "region": "met1", "h_score": "120.00", "pct_positive": "50.00", "call": "positive"},
            {"slide": "S1.svs", "region": "met2", "h_score": "80.00", "pct_positive": "30.00", "call": "negative"},
            {"slide": "S1.svs", "region": "met3", "h_score": "", "pct_positive": "", "call": ""},
            {"slide": "S2.svs", "region": "auto-1", "h_score": "200.00", "pct_positive": "90.00", "call": "positive"}]
    folder = _results(tmp_path / "res", rows)
    # "S1" (no extension) names S1.svs; S9.svs is not in the results
    ref = _csv(tmp_path / "ref.csv", "slide,region,h_score,call",
               [("S1", "met1", 110, "positive"), ("S1", "met2", 90, "negative"), ("S1", "met3", 150, "positive"),
                ("S9.svs", "met1", 100, "positive")])
    res = _agree(folder, ref, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    report = _load(tmp_path / "out")
    assert report["unmatched"]["reference"] == [{"slide": "S9.svs", "region": "met1", "rater": "", "line": 5}]
    assert report["unmatched"]["tool"] == [{"slide": "S2.svs", "region": "auto-1"}]
    assert report["not_scored"] == [{"slide": "S1.svs", "region": "met3", "metrics": ["h_score", "call"]}]
    assert report["metrics"]["h_score"] == {"n": 2, "against": "reference",
                                            "note": "2 pair(s); at least 3 are needed for statistics"}
    assert [p["item"]["region"] for p in report["pairs"]] == ["met1", "met2", "met3"]
    assert res.output.splitlines()[-2] == ("unmatched: 1 reference row(s) without a tool row, 1 tool row(s) without "
                                           "a reference; not scored by the tool: 1 item(s)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("region,h_score\nmet1,100\n", "needs the columns slide and region"),
        ("slide,region,comment\nS1.svs,met1,fine\n", "needs at least one of the columns h_score"),
        ("slide,region,h_score\nS1.svs,met1,12O\n", "line 2, column h_score: '12O' is not a number"),
        ("slide,region,h_score\nS1.svs,met1,350\n", "line 2: h_score 350 is outside 0-300"),
        ("slide,region,call\nS1.svs,met1,maybe\n", "line 2: call 'maybe' is not one of"),
        ("slide,region,h_score\nS1.svs,met1,100\nS1.svs,met1,110\n", "line 3: slide S1.svs, region met1 again"),
        ("slide,region,rater,h_score\nS1.svs,met1,A,1\nS1.svs,met1,B,1\nS1.svs,met1,A,2\n", "by rater 'A' again"),
        ("slide,region,h_score\n", "has no rows"),
        ("slide,region,rater,h_score\nS1.svs,met1,,100\n", "line 2: empty rater"),
        ("case,slide,h_score\nP1,S1.svs,100\n", "needs the columns slide and region"),
    ],
)
def test_bad_reference_is_one_line_naming_the_file(tmp_path, text, message):
    folder = _results(tmp_path / "res", [{"slide": "S1.svs", "region": "met1", "h_score": "100.00"}])
    ref = tmp_path / "my-reference.csv"
    ref.write_text(text)
    res = _agree(folder, ref, "--out", tmp_path / "out")
    assert res.exit_code == 1
    assert len(res.output.strip().splitlines()) == 1 and "my-reference.csv" in res.output and message in res.output
    assert not (tmp_path / "out").exists()


def test_bad_results_folder_and_out_folder(tmp_path):
    ref = _csv(tmp_path / "ref.csv", "slide,region,h_score", [("S1.svs", "met1", 100)])
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _agree(empty, ref, "--out", tmp_path / "out")
    assert res.exit_code == 1 and "metastases.csv: no such file" in res.output
    folder = _results(tmp_path / "res", [{"slide": "S1.svs", "region": "met1", "h_score": "100.00"}])
    for inside in (folder, folder / "store" / "x"):
        res = _agree(folder, ref, "--out", inside)
        assert res.exit_code == 2 and "--out" in res.output
    assert not (folder / "agreement.json").exists()
    assert _agree(folder, ref, "--out", folder / "agreement").exit_code == 0
    assert _agree(folder).exit_code == 2


# --------------------------------------------------------------------------- a real results folder


@pytest.mark.slow
def test_real_results_folder_against_its_truth(tmp_path):
    """Score the positive sample slide cut into three annotated parts; the truth H-score of each part is counted from
    the truth file's cells (centroid in the part)."""
    from shapely.geometry import box, shape

    from ihc_score.regions import Region, write_geojson

    truth = json.loads((SAMPLES / "synthetic-positive.truth.json").read_text())
    met = truth["regions"][0]
    outline = shape(met["outline"])
    cells = [c for c in truth["cells"] if c["tumour"] and c["region"] == met["name"]]
    xs = sorted(c["l0_x"] for c in cells)
    cuts = [outline.bounds[0] - 1, xs[len(xs) // 3], xs[2 * len(xs) // 3], outline.bounds[2] + 1]
    slides = tmp_path / "slides"
    slides.mkdir()
    shutil.copy(SAMPLES / "synthetic-positive.svs", slides / "synthetic-positive.svs")
    regions, ref_rows = [], []
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        part = outline.intersection(box(a, outline.bounds[1] - 1, b, outline.bounds[3] + 1))
        regions.append(Region(name=f"part{i + 1}", geometry=part, source="annotation", classification="Tumor"))
        grades = np.bincount([c["class"] for c in cells if a <= c["l0_x"] < b], minlength=4)
        h = 100 * (grades[1] + 2 * grades[2] + 3 * grades[3]) / grades.sum()
        pct = 100 - 100 * grades[0] / grades.sum()
        ref_rows.append(("synthetic-positive.svs", f"part{i + 1}", f"{h:.2f}", f"{pct:.2f}"))
    write_geojson(slides / "synthetic-positive.geojson", regions)
    ref_rows.append(("synthetic-positive.svs", "part4", "100", "50"))  # no such region
    ref = _csv(tmp_path / "truth.csv", "slide,region,h_score,pct_positive", ref_rows)
    results = tmp_path / "results"
    res = CliRunner().invoke(main, ["score", str(slides), "--out", str(results), "--workers", "1", "--no-qc",
                                    "--detections", "none", "--quiet"])
    assert res.exit_code == 0, res.output
    res = _agree(results, ref, "--out", tmp_path / "agreement")
    assert res.exit_code == 0, res.output
    report = _load(tmp_path / "agreement")
    assert [p["item"] for p in report["pairs"]] == [
        {"slide": "synthetic-positive.svs", "region": f"part{i}"} for i in (1, 2, 3)]
    assert [r["region"] for r in report["unmatched"]["reference"]] == ["part4"] and not report["unmatched"]["tool"]
    # Bounds: 15 H-score points per part and 10 for the bias, about 2-3x the README's difference of this scored
    # slide from its truth (+5.2; the slide's DAB vector is estimated a little towards hematoxylin); 10 % positive.
    for pair in report["pairs"]:
        assert abs(pair["tool"]["h_score"] - pair["reference"]["h_score"]) <= 15, pair
    hs = report["metrics"]["h_score"]
    assert hs["n"] == 3 and abs(hs["bland_altman"]["bias"]["value"]) <= 10
    assert abs(report["metrics"]["pct_positive"]["bland_altman"]["bias"]["value"]) <= 10
    assert report["inputs"]["results"]["model"]["id"]

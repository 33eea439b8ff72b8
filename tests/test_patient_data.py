"""Patient data: pseudonyms in every output, the mapping only in the key file, no path escapes the output folder."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from shapely.geometry import box

from ihc_score.cli import main
from ihc_score.regions import Region, write_geojson

SAMPLES = Path(__file__).resolve().parents[1] / "sample_slides"
NAMES = ("Müller Hans 1962-03-04", "Doe Jane MRN 889977")


def every_output_text(out: Path) -> str:
    """All bytes the batch wrote, decompressed, as text."""
    chunks = []
    for f in sorted(out.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            chunks.append(f.name)
            chunks.append((gzip.decompress(data) if f.suffix == ".gz" else data).decode("utf-8", "replace"))
    return "\n".join(chunks)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("Patients of Dr Who") / "Müller Hans 1962-03-04 folder"
    d.mkdir()
    shutil.copy(SAMPLES / "synthetic-negative.svs", d / f"{NAMES[0]}.svs")
    (d / f"{NAMES[1]}.svs").write_bytes(b"not a slide")  # its name must not leak through the error either
    # an annotation whose region names try to climb out of the output folder
    write_geojson(d / f"{NAMES[0]}.geojson", [Region("../../escape", box(500, 500, 3500, 2800), "annotation", "Tumor")])
    return d


def test_pseudonyms_replace_every_identifier(folder, tmp_path):
    key = tmp_path / "secret" / "key.json"
    key.parent.mkdir()
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["score", str(folder), "--out", str(out), "--pseudonymize", str(key), "--cells", "--workers", "1"])
    assert res.exit_code == 1, res.output  # one slide is not a slide
    text = every_output_text(out)
    for real in (*NAMES, "Müller", "Jane", "Dr Who", "889977"):
        assert real not in text, real
        assert real not in res.output, real
    mapping = json.loads(key.read_text())
    # slides, and the annotation file named after one (it appears in slides.csv)
    assert sorted(mapping["slides"].values()) == sorted([f"{n}.svs" for n in NAMES] + [f"{NAMES[0]}.geojson"])
    assert sorted(mapping["cases"].values()) == sorted(NAMES)
    assert key.stat().st_mode & 0o077 == 0  # the key file is the owner's only
    # every file stays inside the output folder, whatever the region names say
    assert all(out.resolve() in f.resolve().parents for f in out.rglob("*"))
    assert not (tmp_path / "escape").exists() and not list(tmp_path.glob("*escape*"))

    # the same key gives the same pseudonyms, so a rerun reuses the stored result
    again = CliRunner().invoke(main, ["score", str(folder), "--out", str(out), "--pseudonymize", str(key)])
    assert json.loads((out / "run.json").read_text())["slides"]["reused"] == [
        p for p, real in mapping["slides"].items() if real == f"{NAMES[0]}.svs"
    ]
    assert again.exit_code == 1


def test_key_file_inside_the_output_folder_is_refused(folder, tmp_path):
    res = CliRunner().invoke(main, ["score", str(folder), "--out", str(tmp_path), "--pseudonymize", str(tmp_path / "k.json")])
    assert res.exit_code == 2 and "outside the --out folder" in res.output


def test_not_a_key_file_is_a_usage_error(folder, tmp_path):
    bad = tmp_path / "k.json"
    bad.write_text('{"format": "something else"}')
    res = CliRunner().invoke(main, ["score", str(folder), "--out", str(tmp_path / "o"), "--pseudonymize", str(bad)])
    assert res.exit_code == 2 and "key file" in res.output


def test_without_pseudonyms_names_are_kept_but_paths_are_not_stored(folder, tmp_path):
    out = tmp_path / "out"
    CliRunner().invoke(main, ["score", str(folder), "--out", str(out), "--workers", "1", "--detections", "none", "--no-qc"])
    stored = json.dumps([json.loads(f.read_text()) for f in (out / "store").glob("*.json")], ensure_ascii=False)
    assert f"{NAMES[0]}.svs" in stored and str(folder) not in stored  # the store keeps no folder path

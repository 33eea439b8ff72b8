"""Fast paths of slide reading give the bytes of the plain paths they replace.

* ``_jpeg_stream.well_formed`` (bytes and regex scans) against a numpy
  reference written from its docstring, on real tiles and damaged copies;
* ``Slide.read_scaled`` at an exact 2x reduction (tiles reduced once and
  cached reduced) against the full-resolution read resized with
  ``cv2.INTER_AREA``, for rectangles at odd and even offsets, across tile
  edges and beyond the image;
* the decoded-tile cache of the process: a reopened slide decodes no tile
  again, and a file rewritten in place is read anew.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from ihc_score.slide import _jpeg_stream, _jpeg_tiles, open_slide
from ihc_score.synthetic import make_slide, preset

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_slides" / "synthetic-positive.svs"


def well_formed_reference(raw: bytes, restart_markers: bool) -> bool:
    """The marker check with numpy masks over every scan byte (the plain version)."""
    n = len(raw)
    if n < 4 or raw[:2] != b"\xff\xd8" or raw[-2:] != b"\xff\xd9":
        return False
    pos, restart = 2, restart_markers
    while True:
        if pos + 4 > n or raw[pos] != 0xFF:
            return False
        marker = raw[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        length = int.from_bytes(raw[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > n - 2:
            return False
        if marker == 0xDD and length >= 4:
            restart = int.from_bytes(raw[pos + 4 : pos + 6], "big") > 0
        pos += 2 + length
        if marker == 0xDA:
            break
        if marker in (0xD8, 0xD9) or 0xD0 <= marker <= 0xD7:
            return False
    scan = np.frombuffer(raw, dtype=np.uint8, count=n - 2 - pos, offset=pos)
    follows = scan[np.flatnonzero(scan[:-1] == 0xFF) + 1]
    if scan.size and scan[-1] == 0xFF:
        return False
    ok = (follows == 0x00) | (follows == 0xFF)
    if restart:
        ok |= (follows >= 0xD0) & (follows <= 0xD7)
    if not ok.all():
        return False
    zero_runs = np.diff(np.flatnonzero(scan), prepend=-1, append=scan.size) - 1
    return int(zero_runs.max()) < 64


def damaged(raw: bytes, rng: np.random.Generator) -> bytes:
    """A copy with a few of the damages the check is for (stray markers, zero runs, cuts)."""
    data = bytearray(raw)
    for _ in range(int(rng.integers(1, 4))):
        pos = int(rng.integers(len(data)))
        kind = int(rng.integers(5))
        if kind == 0:
            data[pos : pos + 2] = bytes([0xFF, int(rng.integers(256))])
        elif kind == 1:
            data[pos : pos + 2] = bytes([0xFF, int(rng.integers(0xD0, 0xD8))])
        elif kind == 2:
            data[pos : pos + 80] = bytes(int(rng.choice([63, 64, 80])))
        elif kind == 3:
            data = data[:pos] + b"\xff\xd9"
        else:
            data[pos] = 0xFF
    return bytes(data)


def test_marker_check_matches_the_reference_on_real_and_damaged_tiles():
    with tifffile.TiffFile(SAMPLE) as tif:
        page = tif.pages[0]
        pairs = list(zip(page.dataoffsets, page.databytecounts))[:40]
    with SAMPLE.open("rb") as fh:
        tiles = []
        for offset, count in pairs:
            fh.seek(offset)
            tiles.append(fh.read(count))
    rng = np.random.default_rng(3)
    cases = tiles + [damaged(tiles[int(rng.integers(len(tiles)))], rng) for _ in range(600)]
    cases += [b"", b"\xff\xd8\xff\xd9", tiles[0][:-3] + b"\xff\xff\xd9"]
    results = []
    for raw in cases:
        for restart in (False, True):
            expected = well_formed_reference(raw, restart)
            assert _jpeg_stream.well_formed(raw, restart) == expected
            results.append(expected)
    # Both outcomes occur, and every undamaged tile passes.
    assert all(results[: 2 * len(tiles)]) and not all(results)


@pytest.fixture(scope="module")
def odd_tile_slide(tmp_path_factory) -> Path:
    """A small slide with 256 px tiles and a level 0 whose width is odd (a last column of 1 px)."""
    path = tmp_path_factory.mktemp("speed") / "s.svs"
    make_slide(path, preset("default", width=1281, height=900, seed=4, tile_px=256))
    return path


def reference_scaled(slide, l0_xy, l0_size) -> np.ndarray:
    """read_scaled at downsample 2 the plain way: the level-0 box read whole, then resized."""
    x, y = l0_xy
    w, h = l0_size
    out_w, out_h = max(1, round(w / 2)), max(1, round(h / 2))
    box = slide._read_box(0, x, y, w, h)
    return cv2.resize(box, (out_w, out_h), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("path_name", ["sample", "odd"])
def test_halved_reads_equal_full_reads_resized(path_name, odd_tile_slide):
    path = SAMPLE if path_name == "sample" else odd_tile_slide
    rng = np.random.default_rng(7)
    with open_slide(path, mpp_option_um=0.25) as slide:
        assert slide._fast is not None
        width, height = slide.dimensions
        rects = [((0, 0), (width, height)), ((0, 0), (width - width % 2, 512))]
        for _ in range(40):
            xy = (int(rng.integers(-300, width)), int(rng.integers(-300, height)))
            size = (int(rng.integers(1, 700)), int(rng.integers(1, 700)))
            if rng.random() < 0.7:  # mostly the even rectangles the fast path takes
                xy, size = (xy[0] & ~1, xy[1] & ~1), (size[0] + size[0] % 2, size[1] + size[1] % 2)
            rects.append((xy, size))
        taken = 0
        for xy, size in rects:
            fast = slide.read_scaled(xy, size, 2.0)
            np.testing.assert_array_equal(fast, reference_scaled(slide, xy, size))
            taken += slide._read_box_halved(0, xy[0], xy[1], size[0], size[1]) is not None
        assert taken >= 20  # the fast path did serve most of them


def test_reopened_slide_decodes_nothing_again_and_a_rewritten_file_is_read_anew(tmp_path, monkeypatch):
    path = tmp_path / "copy.svs"
    shutil.copy(SAMPLE, path)
    decoded = []
    plain_decode = _jpeg_tiles.JpegTileReader._decode

    def counting_decode(self, lv, index):
        decoded.append(index)
        return plain_decode(self, lv, index)

    monkeypatch.setattr(_jpeg_tiles.JpegTileReader, "_decode", counting_decode)
    rect = ((200, 100), (700, 600))
    with open_slide(path) as slide:
        first = slide.read_scaled(*rect, 2.0)
    n_first = len(decoded)
    assert n_first > 0
    with open_slide(path) as slide:
        np.testing.assert_array_equal(slide.read_scaled(*rect, 2.0), first)
    assert len(decoded) == n_first
    # Another sample slide written over the same path: its own pixels come back.
    other = REPO / "sample_slides" / "synthetic-negative.svs"
    shutil.copy(other, path)
    with open_slide(path) as slide, open_slide(other) as ref:
        again = slide.read_scaled(*rect, 2.0)
        np.testing.assert_array_equal(again, ref.read_scaled(*rect, 2.0))
    assert not np.array_equal(again, first)
    assert len(decoded) > n_first

"""Fuzz tests: mutated annotation files and slide files fail only with ihc-score's own errors.

Each test mutates valid inputs with a seeded generator and stops after a fixed
number of cases or a time budget, whichever comes first. ``IHC_FUZZ_CASES``
and ``IHC_FUZZ_SECONDS`` raise both limits for a longer campaign.
Slide files are opened in a worker process, so that a crash (segfault) or a
hang in a decoder is reported as a failure of the case instead of killing the
test run.
"""

from __future__ import annotations

import copy
import json
import os
import random
import select
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from shapely.geometry import MultiPolygon, Polygon, box

from ihc_score.errors import AnnotationError
from ihc_score.regions import (
    Annotation,
    Region,
    asap_xml_bytes,
    build_regions,
    geojson_bytes,
    imagescope_xml_bytes,
    load_annotations,
)

CASES = int(os.environ.get("IHC_FUZZ_CASES", "400"))
SECONDS = float(os.environ.get("IHC_FUZZ_SECONDS", "6"))
SLIDE_CASE_TIMEOUT_S = 20.0


def _budget(n_cases: int = CASES, seconds: float = SECONDS) -> Iterator[int]:
    """Case numbers 0, 1, ... until ``n_cases`` or ``seconds`` have passed."""
    end = time.monotonic() + seconds
    for i in range(n_cases):
        if time.monotonic() > end:
            return
        yield i


# -- byte-level mutations -----------------------------------------------------------------------

_TOKENS = [b"\x00", b"\xff", b"\xff\xfe", b"\xef\xbb\xbf", b"-", b"1e400", b"nan", b"NaN", b"Infinity", b"-1",
           b"99999999999999999999", b"\"", b"'", b"<", b">", b"&", b"&amp;", b"]]>", b"<!DOCTYPE x>", b"{", b"}",
           b"[", b"]", b",", b":", b"null", b"true", b"0", b"\n", b"\xc3", b"\xe2\x82", b"<a>", b"</Region>"]


def mutate_bytes(data: bytes, rnd: random.Random, *, hot: list[int] | None = None) -> bytes:
    """1-4 random edits: bit flips, byte sets, truncation, insertion, deletion, duplication.

    ``hot`` lists offsets (e.g. TIFF header fields) hit by half of the point edits.
    """
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        if not buf:
            break
        op = rnd.choice(["flip", "flip", "set", "truncate", "insert", "delete", "dup", "token"])
        pos = rnd.choice(hot) if hot and rnd.random() < 0.5 else rnd.randrange(len(buf))
        pos = min(pos, len(buf) - 1)
        if op == "flip":
            buf[pos] ^= 1 << rnd.randrange(8)
        elif op == "set":
            buf[pos] = rnd.choice([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, rnd.randrange(256)])
        elif op == "truncate":
            del buf[rnd.randrange(len(buf)):]
        elif op == "insert":
            buf[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        elif op == "delete":
            del buf[pos:pos + rnd.randint(1, 64)]
        elif op == "dup":
            n = rnd.randint(1, 256)
            buf[pos:pos] = buf[pos:pos + n]
        else:
            buf[pos:pos + rnd.randint(0, 3)] = rnd.choice(_TOKENS)
    return bytes(buf)


# -- annotation files ---------------------------------------------------------------------------


def _valid_regions() -> tuple[list[Region], list[Annotation]]:
    hole = [(1200, 1200), (1400, 1200), (1400, 1400), (1200, 1400)]
    regions = [
        Region("Met 1", Polygon([(1000.5, 1000.25), (2000.125, 1000), (2000, 2000.75), (1000, 2000)], [hole]),
               "annotation", "Tumor"),
        Region("Met 2", MultiPolygon([box(3000, 3000, 3500, 3600.333333333333),
                                      Polygon([(4000, 4000), (5000, 4000), (4500, 5000)],
                                              [[(4400, 4200), (4600, 4200), (4500, 4400)]])]),
               "annotation", ""),
        Region("Ünïcode & <xml>", Polygon([(6000, 6000), (7000, 6000), (7000, 6500), (6500, 6500), (6500, 7000),
                                           (6000, 7000)]), "annotation", "Metastasis"),
    ]
    excluded = [Annotation("Necrosis 1", "Necrosis", box(1500, 1500, 1800, 1900), excluded=True)]
    return regions, excluded


def _seeds() -> dict[str, bytes]:
    regions, excluded = _valid_regions()
    return {
        "geojson": geojson_bytes(regions, excluded=excluded),
        "imagescope": imagescope_xml_bytes(regions, excluded=excluded),
        "asap": asap_xml_bytes(regions, excluded=excluded),
    }


_JSON_VALUES: list[object] = [None, True, 0, -1, 1.5, 1e308, -1e308, "", "Polygon", "MultiPolygon", "Feature",
                              "GeometryCollection", "FeatureCollection", "detection", [], {}, [[]], [[[]]],
                              [[0, 0], [1, 0], [0, 1]], [[[0, 0], [1, 0], [0, 1]]], [[0, "x"]], {"type": None},
                              {"name": 5}, {"names": [1, None]}, [[[[0, 0], [1, 1], [2, 0]]]], "x" * 300]


def _json_nodes(doc: object, path: tuple = ()) -> Iterator[tuple[tuple, object]]:
    yield path, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _json_nodes(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _json_nodes(v, path + (i,))


def mutate_json(doc: object, rnd: random.Random) -> object:
    """1-3 structural edits of a parsed JSON document: replace, delete, duplicate, wrap, retype a node."""
    doc = copy.deepcopy(doc)
    for _ in range(rnd.randint(1, 3)):
        nodes = list(_json_nodes(doc))
        path, node = rnd.choice(nodes)
        if not path:
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        op = rnd.choice(["replace", "replace", "delete", "dup", "wrap", "number", "swap"])
        if op == "replace":
            parent[key] = copy.deepcopy(rnd.choice(_JSON_VALUES))
        elif op == "delete":
            del parent[key]
        elif op == "dup" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(node))
        elif op == "wrap":
            parent[key] = [node] if rnd.random() < 0.5 else {"type": "GeometryCollection", "geometries": [node]}
        elif op == "number" and isinstance(node, (int, float)) and not isinstance(node, bool):
            parent[key] = rnd.choice([node * 1e300, -node, node + 0.5, str(node), 2**64, 0])
        elif op == "swap":
            other_path, other = rnd.choice(nodes)
            parent[key] = copy.deepcopy(other)
    return doc


_XML_ATTR_VALUES = ["", " ", "0", "1", "2", "-1", "nan", "inf", "-inf", "1e400", "1e308", "x", "None", "_2",
                    "Exclusion", "Necrosis", "Dot", "PointSet", "Spline", "Rectangle", "3.5e-320", "１２", "0x10"]


def mutate_xml(root: ET.Element, rnd: random.Random) -> ET.Element:
    """1-3 structural edits of an XML tree: drop, duplicate, move or retag an element; change an attribute."""
    root = copy.deepcopy(root)
    for _ in range(rnd.randint(1, 3)):
        pairs = [(p, c) for p in root.iter() for c in p]
        if not pairs:
            break
        parent, child = rnd.choice(pairs)
        op = rnd.choice(["attr", "attr", "attr", "drop", "dup", "move", "retag", "delattr"])
        if op == "attr":
            name = rnd.choice(list(child.attrib) or ["X"])
            child.set(name, rnd.choice(_XML_ATTR_VALUES))
        elif op == "delattr" and child.attrib:
            del child.attrib[rnd.choice(list(child.attrib))]
        elif op == "drop":
            parent.remove(child)
        elif op == "dup":
            parent.insert(list(parent).index(child), copy.deepcopy(child))
        elif op == "move":
            target = rnd.choice(list(root.iter()))
            if target is not child and child not in list(target.iter()):
                parent.remove(child)
                target.append(child)
        elif op == "retag":
            child.tag = rnd.choice(["Annotation", "Region", "Vertex", "Coordinate", "Vertices", "Coordinates",
                                    "Regions", "Annotations", "Attribute", "Group"])
    return root


def _check_annotation_file(path: Path) -> str:
    """Parse (and build regions from) one file: "ok", "error" or raise what escaped."""
    try:
        anns = load_annotations(path).annotations
    except AnnotationError as err:
        message = str(err)
        assert message and "\n" not in message, f"multi-line message: {message!r}"
        return "error"
    try:
        build_regions(anns, slide_size=(100_000, 100_000), origin=path)
    except AnnotationError as err:
        assert "\n" not in str(err), f"multi-line message: {err!s}"
    return "ok"


def _annotation_mutants(rnd: random.Random, kind: str, fmt: str, seed: bytes) -> bytes:
    if kind == "bytes":
        return mutate_bytes(seed, rnd)
    if fmt == "geojson":
        return json.dumps(mutate_json(json.loads(seed), rnd)).encode()
    return ET.tostring(mutate_xml(ET.fromstring(seed), rnd), encoding="utf-8", xml_declaration=True)


_HUGE_COORDINATES = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")  # GEOS on 1e308


@_HUGE_COORDINATES
@pytest.mark.parametrize("fmt", ["geojson", "imagescope", "asap"])
@pytest.mark.parametrize("kind", ["bytes", "structure"])
def test_mutated_annotation_files_parse_or_raise_annotation_error(tmp_path: Path, fmt: str, kind: str) -> None:
    seed = _seeds()[fmt]
    path = tmp_path / f"mutant.{fmt}"
    path.write_bytes(seed)
    assert _check_annotation_file(path) == "ok"
    rnd = random.Random(f"{fmt}-{kind}")
    outcomes = {"ok": 0, "error": 0}
    for i in _budget(seconds=SECONDS / 6):
        data = _annotation_mutants(rnd, kind, fmt, seed)
        path.write_bytes(data)
        try:
            outcomes[_check_annotation_file(path)] += 1
        except AssertionError:
            raise
        except Exception as err:  # noqa: BLE001 - any other exception is the finding
            (tmp_path / f"failing-{i}.{fmt}").write_bytes(data)
            pytest.fail(f"case {i}: {type(err).__name__}: {err} (input kept in {tmp_path}/failing-{i}.{fmt})")
    print(f"{fmt} {kind}: {outcomes}")
    # The mutations must exercise both outcomes, or they test nothing.
    assert outcomes["ok"] > 0 and outcomes["error"] > 0, outcomes


@_HUGE_COORDINATES
@pytest.mark.parametrize(
    "text",
    [
        # Deeply nested GeometryCollections, lists and XML elements.
        '{"type": "Feature", "properties": {}, "geometry": ' + '{"type": "GeometryCollection", "geometries": [' * 400
        + '{"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [0, 10]]]}' + "]}" * 400 + "}",
        "[" * 100_000 + "]" * 100_000,
        "<Annotations>" + "<Annotation>" * 50_000 + "</Annotation>" * 50_000 + "</Annotations>",
        '{"type": "Polygon", "coordinates": [[[0, 0], [1e308, 0], [1e308, 1e308], [0, 1e308]]]}',
        '{"type": "Polygon", "coordinates": [[[0, 0], [1e-320, 0], [0, 1e-320]]]}',
        '{"type": "Polygon", "coordinates": [[[0, 0, 5], [10, 0, 5], [0, 10, 5]], [[1, 1], [2, 1], [1, 2]]]}',
        '{"type": "Polygon", "coordinates": [[[0, 0], [10, 0]], 7]}',
        '{"type": "MultiPolygon", "coordinates": [[[[0, 0], [10, 0], [0, 10]]], null]}',
        '{"type": "Polygon", "coordinates": [[[true, false], [10, 0], [0, 10]]]}',
        '[{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [0, 10]]]},'
        ' "properties": {"classification": {"names": [null, {"a": 1}]}, "name": ["x"]}}]',
        '<ASAP_Annotations><Annotations><Annotation Name="a"><Coordinates>'
        '<Coordinate Order="nan" X="0" Y="0"/><Coordinate Order="inf" X="10" Y="0"/>'
        '<Coordinate Order="-inf" X="0" Y="10"/></Coordinates></Annotation></Annotations></ASAP_Annotations>',
        '<Annotations><Annotation><Regions><Region Type="2"><Vertices><Vertex X="0" Y="0"/>'
        '<Vertex X="1e308" Y="1e308"/></Vertices></Region></Regions></Annotation></Annotations>',
        '<Annotations><Annotation><Regions><Region NegativeROA="1"><Vertices><Vertex X="0" Y="0"/>'
        '<Vertex X="10" Y="0"/><Vertex X="0" Y="10"/></Vertices></Region></Regions></Annotation></Annotations>',
    ],
    ids=["nested-collections", "nested-lists", "nested-xml", "huge-coords", "subnormal", "3d-and-hole",
         "bad-hole", "null-part", "bool-coords", "odd-properties", "nan-order", "huge-ellipse", "only-negative"],
)
def test_hostile_annotation_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "hostile.json"
    path.write_text(text, encoding="utf-8")
    assert _check_annotation_file(path) in ("ok", "error")


# -- slide files --------------------------------------------------------------------------------

_WORKER = r"""
import json, os, sys, traceback
from ihc_score.errors import MissingPixelSizeError, SlideOpenError, SlideReadError
from ihc_score.slide.factory import open_slide
ALLOWED = (SlideOpenError, SlideReadError, MissingPixelSizeError)
for line in sys.stdin:
    case = json.loads(line)
    os.environ["IHC_SCORE_READER"] = case["reader"]
    out = {"stage": "open"}
    try:
        with open_slide(case["path"], mpp_option_um=case["mpp"]) as s:
            out["stage"] = "read_region"
            rgb = s.read_region((0, 0), 0, (256, 256))
            if rgb.shape != (256, 256, 3) or rgb.dtype.name != "uint8":
                raise RuntimeError(f"read_region returned {rgb.dtype} {rgb.shape}")
            # The whole-slide render reads every tile; skipped when a corrupt header declares a huge
            # slide (rendering billions of pixels is slow, not wrong).
            if s.dimensions[0] * s.dimensions[1] <= 64 * 1024 * 1024:
                out["stage"] = "thumbnail"
                thumb, ds = s.thumbnail(8.0)
                if thumb.ndim != 3 or thumb.shape[2] != 3 or thumb.dtype.name != "uint8" or not ds >= 1:
                    raise RuntimeError(f"thumbnail returned {thumb.dtype} {thumb.shape} at {ds}")
        out["result"] = "ok"
    except ALLOWED as err:
        msg = str(err)
        out["result"] = "error" if msg and "\n" not in msg else "bad-message"
        out["error"] = f"{type(err).__name__}: {msg}"
    except BaseException as err:
        out["result"] = "escaped"
        out["error"] = f"{type(err).__name__}: {err}"[:500]
        out["trace"] = traceback.format_exc()[-3000:]
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
"""


class SlideWorker:
    """A python process that opens slides one at a time; restarted after a crash or a hang."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def run(self, path: Path, *, mpp: float | None, reader: str, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"path": str(path), "mpp": mpp, "reader": reader}) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            proc.kill()
            proc.wait()
            self.proc = None
            return {"result": "hang", "error": f"no answer within {timeout:g} s"}
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            self.proc = None
            return {"result": "crash", "error": f"worker died with exit code {code}"}
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def worker() -> Iterator[SlideWorker]:
    w = SlideWorker()
    yield w
    w.close()


@pytest.fixture(scope="module")
def slide_seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_slide_seeds(tmp_path_factory.mktemp("slide-seeds"))


def make_slide_seeds(folder: Path) -> dict[str, Path]:
    """Small valid slides: synthetic SVS (JPEG tiles, 2 levels), PNG and three TIFF layouts, all 0.25-0.5 um/px."""
    from ihc_score.synthetic import make_slide, preset  # noqa: PLC0415

    svs = folder / "seed.svs"
    make_slide(svs, preset("default", width=1024, height=768, seed=1))
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    rgb[100:200] = (230, 200, 180)
    png = folder / "seed.png"
    Image.fromarray(rgb).save(png, dpi=(50800, 50800))  # 0.5 um/px
    tiled = folder / "seed-tiled.tif"
    tifffile.imwrite(tiled, rgb, tile=(128, 128), compression="deflate", photometric="rgb",
                     resolution=(20000, 20000), resolutionunit="CENTIMETER")
    strips = folder / "seed-strips.tif"
    tifffile.imwrite(strips, rgb, rowsperstrip=16, photometric="rgb", resolution=(20000, 20000),
                     resolutionunit="CENTIMETER")
    jpeg_tiled = folder / "seed-jpeg.tif"
    tifffile.imwrite(jpeg_tiled, rgb, tile=(128, 128), compression="jpeg", photometric="rgb",
                     resolution=(20000, 20000), resolutionunit="CENTIMETER")
    return {"svs": svs, "png": png, "tiled-tiff": tiled, "strip-tiff": strips, "jpeg-tiff": jpeg_tiled}


def _tiff_hot_offsets(path: Path) -> list[int]:
    """Byte offsets of the TIFF header, IFD entries and tag values (where corruption hurts most)."""
    hot = list(range(8))
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            hot.extend(range(page.offset, page.offset + 2))
            for tag in page.tags:
                hot.extend(range(tag.offset, tag.offset + 12))
                if tag.valueoffset != tag.offset + 8:
                    hot.extend(range(tag.valueoffset, tag.valueoffset + min(tag.count, 64)))
            for off in list(page.dataoffsets)[:4]:
                hot.extend(range(off, off + 32))
    return hot


def _png_hot_offsets(data: bytes) -> list[int]:
    """Offsets of PNG chunk lengths, types and the IHDR / pHYs fields."""
    hot, pos = list(range(8)), 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        ctype = data[pos + 4:pos + 8]
        hot.extend(range(pos, pos + 8))
        if ctype in (b"IHDR", b"pHYs"):
            hot.extend(range(pos + 8, pos + 8 + length))
        pos += 12 + length
    return hot


def _run_slide_fuzz(worker: SlideWorker, seed_path: Path, tmp_path: Path, name: str, seconds: float) -> dict:
    data = seed_path.read_bytes()
    hot = _png_hot_offsets(data) if seed_path.suffix == ".png" else _tiff_hot_offsets(seed_path)
    first = worker.run(seed_path, mpp=None, reader="auto", timeout=60.0)
    assert first["result"] == "ok", first
    rnd = random.Random(name)
    outcomes: dict[str, int] = {}
    failures = []
    for i in _budget(seconds=seconds):
        mutant = tmp_path / f"{name}-{i}{seed_path.suffix}"
        mutant.write_bytes(mutate_bytes(data, rnd, hot=hot))
        out = worker.run(mutant, mpp=rnd.choice([None, 0.5]), reader=rnd.choice(["auto", "openslide"]),
                         timeout=SLIDE_CASE_TIMEOUT_S)
        outcomes[out["result"]] = outcomes.get(out["result"], 0) + 1
        if out["result"] in ("ok", "error"):
            mutant.unlink()
        else:
            failures.append(f"case {i} ({mutant}): {out['result']} at {out.get('stage')}: {out.get('error')}")
    return {"outcomes": outcomes, "failures": failures}


@pytest.mark.parametrize("kind", ["svs", "png", "tiled-tiff", "strip-tiff", "jpeg-tiff"])
def test_mutated_slides_open_or_raise_slide_errors(
    worker: SlideWorker, slide_seeds: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    seconds = SECONDS * (1.0 if kind == "svs" else 0.4)
    report = _run_slide_fuzz(worker, slide_seeds[kind], tmp_path, kind, seconds)
    print(f"{kind}: {report['outcomes']}")
    assert not report["failures"], "\n".join(report["failures"][:10])
    assert sum(report["outcomes"].values()) >= 10, report["outcomes"]


def _patch_tag(src: Path, dst: Path, page: int, code: int, *, dtype: int | None = None, value: int | None = None) -> Path:
    """Copy ``src`` with one IFD entry changed in place: its type field and/or its (inline LONG/SHORT) value."""
    with tifffile.TiffFile(src) as tif:
        offset = tif.pages[page].tags[code].offset
    data = bytearray(src.read_bytes())
    if dtype is not None:
        data[offset + 2:offset + 4] = dtype.to_bytes(2, "little")
    if value is not None:
        data[offset + 8:offset + 12] = value.to_bytes(4, "little")
    dst.write_bytes(bytes(data))
    return dst


def test_huge_tile_size_in_the_header_is_refused_without_a_crash(
    worker: SlideWorker, slide_seeds: dict[str, Path], tmp_path: Path
) -> None:
    # TileWidth of 16777728 px: OpenSlide would try to allocate a 34 GB tile and abort the process.
    for page in (0, 1):
        path = _patch_tag(slide_seeds["svs"], tmp_path / f"huge-tile-{page}.svs", page, 322, value=16_777_728)
        out = worker.run(path, mpp=None, reader="auto", timeout=SLIDE_CASE_TIMEOUT_S)
        assert out["result"] == "error" and out["error"].startswith("SlideOpenError"), out


def test_strip_tiff_with_a_misread_planar_configuration_does_not_return_a_wrong_shape(
    worker: SlideWorker, slide_seeds: dict[str, Path], tmp_path: Path
) -> None:
    # PlanarConfiguration stored as FLOAT: tifffile decodes (3, h, w) while the level says (h, w, 3).
    path = _patch_tag(slide_seeds["strip-tiff"], tmp_path / "planar.tif", 0, 284, dtype=11)
    out = worker.run(path, mpp=None, reader="auto", timeout=SLIDE_CASE_TIMEOUT_S)
    assert out["result"] in ("ok", "error"), out

"""The bulk (numpy) writers of per-cell outputs give exactly the text of plain per-cell formatting."""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pytest

from ihc_score.outputs import CLASS_COLOURS_RGB, CLASS_NAMES
from ihc_score.outputs._json_text import ring_texts
from ihc_score.outputs.detections import _GZIP_LEVEL, CELL_MEASUREMENTS, write_detections_geojson
from test_detections import make_result


def _fixed(hundredths: int) -> str:
    sign = "-" if hundredths < 0 else ""
    return f"{sign}{abs(hundredths) // 100}.{abs(hundredths) % 100:02d}"


def _ring_reference(ring: np.ndarray) -> str:
    """A closed ring's vertices, one Python format per number (rounded as ``np.round(v * 100)``)."""
    v = np.round(np.vstack([ring, ring[:1]]) * 100.0).astype(np.int64)
    return ",".join(f"[{_fixed(x)},{_fixed(y)}]" for x, y in v.tolist())


@pytest.mark.parametrize("scale", [0.01, 1.0, 3e4, 2e7, 5e12])
def test_ring_texts_equal_plain_formatting(scale):
    rng = np.random.default_rng(int(scale * 100) % 2**32)
    xy = rng.normal(size=(3000, 2)) * scale
    xy[::5] = np.round(xy[::5] * 100) / 100 + 0.005  # halves of the last decimal
    xy[::11] = rng.choice([0.0, -0.004, -0.006, 0.004, 9999.995, -10000.5], size=(len(xy[::11]), 2))
    offsets = np.concatenate([[0], np.sort(rng.choice(np.arange(1, 3000), 200, replace=False)), [3000]])
    rows = rng.permutation(len(offsets) - 1)
    texts = ring_texts(xy, offsets, rows)
    assert [t.decode("ascii") for t in texts] == [_ring_reference(xy[offsets[k] : offsets[k + 1]]) for k in rows]


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _cell_reference(result, k: int) -> str:
    """One cell's feature, built field by field (the file's convention, undefined measurements left out)."""
    d = result.detail
    cell, nucleus = d.outlines.cell(k), d.outlines.nucleus(k)
    numbers = ",".join(
        f"{_dumps(name)}:{value:.{dec}f}"
        for name, col, dec in CELL_MEASUREMENTS
        if np.isfinite(value := float(getattr(d.cells, col)[k]))
    )
    c = int(d.classes[k])
    regions = [r.name for r, member in zip(result.regions, d.membership[:, k]) if member]
    return (
        f'{{"type":"Feature","geometry":{{"type":"Polygon","coordinates":[[{_ring_reference(cell)}]]}},'
        f'"nucleusGeometry":{{"type":"Polygon","coordinates":[[{_ring_reference(nucleus)}]]}},'
        f'"properties":{{"objectType":"cell","classification":'
        f'{_dumps({"name": CLASS_NAMES[c], "color": list(CLASS_COLOURS_RGB[c])})},'
        f'"measurements":{{{numbers}}},"regions":{_dumps(regions)}}}}}'
    )


def test_cell_features_equal_plain_formatting(tmp_path):
    result = make_result(12)
    path = tmp_path / "s.geojson"
    write_detections_geojson(path, result)
    lines = path.read_text(encoding="utf-8").split("\n")
    d = result.detail
    order = np.lexsort((np.arange(len(d.classes)), d.l0_x, d.l0_y))
    cells = [line.rstrip(",") for line in lines if '"objectType":"cell"' in line]
    assert any("Cytoplasm" not in line for line in cells)  # some cells have undefined measurements
    assert cells == [_cell_reference(result, k) for k in order.tolist()]
    assert lines[-2:] == ["]}", ""]


def test_gzip_bytes_equal_a_text_stream_written_feature_by_feature(tmp_path):
    result = make_result(12)
    text_path, gz_path = tmp_path / "s.geojson", tmp_path / "s.geojson.gz"
    write_detections_geojson(text_path, result)
    write_detections_geojson(gz_path, result, gzip=True)
    raw = io.BytesIO()
    zipped = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0)
    stream = io.TextIOWrapper(zipped, encoding="utf-8", newline="\n")
    for line in text_path.read_text(encoding="utf-8").splitlines(keepends=True):
        stream.write(line)
    stream.flush()
    stream.detach()
    zipped.close()
    assert gz_path.read_bytes() == raw.getvalue()

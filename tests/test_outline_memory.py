"""Compact outline storage: small integers with a frame per ring, the same float64 vertices bit for bit."""

from __future__ import annotations

import pickle
from dataclasses import replace

import cv2
import numpy as np
import pytest

from ihc_score.cells import (
    UNITS_PER_PX,
    CellOutlines,
    DetectionParams,
    OutlineParts,
    TracedOutlines,
    expand_cells,
    trace_outlines,
)
from ihc_score.outputs import detections, write_detections_geojson
from ihc_score.run import concat_outlines
from test_detections import make_result


def _labels(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ragged nuclei (holes and corner-only joins from pixel noise) and their cells; ids that label both."""
    rng = np.random.default_rng(seed)
    g = np.arange(8, size, 16.0)
    cx, cy = (a.ravel() + rng.uniform(-5, 5, a.size) for a in np.meshgrid(g, g))
    seeds = np.ones((size, size), np.uint8)
    seeds[np.clip(np.round(cy).astype(int), 0, size - 1), np.clip(np.round(cx).astype(int), 0, size - 1)] = 0
    dist, near = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    nuclei = np.where(dist <= rng.uniform(2.5, 8.5, near.max() + 1)[near], near, 0).astype(np.int32)
    nuclei[rng.random(nuclei.shape) < 0.08] = 0
    cells = expand_cells(nuclei, mpp_um=0.5, params=DetectionParams())
    ids = np.intersect1d(np.unique(nuclei)[1:], np.unique(cells)[1:])
    return nuclei, cells, ids


def _tile(size: int, seed: int, rx: int, ry: int, ds: float) -> TracedOutlines:
    """A tile's outlines mapped to level-0 px as the workers map them."""
    nuclei, cells, ids = _labels(size, seed)
    return trace_outlines(nuclei, cells, ids).transform(ds, (rx + 0.5) * ds - 0.5, (ry + 0.5) * ds - 0.5)


def _float(o) -> CellOutlines:
    return CellOutlines(o.nucleus_xy, o.nucleus_offsets, o.cell_xy, o.cell_offsets)


def _same(a, b) -> None:
    """Bit for bit the same rings (float64 bytes and offsets)."""
    assert len(a) == len(b)
    for name in ("nucleus_xy", "cell_xy", "nucleus_offsets", "cell_offsets"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


def test_twentieths_give_back_the_traced_doubles():
    # every pixel edge c up to 100000 px, and c +- 0.05 as the chamfer computes it
    c = np.arange(-1, 200_001) + 0.5
    c = np.concatenate([c, -c[:1000]]) * 1.0
    for cut in (0.0, 0.05, -0.05):
        traced = c + cut
        q = np.round(traced * UNITS_PER_PX).astype(np.int64)
        assert (np.abs(q - traced * UNITS_PER_PX) < 1e-6).all()
        assert (q / float(UNITS_PER_PX)).tobytes() == traced.tobytes()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_traced_integers_map_like_floats(seed):
    nuclei, cells, ids = _labels(300 + 97 * seed, seed)
    traced = trace_outlines(nuclei, cells, ids)
    assert isinstance(traced, TracedOutlines) and traced.cell_q.dtype == np.int16
    assert (traced.cell_q % 10 != 0).any()  # chamfered vertices are there
    plain = _float(traced)  # the pixel-frame floats
    assert np.array_equal(plain.cell_xy * UNITS_PER_PX, traced.cell_q)
    ds, rx, ry = 1.9912 + seed, 31_013 * seed, 20_011
    mapped = traced.transform(ds, (rx + 0.5) * ds - 0.5, (ry + 0.5) * ds - 0.5)
    assert isinstance(mapped, TracedOutlines) and mapped.cell_q is traced.cell_q  # integers kept, frame set
    _same(mapped, plain.transform(ds, (rx + 0.5) * ds - 0.5, (ry + 0.5) * ds - 0.5))
    k = len(traced) // 2
    assert mapped.cell(k).tobytes() == plain.transform(ds, (rx + 0.5) * ds - 0.5, (ry + 0.5) * ds - 0.5).cell(k).tobytes()
    # a second mapping rounds twice: float64 outlines, as before
    twice = mapped.transform(2.0, 1.0, -3.0)
    assert isinstance(twice, CellOutlines)
    _same(twice, _float(mapped).transform(2.0, 1.0, -3.0))
    # the stored integers are four times smaller than float64, sent or kept
    assert mapped.nbytes < 0.3 * (plain.cell_xy.nbytes + plain.nucleus_xy.nbytes)
    assert len(pickle.dumps(mapped)) < 0.3 * len(pickle.dumps(_float(mapped)))


def test_large_label_images_use_wider_integers():
    labels = np.zeros((4, 2000), np.int32)
    labels[1:3, 1990:1995] = 1
    out = trace_outlines(labels, labels, np.array([1]))
    assert out.cell_q.dtype == np.int32
    assert np.array_equal(out.cell(0), [[1989.5, 0.5], [1989.5, 2.5], [1994.5, 2.5], [1994.5, 0.5]])


def _parts() -> list[TracedOutlines]:
    return [_tile(200, 7, 0, 0, 2.0), _tile(160, 8, 180, 0, 2.0), TracedOutlines.empty(), _tile(230, 9, 0, 150, 2.0)]


def test_concat_take_and_parts_agree_with_float_outlines():
    parts = _parts()
    floats = CellOutlines.concat([_float(p) for p in parts])
    joined = TracedOutlines.concat(parts)
    _same(joined, floats)
    rng = np.random.default_rng(0)
    keep = rng.random(len(floats)) < 0.8
    _same(TracedOutlines.concat(parts, keep=keep), floats.take(keep))
    view = OutlineParts.of(parts, keep=keep)
    assert all(a is b for a, b in zip(view.parts, parts))  # not copied
    kept = floats.take(keep)
    _same(view, kept)
    for index in (rng.permutation(len(kept)), np.sort(rng.choice(len(kept), 50)), np.array([-1, 0]), np.zeros(0, int)):
        _same(view.take(index), kept.take(index))
        _same(joined.take(index), floats.take(index))
    k = len(kept) - 3
    assert view.cell(k).tobytes() == kept.cell(k).tobytes() and view.nucleus(k + 2).tobytes() == kept.nucleus(k + 2).tobytes()
    _same(OutlineParts.concat([view, OutlineParts.of(parts[:1])]), CellOutlines.concat([kept, _float(parts[0])]))
    _same(view.transform(0.5, 1.0, 2.0), kept.transform(0.5, 1.0, 2.0))
    assert len(OutlineParts.empty()) == 0 and len(TracedOutlines.concat([])) == 0
    assert len(OutlineParts.of([], keep=np.zeros(0, bool))) == 0
    assert concat_outlines([]) is None
    assert isinstance(concat_outlines(parts, keep=keep, copy=False), OutlineParts)
    _same(concat_outlines(parts, keep=keep), kept)
    with pytest.raises(ValueError, match="keep"):
        OutlineParts.of(parts, keep=keep[1:])
    with pytest.raises(IndexError):
        view.take(np.array([len(view)]))


def test_invalid_traced_outlines_are_refused():
    a = _parts()[0]
    with pytest.raises(ValueError, match="integers"):
        replace(a, cell_q=a.cell_q.astype(np.float64))
    with pytest.raises(ValueError, match="ring_frame"):
        replace(a, ring_frame=a.ring_frame[1:])
    with pytest.raises(ValueError, match="frames"):
        replace(a, frames=np.array([[0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="cell_offsets"):
        replace(a, cell_offsets=a.cell_offsets[:-1])


def test_geojson_from_parts_equals_the_float_outlines_file(tmp_path, monkeypatch):
    parts = _parts()
    rng = np.random.default_rng(1)
    keep = rng.random(sum(len(p) for p in parts)) < 0.9
    view = OutlineParts.of(parts, keep=keep)
    base = make_result(int(np.ceil(np.sqrt(len(view)))))
    n = len(view)
    d = base.detail
    detail = replace(
        d, cells=d.cells.take(np.arange(n)), l0_x=d.l0_x[:n], l0_y=d.l0_y[:n][::-1].copy(), classes=d.classes[:n],
        membership=d.membership[:, :n], outlines=view,
    )  # fmt: skip
    as_parts = replace(base, detail=detail)
    as_floats = replace(base, detail=replace(detail, outlines=_float(view)))
    monkeypatch.setattr(detections, "_CHUNK_VERTICES", 1000)  # many chunks, each cut on its own
    write_detections_geojson(tmp_path / "parts.geojson", as_parts)
    monkeypatch.setattr(detections, "_CHUNK_VERTICES", 1 << 40)
    write_detections_geojson(tmp_path / "floats.geojson", as_floats)
    text = (tmp_path / "parts.geojson").read_bytes()
    assert text == (tmp_path / "floats.geojson").read_bytes() and text.count(b'"objectType":"cell"') == n


def test_row_chunks_bound_the_vertices_formatted_at_once(monkeypatch):
    view = OutlineParts.of(_parts())
    order = np.random.default_rng(2).permutation(len(view))
    monkeypatch.setattr(detections, "_CHUNK_VERTICES", 500)
    chunks = list(detections._row_chunks(order, view))
    assert np.array_equal(np.concatenate(chunks), order)
    sizes = np.diff(view.cell_offsets) + np.diff(view.nucleus_offsets)
    assert all(sizes[c].sum() <= 500 or len(c) == 1 for c in chunks) and len(chunks) > 10

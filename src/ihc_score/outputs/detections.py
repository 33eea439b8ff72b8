"""Per-cell evidence for QuPath: GeoJSON detections (the cell table: :mod:`ihc_score.outputs.cells_csv`).

:func:`write_detections_geojson` writes one slide's scored regions, excluded
areas and cells as a GeoJSON ``FeatureCollection`` in QuPath's object format
(QuPath >= 0.4, *File > Import objects*; ``PathObjectTypeAdapters`` in
QuPath's source is the reference):

* every scored region with an outline is an ``annotation`` classified
  ``Tumor``; its numbers are ``measurements`` (names prefixed
  ``ihc-score:`` so they do not collide with the counts QuPath computes
  itself), its text (call, reason, source, flags) is ``metadata``, which
  QuPath keeps as strings;
* every excluded area is an ``annotation`` classified ``Ignore*`` (QuPath's
  class for areas left out of analysis);
* every cell is a ``cell``: ``geometry`` is the cell outline,
  ``nucleusGeometry`` the nucleus outline, ``classification`` its class
  (``Negative``, ``1+``, ``2+``, ``3+``, ``Pigment`` for a cell left
  ungraded because brown pigment covers it; with a cell-type step, a scored
  cell's class has its type first, QuPath's derived class ``Tumor: 2+``,
  and a cell of a type the model does not score is its type, ``Lymphocyte``,
  ``Neutrophil``, ``Macrophage`` or ``Other``; colours of
  :mod:`ihc_score.outputs.palette`),
  ``measurements`` a flat object of QuPath's own measurement names
  (``"Nucleus: DAB OD mean"``, ...) and ``regions`` the list of the names of
  the scored regions its centroid lies in (a property QuPath ignores).

Conventions
-----------
* Coordinates are level-0 pixels of the slide (x right, y down), written
  with two decimals (0.01 px). Outlines run along the edges of the analysis
  pixels (:mod:`ihc_score.cells.outlines`). Cell centroids and outlines use the
  frame in which pixel centres sit at integers, QuPath the frame in which
  pixel corners do: QuPath shows everything half a level-0 pixel (about
  0.1 um) up and left of the pixels it belongs to.
* A measurement that is undefined (NaN, e.g. the cytoplasm of a cell walled
  in by its neighbours) is left out of the cell's ``measurements``: JSON has
  no NaN, and QuPath (``MeasurementList.putAll``) fails on ``null``, while a
  missing measurement reads as NaN in QuPath anyway.
* When the slide was scored without outlines, each cell is written with a
  ``Point`` geometry at its centroid and no nucleus.
* Cells are written sorted by centroid (y, then x), floats with fixed
  decimals, no time stamps and ``gzip`` headers with ``mtime = 0`` and no
  file name, so the same result gives the same bytes. Files are streamed to
  a temporary file beside the target and renamed over it.
"""

from __future__ import annotations

import gzip as gzip_module
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
import shapely
from shapely.geometry import mapping

from ihc_score.fileio import atomic_open
from ihc_score.outputs._json_text import fixed_strings as _fixed_strings
from ihc_score.outputs._json_text import ring_texts
from ihc_score.outputs.palette import (
    CLASS_COLOURS_RGB,
    CLASS_NAMES,
    EXCLUSION_COLOUR_RGB,
    LEFT_OUT_COLOUR_RGB,
    PIGMENT_COLOUR_RGB,
    REGION_COLOUR_RGB,
)
from ihc_score.score import CELL_TYPES, allred_intensity_score, allred_proportion_score

if TYPE_CHECKING:
    from ihc_score.cells import CellTable, Outlines
    from ihc_score.results import SlideDetail, SlideResult
    from ihc_score.score import RegionResult

__all__ = ["CELL_MEASUREMENTS", "write_detections_geojson"]

#: QuPath measurement name, :class:`~ihc_score.cells.measure.CellTable` column and
#: decimals written, for every cell measurement of the GeoJSON.
CELL_MEASUREMENTS: tuple[tuple[str, str, int], ...] = (
    ("Nucleus: Area \u00b5m^2", "nucleus_area_um2", 2),
    ("Nucleus: Hematoxylin OD mean", "hematoxylin_od_mean", 4),
    ("Nucleus: DAB OD mean", "dab_nucleus_mean", 4),
    ("Nucleus: DAB OD max", "dab_nucleus_max", 4),
    ("Cytoplasm: DAB OD mean", "dab_cytoplasm_mean", 4),
    ("Cytoplasm: DAB OD max", "dab_cytoplasm_max", 4),
    ("Cell: Area \u00b5m^2", "cell_area_um2", 2),
    ("Cell: DAB OD mean", "dab_cell_mean", 4),
    ("Cell: DAB OD max", "dab_cell_max", 4),
)

#: QuPath class of a cell left ungraded because pigment covers it.
PIGMENT_CLASS = "Pigment"

#: Cells formatted at a time (bounds the memory of the text being built).
_CHUNK = 8192
#: Outline vertices (cell and nucleus rings) formatted at a time, at most:
#: formatting holds about 150 bytes per vertex for a moment, about 10 MB
#: here, where :data:`_CHUNK` cells of 100 vertices each would hold over
#: 100 MB. Arrays of a few MB are also reused by the C allocator from one
#: chunk to the next, while larger ones are mapped afresh each time, and
#: faulting their pages in costs more than larger chunks save.
_CHUNK_VERTICES = 1 << 16
#: gzip level: 1 writes cell GeoJSON about 4 times faster than 6 for files
#: about 1.5 times larger (0.31 vs 0.18 MB per 1000 cells with outlines).
_GZIP_LEVEL = 1


def _detail(result: SlideResult) -> SlideDetail:
    if result.detail is None:
        raise ValueError(f"{result.slide}: the result has no per-cell detail (slide not scored in this run)")
    return result.detail


def _cell_order(detail: SlideDetail) -> np.ndarray:
    """Cells sorted by centroid row, then column, then original order."""
    n = len(detail.classes)
    return np.lexsort((np.arange(n), detail.l0_x, detail.l0_y))


def _region_patterns(detail: SlideDetail, names: list[str]) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Per cell, the index of its set of regions; and those sets (region names in result order)."""
    membership = np.asarray(detail.membership, dtype=bool)
    n = len(detail.classes)
    if membership.size == 0 or membership.shape[0] == 0:
        return np.zeros(n, dtype=np.int64), [()]
    packed = np.packbits(membership, axis=0).T  # (n_cells, ceil(n_regions / 8))
    unique, inverse = np.unique(packed, axis=0, return_inverse=True)
    bits = np.unpackbits(unique, axis=1)[:, : membership.shape[0]].astype(bool)
    sets = [tuple(names[i] for i in np.flatnonzero(row)) for row in bits]
    return inverse.ravel(), sets


# ---------------------------------------------------------------- streaming


@contextmanager
def _atomic_stream(path: Path, *, compress: bool) -> Iterator[IO[bytes]]:
    """A binary stream into :func:`~ihc_score.fileio.atomic_open` (callers write UTF-8).

    With ``compress``, gzip with ``mtime = 0`` and no file name in the header
    (the same text gives the same bytes, however it is cut into writes).

    Raises
    ------
    OutputError
        The folder cannot be written or the disk is full.
    """
    with atomic_open(path) as raw:
        if not compress:
            yield raw
            return
        zipped = gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0)
        yield zipped
        zipped.flush()  # a sync-flush marker before the end, as files written so far have
        zipped.close()


# ---------------------------------------------------------------- GeoJSON


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _utf8(obj: object) -> bytes:
    return _dumps(obj).encode("utf-8")


def _round_geometry(geom: shapely.Geometry) -> dict:
    """GeoJSON mapping of a shapely geometry, coordinates rounded to 0.01 px."""
    rounded = shapely.transform(geom, lambda xy: np.round(xy, 2))
    return mapping(rounded)


def _number(value: float, decimals: int) -> float | int | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), decimals)


def _region_feature(region: RegionResult) -> dict:
    """QuPath annotation of a scored region (``RegionResult``)."""
    c = region.counts
    numbers = {
        "ihc-score: Num cells": c.n,
        "ihc-score: Num Negative": c.n0,
        "ihc-score: Num 1+": c.n1,
        "ihc-score: Num 2+": c.n2,
        "ihc-score: Num 3+": c.n3,
        "ihc-score: H-score": _number(c.h_score, 2),
        "ihc-score: H-score low": _number(region.h_interval.low, 2),
        "ihc-score: H-score high": _number(region.h_interval.high, 2),
        "ihc-score: Positive %": _number(c.pct_positive, 2),
        "ihc-score: Positive % low": _number(region.pct_interval.low, 2),
        "ihc-score: Positive % high": _number(region.pct_interval.high, 2),
        "ihc-score: Allred proportion": allred_proportion_score(c),
        "ihc-score: Allred intensity": allred_intensity_score(c),
        "ihc-score: Area mm^2": _number(region.area_mm2, 4),
    }
    return {
        "type": "Feature",
        "geometry": _round_geometry(shapely.from_wkt(region.wkt)),
        "properties": {
            "objectType": "annotation",
            "name": region.name,
            "classification": {"name": "Tumor", "color": list(REGION_COLOUR_RGB)},
            "measurements": {k: v for k, v in numbers.items() if v is not None},
            "metadata": {
                "call": region.call.call,
                "call_reason": region.call.reason,
                "region_source": region.source,
                "region_flags": ";".join(sorted(set(region.flags))),
            },
        },
    }


def _exclusion_feature(wkt: str, k: int) -> dict:
    return {
        "type": "Feature",
        "geometry": _round_geometry(shapely.from_wkt(wkt)),
        "properties": {
            "objectType": "annotation",
            "name": f"Excluded {k}",
            "classification": {"name": "Ignore*", "color": list(EXCLUSION_COLOUR_RGB)},
        },
    }


#: One cell with outlines (``%s``: cell ring, nucleus ring, class, measurements, regions).
_CELL_POLYGON = (
    b'{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[%s]]},'
    b'"nucleusGeometry":{"type":"Polygon","coordinates":[[%s]]},'
    b'"properties":{"objectType":"cell","classification":%s,"measurements":{%s},"regions":%s}}'
)
#: One cell without outlines (``%s``: x, y, class, measurements, regions).
_CELL_POINT = (
    b'{"type":"Feature","geometry":{"type":"Point","coordinates":[%s,%s]},'
    b'"properties":{"objectType":"cell","classification":%s,"measurements":{%s},"regions":%s}}'
)


def _ring_strings(xy: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> list[str]:
    """Closed GeoJSON rings ``[[x,y],...,[x0,y0]]`` of the outlines ``rows``, 0.01 px (:func:`ring_texts`)."""
    return [f"[{t.decode('ascii')}]" for t in ring_texts(xy, offsets, rows)]


def _measurement_texts(cells: CellTable, rows: np.ndarray) -> list[bytes]:
    """Per cell, the inside of its ``measurements`` object (UTF-8); undefined (NaN) measurements left out."""
    # rows first, then float64: converting whole columns for every chunk would cost O(cells) per chunk
    values = np.stack([np.asarray(getattr(cells, col)[rows], np.float64) for _, col, _ in CELL_MEASUREMENTS], axis=1)
    names = [_dumps(name) for name, _, _ in CELL_MEASUREMENTS]
    decimals = [dec for _, _, dec in CELL_MEASUREMENTS]
    finite = np.isfinite(values)
    complete = finite.all(axis=1)
    template = (",".join(f"{n.replace('%', '%%')}:%.{dec}f" for n, dec in zip(names, decimals)) + "\x00").encode()
    n_complete = int(complete.sum())
    texts = (template * n_complete % tuple(values[complete].ravel().tolist())).split(b"\x00")[:-1]
    if n_complete == len(rows):
        return texts
    out = [b""] * len(rows)
    for i, text in zip(np.flatnonzero(complete).tolist(), texts):
        out[i] = text
    for i in np.flatnonzero(~complete).tolist():  # a few cells walled in by their neighbours
        out[i] = ",".join(
            f"{n}:" + f"%.{dec}f" % v for n, dec, v, ok in zip(names, decimals, values[i].tolist(), finite[i]) if ok
        ).encode()
    return out


def _row_chunks(order: np.ndarray, outlines: Outlines | None) -> Iterator[np.ndarray]:
    """``order`` in chunks of at most :data:`_CHUNK` cells and (with outlines) :data:`_CHUNK_VERTICES` vertices.

    A single cell with more vertices is a chunk of its own.
    """
    if outlines is None:
        for start in range(0, len(order), _CHUNK):
            yield order[start : start + _CHUNK]
        return
    n_vertices = np.diff(outlines.cell_offsets).take(order) + np.diff(outlines.nucleus_offsets).take(order)
    ends = np.cumsum(n_vertices)
    start = 0
    while start < len(order):
        before = int(ends[start - 1]) if start else 0
        stop = int(np.searchsorted(ends, before + _CHUNK_VERTICES, side="right"))
        stop = min(max(stop, start + 1), start + _CHUNK)  # one cell at least, however large
        yield order[start:stop]
        start = stop


def _cell_features(detail: SlideDetail, order: np.ndarray, region_names: list[str]) -> Iterator[bytes]:
    """The cells' JSON texts (UTF-8) in ``order``, joined by ``",\\n"``, a chunk of cells at a time."""
    pattern, sets = _region_patterns(detail, region_names)
    region_json = np.array([_utf8(list(s)) for s in sets], dtype=object)
    graded_names = CLASS_NAMES if detail.left_out is None else tuple(f"Tumor: {c}" for c in CLASS_NAMES)
    names = (*graded_names, PIGMENT_CLASS, *(t.capitalize() for t in CELL_TYPES))
    colours = (*CLASS_COLOURS_RGB, PIGMENT_COLOUR_RGB, *([LEFT_OUT_COLOUR_RGB] * len(CELL_TYPES)))
    class_json = np.array([_utf8({"name": name, "color": list(rgb)}) for name, rgb in zip(names, colours)],
                          dtype=object)
    shown = detail.shown_classes
    if detail.left_out is not None:  # a cell of a type not scored is shown as its type (QuPath: Lymphocyte, ...)
        shown = np.where(detail.left_out, 5 + np.asarray(detail.cell_type, np.int64), shown)
    outlines = detail.outlines
    for rows in _row_chunks(order, outlines):
        if outlines is not None:
            template = _CELL_POLYGON
            # Float64 level-0 vertices of these cells only (traced outlines are
            # kept as integers), gathered in storage order, which needs no
            # reordering of outlines kept in parts; written in ``rows`` order.
            by_row = np.argsort(rows)
            sub = outlines.take(rows.take(by_row))
            at = np.empty_like(by_row)
            at[by_row] = np.arange(len(rows))
            geometry = [
                ring_texts(sub.cell_xy, sub.cell_offsets, at),
                ring_texts(sub.nucleus_xy, sub.nucleus_offsets, at),
            ]
        else:
            template = _CELL_POINT
            geometry = [[s.encode() for s in _fixed_strings(values[rows], 2)] for values in (detail.l0_x, detail.l0_y)]
        fields = [
            *geometry,
            class_json[shown[rows]].tolist(),
            _measurement_texts(detail.cells, rows),
            region_json[pattern[rows]].tolist(),
        ]
        args: list[bytes] = [b""] * (len(fields) * len(rows))
        for k, column in enumerate(fields):  # interleaved: the arguments of one cell after another
            args[k :: len(fields)] = column
        yield ((template + b",\n") * len(rows) % tuple(args))[:-2]


def write_detections_geojson(path: str | Path, result: SlideResult, *, gzip: bool = False) -> None:
    """Write a scored slide's regions, excluded areas and cells as QuPath GeoJSON.

    Parameters
    ----------
    path : str or Path
        Target file (``.geojson``, or ``.geojson.gz`` with ``gzip``).
    result : SlideResult
        A slide scored in this run (with ``detail``); outlines are written
        when ``detail.outlines`` is set.
    gzip : bool
        Compress (the text is the same as without).

    Raises
    ------
    ValueError
        ``result`` has no per-cell detail.
    OutputError
        The file cannot be written; any earlier file at ``path`` is kept.
    """
    detail = _detail(result)
    region_names = [r.name for r in result.regions]
    order = _cell_order(detail)
    with _atomic_stream(Path(path), compress=gzip) as out:
        out.write(b'{"type":"FeatureCollection","features":[')
        sep = b"\n"
        for region in result.regions:
            if region.wkt:
                out.write(sep + _utf8(_region_feature(region)))
                sep = b",\n"
        for k, wkt in enumerate(detail.exclusions, start=1):
            out.write(sep + _utf8(_exclusion_feature(wkt, k)))
            sep = b",\n"
        for text in _cell_features(detail, order, region_names):
            out.write(sep + text)
            sep = b",\n"
        out.write(b"\n]}\n")

"""Per-cell evidence files: QuPath-importable GeoJSON detections and the cell table.

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
  (``Negative``, ``1+``, ``2+``, ``3+``, colours of :mod:`ihc_score.palette`),
  ``measurements`` a flat object of QuPath's own measurement names
  (``"Nucleus: DAB OD mean"``, ...) and ``regions`` the list of the names of
  the scored regions its centroid lies in (a property QuPath ignores).

Conventions
-----------
* Coordinates are level-0 pixels of the slide (x right, y down), written
  with two decimals (0.01 px). Outlines run along the edges of the analysis
  pixels (:mod:`ihc_score.outlines`). Cell centroids and outlines use the
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
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
import shapely
from shapely.geometry import mapping

from .fileio import atomic_open
from .palette import CLASS_COLOURS_RGB, CLASS_NAMES, EXCLUSION_COLOUR_RGB, REGION_COLOUR_RGB
from .score import CLASS_LABELS, allred_intensity_score, allred_proportion_score

if TYPE_CHECKING:
    from .pipeline import SlideDetail, SlideResult
    from .region_scores import RegionResult

__all__ = ["CELL_MEASUREMENTS", "CELL_COLUMNS", "write_detections_geojson", "write_cells_csv"]

#: QuPath measurement name, :class:`~ihc_score.measure.CellTable` column and
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

#: Columns of ``cells/<slide>.csv.gz`` and their decimals (None: not a float).
CELL_COLUMNS: tuple[tuple[str, int | None], ...] = (
    ("cell", None),
    ("l0_x", 2),
    ("l0_y", 2),
    ("a_x", 2),
    ("a_y", 2),
    ("nucleus_area_um2", 2),
    ("cell_area_um2", 2),
    ("hematoxylin_od_mean", 4),
    ("dab_nucleus_mean", 4),
    ("dab_nucleus_max", 4),
    ("dab_cytoplasm_mean", 4),
    ("dab_cytoplasm_max", 4),
    ("dab_cell_mean", 4),
    ("dab_cell_max", 4),
    ("class", None),
    ("regions", None),
)

#: Cells formatted at a time (bounds the memory of the text being built).
_CHUNK = 8192
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
def _atomic_text(path: Path, *, compress: bool) -> Iterator[IO[str]]:
    """A UTF-8 text stream into :func:`~ihc_score.export.atomic_open`.

    With ``compress``, gzip with ``mtime = 0`` and no file name in the header
    (the same text gives the same bytes).

    Raises
    ------
    OutputError
        The folder cannot be written or the disk is full.
    """
    with atomic_open(path) as raw:
        zipped = None
        if compress:
            zipped = gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0)
        text = io.TextIOWrapper(zipped if zipped is not None else raw, encoding="utf-8", newline="\n")
        yield text
        text.flush()
        text.detach()
        if zipped is not None:
            zipped.close()


# ---------------------------------------------------------------- GeoJSON


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


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


def _fixed_strings(values: np.ndarray, decimals: int) -> list[str]:
    """Each value with fixed decimals; NaN and infinities as ``""``."""
    v = np.asarray(values, dtype=np.float64)
    text = (f"%.{decimals}f\x00" * len(v) % tuple(v.tolist())).split("\x00")[:-1]
    bad = np.flatnonzero(~np.isfinite(v))
    for i in bad:
        text[i] = ""
    return text


def _digits(values: np.ndarray) -> np.ndarray:
    """Number of decimal digits of non-negative integers (1 for 0)."""
    n = np.ones(values.shape, dtype=np.int64)
    top = int(values.max(initial=0))
    k = 1
    while 10**k <= top:
        n += values >= 10**k
        k += 1
    return n


def _put_fixed(buf: np.ndarray, pos: np.ndarray, hundredths: np.ndarray) -> np.ndarray:
    """Write integers counted in hundredths as ``[-]d.dd`` ASCII into ``buf`` at ``pos``; return the lengths.

    The last byte of ``buf`` is scratch space (digits a number does not have go there).
    """
    neg = hundredths < 0
    a = np.abs(hundredths)
    whole, frac = a // 100, a % 100
    nd = _digits(whole)
    buf[pos[neg]] = ord("-")
    first = pos + neg
    last_digit = first + nd - 1
    scratch = len(buf) - 1
    rest = whole
    for k in range(int(nd.max(initial=1))):
        buf[np.where(nd > k, last_digit - k, scratch)] = rest % 10 + 48
        rest = rest // 10
    buf[first + nd] = ord(".")
    buf[first + nd + 1] = frac // 10 + 48
    buf[first + nd + 2] = frac % 10 + 48
    return neg + nd + 3


def _ring_strings(xy: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> list[str]:
    """Closed GeoJSON rings ``[[x,y],...,[x0,y0]]`` of the outlines ``rows``, 0.01 px.

    Formatted for all rings at once: the digits are computed with numpy into
    one ASCII buffer, which is then cut into one string per ring.
    """
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts + 1  # the first vertex again, closing the ring
    ring_first = np.cumsum(lengths) - lengths
    total = int(lengths.sum())
    gather = np.repeat(starts - ring_first, lengths) + np.arange(total)
    gather[ring_first + lengths - 1] = starts
    v = np.round(xy[gather] * 100.0).astype(np.int64)
    is_first = np.zeros(total, dtype=bool)
    is_first[ring_first] = True
    is_last = np.zeros(total, dtype=bool)
    is_last[ring_first + lengths - 1] = True
    x_len = (v[:, 0] < 0) + _digits(np.abs(v[:, 0]) // 100) + 3
    y_len = (v[:, 1] < 0) + _digits(np.abs(v[:, 1]) // 100) + 3
    vertex_len = is_first + 1 + x_len + 1 + y_len + 2  # "[" "[x" "," "y]" then "," or "]"
    vertex_end = np.cumsum(vertex_len)
    vertex_start = vertex_end - vertex_len
    buf = np.empty(int(vertex_end[-1]) + 1, dtype=np.uint8)  # + scratch byte
    buf[vertex_start[is_first]] = ord("[")
    x_pos = vertex_start + is_first + 1
    buf[x_pos - 1] = ord("[")
    _put_fixed(buf, x_pos, v[:, 0])
    buf[x_pos + x_len] = ord(",")
    y_pos = x_pos + x_len + 1
    _put_fixed(buf, y_pos, v[:, 1])
    buf[y_pos + y_len] = ord("]")
    buf[vertex_end - 1] = np.where(is_last, ord("]"), ord(","))
    text = buf[:-1].tobytes().decode("ascii")
    return [text[a:b] for a, b in zip(vertex_start[ring_first].tolist(), vertex_end[ring_first + lengths - 1].tolist())]


def _cell_features(detail: SlideDetail, order: np.ndarray, region_names: list[str]) -> Iterator[str]:
    """One JSON text per cell, in ``order``."""
    pattern, sets = _region_patterns(detail, region_names)
    region_json = [_dumps(list(s)) for s in sets]
    class_json = [
        _dumps({"name": name, "color": list(rgb)}) for name, rgb in zip(CLASS_NAMES, CLASS_COLOURS_RGB)
    ]
    names = [_dumps(name) for name, _, _ in CELL_MEASUREMENTS]
    outlines = detail.outlines
    cells = detail.cells
    for start in range(0, len(order), _CHUNK):
        rows = order[start : start + _CHUNK]
        columns = [_fixed_strings(getattr(cells, col)[rows], dec) for _, col, dec in CELL_MEASUREMENTS]
        if outlines is not None:
            cell_rings = _ring_strings(outlines.cell_xy, outlines.cell_offsets, rows)
            nucleus_rings = _ring_strings(outlines.nucleus_xy, outlines.nucleus_offsets, rows)
        else:
            xs = _fixed_strings(detail.l0_x[rows], 2)
            ys = _fixed_strings(detail.l0_y[rows], 2)
        classes = detail.classes[rows].tolist()
        patterns = pattern[rows].tolist()
        for j in range(len(rows)):
            measurements = ",".join(f"{n}:{col[j]}" for n, col in zip(names, columns) if col[j])
            if outlines is not None:
                geometry = (
                    f'"geometry":{{"type":"Polygon","coordinates":[{cell_rings[j]}]}},'
                    f'"nucleusGeometry":{{"type":"Polygon","coordinates":[{nucleus_rings[j]}]}}'
                )
            else:
                geometry = f'"geometry":{{"type":"Point","coordinates":[{xs[j]},{ys[j]}]}}'
            yield (
                f'{{"type":"Feature",{geometry},"properties":{{"objectType":"cell",'
                f'"classification":{class_json[classes[j]]},"measurements":{{{measurements}}},'
                f'"regions":{region_json[patterns[j]]}}}}}'
            )


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
    with _atomic_text(Path(path), compress=gzip) as out:
        out.write('{"type":"FeatureCollection","features":[')
        sep = "\n"
        for region in result.regions:
            if region.wkt:
                out.write(sep + _dumps(_region_feature(region)))
                sep = ",\n"
        for k, wkt in enumerate(detail.exclusions, start=1):
            out.write(sep + _dumps(_exclusion_feature(wkt, k)))
            sep = ",\n"
        for text in _cell_features(detail, order, region_names):
            out.write(sep + text)
            sep = ",\n"
        out.write("\n]}\n")


# ---------------------------------------------------------------- CSV


def write_cells_csv(path: str | Path, result: SlideResult, *, gzip: bool = True) -> None:
    """Write one row per cell of a scored slide: measurements, centroid, class and regions.

    Columns are :data:`CELL_COLUMNS`: ``cell`` numbers the rows 1..n in the
    order written (by centroid row, then column), ``l0_x``, ``l0_y`` are the
    centroid in level-0 px, ``a_x``, ``a_y`` in the slide's analysis frame,
    then every :class:`~ihc_score.measure.CellTable` measurement, ``class``
    (``0``, ``1+``, ``2+``, ``3+``) and ``regions`` (names of the scored
    regions holding the centroid, joined by ``;``; empty for none). NaN is
    written as an empty field.

    Raises
    ------
    ValueError
        ``result`` has no per-cell detail.
    OutputError
        The file cannot be written; any earlier file at ``path`` is kept.
    """
    detail = _detail(result)
    order = _cell_order(detail)
    pattern, sets = _region_patterns(detail, [r.name for r in result.regions])
    region_text = [_csv_field(";".join(s)) for s in sets]
    sources = {"l0_x": detail.l0_x, "l0_y": detail.l0_y}
    with _atomic_text(Path(path), compress=gzip) as out:
        out.write(",".join(name for name, _ in CELL_COLUMNS) + "\n")
        for start in range(0, len(order), _CHUNK):
            rows = order[start : start + _CHUNK]
            columns = [[str(i) for i in range(start + 1, start + len(rows) + 1)]]
            for name, decimals in CELL_COLUMNS[1:-2]:
                values = sources[name][rows] if name in sources else getattr(detail.cells, name)[rows]
                columns.append(_fixed_strings(values, decimals))
            columns.append([CLASS_LABELS[c] for c in detail.classes[rows].tolist()])
            columns.append([region_text[p] for p in pattern[rows].tolist()])
            out.write("".join(",".join(fields) + "\n" for fields in zip(*columns)))


def _csv_field(text: str) -> str:
    """A CSV field, quoted when it holds a comma, quote or line break."""
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text

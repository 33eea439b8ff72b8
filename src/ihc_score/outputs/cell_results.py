"""Per-cell results of a scored slide, kept compactly: ``cells/<slide>.parquet``.

Every cell of the slide, one row each, in the order of the cell table
(centroid row, then column): its centroid, every measurement, class, type
and the probability of that type (``type_p``, in hundredths), regions, and
its nucleus and cell outlines as :data:`~ihc_score.cells.RAYS` radii from
the centroid (:mod:`ihc_score.cells.outline_rays`). Numbers are
kept as integers of a fixed step (the decimals the cell table CSV writes,
e.g. 0.0001 OD), so they compress to a few bits each; with Parquet's
byte-stream split and zstd a slide takes about 0.04 MB per 1000 cells.
``ihc-score detections`` writes QuPath GeoJSON from these files, and the
validation commands score regions again from them, without reading the
slide.

The file's schema metadata (key ``ihc-score``) is JSON: the format, the
slide's name, pixel sizes, region names, excluded areas (WKT), cell types
and the types the model scores, and each column's step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ihc_score.cells import (
    RADIUS_STEP_UM,
    RAYS,
    CellTable,
    codes_to_radii,
    radial_outlines,
    radial_radii,
    radii_to_codes,
)
from ihc_score.fileio import atomic_open
from ihc_score.outputs.detections import _cell_order, _detail, _region_patterns
from ihc_score.score import CELL_TYPES

if TYPE_CHECKING:
    from ihc_score.results import SlideDetail, SlideResult

__all__ = [
    "CELL_RESULTS_FORMAT", "CELL_RESULT_COLUMNS", "PIGMENT_CODE", "CellResults", "write_cell_results",
    "read_cell_results", "read_cell_results_meta",
]

CELL_RESULTS_FORMAT = "ihc-score-cells/1"
#: Columns kept as integers and their step (value = integer * step); centroids in level-0 px.
CELL_RESULT_COLUMNS: tuple[tuple[str, float], ...] = (
    ("l0_x", 0.01),
    ("l0_y", 0.01),
    ("nucleus_area_um2", 0.01),
    ("cell_area_um2", 0.01),
    ("hematoxylin_od_mean", 0.0001),
    ("hematoxylin_od_sd", 0.0001),
    ("nucleus_elongation", 0.001),
    ("nucleus_roughness", 0.001),
    ("dab_nucleus_mean", 0.0001),
    ("dab_nucleus_max", 0.0001),
    ("dab_cytoplasm_mean", 0.0001),
    ("dab_cytoplasm_max", 0.0001),
    ("dab_cell_mean", 0.0001),
    ("dab_cell_max", 0.0001),
)
#: ``class``: 0-3 (0, 1+, 2+, 3+), 4 a cell left ungraded for pigment.
PIGMENT_CODE = 4
#: Step of the ``type_p`` column (uint8): a type's probability in hundredths.
TYPE_P_STEP = 0.01
_META_KEY = b"ihc-score"
#: Parquet encodings: rows go by centroid row, so ``l0_y`` grows slowly (delta); the other integers vary from
#: cell to cell, and their high bytes are mostly zero (byte stream split) - a few bytes per cell each, measured.
_ENCODINGS = {name: "DELTA_BINARY_PACKED" if name == "l0_y" else "BYTE_STREAM_SPLIT" for name, _ in CELL_RESULT_COLUMNS}


@dataclass(frozen=True, eq=False)
class CellResults:
    """The per-cell results of one slide, as read back.

    Attributes
    ----------
    l0_x, l0_y : ndarray of float64
        Centroids, level-0 px.
    table : CellTable
        Every measurement (NaN where none), ``a_x``/``a_y`` in the analysis frame.
    classes : ndarray of int8
        0-3, or :data:`PIGMENT_CODE` for a cell left ungraded.
    cell_type : ndarray of int8 or None
        Index into :data:`~ihc_score.score.CELL_TYPES`; None without a cell-type step.
    cell_type_p : ndarray of float32 or None
        The probability of that type (0-1, to 0.01).
    regions : list of tuple of str
        Names of the scored regions holding each cell's centroid.
    nucleus_codes, cell_codes : ndarray of uint8, shape (n, RAYS)
        Outline radii in steps of :data:`~ihc_score.cells.RADIUS_STEP_UM`.
    meta : dict
        The file's metadata (see the module documentation).
    """

    l0_x: np.ndarray
    l0_y: np.ndarray
    table: CellTable
    classes: np.ndarray
    cell_type: np.ndarray | None
    cell_type_p: np.ndarray | None
    regions: list[tuple[str, ...]]
    nucleus_codes: np.ndarray
    cell_codes: np.ndarray
    meta: dict[str, Any]

    def detail(self, region_names: list[str]) -> SlideDetail:
        """A :class:`~ihc_score.results.SlideDetail` for the writers of detections, rows as in this file.

        ``region_names`` orders the membership rows (the slide result's
        regions); the outlines are the ray polygons; there is no tissue mask.
        """
        from ihc_score.results import SlideDetail

        index = {name: i for i, name in enumerate(region_names)}
        membership = np.zeros((len(region_names), len(self.l0_x)), bool)
        for k, names in enumerate(self.regions):
            for name in names:
                if name in index:
                    membership[index[name], k] = True
        mpp = float(self.meta["mpp_um"])
        pigmented = self.classes == PIGMENT_CODE
        scored = self.meta.get("scored_types")
        left_out = None
        if self.cell_type is not None and scored:
            left_out = ~np.isin(self.cell_type, [CELL_TYPES.index(t) for t in scored])
        return SlideDetail(
            cells=self.table, l0_x=self.l0_x, l0_y=self.l0_y,
            classes=np.where(pigmented, 0, self.classes).astype(np.int8), membership=membership,
            outlines=radial_outlines(self.l0_x, self.l0_y, codes_to_radii(self.nucleus_codes, mpp_um=mpp),
                                     codes_to_radii(self.cell_codes, mpp_um=mpp)),
            tissue=np.zeros((1, 1), bool), tissue_downsample=1.0, exclusions=tuple(self.meta.get("exclusions", ())),
            pigmented=pigmented, cell_type=self.cell_type, left_out=left_out, cell_type_p=self.cell_type_p,
        )


def write_cell_results(path: str | Path, result: SlideResult, *, scored_types: tuple[str, ...] | None = None) -> None:
    """Write the per-cell results of a scored slide (atomically).

    Parameters
    ----------
    path : path
        ``cells/<stem>.parquet``.
    result : SlideResult
        With its per-cell ``detail``.
    scored_types : tuple of str, optional
        Cell types the model scores (with a cell-type step), so a reader can
        tell the left-out cells.

    Raises
    ------
    ValueError
        ``result`` has no per-cell detail.
    OutputError
        The file cannot be written; any earlier file at ``path`` is kept.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    detail = _detail(result)
    order = _cell_order(detail)
    columns: dict[str, Any] = {}
    for name, step in CELL_RESULT_COLUMNS:
        source = getattr(detail, name) if name in ("l0_x", "l0_y") else getattr(detail.cells, name)
        values = np.asarray(source, np.float64)[order]
        finite = np.isfinite(values)
        columns[name] = pa.array(np.rint(np.where(finite, values, 0.0) / step).astype(np.int64), mask=~finite)
    columns["class"] = pa.array(np.asarray(detail.shown_classes, np.int8)[order])
    if detail.cell_type is not None:
        columns["type"] = pa.array(np.asarray(detail.cell_type, np.int8)[order])
    if detail.cell_type_p is not None:
        columns["type_p"] = pa.array(np.rint(np.asarray(detail.cell_type_p)[order] / TYPE_P_STEP).astype(np.uint8))
    pattern, sets = _region_patterns(detail, [r.name for r in result.regions])
    columns["regions"] = pa.DictionaryArray.from_arrays(
        pa.array(pattern[order].astype(np.int32)), pa.array([";".join(s) for s in sets])
    )
    for name, codes in zip(("nucleus_radii", "cell_radii_over_nucleus"), _outline_codes(detail, result.mpp_um, order)):
        columns[name] = pa.FixedSizeBinaryArray.from_buffers(pa.binary(RAYS), len(order), [None, pa.py_buffer(codes)])
    meta = {
        "format": CELL_RESULTS_FORMAT, "slide": result.slide, "mpp_um": result.mpp_um,
        "analysis_mpp_um": result.analysis_mpp_um, "regions": [r.name for r in result.regions],
        "exclusions": list(detail.exclusions), "cell_types": list(CELL_TYPES), "scored_types": scored_types,
        "steps": dict(CELL_RESULT_COLUMNS), "rays": RAYS, "radius_step_um": RADIUS_STEP_UM,
    }
    table = pa.table(columns).replace_schema_metadata({_META_KEY: json.dumps(meta, sort_keys=True).encode()})
    with atomic_open(Path(path)) as fh:  # an OSError (full disk) becomes an OutputError, nothing left at path
        pq.write_table(table, fh, compression="zstd", compression_level=9, use_dictionary=["regions"],
                       column_encoding=_ENCODINGS, write_statistics=False)


def _outline_codes(detail: SlideDetail, mpp_um: float, order: np.ndarray) -> tuple[bytes, bytes]:
    """The nucleus ray codes, and the cell's minus the nucleus' (mod 256), of the cells in ``order``.

    The cell's rays are kept as the cytoplasm's thickness along them, small
    numbers that compress better than the radii (1.3 bytes per cell less);
    modulo 256 they give back any code exactly. All zero without outlines.
    """
    n = len(order)
    if detail.outlines is None:
        empty = bytes(n * RAYS)
        return empty, empty
    nucleus_r, cell_r = radial_radii(detail.outlines, detail.l0_x, detail.l0_y)
    nucleus, cell = (radii_to_codes(r[order], mpp_um=mpp_um) for r in (nucleus_r, cell_r))
    return nucleus.tobytes(), (cell - nucleus).tobytes()  # uint8 arithmetic wraps modulo 256


def read_cell_results_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a ``cells/<stem>.parquet`` (slide name, pixel sizes, regions ...), from its footer alone.

    Raises
    ------
    ValueError
        Not such a file, or of another format version.
    """
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as err:  # pyarrow raises its own types for damaged files
        raise ValueError(f"{path}: not a readable per-cell results file ({err})") from None
    raw = (schema.metadata or {}).get(_META_KEY)
    meta = json.loads(raw) if raw else {}
    if meta.get("format") != CELL_RESULTS_FORMAT:
        raise ValueError(f"{path}: not an {CELL_RESULTS_FORMAT} file (format {meta.get('format')!r})")
    return meta


def read_cell_results(path: str | Path) -> CellResults:
    """Read a ``cells/<stem>.parquet`` written by :func:`write_cell_results`.

    Raises
    ------
    ValueError
        Not such a file, or of another format version.
    OSError
        It cannot be read.
    """
    import pyarrow.parquet as pq

    meta = read_cell_results_meta(path)
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises its own types for damaged files
        raise ValueError(f"{path}: not a readable per-cell results file ({err})") from None
    values = {}
    for name, step in CELL_RESULT_COLUMNS:
        col = table.column(name)
        values[name] = np.where(col.is_null().to_numpy(zero_copy_only=False), np.nan,
                                col.fill_null(0).to_numpy().astype(np.float64) * step)
    ds = float(meta["analysis_mpp_um"]) / float(meta["mpp_um"])
    cells = CellTable(
        a_x=(values["l0_x"] + 0.5) / ds - 0.5, a_y=(values["l0_y"] + 0.5) / ds - 0.5,
        **{name: values[name] for name, _ in CELL_RESULT_COLUMNS[2:]},
    )
    regions = [tuple(s.split(";")) if s else () for s in table.column("regions").to_pylist()]
    nucleus, thickness = (np.frombuffer(b"".join(table.column(c).to_pylist()), np.uint8).reshape(-1, RAYS)
                          for c in ("nucleus_radii", "cell_radii_over_nucleus"))
    return CellResults(
        l0_x=values["l0_x"], l0_y=values["l0_y"], table=cells,
        classes=table.column("class").to_numpy().astype(np.int8),
        cell_type=table.column("type").to_numpy().astype(np.int8) if "type" in table.column_names else None,
        cell_type_p=(table.column("type_p").to_numpy().astype(np.float32) * np.float32(TYPE_P_STEP)
                     if "type_p" in table.column_names else None),
        regions=regions, nucleus_codes=nucleus, cell_codes=nucleus + thickness, meta=meta,  # uint8: modulo 256
    )

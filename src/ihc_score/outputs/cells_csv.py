"""The cell table ``cells/<slide>.csv.gz``: one row per cell of a scored slide.

Rows in the order of the detections GeoJSON (by centroid row, then column),
floats with fixed decimals and NaN as an empty field, written through the
same atomic stream (:mod:`ihc_score.outputs.detections`), so the same result gives
the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ihc_score.outputs._json_text import fixed_strings as _fixed_strings
from ihc_score.outputs.detections import _CHUNK, _atomic_stream, _cell_order, _detail, _region_patterns
from ihc_score.score import CELL_TYPES, CLASS_LABELS

if TYPE_CHECKING:
    from ihc_score.results import SlideResult

__all__ = ["CELL_COLUMNS", "write_cells_csv"]

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
    ("hematoxylin_od_sd", 4),
    ("nucleus_elongation", 3),
    ("nucleus_roughness", 3),
    ("dab_nucleus_mean", 4),
    ("dab_nucleus_max", 4),
    ("dab_cytoplasm_mean", 4),
    ("dab_cytoplasm_max", 4),
    ("dab_cell_mean", 4),
    ("dab_cell_max", 4),
    ("class", None),
    ("type", None),
    ("type_p", None),
    ("regions", None),
)


def write_cells_csv(path: str | Path, result: SlideResult, *, gzip: bool = True) -> None:
    """Write one row per cell of a scored slide: measurements, centroid, class and regions.

    Columns are :data:`CELL_COLUMNS`: ``cell`` numbers the rows 1..n in the
    order written (by centroid row, then column), ``l0_x``, ``l0_y`` are the
    centroid in level-0 px, ``a_x``, ``a_y`` in the slide's analysis frame,
    then every :class:`~ihc_score.cells.measure.CellTable` measurement, ``class``
    (``0``, ``1+``, ``2+``, ``3+``, or ``pigment`` for a cell left ungraded),
    ``type`` (its cell type, :data:`~ihc_score.score.CELL_TYPES`; empty
    without a cell-type step), ``type_p`` (the probability the cell-type
    model gives that type, 0-1 to 0.01; empty without the step) and
    ``regions`` (names of the scored regions holding the centroid, joined by
    ``;``; empty for none). NaN is written as an empty field.

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
    with _atomic_stream(Path(path), compress=gzip) as out:
        out.write((",".join(name for name, _ in CELL_COLUMNS) + "\n").encode())
        for start in range(0, len(order), _CHUNK):
            rows = order[start : start + _CHUNK]
            columns = [[str(i) for i in range(start + 1, start + len(rows) + 1)]]
            for name, decimals in CELL_COLUMNS[1:-4]:
                values = sources[name][rows] if name in sources else getattr(detail.cells, name)[rows]
                columns.append(_fixed_strings(values, decimals))
            labels = (*CLASS_LABELS, "pigment")
            columns.append([labels[c] for c in detail.shown_classes[rows].tolist()])
            types = [""] * len(rows) if detail.cell_type is None else [CELL_TYPES[t] for t in detail.cell_type[rows]]
            columns.append(types)
            type_p = detail.cell_type_p
            columns.append([""] * len(rows) if type_p is None else _fixed_strings(np.asarray(type_p)[rows], 2))
            columns.append([region_text[p] for p in pattern[rows].tolist()])
            out.write("".join(",".join(fields) + "\n" for fields in zip(*columns)).encode("utf-8"))


def _csv_field(text: str) -> str:
    """A CSV field, quoted when it holds a comma, quote or line break."""
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text

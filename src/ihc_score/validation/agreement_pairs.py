"""Reference scores of pathologists, read and paired with the tool's rows of a results folder.

A reference CSV has the item columns ``slide`` and ``region`` (one row per
metastasis, matched with ``metastases.csv``) or ``case`` alone (matched with
``cases.csv``), any of ``h_score``, ``pct_positive`` and ``call``, and an
optional ``rater`` column (one row per rater per item). Nothing is dropped
silently: reference rows without a tool row, tool rows without a reference
row, and paired items the tool did not score are all listed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ihc_score.errors import ValidationInputError
from ihc_score.validation.agreement import CALLS
from ihc_score.validation.results_dir import number, read_table

__all__ = ["METRICS", "NUMERIC_METRICS", "CASE_TOOL_COLUMNS", "Reference", "Paired", "parse_call", "read_reference",
           "read_tool", "pair"]

#: Metrics a reference may give, in the order they are reported.
METRICS = ("h_score", "pct_positive", "call")
NUMERIC_METRICS = ("h_score", "pct_positive")
_RANGES = {"h_score": (0.0, 300.0), "pct_positive": (0.0, 100.0)}
#: Columns of ``cases.csv`` that hold the tool's case-level value of each metric.
CASE_TOOL_COLUMNS = {"h_score": "max_metastasis_h_score", "pct_positive": "pooled_pct_positive", "call": "call"}
_CALL_WORDS = {
    "positive": "positive", "pos": "positive", "1": "positive",
    "negative": "negative", "neg": "negative", "0": "negative",
    "indeterminate": "indeterminate", "indet": "indeterminate", "ind": "indeterminate",
}  # fmt: skip

Key = tuple[str, ...]
#: One item's values: a float per numeric metric (NaN when not given), a call or None.
Values = dict[str, Any]


def parse_call(text: str, *, where: str) -> str | None:
    """A call as ``positive``, ``negative`` or ``indeterminate`` (any case; also pos/neg, 1/0); None when empty."""
    if text == "":
        return None
    call = _CALL_WORDS.get(text.strip().lower())
    if call is None:
        raise ValidationInputError(f"{where}: call {text!r} is not one of {', '.join(CALLS)} (or pos/neg, 1/0)")
    return call


@dataclass(frozen=True)
class Reference:
    """A reference file: its level, item columns, metrics, raters and rows ``(line, key, rater, values)``."""

    path: Path
    level: str
    key_columns: tuple[str, ...]
    metrics: tuple[str, ...]
    raters: tuple[str, ...]
    rows: tuple[tuple[int, Key, str, Values], ...]

    @property
    def several_raters(self) -> bool:
        return len(self.raters) > 1


def read_reference(path: str | Path) -> Reference:
    """Read and check a reference CSV (see the module docstring).

    Raises
    ------
    ValidationInputError
        Missing item or metric columns, no rows, an empty item field, a value
        that is not a number or a call, a score outside its range, or two rows
        for the same item and rater.
    """
    path = Path(path)
    rows = [{k.lower(): v for k, v in row.items()} for row in read_table(path, what="reference file")]
    if not rows:
        raise ValidationInputError(f"{path}: the reference file has no rows")
    columns = set(rows[0])
    if {"slide", "region"} <= columns:
        level, key_columns = "metastasis", ("slide", "region")
    elif "case" in columns and "slide" not in columns and "region" not in columns:
        level, key_columns = "case", ("case",)
    else:
        raise ValidationInputError(
            f"{path}: the reference file needs the columns slide and region (one row per metastasis) or case alone "
            f"(one row per case); it has {', '.join(sorted(columns))}"
        )
    metrics = tuple(m for m in METRICS if m in columns)
    if not metrics:
        raise ValidationInputError(f"{path}: the reference file needs at least one of the columns {', '.join(METRICS)}")
    parsed = [_reference_row(path, i + 2, row, key_columns, metrics) for i, row in enumerate(rows)]
    _refuse_duplicates(path, parsed, key_columns, "rater" in columns)
    raters = tuple(sorted({rater for _, _, rater, _ in parsed}))
    return Reference(path, level, key_columns, metrics, raters, tuple(parsed))


def _reference_row(
    path: Path, line: int, row: dict[str, str], key_columns: tuple[str, ...], metrics: tuple[str, ...]
) -> tuple[int, Key, str, Values]:
    where = f"{path}, line {line}"
    key = tuple(row.get(c, "") for c in key_columns)
    if any(not part for part in key):
        raise ValidationInputError(f"{where}: empty {' or '.join(key_columns)}; every row must name its item")
    if "rater" in row and not row["rater"]:
        raise ValidationInputError(f"{where}: empty rater; every row must name its rater (or leave out the column)")
    values: Values = {}
    for m in metrics:
        if m == "call":
            values[m] = parse_call(row.get(m, ""), where=where)
            continue
        value = number(row.get(m, ""), where=f"{where}, column {m}")
        lo, hi = _RANGES[m]
        if not (math.isnan(value) or lo <= value <= hi):
            raise ValidationInputError(f"{where}: {m} {value:g} is outside {lo:g}-{hi:g}")
        values[m] = value
    return line, key, row.get("rater", ""), values


def _refuse_duplicates(
    path: Path, rows: list[tuple[int, Key, str, Values]], key_columns: tuple[str, ...], has_rater: bool
) -> None:
    first: dict[tuple[Key, str], int] = {}
    for line, key, rater, _ in rows:
        if (key, rater) in first:
            item = ", ".join(f"{c} {v}" for c, v in zip(key_columns, key))
            whose = f" by rater {rater!r}" if has_rater else ""
            fix = "one row per item and rater" if has_rater else "one row per item (or a rater column)"
            raise ValidationInputError(
                f"{path}, line {line}: {item}{whose} again (first on line {first[(key, rater)]}); give {fix}"
            )
        first[(key, rater)] = line


def read_tool(results_dir: str | Path, level: str) -> tuple[Path, dict[Key, Values]]:
    """The tool's values per item: ``metastases.csv`` by (slide, region) or ``cases.csv`` by case.

    Returns
    -------
    (Path, dict)
        The table's path, and per item its ``h_score``, ``pct_positive``
        (NaN when not scored) and ``call`` (None when not scored).
    """
    what = "metastases" if level == "metastasis" else "cases"
    key_columns = ("slide", "region") if level == "metastasis" else ("case",)
    sources = {m: m for m in METRICS} if level == "metastasis" else CASE_TOOL_COLUMNS
    path = Path(results_dir) / f"{what}.csv"
    rows = read_table(results_dir, required=(*key_columns, *sources.values()), what=what)
    out: dict[Key, Values] = {}
    for i, row in enumerate(rows):
        where = f"{path}, line {i + 2}"
        key = tuple(row[c] for c in key_columns)
        if key in out:
            raise ValidationInputError(f"{where}: {', '.join(key)} appears twice; score the slides again")
        out[key] = {
            m: parse_call(row[col], where=where) if m == "call" else number(row[col], where=f"{where}, column {col}")
            for m, col in sources.items()
        }
    return path, out


@dataclass(frozen=True)
class Paired:
    """Reference rows paired with tool rows.

    Attributes
    ----------
    items : tuple of Key
        The tool's keys of the paired items, sorted.
    tool : dict
        Key -> the tool's values.
    ratings : dict
        Key -> rater -> the reference values.
    unmatched_reference, unmatched_tool, not_scored : tuple of dict
        Reference rows without a tool row (item columns, ``rater``,
        ``line``); tool rows without any reference row (item columns); paired
        items with a metric the tool left empty (item columns, ``metrics``).
    """

    reference: Reference
    items: tuple[Key, ...]
    tool: dict[Key, Values]
    ratings: dict[Key, dict[str, Values]]
    unmatched_reference: tuple[dict[str, Any], ...]
    unmatched_tool: tuple[dict[str, Any], ...]
    not_scored: tuple[dict[str, Any], ...]

    def describe(self, key: Key) -> dict[str, str]:
        """The item's columns and values, e.g. ``{"slide": "A.svs", "region": "met1"}``."""
        return dict(zip(self.reference.key_columns, key))


def pair(reference: Reference, tool: dict[Key, Values]) -> Paired:
    """Pair each reference row with the tool's row of the same item.

    A metastasis-level slide name also matches the tool's slide name without
    its extension (``A`` for ``A.svs``) when that is unambiguous.
    """
    alias: dict[Key, Key | None] = {}
    if reference.level == "metastasis":
        for key in tool:
            short = (Path(key[0]).stem, key[1])
            if short != key:
                alias[short] = None if short in alias else key
    ratings: dict[Key, dict[str, Values]] = {}
    unmatched_reference = []
    for line, key, rater, values in reference.rows:
        found = key if key in tool else alias.get(key)
        if found is None:
            unmatched_reference.append({**dict(zip(reference.key_columns, key)), "rater": rater, "line": line})
            continue
        if rater in ratings.setdefault(found, {}):
            raise ValidationInputError(
                f"{reference.path}, line {line}: {', '.join(key)} names the same item as another row of rater "
                f"{rater!r} (with or without the slide's extension); give one row per item and rater"
            )
        ratings[found][rater] = values
    items = tuple(sorted(ratings))
    unmatched_tool = tuple(dict(zip(reference.key_columns, key)) for key in sorted(tool) if key not in ratings)
    not_scored = []
    for key in items:
        empty = [m for m in reference.metrics if tool[key][m] is None or tool[key][m] != tool[key][m]]
        if empty:
            not_scored.append({**dict(zip(reference.key_columns, key)), "metrics": empty})
    return Paired(reference, items, {k: tool[k] for k in items}, ratings, tuple(unmatched_reference), unmatched_tool,
                  tuple(not_scored))

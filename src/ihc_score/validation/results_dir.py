"""Read a results folder written by ``ihc-score score``: its tables and its ``run.json``.

The validation commands work from these files alone, never from the slides,
so a study can be run again on a folder kept for years.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from ihc_score.errors import ValidationInputError

__all__ = ["read_table", "read_run", "number", "model_of_results"]

#: Tables of a results folder, by the name the commands use.
TABLES = {"slides": "slides.csv", "metastases": "metastases.csv", "cases": "cases.csv"}


def read_table(path: str | Path, *, required: tuple[str, ...] = (), what: str = "table") -> list[dict[str, str]]:
    """Rows of a CSV file (or of a results folder's table, given as ``DIR`` plus ``what`` in :data:`TABLES`).

    Parameters
    ----------
    path : path
        A CSV file, or a results folder when ``what`` names one of its tables.
    required : tuple of str
        Columns that must be present.
    what : str
        ``slides``, ``metastases`` or ``cases`` to read that table of the
        folder ``path``; any other text names the file in error messages.

    Raises
    ------
    ValidationInputError
        The file is missing, not UTF-8 CSV, or lacks a required column.
    """
    path = Path(path)
    if what in TABLES and path.is_dir():
        path = path / TABLES[what]
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
            columns = [c.strip() for c in reader.fieldnames or ()]
    except FileNotFoundError:
        hint = " (is it a folder written by ihc-score score?)" if what in TABLES else ""
        raise ValidationInputError(f"{path}: no such file{hint}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValidationInputError(f"{path}: cannot read it as a UTF-8 CSV file ({err})") from None
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValidationInputError(
            f"{path}: the {what} needs the column(s) {', '.join(missing)}; it has {', '.join(columns) or 'none'}"
        )
    return rows


def read_run(results_dir: str | Path) -> dict[str, Any]:
    """The ``run.json`` of a results folder (the batch's provenance), or ``{}`` when it has none."""
    path = Path(results_dir) / "run.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ValidationInputError(f"{path}: unreadable ({err}); score the slides again into this folder") from None


def model_of_results(results_dir: str | Path) -> dict[str, str]:
    """``id``, ``version`` and ``sha256`` of the model the folder's results were made with ({} when unknown)."""
    model = read_run(results_dir).get("model") or {}
    return {k: str(model[k]) for k in ("id", "version", "sha256") if k in model}


def number(text: str, *, where: str = "") -> float:
    """A table field as a float: NaN for an empty field.

    Raises
    ------
    ValidationInputError
        The field is neither empty nor a number.
    """
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ValidationInputError(f"{where}: {text!r} is not a number").with_traceback(None) from None

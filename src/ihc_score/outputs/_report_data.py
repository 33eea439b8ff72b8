"""Reading a results folder for the batch report (:mod:`ihc_score.outputs.report`): the CSV tables, ``run.json``,
the stored regions and the QC picture names, with one-line errors that say what to do."""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ihc_score.errors import OutputError

__all__ = ["_Results", "_read_results", "_num", "_int"]


@dataclass(frozen=True)
class _Results:
    """What a results folder holds, as read from its files."""

    out_dir: Path
    slides: list[dict[str, str]]
    metastases: list[dict[str, str]]
    cases: list[dict[str, str]]
    run: dict[str, Any]
    regions: dict[tuple[str, str, tuple[int, ...]], dict[str, Any]]
    qc_files: frozenset[str]
    control: dict[str, Any] | None = None


def _read_results(out_dir: Path) -> _Results:
    hint = "give the --out folder of `ihc-score score`"
    if not out_dir.is_dir():
        raise OutputError(f"{out_dir} is not a folder; {hint}")
    tables = {}
    for name in ("slides.csv", "metastases.csv", "cases.csv"):
        try:
            with open(out_dir / name, newline="", encoding="utf-8") as fh:
                tables[name] = list(csv.DictReader(fh))
        except FileNotFoundError:
            raise OutputError(f"{out_dir} is not an ihc-score results folder ({name} is missing); {hint}") from None
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise OutputError(f"cannot read {out_dir / name}: {err}; score the slides again") from err
    try:
        run = json.loads((out_dir / "run.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{out_dir} is not an ihc-score results folder (run.json is missing); {hint}") from None
    except (OSError, ValueError) as err:
        raise OutputError(f"cannot read {out_dir / 'run.json'}: {err}; score the slides again") from err
    if not isinstance(run, dict):
        raise OutputError(f"{out_dir / 'run.json'} is not an ihc-score run record; score the slides again")
    try:
        qc_files = frozenset(e.name for e in os.scandir(out_dir / "qc") if e.name.lower().endswith((".png", ".webp")))
    except OSError:
        qc_files = frozenset()
    return _Results(
        out_dir, tables["slides.csv"], tables["metastases.csv"], tables["cases.csv"], run, _stored_regions(out_dir),
        qc_files, _control(out_dir),
    )


def _control(out_dir: Path) -> dict[str, Any] | None:
    """The batch's control-slide verdict (``control.json``, written by ``ihc-score monitor``), if any and readable."""
    try:
        control = json.loads((out_dir / "control.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return control if isinstance(control, dict) and "line" in control else None


def _stored_regions(out_dir: Path) -> dict[tuple[str, str, tuple[int, ...]], dict[str, Any]]:
    """Stored regions keyed by (slide, region, class counts); unreadable or stale store files are skipped.

    Keying on the counts too matches each row of ``metastases.csv`` to the
    stored result it came from, even when two slides share a file name or
    the store still holds results of an earlier run.
    """
    found: dict[tuple[str, str, tuple[int, ...]], dict[str, Any]] = {}
    for p in sorted((out_dir / "store").glob("*.json")):
        try:
            result = json.loads(p.read_text(encoding="utf-8"))["result"]
            for g in result["regions"]:
                found[(str(result["slide"]), str(g["name"]), tuple(int(c) for c in g["counts"]))] = g
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def _num(text: str | None) -> float | None:
    try:
        v = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _int(text: str | None) -> int:
    v = _num(text)
    return int(v) if v is not None else 0

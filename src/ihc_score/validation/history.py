"""The control-slide history: one SQLite file (standard library ``sqlite3``), one table of runs.

Each row is one batch's control: where and when the batch was scored, the
control's H-score, the model, the baseline segment it belongs to and what the
Westgard rules said when it was added. A batch is identified by its results
folder's absolute path and ``run.json``'s ``started_utc``; adding it again for
the same control is refused by the table's unique key, never duplicated.

A segment is a run of batches scored with one model (and one lot of control
material): its limits come from its own runs only. ``PRAGMA user_version``
marks the file as an ihc-score control history (schema 1).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from ihc_score.errors import ValidationInputError

__all__ = ["ControlRun", "open_history", "history_transaction", "control_runs", "find_run", "insert_run"]

SCHEMA_VERSION = 1

_TABLE = "control_runs"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL,
    control TEXT NOT NULL,
    region TEXT NOT NULL,
    results_dir TEXT NOT NULL,
    started_utc TEXT NOT NULL,
    h_score REAL NOT NULL,
    pct_positive REAL,
    n_cells INTEGER,
    model_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    segment INTEGER NOT NULL,
    baseline_n INTEGER NOT NULL,
    target_mean REAL,
    target_sd REAL,
    z REAL,
    status TEXT NOT NULL,
    flagged TEXT NOT NULL,
    recorded_utc TEXT NOT NULL,
    UNIQUE (batch_id, control)
)
"""


@dataclass(frozen=True)
class ControlRun:
    """One batch's control, as stored.

    Attributes
    ----------
    batch_id : str
        ``<results folder's absolute path> @ <started_utc>``.
    control, region : str
        The control slide (``slide`` of ``metastases.csv``) and its region.
    results_dir, started_utc : str
        The batch's folder and ``run.json``'s start time (ISO 8601, UTC).
    h_score : float
        0-300.
    pct_positive : float or None
        Percent of cells positive, 0-100.
    n_cells : int or None
    model_id, model_version, model_sha256 : str
        The scoring model of the batch.
    segment : int
        Baseline segment, 1 for a control's first model; a new one starts with ``--new-baseline``.
    baseline_n : int
        Runs of the segment its limits are estimated from.
    target_mean, target_sd : float or None
        The laboratory's limits in force for this run, if any (H-score units).
    z : float or None
        ``(h_score - mean) / SD``; None while the baseline is collected.
    status : str
        ``collecting baseline``, ``in control``, ``warning`` or ``out of control``.
    flagged : str
        Rules the run broke, comma-separated (``""`` for none).
    recorded_utc : str
        When the row was added (ISO 8601, UTC).
    """

    batch_id: str
    control: str
    region: str
    results_dir: str
    started_utc: str
    h_score: float
    pct_positive: float | None
    n_cells: int | None
    model_id: str
    model_version: str
    model_sha256: str
    segment: int
    baseline_n: int
    target_mean: float | None
    target_sd: float | None
    z: float | None
    status: str
    flagged: str
    recorded_utc: str

    @property
    def rules(self) -> tuple[str, ...]:
        """The flagged rules as a tuple."""
        return tuple(r for r in self.flagged.split(",") if r)


_COLUMNS = tuple(f.name for f in fields(ControlRun))


def open_history(path: str | Path) -> sqlite3.Connection:
    """Open (creating on first use) a control history; the connection is in autocommit mode.

    Use :func:`history_transaction` around every change so a failure leaves the file as it was.

    Raises
    ------
    ValidationInputError
        The file cannot be opened, is not SQLite, or is a database of something else.
    """
    path = Path(path)
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    except sqlite3.Error as err:
        raise ValidationInputError(f"{path}: cannot open the control history ({err}); check --history") from None
    try:
        _check_schema(conn, path)
    except sqlite3.Error as err:
        conn.close()
        raise ValidationInputError(f"{path}: not a readable control history ({err}); check --history") from None
    except ValidationInputError:
        conn.close()
        raise
    return conn


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version == 0 and not tables - {"sqlite_sequence"}:
        with history_transaction(conn):
            conn.execute(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return
    if version != SCHEMA_VERSION or _TABLE not in tables:
        raise ValidationInputError(
            f"{path}: an SQLite file but not an ihc-score control history (schema {version}); choose another --history"
        )
    columns = {row[1] for row in conn.execute(f"PRAGMA table_info({_TABLE})")}
    missing = [c for c in _COLUMNS if c not in columns]
    if missing:
        raise ValidationInputError(f"{path}: the control history lacks the column(s) {', '.join(missing)}")


@contextlib.contextmanager
def history_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception (the file is then unchanged).

    IMMEDIATE takes the write lock at the start, so two batches added at the
    same time are judged one after the other, each seeing the other's run.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as err:
        raise ValidationInputError(f"the control history cannot be locked for writing ({err})") from None
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as err:
        raise ValidationInputError(f"the control history cannot be written ({err})") from None


def _row(values: tuple) -> ControlRun:
    return ControlRun(*values)


def control_runs(conn: sqlite3.Connection, control: str) -> list[ControlRun]:
    """Every run of ``control``, in the order they were added (which is the batches' order)."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM {_TABLE} WHERE control = ? ORDER BY id"
    return [_row(tuple(r)) for r in conn.execute(sql, (control,))]


def find_run(conn: sqlite3.Connection, batch_id: str, control: str) -> ControlRun | None:
    """The stored run of ``control`` in batch ``batch_id``, or None."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM {_TABLE} WHERE batch_id = ? AND control = ?"
    row = conn.execute(sql, (batch_id, control)).fetchone()
    return _row(tuple(row)) if row else None


def insert_run(conn: sqlite3.Connection, run: ControlRun) -> None:
    """Add a run (inside :func:`history_transaction`).

    Raises
    ------
    ValidationInputError
        The batch is already in the history for this control.
    """
    sql = f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    try:
        conn.execute(sql, astuple(run))
    except sqlite3.IntegrityError:
        raise ValidationInputError(f"batch {run.batch_id} is already in the history for {run.control}") from None

"""Safe file writing: atomic files, department-readable permissions, safe names.

No dependency on the rest of the package, so every module that writes a
file can use it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import OutputError

__all__ = ["atomic_open", "atomic_write", "check_writable", "safe_name"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """Open ``path`` for writing bytes through a temporary file renamed over it on success.

    A reader, or a rerun after a crash, sees the old file or the new one,
    never half of one; on an exception the temporary file is removed and
    ``path`` is unchanged. For outputs too large to hold in memory (a
    million cells' detections), write to the returned file piece by piece.

    Raises
    ------
    OutputError
        The folder is not writable or the disk is full; ``path`` is unchanged.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are for the whole department
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise OutputError(f"cannot write {path}: {_os_reason(err)}") from err
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`).

    Raises
    ------
    OutputError
        The folder is not writable or the disk is full; ``path`` is unchanged.
    """
    with atomic_open(path) as fh:
        fh.write(data)


def _os_reason(err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return "the disk is full; free space or choose another --out folder"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied; choose a writable --out folder"
    return err.strerror or str(err)


def safe_name(text: str, *, max_len: int = 120) -> str:
    """A file-name part made from any text (slide or region name).

    Letters and digits of any script, ``-``, ``_``, ``.``, brackets and spaces are kept,
    every other character becomes ``_``; leading dots and spaces are dropped
    so no name can be hidden, ``.`` or ``..``. Never empty.
    """
    kept = "".join(c if c.isalnum() or c in "-_.() " else "_" for c in text).lstrip(". ").rstrip()
    return kept[:max_len] or "_"


def check_writable(folder: Path) -> None:
    """Fail early, before any work, when the output folder cannot be written.

    Raises
    ------
    OutputError
    """
    atomic_write(Path(folder) / ".write-test", b"")
    try:
        (Path(folder) / ".write-test").unlink()
    except OSError as err:
        raise OutputError(f"cannot write in {folder}: {_os_reason(err)}") from err

"""Safe file writing: atomic files, department-readable permissions, safe names.

No dependency on the rest of the package, so every module that writes a
file can use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ihc_score.errors import OutputError

__all__ = [
    "atomic_open", "atomic_write", "check_writable", "output_lock", "remove_stale_temporaries", "safe_name", "file_sha256",
]

#: Name of a temporary file of :func:`atomic_open`: ``.<name>.<8 random characters>.tmp`` (``tempfile.mkstemp``).
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


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
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full (or the quota used up); free space or choose another --out folder"
    if err.errno == errno.EFBIG:
        return "the file is larger than this system allows (file size limit); choose another --out folder"
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


@contextlib.contextmanager
def output_lock(
    folder: Path,
    *,
    lock_name: str = ".ihc-score.lock",
    busy: str = "another ihc-score batch is writing into {folder}; wait for it to end or choose another --out folder",
) -> Iterator[None]:
    """Hold ``folder`` for one batch, so that a second batch writing into it stops at once.

    The lock is an ``flock`` on ``<folder>/<lock_name>``, held by the kernel
    for this process: a batch killed at any moment releases it. ``busy`` is
    the message when another process holds it (``{folder}`` is filled in).

    Raises
    ------
    OutputError
        Another process holds the lock, or the folder cannot be written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / lock_name, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    except OSError as err:
        raise OutputError(f"cannot write in {folder}: {_os_reason(err)}") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(busy.format(folder=folder)) from None
        yield
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path, subfolders: tuple[str, ...] = ()) -> list[Path]:
    """Remove the temporary files that writes killed half-way left in ``folder`` and its ``subfolders``.

    Call only while holding :func:`output_lock`, so that no live write's
    temporary file is taken.

    Returns
    -------
    list of Path
        The files removed.
    """
    removed = []
    for d in (Path(folder), *(Path(folder) / s for s in subfolders)):
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            if _TEMPORARY.fullmatch(e.name) and e.is_file(follow_symlinks=False):
                try:
                    os.unlink(e.path)
                    removed.append(Path(e.path))
                except FileNotFoundError:
                    pass
                except OSError as err:
                    raise OutputError(f"cannot remove {e.path}: {_os_reason(err)}") from err
    return removed


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB blocks (a slide of gigabytes is never held in memory).

    Raises
    ------
    OSError
        The file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""Which files a batch scores, and the names its outputs give them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ihc_score.fileio import safe_name

__all__ = ["SLIDE_EXTENSIONS", "OUTPUT_SUBFOLDERS", "is_output_folder", "discover_slides", "output_stems", "case_of"]

#: File endings scored when a folder is given (lower case).
SLIDE_EXTENSIONS = (
    ".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".bif", ".svslide",
    ".dcm", ".png", ".jpg", ".jpeg",
)  # fmt: skip


#: What marks a folder as ihc-score's output: the lock every batch takes (kept after it ends), or a finished
#: batch's tables (a copy without the hidden lock file). Names alone: this layer reads no results.
OUTPUT_LOCK = ".ihc-score.lock"
OUTPUT_TABLES = ("run.json", "slides.csv")

#: Subfolders of an output folder holding the tool's own files (its QC PNGs would pass for slides).
OUTPUT_SUBFOLDERS = ("store", "qc", "detections", "cells")


def is_output_folder(folder: Path) -> bool:
    """Whether ihc-score has written into ``folder`` (its lock file, or ``run.json`` with ``slides.csv``)."""
    folder = Path(folder)
    return (folder / OUTPUT_LOCK).is_file() or all((folder / name).is_file() for name in OUTPUT_TABLES)


def discover_slides(
    paths: Iterable[str | Path],
    *,
    exclude: Path | None = None,
    on_skip: Callable[[Path, tuple[str, ...]], None] | None = None,
) -> list[Path]:
    """Slide files under the given files and folders, sorted, without duplicates.

    Folders are searched recursively for :data:`SLIDE_EXTENSIONS`; hidden
    files and folders are skipped, and so are the :data:`OUTPUT_SUBFOLDERS`
    of ``exclude`` (the output folder) and of every folder ihc-score wrote
    into before (:func:`is_output_folder`). Only those subfolders are
    skipped: slides in an output folder itself (``--out`` equal to an input
    folder) are found. A file named explicitly is taken whatever its ending.

    Parameters
    ----------
    paths : iterable of str or Path
    exclude : Path, optional
        The output folder of this run.
    on_skip : callable, optional
        Called once per earlier output folder met (as walked from the given
        path; never ``exclude``) with the names of its subfolders not searched.
    """
    found: set[Path] = set()
    told: set[Path] = set()
    excl = exclude.resolve() if exclude else None
    for p in map(Path, paths):
        if not p.is_dir():
            found.add(p.resolve())
            continue
        for folder, dirs, files in os.walk(p):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            is_out = here.resolve() == excl
            if is_out or is_output_folder(here):
                pruned = tuple(d for d in dirs if d in OUTPUT_SUBFOLDERS)
                dirs[:] = [d for d in dirs if d not in OUTPUT_SUBFOLDERS]
                if pruned and not is_out and on_skip and here.resolve() not in told:
                    told.add(here.resolve())
                    on_skip(here, pruned)
            found.update(
                (here / f).resolve()
                for f in files
                if not f.startswith(".") and Path(f).suffix.lower() in SLIDE_EXTENSIONS and (here / f).is_file()
            )
    return sorted(found, key=lambda f: (f.name, str(f)))


def output_stems(slides: Sequence[Path], names: dict[Path, str] | None = None) -> dict[Path, str]:
    """A readable, unique file-name stem per slide for ``qc/``, ``detections/`` and ``cells/``.

    The slide's name (``names[path]``, default its file name) without its
    ending, made safe; when two slides of the batch share it (same name in
    two folders), each gets a short hash of its path appended.
    """
    stems = {p: safe_name(case_of(Path(names[p] if names else p.name))) for p in slides}
    seen: dict[str, int] = {}
    for stem in stems.values():
        seen[stem] = seen.get(stem, 0) + 1
    return {
        p: stem if seen[stem] == 1 else f"{stem}-{hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:8]}"
        for p, stem in stems.items()
    }


def case_of(slide: Path) -> str:
    """A slide's file name without its slide ending (``A 12.svs`` -> ``A 12``; ``x.ome.tiff`` keeps ``x.ome``)."""
    name = slide.name
    for ext in sorted(SLIDE_EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return slide.stem

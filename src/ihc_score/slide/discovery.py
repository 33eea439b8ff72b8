"""Which files a batch scores, and the names its outputs give them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from ihc_score.fileio import safe_name

__all__ = ["SLIDE_EXTENSIONS", "discover_slides", "output_stems", "case_of"]

#: File endings scored when a folder is given (lower case).
SLIDE_EXTENSIONS = (
    ".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".bif", ".svslide",
    ".dcm", ".png", ".jpg", ".jpeg",
)  # fmt: skip


def discover_slides(paths: Iterable[str | Path], *, exclude: Path | None = None) -> list[Path]:
    """Slide files under the given files and folders, sorted, without duplicates.

    Folders are searched recursively for :data:`SLIDE_EXTENSIONS`; hidden
    files and anything under ``exclude`` (the output folder) are skipped. A
    file named explicitly is taken whatever its ending.
    """
    found: set[Path] = set()
    excl = exclude.resolve() if exclude else None
    for p in map(Path, paths):
        if p.is_dir():
            for f in p.rglob("*"):
                if (
                    f.is_file()
                    and f.suffix.lower() in SLIDE_EXTENSIONS
                    and not any(part.startswith(".") for part in f.relative_to(p).parts)
                    and not (excl and excl in f.resolve().parents)
                ):
                    found.add(f.resolve())
        else:
            found.add(p.resolve())
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

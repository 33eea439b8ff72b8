"""Which slides of an inbox have stopped changing: the files of each slide, their signature, the settle rule.

A scanner writes a slide over seconds to minutes, and a file read half-way
is scored wrongly or not at all. Whether a writer still holds a file open
cannot be asked portably (network shares do not tell), so the rule is time:
a slide is *settled* once every file it is made of has kept its size and
modification time over ``settle_s`` seconds of polling, on this process's
monotonic clock (the clock of a network share's server may differ from
ours, so modification times are compared with each other, never with our
clock). Everything here is pure but :func:`slide_members`,
:func:`signature` and :func:`observe`, which read the file system.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ihc_score.regions import find_annotation_file
from ihc_score.slide import discover_slides

__all__ = ["Sighting", "Signature", "changed_slides", "observe", "settled", "signature", "slide_members", "update_sightings"]

#: The state of a slide's files: ``(path, size in bytes, modification time in ns)`` per file, in a fixed order.
#: A member listed but gone when looked at has size and time -1.
Signature = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Sighting:
    """A slide's signature and since when (monotonic seconds) it has been seen unchanged.

    ``since`` is the first poll that saw this signature: a change between two
    polls is seen at the later one, so the settle time is never shortened.
    """

    signature: Signature
    since: float


def slide_members(slide: Path, annotations_dir: Path | None = None) -> list[Path]:
    """The files a slide is read from, the slide file first.

    * MRXS: ``x.mrxs`` and every file under its data folder ``x/``, hidden
      ones included (a temporary file there means the scanner is writing).
    * DICOM: OpenSlide reads a DICOM slide from all the ``.dcm`` files of its
      folder, so each of them is a member of every ``.dcm`` slide there.
    * The annotation file the batch would read (``<stem>.geojson/.json/.xml``
      beside the slide or in ``annotations_dir``), when present.

    Raises
    ------
    OSError
        The slide's folder cannot be listed.
    """
    slide = Path(slide)
    members = [slide]
    suffix = slide.suffix.lower()
    if suffix == ".mrxs":
        data = slide.with_suffix("")
        for folder, _dirs, files in os.walk(data):
            members += sorted(Path(folder) / f for f in files)
    elif suffix == ".dcm":
        members += sorted(e for e in slide.parent.iterdir() if e.suffix.lower() == ".dcm" and e != slide)
    annotation = find_annotation_file(slide, annotations_dir)
    if annotation is not None:
        members.append(annotation)
    return members


def signature(slide: Path, annotations_dir: Path | None = None) -> Signature | None:
    """The size and modification time of each of a slide's files (:func:`slide_members`); None when the slide is gone."""
    try:
        members = slide_members(slide, annotations_dir)
    except FileNotFoundError:
        return None
    except OSError:
        members = [slide]  # a folder that cannot be listed: the batch says why when it reads the slide
    sig = []
    for m in members:
        try:
            st = os.stat(m)
        except OSError as err:
            if m == slide and isinstance(err, FileNotFoundError):
                return None
            st = None  # listed, then removed (a change like any other), or not to be looked at
        sig.append((str(m), st.st_size if st else -1, st.st_mtime_ns if st else -1))
    return tuple(sig)


def observe(inbox: Path, out_dir: Path | None = None, annotations_dir: Path | None = None) -> dict[Path, Signature]:
    """The signature of every slide under ``inbox`` now (``discover_slides``: hidden files and outputs skipped).

    Raises
    ------
    OSError
        ``inbox`` cannot be listed (a network share gone): the caller keeps
        what it saw before rather than forget every slide.
    """
    os.listdir(inbox)  # discovery walks past an unreadable folder in silence
    found = {}
    for slide in discover_slides([inbox], exclude=out_dir):
        sig = signature(slide, annotations_dir)
        if sig is not None:
            found[slide] = sig
    return found


def update_sightings(
    previous: Mapping[Path, Sighting], seen: Mapping[Path, Signature], now: float
) -> dict[Path, Sighting]:
    """Fold one poll into the sightings.

    Parameters
    ----------
    previous : mapping of Path to Sighting
        The sightings before this poll.
    seen : mapping of Path to Signature
        Every slide present now (:func:`observe`).
    now : float
        Monotonic time of the poll, seconds.

    Returns
    -------
    dict of Path to Sighting
        A slide seen with the same signature keeps its ``since``; a new or
        changed one starts at ``now``; one no longer seen is forgotten (a
        file that comes back starts again).
    """
    out = {}
    for path, sig in seen.items():
        before = previous.get(path)
        out[path] = before if before is not None and before.signature == sig else Sighting(sig, now)
    return out


def settled(sightings: Mapping[Path, Sighting], now: float, settle_s: float) -> dict[Path, Signature]:
    """The slides unchanged for at least ``settle_s`` seconds at ``now``, with their signatures."""
    return {p: s.signature for p, s in sightings.items() if now - s.since >= settle_s}


def changed_slides(ready: Mapping[Path, Signature], scored: Mapping[Path, Signature]) -> list[Path]:
    """The settled slides that are new, or changed, since the signatures last ``scored`` (sorted).

    A slide only gone from ``ready`` is not a change: an inbox on a network
    share that is briefly unmounted looks empty, and must not empty the tables.
    """
    return sorted(p for p, sig in ready.items() if scored.get(p) != sig)

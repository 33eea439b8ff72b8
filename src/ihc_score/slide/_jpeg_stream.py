"""Checks of one JPEG stream's marker structure, before it is handed to libjpeg-turbo (private).

OpenSlide turns libjpeg warnings into errors and imagecodecs ignores them,
so a tile whose entropy-coded data holds a marker libjpeg would stop at (or a
zero-filled block of a damaged copy) is left to OpenSlide, which reports the
damage: :func:`well_formed` tells which.
"""

from __future__ import annotations

import re

__all__ = ["defines_restart", "well_formed"]

#: Entropy-coded data with a run of this many zero bytes is treated as damaged (zero-filled).
_MAX_ZERO_RUN = 64
_ZERO_RUN = bytes(_MAX_ZERO_RUN)
#: An ``FF`` in entropy-coded data followed by anything but a stuffed ``00`` or an ``FF`` fill byte
#: (or, with a restart interval, a restart marker ``D0``-``D7``).
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xff]")
_MARKER_IN_RESTART_SCAN = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")


def defines_restart(stream: bytes) -> bool:
    """True if the marker segments of a JPEG (tables) stream hold a DRI with a non-zero interval."""
    pos = 2
    while pos + 4 <= len(stream) and stream[pos] == 0xFF:
        marker = stream[pos + 1]
        length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        if marker == 0xDD and length >= 4 and pos + 6 <= len(stream):
            return int.from_bytes(stream[pos + 4 : pos + 6], "big") > 0
        if marker in (0xD9, 0xDA):
            break
        pos += 2 + length
    return False


def well_formed(raw: bytes, restart_markers: bool) -> bool:
    """Check the marker structure of one tile's JPEG stream.

    Accepts SOI, length-delimited marker segments up to SOS, entropy-coded
    data holding only stuffed ``FF 00`` (``FF D0``-``FF D7`` restart markers
    when a restart interval is defined, ``FF`` fill bytes) and a final EOI.
    Any other marker inside the scan would make libjpeg warn, which OpenSlide
    treats as an error. A run of 64 or more zero bytes in the scan (a
    zero-filled block of a damaged copy, which real encoders do not write with
    the standard Huffman tables) also fails: the tile is then read by
    OpenSlide, which reports the damage when libjpeg notices it.
    """
    n = len(raw)
    if n < 4 or raw[:2] != b"\xff\xd8" or raw[-2:] != b"\xff\xd9":
        return False
    pos = 2
    restart = restart_markers
    while True:
        if pos + 4 > n or raw[pos] != 0xFF:
            return False
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        length = int.from_bytes(raw[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > n - 2:
            return False
        if marker == 0xDD and length >= 4:
            restart = int.from_bytes(raw[pos + 4 : pos + 6], "big") > 0
        pos += 2 + length
        if marker == 0xDA:
            break
        if marker in (0xD8, 0xD9) or 0xD0 <= marker <= 0xD7:
            return False
    # The scan is raw[pos : n - 2]; searched in place with bytes and regex
    # scans in C (a tenth of the time of numpy masks over every byte).
    end = n - 2
    if end > pos and raw[end - 1] == 0xFF:
        return False
    marker_in_scan = _MARKER_IN_RESTART_SCAN if restart else _MARKER_IN_SCAN
    if marker_in_scan.search(raw, pos, end) is not None:
        return False
    return raw.find(_ZERO_RUN, pos, end) < 0

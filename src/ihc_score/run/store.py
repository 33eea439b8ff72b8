"""Per-slide result store, so a rerun reuses what is already scored.

One JSON file per slide under ``<out>/store/``, written atomically when the
slide is finished. A stored result is reused only when the slide file (size,
modification time and a hash of its first and last MiB), the model fingerprint
and the pixel-size option are all the same as now.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ihc_score.fileio import atomic_write, safe_name
from ihc_score.results import SlideResult
from ihc_score.score import Call, ClassCounts, Interval, RegionResult
from ihc_score.stain import StainVectors
from ihc_score.tissue import ExcludedAreas

__all__ = ["STORE_FORMAT", "file_fingerprint", "store_path", "save_result", "load_result", "stored_results"]

STORE_FORMAT = "ihc-score-slide-result/8"
_EDGE = 1 << 20


def file_fingerprint(path: Path) -> str:
    """Identity of a slide file: size, mtime and sha256 of its first and last MiB.

    Reading the ends instead of the whole file keeps a rerun over a
    department's backlog fast; a rescanned or edited slide changes them.
    """
    st = os.stat(path)
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(_EDGE))
        if st.st_size > _EDGE:
            fh.seek(max(_EDGE, st.st_size - _EDGE))
            h.update(fh.read(_EDGE))
    return h.hexdigest()


def store_path(out_dir: Path, slide_path: Path, name: str) -> Path:
    """Store file of a slide: its public name (made safe) and a hash of its absolute path (names may repeat)."""
    key = hashlib.sha256(str(Path(slide_path).resolve()).encode()).hexdigest()[:12]
    return Path(out_dir) / "store" / f"{safe_name(name, max_len=80)}-{key}.json"


def save_result(out_dir: Path, slide_path: Path, result: SlideResult, *, key: dict[str, Any]) -> None:
    """Store a finished slide's result with the key it is valid for.

    The slide's path is not stored (it may name a patient); ``result.slide``
    is the name the outputs show.
    """
    data = {"format": STORE_FORMAT, "key": key, "result": _to_json(result)}
    atomic_write(store_path(out_dir, slide_path, result.slide), json.dumps(data, sort_keys=True).encode())


def load_result(out_dir: Path, slide_path: Path, name: str, *, key: dict[str, Any]) -> SlideResult | None:
    """The stored result of the slide at ``slide_path`` shown as ``name``, if it is valid for ``key``, else ``None``."""
    p = store_path(out_dir, slide_path, name)
    try:
        data = json.loads(p.read_text())
        if data.get("format") != STORE_FORMAT or data.get("key") != key:
            return None
        return _from_json(data["result"], Path(slide_path).resolve())
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, unreadable or from another version: score again


def stored_results(out_dir: Path) -> dict[str, SlideResult | None]:
    """Every readable stored result of this version in ``<out>/store/``, by slide name, whatever its key.

    For commands that work from a finished results folder (its tables say
    which slides belong to it). A name stored more than once (two slides of
    one name in two folders, or one scored from two places) maps to None:
    which stored result belongs to the tables cannot be told.
    """
    found: dict[str, SlideResult | None] = {}
    for p in sorted((Path(out_dir) / "store").glob("*.json")):
        try:
            data = json.loads(p.read_text())
            if data.get("format") == STORE_FORMAT:
                result = _from_json(data["result"], Path())
                found[result.slide] = None if result.slide in found else result
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable or from another version: the caller says the slide has no stored result
    return found


def _to_json(r: SlideResult) -> dict[str, Any]:
    return {
        "slide": r.slide,
        "status": r.status,
        "error": r.error,
        "vendor": r.vendor,
        "mpp_um": r.mpp_um,
        "mpp_source": r.mpp_source,
        "analysis_mpp_um": r.analysis_mpp_um,
        "l0_size": list(r.l0_size),
        "tissue_area_mm2": r.tissue_area_mm2,
        "stains": None
        if r.stains is None
        else {
            "hematoxylin": list(r.stains.hematoxylin),
            "dab": list(r.stains.dab),
            "background": list(r.stains.background),
            "source": r.stains.source,
            "flags": list(r.stains.flags),
            "od_scale": r.stains.od_scale,
        },
        "flags": list(r.flags),
        "n_tiles": r.n_tiles,
        "regions": [
            {
                "name": g.name,
                "counts": [g.counts.n0, g.counts.n1, g.counts.n2, g.counts.n3],
                "call": g.call.call,
                "reason": g.call.reason,
                "area_mm2": g.area_mm2,
                "source": g.source,
                "h_interval": [g.h_interval.low, g.h_interval.high],
                "pct_interval": [g.pct_interval.low, g.pct_interval.high],
                "flags": list(g.flags),
                "wkt": g.wkt,
                "histogram": list(g.histogram),
                "n_pigmented": g.n_pigmented,
                "left_out": [list(t) for t in g.left_out],
                "left_out_counts": None if g.left_out_counts is None else [g.left_out_counts.n0, g.left_out_counts.n1, g.left_out_counts.n2, g.left_out_counts.n3],
            }
            for g in r.regions
        ],
        "annotation_file": r.annotation_file,
        "failed_tile_fraction": r.failed_tile_fraction,
        "qc_picture": r.qc_picture,
        "qc_zooms": list(r.qc_zooms),
        "seconds": r.seconds,
        "excluded": dataclasses.asdict(r.excluded),
    }


def _from_json(d: dict[str, Any], path: Path) -> SlideResult:
    st = d["stains"]
    stains = (
        None
        if st is None
        else StainVectors(
            tuple(st["hematoxylin"]), tuple(st["dab"]), tuple(st["background"]), st["source"], tuple(st["flags"]),
            st.get("od_scale", 1.0),
        )
    )
    regions = tuple(
        RegionResult(
            name=g["name"],
            counts=ClassCounts(*g["counts"]),
            call=Call(g["call"], g["reason"]),
            area_mm2=g["area_mm2"],
            source=g["source"],
            h_interval=Interval(*g["h_interval"]),
            pct_interval=Interval(*g["pct_interval"]),
            flags=tuple(g["flags"]),
            wkt=g["wkt"],
            histogram=tuple(g["histogram"]),
            n_pigmented=g["n_pigmented"],
            left_out=tuple((str(t), int(n)) for t, n in g["left_out"]),
            left_out_counts=None if g["left_out_counts"] is None else ClassCounts(*g["left_out_counts"]),
        )
        for g in d["regions"]
    )
    return SlideResult(
        path=str(path),
        slide=d["slide"],
        status=d["status"],
        error=d["error"],
        vendor=d["vendor"],
        mpp_um=d["mpp_um"],
        mpp_source=d["mpp_source"],
        analysis_mpp_um=d["analysis_mpp_um"],
        l0_size=tuple(d["l0_size"]),
        tissue_area_mm2=d["tissue_area_mm2"],
        stains=stains,
        flags=tuple(d["flags"]),
        n_tiles=d["n_tiles"],
        regions=regions,
        annotation_file=d["annotation_file"],
        failed_tile_fraction=d["failed_tile_fraction"],
        qc_picture=d["qc_picture"],
        qc_zooms=tuple(d["qc_zooms"]),
        seconds=d["seconds"],
        excluded=ExcludedAreas(**d["excluded"]),
    )

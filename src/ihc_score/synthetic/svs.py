"""Writing a synthetic slide: pyramidal JPEG-tiled Aperio SVS and truth JSON (I/O).

:func:`make_slide` renders level 0 block by block with
:func:`~ihc_score.synthetic.render.render_region`, writes a pyramidal,
JPEG-tiled, Aperio-style SVS that OpenSlide opens as vendor ``aperio`` with
its pixel size, and the truth JSON beside it (:func:`truth_path`).
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ihc_score.errors import OutputError
from ihc_score.synthetic.layout import SlideLayout, make_layout
from ihc_score.synthetic.render import render_region
from ihc_score.synthetic.spec import CELL_EXPANSION_UM, CLASS_THRESHOLDS, GENERATOR_VERSION, SynthSpec

__all__ = ["make_slide", "truth_path"]

_BLOCK_PX = (2048, 1024)  # (width, height) of a rendering block, level-0 px


def truth_path(path: Path) -> Path:
    """The truth JSON beside a synthetic slide: ``<stem>.truth.json``."""
    return Path(path).with_suffix(".truth.json")


def _description(spec: SynthSpec, size: tuple[int, int] | None = None) -> str:
    w, h = spec.width, spec.height
    t = spec.tile_px
    head = f"Aperio Image Library v12.0.15 \n{w}x{h} [0,0 {w}x{h}] ({t}x{t})"
    if size is not None:
        return f"{head} -> {size[0]}x{size[1]} JPEG/RGB Q={spec.jpeg_quality}"
    mag = 10.0 / spec.mpp_um
    return f"{head} JPEG/RGB Q={spec.jpeg_quality}|AppMag = {mag:g}|MPP = {spec.mpp_um:.4f}"


def _downsample4(img: np.ndarray, fill: tuple[float, float, float]) -> np.ndarray:
    h, w = img.shape[:2]
    ph, pw = -h % 4, -w % 4
    if ph or pw:
        img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=[int(round(c)) for c in fill])
    return cv2.resize(img, ((w + pw) // 4, (h + ph) // 4), interpolation=cv2.INTER_AREA)


class _Level0:
    """Renders level 0 strip by strip, yields its tiles, keeps level 1 and the truth."""

    def __init__(self, layout: SlideLayout) -> None:
        self.layout = layout
        spec = layout.spec
        self.level1 = np.empty(((spec.height + 3) // 4, (spec.width + 3) // 4, 3), np.uint8)
        self.stats: list[dict[str, np.ndarray]] = []
        self.pool = ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 4))

    def _block(self, bx: int, by: int, w: int, h: int) -> np.ndarray:
        region = render_region(self.layout, (bx * _BLOCK_PX[0], by * _BLOCK_PX[1]), (w, h), noise_key=(by, bx))
        self.stats.append(region.stats)
        return region.rgb

    def tiles(self) -> Iterator[np.ndarray]:
        spec = self.layout.spec
        t = spec.tile_px
        bw, bh = _BLOCK_PX
        for by in range(math.ceil(spec.height / bh)):
            h = min(bh, spec.height - by * bh)
            xs = range(math.ceil(spec.width / bw))
            blocks = self.pool.map(lambda bx: self._block(bx, by, min(bw, spec.width - bx * bw), h), xs)
            strip = np.concatenate(list(blocks), axis=1)
            y1 = by * bh // 4
            lvl = _downsample4(strip, spec.background)
            self.level1[y1: y1 + lvl.shape[0]] = lvl[:, : self.level1.shape[1]]
            ph, pw = -h % t, -spec.width % t
            if ph or pw:
                strip = cv2.copyMakeBorder(strip, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                           value=[int(round(c)) for c in spec.background])
            for ty in range(0, h, t):
                for tx in range(0, spec.width, t):
                    yield np.ascontiguousarray(strip[ty: ty + t, tx: tx + t])


def _truth(layout: SlideLayout, stats: list[dict[str, np.ndarray]]) -> dict:
    spec = layout.spec
    cells = layout.cells
    merged = {k: np.concatenate([s[k] for s in stats]) for k in stats[0]} if stats else {}
    order = np.argsort(merged.get("index", np.empty(0, np.int64)), kind="stable")
    merged = {k: v[order] for k, v in merged.items()}
    idx = merged.get("index", np.empty(0, np.int64))
    present = merged.get("nucleus_px", np.empty(0)) > 0
    um2 = spec.mpp_um**2
    rows: dict[str, list[dict]] = {"tumour": [], "stroma": []}
    for j in np.flatnonzero(present):
        i = int(idx[j])
        tumour = bool(cells.tumour[i])
        klass = int(np.searchsorted(CLASS_THRESHOLDS, merged["dab_cell_mean"][j], side="right"))
        if tumour and klass != int(cells.klass[i]):
            raise RuntimeError(
                f"cell {i} designed as class {int(cells.klass[i])} measures {merged['dab_cell_mean'][j]:.3f}")
        row = {
            "id": i,
            "l0_x": round(float(merged["l0_x"][j]), 2),
            "l0_y": round(float(merged["l0_y"][j]), 2),
            "nucleus_area_um2": round(float(merged["nucleus_px"][j]) * um2, 2),
            "cell_area_um2": round(float(merged["cell_px"][j]) * um2, 2),
            "class": klass,
            "dab_cell_mean": round(float(merged["dab_cell_mean"][j]), 4),
            "dab_nucleus_mean": round(float(merged["dab_nucleus_mean"][j]), 4),
            "dab_cytoplasm_mean": round(float(merged["dab_cytoplasm_mean"][j]), 4),
            "tumour": tumour,
            "region": spec.regions[int(cells.region[i])].name if tumour else None,
        }
        rows["tumour" if tumour else "stroma"].append(row)

    def totals(items: list[dict]) -> dict:
        counts = [sum(1 for c in items if c["class"] == k) for k in range(4)]
        n = sum(counts)
        return {
            "n_cells": n,
            "n_class": {"0": counts[0], "1+": counts[1], "2+": counts[2], "3+": counts[3]},
            "h_score": (counts[1] + 2 * counts[2] + 3 * counts[3]) / n * 100 if n else None,
            "percent_positive": (counts[1] + counts[2] + counts[3]) / n * 100 if n else None,
        }

    st = spec.render_stains
    return {
        "generator": "ihc_score.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": spec.seed,
        "width": spec.width,
        "height": spec.height,
        "mpp_um": spec.mpp_um,
        "background": list(spec.background),
        "stains": {"hematoxylin": list(st.hematoxylin), "dab": list(st.dab), "residual": list(st.residual)},
        "compartment": "cell",
        "cell_expansion_um": CELL_EXPANSION_UM,
        "thresholds": list(CLASS_THRESHOLDS),
        "class_bands": [list(b) for b in spec.class_bands],
        "totals": totals(rows["tumour"]),
        "regions": [{"name": r.name, "class_proportions": list(r.class_proportions),
                     **totals([c for c in rows["tumour"] if c["region"] == r.name])} for r in spec.regions],
        "spec": _spec_dict(spec),
        "cells": rows["tumour"],
        "stromal_cells": rows["stroma"],
    }


def _spec_dict(spec: SynthSpec) -> dict:
    d = asdict(spec)
    d["stains"] = {"hematoxylin": list(spec.stains.hematoxylin), "dab": list(spec.stains.dab)}
    return json.loads(json.dumps(d))


def _dump(truth: dict) -> str:
    head = {k: v for k, v in truth.items() if k not in ("cells", "stromal_cells")}
    text = json.dumps(head, indent=1)[:-2]
    for key in ("cells", "stromal_cells"):
        lines = ",\n  ".join(json.dumps(c, separators=(",", ":")) for c in truth[key])
        text += f',\n "{key}": [\n  {lines}\n ]' if lines else f',\n "{key}": []'
    return text + "\n}\n"


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {err.strerror or err}; choose a writable folder") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_slide(path: Path, spec: SynthSpec) -> dict:
    """Write a synthetic SVS and its truth JSON.

    Parameters
    ----------
    path : Path
        Output ``.svs`` file; the truth goes to :func:`truth_path` of it.
    spec : SynthSpec

    Returns
    -------
    dict
        The truth (as written to JSON): header with ``seed``, ``mpp_um``,
        ``background``, ``stains``, ``thresholds``, ``compartment``,
        ``totals`` (``n_cells``, ``n_class``, ``h_score``,
        ``percent_positive`` over tumour cells), per-region ``regions``,
        the ``spec``, and the ``cells`` (tumour) and ``stromal_cells`` lists.

    Raises
    ------
    OutputError
        When the files cannot be written.
    """
    import tifffile

    path = Path(path)
    layout = make_layout(spec)
    level0 = _Level0(layout)
    t = spec.tile_px
    kw = dict(photometric="rgb", compression="jpeg", compressionargs={"level": spec.jpeg_quality},
              tile=(t, t), metadata=None, software=False)

    def write(tmp: Path) -> None:
        with tifffile.TiffWriter(tmp, bigtiff=spec.width * spec.height > 1.5e9) as tw:
            tw.write(level0.tiles(), shape=(spec.height, spec.width, 3), dtype=np.uint8,
                     description=_description(spec), **kw)
            above, level = (spec.height, spec.width), level0.level1
            while max(above) >= 1024:
                tw.write(level, description=_description(spec, (level.shape[1], level.shape[0])), **kw)
                above, level = level.shape[:2], _downsample4(level, spec.background)

    try:
        _write_atomic(path, write)
    finally:
        level0.pool.shutdown()
    truth = _truth(layout, level0.stats)
    text = _dump(truth)
    _write_atomic(truth_path(path), lambda p: p.write_text(text))
    return truth

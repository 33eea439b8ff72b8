"""Writing a synthetic slide: pyramidal JPEG-tiled Aperio SVS and truth JSON (I/O).

:func:`make_slide` renders level 0 block by block with
:func:`~ihc_score.synthetic.render.render_region`, writes a pyramidal,
JPEG-tiled, Aperio-style SVS that OpenSlide opens as vendor ``aperio`` with
its pixel size, and the truth JSON beside it (:func:`truth_path`).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ihc_score.errors import OutputError
from ihc_score.synthetic.layout import SlideLayout, make_layout
from ihc_score.synthetic.optics import glass_rgb
from ihc_score.synthetic.render import render_region
from ihc_score.synthetic.spec import SynthSpec
from ihc_score.synthetic.truth import build_truth, dump

__all__ = ["make_slide", "make_case", "truth_path", "annotation_path", "write_annotations"]

_BLOCK_PX = (2048, 1024)  # (width, height) of a rendering block, level-0 px


def truth_path(path: Path) -> Path:
    """The truth JSON beside a synthetic slide: ``<stem>.truth.json``."""
    return Path(path).with_suffix(".truth.json")


def annotation_path(path: Path) -> Path:
    """The truth annotations beside a synthetic slide: ``<stem>.geojson``."""
    return Path(path).with_suffix(".geojson")


#: TIFF tag Model (272): readers report it as the scanner model.
_MODEL_TAG = 272


def _model(spec: SynthSpec) -> str:
    """The scanner model written into the slide: the generator's scanner, named."""
    return f"ihc-score synthetic {spec.scanner.name}"


def _description(spec: SynthSpec, size: tuple[int, int] | None = None) -> str:
    w, h = spec.width, spec.height
    t = spec.tile_px
    head = f"Aperio Image Library v12.0.15 \n{w}x{h} [0,0 {w}x{h}] ({t}x{t})"
    if size is not None:
        return f"{head} -> {size[0]}x{size[1]} JPEG/RGB Q={spec.scanner.jpeg_quality}"
    mag = 10.0 / spec.mpp_um
    return f"{head} JPEG/RGB Q={spec.scanner.jpeg_quality}|AppMag = {mag:g}|MPP = {spec.mpp_um:.4f}"


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
        glass = tuple(float(c) for c in glass_rgb(spec.scanner))  # fill of the padding, as blank glass
        for by in range(math.ceil(spec.height / bh)):
            h = min(bh, spec.height - by * bh)
            xs = range(math.ceil(spec.width / bw))
            blocks = self.pool.map(lambda bx: self._block(bx, by, min(bw, spec.width - bx * bw), h), xs)
            strip = np.concatenate(list(blocks), axis=1)
            y1 = by * bh // 4
            lvl = _downsample4(strip, glass)
            self.level1[y1: y1 + lvl.shape[0]] = lvl[:, : self.level1.shape[1]]
            ph, pw = -h % t, -spec.width % t
            if ph or pw:
                strip = cv2.copyMakeBorder(strip, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                           value=[int(c) for c in glass])
            for ty in range(0, h, t):
                for tx in range(0, spec.width, t):
                    yield np.ascontiguousarray(strip[ty: ty + t, tx: tx + t])


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


def write_annotations(path: Path, layout: SlideLayout) -> None:
    """Write a layout's metastasis and necrosis outlines as QuPath GeoJSON.

    Metastases are classified ``Tumor`` and named by their region name
    (geometry: the outline with the necroses cut out, as in the truth);
    necroses are written as exclusions classified ``Necrosis``. Regions
    whose outline is empty (e.g. entirely off the slide) are left out.

    Raises
    ------
    OutputError
        When the file cannot be written.
    """
    from ihc_score.regions import Annotation, Region, write_geojson

    spec = layout.spec
    regions = [Region(name=r.name, geometry=g, source="annotation", classification="Tumor")
               for r, g in zip(spec.regions, layout.outlines) if not g.is_empty]
    excluded = [Annotation(name=n.name, classification="Necrosis", geometry=g, excluded=True)
                for n, g in zip(spec.necroses, layout.necrosis_outlines) if not g.is_empty]
    write_geojson(path, regions, excluded=excluded)


def make_slide(path: Path, spec: SynthSpec, *, annotations: bool = False) -> dict:
    """Write a synthetic SVS and its truth JSON (and, if asked, its annotations).

    Parameters
    ----------
    path : Path
        Output ``.svs`` file; the truth goes to :func:`truth_path` of it.
    spec : SynthSpec
    annotations : bool
        Also write the truth outlines as QuPath GeoJSON to
        :func:`annotation_path` (see :func:`write_annotations`).

    Returns
    -------
    dict
        The truth (as written to JSON). Header: ``generator``,
        ``generator_version``, ``seed``, ``width``, ``height``, ``mpp_um``,
        ``background`` (the scanner's glass colour), ``dyes`` (unit OD
        vectors drawn with), ``scanner`` (its name; its parameters are in
        ``spec``), ``compartment`` ``"cell"``, ``cell`` (what a cell is:
        its drawn body), ``staining``, ``thresholds``, ``class_bands``,
        ``host_tissue``; ``totals``
        (``n_cells``, ``n_class`` {"0", "1+", "2+", "3+"}, ``h_score``,
        ``percent_positive``; None when no cell) over all tumour cells;
        ``regions``: per metastasis ``name``, ``class_proportions``,
        ``outline`` (GeoJSON-style ``{"type": "Polygon"|"MultiPolygon",
        "coordinates": ...}`` in level-0 px: the boundary used to place its
        cells, necroses cut out), ``area_um2`` (of the outline), the same
        totals over its tumour cells, ``n_host_cells`` (cells of the host
        tissue whose centroid is inside the outline: 0 by design) and, on a
        slide with infiltrates, ``infiltrate``: the counts of its
        infiltrating cells ``n_lymphocyte``, ``n_neutrophil``,
        ``n_macrophage`` and the same totals over them; ``necroses``:
        per necrosis ``name``, ``outline``, ``area_um2``, ``dab_od``;
        ``spec``; ``cells`` (tumour cells: ``id``, ``l0_x``, ``l0_y``
        nucleus centroid, ``nucleus_area_um2``, ``cell_area_um2`` (of the
        drawn body), ``class`` (of ``dab_cell_mean`` against the designed
        thresholds), ``dab_cell_mean`` (mean DAB amount over the drawn body
        before optics), ``dab_nucleus_mean``, ``dab_cytoplasm_mean``,
        ``tumour`` true, ``type`` ``"tumour"``, ``region`` name) and
        ``stromal_cells`` (non-tumour cells, the same keys with ``tumour``
        false and a ``kind``: cells of the host tissue, class 0, ``kind``
        ``"stroma"``, ``"glia"``, ``"neuron"`` or ``"macrophage"``
        (hemosiderin-laden), ``type`` ``"other"`` (``"macrophage"`` for
        macrophages), ``region`` the metastasis whose outline contains the
        centroid, else None; infiltrating immune cells of any class,
        ``kind`` and ``type`` ``"lymphocyte"``, ``"neutrophil"`` or
        ``"macrophage"``, ``region`` the metastasis they infiltrate).
        Nuclear dust and ghost cells in necroses are drawn but not listed.

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
    kw = dict(photometric="rgb", compression="jpeg", compressionargs={"level": spec.scanner.jpeg_quality},
              tile=(t, t), metadata=None, software=False)

    def write(tmp: Path) -> None:
        with tifffile.TiffWriter(tmp, bigtiff=spec.width * spec.height > 1.5e9) as tw:
            tw.write(level0.tiles(), shape=(spec.height, spec.width, 3), dtype=np.uint8,
                     description=_description(spec), extratags=[(_MODEL_TAG, "s", 0, _model(spec), True)], **kw)
            above, level = (spec.height, spec.width), level0.level1
            while max(above) >= 1024:
                tw.write(level, description=_description(spec, (level.shape[1], level.shape[0])), **kw)
                above, level = level.shape[:2], _downsample4(level, tuple(float(c) for c in glass_rgb(spec.scanner)))

    try:
        _write_atomic(path, write)
    finally:
        level0.pool.shutdown()
    truth = build_truth(layout, level0.stats)
    text = dump(truth)
    _write_atomic(truth_path(path), lambda p: p.write_text(text))
    if annotations:
        write_annotations(annotation_path(path), layout)
    return truth


def make_case(folder: Path, spec: SynthSpec, n_slides: int, *, stem: str = "slide",
              annotations: bool = False) -> list[dict]:
    """Write a case: several slides of one spec, seeds ``spec.seed``, ``spec.seed + 1``, ...

    Parameters
    ----------
    folder : Path
        Existing output folder; slides are ``<stem>-1.svs``, ``<stem>-2.svs``, ...
    spec : SynthSpec
        Spec of the first slide; the others differ only by their seed (same
        metastases and class proportions, different outlines, cells and noise).
    n_slides : int
        Number of slides, >= 1.
    stem : str
        File name stem.
    annotations : bool
        Also write each slide's GeoJSON annotations.

    Returns
    -------
    list of dict
        The truth of each slide, in order.

    Raises
    ------
    ValueError
        When ``n_slides`` < 1.
    OutputError
        When a file cannot be written.
    """
    if n_slides < 1:
        raise ValueError(f"n_slides must be >= 1, got {n_slides!r}")
    return [make_slide(Path(folder) / f"{stem}-{k + 1}.svs", replace(spec, seed=spec.seed + k),
                       annotations=annotations) for k in range(n_slides)]

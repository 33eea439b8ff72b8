"""QC zoom crops: per scored region, full-resolution windows with every detected cell outlined.

:func:`write_zooms` writes, per region, the crops of the windows with the
highest, typical (median) and lowest mean cell DAB (:func:`zoom_windows`,
from :mod:`ihc_score.outputs.qc_windows`),
each drawn by :func:`render_zoom` with every detected cell outlined in its
class colour, so a pathologist can check the detection and grading. File
names come from :func:`zoom_file_names`. The conventions are those of
:mod:`ihc_score.outputs.qc`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ihc_score.fileio import safe_name
from ihc_score.outputs import drawing as draw
from ihc_score.outputs.palette import (
    CLASS_COLOURS_RGB,
    CLASS_NAMES,
    LEFT_OUT_COLOUR_RGB,
    PIGMENT_COLOUR_RGB,
    REGION_COLOUR_RGB,
)
from ihc_score.outputs.qc_windows import ZoomWindow, zoom_windows
from ihc_score.results import SlideDetail, SlideResult
from ihc_score.score import RegionResult
from ihc_score.slide import Slide

__all__ = ["ZoomCrop", "write_zooms", "render_zoom", "zoom_file_names"]

#: Finest display pixel size of the zoom crops relative to the analysis pixel (2 = twice as fine).
_ZOOM_MAX_UPSCALE = 2


# -- zooms ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ZoomCrop:
    """A zoom crop with its cells outlined.

    Attributes
    ----------
    rgb : ndarray
        (h, w, 3) uint8.
    l0_xy : tuple of float
        Level-0 position of the crop's top-left pixel corner.
    scale : float
        Level-0 px per crop px (pixel ``p`` has its centre at ``l0_xy + (p + 0.5) * scale - 0.5``).
    um_per_px : float
    """

    rgb: np.ndarray
    l0_xy: tuple[float, float]
    scale: float
    um_per_px: float


def render_zoom(result: SlideResult, slide: Slide, window: ZoomWindow) -> ZoomCrop:
    """A window read at full resolution with every detected cell outlined in its class colour.

    The crop is read at the analysis pixel size divided by 1 or 2 (the
    finest the slide has, at most twice as fine): a 0.25 um/px scan analysed
    at 0.5 um/px gives a 0.25 um/px crop. Cells are filled into a label
    image at that resolution and each is outlined by its own border pixels,
    one analysis pixel wide, inside the cell, so two touching cells show
    both their outlines side by side and never overwrite each other.
    Without traced outlines, each cell is a circle of its nucleus's area
    around its centroid. Region outlines are drawn too (bluish green).

    Parameters
    ----------
    result : SlideResult
        A scored slide with ``detail``.
    slide : Slide
        The same slide, open.
    window : ZoomWindow
        From :func:`zoom_windows`.

    Returns
    -------
    ZoomCrop

    Raises
    ------
    ValueError
        ``result`` has no cell detail.
    SlideReadError
        The slide's pixels cannot be read.
    """
    d = result.detail
    if d is None:
        raise ValueError(f"{result.slide}: no cell detail to draw (result reused from an earlier run)")
    mpp = result.mpp_um
    a_mpp = result.analysis_mpp_um if math.isfinite(result.analysis_mpp_um) else max(0.5, mpp)
    ads = max(1.0, a_mpp / mpp)
    k = int(min(_ZOOM_MAX_UPSCALE, max(1, math.floor(ads + 1e-9))))
    ax0 = int(math.floor(window.l0_xy[0] / ads))
    ay0 = int(math.floor(window.l0_xy[1] / ads))
    n_a = int(math.ceil(window.l0_side / ads))
    l0_xy = (int(round(ax0 * ads)), int(round(ay0 * ads)))
    l0_size = (int(round((ax0 + n_a) * ads)) - l0_xy[0], int(round((ay0 + n_a) * ads)) - l0_xy[1])
    rgb = slide.read_scaled(l0_xy, l0_size, ads / k)
    if rgb.shape[:2] != (n_a * k, n_a * k):
        rgb = cv2.resize(rgb, (n_a * k, n_a * k), interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(rgb)

    margin = 30.0 / mpp  # cells up to this far outside still reach into the crop
    near = (
        (d.l0_x >= ax0 * ads - margin) & (d.l0_x < (ax0 + n_a) * ads + margin)
        & (d.l0_y >= ay0 * ads - margin) & (d.l0_y < (ay0 + n_a) * ads + margin)
    )  # fmt: skip
    idx = np.flatnonzero(near)
    scale = ads / k
    size = n_a * k
    labels = np.zeros((size, size), np.int32)  # 0 = no cell, j + 1 = cell idx[j]
    for j, ring in enumerate(_cell_rings(d, idx, a_mpp, ads)):  # a few hundred cells per crop
        pts = np.round(draw.to_px(ring, (scale, scale), l0_xy) * (1 << draw.SHIFT)).astype(np.int32)
        cv2.fillPoly(labels, [pts], j + 1, cv2.LINE_8, draw.SHIFT)
    as_float = labels.astype(np.float32)  # exact below 2**24
    kernel = np.ones((2 * k - 1, 2 * k - 1), np.uint8)
    edge = (labels > 0) & (cv2.dilate(as_float, kernel) != cv2.erode(as_float, kernel))
    shown = d.shown_categories[idx]  # cells ungraded for pigment, or of a type not scored, keep their own colour
    palette = np.array([*CLASS_COLOURS_RGB, PIGMENT_COLOUR_RGB, LEFT_OUT_COLOUR_RGB], np.uint8)
    colours = np.concatenate([np.zeros((1, 3), np.uint8), palette[shown]])
    rgb[edge] = colours[labels[edge]]
    for region in result.regions:
        rings = draw.poly_px(draw.rings(region.wkt), (scale, scale), l0_xy)
        cv2.polylines(rgb, rings, True, REGION_COLOUR_RGB, 2, cv2.LINE_8, draw.SHIFT)
    return ZoomCrop(rgb, (float(l0_xy[0]), float(l0_xy[1])), scale, scale * mpp)


def _cell_rings(d: SlideDetail, idx: np.ndarray, a_mpp: float, ads: float) -> list[np.ndarray]:
    """Cell outlines (level-0 px) of the cells ``idx``: traced ones, else circles of the nucleus's area."""
    if d.outlines is not None:
        sub = d.outlines.take(idx)
        return np.split(np.asarray(sub.cell_xy, np.float64), np.asarray(sub.cell_offsets)[1:-1])
    radius_l0 = np.sqrt(np.asarray(d.cells.nucleus_area_um2, np.float64)[idx] / np.pi) / a_mpp * ads
    t = np.linspace(0.0, 2 * np.pi, 24, endpoint=False)
    xs = d.l0_x[idx, None] + radius_l0[:, None] * np.cos(t)[None, :]
    ys = d.l0_y[idx, None] + radius_l0[:, None] * np.sin(t)[None, :]
    return list(np.stack([xs, ys], axis=-1))


def zoom_file_names(slide_name: str, region_names: Sequence[str], *, stem: str | None = None) -> list[str]:
    """Safe, unique file names ``<stem>-<region>-zoom.webp``, one per region, in order.

    ``stem`` defaults to the slide's file name without its last ending.
    Names are made safe with :func:`ihc_score.fileio.safe_name` (no path
    separators, never ``.`` or ``..``); names that then coincide (also when
    compared case-insensitively) get ``-2``, ``-3``, ... after the region part.
    """
    if stem is None:
        stem = Path(slide_name).stem if Path(slide_name).suffix else slide_name
    stem = safe_name(stem, max_len=80)
    seen: set[str] = set()
    out = []
    for name in region_names:
        base = safe_name(name, max_len=80)
        candidate, k = base, 1
        while f"{stem}-{candidate}-zoom.webp".lower() in seen:
            k += 1
            candidate = f"{base}-{k}"
        file_name = f"{stem}-{candidate}-zoom.webp"
        seen.add(file_name.lower())
        out.append(file_name)
    return out


def write_zooms(
    out_dir: Path,
    result: SlideResult,
    slide: Slide,
    *,
    n_per_region: int = 3,
    size_um: float = 150.0,
    measurement: str = "dab_cell_mean",
    stem: str | None = None,
) -> list[Path]:
    """Write one zoom picture per scored region: its highest, typical and lowest DAB windows.

    Each file ``<stem>-<region>-zoom.webp`` (see :func:`zoom_file_names`)
    holds a header (slide, region, H-score, call, cell count), the class
    colour key and the crops of :func:`zoom_windows` side by side, each
    drawn by :func:`render_zoom` and captioned with its label, mean
    ``measurement`` (OD), cell count and level-0 position (mm), with a
    scale bar. A region without a window of cells gets a picture saying so.

    Parameters
    ----------
    out_dir : Path
        Folder of the pictures (created if needed).
    result : SlideResult
    slide : Slide
        The same slide, open.
    n_per_region : int
        Crops per region (3: highest, typical, lowest DAB).
    size_um : float
        Side of each crop, um.
    measurement : str
        Cell measurement the windows are ranked by (the model's classification measurement).
    stem : str, optional
        File-name prefix of the slide (made safe); default: its file name without its ending.

    Returns
    -------
    list of Path
        Files written, in the order of ``result.regions``; empty without ``result.detail``.

    Raises
    ------
    OutputError
        A file cannot be written.
    SlideReadError
        The slide's pixels cannot be read.
    """
    if result.detail is None or not result.regions:
        return []
    out_dir = Path(out_dir)
    names = zoom_file_names(result.slide, [r.name for r in result.regions], stem=stem)
    written = []
    for i, (region, file_name) in enumerate(zip(result.regions, names)):
        windows = zoom_windows(result, i, n=n_per_region, size_um=size_um, measurement=measurement)
        crops = [render_zoom(result, slide, w) for w in windows]
        path = out_dir / file_name
        draw.write_webp(path, _zoom_sheet(result, region, windows, crops, size_um, measurement))
        written.append(path)
    return written


def _zoom_sheet(
    result: SlideResult,
    region: RegionResult,
    windows: Sequence[ZoomWindow],
    crops: Sequence[ZoomCrop],
    size_um: float,
    measurement: str,
) -> np.ndarray:
    """Header, class key and captioned crops side by side."""
    c = region.counts
    head = (
        f"{result.slide} - {region.name}: H-score {draw.fmt(c.h_score)}, {region.call.call}, {c.n} cells",
        f"{size_um:g} um windows from the highest to the lowest mean {measurement} of the region's cells;"
        " every detected cell outlined in its class colour",
    )
    cap_lines = 3
    cap_h = cap_lines * draw.line_px(15) + 8
    head_h = draw.line_px(20) + draw.line_px(15) + 8
    key_h = draw.line_px(15) + 12
    crop_w = max((cr.rgb.shape[1] for cr in crops), default=0)
    crop_h = max((cr.rgb.shape[0] for cr in crops), default=0)
    body_w = len(crops) * crop_w + max(0, len(crops) - 1) * draw.MARGIN
    width = max(body_w + 2 * draw.MARGIN, draw.text_size(head[1:], 15)[0] + 2 * draw.MARGIN, 700)
    top = draw.MARGIN + head_h + key_h
    height = top + cap_h + max(crop_h, 40) + draw.MARGIN
    canvas = np.full((height, width, 3), 255, np.uint8)
    texts = [
        draw.Text((draw.MARGIN - 4, draw.MARGIN - 4), head[:1], 20),
        draw.Text((draw.MARGIN - 4, draw.MARGIN - 4 + draw.line_px(20)), head[1:], 15),
    ]
    x = draw.MARGIN
    ky = draw.MARGIN + head_h
    for k in range(4):
        cv2.rectangle(canvas, (x, ky + 4), (x + 16, ky + 20), CLASS_COLOURS_RGB[k], 2)
        texts.append(draw.Text((x + 18, ky), (CLASS_NAMES[k],), 15))
        x += 18 + draw.text_size((CLASS_NAMES[k],), 15)[0] + 14
    if not crops:
        texts.append(draw.Text((draw.MARGIN, top), ("no window of this region holds enough cells to show",), 15))
    for j, (w, cr) in enumerate(zip(windows, crops)):
        x0 = draw.MARGIN + j * (crop_w + draw.MARGIN)
        um = result.mpp_um / 1000.0
        texts.append(draw.Text((x0 - 4, top - 4), (
            w.label,
            f"mean DAB {w.mean_dab:.2f} OD, {w.n_cells} cells",
            f"at x {w.l0_xy[0] * um:.2f} mm, y {w.l0_xy[1] * um:.2f} mm",
        ), 15))  # fmt: skip
        h, wd = cr.rgb.shape[:2]
        canvas[top + cap_h : top + cap_h + h, x0 : x0 + wd] = cr.rgb
        bar, label = draw.scale_bar((x0, top + cap_h), (wd, h), cr.um_per_px)
        draw.draw_bar(canvas, bar, label)
        texts.append(label)
    return draw.draw_texts(canvas, texts)

"""QC pictures: what was counted, where, and how, at a glance.

:func:`write_slide_qc` writes one picture per slide: the slide thumbnail with
its tissue outline, every scored region (metastasis) outlined and labelled
with its H-score and call, excluded areas hatched; beside it a map of the
cell classes, with a legend of class counts and a scale bar. :func:`write_zooms`
writes, per region, full-resolution crops of the windows with the highest,
typical (median) and lowest mean cell DAB, every detected cell outlined in
its class colour, so a pathologist can check the detection and grading.

Conventions
-----------
* Geometry in results is in slide level-0 px; a picture pixel ``p`` of a
  panel drawn at ``s`` level-0 px per pixel has its centre at level-0
  ``(p + 0.5) * s - 0.5``.
* Colours come from :mod:`ihc_score.palette`. Pictures are RGB drawn with
  OpenCV and Pillow (Pillow's built-in font) and written as PNG without any
  time stamp: the same result and slide give the same bytes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import shapely
from PIL import Image, ImageDraw, ImageFont

from .fileio import atomic_write, safe_name
from .palette import (
    CLASS_COLOURS_RGB,
    CLASS_NAMES,
    EXCLUSION_COLOUR_RGB,
    REGION_COLOUR_RGB,
    TISSUE_COLOUR_RGB,
)
from .pipeline import SlideDetail, SlideResult
from .region_scores import RegionResult
from .slide import Slide

__all__ = [
    "QcLayout",
    "ZoomWindow",
    "ZoomCrop",
    "write_slide_qc",
    "slide_qc_image",
    "legend_counts",
    "write_zooms",
    "zoom_windows",
    "render_zoom",
    "zoom_file_names",
]

#: Long side (px) of the two panels together.
PAIR_LONG_PX = 2000
#: Viewport the panel arrangement is chosen for (a common screen).
_SCREEN = (1920, 1080)
_MARGIN = 16
_BG = (255, 255, 255)
_MAP_GLASS = (250, 250, 250)
_MAP_TISSUE = (232, 232, 232)
_UNSCORED_RGB = (150, 150, 150)
_TEXT_RGB = (0, 0, 0)
#: Hatching period of excluded areas, picture px.
_HATCH_PX = 8
#: Scale bar lengths tried, mm.
_BAR_MM = (0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 50.0)
#: Cell dots are drawn when cells lie at least this far apart (picture px); denser maps show each
#: pixel's majority class.
_MIN_DOT_SPACING_PX = 2.5
#: Finest display pixel size of the zoom crops relative to the analysis pixel (2 = twice as fine).
_ZOOM_MAX_UPSCALE = 2
#: Fractional bits of the fixed-point coordinates given to OpenCV's drawing functions.
_SHIFT = 4


# -- text -------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text_size(lines: Sequence[str], size: int) -> tuple[int, int]:
    """(width, height) of a block of lines with a 4 px padding on every side."""
    font = _font(size)
    width = max((int(math.ceil(font.getlength(line))) for line in lines), default=0)
    return width + 8, _line_px(size) * len(lines) + 8


def _line_px(size: int) -> int:
    return int(round(size * 1.3))


@dataclass(frozen=True)
class _Text:
    xy: tuple[int, int]
    lines: tuple[str, ...]
    size: int
    box: bool = False


def _draw_texts(canvas: np.ndarray, texts: Sequence[_Text]) -> np.ndarray:
    """Text blocks drawn with Pillow; a block with ``box`` gets a white box with a thin black border."""
    if not texts:
        return canvas
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for t in texts:
        x, y = t.xy
        if t.box:
            w, h = _text_size(t.lines, t.size)
            draw.rectangle((x, y, x + w - 1, y + h - 1), fill=_BG, outline=_TEXT_RGB)
        for k, line in enumerate(t.lines):
            draw.text((x + 4, y + 4 + k * _line_px(t.size)), line, fill=_TEXT_RGB, font=_font(t.size))
    return np.asarray(image).copy()


# -- geometry helpers -------------------------------------------------------------------------------------------
def _rings(wkt: str) -> list[np.ndarray]:
    """Exterior and interior rings (level-0 px, float64 (n, 2)) of the polygons of a WKT."""
    if not wkt:
        return []
    geom = shapely.from_wkt(wkt)
    polys = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]
    out = []
    for poly in polys:
        out.append(np.asarray(poly.exterior.coords)[:, :2])
        out.extend(np.asarray(r.coords)[:, :2] for r in poly.interiors)
    return out


def _to_px(l0_xy: np.ndarray, scale: tuple[float, float], origin: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Level-0 points to picture px of a panel drawn at ``scale`` level-0 px per px, ``origin`` its level-0 corner."""
    pts = np.asarray(l0_xy, dtype=np.float64)
    return (pts - np.asarray(origin) + 0.5) / np.asarray(scale) - 0.5


def _poly_px(
    rings: Sequence[np.ndarray], scale: tuple[float, float], origin: tuple[float, float] = (0.0, 0.0)
) -> list[np.ndarray]:
    """Rings in picture px as OpenCV fixed-point points (:data:`_SHIFT` fractional bits)."""
    return [np.round(_to_px(r, scale, origin) * (1 << _SHIFT)).astype(np.int32) for r in rings]


def _hatch(
    canvas: np.ndarray, wkts: Sequence[str], scale: tuple[float, float], origin: tuple[float, float] = (0.0, 0.0)
) -> None:
    """Excluded areas: diagonal black hatching and a black outline, in place."""
    h, w = canvas.shape[:2]
    for wkt in wkts:
        geom = shapely.from_wkt(wkt)
        inside = np.zeros((h, w), np.uint8)
        for poly in (g for g in shapely.get_parts(geom) if g.geom_type == "Polygon"):
            l0_rings = [np.asarray(poly.exterior.coords)[:, :2]] + [np.asarray(r.coords)[:, :2] for r in poly.interiors]
            rings = _poly_px(l0_rings, scale, origin)
            cv2.fillPoly(inside, rings, 1, cv2.LINE_8, _SHIFT)  # even-odd: holes stay empty
            cv2.polylines(canvas, rings, True, EXCLUSION_COLOUR_RGB, 1, cv2.LINE_8, _SHIFT)
        yy, xx = np.indices((h, w))
        lines = ((xx + yy) % _HATCH_PX) < 2
        canvas[(inside > 0) & lines] = EXCLUSION_COLOUR_RGB


def _scale_bar(
    panel_xy: tuple[int, int], panel_size: tuple[int, int], um_per_px: float
) -> tuple[tuple[int, int, int, int], _Text]:
    """A bar of a round length (mm) about a fifth of the panel wide, in the panel's bottom-left corner.

    Returns the bar rectangle (x0, y0, x1, y1) in picture px and its label.
    """
    target_mm = panel_size[0] * um_per_px / 1000.0 / 5.0
    mm = max((b for b in _BAR_MM if b <= target_mm), default=_BAR_MM[0])
    length = max(1, int(round(mm * 1000.0 / um_per_px)))
    x0 = panel_xy[0] + 12
    y1 = panel_xy[1] + panel_size[1] - 12
    text = f"{mm * 1000:g} um" if mm < 1 else f"{mm:g} mm"
    label = _Text((x0 - 4, y1 - 10 - _line_px(14) - 8), (text,), 14)
    return (x0, y1 - 6, x0 + length, y1), label


def _draw_bar(canvas: np.ndarray, bar: tuple[int, int, int, int], label: _Text) -> None:
    x0, y0, x1, y1 = bar
    tw, th = _text_size(label.lines, label.size)
    bx1 = max(x1, x0 - 4 + tw) + 4
    canvas[max(label.xy[1], 0) : y1 + 5, max(x0 - 6, 0) : bx1] = _BG
    canvas[y0:y1, x0:x1] = _TEXT_RGB


# -- slide overview ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QcLayout:
    """Where the two panels of a slide QC picture lie.

    Attributes
    ----------
    scale : tuple of float
        Level-0 px per picture px along x and y, the same for both panels.
    thumbnail_xy, map_xy : tuple of int
        Top-left corner (x, y) of the thumbnail panel and of the class map in the picture.
    panel_size : tuple of int
        (width, height) of each panel, picture px.
    stacked : bool
        Panels one above the other (else side by side).
    dots : bool
        The class map shows one dot per cell (else each pixel's majority class).
    """

    scale: tuple[float, float]
    thumbnail_xy: tuple[int, int]
    map_xy: tuple[int, int]
    panel_size: tuple[int, int]
    stacked: bool
    dots: bool


def _arrangement(l0_size: tuple[int, int]) -> tuple[bool, float]:
    """Stacked or side by side (whichever shows the panels larger on a screen) and the downsample for it."""
    w, h = (max(1, int(v)) for v in l0_size)
    fit_side = min(_SCREEN[0] / (2 * w), _SCREEN[1] / h)
    fit_stacked = min(_SCREEN[0] / w, _SCREEN[1] / (2 * h))
    stacked = fit_stacked > fit_side
    long_l0 = max(w, 2 * h) if stacked else max(2 * w, h)
    return stacked, max(1.0, long_l0 / PAIR_LONG_PX)


def legend_counts(result: SlideResult) -> tuple[int, int, int, int, int]:
    """Cells shown on the class map: per class 0-3 among cells inside any scored region, then cells outside all.

    A cell in two overlapping regions is counted once (the regions' own counts count it in each).
    """
    d = result.detail
    if d is None:
        return (0, 0, 0, 0, 0)
    scored = d.membership.any(axis=0) if d.membership.size else np.zeros(len(d.classes), bool)
    per_class = np.bincount(np.asarray(d.classes[scored], np.int64), minlength=4)[:4]
    return (*(int(c) for c in per_class), int((~scored).sum()))


def _class_map(detail: SlideDetail, size: tuple[int, int], scale: tuple[float, float]) -> tuple[np.ndarray, bool]:
    """Map of the cell classes on a light background; one square per cell, or each pixel's majority class when dense."""
    w, h = size
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = _MAP_GLASS
    tissue = cv2.resize(detail.tissue.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    canvas[tissue] = _MAP_TISSUE
    n = len(detail.classes)
    if n == 0:
        return canvas, True
    scored = detail.membership.any(axis=0) if detail.membership.size else np.zeros(n, bool)
    category = np.where(scored, detail.classes.astype(np.int64), 4)  # 4 = outside every region
    px = np.round(_to_px(np.column_stack([detail.l0_x, detail.l0_y]), scale)).astype(np.int64)
    px[:, 0] = np.clip(px[:, 0], 0, w - 1)
    px[:, 1] = np.clip(px[:, 1], 0, h - 1)
    lut = np.array(list(CLASS_COLOURS_RGB) + [_UNSCORED_RGB], np.uint8)
    spacing = math.sqrt(max(int(tissue.sum()), 1) / n)
    if spacing >= _MIN_DOT_SPACING_PX:
        side = int(np.clip(round(spacing * 0.6), 1, 5))
        offsets = np.arange(side) - (side - 1) // 2
        for cat in (4, 0, 1, 2, 3):  # higher classes drawn last, on top
            sel = px[category == cat]
            for dy in offsets:
                for dx in offsets:
                    canvas[np.clip(sel[:, 1] + dy, 0, h - 1), np.clip(sel[:, 0] + dx, 0, w - 1)] = lut[cat]
        return canvas, True
    flat = px[:, 1] * w + px[:, 0]
    votes = np.bincount(flat * 5 + category, minlength=w * h * 5).reshape(h * w, 5)
    has_scored = votes[:, :4].sum(axis=1) > 0
    majority = np.where(has_scored, votes[:, :4].argmax(axis=1), 4)  # ties go to the lower class
    occupied = votes.sum(axis=1) > 0
    canvas.reshape(-1, 3)[occupied] = lut[majority[occupied]]
    return canvas, False


def _tissue_rings(detail: SlideDetail, scale: tuple[float, float]) -> list[np.ndarray]:
    mask = np.ascontiguousarray(detail.tissue.astype(np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    ds = detail.tissue_downsample
    out = []
    for c in contours:
        l0 = (c[:, 0, :].astype(np.float64) + 0.5) * ds - 0.5
        out.append(np.round(_to_px(l0, scale) * (1 << _SHIFT)).astype(np.int32))
    return out


def _fmt(value: float, decimals: int = 0) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{decimals}f}"


def _region_label(region: RegionResult) -> tuple[str, ...]:
    c = region.counts
    iv = region.h_interval
    interval = f" ({_fmt(iv.low)}-{_fmt(iv.high)})" if getattr(iv, "defined", False) else ""
    return (region.name, f"H-score {_fmt(c.h_score)}{interval}", f"{region.call.call}, {c.n} cells")


def _place_labels(
    boxes: Sequence[tuple[float, float, float, float]],
    sizes: Sequence[tuple[int, int]],
    panel: tuple[int, int, int, int],
) -> list[tuple[int, int]]:
    """Top-left corner of each label: above its region's box, else below it, else inside; clear of earlier labels."""
    px0, py0, pw, ph = panel
    placed: list[tuple[int, int, int, int]] = []
    out = []
    for (bx0, by0, bx1, by1), (tw, th) in zip(boxes, sizes):
        cx = (bx0 + bx1) / 2 - tw / 2
        candidates = [(cx, by0 - th - 6), (cx, by1 + 6), (cx, (by0 + by1) / 2 - th / 2)]
        chosen = None
        for x, y in candidates + [(cx, y0 + k * (th + 4)) for y0 in (by0,) for k in range(1, 20)]:
            x = int(np.clip(round(x), px0 + 2, max(px0 + 2, px0 + pw - tw - 2)))
            y = int(np.clip(round(y), py0 + 2, max(py0 + 2, py0 + ph - th - 2)))
            if not any(x < qx1 and qx0 < x + tw and y < qy1 and qy0 < y + th for qx0, qy0, qx1, qy1 in placed):
                chosen = (x, y)
                break
        if chosen is None:
            chosen = (int(np.clip(round(cx), px0 + 2, px0 + pw - 2)), int(np.clip(round(by0), py0 + 2, py0 + ph - 2)))
        placed.append((chosen[0], chosen[1], chosen[0] + tw, chosen[1] + th))
        out.append(chosen)
    return out


def _header(result: SlideResult, model_id: str) -> tuple[str, str]:
    calls = [r.call.call for r in result.regions]
    tally = ", ".join(f"{calls.count(c)} {c}" for c in ("positive", "negative", "indeterminate") if calls.count(c))
    model = f"model {model_id}: " if model_id else "model call: "
    what = f"{len(calls)} region{'s' if len(calls) != 1 else ''} - {tally}" if calls else "no region scored"
    flags = ", ".join(result.flags) if result.flags else "none"
    return f"{result.slide}   {model}{what}", f"flags: {flags}   pixel size {_fmt(result.mpp_um, 4)} um"


def slide_qc_image(result: SlideResult, slide: Slide, *, model_id: str = "") -> tuple[np.ndarray, QcLayout]:
    """The slide QC picture as an RGB array, and where its panels lie.

    See :func:`write_slide_qc`.
    """
    if result.status == "failed":
        raise ValueError(f"{result.slide}: a failed slide has no QC picture")
    l0_w, l0_h = slide.dimensions
    stacked, ds = _arrangement((l0_w, l0_h))
    thumb, _ = slide.thumbnail(ds * slide.mpp)
    pw, ph = max(1, int(round(l0_w / ds))), max(1, int(round(l0_h / ds)))
    if thumb.shape[:2] != (ph, pw):
        thumb = cv2.resize(thumb, (pw, ph), interpolation=cv2.INTER_AREA)
    scale = (l0_w / pw, l0_h / ph)
    um_per_px = scale[0] * slide.mpp
    detail = result.detail

    line1, line2 = _header(result, model_id)
    header_h = 2 * _line_px(20) + 12
    top = _MARGIN + header_h
    a_xy = (_MARGIN, top)
    b_xy = (_MARGIN, top + ph + _MARGIN) if stacked else (_MARGIN + pw + _MARGIN, top)
    panels_w = b_xy[0] + pw - _MARGIN
    panels_bottom = b_xy[1] + ph
    legend_y = panels_bottom + _MARGIN
    legend_h = 2 * (_line_px(16) + 14)
    width = max(panels_w + 2 * _MARGIN, 900)
    height = legend_y + legend_h + _MARGIN
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = _BG
    texts = [
        _Text((_MARGIN - 4, _MARGIN - 4), (line1,), 20),
        _Text((_MARGIN - 4, _MARGIN - 4 + _line_px(20) + 4), (line2,), 16),
    ]

    # (a) thumbnail with tissue, exclusions, regions and labels
    panel_a = thumb.copy()
    if detail is not None:
        cv2.polylines(panel_a, _tissue_rings(detail, scale), True, TISSUE_COLOUR_RGB, 2, cv2.LINE_AA, _SHIFT)
        _hatch(panel_a, detail.exclusions, scale)
    region_rings = [_poly_px(_rings(r.wkt), scale) for r in result.regions]
    for rings in region_rings:
        cv2.polylines(panel_a, rings, True, REGION_COLOUR_RGB, 3, cv2.LINE_AA, _SHIFT)
    canvas[a_xy[1] : a_xy[1] + ph, a_xy[0] : a_xy[0] + pw] = panel_a

    labels = [_region_label(r) for r in result.regions]
    sizes = [_text_size(lines, 15) for lines in labels]
    boxes = []
    for rings in region_rings:
        if rings:
            allp = np.concatenate(rings) / (1 << _SHIFT)
            x0, y0 = allp.min(axis=0)
            x1, y1 = allp.max(axis=0)
            boxes.append((x0 + a_xy[0], y0 + a_xy[1], x1 + a_xy[0], y1 + a_xy[1]))
        else:  # whole tissue: label at the panel's top
            boxes.append((a_xy[0], a_xy[1] + 40, a_xy[0] + pw, a_xy[1] + 40))
    for lines, xy in zip(labels, _place_labels(boxes, sizes, (a_xy[0], a_xy[1], pw, ph))):
        texts.append(_Text(xy, lines, 15, box=True))

    # (b) class map
    if detail is not None:
        panel_b, dots = _class_map(detail, (pw, ph), scale)
        _hatch(panel_b, detail.exclusions, scale)
    else:
        panel_b, dots = np.full((ph, pw, 3), _MAP_GLASS, np.uint8), True
        note = ("cell detail not available", "(result reused from an earlier run)")
        texts.append(_Text((b_xy[0] + 12, b_xy[1] + 12), note, 16, box=True))
    for rings in region_rings:
        cv2.polylines(panel_b, rings, True, REGION_COLOUR_RGB, 2, cv2.LINE_AA, _SHIFT)
    canvas[b_xy[1] : b_xy[1] + ph, b_xy[0] : b_xy[0] + pw] = panel_b
    for xy in (a_xy, b_xy):
        cv2.rectangle(canvas, (xy[0] - 1, xy[1] - 1), (xy[0] + pw, xy[1] + ph), (90, 90, 90), 1)
        bar, bar_label = _scale_bar(xy, (pw, ph), um_per_px)
        _draw_bar(canvas, bar, bar_label)
        texts.append(bar_label)

    texts.extend(_legend(canvas, (_MARGIN, legend_y), legend_counts(result), dots, um_per_px))
    layout = QcLayout(scale, a_xy, b_xy, (pw, ph), stacked, dots)
    return _draw_texts(canvas, texts), layout


def _legend(
    canvas: np.ndarray, xy: tuple[int, int], counts: Sequence[int], dots: bool, um_per_px: float
) -> list[_Text]:
    """Class swatches with counts (first row) and the outline keys (second row), drawn in place; returns their texts."""
    size = 16
    row_h = _line_px(size) + 14
    x, y = xy
    texts = []
    entries = [(CLASS_COLOURS_RGB[k], f"{CLASS_NAMES[k]}: {counts[k]}") for k in range(4)]
    entries.append((_UNSCORED_RGB, f"outside regions: {counts[4]}"))
    what = "one square per cell" if dots else f"each pixel ({um_per_px:.0f} um): majority class of its cells"
    for colour, text in entries:
        cv2.rectangle(canvas, (x, y + 4), (x + 18, y + 22), colour, -1)
        cv2.rectangle(canvas, (x, y + 4), (x + 18, y + 22), (60, 60, 60), 1)
        texts.append(_Text((x + 22, y), (text,), size))
        x += 22 + _text_size((text,), size)[0] + 18
    texts.append(_Text((x, y), (f"class map: {what}",), size))
    x, y = xy[0], y + row_h
    cv2.line(canvas, (x, y + 13), (x + 30, y + 13), REGION_COLOUR_RGB, 3, cv2.LINE_AA)
    texts.append(_Text((x + 34, y), ("scored region (metastasis)",), size))
    x += 34 + _text_size(("scored region (metastasis)",), size)[0] + 18
    cv2.line(canvas, (x, y + 13), (x + 30, y + 13), TISSUE_COLOUR_RGB, 2, cv2.LINE_AA)
    texts.append(_Text((x + 34, y), ("tissue",), size))
    x += 34 + _text_size(("tissue",), size)[0] + 18
    swatch = np.full((18, 30, 3), 255, np.uint8)
    yy, xx = np.indices(swatch.shape[:2])
    swatch[((xx + yy) % _HATCH_PX) < 2] = EXCLUSION_COLOUR_RGB
    canvas[y + 4 : y + 22, x : x + 30] = swatch
    texts.append(_Text((x + 34, y), ("excluded (necrosis, artefact)",), size))
    return texts


def _write_png(path: Path, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError(f"cannot encode {path.name} as PNG")
    atomic_write(path, data.tobytes())


def write_slide_qc(out_png: Path, result: SlideResult, slide: Slide, *, model_id: str = "") -> None:
    """Write the slide's QC picture.

    Header: slide name, the model's calls and the QC flags. Then two panels
    at the same scale (side by side, or stacked for slides so wide that
    stacking shows them larger on a screen; about :data:`PAIR_LONG_PX` px
    on the pair's long side): (a) the slide thumbnail with the tissue
    outline (grey), every scored region outlined (bluish green) and
    labelled with its name, H-score (95 % interval) and call, excluded
    areas hatched black; (b) the map of cell classes, one square per cell
    in its class colour, or each pixel's majority class when cells are
    denser than pixels, cells outside every region grey. Each panel has a
    scale bar; a legend gives each class's colour and count.

    Parameters
    ----------
    out_png : Path
        File to write (folders created); written atomically.
    result : SlideResult
        A scored slide; without ``result.detail`` (a reused result) the class map is left empty with a note.
    slide : Slide
        The same slide, open.
    model_id : str, optional
        Model name shown in the header.

    Raises
    ------
    OutputError
        The file cannot be written.
    SlideReadError
        The slide's pixels cannot be read.
    """
    image, _ = slide_qc_image(result, slide, model_id=model_id)
    _write_png(Path(out_png), image)


# -- zooms ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ZoomWindow:
    """A square window of a region chosen for a zoom crop.

    Attributes
    ----------
    label : str
        ``highest DAB``, ``typical``, ``lowest DAB`` (or a percentile).
    l0_xy : tuple of float
        Top-left corner, level-0 px.
    l0_side : float
        Side, level-0 px.
    mean_dab : float
        Mean of the measurement over the region's cells whose centroid lies in the window (OD).
    n_cells : int
        Those cells.
    """

    label: str
    l0_xy: tuple[float, float]
    l0_side: float
    mean_dab: float
    n_cells: int


def _window_labels(n: int) -> list[tuple[float, str]]:
    if n == 1:
        return [(0.5, "typical")]
    out = []
    for k in range(n):
        q = 1.0 - k / (n - 1)
        name = {1.0: "highest DAB", 0.0: "lowest DAB", 0.5: "typical"}.get(q, f"{q * 100:.0f}th percentile DAB")
        out.append((q, name))
    return out


def zoom_windows(
    result: SlideResult,
    region_index: int,
    *,
    n: int = 3,
    size_um: float = 150.0,
    measurement: str = "dab_cell_mean",
) -> tuple[ZoomWindow, ...]:
    """Windows of a region showing the range of its cells' DAB.

    Square windows of side ``size_um`` on a grid of step ``size_um / 2``;
    a window's value is the mean ``measurement`` of the region's cells
    (membership from ``result.detail.membership``) whose centroid lies in
    it. Windows with fewer than half the median number of cells (at least
    3) are left out, as are windows not wholly inside the region's outline
    when there are any that are (else those less than half inside, or than
    the most any window has inside). Of the rest, the windows at the quantiles
    1 (highest), 0.5 (median, "typical") and 0 (lowest) of the window
    means are chosen, each the nearest in rank that does not overlap one
    already chosen.

    Parameters
    ----------
    result : SlideResult
        A scored slide with ``detail``.
    region_index : int
        Index in ``result.regions`` (and row of ``result.detail.membership``).
    n : int
        Windows wanted: quantiles 1, ..., 0 of the window means evenly spaced
        (3: highest, typical, lowest; 1: typical).
    size_um : float
        Side of a window, um.
    measurement : str
        :class:`~ihc_score.cells.CellTable` column averaged (OD), e.g. the
        model's ``classification.measurement``.

    Returns
    -------
    tuple of ZoomWindow
        Highest first; fewer than ``n`` (or none) when the region has too few cells.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not (math.isfinite(size_um) and size_um > 0):
        raise ValueError(f"size_um must be a positive length in um, got {size_um}")
    d = result.detail
    if d is None or d.membership.shape[0] <= region_index:
        return ()
    values = np.asarray(getattr(d.cells, measurement), np.float64)
    member = d.membership[region_index] & np.isfinite(values)
    if not member.any():
        return ()
    x, y, v = d.l0_x[member], d.l0_y[member], values[member]
    side = size_um / result.mpp_um
    half = side / 2.0
    ox, oy = float(x.min()) - half / 2.0, float(y.min()) - half / 2.0
    bx = np.floor((x - ox) / half).astype(np.int64)
    by = np.floor((y - oy) / half).astype(np.int64)
    nbx, nby = int(bx.max()) + 2, int(by.max()) + 2
    flat = by * nbx + bx
    count_bins = np.bincount(flat, minlength=nbx * nby).reshape(nby, nbx)
    sum_bins = np.bincount(flat, v, minlength=nbx * nby).reshape(nby, nbx)
    count = count_bins[:-1, :-1] + count_bins[1:, :-1] + count_bins[:-1, 1:] + count_bins[1:, 1:]
    total = sum_bins[:-1, :-1] + sum_bins[1:, :-1] + sum_bins[:-1, 1:] + sum_bins[1:, 1:]
    jj, ii = np.nonzero(count > 0)
    counts = count[jj, ii]
    min_cells = max(3, int(math.ceil(0.5 * float(np.median(counts)))))
    keep = counts >= min_cells
    jj, ii = jj[keep], ii[keep]
    x0, y0 = ox + ii * half, oy + jj * half
    inside = _inside_fraction(result, region_index, x0, y0, side)
    best = inside >= (1.0 if (inside >= 1.0).any() else min(0.5, float(inside.max())))
    jj, ii, x0, y0 = jj[best], ii[best], x0[best], y0[best]
    means = total[jj, ii] / count[jj, ii]
    order = np.lexsort((ii, jj, means))  # by mean, ties by position: deterministic
    chosen: list[int] = []
    picks: dict[float, int] = {}
    targets = _window_labels(n)
    for q, _ in sorted(targets, key=lambda t: abs(t[0] - 0.5), reverse=True):  # extremes first
        want = q * (len(order) - 1)
        ranks = np.argsort(np.abs(np.arange(len(order)) - want), kind="stable")
        free = [r for r in ranks if order[r] not in chosen]
        clear = [r for r in free if all(max(abs(ii[order[r]] - ii[c]), abs(jj[order[r]] - jj[c])) >= 2 for c in chosen)]
        pick = (clear or free or [None])[0]
        if pick is not None:
            chosen.append(int(order[pick]))
            picks[q] = int(order[pick])
    out = []
    for q, name in targets:
        if q in picks:
            k = picks[q]
            out.append(ZoomWindow(name, (float(x0[k]), float(y0[k])), side, float(means[k]), int(count[jj[k], ii[k]])))
    return tuple(out)


def _inside_fraction(result: SlideResult, region_index: int, x0: np.ndarray, y0: np.ndarray, side: float) -> np.ndarray:
    """Part (0-1) of each window inside the region's outline; for the whole-tissue region, 1 where centred on tissue."""
    wkt = result.regions[region_index].wkt if region_index < len(result.regions) else ""
    if wkt:
        geom = shapely.from_wkt(wkt)
        shapely.prepare(geom)
        boxes = shapely.box(x0, y0, x0 + side, y0 + side)
        full = shapely.contains(geom, boxes).astype(np.float64)
        if full.any():
            return full
        return shapely.area(shapely.intersection(geom, boxes)) / (side * side)
    d = result.detail
    tissue, tds = d.tissue, d.tissue_downsample
    mx = np.clip(((x0 + side / 2) / tds).astype(np.int64), 0, tissue.shape[1] - 1)
    my = np.clip(((y0 + side / 2) / tds).astype(np.int64), 0, tissue.shape[0] - 1)
    return tissue[my, mx].astype(np.float64)


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
        pts = np.round(_to_px(ring, (scale, scale), l0_xy) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(labels, [pts], j + 1, cv2.LINE_8, _SHIFT)
    as_float = labels.astype(np.float32)  # exact below 2**24
    kernel = np.ones((2 * k - 1, 2 * k - 1), np.uint8)
    edge = (labels > 0) & (cv2.dilate(as_float, kernel) != cv2.erode(as_float, kernel))
    colours = np.concatenate([np.zeros((1, 3), np.uint8), np.array(CLASS_COLOURS_RGB, np.uint8)[d.classes[idx]]])
    rgb[edge] = colours[labels[edge]]
    for region in result.regions:
        rings = _poly_px(_rings(region.wkt), (scale, scale), l0_xy)
        cv2.polylines(rgb, rings, True, REGION_COLOUR_RGB, 2, cv2.LINE_8, _SHIFT)
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
    """Safe, unique file names ``<stem>-<region>-zoom.png``, one per region, in order.

    ``stem`` defaults to the slide's file name without its last ending.
    Names are made safe with :func:`ihc_score.export.safe_name` (no path
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
        while f"{stem}-{candidate}-zoom.png".lower() in seen:
            k += 1
            candidate = f"{base}-{k}"
        file_name = f"{stem}-{candidate}-zoom.png"
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

    Each file ``<stem>-<region>-zoom.png`` (see :func:`zoom_file_names`)
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
        _write_png(path, _zoom_sheet(result, region, windows, crops, size_um, measurement))
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
        f"{result.slide} - {region.name}: H-score {_fmt(c.h_score)}, {region.call.call}, {c.n} cells",
        f"{size_um:g} um windows from the highest to the lowest mean {measurement} of the region's cells;"
        " every detected cell outlined in its class colour",
    )
    cap_lines = 3
    cap_h = cap_lines * _line_px(15) + 8
    head_h = _line_px(20) + _line_px(15) + 8
    key_h = _line_px(15) + 12
    crop_w = max((cr.rgb.shape[1] for cr in crops), default=0)
    crop_h = max((cr.rgb.shape[0] for cr in crops), default=0)
    body_w = len(crops) * crop_w + max(0, len(crops) - 1) * _MARGIN
    width = max(body_w + 2 * _MARGIN, _text_size(head[1:], 15)[0] + 2 * _MARGIN, 700)
    top = _MARGIN + head_h + key_h
    height = top + cap_h + max(crop_h, 40) + _MARGIN
    canvas = np.full((height, width, 3), 255, np.uint8)
    texts = [
        _Text((_MARGIN - 4, _MARGIN - 4), head[:1], 20),
        _Text((_MARGIN - 4, _MARGIN - 4 + _line_px(20)), head[1:], 15),
    ]
    x = _MARGIN
    ky = _MARGIN + head_h
    for k in range(4):
        cv2.rectangle(canvas, (x, ky + 4), (x + 16, ky + 20), CLASS_COLOURS_RGB[k], 2)
        texts.append(_Text((x + 18, ky), (CLASS_NAMES[k],), 15))
        x += 18 + _text_size((CLASS_NAMES[k],), 15)[0] + 14
    if not crops:
        texts.append(_Text((_MARGIN, top), ("no window of this region holds enough cells to show",), 15))
    for j, (w, cr) in enumerate(zip(windows, crops)):
        x0 = _MARGIN + j * (crop_w + _MARGIN)
        um = result.mpp_um / 1000.0
        texts.append(_Text((x0 - 4, top - 4), (
            w.label,
            f"mean DAB {w.mean_dab:.2f} OD, {w.n_cells} cells",
            f"at x {w.l0_xy[0] * um:.2f} mm, y {w.l0_xy[1] * um:.2f} mm",
        ), 15))  # fmt: skip
        h, wd = cr.rgb.shape[:2]
        canvas[top + cap_h : top + cap_h + h, x0 : x0 + wd] = cr.rgb
        bar, label = _scale_bar((x0, top + cap_h), (wd, h), cr.um_per_px)
        _draw_bar(canvas, bar, label)
        texts.append(label)
    return _draw_texts(canvas, texts)

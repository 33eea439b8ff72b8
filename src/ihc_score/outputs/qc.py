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
* Colours come from :mod:`ihc_score.outputs.palette`. Pictures are RGB drawn with
  OpenCV and Pillow (Pillow's built-in font) and written without any time
  stamp (the overview as a palette PNG, the zoom sheets as WebP, sized for
  keeping): the same result and slide give the same bytes.

The zoom crops live in :mod:`ihc_score.outputs.qc_zooms`, and the drawing
helpers both use in :mod:`ihc_score.outputs.drawing`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ihc_score.outputs import drawing as draw
from ihc_score.outputs.palette import (
    CLASS_COLOURS_RGB,
    CLASS_NAMES,
    EXCLUSION_COLOUR_RGB,
    LEFT_OUT_COLOUR_RGB,
    PIGMENT_COLOUR_RGB,
    REGION_COLOUR_RGB,
    TISSUE_COLOUR_RGB,
)
from ihc_score.results import SlideDetail, SlideResult
from ihc_score.score import RegionResult
from ihc_score.slide import Slide

__all__ = ["QcLayout", "write_slide_qc", "slide_qc_image", "legend_counts"]

#: Long side (px) of the two panels together.
PAIR_LONG_PX = 2000
#: Viewport the panel arrangement is chosen for (a common screen).
_SCREEN = (1920, 1080)
_MAP_GLASS = (250, 250, 250)
_MAP_TISSUE = (232, 232, 232)
_UNSCORED_RGB = (150, 150, 150)
#: Cell dots are drawn when cells lie at least this far apart (picture px); denser maps show each
#: pixel's majority class.
_MIN_DOT_SPACING_PX = 2.5


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


def legend_counts(result: SlideResult) -> tuple[int, int, int, int, int, int, int]:
    """Cells shown on the class map: per class 0-3 among graded cells inside any scored region, cells outside all,
    pigmented (ungraded) cells inside a region, and cells of a type not scored inside a region.

    A cell in two overlapping regions is counted once (the regions' own counts count it in each).
    """
    d = result.detail
    if d is None:
        return (0, 0, 0, 0, 0, 0, 0)
    category = _categories(d)
    counts = np.bincount(category, minlength=7)
    return tuple(int(c) for c in counts[:7])  # type: ignore[return-value]


def _categories(detail: SlideDetail) -> np.ndarray:
    """Map category of each cell: its class 0-3 inside a scored region, 4 outside every region, 5 pigmented,
    6 of a type the model does not score."""
    n = len(detail.classes)
    scored = detail.membership.any(axis=0) if detail.membership.size else np.zeros(n, bool)
    category = np.where(scored, detail.classes.astype(np.int64), 4)
    if detail.pigmented is not None:
        category[scored & detail.pigmented] = 5
    if detail.left_out is not None:
        category[scored & detail.left_out] = 6
    return category


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
    category = _categories(detail)
    px = np.round(draw.to_px(np.column_stack([detail.l0_x, detail.l0_y]), scale)).astype(np.int64)
    px[:, 0] = np.clip(px[:, 0], 0, w - 1)
    px[:, 1] = np.clip(px[:, 1], 0, h - 1)
    lut = np.array(list(CLASS_COLOURS_RGB) + [_UNSCORED_RGB, PIGMENT_COLOUR_RGB, LEFT_OUT_COLOUR_RGB], np.uint8)
    spacing = math.sqrt(max(int(tissue.sum()), 1) / n)
    if spacing >= _MIN_DOT_SPACING_PX:
        side = int(np.clip(round(spacing * 0.6), 1, 5))
        offsets = np.arange(side) - (side - 1) // 2
        for cat in (4, 6, 5, 0, 1, 2, 3):  # higher classes drawn last, on top
            sel = px[category == cat]
            for dy in offsets:
                for dx in offsets:
                    canvas[np.clip(sel[:, 1] + dy, 0, h - 1), np.clip(sel[:, 0] + dx, 0, w - 1)] = lut[cat]
        return canvas, True
    flat = px[:, 1] * w + px[:, 0]
    votes = np.bincount(flat * 7 + category, minlength=w * h * 7).reshape(h * w, 7)
    has_graded = votes[:, :4].sum(axis=1) > 0
    # ties go to the lower class; a pixel of only ungraded cells shows pigment, else cells left out, else outside
    majority = np.where(has_graded, votes[:, :4].argmax(axis=1),
                        np.where(votes[:, 5] > 0, 5, np.where(votes[:, 6] > 0, 6, 4)))
    occupied = votes.sum(axis=1) > 0
    canvas.reshape(-1, 3)[occupied] = lut[majority[occupied]]
    return canvas, False


def _hatch_artefacts(panel: np.ndarray, detail: SlideDetail) -> None:
    """Artefacts (ink, folds, bubbles, out-of-focus blocks) hatched and outlined like excluded areas, in place."""
    if detail.artefacts is None or not detail.artefacts.any():
        return
    h, w = panel.shape[:2]
    inside = cv2.resize((detail.artefacts > 0).view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    panel[(inside > 0) & draw.hatch_lines((h, w))] = EXCLUSION_COLOUR_RGB
    contours, _ = cv2.findContours(inside, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(panel, contours, -1, EXCLUSION_COLOUR_RGB, 1)


def _tissue_rings(detail: SlideDetail, scale: tuple[float, float]) -> list[np.ndarray]:
    mask = np.ascontiguousarray(detail.tissue.astype(np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    ds = detail.tissue_downsample
    out = []
    for c in contours:
        l0 = (c[:, 0, :].astype(np.float64) + 0.5) * ds - 0.5
        out.append(np.round(draw.to_px(l0, scale) * (1 << draw.SHIFT)).astype(np.int32))
    return out


def _region_label(region: RegionResult) -> tuple[str, ...]:
    c = region.counts
    iv = region.h_interval
    interval = f" ({draw.fmt(iv.low)}-{draw.fmt(iv.high)})" if getattr(iv, "defined", False) else ""
    return (region.name, f"H-score {draw.fmt(c.h_score)}{interval}", f"{region.call.call}, {c.n} cells")


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
    return f"{result.slide}   {model}{what}", f"flags: {flags}   pixel size {draw.fmt(result.mpp_um, 4)} um"


def _canvas_layout(pw: int, ph: int, stacked: bool) -> tuple[tuple[int, int], tuple[int, int], int, int, int]:
    """Top-left (x, y) of panels (a) and (b), the legend's top y, the canvas width and height; all picture px."""
    header_h = 2 * draw.line_px(20) + 12
    top = draw.MARGIN + header_h
    a_xy = (draw.MARGIN, top)
    b_xy = (draw.MARGIN, top + ph + draw.MARGIN) if stacked else (draw.MARGIN + pw + draw.MARGIN, top)
    panels_w = b_xy[0] + pw - draw.MARGIN
    legend_y = b_xy[1] + ph + draw.MARGIN  # below the panels
    width = max(panels_w + 2 * draw.MARGIN, 900)
    height = legend_y + 2 * (draw.line_px(16) + 14) + draw.MARGIN  # two legend rows
    return a_xy, b_xy, legend_y, width, height


def _draw_thumbnail_panel(
    canvas: np.ndarray, thumb: np.ndarray, result: SlideResult, scale: tuple[float, float], a_xy: tuple[int, int]
) -> tuple[list[list[np.ndarray]], list[draw.Text]]:
    """Panel (a) drawn in place at ``a_xy``, picture px; returns region rings (fixed-point panel px) and labels."""
    ph, pw = thumb.shape[:2]
    panel_a = thumb.copy()
    if (detail := result.detail) is not None:
        cv2.polylines(panel_a, _tissue_rings(detail, scale), True, TISSUE_COLOUR_RGB, 2, cv2.LINE_AA, draw.SHIFT)
        draw.hatch(panel_a, detail.exclusions, scale)
        _hatch_artefacts(panel_a, detail)
    region_rings = [draw.poly_px(draw.rings(r.wkt), scale) for r in result.regions]
    for rings in region_rings:
        cv2.polylines(panel_a, rings, True, REGION_COLOUR_RGB, 3, cv2.LINE_AA, draw.SHIFT)
    canvas[a_xy[1] : a_xy[1] + ph, a_xy[0] : a_xy[0] + pw] = panel_a
    labels = [_region_label(r) for r in result.regions]
    sizes = [draw.text_size(lines, 15) for lines in labels]
    boxes = []
    for rings in region_rings:
        if rings:
            allp = np.concatenate(rings) / (1 << draw.SHIFT)
            x0, y0 = allp.min(axis=0)
            x1, y1 = allp.max(axis=0)
            boxes.append((x0 + a_xy[0], y0 + a_xy[1], x1 + a_xy[0], y1 + a_xy[1]))
        else:  # whole tissue: label at the panel's top
            boxes.append((a_xy[0], a_xy[1] + 40, a_xy[0] + pw, a_xy[1] + 40))
    places = _place_labels(boxes, sizes, (a_xy[0], a_xy[1], pw, ph))
    return region_rings, [draw.Text(xy, lines, 15, box=True) for lines, xy in zip(labels, places)]


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
    a_xy, b_xy, legend_y, width, height = _canvas_layout(pw, ph, stacked)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = draw.BG
    texts = [
        draw.Text((draw.MARGIN - 4, draw.MARGIN - 4), (line1,), 20),
        draw.Text((draw.MARGIN - 4, draw.MARGIN - 4 + draw.line_px(20) + 4), (line2,), 16),
    ]

    # (a) thumbnail with tissue, exclusions, regions and labels
    region_rings, label_texts = _draw_thumbnail_panel(canvas, thumb, result, scale, a_xy)
    texts.extend(label_texts)

    # (b) class map
    if detail is not None:
        panel_b, dots = _class_map(detail, (pw, ph), scale)
        draw.hatch(panel_b, detail.exclusions, scale)
        _hatch_artefacts(panel_b, detail)
    else:
        panel_b, dots = np.full((ph, pw, 3), _MAP_GLASS, np.uint8), True
        note = ("cell detail not available", "(result reused from an earlier run)")
        texts.append(draw.Text((b_xy[0] + 12, b_xy[1] + 12), note, 16, box=True))
    for rings in region_rings:
        cv2.polylines(panel_b, rings, True, REGION_COLOUR_RGB, 2, cv2.LINE_AA, draw.SHIFT)
    canvas[b_xy[1] : b_xy[1] + ph, b_xy[0] : b_xy[0] + pw] = panel_b
    for xy in (a_xy, b_xy):
        cv2.rectangle(canvas, (xy[0] - 1, xy[1] - 1), (xy[0] + pw, xy[1] + ph), (90, 90, 90), 1)
        bar, bar_label = draw.scale_bar(xy, (pw, ph), um_per_px)
        draw.draw_bar(canvas, bar, bar_label)
        texts.append(bar_label)

    texts.extend(_legend(canvas, (draw.MARGIN, legend_y), legend_counts(result), dots, um_per_px))
    layout = QcLayout(scale, a_xy, b_xy, (pw, ph), stacked, dots)
    return draw.draw_texts(canvas, texts), layout


def _legend(
    canvas: np.ndarray, xy: tuple[int, int], counts: Sequence[int], dots: bool, um_per_px: float
) -> list[draw.Text]:
    """Class swatches with counts (first row) and the outline keys (second row), drawn in place; returns their texts."""
    size = 16
    row_h = draw.line_px(size) + 14
    x, y = xy
    texts = []
    entries = [(CLASS_COLOURS_RGB[k], f"{CLASS_NAMES[k]}: {counts[k]}") for k in range(4)]
    entries.append((_UNSCORED_RGB, f"outside regions: {counts[4]}"))
    if counts[5]:
        entries.append((PIGMENT_COLOUR_RGB, f"pigment, not graded: {counts[5]}"))
    if len(counts) > 6 and counts[6]:
        entries.append((LEFT_OUT_COLOUR_RGB, f"other cell types, left out: {counts[6]}"))
    what = "one square per cell" if dots else f"each pixel ({um_per_px:.0f} um): majority class of its cells"
    for colour, text in entries:
        cv2.rectangle(canvas, (x, y + 4), (x + 18, y + 22), colour, -1)
        cv2.rectangle(canvas, (x, y + 4), (x + 18, y + 22), (60, 60, 60), 1)
        texts.append(draw.Text((x + 22, y), (text,), size))
        x += 22 + draw.text_size((text,), size)[0] + 18
    texts.append(draw.Text((x, y), (f"class map: {what}",), size))
    x, y = xy[0], y + row_h
    cv2.line(canvas, (x, y + 13), (x + 30, y + 13), REGION_COLOUR_RGB, 3, cv2.LINE_AA)
    texts.append(draw.Text((x + 34, y), ("scored region (metastasis)",), size))
    x += 34 + draw.text_size(("scored region (metastasis)",), size)[0] + 18
    cv2.line(canvas, (x, y + 13), (x + 30, y + 13), TISSUE_COLOUR_RGB, 2, cv2.LINE_AA)
    texts.append(draw.Text((x + 34, y), ("tissue",), size))
    x += 34 + draw.text_size(("tissue",), size)[0] + 18
    swatch = np.full((18, 30, 3), 255, np.uint8)
    swatch[draw.hatch_lines(swatch.shape[:2])] = EXCLUSION_COLOUR_RGB
    canvas[y + 4 : y + 22, x : x + 30] = swatch
    texts.append(draw.Text((x + 34, y), ("excluded (necrosis, ink, fold, bubble, blur)",), size))
    return texts


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
    draw.write_png(Path(out_png), image, colours=draw.OVERVIEW_COLOURS)

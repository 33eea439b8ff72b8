"""Drawing helpers shared by the QC pictures (:mod:`ihc_score.outputs.qc`, :mod:`ihc_score.outputs.qc_zooms`).

Text (Pillow's built-in font, boxed text blocks), level-0 geometry to picture
px (OpenCV fixed-point polygons), hatching of excluded areas, scale bars,
number formatting and PNG writing. A picture pixel ``p`` of a panel drawn at
``s`` level-0 px per pixel has its centre at level-0 ``(p + 0.5) * s - 0.5``.
PNGs are written without any time stamp: the same picture gives the same bytes.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import shapely
from PIL import Image, ImageDraw, ImageFont

from ihc_score.fileio import atomic_write
from ihc_score.outputs.palette import EXCLUSION_COLOUR_RGB

__all__ = [
    "BG", "MARGIN", "SHIFT", "Text", "draw_bar", "draw_texts", "fmt", "hatch", "hatch_lines", "line_px", "poly_px",
    "rings", "scale_bar", "text_size", "to_px", "write_png",
]

MARGIN = 16
BG = (255, 255, 255)
_TEXT_RGB = (0, 0, 0)
#: Hatching period of excluded areas, picture px.
_HATCH_PX = 8
#: Scale bar lengths tried, mm.
_BAR_MM = (0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 50.0)
#: Fractional bits of the fixed-point coordinates given to OpenCV's drawing functions.
SHIFT = 4


# -- text -------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def text_size(lines: Sequence[str], size: int) -> tuple[int, int]:
    """(width, height) of a block of lines with a 4 px padding on every side."""
    font = _font(size)
    width = max((int(math.ceil(font.getlength(line))) for line in lines), default=0)
    return width + 8, line_px(size) * len(lines) + 8


def line_px(size: int) -> int:
    return int(round(size * 1.3))


@dataclass(frozen=True)
class Text:
    xy: tuple[int, int]
    lines: tuple[str, ...]
    size: int
    box: bool = False


def draw_texts(canvas: np.ndarray, texts: Sequence[Text]) -> np.ndarray:
    """Text blocks drawn with Pillow; a block with ``box`` gets a white box with a thin black border."""
    if not texts:
        return canvas
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for t in texts:
        x, y = t.xy
        if t.box:
            w, h = text_size(t.lines, t.size)
            draw.rectangle((x, y, x + w - 1, y + h - 1), fill=BG, outline=_TEXT_RGB)
        for k, line in enumerate(t.lines):
            draw.text((x + 4, y + 4 + k * line_px(t.size)), line, fill=_TEXT_RGB, font=_font(t.size))
    return np.asarray(image).copy()


# -- geometry helpers -------------------------------------------------------------------------------------------
def rings(wkt: str) -> list[np.ndarray]:
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


def to_px(l0_xy: np.ndarray, scale: tuple[float, float], origin: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Level-0 points to picture px of a panel drawn at ``scale`` level-0 px per px, ``origin`` its level-0 corner."""
    pts = np.asarray(l0_xy, dtype=np.float64)
    return (pts - np.asarray(origin) + 0.5) / np.asarray(scale) - 0.5


def poly_px(
    rings: Sequence[np.ndarray], scale: tuple[float, float], origin: tuple[float, float] = (0.0, 0.0)
) -> list[np.ndarray]:
    """Rings in picture px as OpenCV fixed-point points (:data:`SHIFT` fractional bits)."""
    return [np.round(to_px(r, scale, origin) * (1 << SHIFT)).astype(np.int32) for r in rings]


def hatch_lines(shape: tuple[int, int]) -> np.ndarray:
    """The diagonal lines (bool, ``shape``) with which excluded areas are hatched."""
    yy, xx = np.indices(shape)
    return ((xx + yy) % _HATCH_PX) < 2


def hatch(
    canvas: np.ndarray, wkts: Sequence[str], scale: tuple[float, float], origin: tuple[float, float] = (0.0, 0.0)
) -> None:
    """Excluded areas: diagonal black hatching and a black outline, in place."""
    h, w = canvas.shape[:2]
    for wkt in wkts:
        geom = shapely.from_wkt(wkt)
        inside = np.zeros((h, w), np.uint8)
        for poly in (g for g in shapely.get_parts(geom) if g.geom_type == "Polygon"):
            l0_rings = [np.asarray(poly.exterior.coords)[:, :2]] + [np.asarray(r.coords)[:, :2] for r in poly.interiors]
            rings = poly_px(l0_rings, scale, origin)
            cv2.fillPoly(inside, rings, 1, cv2.LINE_8, SHIFT)  # even-odd: holes stay empty
            cv2.polylines(canvas, rings, True, EXCLUSION_COLOUR_RGB, 1, cv2.LINE_8, SHIFT)
        canvas[(inside > 0) & hatch_lines((h, w))] = EXCLUSION_COLOUR_RGB


def scale_bar(
    panel_xy: tuple[int, int], panel_size: tuple[int, int], um_per_px: float
) -> tuple[tuple[int, int, int, int], Text]:
    """A bar of a round length (mm) about a fifth of the panel wide, in the panel's bottom-left corner.

    Returns the bar rectangle (x0, y0, x1, y1) in picture px and its label.
    """
    target_mm = panel_size[0] * um_per_px / 1000.0 / 5.0
    mm = max((b for b in _BAR_MM if b <= target_mm), default=_BAR_MM[0])
    length = max(1, int(round(mm * 1000.0 / um_per_px)))
    x0 = panel_xy[0] + 12
    y1 = panel_xy[1] + panel_size[1] - 12
    text = f"{mm * 1000:g} um" if mm < 1 else f"{mm:g} mm"
    label = Text((x0 - 4, y1 - 10 - line_px(14) - 8), (text,), 14)
    return (x0, y1 - 6, x0 + length, y1), label


def draw_bar(canvas: np.ndarray, bar: tuple[int, int, int, int], label: Text) -> None:
    x0, y0, x1, y1 = bar
    tw, th = text_size(label.lines, label.size)
    bx1 = max(x1, x0 - 4 + tw) + 4
    canvas[max(label.xy[1], 0) : y1 + 5, max(x0 - 6, 0) : bx1] = BG
    canvas[y0:y1, x0:x1] = _TEXT_RGB


def fmt(value: float, decimals: int = 0) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{decimals}f}"


#: Colours of the overview's palette PNG: its diagram needs a dozen, and its
#: slide thumbnail stays readable with the rest (a fifth of the bytes of full
#: colour, and faster to write).
OVERVIEW_COLOURS = 48
#: WebP quality of the zoom sheets: cell outlines one pixel wide stay sharp
#: and in their colour at 65 (about a tenth of the PNG's bytes).
ZOOM_WEBP_QUALITY = 65


def write_png(path: Path, rgb: np.ndarray, *, colours: int | None = None) -> None:
    """Write an RGB picture as PNG, in full colour or with a palette of ``colours`` (no dithering)."""
    if colours is None:
        ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise ValueError(f"cannot encode {path.name} as PNG")
        atomic_write(path, data.tobytes())
        return
    paletted = Image.fromarray(np.ascontiguousarray(rgb)).quantize(
        colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )
    buf = io.BytesIO()
    paletted.save(buf, "PNG", compress_level=6)
    atomic_write(path, buf.getvalue())


def write_webp(path: Path, rgb: np.ndarray, *, quality: int = ZOOM_WEBP_QUALITY) -> None:
    """Write an RGB picture as lossy WebP (no metadata: the same picture gives the same bytes)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, "WEBP", quality=quality, method=4)
    atomic_write(path, buf.getvalue())

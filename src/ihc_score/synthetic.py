"""Synthetic S100A9 (H-DAB) whole-slide images with exact ground truth.

The generator is the reference the whole tool is tested against. It works in
three separate steps:

1. :func:`make_layout` (pure): tissue pieces, tumour regions (metastases) and
   every cell, with its nucleus shape, stains and designed DAB class, from a
   :class:`SynthSpec` and its seed.
2. :func:`render_region` (pure): any level-0 rectangle of the slide as stain
   concentrations and RGB (Beer-Lambert through
   :func:`ihc_score.stain.compose_rgb`), with the nucleus and cell label
   images and the designed per-cell measurements. A rectangle is rendered
   with a margin wide enough that every pixel is the same whichever
   rectangle it is rendered in, so a slide is drawn block by block.
3. :func:`make_slide` (I/O): a pyramidal, JPEG-tiled, Aperio-style SVS that
   OpenSlide opens as vendor ``aperio`` with its pixel size, and the truth
   JSON beside it (``<stem>.truth.json``).

Conventions
-----------
Coordinates are level-0 pixels (x = column, y = row). OD is base-10 against
the slide's background (the blank glass colour ``I0``). A cell is its nucleus
grown by :data:`CELL_EXPANSION_UM`, each pixel going to the nearest nucleus
(the detector's definition). Every cell's DAB amplitude is solved so that its
mean DAB OD over that cell, before optics blur, noise and JPEG, is the value
recorded in the truth; its class is that mean against :data:`CLASS_THRESHOLDS`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from scipy import ndimage, special

from ihc_score.errors import OutputError
from ihc_score.stain import DEFAULT_STAINS, StainVectors, compose_rgb

__all__ = [
    "GENERATOR_VERSION",
    "CLASS_THRESHOLDS",
    "CLASS_BANDS",
    "CELL_EXPANSION_UM",
    "TumourRegion",
    "SynthSpec",
    "Cells",
    "SlideLayout",
    "RenderedRegion",
    "shift_stains",
    "preset",
    "PRESETS",
    "make_layout",
    "render_region",
    "make_slide",
    "truth_path",
]

GENERATOR_VERSION = "1"
#: DAB OD thresholds of classes 1+, 2+, 3+ (``>=``), QuPath's defaults.
CLASS_THRESHOLDS: tuple[float, float, float] = (0.2, 0.4, 0.6)
#: Designed cell DAB OD mean of each class, kept away from the thresholds.
CLASS_BANDS: tuple[tuple[float, float], ...] = ((0.0, 0.13), (0.25, 0.35), (0.45, 0.55), (0.68, 0.9))
#: Cell = nucleus grown by this distance (um), limited by neighbours.
CELL_EXPANSION_UM = 5.0
_TEXTURE_PX = 512
_FIELD_STEP_UM = 16.0
_BLOCK_PX = (2048, 1024)  # (width, height) of a rendering block, level-0 px


def _check_proportions(p: tuple[float, ...], name: str) -> tuple[float, ...]:
    a = np.asarray(p, dtype=np.float64)
    if a.shape != (4,) or np.any(a < 0) or not math.isclose(float(a.sum()), 1.0, abs_tol=1e-6):
        raise ValueError(f"{name} must be 4 non-negative fractions of classes 0, 1+, 2+, 3+ summing to 1, got {p!r}")
    return tuple(float(x) for x in a)


@dataclass(frozen=True)
class TumourRegion:
    """One metastasis: a sheet of tumour cells inside a noisy ellipse.

    Parameters
    ----------
    center : (float, float)
        Centre as fractions of the slide (width, height), 0-1.
    radii : (float, float)
        Semi-axes as fractions of the slide (width, height).
    angle_deg : float
        Rotation of the ellipse, degrees.
    class_proportions : 4 floats
        Expected fractions of tumour cells in classes 0, 1+, 2+, 3+.
    name : str
        Stable region name written into the truth.
    """

    center: tuple[float, float] = (0.5, 0.5)
    radii: tuple[float, float] = (0.3, 0.3)
    angle_deg: float = 0.0
    class_proportions: tuple[float, float, float, float] = (0.4, 0.3, 0.2, 0.1)
    name: str = "met1"

    def __post_init__(self) -> None:
        if not all(0.0 <= c <= 1.0 for c in self.center):
            raise ValueError(f"center must be fractions of the slide in 0-1, got {self.center!r}")
        if not all(0.0 < r <= 1.0 for r in self.radii):
            raise ValueError(f"radii must be fractions of the slide in (0, 1], got {self.radii!r}")
        object.__setattr__(self, "class_proportions", _check_proportions(self.class_proportions, "class_proportions"))


@dataclass(frozen=True)
class SynthSpec:
    """Everything that decides a synthetic slide; same spec, same bytes.

    Parameters
    ----------
    width, height : int
        Level-0 size, px.
    mpp_um : float
        Level-0 pixel size, um/px (0.25 = 40x).
    seed : int
        Seed of every random choice.
    stains : StainVectors
        Hematoxylin and DAB OD vectors used to draw (their ``background`` is
        ignored: ``background`` below is the glass colour).
    background : (float, float, float)
        Blank glass colour ``I0``, 8-bit RGB.
    jpeg_quality : int
        JPEG quality of the tiles, 1-100.
    tile_px : int
        Tile size, 256 or 512.
    tissue_fraction : float
        Approximate fraction of the slide covered by tissue pieces besides
        the tumour regions.
    tissue_pieces : int
        Number of tissue pieces.
    regions : tuple of TumourRegion
        The metastases, each with its class proportions.
    tumour_density_per_mm2 : float
        Tumour cells per mm^2 of tumour sheet.
    stroma_density_per_mm2 : float
        Stromal nuclei per mm^2 of non-tumour tissue.
    nucleus_diameter_um : (float, float)
        Range of tumour nucleus diameters (equivalent circle), um.
    cytoplasm_width_um : (float, float)
        Range of the tumour cytoplasm width around the nucleus, um.
    blur_sigma_um : float
        Gaussian optics blur, um.
    noise_sigma : float
        Sensor noise, 8-bit units.
    stroma_dab_od : float
        Mean nonspecific DAB OD of stroma.
    class_clustering : float
        0-1: how much the class of a tumour cell follows a smooth field
        (patches of ~50 um) rather than chance. Each region's class counts
        are its proportions times its cell count, rounded, either way.
    class_bands : 4 (low, high) pairs
        Range of the designed cell DAB OD mean of classes 0, 1+, 2+, 3+;
        each inside its class's interval of :data:`CLASS_THRESHOLDS`
        (narrow margins make harder slides).
    """

    width: int = 4096
    height: int = 3072
    mpp_um: float = 0.25
    seed: int = 0
    stains: StainVectors = DEFAULT_STAINS
    background: tuple[float, float, float] = (255.0, 255.0, 255.0)
    jpeg_quality: int = 85
    tile_px: int = 512
    tissue_fraction: float = 0.3
    tissue_pieces: int = 2
    regions: tuple[TumourRegion, ...] = (TumourRegion(),)
    tumour_density_per_mm2: float = 5000.0
    stroma_density_per_mm2: float = 400.0
    nucleus_diameter_um: tuple[float, float] = (6.0, 12.0)
    cytoplasm_width_um: tuple[float, float] = (4.0, 6.0)
    blur_sigma_um: float = 0.2
    noise_sigma: float = 2.0
    stroma_dab_od: float = 0.015
    class_clustering: float = 0.7
    class_bands: tuple[tuple[float, float], ...] = CLASS_BANDS

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            if int(getattr(self, name)) < 64:
                raise ValueError(f"{name} must be at least 64 px, got {getattr(self, name)!r}")
        if not 0.05 <= self.mpp_um <= 2.0:
            raise ValueError(f"mpp_um must be in 0.05-2 um/px, got {self.mpp_um!r}")
        bg = tuple(float(x) for x in self.background)
        if len(bg) != 3 or not all(1 <= x <= 255 for x in bg):
            raise ValueError(f"background must be 3 intensities in 1-255, got {self.background!r}")
        object.__setattr__(self, "background", bg)
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1-100, got {self.jpeg_quality!r}")
        if self.tile_px not in (256, 512):
            raise ValueError(f"tile_px must be 256 or 512, got {self.tile_px!r}")
        if not 0.0 <= self.tissue_fraction <= 0.9:
            raise ValueError(f"tissue_fraction must be in 0-0.9, got {self.tissue_fraction!r}")
        if self.tissue_pieces < 0:
            raise ValueError(f"tissue_pieces must be >= 0, got {self.tissue_pieces!r}")
        if not isinstance(self.regions, tuple) or not all(isinstance(r, TumourRegion) for r in self.regions):
            raise ValueError("regions must be a tuple of TumourRegion")
        if len({r.name for r in self.regions}) != len(self.regions):
            raise ValueError("regions must have distinct names")
        if self.tumour_density_per_mm2 < 0 or self.stroma_density_per_mm2 < 0:
            raise ValueError("tumour_density_per_mm2 and stroma_density_per_mm2 must be >= 0")
        if self.tumour_density_per_mm2 > 12000:
            raise ValueError(f"tumour_density_per_mm2 must be <= 12000, got {self.tumour_density_per_mm2!r}")
        lo, hi = self.nucleus_diameter_um
        if not 3.0 <= lo <= hi <= 16.0:
            raise ValueError(f"nucleus_diameter_um must be (min, max) within 3-16 um, got {self.nucleus_diameter_um!r}")
        lo, hi = self.cytoplasm_width_um
        if not 0.5 <= lo <= hi <= CELL_EXPANSION_UM + 2.0:
            raise ValueError(f"cytoplasm_width_um must be (min, max) within 0.5-7 um, got {self.cytoplasm_width_um!r}")
        if not 0.0 <= self.blur_sigma_um <= 1.0:
            raise ValueError(f"blur_sigma_um must be in 0-1 um, got {self.blur_sigma_um!r}")
        if not 0.0 <= self.noise_sigma <= 20.0:
            raise ValueError(f"noise_sigma must be in 0-20, got {self.noise_sigma!r}")
        bands = tuple((float(lo), float(hi)) for lo, hi in self.class_bands)
        edges = (0.0, *CLASS_THRESHOLDS, 3.0)
        if len(bands) != 4 or not all(edges[k] <= lo <= hi < edges[k + 1] for k, (lo, hi) in enumerate(bands)):
            raise ValueError(
                f"class_bands must be 4 (low, high) OD ranges inside 0-0.2-0.4-0.6-3, got {self.class_bands!r}")
        object.__setattr__(self, "class_bands", bands)
        if not 0.0 <= self.class_clustering <= 1.0:
            raise ValueError(f"class_clustering must be in 0-1, got {self.class_clustering!r}")
        if not 0.0 <= self.stroma_dab_od <= 0.1:
            raise ValueError(f"stroma_dab_od must be in 0-0.1, got {self.stroma_dab_od!r}")

    @property
    def render_stains(self) -> StainVectors:
        """The stain vectors with the glass colour as background ``I0``."""
        return StainVectors(self.stains.hematoxylin, self.stains.dab, background=self.background, source="synthetic")


def shift_stains(stains: StainVectors, angle_deg: float) -> StainVectors:
    """Hue-shift both stain vectors by a fixed angle.

    Each unit vector ``v`` is turned by ``angle_deg`` towards
    ``grey x v`` (``grey`` = (1, 1, 1)), i.e. around the grey axis, so the
    new vector is exactly ``angle_deg`` from the old one and keeps its
    distance from grey (saturation) as far as a rotation can.

    Parameters
    ----------
    stains : StainVectors
    angle_deg : float
        Angle, degrees; positive turns R towards G towards B.

    Returns
    -------
    StainVectors
        Same background, ``source="synthetic"``.

    Raises
    ------
    ValueError
        When a turned vector has a negative component.
    """
    grey = np.ones(3) / math.sqrt(3.0)
    t = math.radians(angle_deg)
    out = []
    for v in (np.asarray(stains.hematoxylin), np.asarray(stains.dab)):
        d = np.cross(grey, v)
        d /= np.linalg.norm(d)
        out.append(tuple(float(x) for x in math.cos(t) * v + math.sin(t) * d))
    return StainVectors(out[0], out[1], background=stains.background, source="synthetic")


PRESETS: dict[str, dict] = {
    "default": {},
    "shifted-stains": {"stains": shift_stains(DEFAULT_STAINS, -10.0), "background": (240.0, 235.0, 215.0)},
    "negative": {"regions": (TumourRegion(class_proportions=(0.75, 0.2, 0.05, 0.0)),)},
    "strong": {"regions": (TumourRegion(class_proportions=(0.12, 0.25, 0.33, 0.30)),)},
}


def preset(name: str, **overrides: object) -> SynthSpec:
    """A named spec, with keyword overrides of single fields.

    Parameters
    ----------
    name : str
        ``default`` (class proportions 0.4/0.3/0.2/0.1, H-score 100),
        ``shifted-stains`` (as default, stain vectors hue-shifted by -10
        degrees with :func:`shift_stains`, yellowish glass 240,235,215),
        ``negative`` (0.75/0.2/0.05/0, H-score 30) or ``strong``
        (0.12/0.25/0.33/0.30, H-score 181).
    **overrides
        Fields of :class:`SynthSpec` to replace (``width``, ``seed``, ...).

    Raises
    ------
    ValueError
        Unknown preset name or invalid field.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return SynthSpec(**{**PRESETS[name], **overrides})


@dataclass(frozen=True)
class Cells:
    """Cell table of a layout (one entry per cell, arrays of equal length).

    Lengths are level-0 px, angles radians, OD base-10. ``klass`` is the
    designed class (0-3), ``region`` the index of its tumour region (-1 for
    stromal cells), ``dab_target`` the designed cell DAB OD mean.
    """

    l0_x: np.ndarray
    l0_y: np.ndarray
    radius_a: np.ndarray
    radius_b: np.ndarray
    angle: np.ndarray
    harm2: np.ndarray
    phase2: np.ndarray
    harm3: np.ndarray
    phase3: np.ndarray
    nucleus_h_od: np.ndarray
    cytoplasm_px: np.ndarray
    cytoplasm_h_od: np.ndarray
    cytoplasm_ratio: np.ndarray
    dab_target: np.ndarray
    klass: np.ndarray
    tumour: np.ndarray
    region: np.ndarray

    def __len__(self) -> int:
        return int(self.l0_x.shape[0])

    def take(self, index: np.ndarray) -> Cells:
        """Subset (index array or boolean mask)."""
        return Cells(**{k: v[index] for k, v in self.__dict__.items()})

    @classmethod
    def concat(cls, tables: list[Cells]) -> Cells:
        """Cells of several tables, in order."""
        return Cells(**{k: np.concatenate([t.__dict__[k] for t in tables]) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class SlideLayout:
    """Pure description of a slide: coarse fields, textures and cells.

    ``tissue_um`` / ``tumour_um`` are approximate signed distances (um,
    positive inside) on a grid of step ``field_step_px`` level-0 px, node
    ``(j, i)`` at ``(i * step, j * step)``; ``tumour_um`` has one plane per
    region. ``textures`` is (P, P, 4) float32 in 0-1, periodic, indexed by
    level-0 coordinates modulo P: chromatin, granules, fibres, edges.
    """

    spec: SynthSpec
    field_step_px: float
    tissue_um: np.ndarray
    tumour_um: np.ndarray
    textures: np.ndarray
    cells: Cells
    reach_px: float = 0.0


@dataclass(frozen=True)
class RenderedRegion:
    """A rendered level-0 rectangle.

    ``concentrations`` (h, w, 3) float32 OD of hematoxylin, DAB, residual
    before blur; ``rgb`` (h, w, 3) uint8 after blur and noise;
    ``nucleus_labels`` / ``cell_labels`` int32, cell index + 1 (0 = none);
    ``stats`` per-cell measurements of the cells whose designed centre lies
    in the rectangle: ``index`` (into the layout's cells), ``l0_x``,
    ``l0_y`` (nucleus centroid), ``nucleus_px``, ``cell_px``,
    ``dab_cell_mean``, ``dab_nucleus_mean``, ``dab_cytoplasm_mean``.
    """

    l0_xy: tuple[int, int]
    concentrations: np.ndarray
    rgb: np.ndarray
    nucleus_labels: np.ndarray
    cell_labels: np.ndarray
    stats: dict[str, np.ndarray]


def _uniform_texture(rng: np.random.Generator, sigma_px: tuple[float, float]) -> np.ndarray:
    white = rng.standard_normal((_TEXTURE_PX, _TEXTURE_PX)).astype(np.float32)
    t = ndimage.gaussian_filter(white, sigma_px, mode="wrap")
    return special.ndtr((t - t.mean()) / max(float(t.std()), 1e-6)).astype(np.float32)


def _textures(seed: int, mpp_um: float) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    s = 1.0 / mpp_um
    chrom = 0.6 * _uniform_texture(rng, (0.3 * s, 0.3 * s)) + 0.4 * _uniform_texture(rng, (0.8 * s, 0.8 * s))
    gran = _uniform_texture(rng, (0.35 * s, 0.35 * s))
    fib = 0.45 * _uniform_texture(rng, (0.5 * s, 5.0 * s)) + 0.25 * _uniform_texture(rng, (4.0 * s, 0.5 * s))
    fib += 0.3 * _uniform_texture(rng, (5.0 * s, 5.0 * s))
    warp = [ndimage.gaussian_filter(rng.standard_normal((_TEXTURE_PX, _TEXTURE_PX)), 25.0 * s / 4, mode="wrap")
            for _ in range(2)]
    amp = 3.0 * s / max(float(np.std(warp[0])), 1e-9)
    yy, xx = np.mgrid[0:_TEXTURE_PX, 0:_TEXTURE_PX].astype(np.float64)
    fib = ndimage.map_coordinates(fib, [yy + amp * warp[0], xx + amp * warp[1]], order=1, mode="grid-wrap")
    edge = _uniform_texture(rng, (1.5 * s, 1.5 * s))
    return np.stack([chrom, gran, fib, edge], axis=-1).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_nodes: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.standard_normal(shape), max(sigma_nodes, 0.5), mode="reflect")
    return n / max(float(n.std()), 1e-9)


def _ellipse_um(gx: np.ndarray, gy: np.ndarray, cx: float, cy: float, a: float, b: float, ang: float) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    u = (gx - cx) * c + (gy - cy) * s
    v = -(gx - cx) * s + (gy - cy) * c
    return (1.0 - np.sqrt((u / a) ** 2 + (v / b) ** 2)) * min(a, b)


def _fields(spec: SynthSpec, rng: np.random.Generator) -> tuple[float, np.ndarray, np.ndarray]:
    step_px = _FIELD_STEP_UM / spec.mpp_um
    nx, ny = int(math.ceil(spec.width / step_px)) + 2, int(math.ceil(spec.height / step_px)) + 2
    gx, gy = np.meshgrid(np.arange(nx) * _FIELD_STEP_UM, np.arange(ny) * _FIELD_STEP_UM)
    w_um, h_um = spec.width * spec.mpp_um, spec.height * spec.mpp_um
    tissue = np.full((ny, nx), -1e4)
    tumour = np.full((max(len(spec.regions), 1), ny, nx), -1e4)
    for k, reg in enumerate(spec.regions):
        a, b = reg.radii[0] * w_um, reg.radii[1] * h_um
        cx, cy = reg.center[0] * w_um, reg.center[1] * h_um
        r = min(a, b)
        t = _ellipse_um(gx, gy, cx, cy, a, b, math.radians(reg.angle_deg))
        t = t + 0.12 * r * _smooth_noise(rng, (ny, nx), 0.25 * r / _FIELD_STEP_UM)
        tumour[k] = t + 12.0 * _smooth_noise(rng, (ny, nx), 30.0 / _FIELD_STEP_UM)
        tissue = np.maximum(tissue, tumour[k] + min(150.0, 0.3 * r))
    if spec.tissue_pieces > 0 and spec.tissue_fraction > 0:
        shares = rng.dirichlet(np.full(spec.tissue_pieces, 3.0))
        for share in shares:
            area = share * spec.tissue_fraction * w_um * h_um
            aspect = rng.uniform(1.0, 1.8)
            a, b = math.sqrt(area * aspect / math.pi), math.sqrt(area / aspect / math.pi)
            cx = rng.uniform(min(a, w_um / 2), max(w_um - a, w_um / 2))
            cy = rng.uniform(min(b, h_um / 2), max(h_um - b, h_um / 2))
            p = _ellipse_um(gx, gy, cx, cy, a, b, rng.uniform(0, math.pi))
            tissue = np.maximum(tissue, p + 0.15 * b * _smooth_noise(rng, (ny, nx), 0.3 * b / _FIELD_STEP_UM))
    tissue = tissue + 10.0 * _smooth_noise(rng, (ny, nx), 25.0 / _FIELD_STEP_UM)
    border = np.minimum(np.minimum(gx, w_um - gx), np.minimum(gy, h_um - gy)) - 50.0
    return step_px, np.minimum(tissue, border).astype(np.float32), np.minimum(tumour, border - 20.0).astype(np.float32)


def _sample_field(grid: np.ndarray, step_px: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    coords = np.stack([y / step_px, x / step_px])
    return ndimage.map_coordinates(grid, coords, order=1, mode="nearest")


def _classes(rng: np.random.Generator, latent: np.ndarray, proportions: tuple[float, ...]) -> np.ndarray:
    """Classes by rank of a latent value: counts = proportions x n, rounded."""
    n = latent.size
    bounds = np.rint(np.cumsum(proportions) * n).astype(np.int64)
    bounds[-1] = n
    rank = np.empty(n, np.int64)
    rank[np.argsort(latent + 1e-9 * rng.standard_normal(n), kind="stable")] = np.arange(n)
    return np.searchsorted(bounds, rank, side="right").astype(np.int8)


def _new_cells(rng: np.random.Generator, spec: SynthSpec, x: np.ndarray, y: np.ndarray, tumour: bool,
               region: int, latent: np.ndarray | None = None) -> Cells:
    n = x.shape[0]
    s = 1.0 / spec.mpp_um
    if tumour:
        lo, hi = spec.nucleus_diameter_um
        d = np.clip(rng.lognormal(math.log(0.5 * (lo + hi)) - 0.05, 0.18, n), lo, hi)
        aspect = rng.uniform(1.0, 1.5, n)
        harm2, harm3 = rng.uniform(0.0, 0.08, n), rng.uniform(0.0, 0.06, n)
        nuc_h = rng.uniform(0.25, 0.45, n)
        cyto = rng.uniform(*spec.cytoplasm_width_um, n) * s
        cyto_h = rng.uniform(0.06, 0.11, n)
        ratio = rng.uniform(1.15, 1.6, n)
        klass = _classes(rng, latent if latent is not None else rng.standard_normal(n),
                         spec.regions[region].class_proportions)
        bands = np.asarray(spec.class_bands)
        target = rng.uniform(bands[klass, 0], bands[klass, 1])
    else:
        d = rng.uniform(4.5, 7.0, n)
        aspect = rng.uniform(1.8, 3.2, n)
        harm2, harm3 = rng.uniform(0.0, 0.05, n), rng.uniform(0.0, 0.05, n)
        nuc_h = rng.uniform(0.4, 0.6, n)
        cyto = np.zeros(n)
        cyto_h = np.zeros(n)
        ratio = np.ones(n)
        klass = np.zeros(n, np.int8)
        target = np.zeros(n)
    r = 0.5 * d * s
    return Cells(
        l0_x=x.astype(np.float64), l0_y=y.astype(np.float64),
        radius_a=(r * np.sqrt(aspect)).astype(np.float32), radius_b=(r / np.sqrt(aspect)).astype(np.float32),
        angle=rng.uniform(0, np.pi, n).astype(np.float32),
        harm2=harm2.astype(np.float32), phase2=rng.uniform(0, 2 * np.pi, n).astype(np.float32),
        harm3=harm3.astype(np.float32), phase3=rng.uniform(0, 2 * np.pi, n).astype(np.float32),
        nucleus_h_od=nuc_h.astype(np.float32), cytoplasm_px=cyto.astype(np.float32),
        cytoplasm_h_od=cyto_h.astype(np.float32), cytoplasm_ratio=ratio.astype(np.float32),
        dab_target=target.astype(np.float64), klass=klass,
        tumour=np.full(n, tumour), region=np.full(n, region if tumour else -1, np.int16),
    )


def _place_cells(spec: SynthSpec, rng: np.random.Generator, step_px: float, tissue: np.ndarray,
                 tumour: np.ndarray) -> Cells:
    tables = []
    for k, reg in enumerate(spec.regions):
        if spec.tumour_density_per_mm2 <= 0:
            break
        spacing = math.sqrt(2.0 / (math.sqrt(3.0) * spec.tumour_density_per_mm2 * 1e-6)) / spec.mpp_um
        xs = np.arange(0.0, spec.width, spacing)
        ys = np.arange(0.0, spec.height, spacing * math.sqrt(3.0) / 2)
        gx, gy = np.meshgrid(xs, ys)
        gx = gx + (np.arange(ys.size) % 2)[:, None] * spacing / 2
        x = gx.ravel() + rng.uniform(-0.18, 0.18, gx.size) * spacing
        y = gy.ravel() + rng.uniform(-0.18, 0.18, gy.size) * spacing
        keep = (_sample_field(tumour[k], step_px, x, y) > 0) & (_sample_field(tissue, step_px, x, y) > 0)
        for j in range(k):
            keep &= _sample_field(tumour[j], step_px, x, y) <= 0
        x, y = x[keep], y[keep]
        c = spec.class_clustering
        patches = _smooth_noise(rng, tumour[k].shape, 50.0 / _FIELD_STEP_UM)
        latent = c * _sample_field(patches, step_px, x, y) + math.sqrt(1 - c * c) * rng.standard_normal(x.size)
        tables.append(_new_cells(rng, spec, x, y, True, k, latent))
    area_mm2 = spec.width * spec.height * (spec.mpp_um * 1e-3) ** 2
    n = rng.poisson(spec.stroma_density_per_mm2 * area_mm2)
    x, y = rng.uniform(0, spec.width, n), rng.uniform(0, spec.height, n)
    keep = _sample_field(tissue, step_px, x, y) > 8.0
    for k in range(len(spec.regions)):
        keep &= _sample_field(tumour[k], step_px, x, y) < -8.0
    tables.append(_new_cells(rng, spec, x[keep], y[keep], False, -1))
    return Cells.concat(tables)


def make_layout(spec: SynthSpec, cells: Cells | None = None) -> SlideLayout:
    """Tissue, tumour regions and cells of a slide (pure, seeded).

    Parameters
    ----------
    spec : SynthSpec
    cells : Cells, optional
        Use these cells instead of placing them from the spec (for tests
        that draw cells of known parameters).

    Returns
    -------
    SlideLayout
    """
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0]))
    step_px, tissue, tumour = _fields(spec, rng)
    if cells is None:
        cells = _place_cells(spec, rng, step_px, tissue, tumour)
    grow = CELL_EXPANSION_UM / spec.mpp_um
    rmax = 0.0
    if len(cells):
        rmax = float(np.max(cells.radius_a * (1.0 + cells.harm2 + cells.harm3)))
        grow = max(grow, float(np.max(cells.cytoplasm_px)))
    return SlideLayout(spec, step_px, tissue, tumour, _textures(spec.seed, spec.mpp_um), cells, rmax + grow + 2.0)


def _interp_matrix(start: int, n: int, step_px: float, nodes: int) -> np.ndarray:
    pos = np.clip((start + np.arange(n) + 0.5) / step_px, 0, nodes - 1.000001)
    j0 = np.floor(pos).astype(np.int64)
    t = (pos - j0).astype(np.float32)
    m = np.zeros((n, nodes), np.float32)
    m[np.arange(n), j0] = 1.0 - t
    m[np.arange(n), j0 + 1] = t
    return m


def _field_block(grid: np.ndarray, step_px: float, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    my = _interp_matrix(y0, h, step_px, grid.shape[0])
    mx = _interp_matrix(x0, w, step_px, grid.shape[1])
    cols = np.flatnonzero(mx.any(axis=0))
    rows = np.flatnonzero(my.any(axis=0))
    sub = grid[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    return my[:, rows[0]: rows[-1] + 1] @ sub @ mx[:, cols[0]: cols[-1] + 1].T


def _splat_nuclei(cells: Cells, x0: int, y0: int, w: int, h: int, tex: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nucleus labels (local index + 1, nearest by shape), summed H OD and chromatin of the block."""
    n = len(cells)
    labels = np.zeros(h * w, np.int32)
    h_od = np.zeros(h * w, np.float32)
    if n == 0:
        return labels.reshape(h, w), h_od.reshape(h, w), h_od.reshape(h, w)
    reach = int(math.ceil(float(np.max(cells.radius_a * (1 + cells.harm2 + cells.harm3))))) + 1
    off = np.arange(-reach, reach + 1, dtype=np.float32)
    cxi = np.floor(cells.l0_x).astype(np.int64) - x0
    cyi = np.floor(cells.l0_y).astype(np.int64) - y0
    px = cxi[:, None, None] + off.astype(np.int64)[None, None, :]
    py = cyi[:, None, None] + off.astype(np.int64)[None, :, None]
    dx = (px + 0.5 - (cells.l0_x - x0)[:, None, None]).astype(np.float32)
    dy = (py + 0.5 - (cells.l0_y - y0)[:, None, None]).astype(np.float32)
    c, s = np.cos(cells.angle)[:, None, None], np.sin(cells.angle)[:, None, None]
    u = (dx * c + dy * s) / cells.radius_a[:, None, None]
    v = (dy * c - dx * s) / cells.radius_b[:, None, None]
    rho = np.sqrt(u * u + v * v)
    near = (rho < 1.25) & (px >= 0) & (px < w) & (py >= 0) & (py < h)
    ci, iy, ix = np.nonzero(near)
    th = np.arctan2(v[near], u[near])
    bound = (1.0 + cells.harm2[ci] * np.cos(2 * th + cells.phase2[ci])
             + cells.harm3[ci] * np.cos(3 * th + cells.phase3[ci]))
    q = rho[near] / bound
    inside = q < 1.0
    ci, q = ci[inside], q[inside]
    flat = (py[ci, iy[inside], 0] * w + px[ci, 0, ix[inside]]).astype(np.int64)
    key = np.full(h * w, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(key, flat, (np.minimum(q, 0.999999) * 2**20).astype(np.int64) << 32 | ci.astype(np.int64))
    hit = key != np.iinfo(np.int64).max
    labels[hit] = (key[hit] & 0xFFFFFFFF).astype(np.int32) + 1
    chrom = tex[..., 0].reshape(-1)[flat]
    rim = 1.0 + 0.5 * np.clip((q - 0.8) / 0.2, 0.0, 1.0)
    soft = np.clip((1.0 - q) / 0.08, 0.0, 1.0)
    val = cells.nucleus_h_od[ci] * (0.55 + 0.9 * chrom) * rim * (0.4 + 0.6 * soft)
    h_od = np.bincount(flat, weights=val, minlength=h * w).astype(np.float32)
    return labels.reshape(h, w), h_od.reshape(h, w), tex[..., 0]


def _owners(nuc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest nucleus label of every pixel and its distance (px)."""
    if not nuc.any():
        return np.zeros_like(nuc), np.full(nuc.shape, np.inf, np.float32)
    dist, lab = cv2.distanceTransformWithLabels((nuc == 0).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ids = np.concatenate([np.zeros(1, np.int32), nuc[nuc > 0]])
    return ids[lab], dist


def _field_max(layout: SlideLayout, x0: int, y0: int, w: int, h: int) -> float:
    st = layout.field_step_px
    g = layout.tissue_um
    j0, j1 = max(int(y0 // st) - 1, 0), min(int((y0 + h) // st) + 2, g.shape[0])
    i0, i1 = max(int(x0 // st) - 1, 0), min(int((x0 + w) // st) + 2, g.shape[1])
    return float(g[j0:j1, i0:i1].max()) if j1 > j0 and i1 > i0 else float(g.max())


def _add_noise(rgb: np.ndarray, spec: SynthSpec, noise_key: tuple[int, ...]) -> np.ndarray:
    if spec.noise_sigma <= 0:
        return rgb
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 2, *noise_key]))
    noise = rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(spec.noise_sigma)
    return np.clip(rgb + np.rint(noise), 0, 255).astype(np.uint8)


def _blank_region(layout: SlideLayout, l0_xy: tuple[int, int], size: tuple[int, int],
                  noise_key: tuple[int, ...]) -> RenderedRegion:
    w, h = size
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = compose_rgb(np.zeros((1, 3)), layout.spec.render_stains)[0]
    empty = {k: np.empty(0, np.int64 if k == "index" else np.float64) for k in _STAT_KEYS}
    zeros = np.zeros((h, w), np.int32)
    return RenderedRegion(l0_xy, np.zeros((h, w, 3), np.float32), _add_noise(rgb, layout.spec, noise_key),
                          zeros, zeros, empty)


_STAT_KEYS = ("index", "l0_x", "l0_y", "nucleus_px", "cell_px", "dab_cell_mean", "dab_nucleus_mean",
              "dab_cytoplasm_mean")


def render_region(layout: SlideLayout, l0_xy: tuple[int, int], size: tuple[int, int], *,
                  noise_key: tuple[int, ...] = ()) -> RenderedRegion:
    """Render a level-0 rectangle of a layout (pure).

    Parameters
    ----------
    layout : SlideLayout
    l0_xy : (int, int)
        Top-left corner, level-0 px.
    size : (int, int)
        (width, height), px.
    noise_key : tuple of int
        Extra seed words of the sensor noise (the same key gives the same
        noise; the rest of the image does not depend on it).

    Returns
    -------
    RenderedRegion
        Pixels identical to those of any other rectangle covering them,
        except the sensor noise.
    """
    spec = layout.spec
    x0, y0 = int(l0_xy[0]), int(l0_xy[1])
    w, h = int(size[0]), int(size[1])
    blur_px = spec.blur_sigma_um / spec.mpp_um
    m = int(math.ceil(2 * layout.reach_px + 3 * blur_px + 2))
    ex0, ey0, ew, eh = x0 - m, y0 - m, w + 2 * m, h + 2 * m
    cells = layout.cells
    r = layout.reach_px
    sel = np.flatnonzero((cells.l0_x >= ex0 - r) & (cells.l0_x < ex0 + ew + r) &
                         (cells.l0_y >= ey0 - r) & (cells.l0_y < ey0 + eh + r))
    sub = cells.take(sel)
    if len(sub) == 0 and _field_max(layout, ex0, ey0, ew, eh) < -8.0:
        return _blank_region(layout, (x0, y0), (w, h), noise_key)
    ys = np.arange(ey0, ey0 + eh) % _TEXTURE_PX
    xs = np.arange(ex0, ex0 + ew) % _TEXTURE_PX
    tex = layout.textures[ys[:, None], xs[None, :]]
    tissue = _field_block(layout.tissue_um, layout.field_step_px, ex0, ey0, ew, eh)
    alpha = np.clip((tissue + 3.0 * (tex[..., 3] - 0.5)) / 1.5, 0.0, 1.0)
    fib = tex[..., 2]
    stroma_h = alpha * 0.06 * (0.4 + 1.2 * fib)
    stroma_dab = alpha * spec.stroma_dab_od * (0.4 + 1.2 * fib)
    nuc, nuc_h, chrom = _splat_nuclei(sub, ex0, ey0, ew, eh, tex)
    owner, dist = _owners(nuc)
    k = len(sub) + 1
    cyto_px = np.concatenate([[0.0], sub.cytoplasm_px]).astype(np.float32)
    body = (owner > 0) & (dist <= cyto_px[owner])
    in_cell = (owner > 0) & (dist <= CELL_EXPANSION_UM / spec.mpp_um)
    is_nuc = nuc > 0
    ratio = np.concatenate([[0.0], sub.cytoplasm_ratio]).astype(np.float32)
    pattern = np.where(is_nuc, 0.8 + 0.4 * chrom, ratio[owner] * (0.55 + 0.9 * tex[..., 1]))
    pattern = np.where(body, pattern, 0.0).astype(np.float32)
    bg_dab = np.where(body, 0.0, stroma_dab).astype(np.float32)
    cell_o = np.where(in_cell, owner, 0)
    n_cell = np.bincount(cell_o.ravel(), minlength=k).astype(np.float64)
    s_pat = np.bincount(cell_o.ravel(), weights=pattern.ravel(), minlength=k)
    s_bg = np.bincount(cell_o.ravel(), weights=bg_dab.ravel(), minlength=k)
    target = np.concatenate([[0.0], sub.dab_target])
    amp = np.where(s_pat > 0, np.maximum(target * n_cell - s_bg, 0.0) / np.maximum(s_pat, 1e-12), 0.0)
    dab = amp.astype(np.float32)[owner] * pattern + bg_dab
    cyto_h = np.concatenate([[0.0], sub.cytoplasm_h_od]).astype(np.float32)
    hema = np.where(body & ~is_nuc, cyto_h[owner] * (0.7 + 0.6 * tex[..., 1]), stroma_h) + nuc_h
    resid = alpha * 0.01 * (tex[..., 1] - 0.5)
    conc = np.stack([hema, dab, resid], axis=-1).astype(np.float32)
    if blur_px > 0:
        conc_b = cv2.GaussianBlur(conc, (0, 0), blur_px)
    else:
        conc_b = conc
    core = (slice(m, m + h), slice(m, m + w))
    rgb = compose_rgb(conc_b[core], spec.render_stains)
    rgb = _add_noise(rgb, spec, noise_key)
    # per-cell truth of cells whose designed centre is in the core
    mine = np.flatnonzero((sub.l0_x >= x0) & (sub.l0_x < x0 + w) & (sub.l0_y >= y0) & (sub.l0_y < y0 + h)) + 1
    nuc_flat = nuc.ravel()
    n_nuc = np.bincount(nuc_flat, minlength=k).astype(np.float64)
    on = np.flatnonzero(nuc_flat)
    yy, xx = np.divmod(on, ew)
    cx = np.bincount(nuc_flat[on], weights=xx + (ex0 + 0.5), minlength=k) / np.maximum(n_nuc, 1)
    cy = np.bincount(nuc_flat[on], weights=yy + (ey0 + 0.5), minlength=k) / np.maximum(n_nuc, 1)
    s_nuc = np.bincount(nuc_flat, weights=dab.ravel(), minlength=k)
    s_cell = amp * s_pat + s_bg
    n_cyt = n_cell - n_nuc
    stats = {
        "index": sel[mine - 1],
        "l0_x": cx[mine], "l0_y": cy[mine],
        "nucleus_px": n_nuc[mine], "cell_px": n_cell[mine],
        "dab_cell_mean": (s_cell / np.maximum(n_cell, 1))[mine],
        "dab_nucleus_mean": (s_nuc / np.maximum(n_nuc, 1))[mine],
        "dab_cytoplasm_mean": ((s_cell - s_nuc) / np.maximum(n_cyt, 1))[mine],
    }
    to_global = np.concatenate([[0], sel + 1]).astype(np.int32)
    return RenderedRegion((x0, y0), conc[core], rgb, to_global[nuc[core]], to_global[cell_o[core]], stats)


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

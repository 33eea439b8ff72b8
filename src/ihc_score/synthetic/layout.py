"""Layout of a synthetic slide: tissue and tumour fields, textures, cells (pure).

:func:`make_layout` turns a :class:`~ihc_score.synthetic.spec.SynthSpec` and
its seed into a :class:`SlideLayout`: coarse signed-distance fields of tissue
and of each tumour region, periodic textures, and the :class:`Cells` table
with every cell's nucleus shape, stains and designed DAB class. Lengths are
level-0 px unless named ``_um``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special

from ihc_score.synthetic.spec import CELL_EXPANSION_UM, SynthSpec

__all__ = ["Cells", "SlideLayout", "make_layout"]

_TEXTURE_PX = 512
_FIELD_STEP_UM = 16.0


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

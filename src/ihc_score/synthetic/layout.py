"""Layout of a synthetic slide: tissue and tumour fields, outlines, textures, cells (pure).

:func:`make_layout` turns a :class:`~ihc_score.synthetic.spec.SynthSpec` and
its seed into a :class:`SlideLayout`: coarse signed-distance fields of tissue,
of each tumour region and of the necroses, the outline polygon of every
metastasis (necroses cut out) and necrosis, periodic textures, and the
:class:`Cells` table with every cell's nucleus shape, stains, kind and
designed DAB class. Lengths are level-0 px unless named ``_um``.

Placement rules: tumour cells only where their designed centre lies inside
their metastasis outline, at least :data:`TUMOUR_MARGIN_UM` from its
boundary (metastases are solid sheets: no host cell is placed inside an
outline nor within 8 um of it); no tumour or host cell inside a necrosis
(host cells keep 4 um away from it); glia keep 22 um from neuron centres;
nuclear dust and ghost cells only inside necroses; hemosiderin-laden
macrophages 15-150 um outside a metastasis outline, 10 um clear of glia and
22 um of neurons; infiltrating immune cells (:mod:`.infiltrates`) at a
share of a metastasis's tumour cell positions. Pigment (melanosomes,
macrophages, granules) comes from random streams of its own, so a slide
without it is drawn as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import shapely
from scipy import ndimage, special
from scipy.spatial import cKDTree

from ihc_score.synthetic import infiltrates as inf
from ihc_score.synthetic import outlines as ol
from ihc_score.synthetic import pigments as pg
from ihc_score.synthetic import tissue_types as tt
from ihc_score.synthetic.spec import SynthSpec
from ihc_score.synthetic.tissue_types import Cells

__all__ = ["Cells", "SlideLayout", "make_layout"]

_TEXTURE_PX = 512
_FIELD_STEP_UM = 16.0
#: Least distance of a tumour cell's designed centre from its outline, um.
TUMOUR_MARGIN_UM = 1.5
#: No glial nucleus closer than this to a neuron's centre, um (its body reaches 14 um).
_NEURON_CLEAR_UM = 22.0


@dataclass(frozen=True)
class SlideLayout:
    """Pure description of a slide: coarse fields, textures and cells.

    ``tissue_um`` / ``tumour_um`` are approximate signed distances (um,
    positive inside) on a grid of step ``field_step_px`` level-0 px, node
    ``(j, i)`` at ``(i * step, j * step)``; ``tumour_um`` has one plane per
    region, ``necrosis_um`` one plane (the union of the necroses; all
    -1e4 when there is none). ``outlines`` holds the polygon of each
    tumour region (level-0 px, necroses cut out), ``necrosis_outlines``
    that of each necrosis, in spec order. ``textures`` is (P, P, 5) float32
    in 0-1, periodic, indexed by level-0 coordinates modulo P: chromatin,
    granules, fibres, edges, neuropil. ``granules`` holds the pigment blobs
    (None when no cell is pigmented).
    """

    spec: SynthSpec
    field_step_px: float
    tissue_um: np.ndarray
    tumour_um: np.ndarray
    textures: np.ndarray
    cells: Cells
    reach_px: float = 0.0
    necrosis_um: np.ndarray | None = None
    outlines: tuple[ol.Outline, ...] = ()
    necrosis_outlines: tuple[ol.Outline, ...] = ()
    granules: pg.Granules | None = None


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
    pil = tt.neuropil_texture(rng, _TEXTURE_PX, mpp_um)
    return np.stack([chrom, gran, fib, edge, pil], axis=-1).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_nodes: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.standard_normal(shape), max(sigma_nodes, 0.5), mode="reflect")
    return n / max(float(n.std()), 1e-9)


def _ellipse_um(gx: np.ndarray, gy: np.ndarray, cx: float, cy: float, a: float, b: float, ang: float) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    u = (gx - cx) * c + (gy - cy) * s
    v = -(gx - cx) * s + (gy - cy) * c
    return (1.0 - np.sqrt((u / a) ** 2 + (v / b) ** 2)) * min(a, b)


def _grid_shape(spec: SynthSpec) -> tuple[float, int, int]:
    step_px = _FIELD_STEP_UM / spec.mpp_um
    return step_px, int(math.ceil(spec.height / step_px)) + 2, int(math.ceil(spec.width / step_px)) + 2


def _necroses(spec: SynthSpec) -> tuple[tuple[ol.Outline, ...], np.ndarray]:
    """Necrosis outlines and their union's signed distance field (um)."""
    step_px, ny, nx = _grid_shape(spec)
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 3]))
    polys = tuple(ol.necrosis_outline(rng, (n.center[0] * spec.width, n.center[1] * spec.height),
                                      (n.radii[0] * spec.width, n.radii[1] * spec.height), n.angle_deg,
                                      size=(spec.width, spec.height)) for n in spec.necroses)
    union = shapely.union_all(polys) if polys else shapely.Polygon()
    return polys, ol.signed_distance_um(union, step_px, (ny, nx), spec.mpp_um)


def _fields(spec: SynthSpec, rng: np.random.Generator, necrosis_um: np.ndarray
            ) -> tuple[float, np.ndarray, np.ndarray]:
    step_px, ny, nx = _grid_shape(spec)
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
    tissue = np.maximum(tissue, necrosis_um + 30.0)
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


def _tumour_cells(rng: np.random.Generator, spec: SynthSpec, x: np.ndarray, y: np.ndarray, region: int,
                  latent: np.ndarray) -> Cells:
    n = x.shape[0]
    lo, hi = spec.nucleus_diameter_um
    d = np.clip(rng.lognormal(math.log(0.5 * (lo + hi)) - 0.05, 0.18, n), lo, hi)
    aspect = rng.uniform(1.0, 1.5, n)
    nuc_h = rng.uniform(0.25, 0.45, n)
    cyto = rng.uniform(*spec.cytoplasm_width_um, n) / spec.mpp_um
    cyto_h = rng.uniform(0.06, 0.11, n)
    ratio = rng.uniform(1.15, 1.6, n)
    klass = _classes(rng, latent, spec.regions[region].class_proportions)
    target = tt.designed_targets(rng, spec.class_bands, klass)
    half_gap = 0.5 * rng.uniform(*spec.cell_gap_um, n) / spec.mpp_um  # neighbours: the sum of two halves
    return tt.make_cells(rng, x, y, kind=tt.KIND_TUMOUR, mpp_um=spec.mpp_um, diameter_um=d, aspect=aspect,
                         harm=(0.08, 0.06), nucleus_h_od=nuc_h, cytoplasm_px=cyto, cytoplasm_h_od=cyto_h,
                         cytoplasm_ratio=ratio, klass=klass, dab_target=target, region=region, half_gap_px=half_gap)


def _poisson(rng: np.random.Generator, spec: SynthSpec, density_per_mm2: float,
             box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random points at a density (per mm^2) in a level-0 box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    n = rng.poisson(density_per_mm2 * max(x1 - x0, 0) * max(y1 - y0, 0) * (spec.mpp_um * 1e-3) ** 2)
    return rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)


def _away(geoms: tuple[ol.Outline, ...], x: np.ndarray, y: np.ndarray, margin_px: float) -> np.ndarray:
    """Points farther than ``margin_px`` from every outline (and outside them)."""
    keep = np.ones(x.shape, bool)
    for g in geoms:
        keep &= ~ol.inside(g, x, y, margin_px=-margin_px)
    return keep


def _place_cells(spec: SynthSpec, rng: np.random.Generator, step_px: float, tissue: np.ndarray,
                 tumour: np.ndarray, outlines: tuple[ol.Outline, ...], necroses: tuple[ol.Outline, ...]) -> Cells:
    tables = []
    um = 1.0 / spec.mpp_um
    for k in range(len(spec.regions)):
        if spec.tumour_density_per_mm2 <= 0:
            break
        tables.extend(_region_cells(spec, rng, step_px, tumour, outlines, k))
    extra = np.random.default_rng(np.random.SeedSequence([spec.seed, 5]))
    nx, ny = np.empty(0), np.empty(0)
    if spec.host_tissue == "brain" and spec.neuron_density_per_mm2 > 0:
        nx, ny = _poisson(extra, spec, spec.neuron_density_per_mm2, (0, 0, spec.width, spec.height))
        keep = _sample_field(tissue, step_px, nx, ny) > 25.0
        keep &= _away(outlines, nx, ny, 20.0 * um) & _away(necroses, nx, ny, 15.0 * um)
        nx, ny = nx[keep], ny[keep]
    x, y = _poisson(rng, spec, spec.stroma_density_per_mm2, (0, 0, spec.width, spec.height))
    keep = _sample_field(tissue, step_px, x, y) > 8.0
    for k in range(len(spec.regions)):
        keep &= _sample_field(tumour[k], step_px, x, y) < -8.0
    keep &= _away(outlines, x, y, 8.0 * um) & _away(necroses, x, y, 4.0 * um)
    if nx.size:  # glia keep clear of neuron bodies
        keep &= ~shapely.contains_xy(shapely.buffer(shapely.multipoints(np.stack([nx, ny], 1)), _NEURON_CLEAR_UM * um),
                                     x, y)
    tables.append(tt.host_cells(rng, x[keep], y[keep], host_tissue=spec.host_tissue, mpp_um=spec.mpp_um))
    glia_xy, neuron_xy = np.stack([x[keep], y[keep]], 1), np.stack([nx, ny], 1)
    if nx.size:
        tables.append(tt.neuron_cells(extra, nx, ny, mpp_um=spec.mpp_um))
    for g in necroses:
        if g.is_empty:
            continue
        for kind in (tt.KIND_GHOST, tt.KIND_DUST):
            x, y = _poisson(extra, spec, tt.debris_density_per_mm2(kind), g.bounds)
            keep = ol.inside(g, x, y, margin_px=(6.0 if kind == tt.KIND_GHOST else 1.0) * um)
            tables.append(tt.debris_cells(extra, x[keep], y[keep], kind=kind, mpp_um=spec.mpp_um,
                                          dab_od=spec.necrosis_dab_od))
    if spec.hemosiderin_density_per_mm2 > 0:
        tables.append(_macrophages(spec, step_px, tissue, tumour, outlines, necroses, glia_xy, neuron_xy))
    return Cells.concat(tables)


def _region_cells(spec: SynthSpec, rng: np.random.Generator, step_px: float, tumour: np.ndarray,
                  outlines: tuple[ol.Outline, ...], k: int) -> list[Cells]:
    """Cells of metastasis ``k``: a jittered hexagonal sheet inside its outline, tumour cells and any infiltrates.

    Infiltrating cells take their share of the positions before the tumour
    cells get their classes, so the tumour class counts follow the region's
    proportions over the tumour cells.
    """
    spacing = math.sqrt(2.0 / (math.sqrt(3.0) * spec.tumour_density_per_mm2 * 1e-6)) / spec.mpp_um
    xs = np.arange(0.0, spec.width, spacing)
    ys = np.arange(0.0, spec.height, spacing * math.sqrt(3.0) / 2)
    gx, gy = np.meshgrid(xs, ys)
    gx = gx + (np.arange(ys.size) % 2)[:, None] * spacing / 2
    x = gx.ravel() + rng.uniform(-0.18, 0.18, gx.size) * spacing
    y = gy.ravel() + rng.uniform(-0.18, 0.18, gy.size) * spacing
    keep = ol.inside(outlines[k], x, y, margin_px=TUMOUR_MARGIN_UM * (1.0 / spec.mpp_um))
    x, y = x[keep], y[keep]
    stays, infiltrates = inf.split_infiltrates(spec, k, x, y)
    x, y = x[stays], y[stays]
    c = spec.class_clustering
    patches = _smooth_noise(rng, tumour[k].shape, 50.0 / _FIELD_STEP_UM)
    latent = c * _sample_field(patches, step_px, x, y) + math.sqrt(1 - c * c) * rng.standard_normal(x.size)
    cells = [_melanin_laden(spec, k, _tumour_cells(rng, spec, x, y, k, latent))]
    return cells if infiltrates is None else cells + [infiltrates]


def _melanin_laden(spec: SynthSpec, region: int, cells: Cells) -> Cells:
    """Mark round(pigmented_fraction * n) tumour cells of a region, at random, as melanin-laden."""
    frac = spec.regions[region].pigmented_fraction
    if frac <= 0 or len(cells) == 0:
        return cells
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 6, region]))
    pick = rng.permutation(len(cells))[: int(round(frac * len(cells)))]
    pigment = cells.pigment.copy()
    pigment[pick] = tt.PIGMENT_MELANIN
    return replace(cells, pigment=pigment)


def _macrophages(spec: SynthSpec, step_px: float, tissue: np.ndarray, tumour: np.ndarray,
                 outlines: tuple[ol.Outline, ...], necroses: tuple[ol.Outline, ...], glia_xy: np.ndarray,
                 neuron_xy: np.ndarray) -> Cells:
    """Hemosiderin-laden macrophages in the host tissue 15-150 um around the metastases."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 7]))
    um = 1.0 / spec.mpp_um
    x, y = _poisson(rng, spec, spec.hemosiderin_density_per_mm2, (0, 0, spec.width, spec.height))
    near = np.full(x.shape, -1e4)
    for k in range(len(spec.regions)):
        near = np.maximum(near, _sample_field(tumour[k], step_px, x, y))
    keep = (_sample_field(tissue, step_px, x, y) > 10.0) & (near > -150.0) & (near < -15.0)
    keep &= _away(outlines, x, y, 15.0 * um) & _away(necroses, x, y, 10.0 * um)
    for xy, clear_um in ((glia_xy, 10.0), (neuron_xy, _NEURON_CLEAR_UM)):
        if xy.shape[0] and keep.any():
            keep[keep] = cKDTree(xy).query(np.stack([x[keep], y[keep]], 1))[0] > clear_um * um
    x, y = x[keep], y[keep]
    return tt.macrophage_cells(rng, x, y, mpp_um=spec.mpp_um)


def _outlines(spec: SynthSpec, step_px: float, tissue: np.ndarray, tumour: np.ndarray,
              necroses: tuple[ol.Outline, ...]) -> tuple[ol.Outline, ...]:
    """Each region's outline: where it is the first region with a positive field, inside tissue, minus necroses."""
    cut = shapely.union_all(necroses) if necroses else None
    out = []
    for k in range(len(spec.regions)):
        e = np.minimum(tumour[k], tissue)
        for j in range(k):
            e = np.minimum(e, -tumour[j])
        g = ol.field_outline(e, step_px, size=(spec.width, spec.height))
        if cut is not None and not g.is_empty:
            g = ol.clean(shapely.difference(g, cut))
        out.append(g)
    return tuple(out)


def make_layout(spec: SynthSpec, cells: Cells | None = None) -> SlideLayout:
    """Tissue, regions, outlines and cells of a slide (pure, seeded).

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
    necroses, necrosis_um = _necroses(spec)
    step_px, tissue, tumour = _fields(spec, rng, necrosis_um)
    outlines = _outlines(spec, step_px, tissue, tumour, necroses)
    if cells is None:
        cells = _place_cells(spec, rng, step_px, tissue, tumour, outlines, necroses)
    rmax = grow = 0.0
    if len(cells):  # a cell's body reaches its nucleus's outer radius plus its cytoplasm width
        rmax = float(np.max(cells.radius_a * (1.0 + cells.harm2 + cells.harm3)))
        grow = float(np.max(cells.cytoplasm_px))
    return SlideLayout(spec, step_px, tissue, tumour, _textures(spec.seed, spec.mpp_um), cells, rmax + grow + 2.0,
                       necrosis_um, outlines, necroses, pg.make_granules(spec, cells))

"""Metastases found automatically from the detected nuclei (pure, no I/O).

Without a pathologist's drawing, the metastases of a slide are taken to be
the parts of its tissue crowded with large nuclei. Brain metastases are
carcinoma or melanoma sheets: thousands of nuclei per mm^2, most of them
larger than the small glial nuclei of the brain parenchyma around them
(about 1000 per mm^2 in grey matter, mostly 5-7 um across); necrosis has
no living cells, only debris (many small fragments of nuclear dust among
a few large, pale ghost cells); glass has none. Tissue pieces are never
joined: every step keeps to the tissue mask.

Method
------
1. **Grid.** The slide is cut into square cells of ``grid_um``. Every
   detected nucleus is counted in the cell holding its centroid; "tumour-like"
   nuclei (``nucleus_area_um2 >= min_nucleus_area_um2``) are counted apart.
   The tissue mask is sampled at each cell's centre.
2. **Density.** The counts of tumour-like nuclei are smoothed with a Gaussian
   of ``smoothing_um`` and divided by the equally smoothed tissue fraction
   (normalised convolution), giving tumour-like nuclei per mm^2 of tissue:
   the edge of a tissue piece does not dilute the density of the tumour on
   it. Cells where less than ``min_tissue_fraction`` of the neighbourhood is
   tissue get density 0. All nuclei are smoothed the same way, giving the
   local fraction of tumour-like nuclei among all nuclei.
3. **Threshold.** With ``otsu`` (default), Otsu's threshold of the density
   over the tissue cells, clamped to ``[min_density_per_mm2,
   max_density_per_mm2]``: between a tumour mode and a parenchyma mode Otsu
   falls near their midpoint, so the outline sits at the true edge; on a
   slide without tumour it falls into the noise and the lower bound stops
   it. Without ``otsu``, the threshold is ``min_density_per_mm2``.
4. **Shape.** Cells at or above the threshold, where at least
   ``min_tumour_fraction`` of the nuclei are tumour-like (necrotic debris:
   many small fragments with a few large pale ghosts), and on tissue; closing with a
   disc of radius ``close_um`` (bridges vessels and small cell-poor gaps),
   back to tissue only, opening with a disc of radius ``open_um`` (cuts thin
   bridges and specks).
5. **Holes.** Holes (4-connected, not touching the slide edge) up to
   ``max_hole_mm2`` are filled. Larger holes stay out of the region: a
   cell-free area that large is necrosis (or a large haemorrhage or cyst),
   which a pathologist excludes from scoring. Small holes (vessels, tears)
   are part of the metastasis.
6. **Pieces.** Pieces smaller than ``min_area_mm2`` are dropped. Every
   remaining 8-connected piece is one region.
7. **Outline.** Each piece is traced with ``cv2.findContours``
   (``RETR_CCOMP``: outer outlines and their holes) through the centres of
   its border cells, grown by half a cell (so the outline follows the cells'
   outer edges), simplified with tolerance ``simplify_um`` and mapped to
   level-0 pixels (pixel centres at integer coordinates, the convention of
   the cells' ``l0_x, l0_y``).

Names and order
---------------
Regions are named ``auto-1``, ``auto-2``, ... in reading order of their
centroids (shapely ``centroid``, level-0 px): sorted by the centroid's row
``round(cy / g)`` then column ``round(cx / g)``, with ``g`` the grid cell
side in level-0 px, so that the order does not depend on sub-cell rounding.
Each has ``source="auto"`` and ``classification="Tumor"``.

Limits
------
- Anything crowded with large nuclei counts as tumour: dense inflammatory
  infiltrates with large activated cells, dense reactive gliosis (gemistocytic
  astrocytes), choroid plexus or ependyma, and dense cortex with large neuronal
  nuclei can become regions; lymphocyte aggregates mostly do not (their nuclei
  are small).
- Small-cell tumours (small-cell lung carcinoma, lymphoma) have nuclei of
  lymphocyte size and fall under ``min_nucleus_area_um2``: on the generator,
  a metastasis of 5-9 um nuclei is not found at any density. Lower the cut in
  the model for such cases, or draw the regions.
- Loose tumour is outlined too small: on the generator's layouts (true
  nuclei, 3 seeds), IoU 0.95-0.97 at 8000 tumour nuclei/mm^2, 0.89-0.91 at
  3000, 0.83-0.86 at 2500, 0.75-0.76 at 2000 (the threshold's lower bound,
  1500, nears the tumour's own density).
- A metastasis cut in two by a large necrosis or a tear becomes two regions;
  two metastases closer than about 2 x ``close_um`` become one.
- The outline is as good as the grid and the smoothing: about
  ``grid_um`` + ``smoothing_um`` / 2 at the edges, and scattered tumour cells
  infiltrating the parenchyma lie outside it.
- The detection uses nuclei only: DAB staining does not change it.
- The defaults were set on the synthetic generator's brain slides
  (``multi-met`` and variants, ``benchmarks/autoregions_iou.py``), not on
  real brain metastases; the density bounds and the nucleus-area cut assume
  0.25-0.5 um/px scans measured by this tool's detector.

Parameters
----------
:class:`AutoRegionParams` (model section ``auto_regions``), defaults:
``grid_um`` 8 (the tissue mask's resolution), ``min_nucleus_area_um2`` 40
(above most glial nuclei, below most carcinoma nuclei),
``smoothing_um`` 20 (a neighbourhood of about 12 tumour cells),
``otsu`` true with ``min_density_per_mm2`` 1500 and
``max_density_per_mm2`` 4000 (tumour sheets hold 3000-10000 nuclei per
mm^2, parenchyma a few hundred tumour-sized ones), ``min_tissue_fraction``
0.2, ``min_tumour_fraction`` 0.5, ``close_um`` 50, ``open_um`` 20,
``max_hole_mm2`` 0.02 (a disc of 160 um), ``min_area_mm2`` 0.05 (a disc of
250 um), ``simplify_um`` 8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import shapely
from shapely.geometry import Polygon

from ihc_score.regions.auto_params import AutoRegionParams
from ihc_score.regions.geometry import Region
from ihc_score.tissue import fill_holes, remove_small

__all__ = ["SlideNuclei", "TumourMap", "tumour_map", "find_metastases"]

#: Densities above this (per mm^2) share the top bin of the Otsu histogram.
_OTSU_RANGE_PER_MM2 = 20000.0


@dataclass(frozen=True, eq=False)
class SlideNuclei:
    """The nuclei of one slide with its tissue mask: what the automatic regions are found from.

    Attributes
    ----------
    l0_x, l0_y : ndarray, shape (n,)
        Nucleus centroids, level-0 px (pixel centres at integer coordinates).
    nucleus_area_um2 : ndarray, shape (n,)
        Nucleus areas, um^2.
    tissue : ndarray of bool, (h, w)
        Tissue mask of the slide.
    tissue_downsample : float
        Level-0 px per tissue-mask pixel.
    mpp_um : float
        Level-0 pixel size, um/px.
    l0_size : (int, int)
        Level-0 ``(width, height)``, px.

    Raises
    ------
    ValueError
        Arrays of unequal length, or a non-positive pixel size, downsample or
        slide size.
    """

    l0_x: np.ndarray
    l0_y: np.ndarray
    nucleus_area_um2: np.ndarray
    tissue: np.ndarray
    tissue_downsample: float
    mpp_um: float
    l0_size: tuple[int, int]

    def __post_init__(self) -> None:
        x, y, area = np.asarray(self.l0_x), np.asarray(self.l0_y), np.asarray(self.nucleus_area_um2)
        if not (x.shape == y.shape == area.shape and x.ndim == 1):
            raise ValueError("l0_x, l0_y and nucleus_area_um2 must be 1-d arrays of equal length")
        if not self.mpp_um > 0:
            raise ValueError(f"mpp_um must be > 0 um/px, got {self.mpp_um!r}")
        if not self.tissue_downsample > 0:
            raise ValueError(f"tissue_downsample must be > 0, got {self.tissue_downsample!r}")
        size = (int(self.l0_size[0]), int(self.l0_size[1]))
        if min(size) < 1:
            raise ValueError(f"l0_size must be a positive (width, height), got {self.l0_size!r}")
        # frozen: the normalised values are set once, here
        for name, value in (("l0_x", x), ("l0_y", y), ("nucleus_area_um2", area),
                            ("tissue", np.asarray(self.tissue, dtype=bool)), ("l0_size", size)):
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class TumourMap:
    """The grid behind the automatic regions (for QC pictures and tuning).

    Attributes
    ----------
    grid_px : float
        Level-0 px per grid cell; cell ``(j, i)`` covers level-0 x in
        ``[i * grid_px - 0.5, (i + 1) * grid_px - 0.5)``, y likewise.
    tissue : ndarray of bool, (h, w)
        Tissue mask sampled at the cells' centres.
    density_per_mm2 : ndarray of float32, (h, w)
        Smoothed tumour-like nuclei per mm^2 of tissue.
    tumour_fraction : ndarray of float32, (h, w)
        Smoothed fraction of tumour-like nuclei among all nuclei (0 where
        there are none).
    threshold_per_mm2 : float
        Threshold applied to ``density_per_mm2``.
    mask : ndarray of bool, (h, w)
        Tumour cells after shaping, hole filling and dropping small pieces.
    """

    grid_px: float
    tissue: np.ndarray
    density_per_mm2: np.ndarray
    tumour_fraction: np.ndarray
    threshold_per_mm2: float
    mask: np.ndarray


def _grid_tissue(tissue: np.ndarray, tissue_downsample: float, shape: tuple[int, int], grid_px: float) -> np.ndarray:
    """Tissue mask sampled (nearest) at the centres of the grid cells."""
    h, w = shape
    if tissue.size == 0:
        return np.zeros(shape, dtype=bool)
    my = ((np.arange(h) + 0.5) * grid_px / tissue_downsample).astype(np.int64)
    mx = ((np.arange(w) + 0.5) * grid_px / tissue_downsample).astype(np.int64)
    inside_y = my < tissue.shape[0]
    inside_x = mx < tissue.shape[1]
    out = tissue[np.minimum(my, tissue.shape[0] - 1)[:, None], np.minimum(mx, tissue.shape[1] - 1)[None, :]]
    return out & inside_y[:, None] & inside_x[None, :]


def _disc(radius_cells: float) -> np.ndarray:
    r = max(int(round(radius_cells)), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of densities (per mm^2) on a 256-bin histogram."""
    scaled = np.clip(values * (255.0 / _OTSU_RANGE_PER_MM2), 0, 255).astype(np.uint8).reshape(-1, 1)
    t, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return (t + 0.5) * _OTSU_RANGE_PER_MM2 / 255.0


def _grid_counts(
    l0_x: np.ndarray,
    l0_y: np.ndarray,
    nucleus_area_um2: np.ndarray,
    grid_px: float,
    shape: tuple[int, int],
    min_nucleus_area_um2: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Tumour-like and all nuclei per grid cell (step 1), float32 ``(gh, gw)``.

    A nucleus at level-0 px ``(x, y)`` (pixel centres at integers) falls in cell
    ``(floor((y + 0.5) / grid_px), floor((x + 0.5) / grid_px))``; nuclei off the grid are ignored.
    """
    gh, gw = shape
    gx = np.floor((l0_x + 0.5) / grid_px).astype(np.int64)
    gy = np.floor((l0_y + 0.5) / grid_px).astype(np.int64)
    ok = (gx >= 0) & (gx < gw) & (gy >= 0) & (gy < gh)
    index = gy[ok] * gw + gx[ok]
    big = (nucleus_area_um2[ok] >= min_nucleus_area_um2).astype(np.float32)
    counts = np.bincount(index, weights=big, minlength=gw * gh).astype(np.float32).reshape(gh, gw)
    counts_all = np.bincount(index, minlength=gw * gh).astype(np.float32).reshape(gh, gw)
    return counts, counts_all


def _smoothed_density(
    counts: np.ndarray, counts_all: np.ndarray, on_tissue: np.ndarray, p: AutoRegionParams, cell_mm2: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 2: Gaussian-smoothed counts (sigma ``smoothing_um``) and the tumour-like nuclei per mm^2 of tissue.

    Returns the smoothed tumour-like counts, the smoothed counts of all nuclei and the density (per mm^2; 0
    where the smoothed tissue fraction is below ``min_tissue_fraction``); ``cell_mm2`` is a grid cell's area, mm^2.
    """
    frac = on_tissue.astype(np.float32)
    sigma = p.smoothing_um / p.grid_um
    if sigma > 0:
        ksize = 2 * int(math.ceil(3.0 * sigma)) + 1
        counts = cv2.GaussianBlur(counts, (ksize, ksize), sigma, borderType=cv2.BORDER_CONSTANT)
        counts_all = cv2.GaussianBlur(counts_all, (ksize, ksize), sigma, borderType=cv2.BORDER_CONSTANT)
        frac = cv2.GaussianBlur(frac, (ksize, ksize), sigma, borderType=cv2.BORDER_CONSTANT)
    density = np.divide(counts, frac * np.float32(cell_mm2), out=np.zeros_like(counts),
                        where=frac >= p.min_tissue_fraction)
    return counts, counts_all, density


def _shaped_mask(candidate: np.ndarray, on_tissue: np.ndarray, p: AutoRegionParams, cell_mm2: float) -> np.ndarray:
    """Steps 4-6 on a bool grid mask: close, back to tissue, open, fill small holes, drop small pieces.

    Radii and areas come from ``p`` (um, mm^2) in grid cells of ``cell_mm2`` mm^2.
    """
    mask = candidate
    if p.close_um > 0:
        mask = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_CLOSE, _disc(p.close_um / p.grid_um)).view(bool)
        mask &= on_tissue
    if p.open_um > 0:
        mask = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, _disc(p.open_um / p.grid_um)).view(bool)
    if p.max_hole_mm2 > 0:
        mask = fill_holes(mask, p.max_hole_mm2 / cell_mm2)
    return remove_small(mask, max(p.min_area_mm2 / cell_mm2, 1.0))


def tumour_map(nuclei: SlideNuclei, params: AutoRegionParams = AutoRegionParams()) -> TumourMap:
    """Density of tumour-like nuclei and the tumour mask on a grid (steps 1-6 of the module docstring).

    Parameters
    ----------
    nuclei : SlideNuclei
    params : AutoRegionParams

    Returns
    -------
    TumourMap
    """
    n = nuclei
    p = params
    grid_px = p.grid_um / n.mpp_um
    w0, h0 = n.l0_size
    gw, gh = max(int(math.ceil(w0 / grid_px)), 1), max(int(math.ceil(h0 / grid_px)), 1)
    on_tissue = _grid_tissue(n.tissue, n.tissue_downsample, (gh, gw), grid_px)
    counts, counts_all = _grid_counts(n.l0_x, n.l0_y, n.nucleus_area_um2, grid_px, (gh, gw), p.min_nucleus_area_um2)

    cell_mm2 = (p.grid_um * 1e-3) ** 2
    counts, counts_all, density = _smoothed_density(counts, counts_all, on_tissue, p, cell_mm2)

    threshold = p.min_density_per_mm2
    if p.otsu and on_tissue.any():
        threshold = float(np.clip(_otsu(density[on_tissue]), p.min_density_per_mm2, p.max_density_per_mm2))

    fraction = np.divide(counts, counts_all, out=np.zeros_like(counts), where=counts_all > 1e-6)
    np.minimum(fraction, 1.0, out=fraction)
    mask = (density >= threshold) & (fraction >= p.min_tumour_fraction) & on_tissue
    mask = _shaped_mask(mask, on_tissue, p, cell_mm2)
    return TumourMap(grid_px, on_tissue, density, fraction, threshold, mask)


def _polygons(mask: np.ndarray, grid_px: float, simplify_px: float) -> list[Polygon]:
    """Outlines of the pieces of a grid mask as polygons in level-0 px (step 7)."""
    contours, hierarchy = cv2.findContours(mask.view(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    hierarchy = hierarchy[0]

    def ring(c: np.ndarray) -> np.ndarray:
        return (c[:, 0, :].astype(np.float64) + 0.5) * grid_px - 0.5

    polys = []
    for k, c in enumerate(contours):
        if hierarchy[k][3] != -1:
            continue
        holes = []
        child = hierarchy[k][2]
        while child != -1:
            if len(contours[child]) >= 3:
                holes.append(ring(contours[child]))
            child = hierarchy[child][0]
        shell = ring(c)
        # a piece one cell wide traces a degenerate ring: buffering its line (square caps) still covers its cells
        seed = shapely.make_valid(Polygon(shell, holes)) if len(shell) >= 3 else shapely.MultiPoint(shell)
        poly = seed.buffer(0.5 * grid_px, cap_style="square", join_style="mitre")
        if simplify_px > 0:
            poly = poly.simplify(simplify_px, preserve_topology=True)
        for part in getattr(poly, "geoms", [poly]):
            if isinstance(part, Polygon) and not part.is_empty:
                polys.append(part)
    return polys


def find_metastases(nuclei: SlideNuclei, params: AutoRegionParams = AutoRegionParams()) -> tuple[Region, ...]:
    """Metastases of a slide found from its nuclei (method in the module docstring).

    Parameters
    ----------
    nuclei : SlideNuclei
        The slide's nuclei, tissue mask and pixel size.
    params : AutoRegionParams

    Returns
    -------
    tuple of Region
        ``auto-1``, ``auto-2``, ... in reading order of their centroids
        (row ``round(cy / g)``, then column ``round(cx / g)``, ``g`` the grid
        cell in level-0 px); geometry a valid Polygon (holes allowed) in
        level-0 px; ``source="auto"``, ``classification="Tumor"``. Empty when
        no part of the tissue is dense enough.
    """
    tmap = tumour_map(nuclei, params)
    polys = _polygons(tmap.mask, tmap.grid_px, params.simplify_um / nuclei.mpp_um)
    g = tmap.grid_px
    keyed = sorted(
        ((round(p.centroid.y / g), round(p.centroid.x / g)), i) for i, p in enumerate(polys)
    )
    return tuple(
        Region(name=f"auto-{n}", geometry=polys[i], source="auto", classification="Tumor")
        for n, (_, i) in enumerate(keyed, start=1)
    )

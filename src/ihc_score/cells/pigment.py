"""Brown pigment (melanin, hemosiderin) told apart from DAB.

Melanin absorbs more at short wavelengths, roughly as ``lambda ** -3.5``;
sampled at a scanner's effective R, G, B wavelengths its unit OD vector is
about 6 degrees from the DAB vector (hemosiderin, golden-brown, about 15),
so colour deconvolution puts nearly all of it in the DAB channel and hue
cannot separate the two: counted as DAB, a melanin-laden cell is a 2+ or
3+ cell. What differs is the texture and the darkness. Pigment is
granular: melanosome clusters of 0.3-2 um and hemosiderin clumps of a few
um, each of very high OD (often near black for melanin). S100A9 DAB is
diffuse in cytoplasm and nucleus.

Method (:func:`pigment_mask`)
-----------------------------
On the DAB OD channel ``d`` and the residual ``r`` of
:func:`ihc_score.stain.deconvolution.deconvolve`:

1. Granule contrast: the white top-hat ``d - opening(d, disk)`` with a
   disk of radius ``granule_radius_um``: what stands above its
   surroundings over less than a granule's width.
2. Cores: pixels with darkness ``d >= min_dab_od`` (above the DAB 3+ cell
   mean of 0.6), contrast ``>= min_contrast_od`` and colour
   ``r >= min_residual_od``: pigment is a few degrees off the DAB vector,
   about 0.1 OD of residual per OD of pigment, while DAB leaves none; and
   brown, not black: hematoxylin OD at most ``max_hematoxylin_ratio`` of
   ``d`` (near-black pixels of strongly stained real nuclei split into both
   stains); and standing on a base (the opening of step 1) below
   ``max_base_od``: a dark spot on stain that already grades 3+ cannot
   raise its cell's class, and on real slides such spots are the darkest
   clumps of strongly stained nuclei, whose green and blue reach the
   sensor's floor and so read as off the DAB vector.
3. Edges: the 8 neighbours of a core that keep ``>= edge_fraction`` of the
   core's DAB OD and a contrast ``>= min_edge_contrast_od`` (a granule's
   blurred rim, which carries pigment but not its peak).

Measured on 800 x 800 px fields of the synthetic ``melanoma`` and
``strong`` presets at 0.5 um/px after JPEG (``tests/test_pigment.py``;
``benchmarks/pigment_accuracy.py`` for whole slides): darkness and
contrast alone (1-um disk) gave melanin pixel precision 0.92 / recall 0.81,
but the fine granular texture of diffuse 3+ cytoplasm reached the same
contrast and 11 % of the unpigmented cells of an S100A9-positive metastasis
came out over 5 % "pigment"; the residual condition brought that to 0. With
the defaults: melanin precision 0.93 / recall 0.88, hemosiderin 0.95 /
0.84; 99-100 % of the laden cells at or above ``max_cell_fraction`` and
0.5-0.9 % of the unpigmented ones (neighbours of laden cells, whose
detected outline takes part of their pigment: near-black granules
saturate the blue channel and leak into the hematoxylin channel, so the
nucleus detector misshapes laden cells). In a strongly positive metastasis
without melanin some single pixels of dark DAB are still called pigment
(pixel precision there about 0.6) but no cell comes near the limit.
On whole ``melanoma`` slides (2 seeds, ``benchmarks/pigment_accuracy.py``):
pixel precision 0.98, recall 0.65-0.66; 281-282 pigmented cells found for
274-275 true; cost 0.10 of :func:`ihc_score.cells.detect.detect_cells` on
the same tile. The base condition (step 2) cost 0.04-0.05 of the recall
and 8-16 pigmented cells there (granules packed so close that the stain
between them reaches 0.6 OD); on the 13 real BCData Ki67 fields it took the
cells called pigmented from 319 of 1,116 (29 %, nearly all of them the
darkest Ki67-positive nuclei) to 75 (7 %).

What this can tell apart
------------------------
* Discrete dark granules and clumps (melanin in melanoma cells and
  melanophages, hemosiderin in macrophages) from diffuse cytoplasmic or
  nuclear DAB of any intensity.
* Cells laden with them from cells that are not: a cell whose area is at
  least ``max_cell_fraction`` pigment is "pigmented", not graded and
  counted apart.

What it cannot tell apart
-------------------------
* Finely dispersed ("dusty") melanin, spread below the pixel size: it has
  no granule contrast and is measured as DAB. So is a pale diffuse melanin
  haze in the cytoplasm.
* Melanin from hemosiderin: both are reported as one pigment.
* DAB that is itself granular or dot-like (Golgi-like dots, dense
  cytoplasmic granules, strong DAB precipitate, DAB trapped in pigment
  granules) on a cell that is not itself 3+ is called pigment; so are the
  darkest clumps of a strongly positive nucleus where they stand on a paler
  part of it (7 % of the cells of the real BCData Ki67 fields).
* Pigment on a base that is itself 0.6 OD or more (granules on 3+ DAB, or
  packed so close that the stain between them reaches 3+) is read as DAB:
  such a cell is graded, most likely 3+. A melanophage laden through and
  through is such a cell.
* A cell that holds both DAB and pigment: it is excluded whole (its DAB
  is lost, not graded), so a positive melanoma with heavy pigment is
  scored on its unpigmented cells only.
* Other brown or black deposits (formalin pigment, carbon, pen ink left on
  the section) are granular and dark too and are called pigment.
* Any of this with stain vectors that do not fit the slide: the residual
  then comes from the misfit. The pipeline looks for pigment only with the
  slide's own vectors (or the model's, when it asks for no estimate) and
  flags ``pigment_unchecked`` otherwise; with the fallback vectors on the
  real Ki67 breast field, 8 points of its positive nuclei were called
  pigmented.
* A bleach or red chromogen (AEC) protocol is the laboratory answer when
  most tumour cells are heavily pigmented; image analysis cannot recover
  the DAB under a black granule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ihc_score.checks import require_range

__all__ = ["PigmentParams", "granule_contrast", "pigment_mask", "pigment_colour", "cell_pigment_fraction"]


@dataclass(frozen=True)
class PigmentParams:
    """Parameters of pigment detection (OD base 10, lengths in um).

    Parameters
    ----------
    exclude : bool
        Drop pigmented cells from grading and the H-score (counted apart).
    max_cell_fraction : float
        A cell whose area is at least this fraction pigment pixels is
        "pigmented" (0-1, exclusive of 0). Default 0.12: on synthetic
        fields 99-100 % of the melanin-laden cells reach it and 0.5-0.9 %
        of the unpigmented ones (neighbours of laden cells); no diffuse DAB
        cell of any class away from pigment does.
    granule_radius_um : float
        Radius of the disk of the opening that gives granule contrast; a
        granule narrower than about twice this stands out. 1.5 um (3 px at
        0.5 um/px) keeps the middle of 3-um hemosiderin clumps (1 um: pixel
        recall 0.67 on them, 1.5 um: 0.84).
    min_dab_od : float
        DAB OD a pigment core reaches (cell means of 3+ are 0.6-0.9).
    min_contrast_od : float
        Granule contrast (top-hat, OD) of a core.
    min_residual_od : float
        Residual OD of a core (colour off the DAB vector); 0 turns the
        colour condition off.
    max_hematoxylin_ratio : float
        Largest hematoxylin OD of a core as a fraction of its DAB OD:
        pigment is brown. Near-black pixels, whose colour splits into both
        stains at OD 2 and more (the darkest chromatin and DAB of strongly
        stained nuclei on real slides, dark debris), are not pigment. On the
        real Ki67 breast field such pixels made 8 points of its positive
        nuclei "pigmented"; synthetic melanin and hemosiderin cores stay
        below 0.3.
    edge_fraction : float
        A neighbour of a core is pigment when its DAB OD is at least this
        fraction of the core's (0-1) ...
    min_edge_contrast_od : float
        ... and its contrast at least this.
    max_base_od : float
        A core stands on a base (the DAB OD under it, the opening of the
        granule contrast) below this. Default 0.6, the model's 3+ threshold:
        a dark spot on 3+ stain cannot raise its cell's class. Taken from that
        threshold, not tuned; on real BCData Ki67 fields, whose darkest positive
        nuclei reach the sensor's floor, it left 7 % of the cells pigmented
        where 29 % were without it.
    """

    exclude: bool = True
    max_cell_fraction: float = 0.12
    granule_radius_um: float = 1.5
    min_dab_od: float = 1.0
    min_contrast_od: float = 0.6
    min_residual_od: float = 0.08
    max_hematoxylin_ratio: float = 0.5
    edge_fraction: float = 0.2
    min_edge_contrast_od: float = 0.2
    max_base_od: float = 0.6

    def __post_init__(self) -> None:
        if not isinstance(self.exclude, bool):
            raise ValueError(f"exclude must be true or false, got {self.exclude!r}")
        require_range("max_cell_fraction", self.max_cell_fraction, low=0.0, high=1.0, low_open=True)
        require_range("granule_radius_um", self.granule_radius_um, low=0.1, high=5.0, unit="um")
        for name in ("min_dab_od", "min_contrast_od", "max_hematoxylin_ratio", "max_base_od"):
            require_range(name, getattr(self, name), low=0.0, low_open=True)
        for name in ("min_residual_od", "edge_fraction"):
            require_range(name, getattr(self, name), low=0.0, high=1.0)
        if not 0.0 <= self.min_edge_contrast_od <= self.min_contrast_od:
            raise ValueError(
                f"min_edge_contrast_od must be in 0-min_contrast_od ({self.min_contrast_od}), "
                f"got {self.min_edge_contrast_od!r}")


def _disk(radius_px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1, 2 * radius_px + 1))


def granule_contrast(dab_od: np.ndarray, *, radius_px: int) -> np.ndarray:
    """White top-hat of the DAB OD: ``d - opening(d, disk(radius_px))``, float32, >= 0."""
    d = np.ascontiguousarray(dab_od, dtype=np.float32)
    return d - cv2.morphologyEx(d, cv2.MORPH_OPEN, _disk(radius_px))


def pigment_mask(rgb: np.ndarray, conc: np.ndarray, *, mpp_um: float,
                 params: PigmentParams = PigmentParams()) -> np.ndarray:
    """Pixels of brown pigment (melanin, hemosiderin) in a tile.

    Parameters
    ----------
    rgb : ndarray, uint8, shape (h, w, 3)
        The tile at analysis resolution (0.5 um/px normally). Only its shape
        is checked: the decision is made on ``conc``.
    conc : ndarray, float32, shape (h, w, 3)
        :func:`ihc_score.stain.deconvolution.deconvolve` of ``rgb`` with the slide's stain
        vectors: hematoxylin, DAB, residual OD (base 10).
    mpp_um : float
        Pixel size of the tile, um/px.
    params : PigmentParams

    Returns
    -------
    ndarray, bool, shape (h, w)
        True on pigment pixels. A tile's margin should be at least
        ``granule_radius_um`` + 1 px for its core to be exact.

    Raises
    ------
    ValueError
        Shapes that do not match, or a pixel size outside 0.05-10 um.
    """
    if conc.ndim != 3 or conc.shape[2] != 3 or rgb.shape[:2] != conc.shape[:2]:
        raise ValueError(f"rgb and conc must be (h, w, 3) of one size, got {rgb.shape} and {conc.shape}")
    if not (math.isfinite(mpp_um) and 0.05 <= mpp_um <= 10.0):
        raise ValueError(f"mpp_um must be in 0.05-10 um/px, got {mpp_um!r}")
    conc = np.asarray(conc, dtype=np.float32)
    out = np.zeros(conc.shape[:2], dtype=bool)
    if conc.size == 0:
        return out
    # The cores' colour test alone, in one pass; most tiles have none or a
    # few, so the granule contrast (an opening) is only computed in bands of
    # rows around them, wide enough that it is exact where it is used.
    rows, cols = _colour_candidates(conc, params)
    radius_px = max(1, int(round(params.granule_radius_um / mpp_um)))
    for y0, y1, x0, x1 in _bands(rows, cols, 2 * radius_px + 2, out.shape):
        out[y0:y1, x0:x1] = _granules(conc[y0:y1, x0:x1], radius_px, params)
    return out


def pigment_colour(conc: np.ndarray, params: PigmentParams = PigmentParams()) -> np.ndarray:
    """Which pixels pass the colour test of a pigment core, whatever lies around them (bool, ``conc.shape[:-1]``).

    ``conc`` (..., 3) holds hematoxylin, DAB and residual OD. The test of
    :func:`pigment_mask` without its granule and base tests: enough for a
    sample of pixels, where neighbours are not known.
    """
    # NumPy, not the compiled pass of the tiles: the stain sample is planned in the main process, which scores
    # no tile and need not import Numba; the comparisons are the kernel's, in float32
    c = np.asarray(conc, dtype=np.float32)
    h, d, r = c[..., 0], c[..., 1], c[..., 2]
    return ((d >= np.float32(params.min_dab_od)) & (r >= np.float32(params.min_residual_od))
            & (h <= d * np.float32(params.max_hematoxylin_ratio)))


def _colour_candidates(conc: np.ndarray, params: PigmentParams) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the pixels of ``conc`` (float32, (h, w, 3)) passing the colour test of a pigment core."""
    from . import _kernels  # on first use: see its docstring
    return _kernels.pigment_candidates(conc, np.float32(params.min_dab_od), np.float32(params.min_residual_od),
                                       np.float32(params.max_hematoxylin_ratio))


def _bands(rows: np.ndarray, cols: np.ndarray, reach: int, shape: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
    """Disjoint boxes ``(y0, y1, x0, x1)`` holding every pixel within ``reach`` of the given ones (rows ascending)."""
    if rows.size == 0:
        return []
    cut = np.flatnonzero(np.diff(rows) > 2 * reach) + 1
    boxes = []
    for r, c in zip(np.split(rows, cut), np.split(cols, cut)):
        boxes.append((max(0, int(r[0]) - reach), min(shape[0], int(r[-1]) + reach + 1),
                      max(0, int(c.min()) - reach), min(shape[1], int(c.max()) + reach + 1)))
    return boxes


def _granules(conc: np.ndarray, radius_px: int, params: PigmentParams) -> np.ndarray:
    """:func:`pigment_mask` on a box of a tile (exact farther than ``2 * radius_px + 1`` from its inner edges)."""
    d = np.ascontiguousarray(conc[..., 1])
    res = np.ascontiguousarray(conc[..., 2])
    hema = np.ascontiguousarray(conc[..., 0])
    # OpenCV 0/255 masks
    core = cv2.bitwise_and(cv2.compare(d, params.min_dab_od, cv2.CMP_GE),
                           cv2.compare(res, params.min_residual_od, cv2.CMP_GE))
    core = cv2.bitwise_and(core, cv2.compare(hema, d * np.float32(params.max_hematoxylin_ratio), cv2.CMP_LE))
    contrast = granule_contrast(d, radius_px=radius_px)
    core = cv2.bitwise_and(core, cv2.compare(contrast, params.min_contrast_od, cv2.CMP_GE))
    core = cv2.bitwise_and(core, cv2.compare(d - contrast, params.max_base_od, cv2.CMP_LT))
    # a rim pixel keeps a fraction of its brightest neighbouring core's OD
    peak = cv2.dilate(cv2.bitwise_and(d, d, mask=core), np.ones((3, 3), np.uint8))
    edge = cv2.bitwise_and(cv2.compare(d, peak * np.float32(params.edge_fraction), cv2.CMP_GE),
                           cv2.compare(peak, 0.0, cv2.CMP_GT))
    edge = cv2.bitwise_and(edge, cv2.compare(contrast, params.min_edge_contrast_od, cv2.CMP_GE))
    return cv2.bitwise_or(core, edge) > 0


def cell_pigment_fraction(cell_labels: np.ndarray, mask: np.ndarray, n_cells: int) -> np.ndarray:
    """Fraction of each cell's pixels that are pigment.

    Parameters
    ----------
    cell_labels : ndarray, int32, shape (h, w)
        Cell labels 1..n_cells, 0 = none (:func:`ihc_score.cells.detect.detect_cells`).
    mask : ndarray, bool, shape (h, w)
        Pigment pixels (:func:`pigment_mask`).
    n_cells : int
        Number of cells (labels above it are ignored).

    Returns
    -------
    ndarray, float32, shape (n_cells,)
        Pigment pixels / cell pixels; 0 for a cell of no pixels.
    """
    from . import _kernels  # on first use: see its docstring
    if cell_labels.shape != mask.shape:
        raise ValueError(f"cell_labels and mask must have one shape, got {cell_labels.shape} and {mask.shape}")
    if n_cells < 0:
        raise ValueError(f"n_cells must be >= 0, got {n_cells!r}")
    labels = np.ascontiguousarray(cell_labels).ravel()
    on = np.ascontiguousarray(mask).ravel()
    if n_cells == 0 or not on.any():  # most tiles: no pigment, no cell pixel to count
        return np.zeros(n_cells, dtype=np.float32)
    area, pig = (a[1:] for a in _kernels.label_counts(labels, on, n_cells))
    return np.where(area > 0, pig / np.maximum(area, 1), 0.0).astype(np.float32)

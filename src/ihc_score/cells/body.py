"""Cell bodies as the image shows them: each nucleus grown over its stained cytoplasm.

A fixed ring around the nucleus (QuPath's cell expansion) takes in the
stroma or glass around a cell whose cytoplasm is thinner than the ring, and
cuts off one whose cytoplasm is wider, so the whole-cell DAB mean of a
strongly stained cell falls by a class or more. :func:`stained_bodies`
follows the cytoplasm instead, in the spirit of CellProfiler's
IdentifySecondaryObjects [1]_ (secondary objects grown from the nuclei as
seeds over the pixels that belong to cells):

1. Stain image: hematoxylin + DAB OD, Gaussian ``BODY_SIGMA_UM``.
2. Stained pixels: those above the local background, the grey opening of
   the stain image by ``body_background_um`` (the gaps between cells) taken
   as at most ``body_max_background_od`` (so that a sheet of touching
   cells, which shows no gap, keeps its stained cytoplasm), by half the
   rise to the cytoplasm within ``_EDGE_REACH_UM`` (the half maximum of the
   blurred edge), and by at least ``body_min_od``.
3. Candidates: every pixel within ``body_max_um`` of a nucleus goes to the
   nearest nucleus (as in the fixed expansion: neighbours are cut along the
   line halfway between them); of those, the nucleus and its stained pixels.
4. Holes enclosed by one cell's candidates alone are filled: a membranous
   stain draws a brown ring around a pale cytoplasm, and the cell is the
   whole disc.
5. Each body is the part of its candidates connected (4-neighbours) to its
   nucleus: stained pixels cut off from it (a neighbour's stroma, debris)
   are dropped.

Steps 4 and 5 are decided on 2 x 2 blocks, each holding its largest label
(a quarter of the pixels for the costliest steps): a stained pixel keeps
its full-resolution edge and stays where its block, or one beside it,
kept its label; a hole is filled by whole blocks.

The cytoplasm compartment is the body minus the nucleus. Pure functions
over arrays in analysis pixels; labels as in :mod:`ihc_score.cells.detect`.

References
----------
.. [1] T. R. Jones, A. E. Carpenter, P. Golland, "Voronoi-based
   segmentation of cells on image manifolds", CVBIA 2005, LNCS 3765.
"""

from __future__ import annotations

import cv2
import numpy as np

from ihc_score.cells._background import _octagon_filter
from ihc_score.cells._nuclei import _grow
from ihc_score.cells.detection_params import BODY_SIGMA_UM, DetectionParams

__all__ = ["stained_bodies"]

#: How far (um) a pixel looks for the cytoplasm level its edge is judged against: beyond the reach of the
#: optics' and the smoothing's blur across an edge (about 2 sigma of both).
_EDGE_REACH_UM = 1.5


def _stain_levels(
    stain_od: np.ndarray, nuclei: np.ndarray, mpp_um: float, params: DetectionParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The smoothed stain image, and the background between cells and the cytoplasm level at half resolution.

    Both levels vary slowly and are found at half resolution, on 2 x 2
    blocks on even rows and columns (so a tile of even origin matches the
    whole image; a gap line crossing a block still sets its minimum): the
    background is the grey opening of the blocks' minima by an octagon of
    ``body_background_um``; the plateau the highest smoothed OD outside
    nuclei among the blocks within ``_EDGE_REACH_UM`` (a dark nucleus must
    not raise the edge of a pale cytoplasm around it).
    """
    sigma = BODY_SIGMA_UM / mpp_um
    size = 2 * int(np.ceil(2.0 * sigma)) + 1  # +-2 sigma: OpenCV's default of +-4 costs twice as much here
    image = cv2.GaussianBlur(np.ascontiguousarray(stain_od, dtype=np.float32), (size, size), sigma,
                             borderType=cv2.BORDER_REPLICATE)
    from . import _body_kernels  # on first use: see ihc_score.cells._kernels
    radius = params.body_background_um / mpp_um / 2.0
    low, cytoplasm = _body_kernels.block_levels(image, nuclei)  # block minima; maxima with nuclei as 0
    background = _octagon_filter(_octagon_filter(low, radius, cv2.MORPH_ERODE), radius, cv2.MORPH_DILATE)
    side = 2 * max(1, int(round(_EDGE_REACH_UM / mpp_um / 2.0))) + 1
    plateau = cv2.dilate(cytoplasm, np.ones((side, side), dtype=np.uint8))
    return image, background, plateau


def _holes_filled_and_joined(candidates: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """Steps 4-5: holes one cell alone borders take its label; the pieces of each cell joined to its nucleus stay.

    ``candidates`` (int32, (H, W)) holds each pixel's cell or 0 and every
    nucleus pixel with its own label; pieces and holes are 4-connected.
    """
    from . import _body_kernels  # on first use: see ihc_score.cells._kernels
    n_holes, holes = cv2.connectedComponents((candidates == 0).view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    filled = _body_kernels.fill_enclosed(candidates, holes, n_holes)
    return _body_kernels.keep_connected(filled, nuclei)


def stained_bodies(
    nuclei: np.ndarray, stain_od: np.ndarray, *, mpp_um: float, params: DetectionParams = DetectionParams()
) -> np.ndarray:
    """Each nucleus grown over its own stained cytoplasm (method in the module docstring).

    Parameters
    ----------
    nuclei : ndarray, int32, shape (H, W)
        Nucleus labels 1..n, 0 = background.
    stain_od : ndarray, float32, shape (H, W)
        Hematoxylin + DAB OD.
    mpp_um : float
        Pixel size, um/px.
    params : DetectionParams
        ``body_*`` fields.

    Returns
    -------
    ndarray, int32, shape (H, W)
        Cell labels, same numbers as the nuclei; a cell holds its whole
        nucleus and never overlaps another.
    """
    from . import _body_kernels  # on first use: see ihc_score.cells._kernels
    nuclei = np.ascontiguousarray(nuclei, dtype=np.int32)
    if nuclei.shape != stain_od.shape:
        raise ValueError(f"nuclei and stain_od must have the same shape, got {nuclei.shape} and {stain_od.shape}")
    if not nuclei.any():
        return nuclei.copy()
    reach = _grow(nuclei, params.body_max_um / mpp_um)
    image, background, plateau = _stain_levels(stain_od, nuclei, mpp_um, params)
    candidates, half, half_nuclei = _body_kernels.stained_candidates(
        image, background, plateau, reach, nuclei, np.float32(params.body_min_od),
        np.float32(params.body_max_background_od))
    # Steps 4-5 on 2 x 2 blocks (each its largest label): a quarter of the pixels for the costliest steps; the
    # stained pixels keep their full-resolution edges, only which pieces stay and which holes fill is per block.
    return _body_kernels.from_half(candidates, nuclei, half, _holes_filled_and_joined(half, half_nuclei))

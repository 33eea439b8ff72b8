"""Each drawn cell's body, DAB and truth, for :func:`ihc_score.synthetic.render.render_region` (pure).

A cell is what is drawn for it: its **body**, the nucleus grown by the
cell's own cytoplasm width, each pixel going to the nearest nucleus, less a
clearance of half a gap from the edge of its territory (nuclei are never
cut). Each cell's DAB is its staining pattern (:data:`~ihc_score.synthetic.spec.STAININGS`)
times an amplitude solved so that the mean DAB OD over its body is its
designed ``dab_target``; the truth (class, compartment means, pigment) is
read from those drawn pixels. Nothing here depends on how a scorer
delimits a cell. Per-cell arrays are indexed by local cell index + 1
(0 = no cell); lengths are px, OD base 10.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ihc_score.synthetic import infiltrates as inf
from ihc_score.synthetic import pigments as pg
from ihc_score.synthetic.spec import SynthSpec
from ihc_score.synthetic.tissue_types import Cells

__all__ = ["CellDab", "owners", "edge_distance", "cell_bodies", "dab_pattern", "cell_dab", "cell_stats"]

#: Relative DAB of the cytoplasm inside a membranous ring (faint).
_MEMBRANE_INTERIOR = 0.1


@dataclass(frozen=True)
class CellDab:
    """DAB of an extended block and its per-cell sums.

    ``cell_o`` (h, w) int32 owner of the body pixels (0 elsewhere);
    ``dab`` (h, w) float32 DAB OD before blur; ``n_cell`` body pixels per
    cell; ``amp`` the pattern's amplitude (OD).
    """

    cell_o: np.ndarray
    dab: np.ndarray
    n_cell: np.ndarray
    amp: np.ndarray


def owners(nuc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest nucleus label of every pixel and its distance (px) to that nucleus."""
    if not nuc.any():
        return np.zeros_like(nuc), np.full(nuc.shape, np.inf, np.float32)
    dist, lab = cv2.distanceTransformWithLabels((nuc == 0).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ids = np.concatenate([np.zeros(1, np.int32), nuc[nuc > 0]])
    return ids[lab], dist


def edge_distance(labels: np.ndarray) -> np.ndarray:
    """Distance (px, float32) of every pixel to the nearest pixel whose 4-neighbour has another label.

    Pixels on either side of a label change are at 0, so a pixel centre
    lies about ``d + 0.5`` px from the boundary.
    """
    edge = np.zeros(labels.shape, bool)
    d = labels[:, 1:] != labels[:, :-1]
    edge[:, 1:] |= d
    edge[:, :-1] |= d
    d = labels[1:] != labels[:-1]
    edge[1:] |= d
    edge[:-1] |= d
    return cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 5)


def cell_bodies(sub: Cells, nuc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Owner (nearest nucleus label) of every pixel and the mask of cell bodies.

    A pixel is in a body when it is within its owner's cytoplasm width of
    the nucleus and, outside the nucleus, at least the owner's
    ``half_gap_px`` from the edge of the owner's territory.
    """
    owner, dist = owners(nuc)
    cyto = np.concatenate([[0.0], sub.cytoplasm_px]).astype(np.float32)
    body = (owner > 0) & (dist <= cyto[owner])
    if len(sub) and np.any(sub.half_gap_px > 0):  # no gap, no clipping: same pixels, less work
        half = np.concatenate([[0.0], sub.half_gap_px]).astype(np.float32)
        body &= (nuc > 0) | (edge_distance(owner) + 0.5 >= half[owner])
    return owner, body


def dab_pattern(staining: str, sub: Cells, owner: np.ndarray, body: np.ndarray, nuc: np.ndarray,
                chrom: np.ndarray, gran: np.ndarray, ring_px: float) -> np.ndarray:
    """Relative DAB (unitless, 0 off the bodies) of each body pixel for a staining pattern.

    ``nuclear_cytoplasmic``: nucleus 0.8-1.2 (chromatin), cytoplasm its
    cell's ``cytoplasm_ratio`` x 0.55-1.45 (granules); ``cytoplasmic``:
    nucleus 0; ``membranous``: nucleus 0, cytoplasm within ``ring_px`` of
    the body's outer edge 0.8-1.2, inside it :data:`_MEMBRANE_INTERIOR` x
    0.55-1.45. A cell whose pattern sums to 0 (no cytoplasm left) stains
    its nucleus instead, so every designed mean can be reached. Cells
    infiltrating a metastasis keep their own pattern
    (:func:`~ihc_score.synthetic.infiltrates.infiltrate_pattern`).
    """
    is_nuc = nuc > 0
    nucleus = 0.8 + 0.4 * chrom
    grain = 0.55 + 0.9 * gran
    if staining == "nuclear_cytoplasmic":
        ratio = np.concatenate([[0.0], sub.cytoplasm_ratio]).astype(np.float32)
        pattern = np.where(is_nuc, nucleus, ratio[owner] * grain)
    elif staining == "cytoplasmic":
        pattern = np.where(is_nuc, 0.0, grain)
    else:
        ring = edge_distance(np.where(body, owner, 0)) + 0.5 <= ring_px
        pattern = np.where(is_nuc, 0.0, np.where(ring, 0.8 + 0.4 * gran, _MEMBRANE_INTERIOR * grain))
    pattern = np.where(body, pattern, 0.0).astype(np.float32)
    s = np.bincount(np.where(body, owner, 0).ravel(), weights=pattern.ravel(), minlength=len(sub) + 1)
    bare = s <= 0
    bare[0] = False
    if bare.any():
        pattern = np.where(is_nuc & bare[owner], nucleus, pattern).astype(np.float32)
    return inf.infiltrate_pattern(sub, owner, body, nuc, chrom, gran, pattern)


def cell_dab(sub: Cells, owner: np.ndarray, body: np.ndarray, pattern: np.ndarray, stroma_dab: np.ndarray
             ) -> CellDab:
    """DAB OD of a block, scaled so each cell's mean DAB OD over its body is its designed ``dab_target``.

    Parameters
    ----------
    sub : Cells
        The block's cells (local index + 1 = label).
    owner : (h, w) int32
        Nearest nucleus label of every pixel.
    body : (h, w) bool
        Pixels of a cell body (nucleus + drawn cytoplasm).
    pattern : (h, w) float32
        Relative DAB of the body pixels (:func:`dab_pattern`).
    stroma_dab : (h, w) float
        DAB OD of the cell-free ground (drawn off the bodies).

    Returns
    -------
    CellDab
    """
    k = len(sub) + 1
    cell_o = np.where(body, owner, 0)
    n_cell = np.bincount(cell_o.ravel(), minlength=k).astype(np.float64)
    s_pat = np.bincount(cell_o.ravel(), weights=pattern.ravel(), minlength=k)
    target = np.concatenate([[0.0], sub.dab_target])
    amp = np.where(s_pat > 0, target * n_cell / np.maximum(s_pat, 1e-12), 0.0)
    dab = np.where(body, amp.astype(np.float32)[owner] * pattern, stroma_dab).astype(np.float32)
    return CellDab(cell_o, dab, n_cell, amp)


def cell_stats(sel: np.ndarray, sub: Cells, nuc: np.ndarray, cd: CellDab, pig: np.ndarray | None,
               spec: SynthSpec, rect: tuple[int, int, int, int], ext_xy: tuple[int, int]
               ) -> dict[str, np.ndarray]:
    """Per-cell truth (see :class:`RenderedRegion`) of the cells whose designed centre is in the core.

    Means are of the DAB drawn on the body's pixels (before blur, noise
    and JPEG), summed pixel by pixel.

    Parameters
    ----------
    sel : (n,) int
        Layout indices of the block's cells.
    sub : Cells
        The block's cells.
    nuc : (h, w) int32
        Nucleus labels of the extended block (local index + 1).
    cd : CellDab
        DAB and per-cell sums of the extended block.
    pig : (h, w, 2) float32 or None
        Pigment OD of the extended block.
    spec : SynthSpec
    rect : (int, int, int, int)
        Core rectangle (x0, y0, w, h), level-0 px.
    ext_xy : (int, int)
        Top-left corner of the extended block, level-0 px.
    """
    x0, y0, w, h = rect
    ex0, ey0 = ext_xy
    ew = nuc.shape[1]
    k = len(sub) + 1
    mine = np.flatnonzero((sub.l0_x >= x0) & (sub.l0_x < x0 + w) & (sub.l0_y >= y0) & (sub.l0_y < y0 + h)) + 1
    nuc_flat = nuc.ravel()
    n_nuc = np.bincount(nuc_flat, minlength=k).astype(np.float64)
    on = np.flatnonzero(nuc_flat)
    yy, xx = np.divmod(on, ew)
    cx = np.bincount(nuc_flat[on], weights=xx + (ex0 + 0.5), minlength=k) / np.maximum(n_nuc, 1)
    cy = np.bincount(nuc_flat[on], weights=yy + (ey0 + 0.5), minlength=k) / np.maximum(n_nuc, 1)
    flat_o = cd.cell_o.ravel()
    s_nuc = np.bincount(nuc_flat, weights=cd.dab.ravel(), minlength=k)
    s_cell = np.bincount(flat_o, weights=cd.dab.ravel(), minlength=k)
    n_cell = cd.n_cell
    stats = {
        "index": sel[mine - 1],
        "l0_x": cx[mine], "l0_y": cy[mine],
        "nucleus_px": n_nuc[mine], "cell_px": n_cell[mine],
        "dab_cell_mean": (s_cell / np.maximum(n_cell, 1))[mine],
        "dab_nucleus_mean": (s_nuc / np.maximum(n_nuc, 1))[mine],
        "dab_cytoplasm_mean": ((s_cell - s_nuc) / np.maximum(n_cell - n_nuc, 1))[mine],
    }
    if pig is not None:
        stats["pigment_px"] = np.bincount(flat_o, weights=(pig.max(axis=-1) > 0).ravel(), minlength=k)[mine]
        pig_dab = (pig @ pg.pigment_concentrations(spec.dyes)[:, 1]).ravel()
        s_pig = np.bincount(flat_o, weights=pig_dab, minlength=k)
        stats["dab_pigment_cell_mean"] = ((s_cell + s_pig) / np.maximum(n_cell, 1))[mine]
    return stats

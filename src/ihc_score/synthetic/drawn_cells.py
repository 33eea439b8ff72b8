"""Each drawn cell's DAB and its designed measurements, for :func:`ihc_score.synthetic.render.render_region` (pure).

Each cell's DAB amplitude is scaled so that the mean DAB OD over its nucleus
grown by ``CELL_EXPANSION_UM`` is its designed target, and its truth (class,
compartment means, pigment) is read from the pixels drawn for it. That
expansion is also the scorer's default cell compartment, so on the default
compartment this truth and the scorer share one definition of a cell: a
known limit of these slides, which favour the default measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ihc_score.synthetic import pigments as pg
from ihc_score.synthetic.layout import Cells
from ihc_score.synthetic.spec import SynthSpec

__all__ = ["CellDab", "cell_dab", "cell_stats"]


@dataclass(frozen=True)
class CellDab:
    """DAB of an extended block and its per-cell sums.

    Per-cell arrays are indexed by local cell index + 1 (0 = no cell).
    ``cell_o`` (h, w) int32 owner of the pixels within the cell expansion
    (0 elsewhere); ``dab`` (h, w) float32 DAB OD before blur; ``n_cell``
    pixels per cell; ``s_pat`` summed staining pattern (unitless);
    ``s_bg`` summed background DAB OD; ``amp`` the pattern's amplitude (OD).
    """

    cell_o: np.ndarray
    dab: np.ndarray
    n_cell: np.ndarray
    s_pat: np.ndarray
    s_bg: np.ndarray
    amp: np.ndarray


def cell_dab(sub: Cells, owner: np.ndarray, body: np.ndarray, in_cell: np.ndarray, is_nuc: np.ndarray,
              chrom: np.ndarray, tex: np.ndarray, stroma_dab: np.ndarray) -> CellDab:
    """DAB OD of a block, scaled so each cell's mean DAB OD over its expansion is its designed ``dab_target``.

    Parameters
    ----------
    sub : Cells
        The block's cells (local index + 1 = label).
    owner : (h, w) int32
        Nearest nucleus label of every pixel.
    body, in_cell, is_nuc : (h, w) bool
        Pixels of a cell body (nucleus + cytoplasm), of a cell expansion, of a nucleus.
    chrom : (h, w) float32
        Chromatin texture, 0-1.
    tex : (h, w, 5) float32
        Texture channels, 0-1.
    stroma_dab : (h, w) float
        DAB OD of the cell-free ground.

    Returns
    -------
    CellDab
    """
    k = len(sub) + 1
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
    return CellDab(cell_o, dab, n_cell, s_pat, s_bg, amp)


def cell_stats(sel: np.ndarray, sub: Cells, nuc: np.ndarray, cd: CellDab, pig: np.ndarray | None,
                spec: SynthSpec, rect: tuple[int, int, int, int], ext_xy: tuple[int, int]
                ) -> dict[str, np.ndarray]:
    """Per-cell truth (see :class:`RenderedRegion`) of the cells whose designed centre is in the core.

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
    s_nuc = np.bincount(nuc_flat, weights=cd.dab.ravel(), minlength=k)
    s_cell = cd.amp * cd.s_pat + cd.s_bg
    n_cell = cd.n_cell
    n_cyt = n_cell - n_nuc
    stats = {
        "index": sel[mine - 1],
        "l0_x": cx[mine], "l0_y": cy[mine],
        "nucleus_px": n_nuc[mine], "cell_px": n_cell[mine],
        "dab_cell_mean": (s_cell / np.maximum(n_cell, 1))[mine],
        "dab_nucleus_mean": (s_nuc / np.maximum(n_nuc, 1))[mine],
        "dab_cytoplasm_mean": ((s_cell - s_nuc) / np.maximum(n_cyt, 1))[mine],
    }
    if pig is not None:
        flat_o = cd.cell_o.ravel()
        stats["pigment_px"] = np.bincount(flat_o, weights=(pig.max(axis=-1) > 0).ravel(), minlength=k)[mine]
        pig_dab = (pig @ pg.pigment_concentrations(spec.render_stains)[:, 1]).ravel()
        s_pig = np.bincount(flat_o, weights=pig_dab, minlength=k)
        stats["dab_pigment_cell_mean"] = ((s_cell + s_pig) / np.maximum(n_cell, 1))[mine]
    return stats

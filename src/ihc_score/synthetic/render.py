"""Rendering of a synthetic slide's level-0 rectangles (pure).

:func:`render_region` draws any rectangle of a
:class:`~ihc_score.synthetic.layout.SlideLayout` as dye amounts and RGB
through the generator's own optics (:mod:`ihc_score.synthetic.optics`:
dye OD vectors, Beer-Lambert, blur of the transmitted light, the scanner's
crosstalk, tone curve, glass and noise), with nucleus and cell body label
images and the per-cell truth read from the drawn bodies. The rectangle is
rendered with a margin wide enough that every pixel is the same whichever
rectangle it is rendered in, so a slide can be drawn block by block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ihc_score.synthetic import artefact_drawing as draw
from ihc_score.synthetic import artefacts as art
from ihc_score.synthetic import drawn_cells as dc
from ihc_score.synthetic import infiltrates as inf
from ihc_score.synthetic import pigments as pg
from ihc_score.synthetic.layout import _TEXTURE_PX, Cells, SlideLayout
from ihc_score.synthetic.optics import glass_rgb, sensor_rgb, transmittance
from ihc_score.synthetic.spec import SynthSpec

__all__ = ["RenderedRegion", "render_region"]


@dataclass(frozen=True)
class RenderedRegion:
    """A rendered level-0 rectangle.

    ``concentrations`` (h, w, 3) float32 amounts (OD along each unit dye
    vector) of hematoxylin, DAB, residual before blur; ``rgb`` (h, w, 3)
    uint8 as the scanner records it; ``nucleus_labels`` / ``cell_labels``
    int32 nuclei / cell bodies, cell index + 1 (0 = none); ``stats``
    per-cell truth of the cells whose designed centre lies in the
    rectangle, read from the pixels drawn for them: ``index`` (into the
    layout's cells), ``l0_x``, ``l0_y`` (nucleus centroid), ``nucleus_px``,
    ``cell_px`` (body pixels), ``dab_cell_mean`` (mean DAB amount over the
    body), ``dab_nucleus_mean``, ``dab_cytoplasm_mean``, and
    on a layout with pigment ``pigment_px`` (pixels of pigment in the cell)
    and ``dab_pigment_cell_mean`` (the cell's mean DAB OD with the
    pigment's projection on the DAB channel added: what counting pigment as
    DAB in the generator's dye basis measures). ``concentrations`` holds the dyes only; ``pigment``
    (h, w, 2) float32 the melanin and hemosiderin OD along their own
    vectors before blur (None on a layout without pigment), drawn on top.
    """

    l0_xy: tuple[int, int]
    concentrations: np.ndarray
    rgb: np.ndarray
    nucleus_labels: np.ndarray
    cell_labels: np.ndarray
    stats: dict[str, np.ndarray]
    pigment: np.ndarray | None = None


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
    """Nucleus labels (local index + 1, nearest by shape), summed H OD and chromatin of the block.

    A lobed nucleus is drawn lobe by lobe, all lobes with its label; where
    its own lobes overlap, the H OD is their largest, not their sum.
    """
    n = len(cells)
    labels = np.zeros(h * w, np.int32)
    h_od = np.zeros(h * w, np.float32)
    if n == 0:
        return labels.reshape(h, w), h_od.reshape(h, w), h_od.reshape(h, w)
    cells, owner, lobe = inf.nucleus_outlines(cells)
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
    if np.any(cells.notch > 0):  # kidney-shaped nuclei: a round bite out of one long side
        q = np.maximum(q, inf.notch_q(cells.notch[ci], u[near], v[near]))
    inside = q < 1.0
    ci, q = ci[inside], q[inside]
    flat = (py[ci, iy[inside], 0] * w + px[ci, 0, ix[inside]]).astype(np.int64)
    key = np.full(h * w, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(key, flat, (np.minimum(q, 0.999999) * 2**20).astype(np.int64) << 32 | ci.astype(np.int64))
    hit = key != np.iinfo(np.int64).max
    labels[hit] = owner[key[hit] & 0xFFFFFFFF].astype(np.int32) + 1
    chrom = tex[..., 0].reshape(-1)[flat]
    rim = 1.0 + 0.5 * np.clip((q - 0.8) / 0.2, 0.0, 1.0)
    soft = np.clip((1.0 - q) / 0.08, 0.0, 1.0)
    val = cells.nucleus_h_od[ci] * (0.55 + 0.9 * chrom) * rim * (0.4 + 0.6 * soft)
    if lobe.any():
        lobed = lobe[ci]
        h_od = np.bincount(flat[~lobed], weights=val[~lobed], minlength=h * w).astype(np.float32)
        top = np.zeros(h * w, np.float32)
        np.maximum.at(top, flat[lobed], val[lobed].astype(np.float32))
        h_od += top
    else:
        h_od = np.bincount(flat, weights=val, minlength=h * w).astype(np.float32)
    return labels.reshape(h, w), h_od.reshape(h, w), tex[..., 0]


def _field_max(layout: SlideLayout, x0: int, y0: int, w: int, h: int) -> float:
    st = layout.field_step_px
    g = layout.tissue_um
    j0, j1 = max(int(y0 // st) - 1, 0), min(int((y0 + h) // st) + 2, g.shape[0])
    i0, i1 = max(int(x0 // st) - 1, 0), min(int((x0 + w) // st) + 2, g.shape[1])
    return float(g[j0:j1, i0:i1].max()) if j1 > j0 and i1 > i0 else float(g.max())


def _ground(layout: SlideLayout, tex: np.ndarray, alpha: np.ndarray, x0: int, y0: int, w: int, h: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Hematoxylin and DAB OD of the cell-free ground: host tissue blended into necrotic debris.

    Stroma: fibres, H 0.024-0.096. Brain parenchyma: faint fibrillary
    neuropil, H 0.02-0.065. Necrosis (soft, ragged edge of ~3 um): pale
    granular smudge, H 0.02-0.06, DAB ``necrosis_dab_od`` x 0.3-1.7.
    """
    spec = layout.spec
    if spec.host_tissue == "brain":
        pil = tex[..., 4]
        host_h = alpha * (0.02 + 0.045 * pil * pil)
        host_dab = alpha * spec.stroma_dab_od * (0.4 + 1.2 * pil)
    else:
        fib = tex[..., 2]
        host_h = alpha * 0.06 * (0.4 + 1.2 * fib)
        host_dab = alpha * spec.stroma_dab_od * (0.4 + 1.2 * fib)
    if layout.necrosis_um is None or not spec.necroses:
        return host_h, host_dab
    nec = _field_block(layout.necrosis_um, layout.field_step_px, x0, y0, w, h)
    wn = np.clip(nec / 3.0 + 0.5 + 1.5 * (tex[..., 3] - 0.5), 0.0, 1.0).astype(np.float32)
    gran = tex[..., 1]
    nec_h = alpha * (0.02 + 0.04 * gran * gran)
    nec_dab = alpha * spec.necrosis_dab_od * (0.3 + 1.4 * gran)
    return host_h + wn * (nec_h - host_h), host_dab + wn * (nec_dab - host_dab)


def _add_noise(rgb: np.ndarray, spec: SynthSpec, noise_key: tuple[int, ...]) -> np.ndarray:
    """Sensor noise of the scanner (8-bit units), seeded by the spec's seed and ``noise_key``."""
    sigma = spec.scanner.noise_sigma
    if sigma <= 0:
        return rgb
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 2, *noise_key]))
    noise = rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(rgb + np.rint(noise), 0, 255).astype(np.uint8)


def _blank_region(layout: SlideLayout, l0_xy: tuple[int, int], size: tuple[int, int],
                  noise_key: tuple[int, ...]) -> RenderedRegion:
    w, h = size
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = glass_rgb(layout.spec.scanner)
    keys = _STAT_KEYS if layout.granules is None else _STAT_KEYS + _PIGMENT_KEYS
    empty = {k: np.empty(0, np.int64 if k == "index" else np.float64) for k in keys}
    zeros = np.zeros((h, w), np.int32)
    pigment = None if layout.granules is None else np.zeros((h, w, 2), np.float32)
    return RenderedRegion(l0_xy, np.zeros((h, w, 3), np.float32), _add_noise(rgb, layout.spec, noise_key),
                          zeros, zeros, empty, pigment)


_STAT_KEYS = ("index", "l0_x", "l0_y", "nucleus_px", "cell_px", "dab_cell_mean", "dab_nucleus_mean",
              "dab_cytoplasm_mean")
_PIGMENT_KEYS = ("pigment_px", "dab_pigment_cell_mean")
#: Unit OD vectors of melanin and hemosiderin, rows (2, 3).
_PIGMENT_OD = np.array([pg.MELANIN_OD, pg.HEMOSIDERIN_OD], np.float32)
#: Thickness of a membranous ring, um.
_MEMBRANE_UM = 1.0


def _pigment(layout: SlideLayout, sel: np.ndarray, cell_o: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """Pigment OD (h, w, 2) of the extended block: granules of the selected cells, in their own bodies."""
    g = layout.granules
    if sel.size == 0:
        return np.zeros((*cell_o.shape, 2), np.float32)
    pos = np.clip(np.searchsorted(sel, g.cell), 0, sel.size - 1)
    ok = sel[pos] == g.cell
    local = g.take(ok)
    local = pg.Granules(**{**local.__dict__, "cell": pos[ok].astype(np.int64) + 1})
    return pg.splat_granules(local, cell_o, cell_o > 0, x0, y0)


def _margin_px(layout: SlideLayout, blur_px: float) -> int:
    """Margin (level-0 px) drawn around a rectangle so its pixels do not depend on the rectangle; ``blur_px`` in px."""
    spec = layout.spec
    m = int(math.ceil(2 * layout.reach_px + 3 * blur_px + 2))
    if spec.artefacts:  # the artefacts' blurs reach farther; no artefact, same margin and bytes
        m += art.margin_px(spec.artefacts, spec.mpp_um)
    return m


def _cells_near(layout: SlideLayout, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Ascending indices of the layout's cells centred within ``reach_px`` of a level-0 block (x0, y0, w, h px)."""
    cells = layout.cells
    r = layout.reach_px
    return np.flatnonzero((cells.l0_x >= x0 - r) & (cells.l0_x < x0 + w + r) &
                          (cells.l0_y >= y0 - r) & (cells.l0_y < y0 + h + r))


def _sheet(layout: SlideLayout, tissue: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Weight (0-1) of the metastasis sheets in a block: 1 inside an outline, soft over 1 um, necroses cut out."""
    st = layout.field_step_px
    e = np.max([_field_block(t, st, x0, y0, w, h) for t in layout.tumour_um], axis=0)
    e = np.minimum(e, tissue)
    if layout.necrosis_um is not None and layout.spec.necroses:
        e = np.minimum(e, -_field_block(layout.necrosis_um, st, x0, y0, w, h))
    return np.clip(e + 0.5, 0.0, 1.0).astype(np.float32)


def _optics(od: np.ndarray, spec: SynthSpec, blur_px: float, l0_xy: tuple[int, int]) -> np.ndarray:
    """Transmitted light (h, w, 3) of a block at level-0 ``l0_xy`` (px) from its drawn OD, after blur (px) and optics.

    Absorbers (folds, ink) change the OD; the scanner's blur and the optical
    artefacts (out-of-focus patches, bubbles) act on the light.
    """
    where = {"size": (spec.width, spec.height), "mpp_um": spec.mpp_um, "l0_xy": l0_xy}
    if spec.artefacts:  # folds and ink absorb; the per-cell stats keep the designed values
        od = draw.apply_absorbers(od, spec.artefacts, **where)
    light = transmittance(od)
    blurred = cv2.GaussianBlur(light, (0, 0), blur_px) if blur_px > 0 else light
    if spec.artefacts:
        blurred = draw.apply_optics(od, blurred, spec.artefacts, base_sigma_px=blur_px, **where)
    return blurred


def _drawn(layout: SlideLayout, sub: Cells, tex: np.ndarray, alpha: np.ndarray, tissue: np.ndarray,
           ext: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, dc.CellDab]:
    """Dye amounts (h, w, 3) of an extended block ``ext`` (x0, y0, w, h px), its nucleus labels and cell DAB."""
    spec = layout.spec
    nuc, nuc_h, chrom = _splat_nuclei(sub, *ext, tex)
    owner, body = dc.cell_bodies(sub, nuc)
    if spec.gap_fill == "glass":  # inside a metastasis only the cells are stained
        alpha = np.where(body, alpha, alpha * (1.0 - _sheet(layout, tissue, *ext)))
    stroma_h, stroma_dab = _ground(layout, tex, alpha, *ext)
    pattern = dc.dab_pattern(spec.staining, sub, owner, body, nuc, chrom, tex[..., 1], _MEMBRANE_UM / spec.mpp_um)
    cd = dc.cell_dab(sub, owner, body, pattern, stroma_dab)
    cyto_h = np.concatenate([[0.0], sub.cytoplasm_h_od]).astype(np.float32)
    hema = np.where(body & (nuc == 0), cyto_h[owner] * (0.7 + 0.6 * tex[..., 1]), stroma_h) + nuc_h
    resid = alpha * 0.01 * (tex[..., 1] - 0.5)
    return np.stack([hema, cd.dab, resid], axis=-1).astype(np.float32), nuc, cd


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
    blur_px = spec.scanner.blur_sigma_um / spec.mpp_um
    m = _margin_px(layout, blur_px)
    ext = (x0 - m, y0 - m, w + 2 * m, h + 2 * m)
    sel = _cells_near(layout, *ext)
    sub = layout.cells.take(sel)
    on_glass = bool(spec.artefacts) and art.touches(spec.artefacts, (spec.width, spec.height), spec.mpp_um, ext)
    if len(sub) == 0 and _field_max(layout, *ext) < -8.0 and not on_glass:
        return _blank_region(layout, (x0, y0), (w, h), noise_key)
    ys = np.arange(ext[1], ext[1] + ext[3]) % _TEXTURE_PX
    xs = np.arange(ext[0], ext[0] + ext[2]) % _TEXTURE_PX
    tex = layout.textures[ys[:, None], xs[None, :]]
    tissue = _field_block(layout.tissue_um, layout.field_step_px, *ext)
    alpha = np.clip((tissue + 3.0 * (tex[..., 3] - 0.5)) / 1.5, 0.0, 1.0)
    conc, nuc, cd = _drawn(layout, sub, tex, alpha, tissue, ext)
    pig = None if layout.granules is None else _pigment(layout, sel, cd.cell_o, ext[0], ext[1])
    od = conc @ spec.dyes.matrix.astype(np.float32)
    if pig is not None:  # pigment adds its own OD along its own vectors
        od += pig @ _PIGMENT_OD
    light = _optics(od, spec, blur_px, ext[:2])
    core = (slice(m, m + h), slice(m, m + w))
    rgb = _add_noise(sensor_rgb(light[core], spec.scanner), spec, noise_key)
    stats = dc.cell_stats(sel, sub, nuc, cd, pig, spec, (x0, y0, w, h), ext[:2])
    to_global = np.concatenate([[0], sel + 1]).astype(np.int32)
    return RenderedRegion((x0, y0), conc[core], rgb, to_global[nuc[core]], to_global[cd.cell_o[core]], stats,
                          None if pig is None else pig[core])

"""Brown pigment of synthetic slides: melanin granules and hemosiderin clumps (pure).

Pigment is drawn as an extra Beer-Lambert term with its own OD vector::

    T = 10 ** -(OD_H * h + OD_DAB * d + OD_res * r + OD_pig * p)

where ``p`` is the pigment OD along its unit vector. Each pigmented cell gets
small dense blobs inside its cytoplasm (:func:`make_granules`), drawn only
on pixels of its own body (:func:`splat_granules`), so the pigment of a
cell never spills into its neighbours. Lengths are level-0 px unless named
``_um``; OD base-10.

Pigment OD vectors
------------------
Both follow a power law of the absorption coefficient with wavelength,
``mu_a ~ lambda ** -k``, sampled at effective camera wavelengths
R 610 nm, G 540 nm, B 465 nm, then normalised:

* melanin, ``k = 3.5`` (the absorption of eumelanin falls about as
  ``lambda ** -3.5`` across the visible [1]_): (0.316, 0.484, 0.816),
  4.6 degrees from the generator's DAB vector, i.e. hue alone cannot
  tell them apart; in the generator's dye basis it is DAB 1.00,
  hematoxylin -0.12, residual 0.12 per unit OD.
* hemosiderin, ``k = 6`` (iron(III) oxyhydroxide absorbs more steeply
  towards blue, hence golden-brown [2]_; the exponent is a modelling choice
  that gives its yellower hue): (0.179, 0.372, 0.911), 14.3 degrees from
  DAB; DAB 1.25, hematoxylin -0.47, residual 0.13 per unit OD.

References
----------
.. [1] S. L. Jacques, "Optical properties of biological tissues: a review",
   Phys. Med. Biol. 58 (2013) R37 (melanin ``mu_a ~ lambda ** -3.48``).
.. [2] U. Schwertmann and R. M. Cornell, "Iron Oxides in the Laboratory",
   Wiley-VCH (2000): ferrihydrite absorption edge in the blue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ihc_score.synthetic import tissue_types as tt
from ihc_score.synthetic.optics import Dyes
from ihc_score.synthetic.spec import SynthSpec

__all__ = [
    "EFFECTIVE_WAVELENGTHS_NM",
    "MELANIN_OD",
    "HEMOSIDERIN_OD",
    "MELANIN_DIAMETER_UM",
    "HEMOSIDERIN_DIAMETER_UM",
    "power_law_od",
    "Granules",
    "make_granules",
    "splat_granules",
    "pigment_concentrations",
]

#: Effective wavelengths of the R, G, B channels of a brightfield scanner, nm.
EFFECTIVE_WAVELENGTHS_NM: tuple[float, float, float] = (610.0, 540.0, 465.0)


def power_law_od(exponent: float, wavelengths_nm: tuple[float, float, float] = EFFECTIVE_WAVELENGTHS_NM
                 ) -> tuple[float, float, float]:
    """Unit OD vector (R, G, B) of an absorber with ``mu_a ~ lambda ** -exponent``."""
    v = np.asarray(wavelengths_nm, np.float64) ** -float(exponent)
    return tuple(float(x) for x in v / np.linalg.norm(v))


#: Unit OD vector of melanin (power law, exponent 3.5).
MELANIN_OD: tuple[float, float, float] = power_law_od(3.5)
#: Unit OD vector of hemosiderin (power law, exponent 6: golden-brown).
HEMOSIDERIN_OD: tuple[float, float, float] = power_law_od(6.0)
#: Diameter range of melanin granules (melanosome clusters), um.
MELANIN_DIAMETER_UM: tuple[float, float] = (0.4, 1.5)
#: Diameter range of hemosiderin clumps (coarse), um.
HEMOSIDERIN_DIAMETER_UM: tuple[float, float] = (1.0, 3.5)
#: Width of a granule's soft edge, level-0 px.
_EDGE_PX = 0.75


@dataclass(frozen=True)
class Granules:
    """Pigment blobs of a layout (arrays of equal length).

    ``l0_x``, ``l0_y`` centre (level-0 px), ``radius_a`` / ``radius_b``
    semi-axes (px), ``angle`` (radians), ``od`` peak OD along the pigment's
    unit vector, ``pigment`` (``tt.PIGMENT_MELANIN`` or
    ``tt.PIGMENT_HEMOSIDERIN``), ``cell`` index of the owning cell in the
    layout's cells.
    """

    l0_x: np.ndarray
    l0_y: np.ndarray
    radius_a: np.ndarray
    radius_b: np.ndarray
    angle: np.ndarray
    od: np.ndarray
    pigment: np.ndarray
    cell: np.ndarray

    def __len__(self) -> int:
        return int(self.l0_x.shape[0])

    def take(self, index: np.ndarray) -> Granules:
        """Subset (index array or boolean mask)."""
        return Granules(**{k: v[index] for k, v in self.__dict__.items()})


def make_granules(spec: SynthSpec, cells: tt.Cells) -> Granules | None:
    """Granules of every pigmented cell, from their own random stream (None when no cell is pigmented).

    Each cell draws a cover ``c`` in its pigment's cover range and
    ``-ln(1 - c) * A / a`` blobs (``A`` its cytoplasm ring area, ``a`` the
    mean blob area) placed uniformly in the ring, so about ``c`` of the ring
    is covered (Poisson overlap).
    """
    pig = np.flatnonzero(cells.pigment != tt.PIGMENT_NONE)
    if pig.size == 0:
        return None
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 8]))
    mel = cells.pigment[pig] == tt.PIGMENT_MELANIN
    ra, rb = cells.radius_a[pig].astype(np.float64), cells.radius_b[pig].astype(np.float64)
    wobble = (cells.harm2[pig] + cells.harm3[pig]).astype(np.float64)
    r_in = ra * (1.0 + wobble)
    r_out = np.maximum(rb * (1.0 - wobble) + 0.9 * cells.cytoplasm_px[pig], r_in + 2.0 / spec.mpp_um)
    cover_lo = np.where(mel, spec.melanin_cover[0], spec.hemosiderin_cover[0])
    cover_hi = np.where(mel, spec.melanin_cover[1], spec.hemosiderin_cover[1])
    cover = rng.uniform(cover_lo, cover_hi)
    d_lo = np.where(mel, MELANIN_DIAMETER_UM[0], HEMOSIDERIN_DIAMETER_UM[0]) / spec.mpp_um
    d_hi = np.where(mel, MELANIN_DIAMETER_UM[1], HEMOSIDERIN_DIAMETER_UM[1]) / spec.mpp_um
    # mean blob area of a diameter uniform in [lo, hi]: pi/4 * E[d^2]
    mean_area = math.pi / 4.0 * (d_lo**2 + d_lo * d_hi + d_hi**2) / 3.0
    ring = math.pi * (r_out**2 - r_in**2)
    count = np.maximum(np.rint(-np.log1p(-cover) * ring / mean_area), 1).astype(np.int64)
    owner = np.repeat(np.arange(pig.size), count)
    n = owner.size
    rho = np.sqrt(rng.uniform(r_in[owner] ** 2, r_out[owner] ** 2))
    theta = rng.uniform(0.0, 2.0 * np.pi, n)
    d = rng.uniform(d_lo[owner], d_hi[owner])
    aspect = rng.uniform(1.0, np.where(mel[owner], 1.4, 1.7))
    od_lo = np.where(mel[owner], spec.melanin_od[0], spec.hemosiderin_od[0])
    od_hi = np.where(mel[owner], spec.melanin_od[1], spec.hemosiderin_od[1])
    f32 = lambda v: np.asarray(v).astype(np.float32)  # noqa: E731
    return Granules(
        l0_x=cells.l0_x[pig][owner] + rho * np.cos(theta), l0_y=cells.l0_y[pig][owner] + rho * np.sin(theta),
        radius_a=f32(0.5 * d * np.sqrt(aspect)), radius_b=f32(0.5 * d / np.sqrt(aspect)),
        angle=f32(rng.uniform(0.0, np.pi, n)), od=f32(rng.uniform(od_lo, od_hi)),
        pigment=cells.pigment[pig][owner].astype(np.int8), cell=pig[owner].astype(np.int64),
    )


def splat_granules(granules: Granules, cell_label: np.ndarray, territory: np.ndarray, x0: int, y0: int
                   ) -> np.ndarray:
    """Pigment OD of a block: (h, w, 2) float32, melanin and hemosiderin along their unit vectors.

    Parameters
    ----------
    granules : Granules
        Blobs to draw; ``cell`` holds the label their pixels must carry.
    cell_label : ndarray, int32, (h, w)
        Label of the cell owning each pixel of the block (0 = none).
    territory : ndarray, bool, (h, w)
        Pixels a cell may hold pigment in (its body).
    x0, y0 : int
        Level-0 corner of the block.

    Returns
    -------
    ndarray, float32, (h, w, 2)
        Overlapping blobs of one pigment take the larger OD (a clump, not a
        sum); the blob profile is flat with a soft edge of ``_EDGE_PX``.
    """
    h, w = cell_label.shape
    out = np.zeros((2, h * w), np.float32)
    for chan, kind in enumerate((tt.PIGMENT_MELANIN, tt.PIGMENT_HEMOSIDERIN)):
        sub = granules.take(granules.pigment == kind)
        if len(sub) == 0:
            continue
        flat, val = _blob_pixels(sub, cell_label, territory, x0, y0)
        np.maximum.at(out[chan], flat, val)
    return out.reshape(2, h, w).transpose(1, 2, 0)


def _blob_pixels(granules: Granules, cell_label: np.ndarray, territory: np.ndarray, x0: int, y0: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices and OD of every blob pixel inside its cell's territory."""
    h, w = cell_label.shape
    reach = int(math.ceil(float(np.max(granules.radius_a)))) + 1
    off = np.arange(-reach, reach + 1, dtype=np.int64)
    cxi = np.floor(granules.l0_x).astype(np.int64) - x0
    cyi = np.floor(granules.l0_y).astype(np.int64) - y0
    px = cxi[:, None, None] + off[None, None, :]
    py = cyi[:, None, None] + off[None, :, None]
    dx = (px + 0.5 - (granules.l0_x - x0)[:, None, None]).astype(np.float32)
    dy = (py + 0.5 - (granules.l0_y - y0)[:, None, None]).astype(np.float32)
    c, s = np.cos(granules.angle)[:, None, None], np.sin(granules.angle)[:, None, None]
    ra, rb = granules.radius_a[:, None, None], granules.radius_b[:, None, None]
    q = np.sqrt(((dx * c + dy * s) / ra) ** 2 + ((dy * c - dx * s) / rb) ** 2)
    hit = (q < 1.0) & (px >= 0) & (px < w) & (py >= 0) & (py < h)
    gi, iy, ix = np.nonzero(hit)
    flat = py[gi, iy, 0] * w + px[gi, 0, ix]
    mine = territory.ravel()[flat] & (cell_label.ravel()[flat] == granules.cell[gi])
    gi, flat = gi[mine], flat[mine]
    val = granules.od[gi] * np.clip((1.0 - q[hit][mine]) * granules.radius_b[gi] / _EDGE_PX, 0.0, 1.0)
    return flat, val.astype(np.float32)


def pigment_concentrations(dyes: Dyes) -> np.ndarray:
    """(2, 3) float32: melanin and hemosiderin unit OD vectors in a dye basis (H, DAB, residual).

    ``OD_pig = c @ M`` with ``M`` the dyes' (3, 3) ``matrix`` (any object
    with one will do), so ``c[:, 1]`` is the DAB a pigment passes for in
    that basis: what counting pigment as DAB measures.
    """
    inv = np.linalg.inv(dyes.matrix)
    return (np.array([MELANIN_OD, HEMOSIDERIN_OD]) @ inv).astype(np.float32)

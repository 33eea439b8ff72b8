"""Cells of every tissue type of a synthetic slide, and the neuropil texture (pure).

:class:`Cells` is the cell table of a layout. Besides tumour cells
(:data:`KIND_TUMOUR`), a slide holds non-tumour cells that are in the truth
as class 0 (stromal spindles, glial nuclei, neurons), immune cells
infiltrating the metastases (lymphocytes, neutrophils, macrophages; drawn
by :mod:`ihc_score.synthetic.infiltrates`) and necrotic debris that is
drawn but never in the truth (nuclear dust, ghost cells). Lengths are
level-0 px unless named ``_um``; OD base-10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage, special

from ihc_score.synthetic.spec import CLASS_THRESHOLDS, THRESHOLD_GUARD_OD

__all__ = [
    "KIND_TUMOUR",
    "KIND_STROMA",
    "KIND_GLIA",
    "KIND_NEURON",
    "KIND_DUST",
    "KIND_GHOST",
    "KIND_MACROPHAGE",
    "KIND_LYMPHOCYTE",
    "KIND_NEUTROPHIL",
    "KIND_NAMES",
    "MAX_LOBES",
    "PIGMENT_NONE",
    "PIGMENT_MELANIN",
    "PIGMENT_HEMOSIDERIN",
    "Cells",
    "make_cells",
    "host_cells",
    "neuron_cells",
    "debris_cells",
    "macrophage_cells",
    "designed_targets",
    "debris_density_per_mm2",
    "neuropil_texture",
]

KIND_TUMOUR, KIND_STROMA, KIND_GLIA, KIND_NEURON, KIND_DUST, KIND_GHOST, KIND_MACROPHAGE = range(7)
KIND_LYMPHOCYTE, KIND_NEUTROPHIL = 7, 8
#: Name of each kind, as written in the truth.
KIND_NAMES: tuple[str, ...] = ("tumour", "stroma", "glia", "neuron", "dust", "ghost", "macrophage", "lymphocyte",
                               "neutrophil")
#: Most nuclear lobes a cell can have (``Cells.lobes``).
MAX_LOBES = 5
#: Pigment a cell carries (``Cells.pigment``).
PIGMENT_NONE, PIGMENT_MELANIN, PIGMENT_HEMOSIDERIN = range(3)
#: Nuclear dust fragments per mm^2 of necrosis.
DUST_DENSITY_PER_MM2 = 12000.0
#: Ghost cells (pale outlines of dead tumour cells) per mm^2 of necrosis.
GHOST_DENSITY_PER_MM2 = 2500.0


@dataclass(frozen=True)
class Cells:
    """Cell table of a layout (one entry per cell, arrays of equal length).

    Lengths are level-0 px, angles radians, OD base-10. ``klass`` is the
    designed class (0-3), ``region`` the index of its tumour region (-1 for
    other cells), ``dab_target`` the designed cell DAB OD mean, ``kind``
    one of the ``KIND_*`` constants (default: tumour where ``tumour``, else
    stroma), ``pigment`` one of the ``PIGMENT_*`` constants (default none),
    ``half_gap_px`` how far its cytoplasm keeps from the edge of its
    territory (half the gap to a neighbour's body; default 0, touching).

    ``lobes`` (n, :data:`MAX_LOBES`, 5) float32 describes a nucleus drawn
    as separate lobes instead of one outline: per lobe its centre offset
    from the cell centre ``dx``, ``dy`` (px), semi-axes ``radius_a``,
    ``radius_b`` (px; 0 = no lobe) and ``angle`` (radians); a cell without
    lobes (all zero, the default) has the one outline of ``radius_a``,
    ``radius_b``, ``angle`` and the harmonics. ``notch`` (n,) float32 is
    the depth of a round bite out of the middle of one long side of that
    outline, relative to its short semi-axis (0 = none, the default; a
    kidney-shaped nucleus at 0.35-0.5).
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
    kind: np.ndarray | None = None
    pigment: np.ndarray | None = None
    half_gap_px: np.ndarray | None = None
    lobes: np.ndarray | None = None
    notch: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind is None:
            object.__setattr__(self, "kind", np.where(self.tumour, KIND_TUMOUR, KIND_STROMA).astype(np.int8))
        if self.pigment is None:
            object.__setattr__(self, "pigment", np.zeros(self.l0_x.shape[0], np.int8))
        if self.half_gap_px is None:
            object.__setattr__(self, "half_gap_px", np.zeros(self.l0_x.shape[0], np.float32))
        if self.lobes is None:
            object.__setattr__(self, "lobes", np.zeros((self.l0_x.shape[0], MAX_LOBES, 5), np.float32))
        if self.notch is None:
            object.__setattr__(self, "notch", np.zeros(self.l0_x.shape[0], np.float32))

    def __len__(self) -> int:
        return int(self.l0_x.shape[0])

    def take(self, index: np.ndarray) -> Cells:
        """Subset (index array or boolean mask)."""
        return Cells(**{k: v[index] for k, v in self.__dict__.items()})

    @classmethod
    def concat(cls, tables: list[Cells]) -> Cells:
        """Cells of several tables, in order."""
        return Cells(**{k: np.concatenate([t.__dict__[k] for t in tables]) for k in cls.__dataclass_fields__})


def make_cells(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, *, kind: int, mpp_um: float,
               diameter_um: np.ndarray, aspect: np.ndarray, harm: tuple[float, float], nucleus_h_od: np.ndarray,
               cytoplasm_px: np.ndarray, cytoplasm_h_od: np.ndarray, cytoplasm_ratio: np.ndarray,
               klass: np.ndarray, dab_target: np.ndarray, region: int = -1,
               half_gap_px: np.ndarray | None = None) -> Cells:
    """A cell table from per-cell shape and stain arrays (angles and phases drawn here).

    ``diameter_um`` is the equivalent-circle nucleus diameter, ``aspect``
    the ratio of its axes, ``harm`` the upper bounds of the 2nd and 3rd
    harmonic amplitudes of its outline (relative), ``half_gap_px`` the
    clearance of its cytoplasm from its territory's edge (px, default 0).
    """
    n = x.shape[0]
    r = 0.5 * np.asarray(diameter_um) / mpp_um
    f32 = lambda v: np.asarray(v).astype(np.float32)  # noqa: E731
    return Cells(
        l0_x=x.astype(np.float64), l0_y=y.astype(np.float64),
        radius_a=f32(r * np.sqrt(aspect)), radius_b=f32(r / np.sqrt(aspect)),
        angle=f32(rng.uniform(0, np.pi, n)),
        harm2=f32(rng.uniform(0.0, harm[0], n)), phase2=f32(rng.uniform(0, 2 * np.pi, n)),
        harm3=f32(rng.uniform(0.0, harm[1], n)), phase3=f32(rng.uniform(0, 2 * np.pi, n)),
        nucleus_h_od=f32(nucleus_h_od), cytoplasm_px=f32(cytoplasm_px),
        cytoplasm_h_od=f32(cytoplasm_h_od), cytoplasm_ratio=f32(cytoplasm_ratio),
        dab_target=np.asarray(dab_target, np.float64), klass=np.asarray(klass, np.int8),
        tumour=np.full(n, kind == KIND_TUMOUR), region=np.full(n, region, np.int16),
        kind=np.full(n, kind, np.int8), half_gap_px=None if half_gap_px is None else f32(half_gap_px),
    )


def host_cells(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, *, host_tissue: str, mpp_um: float) -> Cells:
    """Non-tumour nuclei of the host tissue, class 0, no DAB.

    ``"stroma"``: spindle nuclei 4.5-7 um, aspect 1.8-3.2, H OD 0.4-0.6.
    ``"brain"``: glial nuclei, small, round and dark: 5-7 um, aspect
    1.0-1.3, H OD 0.5-0.75 (oligodendrocyte-like) with a minority of paler,
    slightly larger astrocyte-like ones.
    """
    n = x.shape[0]
    z = np.zeros(n)
    if host_tissue == "stroma":
        return make_cells(rng, x, y, kind=KIND_STROMA, mpp_um=mpp_um, diameter_um=rng.uniform(4.5, 7.0, n),
                          aspect=rng.uniform(1.8, 3.2, n), harm=(0.05, 0.05), nucleus_h_od=rng.uniform(0.4, 0.6, n),
                          cytoplasm_px=z, cytoplasm_h_od=z, cytoplasm_ratio=np.ones(n), klass=z, dab_target=z)
    astro = rng.random(n) < 0.3
    d = np.where(astro, rng.uniform(6.0, 7.0, n), rng.uniform(5.0, 6.3, n))
    h = np.where(astro, rng.uniform(0.3, 0.42, n), rng.uniform(0.5, 0.75, n))
    return make_cells(rng, x, y, kind=KIND_GLIA, mpp_um=mpp_um, diameter_um=d, aspect=rng.uniform(1.0, 1.3, n),
                      harm=(0.04, 0.03), nucleus_h_od=h, cytoplasm_px=z, cytoplasm_h_od=z,
                      cytoplasm_ratio=np.ones(n), klass=z, dab_target=z)


def neuron_cells(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, *, mpp_um: float) -> Cells:
    """Neurons: large pale round nuclei (10-14 um) in a Nissl-rich cytoplasm (5-7 um wide), class 0, no DAB."""
    n = x.shape[0]
    z = np.zeros(n)
    return make_cells(rng, x, y, kind=KIND_NEURON, mpp_um=mpp_um, diameter_um=rng.uniform(10.0, 14.0, n),
                      aspect=rng.uniform(1.0, 1.25, n), harm=(0.05, 0.04), nucleus_h_od=rng.uniform(0.14, 0.22, n),
                      cytoplasm_px=rng.uniform(5.0, 7.0, n) / mpp_um, cytoplasm_h_od=rng.uniform(0.12, 0.18, n),
                      cytoplasm_ratio=np.ones(n), klass=z, dab_target=z)


def debris_cells(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, *, kind: int, mpp_um: float,
                 dab_od: float) -> Cells:
    """Necrotic debris, drawn but never in the truth.

    ``KIND_DUST``: nuclear dust (karyorrhexis), fragments of 0.8-2.6 um,
    irregular, very dark (H OD 0.5-1.0); ``KIND_GHOST``: ghost cells, pale
    tumour-sized nuclear outlines (8-12 um, H OD 0.05-0.09). Their designed
    DAB mean over their drawn body (the fragment or outline itself) is
    ``dab_od`` times 0-1 (dust) or 0.5-1.5 (ghosts): non-specific staining.
    """
    n = x.shape[0]
    z = np.zeros(n)
    if kind == KIND_DUST:
        d, aspect, harm = rng.uniform(0.8, 2.6, n), rng.uniform(1.0, 2.2, n), (0.25, 0.2)
        h, dab = rng.uniform(0.5, 1.0, n), dab_od * rng.uniform(0.0, 1.0, n)
    else:
        d, aspect, harm = rng.uniform(8.0, 12.0, n), rng.uniform(1.0, 1.5, n), (0.1, 0.08)
        h, dab = rng.uniform(0.05, 0.09, n), dab_od * rng.uniform(0.5, 1.5, n)
    return make_cells(rng, x, y, kind=kind, mpp_um=mpp_um, diameter_um=d, aspect=aspect, harm=harm,
                      nucleus_h_od=h, cytoplasm_px=z, cytoplasm_h_od=z, cytoplasm_ratio=np.ones(n), klass=z,
                      dab_target=dab)


def macrophage_cells(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, *, mpp_um: float) -> Cells:
    """Hemosiderin-laden macrophages, class 0, no DAB.

    Oval to bean-shaped pale nuclei (6-9 um, aspect 1.1-1.6, H OD
    0.28-0.42) in an abundant pale cytoplasm 4.5-6 um wide; the
    hemosiderin clumps are added by :mod:`ihc_score.synthetic.pigments`.
    """
    n = x.shape[0]
    z = np.zeros(n)
    cells = make_cells(rng, x, y, kind=KIND_MACROPHAGE, mpp_um=mpp_um, diameter_um=rng.uniform(6.0, 9.0, n),
                       aspect=rng.uniform(1.1, 1.6, n), harm=(0.1, 0.06), nucleus_h_od=rng.uniform(0.28, 0.42, n),
                       cytoplasm_px=rng.uniform(4.5, 6.0, n) / mpp_um, cytoplasm_h_od=rng.uniform(0.04, 0.08, n),
                       cytoplasm_ratio=np.ones(n), klass=z, dab_target=z)
    return replace(cells, pigment=np.full(n, PIGMENT_HEMOSIDERIN, np.int8))


def designed_targets(rng: np.random.Generator, bands: tuple[tuple[float, float], ...], klass: np.ndarray
                     ) -> np.ndarray:
    """Designed cell DAB OD means: uniform in each class's band, kept ``THRESHOLD_GUARD_OD`` from the thresholds."""
    b = np.asarray(bands, np.float64)
    g = THRESHOLD_GUARD_OD
    lo = np.array([0.0, *(t + g for t in CLASS_THRESHOLDS)])
    hi = np.array([*(t - g for t in CLASS_THRESHOLDS), np.inf])
    return np.clip(rng.uniform(b[klass, 0], b[klass, 1]), lo[klass], hi[klass])


def debris_density_per_mm2(kind: int) -> float:
    """Density of a debris kind in necrosis, per mm^2."""
    return DUST_DENSITY_PER_MM2 if kind == KIND_DUST else GHOST_DENSITY_PER_MM2


def neuropil_texture(rng: np.random.Generator, size_px: int, mpp_um: float) -> np.ndarray:
    """Periodic fibrillary neuropil texture, (size, size) float32 in 0-1.

    Thin (~0.5 um), short (~5 um), wavy fibrils in all directions over a
    faint granular ground: ridges of warped anisotropic noise.
    """
    s = 1.0 / mpp_um

    def band(sig: tuple[float, float]) -> np.ndarray:
        t = ndimage.gaussian_filter(rng.standard_normal((size_px, size_px)), sig, mode="wrap")
        return t / max(float(t.std()), 1e-9)

    fib = np.maximum(band((0.3 * s, 2.5 * s)), 0) ** 2 + np.maximum(band((2.5 * s, 0.3 * s)), 0) ** 2
    fib += 0.5 * np.maximum(band((0.9 * s, 0.9 * s)), 0) ** 2
    warp = [ndimage.gaussian_filter(rng.standard_normal((size_px, size_px)), 4.0 * s, mode="wrap") for _ in range(2)]
    amp = 2.0 * s / max(float(np.std(warp[0])), 1e-9)
    yy, xx = np.mgrid[0:size_px, 0:size_px].astype(np.float64)
    fib = ndimage.map_coordinates(fib, [yy + amp * warp[0], xx + amp * warp[1]], order=1, mode="grid-wrap")
    grain = band((0.4 * s, 0.4 * s))
    z = (fib - fib.mean()) / max(float(fib.std()), 1e-9) + 0.3 * grain
    return special.ndtr(z / math.sqrt(1.09)).astype(np.float32)

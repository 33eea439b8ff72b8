"""Immune cells infiltrating the metastases: lymphocytes, neutrophils and macrophages (pure).

With ``SynthSpec.infiltrate_fraction`` above 0, that share of each
metastasis's cell positions (rounded) is taken, at random, by infiltrating
cells instead of tumour cells, in the proportions of
``SynthSpec.infiltrate_mix`` (:func:`split_infiltrates`). They are drawn by
the same machinery as every other cell (nucleus outline and chromatin,
cytoplasm grown around it, DAB amplitude solved so that the mean DAB OD
over the drawn body is the designed value):

* **lymphocyte** (:data:`~ihc_score.synthetic.tissue_types.KIND_LYMPHOCYTE`):
  small round dense nucleus of 5.3-6.0 um equivalent diameter (22-28
  um^2), dark hematoxylin (OD 0.6-0.85), a rim of cytoplasm 0.5-1 um wide;
  DAB negative, designed mean 0-0.1 OD (class 0).
* **neutrophil** (:data:`~ihc_score.synthetic.tissue_types.KIND_NEUTROPHIL`):
  a nucleus of 2-5 dark oval lobes (2.5-3.5 um each) in a curved chain,
  neighbours joined or nearly touching (:func:`neutrophil_lobes`); granular
  cytoplasm grown 2-3.5 um around the lobes, to a cell of about 10-12 um;
  S100A9 strong: classes 0/1+/2+/3+ in :data:`NEUTROPHIL_CLASSES`, DAB
  mostly in the cytoplasm.
* **macrophage** (:data:`~ihc_score.synthetic.tissue_types.KIND_MACROPHAGE`
  with a region; the hemosiderin-laden ones of the host tissue have none):
  kidney-shaped nucleus (an ellipse 8-12 um long, aspect 1.3-1.6, notched
  in the middle of one long side, 0.35-0.5 of its half-width deep), moderately
  pale (H OD 0.2-0.3), in a large pale cytoplasm 4-7 um wide (a cell of
  about 15-25 um, clipped by its territory in a dense sheet); DAB weak to
  moderate: :data:`MACROPHAGE_CLASSES`.

Infiltrating cells come from random streams of their own (``(seed, 9,
region)``); with ``infiltrate_fraction`` 0 none is drawn and no random
number is taken for them, so such a slide depends on its other fields
only. Lengths are level-0 px unless named ``_um``; OD base 10.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ihc_score.synthetic import tissue_types as tt
from ihc_score.synthetic.spec import SynthSpec
from ihc_score.synthetic.tissue_types import Cells

__all__ = [
    "INFILTRATE_KINDS",
    "NEUTROPHIL_CLASSES",
    "MACROPHAGE_CLASSES",
    "LYMPHOCYTE_DAB_OD",
    "split_infiltrates",
    "type_counts",
    "neutrophil_lobes",
    "is_infiltrate",
    "cell_type",
    "nucleus_outlines",
    "notch_q",
    "infiltrate_pattern",
]

#: Kinds of the infiltrating cells, in the order of ``SynthSpec.infiltrate_mix``.
INFILTRATE_KINDS: tuple[int, int, int] = (tt.KIND_LYMPHOCYTE, tt.KIND_NEUTROPHIL, tt.KIND_MACROPHAGE)
#: Expected fractions of neutrophils in classes 0, 1+, 2+, 3+ (S100A9 is abundant in their cytoplasm).
NEUTROPHIL_CLASSES: tuple[float, float, float, float] = (0.0, 0.1, 0.4, 0.5)
#: Expected fractions of infiltrating macrophages in classes 0, 1+, 2+, 3+.
MACROPHAGE_CLASSES: tuple[float, float, float, float] = (0.5, 0.4, 0.1, 0.0)
#: Range of the designed DAB OD mean of lymphocytes (class 0).
LYMPHOCYTE_DAB_OD: tuple[float, float] = (0.0, 0.1)
#: Probabilities of 2, 3, 4, 5 nuclear lobes of a neutrophil.
_LOBE_COUNTS: tuple[float, float, float, float] = (0.15, 0.45, 0.3, 0.1)
#: Relative DAB of the nucleus, and base and contrast of the granular cytoplasm, of each infiltrating kind.
_PATTERN: dict[int, tuple[float, float, float]] = {
    tt.KIND_LYMPHOCYTE: (1.0, 0.8, 0.4),
    tt.KIND_NEUTROPHIL: (0.25, 0.25, 1.5),
    tt.KIND_MACROPHAGE: (0.2, 0.55, 0.9),
}
#: Radius of the round bite that notches a kidney-shaped nucleus, in units of the outline's semi-axes.
_NOTCH_RADIUS = 0.6


def type_counts(n: int, mix: tuple[float, ...]) -> np.ndarray:
    """Counts of ``n`` items split by proportions ``mix``, rounded by largest remainder (they sum to ``n``)."""
    raw = np.asarray(mix, np.float64) * n
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(counts - raw, kind="stable")[: n - int(counts.sum())]] += 1
    return counts


def split_infiltrates(spec: SynthSpec, region: int, x: np.ndarray, y: np.ndarray
                      ) -> tuple[np.ndarray, Cells | None]:
    """Which of a region's cell positions (level-0 px) stay tumour cells, and the infiltrating cells at the others.

    ``round(infiltrate_fraction * n)`` positions are chosen at random and
    split into lymphocytes, neutrophils and macrophages by
    :func:`type_counts` of ``infiltrate_mix``, from the random stream
    ``(seed, 9, region)``.

    Returns
    -------
    tumour : (n,) bool
        True where the position keeps its tumour cell.
    cells : Cells or None
        The infiltrating cells (lymphocytes, then neutrophils, then
        macrophages), ``region`` set to ``region``; None when there is none.
    """
    n = x.shape[0]
    m = int(round(spec.infiltrate_fraction * n))
    if m == 0:
        return np.ones(n, bool), None
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 9, region]))
    pick = rng.permutation(n)[:m]
    kinds = rng.permutation(np.repeat(np.asarray(INFILTRATE_KINDS), type_counts(m, spec.infiltrate_mix)))
    tumour = np.ones(n, bool)
    tumour[pick] = False
    tables = []
    for kind, make in ((tt.KIND_LYMPHOCYTE, _lymphocytes), (tt.KIND_NEUTROPHIL, _neutrophils),
                       (tt.KIND_MACROPHAGE, _macrophages)):
        at = np.sort(pick[kinds == kind])
        tables.append(make(rng, spec, x[at], y[at], region))
    return tumour, Cells.concat(tables)


def _lymphocytes(rng: np.random.Generator, spec: SynthSpec, x: np.ndarray, y: np.ndarray, region: int) -> Cells:
    """Lymphocytes: small round dark nuclei (22-28 um^2) with a 0.5-1 um rim of cytoplasm, DAB 0-0.1 OD."""
    n = x.shape[0]
    return tt.make_cells(rng, x, y, kind=tt.KIND_LYMPHOCYTE, mpp_um=spec.mpp_um, diameter_um=rng.uniform(5.3, 6.0, n),
                         aspect=rng.uniform(1.0, 1.15, n), harm=(0.03, 0.02), nucleus_h_od=rng.uniform(0.6, 0.85, n),
                         cytoplasm_px=rng.uniform(0.5, 1.0, n) / spec.mpp_um, cytoplasm_h_od=rng.uniform(0.08, 0.12, n),
                         cytoplasm_ratio=np.ones(n), klass=np.zeros(n, np.int8),
                         dab_target=rng.uniform(*LYMPHOCYTE_DAB_OD, n), region=region,
                         half_gap_px=_half_gap(rng, spec, n))


def _neutrophils(rng: np.random.Generator, spec: SynthSpec, x: np.ndarray, y: np.ndarray, region: int) -> Cells:
    """Neutrophils: 2-5 dark nuclear lobes in a granular, strongly DAB-positive cytoplasm, cells 10-12 um across."""
    n = x.shape[0]
    lobes = neutrophil_lobes(rng, n, spec.mpp_um)
    # the outline that bounds the lobes: what the layout's reach and the pigment code read
    reach = np.max(np.hypot(lobes[..., 0], lobes[..., 1]) + lobes[..., 2], axis=1)
    cell_r = rng.uniform(5.5, 6.5, n) / spec.mpp_um
    cyto = np.clip(cell_r - reach, 2.0 / spec.mpp_um, 3.5 / spec.mpp_um)  # grown around the lobes: a rounded cell
    klass = rng.choice(4, n, p=NEUTROPHIL_CLASSES).astype(np.int8)
    cells = tt.make_cells(rng, x, y, kind=tt.KIND_NEUTROPHIL, mpp_um=spec.mpp_um, diameter_um=2.0 * reach * spec.mpp_um,
                          aspect=np.ones(n), harm=(0.0, 0.0), nucleus_h_od=rng.uniform(0.5, 0.7, n),
                          cytoplasm_px=cyto, cytoplasm_h_od=rng.uniform(0.03, 0.05, n), cytoplasm_ratio=np.ones(n),
                          klass=klass, dab_target=tt.designed_targets(rng, spec.class_bands, klass), region=region,
                          half_gap_px=_half_gap(rng, spec, n))
    return replace(cells, lobes=lobes)


def _macrophages(rng: np.random.Generator, spec: SynthSpec, x: np.ndarray, y: np.ndarray, region: int) -> Cells:
    """Macrophages: kidney-shaped pale nuclei 8-12 um long in a wide pale cytoplasm, DAB mostly 0 / 1+."""
    n = x.shape[0]
    aspect = rng.uniform(1.3, 1.6, n)
    diameter = rng.uniform(8.0, 12.0, n) / np.sqrt(aspect)  # equivalent circle of an ellipse 8-12 um long
    klass = rng.choice(4, n, p=MACROPHAGE_CLASSES).astype(np.int8)
    cells = tt.make_cells(rng, x, y, kind=tt.KIND_MACROPHAGE, mpp_um=spec.mpp_um, diameter_um=diameter,
                          aspect=aspect, harm=(0.05, 0.03), nucleus_h_od=rng.uniform(0.2, 0.3, n),
                          cytoplasm_px=rng.uniform(4.0, 7.0, n) / spec.mpp_um,
                          cytoplasm_h_od=rng.uniform(0.03, 0.06, n), cytoplasm_ratio=np.ones(n), klass=klass,
                          dab_target=tt.designed_targets(rng, spec.class_bands, klass), region=region,
                          half_gap_px=_half_gap(rng, spec, n))
    return replace(cells, notch=rng.uniform(0.35, 0.5, n).astype(np.float32))


def _half_gap(rng: np.random.Generator, spec: SynthSpec, n: int) -> np.ndarray:
    """Clearance of the cytoplasm from the territory's edge, px: half a gap of the spec's tumour cell gap range."""
    return 0.5 * rng.uniform(*spec.cell_gap_um, n) / spec.mpp_um


def neutrophil_lobes(rng: np.random.Generator, n: int, mpp_um: float) -> np.ndarray:
    """Nuclear lobes of ``n`` neutrophils: (n, MAX_LOBES, 5) float32 ``dx``, ``dy``, ``radius_a``, ``radius_b``, angle.

    Each nucleus has ``m`` = 2-5 oval lobes (:data:`_LOBE_COUNTS`) of
    2.5-3.5 um (equivalent diameter, aspect 1-1.3, long axis along the
    chain) in a chain that turns by 0.45-0.8 of ``360 / m`` degrees at each
    lobe, mostly the same way (a compact C or horseshoe, sometimes an S);
    neighbouring centres are their two half-lengths plus -0.5 to +0.3 um
    apart (joined, touching or just apart). Offsets (px) are from the
    centre of the lobes' centres; unused lobes are all 0.
    """
    count = rng.choice(np.arange(2, 6), n, p=_LOBE_COUNTS)
    k = tt.MAX_LOBES
    d = rng.uniform(2.5, 3.5, (n, k)) / mpp_um
    aspect = rng.uniform(1.0, 1.3, (n, k))
    ra, rb = 0.5 * d * np.sqrt(aspect), 0.5 * d / np.sqrt(aspect)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)[:, None] * np.where(rng.random((n, k)) < 0.15, -1.0, 1.0)
    turn = sign * rng.uniform(0.45, 0.8, (n, k)) * (2 * math.pi / count[:, None])
    heading = rng.uniform(0.0, 2 * math.pi, n)[:, None] + np.cumsum(turn, axis=1)
    step = ra[:, :-1] + ra[:, 1:] + rng.uniform(-0.5, 0.3, (n, k - 1)) / mpp_um
    cx = np.concatenate([np.zeros((n, 1)), np.cumsum(step * np.cos(heading[:, :-1]), axis=1)], axis=1)
    cy = np.concatenate([np.zeros((n, 1)), np.cumsum(step * np.sin(heading[:, :-1]), axis=1)], axis=1)
    # each lobe lies along the mean of the chain's headings into and out of it
    angle = np.concatenate([heading[:, :1], 0.5 * (heading[:, :-2] + heading[:, 1:-1]), heading[:, k - 2:k - 1]], 1)
    on = np.arange(k)[None, :] < count[:, None]
    cx = cx - np.sum(cx * on, axis=1, keepdims=True) / count[:, None]
    cy = cy - np.sum(cy * on, axis=1, keepdims=True) / count[:, None]
    return np.where(on[..., None], np.stack([cx, cy, ra, rb, angle], axis=-1), 0.0).astype(np.float32)


def is_infiltrate(cells: Cells) -> np.ndarray:
    """(n,) bool: the cells infiltrating a metastasis (an infiltrating kind with a region)."""
    return np.isin(cells.kind, INFILTRATE_KINDS) & (cells.region >= 0)


def cell_type(kind: int) -> str:
    """Type of a cell of a kind in the truth: tumour, lymphocyte, neutrophil, macrophage or other (host tissue)."""
    return {tt.KIND_TUMOUR: "tumour", tt.KIND_LYMPHOCYTE: "lymphocyte", tt.KIND_NEUTROPHIL: "neutrophil",
            tt.KIND_MACROPHAGE: "macrophage"}.get(int(kind), "other")


def nucleus_outlines(cells: Cells) -> tuple[Cells, np.ndarray, np.ndarray]:
    """The outlines a block's nuclei are drawn with: one per cell, or one per lobe of a lobed nucleus.

    Returns
    -------
    outlines : Cells
        The cells without lobes as they are, then one row per lobe (its
        centre, semi-axes and angle, no harmonics, its cell's stains).
    cell : (m,) int64
        Index in ``cells`` of the cell each outline belongs to.
    lobe : (m,) bool
        True for the lobe rows.
    """
    present = cells.lobes[:, :, 2] > 0
    lobed = present.any(axis=1)
    if not lobed.any():
        return cells, np.arange(len(cells)), np.zeros(len(cells), bool)
    plain = np.flatnonzero(~lobed)
    ci, li = np.nonzero(present)
    lb = cells.lobes[ci, li]
    zero = np.zeros(ci.size, np.float32)
    parts = replace(cells.take(ci), l0_x=cells.l0_x[ci] + lb[:, 0], l0_y=cells.l0_y[ci] + lb[:, 1],
                    radius_a=lb[:, 2], radius_b=lb[:, 3], angle=lb[:, 4], harm2=zero, harm3=zero, notch=zero)
    lobe = np.concatenate([np.zeros(plain.size, bool), np.ones(ci.size, bool)])
    return Cells.concat([cells.take(plain), parts]), np.concatenate([plain, ci]), lobe


def notch_q(notch: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Shape value of a notch at outline coordinates ``u``, ``v`` (along the long and short semi-axes, 1 = edge).

    The notch is a round bite of radius :data:`_NOTCH_RADIUS` out of the
    middle of the ``+v`` long side, ``notch`` deep; the value is 1 on the
    bite's edge and above 1 inside it, so a pixel is in the nucleus where
    both its outline value and this are below 1. 0 where ``notch`` is 0.
    """
    dist = np.hypot(u, v - (1.0 + _NOTCH_RADIUS - notch))
    return np.where(notch > 0, _NOTCH_RADIUS / np.maximum(dist, 1e-6), 0.0).astype(np.float32)


def infiltrate_pattern(sub: Cells, owner: np.ndarray, body: np.ndarray, nuc: np.ndarray, chrom: np.ndarray,
                       gran: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """Relative DAB of a block with the infiltrating cells' own pattern, whatever the tumour's staining.

    On an infiltrating cell's body: nucleus ``w * (0.8 + 0.4 * chrom)``,
    cytoplasm ``base + contrast * gran`` (:data:`_PATTERN`: neutrophils
    coarsely granular with a weak nucleus, macrophages fine, lymphocytes
    even); elsewhere ``pattern`` unchanged.
    """
    mine = is_infiltrate(sub)
    if not mine.any():
        return pattern
    table = np.zeros((len(sub) + 1, 3), np.float32)
    for kind, row in _PATTERN.items():
        table[1:][mine & (sub.kind == kind)] = row
    lab = np.where(body, owner, 0)
    w, base, contrast = table[lab, 0], table[lab, 1], table[lab, 2]
    own = np.where(nuc > 0, w * (0.8 + 0.4 * chrom), base + contrast * gran)
    return np.where(w > 0, own, pattern).astype(np.float32)

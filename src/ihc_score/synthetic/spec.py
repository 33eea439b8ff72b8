"""Parameters of a synthetic slide: tumour regions and the spec.

Everything that decides a synthetic slide (same spec, same bytes): the
designed class thresholds and bands, the staining patterns,
:class:`TumourRegion` and :class:`SynthSpec`; the dyes and scanners are in
:mod:`ihc_score.synthetic.optics`, the named specs in
:mod:`ihc_score.synthetic.presets`. Pure, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from ihc_score.synthetic.artefacts import AirBubble, Artefact, BlurPatch, Fold, PenStroke
from ihc_score.synthetic.optics import DEFAULT_DYES, SCANNERS, Dyes, Scanner

__all__ = [
    "GENERATOR_VERSION",
    "CLASS_THRESHOLDS",
    "CLASS_BANDS",
    "THRESHOLD_GUARD_OD",
    "STAININGS",
    "GAP_FILLS",
    "TumourRegion",
    "NecrosisRegion",
    "HOST_TISSUES",
    "PIGMENT_FIELDS",
    "INFILTRATE_TYPES",
    "INFILTRATE_FIELDS",
    "SynthSpec",
]

GENERATOR_VERSION = "3"
#: Designed DAB OD thresholds of classes 1+, 2+, 3+ (``>=``): QuPath's conventional ones.
CLASS_THRESHOLDS: tuple[float, float, float] = (0.2, 0.4, 0.6)
#: Range of the designed cell DAB OD mean of each class: each class interval up to its thresholds.
CLASS_BANDS: tuple[tuple[float, float], ...] = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.9))
#: Least distance of a designed cell mean from a threshold, OD: keeps the class
#: through float rounding and the truth's 4 decimals, and lets cells sit near thresholds.
THRESHOLD_GUARD_OD = 5e-4
#: Where tumour cells hold DAB: nucleus and cytoplasm; cytoplasm only (negative
#: nucleus); a ~1 um ring at the outer edge of the body (faint interior).
STAININGS: tuple[str, ...] = ("nuclear_cytoplasmic", "cytoplasmic", "membranous")
#: What fills the ground between tumour cell bodies inside a metastasis.
GAP_FILLS: tuple[str, ...] = ("stroma", "glass")
#: Kinds of non-tumour tissue around the metastases.
HOST_TISSUES: tuple[str, ...] = ("stroma", "brain")
#: SynthSpec fields of brown pigment, left out of the truth's spec when no pigment is drawn.
PIGMENT_FIELDS: tuple[str, ...] = ("hemosiderin_density_per_mm2", "melanin_od", "melanin_cover", "hemosiderin_od",
                                   "hemosiderin_cover")
#: Immune cells infiltrating a metastasis, in the order of ``SynthSpec.infiltrate_mix``.
INFILTRATE_TYPES: tuple[str, ...] = ("lymphocyte", "neutrophil", "macrophage")
#: SynthSpec fields of infiltrating cells, left out of its repr and of the truth's spec when none is drawn.
INFILTRATE_FIELDS: tuple[str, ...] = ("infiltrate_fraction", "infiltrate_mix")


def _check_proportions(p: tuple[float, ...], name: str) -> tuple[float, ...]:
    a = np.asarray(p, dtype=np.float64)
    if a.shape != (4,) or np.any(a < 0) or not math.isclose(float(a.sum()), 1.0, abs_tol=1e-6):
        raise ValueError(f"{name} must be 4 non-negative fractions of classes 0, 1+, 2+, 3+ summing to 1, got {p!r}")
    return tuple(float(x) for x in a)


def _check_range(value: tuple[float, float], lo: float, hi: float, name: str) -> tuple[float, float]:
    """Validate a (min, max) pair inside [lo, hi]."""
    a, b = (float(x) for x in value)
    if not lo <= a <= b <= hi:
        raise ValueError(f"{name} must be (min, max) within {lo:g}-{hi:g}, got {value!r}")
    return a, b


def _check_ellipse(center: tuple[float, float], radii: tuple[float, float]) -> None:
    """Validate an ellipse given as fractions of the slide."""
    if not all(0.0 <= c <= 1.0 for c in center):
        raise ValueError(f"center must be fractions of the slide in 0-1, got {center!r}")
    if not all(0.0 < r <= 1.0 for r in radii):
        raise ValueError(f"radii must be fractions of the slide in (0, 1], got {radii!r}")


@dataclass(frozen=True)
class TumourRegion:
    """One metastasis: a sheet of tumour cells inside a noisy ellipse.

    Parameters
    ----------
    center : (float, float)
        Centre as fractions of the slide (width, height), 0-1.
    radii : (float, float)
        Semi-axes as fractions of the slide (width, height).
    angle_deg : float
        Rotation of the ellipse, degrees.
    class_proportions : 4 floats
        Expected fractions of tumour cells in classes 0, 1+, 2+, 3+.
    name : str
        Stable region name written into the truth.
    pigmented_fraction : float
        Fraction of its tumour cells laden with melanin granules (0-1; the
        count is this fraction of the cells, rounded), chosen independently
        of their DAB class.
    """

    center: tuple[float, float] = (0.5, 0.5)
    radii: tuple[float, float] = (0.3, 0.3)
    angle_deg: float = 0.0
    class_proportions: tuple[float, float, float, float] = (0.4, 0.3, 0.2, 0.1)
    name: str = "met1"
    pigmented_fraction: float = 0.0

    def __post_init__(self) -> None:
        _check_ellipse(self.center, self.radii)
        object.__setattr__(self, "class_proportions", _check_proportions(self.class_proportions, "class_proportions"))
        if not 0.0 <= self.pigmented_fraction <= 1.0:
            raise ValueError(f"pigmented_fraction must be in 0-1, got {self.pigmented_fraction!r}")


@dataclass(frozen=True)
class NecrosisRegion:
    """A necrotic (excluded) area: cell-free debris inside a noisy ellipse.

    It may overlap a metastasis: no tumour, stromal or glial cell is placed
    inside it, only nuclear dust and ghost cells that are not in the truth.

    Parameters
    ----------
    center : (float, float)
        Centre as fractions of the slide (width, height), 0-1.
    radii : (float, float)
        Semi-axes as fractions of the slide (width, height).
    angle_deg : float
        Rotation of the ellipse, degrees.
    name : str
        Stable name written into the truth and the annotations.
    """

    center: tuple[float, float] = (0.5, 0.5)
    radii: tuple[float, float] = (0.05, 0.05)
    angle_deg: float = 0.0
    name: str = "necrosis1"

    def __post_init__(self) -> None:
        _check_ellipse(self.center, self.radii)


@dataclass(frozen=True)
class SynthSpec:
    """Everything that decides a synthetic slide; same spec, same bytes.

    Parameters
    ----------
    width, height : int
        Level-0 size, px.
    mpp_um : float
        Level-0 pixel size, um/px (0.25 = 40x).
    seed : int
        Seed of every random choice.
    dyes : Dyes
        Absorbance spectra the slide is drawn with
        (:mod:`ihc_score.synthetic.optics`).
    scanner : Scanner or str
        The scanner that records it: optical blur, tone curve, crosstalk,
        glass colour, noise, JPEG quality; a name of
        :data:`~ihc_score.synthetic.optics.SCANNERS` is replaced by that
        scanner. Default ``"reference"`` (linear, no crosstalk, white glass,
        blur 0.2 um, noise 2, JPEG 85).
    tile_px : int
        Tile size, 256 or 512.
    tissue_fraction : float
        Approximate fraction of the slide covered by tissue pieces besides
        the tumour regions.
    tissue_pieces : int
        Number of tissue pieces.
    regions : tuple of TumourRegion
        The metastases, each with its class proportions.
    tumour_density_per_mm2 : float
        Tumour cells per mm^2 of tumour sheet.
    stroma_density_per_mm2 : float
        Non-tumour nuclei per mm^2 of non-tumour tissue (fibroblast-like
        spindles for ``host_tissue="stroma"``, small round glial nuclei for
        ``"brain"``).
    host_tissue : str
        Non-tumour tissue around the metastases: ``"stroma"`` (fibrous,
        spindle nuclei) or ``"brain"`` (parenchyma: glial nuclei of 5-7 um,
        faint fibrillary neuropil, a few neurons). DAB-negative (class 0)
        either way.
    neuron_density_per_mm2 : float
        Neurons per mm^2 of parenchyma (``host_tissue="brain"`` only).
    necroses : tuple of NecrosisRegion
        Necrotic (excluded) areas.
    necrosis_dab_od : float
        Mean non-specific DAB OD of necrotic debris (0 = none); nuclear dust
        and ghost cells carry up to a few times more.
    nucleus_diameter_um : (float, float)
        Range of tumour nucleus diameters (equivalent circle), um (3-16).
    cytoplasm_width_um : (float, float)
        Range of the tumour cytoplasm width around the nucleus, um
        (0.5-10); a cell body is its nucleus grown by it, each pixel going
        to the nearest nucleus.
    cell_gap_um : (float, float)
        Range of the gap between neighbouring tumour cell bodies, um (0-10;
        0 = touching): each tumour cell keeps its cytoplasm half a gap,
        drawn from this range, from the edge of its territory (the pixels
        nearer its nucleus than any other), so neighbours are at least the
        sum apart. Nuclei are never cut: nuclei closer than the gap meet.
    gap_fill : str
        ``"stroma"`` (the host ground runs between bodies) or ``"glass"``
        (inside a metastasis outline, everything but the cells is unstained).
    staining : str
        Where tumour cells hold DAB (:data:`STAININGS`):
        ``"nuclear_cytoplasmic"`` (both, cytoplasm 1.15-1.6 x darker),
        ``"cytoplasmic"`` (negative nucleus) or ``"membranous"`` (a ~1 um
        ring at the outer edge of the cytoplasm, its interior faint,
        negative nucleus). A cell without the stained compartment (all
        cytoplasm cut away) stains its nucleus instead.
    stroma_dab_od : float
        Mean nonspecific DAB OD of stroma.
    class_clustering : float
        0-1: how much the class of a tumour cell follows a smooth field
        (patches of ~50 um) rather than chance. Each region's class counts
        are its proportions times its cell count, rounded, either way.
    class_bands : 4 (low, high) pairs
        Range of the designed cell DAB OD mean (over the cell body) of
        classes 0, 1+, 2+, 3+; each inside its class's interval of
        :data:`CLASS_THRESHOLDS` (at most 3 OD), values drawn uniformly and
        kept :data:`THRESHOLD_GUARD_OD` from a threshold.
    artefacts : tuple of Fold, AirBubble, BlurPatch, PenStroke
        Slide artefacts drawn over the tissue
        (:mod:`ihc_score.synthetic.artefacts`); their names are distinct
        from each other and from the regions and necroses.
    hemosiderin_density_per_mm2 : float
        Hemosiderin-laden macrophages per mm^2 of host tissue 15-150 um
        from a metastasis (0 = none): DAB-negative host cells, class 0,
        holding coarse golden-brown clumps.
    melanin_od, hemosiderin_od : (float, float)
        Range of the peak OD of a melanin granule / hemosiderin clump along
        its own unit OD vector (:mod:`ihc_score.synthetic.pigments`).
    melanin_cover, hemosiderin_cover : (float, float)
        Range of the expected fraction of a pigmented cell's cytoplasm
        covered by granules / clumps.
    infiltrate_fraction : float
        Share of each metastasis's cell positions (rounded, chosen at
        random) taken by infiltrating immune cells instead of tumour cells,
        0-0.6 (0 = none; :mod:`ihc_score.synthetic.infiltrates`); the class
        counts of the tumour cells left follow their region's proportions.
    infiltrate_mix : 3 floats
        Proportions of lymphocytes, neutrophils and macrophages among them
        (:data:`INFILTRATE_TYPES`; counts rounded by largest remainder).
    """

    width: int = 4096
    height: int = 3072
    mpp_um: float = 0.25
    seed: int = 0
    dyes: Dyes = DEFAULT_DYES
    scanner: Scanner = SCANNERS["reference"]
    tile_px: int = 512
    tissue_fraction: float = 0.3
    tissue_pieces: int = 2
    regions: tuple[TumourRegion, ...] = (TumourRegion(),)
    tumour_density_per_mm2: float = 5000.0
    stroma_density_per_mm2: float = 400.0
    host_tissue: str = "stroma"
    neuron_density_per_mm2: float = 30.0
    necroses: tuple[NecrosisRegion, ...] = ()
    necrosis_dab_od: float = 0.04
    nucleus_diameter_um: tuple[float, float] = (6.0, 12.0)
    cytoplasm_width_um: tuple[float, float] = (4.0, 6.0)
    cell_gap_um: tuple[float, float] = (0.0, 0.0)
    gap_fill: str = "stroma"
    staining: str = "nuclear_cytoplasmic"
    stroma_dab_od: float = 0.015
    class_clustering: float = 0.7
    class_bands: tuple[tuple[float, float], ...] = CLASS_BANDS
    artefacts: tuple[Artefact, ...] = ()
    hemosiderin_density_per_mm2: float = 0.0
    melanin_od: tuple[float, float] = (1.2, 2.6)
    melanin_cover: tuple[float, float] = (0.45, 0.85)
    hemosiderin_od: tuple[float, float] = (0.7, 1.6)
    hemosiderin_cover: tuple[float, float] = (0.4, 0.75)
    infiltrate_fraction: float = 0.0
    infiltrate_mix: tuple[float, float, float] = (0.5, 0.3, 0.2)

    def __post_init__(self) -> None:
        self._check_slide()
        self._check_tissue()
        self._check_cells()
        self._check_artefacts()
        self._check_pigment()
        self._check_infiltrates()

    def __repr__(self) -> str:
        """Field by field, as a dataclass's; the infiltrate fields only when infiltrates are drawn."""
        shown = [f.name for f in fields(self) if f.repr and (self.has_infiltrates or f.name not in INFILTRATE_FIELDS)]
        return f"{type(self).__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in shown)})"

    def _check_slide(self) -> None:
        """Validate the slide's size (px), pixel size (um/px), dyes, scanner (a name made a Scanner) and tiles."""
        for name in ("width", "height"):
            if int(getattr(self, name)) < 64:
                raise ValueError(f"{name} must be at least 64 px, got {getattr(self, name)!r}")
        if not 0.05 <= self.mpp_um <= 2.0:
            raise ValueError(f"mpp_um must be in 0.05-2 um/px, got {self.mpp_um!r}")
        if not isinstance(self.dyes, Dyes):
            raise ValueError(f"dyes must be a Dyes, got {type(self.dyes).__name__}")
        if isinstance(self.scanner, str):
            if self.scanner not in SCANNERS:
                raise ValueError(f"scanner must be a Scanner or one of {', '.join(SCANNERS)}, got {self.scanner!r}")
            object.__setattr__(self, "scanner", SCANNERS[self.scanner])
        if not isinstance(self.scanner, Scanner):
            raise ValueError(f"scanner must be a Scanner or a name, got {type(self.scanner).__name__}")
        if self.tile_px not in (256, 512):
            raise ValueError(f"tile_px must be 256 or 512, got {self.tile_px!r}")

    def _check_tissue(self) -> None:
        """Validate the tissue pieces, regions, necroses (distinct names) and cell densities (per mm^2)."""
        if not 0.0 <= self.tissue_fraction <= 0.9:
            raise ValueError(f"tissue_fraction must be in 0-0.9, got {self.tissue_fraction!r}")
        if self.tissue_pieces < 0:
            raise ValueError(f"tissue_pieces must be >= 0, got {self.tissue_pieces!r}")
        if not isinstance(self.regions, tuple) or not all(isinstance(r, TumourRegion) for r in self.regions):
            raise ValueError("regions must be a tuple of TumourRegion")
        if len({r.name for r in self.regions}) != len(self.regions):
            raise ValueError("regions must have distinct names")
        if self.tumour_density_per_mm2 < 0 or self.stroma_density_per_mm2 < 0:
            raise ValueError("tumour_density_per_mm2 and stroma_density_per_mm2 must be >= 0")
        if self.host_tissue not in HOST_TISSUES:
            raise ValueError(f"host_tissue must be one of {', '.join(HOST_TISSUES)}, got {self.host_tissue!r}")
        if not 0.0 <= self.neuron_density_per_mm2 <= 500.0:
            raise ValueError(f"neuron_density_per_mm2 must be in 0-500, got {self.neuron_density_per_mm2!r}")
        if not isinstance(self.necroses, tuple) or not all(isinstance(r, NecrosisRegion) for r in self.necroses):
            raise ValueError("necroses must be a tuple of NecrosisRegion")
        names = [r.name for r in self.regions] + [r.name for r in self.necroses]
        if len(set(names)) != len(names):
            raise ValueError("necroses must have names distinct from each other and from the regions")
        if not 0.0 <= self.necrosis_dab_od <= 0.3:
            raise ValueError(f"necrosis_dab_od must be in 0-0.3, got {self.necrosis_dab_od!r}")
        if self.tumour_density_per_mm2 > 12000:
            raise ValueError(f"tumour_density_per_mm2 must be <= 12000, got {self.tumour_density_per_mm2!r}")

    def _check_cells(self) -> None:
        """Validate cell geometry (um, made float pairs), staining, class bands (OD, made floats), clustering, stroma DAB."""
        for name, lo, hi in (("nucleus_diameter_um", 3.0, 16.0), ("cytoplasm_width_um", 0.5, 10.0),
                             ("cell_gap_um", 0.0, 10.0)):
            object.__setattr__(self, name, _check_range(getattr(self, name), lo, hi, name))
        if self.gap_fill not in GAP_FILLS:
            raise ValueError(f"gap_fill must be one of {', '.join(GAP_FILLS)}, got {self.gap_fill!r}")
        if self.staining not in STAININGS:
            raise ValueError(f"staining must be one of {', '.join(STAININGS)}, got {self.staining!r}")
        bands = tuple((float(lo), float(hi)) for lo, hi in self.class_bands)
        edges = (0.0, *CLASS_THRESHOLDS, 3.0)
        if len(bands) != 4 or not all(edges[k] <= lo <= hi <= edges[k + 1] for k, (lo, hi) in enumerate(bands)):
            raise ValueError(
                f"class_bands must be 4 (low, high) OD ranges inside 0-0.2-0.4-0.6-3, got {self.class_bands!r}")
        object.__setattr__(self, "class_bands", bands)
        if not 0.0 <= self.class_clustering <= 1.0:
            raise ValueError(f"class_clustering must be in 0-1, got {self.class_clustering!r}")
        if not 0.0 <= self.stroma_dab_od <= 0.1:
            raise ValueError(f"stroma_dab_od must be in 0-0.1, got {self.stroma_dab_od!r}")

    def _check_artefacts(self) -> None:
        """Validate the artefacts: known kinds, names distinct from each other and from the regions and necroses."""
        names = [r.name for r in self.regions] + [r.name for r in self.necroses]
        if not isinstance(self.artefacts, tuple) or not all(
                isinstance(a, (Fold, AirBubble, BlurPatch, PenStroke)) for a in self.artefacts):
            raise ValueError("artefacts must be a tuple of Fold, AirBubble, BlurPatch or PenStroke")
        if len({a.name for a in self.artefacts} | set(names)) != len(self.artefacts) + len(names):
            raise ValueError("artefacts must have names distinct from each other and from the regions and necroses")

    def _check_pigment(self) -> None:
        """Validate the hemosiderin density (per mm^2) and the pigment OD and cover ranges (made float pairs)."""
        if not 0.0 <= self.hemosiderin_density_per_mm2 <= 2000.0:
            raise ValueError(
                f"hemosiderin_density_per_mm2 must be in 0-2000, got {self.hemosiderin_density_per_mm2!r}")
        for name in ("melanin_od", "hemosiderin_od"):
            object.__setattr__(self, name, _check_range(getattr(self, name), 0.2, 3.0, name))
        for name in ("melanin_cover", "hemosiderin_cover"):
            object.__setattr__(self, name, _check_range(getattr(self, name), 0.01, 0.9, name))

    def _check_infiltrates(self) -> None:
        """Validate the share of infiltrating cells and their mix (made floats)."""
        if not 0.0 <= self.infiltrate_fraction <= 0.6:
            raise ValueError(f"infiltrate_fraction must be in 0-0.6, got {self.infiltrate_fraction!r}")
        mix = np.asarray(self.infiltrate_mix, dtype=np.float64)
        if mix.shape != (3,) or np.any(mix < 0) or not math.isclose(float(mix.sum()), 1.0, abs_tol=1e-6):
            raise ValueError(f"infiltrate_mix must be 3 non-negative fractions of {', '.join(INFILTRATE_TYPES)} "
                             f"summing to 1, got {self.infiltrate_mix!r}")
        object.__setattr__(self, "infiltrate_mix", tuple(float(x) for x in mix))

    @property
    def has_infiltrates(self) -> bool:
        """True when infiltrating immune cells are drawn."""
        return self.infiltrate_fraction > 0

    @property
    def has_pigment(self) -> bool:
        """True when melanin or hemosiderin is drawn."""
        return self.hemosiderin_density_per_mm2 > 0 or any(r.pigmented_fraction > 0 for r in self.regions)

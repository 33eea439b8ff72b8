"""Options of the automatic metastasis finder (:mod:`ihc_score.regions.auto`).

The ``auto_regions`` section of a scoring model; how the finder uses each
option is told in :mod:`ihc_score.regions.auto`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ihc_score.checks import require_range

__all__ = ["AutoRegionParams"]


@dataclass(frozen=True)
class AutoRegionParams:
    """Parameters of the automatic metastasis finder (model section ``auto_regions``).

    Parameters
    ----------
    grid_um : float
        Side of a grid cell, um. Sets the outline's resolution.
    min_nucleus_area_um2 : float
        Nuclei at least this large (um^2, as measured by the detector) are
        tumour-like. Glial nuclei are mostly 20-38 um^2, carcinoma and
        melanoma nuclei 40-120 um^2.
    smoothing_um : float
        Sigma of the Gaussian that turns counts into a density, um.
    otsu : bool
        Threshold the density with Otsu's method (clamped, see below);
        otherwise use ``min_density_per_mm2``.
    min_density_per_mm2, max_density_per_mm2 : float
        Bounds of the threshold on tumour-like nuclei per mm^2 of tissue.
        The lower bound keeps slides without tumour free of regions; the
        upper keeps a slide that is all tumour from being split by Otsu
        within the tumour.
    min_tissue_fraction : float
        Smoothed tissue fraction (0-1) below which the density is 0.
    min_tumour_fraction : float
        Least smoothed fraction (0-1) of tumour-like nuclei among all nuclei.
        Keeps necrosis out, whose debris (pale ghost cells among nuclear
        dust) yields some large detections among many small ones.
    close_um, open_um : float
        Radii of the discs of the morphological closing and opening, um
        (0 = none).
    max_hole_mm2 : float
        Holes in a region up to this area are filled, mm^2; larger
        (necrosis-sized) holes are left out.
    min_area_mm2 : float
        Regions smaller than this are dropped, mm^2.
    simplify_um : float
        Tolerance of the outline simplification, um (0 = none).
    """

    grid_um: float = 8.0
    min_nucleus_area_um2: float = 40.0
    smoothing_um: float = 20.0
    otsu: bool = True
    min_density_per_mm2: float = 1500.0
    max_density_per_mm2: float = 4000.0
    min_tissue_fraction: float = 0.2
    min_tumour_fraction: float = 0.5
    close_um: float = 50.0
    open_um: float = 20.0
    max_hole_mm2: float = 0.02
    min_area_mm2: float = 0.05
    simplify_um: float = 8.0

    def __post_init__(self) -> None:
        require_range("grid_um", self.grid_um, low=1.0, high=100.0, unit="um")
        require_range("min_nucleus_area_um2", self.min_nucleus_area_um2, low=0.0, unit="um^2")
        require_range("smoothing_um", self.smoothing_um, low=0.0, high=500.0, unit="um")
        if not 0.0 < self.min_density_per_mm2 <= self.max_density_per_mm2:
            raise ValueError(
                "min_density_per_mm2 must be > 0 and <= max_density_per_mm2, "
                f"got {self.min_density_per_mm2!r} and {self.max_density_per_mm2!r}"
            )
        require_range("min_tumour_fraction", self.min_tumour_fraction, low=0.0, high=1.0)
        require_range("min_tissue_fraction", self.min_tissue_fraction, low=0.0, high=1.0, low_open=True)
        for name in ("close_um", "open_um", "simplify_um"):
            require_range(name, getattr(self, name), low=0.0, high=1000.0, unit="um")
        for name in ("max_hole_mm2", "min_area_mm2"):
            require_range(name, getattr(self, name), low=0.0, unit="mm^2")

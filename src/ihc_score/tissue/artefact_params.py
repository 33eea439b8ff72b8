"""Options of the artefact detectors: folds and air bubbles on the thumbnail, focus in the tiles.

Used by :mod:`ihc_score.tissue.artefacts`, :mod:`ihc_score.tissue.bubbles` and
:mod:`ihc_score.tissue.focus`; the ``artefacts`` section of a scoring model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ihc_score.checks import require_range

__all__ = ["ArtefactParams"]


@dataclass(frozen=True)
class ArtefactParams:
    """Options of the artefact detectors (all sizes in um / um^2, OD base 10).

    Parameters
    ----------
    folds, bubbles, blur : bool
        Look for tissue folds, air bubbles, out-of-focus areas.
    fold_grid_um : float
        Folds are judged on the thumbnail averaged down to about this pixel
        size when it is finer (a small slide), so that the cells' texture
        does not dominate the references.
    fold_window_um : float
        Side of the square window of the local median reference of a fold
        (at least 2.5 times the widest fold to find).
    fold_min_elongation : float
        Length over width (minimum-area rectangle) a fold reaches: a compact
        dense metastasis smaller than the window is darker than the tissue
        around it like a fold, but round.
    fold_reach_um : float
        Distance over which the reference takes the densest local median.
    fold_min_ratio, fold_max_ratio : float
        Hematoxylin OD of a fold over its local reference: a second layer
        gives about 2 (1.5-1.9 on a thumbnail of textured tissue); above
        ``fold_max_ratio`` it is a different tissue.
    fold_grow_ratio : float
        A fold grows from pixels of ``fold_min_ratio`` into connected pixels
        whose hematoxylin ratio reaches this.
    fold_min_od : float
        Lowest OD sum (R + G + B) of a fold pixel.
    fold_min_dab_od : float
        Local DAB reference above which DAB must rise with hematoxylin.
    fold_min_dab_ratio : float
        Least DAB over its reference there (a thumbnail of dark DAB
        saturates, so less than ``fold_min_ratio``).
    fold_min_od_ratio : float
        Least OD sum over its reference (saturates too).
    fold_min_area_um2 : float
        Smallest fold.
    bubble_grid_um : float
        Pixel size the rim is looked for at: a finer thumbnail is averaged
        down to it (cell texture fades, a rim stays); a coarser one is used
        as it is.
    bubble_flank_um : float
        Distance from a rim pixel to the tissue it is compared with on each
        side (and to its neighbours along the rim); more than half the
        widest rim to find.
    bubble_min_rim_od : float
        Least OD sum by which a rim pixel (and its two neighbours along the
        rim) exceeds the darker flank, in its best direction.
    bubble_grow_rim_od : float
        A rim grows from pixels of ``bubble_min_rim_od`` into connected
        pixels that exceed their flanks by this.
    bubble_max_rim_angle_deg : float
        Largest angle between grey and a rim pixel's OD vector minus its
        darker flank's (the colour the rim adds).
    bubble_grow_rim_angle_deg : float
        The same for the pixels a rim grows into.
    bubble_min_rim_um : float
        Pieces of rim shorter than this (counted in pixels of rim) are
        specks, not rim.
    bubble_gap_um : float
        Gaps in a rim up to about this long are bridged.
    bubble_min_area_um2, bubble_max_area_um2 : float
        Area of the inside of a bubble.
    bubble_min_solidity : float
        Inside area over its convex hull's area, 0-1.
    bubble_min_rim_cover : float
        Fraction of the ring around a hole (2 px wide) that must be rim
        before gaps are bridged, 0-1.
    bubble_rim_um : float
        Rim width added around the inside.
    blur_block_um : float
        Side of a blur block.
    blur_fine_um, blur_coarse_um : float
        Scales of the fine band (grid of ``blur_fine_um / 1.5``) and of the
        coarse band (Gaussian sigmas ``blur_fine_um``-``blur_coarse_um``).
    blur_max_sharpness : float
        Fine energy over structure energy below which a judged block is out
        of focus.
    blur_relative_sharpness : float
        On a slide soft all over, a block is out of focus only below this
        fraction (0-1] of the slide's median sharpness: blur is the part of
        a scan less sharp than the rest of it, not a camera or scanner that
        is softer than others (the slide gets ``soft_focus`` instead).
    soft_focus_sharpness : float
        A slide whose median block sharpness is below this is flagged
        ``soft_focus`` (in focus, real scans measure 0.1-0.5).
    blur_min_contrast_od : float
        Standard deviation of the grey OD (smoothed at ``blur_fine_um``)
        a block needs to be judged.
    blur_tissue_od : float
        Grey OD from which a pixel counts as tissue.
    blur_min_tissue_fraction : float
        Fraction of tissue pixels a block needs to be judged, 0-1.
    """

    folds: bool = True
    bubbles: bool = True
    blur: bool = True
    fold_grid_um: float = 8.0
    fold_window_um: float = 320.0
    fold_min_elongation: float = 2.0
    fold_reach_um: float = 160.0
    fold_min_ratio: float = 1.45
    fold_grow_ratio: float = 1.25
    fold_max_ratio: float = 2.6
    fold_min_od: float = 0.15
    fold_min_dab_od: float = 0.08
    fold_min_dab_ratio: float = 1.0
    fold_min_od_ratio: float = 1.05
    fold_min_area_um2: float = 10_000.0
    bubble_grid_um: float = 4.0
    bubble_flank_um: float = 16.0
    bubble_min_rim_od: float = 0.3
    bubble_grow_rim_od: float = 0.15
    bubble_max_rim_angle_deg: float = 12.0
    bubble_grow_rim_angle_deg: float = 20.0
    bubble_min_rim_um: float = 96.0
    bubble_gap_um: float = 64.0
    bubble_min_area_um2: float = 2_000.0
    bubble_max_area_um2: float = 4_000_000.0
    bubble_min_solidity: float = 0.8
    bubble_min_rim_cover: float = 0.5
    bubble_rim_um: float = 12.0
    blur_block_um: float = 64.0
    blur_fine_um: float = 0.75
    blur_coarse_um: float = 3.0
    blur_max_sharpness: float = 0.03
    blur_relative_sharpness: float = 0.5
    soft_focus_sharpness: float = 0.06
    blur_min_contrast_od: float = 0.03
    blur_tissue_od: float = 0.04
    blur_min_tissue_fraction: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "bool" or isinstance(v, bool):
                continue
            require_range(f.name, v, low=0.0, low_open=True)
        if not 1.0 < self.fold_grow_ratio <= self.fold_min_ratio < self.fold_max_ratio:
            raise ValueError(f"fold ratios must satisfy 1 < fold_grow_ratio <= fold_min_ratio < fold_max_ratio, "
                             f"got {self.fold_grow_ratio}, {self.fold_min_ratio}, {self.fold_max_ratio}")
        if not self.bubble_min_area_um2 < self.bubble_max_area_um2:
            raise ValueError(f"bubble_min_area_um2 must be < bubble_max_area_um2, "
                             f"got {self.bubble_min_area_um2}, {self.bubble_max_area_um2}")
        if not self.blur_fine_um < self.blur_coarse_um:
            raise ValueError(f"blur_fine_um must be < blur_coarse_um, got {self.blur_fine_um}, {self.blur_coarse_um}")
        for name in ("bubble_min_solidity", "bubble_min_rim_cover", "blur_min_tissue_fraction",
                     "blur_relative_sharpness"):
            require_range(name, getattr(self, name), low=0.0, high=1.0, low_open=True)
        if not self.bubble_max_rim_angle_deg <= self.bubble_grow_rim_angle_deg < 90:
            raise ValueError(f"bubble_max_rim_angle_deg <= bubble_grow_rim_angle_deg < 90 must hold, "
                             f"got {self.bubble_max_rim_angle_deg}, {self.bubble_grow_rim_angle_deg}")
        if not self.bubble_grow_rim_od <= self.bubble_min_rim_od:
            raise ValueError(f"bubble_grow_rim_od must be <= bubble_min_rim_od, "
                             f"got {self.bubble_grow_rim_od}, {self.bubble_min_rim_od}")

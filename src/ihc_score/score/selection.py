"""Cell selection: which detected cells a region's score counts, between measurement and classes.

A detected cell is left out of every score when its centroid lies in an
excluded area (necrosis, artefacts, ``Ignore*`` shapes of the annotation
file), and it is counted but not graded when pigment (melanin,
hemosiderin) covers much of it: its brown is not DAB. Cell types (tumour
cells against immune cells) are decided here too when the model scores one
type only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ihc_score.cells import PigmentParams
from ihc_score.regions import Region, region_membership

__all__ = ["outside_exclusions", "pigmented_cells"]


def outside_exclusions(exclusions: Sequence[Region], l0_x: np.ndarray, l0_y: np.ndarray) -> np.ndarray:
    """True for each cell whose centroid (level-0 px) lies in no excluded area.

    A centroid on the outline of an excluded area counts as outside it
    (:func:`ihc_score.regions.region_membership`).
    """
    if not exclusions:
        return np.ones(len(l0_x), dtype=bool)
    return ~region_membership(exclusions, l0_x, l0_y).any(axis=0)


def pigmented_cells(pigment_fraction: np.ndarray, params: PigmentParams) -> np.ndarray:
    """True for each cell left ungraded for pigment: at least ``params.max_cell_fraction`` of its pixels.

    Parameters
    ----------
    pigment_fraction : ndarray of float32
        Per cell, the fraction (0-1) of its pixels found to be pigment.
    params : PigmentParams
        ``exclude`` False grades every cell.
    """
    if not params.exclude:
        return np.zeros(len(pigment_fraction), dtype=bool)
    return pigment_fraction >= params.max_cell_fraction

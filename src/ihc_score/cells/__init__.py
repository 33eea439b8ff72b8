"""Cells: nucleus detection, cell bodies, per-cell measurement, pigment and outlines.

:func:`detect_cells` finds nuclei on the hematoxylin OD and grows them into
cells; :class:`CellTable` holds each cell's measurements; pigment (melanin,
hemosiderin) is told from DAB; outlines are traced for QuPath and the QC
pictures. The per-pixel loops are compiled kernels (private modules),
loaded at once by :func:`warm_up`.
"""

from ihc_score.cells.body import stained_bodies
from ihc_score.cells.cell_outlines import UNITS_PER_PX, CellOutlines
from ihc_score.cells.detect import detect_cells, detect_nuclei, detection_image, expand_cells
from ihc_score.cells.detection_params import DetectionParams, tile_margin_um
from ihc_score.cells.kernels import warm_up
from ihc_score.cells.measure import CellTable, measure_cells
from ihc_score.cells.outline_rays import (
    RADIUS_STEP_UM,
    RAYS,
    codes_to_radii,
    radial_outlines,
    radial_radii,
    radii_to_codes,
)
from ihc_score.cells.outlines import trace_outlines
from ihc_score.cells.pigment import PigmentParams, cell_pigment_fraction, granule_contrast, pigment_colour, pigment_mask
from ihc_score.cells.traced_outlines import OutlineParts, Outlines, TracedOutlines

__all__ = [
    "CellTable", "measure_cells", "DetectionParams", "detection_image", "detect_nuclei", "expand_cells",
    "stained_bodies", "detect_cells", "tile_margin_um", "PigmentParams", "granule_contrast", "pigment_mask",
    "pigment_colour", "cell_pigment_fraction", "CellOutlines", "UNITS_PER_PX", "TracedOutlines", "OutlineParts",
    "Outlines", "trace_outlines", "warm_up", "RAYS", "RADIUS_STEP_UM", "radial_radii", "radii_to_codes",
    "codes_to_radii", "radial_outlines",
]

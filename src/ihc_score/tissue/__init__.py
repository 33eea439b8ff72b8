"""Tissue and what is left out of it, on a low-resolution thumbnail and per tile.

The tissue mask (background, specks and pen ink out, holes filled), tissue
folds and air bubbles, out-of-focus blocks, and the areas left out of a
slide's score (:class:`ExcludedAreas`); small mask operations shared with
region finding.
"""

from ihc_score.tissue.artefact_params import ArtefactParams
from ihc_score.tissue.artefacts import ThumbnailArtefacts, find_folds, find_thumbnail_artefacts
from ihc_score.tissue.bubbles import find_bubbles
from ihc_score.tissue.excluded import ARTEFACT_KINDS, ExcludedAreas
from ihc_score.tissue.focus import (
    BlockFocus,
    block_focus,
    blur_block_px,
    blur_threshold,
    blurred_blocks,
    slide_sharpness,
)
from ihc_score.tissue.mask import TissueMask, TissueParams, detect_pen_ink, detect_tissue, is_brightfield
from ihc_score.tissue.morphology import disc, fill_holes, hysteresis, remove_small

__all__ = [
    "disc", "remove_small", "fill_holes", "hysteresis", "TissueParams", "TissueMask", "detect_tissue",
    "detect_pen_ink", "is_brightfield", "ArtefactParams", "ThumbnailArtefacts", "find_thumbnail_artefacts",
    "find_folds", "find_bubbles", "BlockFocus", "block_focus", "blurred_blocks", "blur_block_px", "slide_sharpness",
    "blur_threshold", "ExcludedAreas", "ARTEFACT_KINDS",
]

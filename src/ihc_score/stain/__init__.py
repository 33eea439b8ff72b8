"""Stains: optical density, colour deconvolution and the slide's own stain vectors.

``OD = -log10(max(I, 1) / I0)`` per channel with ``I0`` the slide's
background (QuPath's convention); Ruifrok-Johnston H-DAB vectors by default,
the slide's own estimated from tissue (Macenko) when trustworthy; the check
that a slide is H-DAB and not H&E; a scanner's OD factor from one section
scanned on two scanners.
"""

from ihc_score.stain.deconvolution import (
    DEFAULT_STAINS,
    RUIFROK_DAB,
    RUIFROK_HEMATOXYLIN,
    StainVectors,
    angle_deg,
    channel_sum,
    compose_rgb,
    deconvolve,
    od_lut,
    optical_density,
)
from ihc_score.stain.estimate import (
    MIN_BRIGHTFIELD_BACKGROUND,
    StainEstimationParams,
    estimate_background,
    estimate_stains,
)
from ihc_score.stain.intensity import ScannerScale, scanner_scale
from ihc_score.stain.stain_type import (
    EOSIN_QUPATH,
    STAIN_KINDS,
    StainIdentity,
    StainTypeParams,
    identify_stain,
    require_dab,
)

__all__ = [
    "RUIFROK_HEMATOXYLIN", "RUIFROK_DAB", "StainVectors", "DEFAULT_STAINS", "od_lut", "optical_density",
    "deconvolve", "compose_rgb", "angle_deg", "channel_sum", "StainEstimationParams", "estimate_stains",
    "estimate_background", "MIN_BRIGHTFIELD_BACKGROUND", "EOSIN_QUPATH", "StainTypeParams", "StainIdentity",
    "STAIN_KINDS", "identify_stain", "require_dab", "ScannerScale", "scanner_scale",
]

"""Parameters of nucleus detection and cell bodies, and the tile margin they need.

:class:`DetectionParams` is the model file's ``detection`` section; every
size is in micrometres (``_um``) or square micrometres (``_um2``) and made
pixels at the point of use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ihc_score.cells._nuclei import _SPLIT_MIN_DISTANCE_UM
from ihc_score.checks import require_range

__all__ = ["BODY_SIGMA_UM", "Channel", "CellBody", "DetectionParams", "tile_margin_um"]

Channel = Literal["hematoxylin", "hematoxylin_dab"]
CellBody = Literal["stained", "expansion"]
#: Gaussian sigma (um) of the stain image a body is found on: a little
#: against JPEG and sensor noise, well below a cytoplasm's width.
BODY_SIGMA_UM = 0.5


@dataclass(frozen=True)
class DetectionParams:
    """Parameters of nucleus and cell detection (physical units).

    Defaults are QuPath's watershed cell detection defaults except where a
    measurement on the Ki67 images with ground truth chose otherwise
    (``benchmarks/ki67_accuracy.py``: deepliif bladder and lung, a breast
    field, two glioma fields, all at 0.5 um/px, one nucleus DAB cut-off of
    0.2 OD for all, stains estimated per image; "F1" is the mean
    detection F1 over the five images, "max diff" the largest
    percent-positive error in points). The changed ones say so.

    Parameters
    ----------
    channel : {"hematoxylin", "hematoxylin_dab"}
        Image the nuclei are found on. ``"hematoxylin"`` (default, as
        QuPath) is the hematoxylin OD; ``"hematoxylin_dab"`` is the sum of
        the hematoxylin and DAB OD channels. The sum finds more of the
        dark-brown Ki67-positive nuclei (recall of truth-positive nuclei
        0.82-0.90 vs 0.66-0.87 over a grid of thresholds 0.05-0.1, sigma
        1-1.5 um, split on/off) but pushes percent positive up (max diff
        7.1-13.9 points over that grid vs 4.7-10.6; with the other defaults
        F1 0.71 / max diff 8.6 vs 0.75 / 5.0): positive nuclei keep enough
        hematoxylin to be found on that channel alone, while the sum also
        picks up brown cytoplasm and debris. For S100A9, a cytoplasmic and
        nuclear marker, the sum is worse still: on a 512 x 512 um field of
        the project's synthetic S100A9 slides (946 cells, cell DAB mean
        graded 0.2 / 0.4 / 0.6) hematoxylin gave recall 1.00, precision
        0.96, class agreement 0.999 and the exact H-score (92, strong
        preset 171); the sum made "nuclei" of brown cytoplasm (precision
        0.82 / 0.67) and raised the H-score to 105 / 187. Use the sum only
        for a nuclear marker so strong that positive nuclei show no
        hematoxylin.
    background_radius_um : float
        Radius (um) of the grey opening that estimates the local background
        (QuPath: opening by reconstruction), subtracted before thresholding;
        0 disables it.
    sigma_um : float
        Gaussian smoothing sigma (um).
    threshold_od : float
        Threshold (OD) on the smoothed, background-subtracted channel.
        Default 0.07, below QuPath's 0.1: pale negative nuclei (glioma
        fields with a background near 208/255) reach only 0.07-0.1 OD; with
        0.1 they are missed and percent positive came out 10.6 points too
        high in one field (F1 0.69); 0.07 gives F1 0.75 and max diff 5.0,
        0.05 F1 0.74 and max diff 5.7.
    min_area_um2, max_area_um2 : float
        Nuclei outside these areas (um^2) are dropped.
    split_by_shape : bool
        Touching nuclei are always split at the valleys between maxima of
        the smoothed channel (QuPath's intensity watershed). With this
        option the maxima are taken on the smoothed channel times the
        distance to the background, which also splits blobs that narrow.
        Default False (QuPath: True): it lowered F1 (0.72 vs 0.75) and the
        recall of positive nuclei (0.66 vs 0.81).
    cell_body : {"stained", "expansion"}
        How a cell's extent is found. ``"stained"`` (default): the body the
        image shows, grown from the nucleus over stained pixels up to
        ``body_max_um`` (:mod:`ihc_score.cells.body`). ``"expansion"``: the
        nucleus grown by ``cell_expansion_um`` whatever the image shows
        (QuPath's cell expansion, for parity with it).
    cell_expansion_um : float
        Distance (um) by which a cell extends beyond its nucleus with
        ``cell_body="expansion"``; cells never overlap (each pixel goes to
        the nearest nucleus).
    body_max_um : float
        With ``"stained"``: farthest a body reaches beyond its nucleus, um.
    body_min_od : float
        With ``"stained"``: a pixel is stained when its hematoxylin + DAB OD
        stands this far (OD) above the local background between cells.
    body_background_um : float
        With ``"stained"``: radius (um) of the grey opening that estimates
        that local background (the gaps between cells).
    body_max_background_od : float
        With ``"stained"``: the local background is taken as at most this
        OD, so that in a sheet of touching cells, where no gap shows, a
        stained cytoplasm still counts.
    faint_pass : bool
        Search again, once the nuclei are found, for pale nuclei beside dark
        ones: next to a dark nucleus a pale one holds no maximum of its own
        and is lost to it (:mod:`ihc_score.cells._faint`). Default False, as
        QuPath; on in the shipped model. Chosen leave-one-set-out on the
        five Ki67 sets (``benchmarks/ki67_loso.py --faint``) it raises
        detection recall on every held-out set (BCData 0.64 to 0.84, the
        breast field 0.68 to 0.85) and lowers BCData's error of percent
        positive from 12.3 to 7.5 points (the breast field 1.9 worse, the
        others within 0.4); it costs about 9 % of the scoring speed.
    faint_exclusion_um : float
        The found nuclei widened by this (their blurred edge) are left out
        of the second search.
    faint_min_peak_od : float
        A nucleus of the second search peaks at this OD or more (smoothed,
        background subtracted).
    faint_min_peak_distance_um : float
        ... this far or farther from the widened nuclei (what is left of a
        dark nucleus's blurred edge peaks right against them) ...
    faint_min_fill : float
        ... and fills at least this fraction of the ellipse of its second
        moments (1 for a disk; a ring or a strip of cytoplasm far less).
    faint_max_glass_fraction : float
        ... and at most this fraction of its pixels is as pale as glass
        (hematoxylin + DAB below 0.05 OD): blurred light mixes dark brown
        with the glass of a narrow gap between cells, and the mixture
        reads partly as hematoxylin ...
    faint_min_hematoxylin_share : float
        ... and hematoxylin is at least this share of its mean hematoxylin
        + DAB OD: the same mixing leaves a little of a strongly stained
        cytoplasm in the hematoxylin channel (a fifth or less of its DAB).
    """

    channel: Channel = "hematoxylin"
    background_radius_um: float = 8.0
    sigma_um: float = 1.5
    threshold_od: float = 0.07
    min_area_um2: float = 10.0
    max_area_um2: float = 400.0
    split_by_shape: bool = False
    cell_body: CellBody = "stained"
    cell_expansion_um: float = 5.0
    body_max_um: float = 12.0
    body_min_od: float = 0.05
    body_background_um: float = 8.0
    body_max_background_od: float = 0.1
    faint_pass: bool = False
    faint_exclusion_um: float = 1.5
    faint_min_peak_od: float = 0.1
    faint_min_peak_distance_um: float = 1.0
    faint_min_fill: float = 0.8
    faint_max_glass_fraction: float = 0.1
    faint_min_hematoxylin_share: float = 0.2

    def __post_init__(self) -> None:
        if self.channel not in ("hematoxylin", "hematoxylin_dab"):
            raise ValueError(f"channel must be 'hematoxylin' or 'hematoxylin_dab', got {self.channel!r}")
        if self.cell_body not in ("stained", "expansion"):
            raise ValueError(f"cell_body must be 'stained' or 'expansion', got {self.cell_body!r}")
        for name in ("background_radius_um", "sigma_um", "cell_expansion_um", "min_area_um2", "body_max_um",
                     "body_background_um", "body_max_background_od", "faint_exclusion_um", "faint_min_peak_od",
                     "faint_min_peak_distance_um"):
            require_range(name, getattr(self, name), low=0.0)
        require_range("body_min_od", self.body_min_od, low=0.0, low_open=True)
        require_range("threshold_od", self.threshold_od, low=0.0, low_open=True)
        for name in ("faint_min_fill", "faint_max_glass_fraction", "faint_min_hematoxylin_share"):
            require_range(name, getattr(self, name), low=0.0, high=1.0)
        if not isinstance(self.faint_pass, bool):
            raise ValueError(f"faint_pass must be true or false, got {self.faint_pass!r}")
        if not np.isfinite(self.max_area_um2) or self.max_area_um2 <= self.min_area_um2:
            raise ValueError(f"max_area_um2 must be > min_area_um2, got {self.max_area_um2!r} <= {self.min_area_um2!r}")


def tile_margin_um(params: DetectionParams = DetectionParams()) -> float:
    """Context (um) a tile needs on every side for its core cells to be exact.

    A cell whose nucleus centroid lies in a tile's core is detected and
    measured exactly as in the whole image when the tile extends this far
    beyond the core on every side: the reach of the background opening
    (2 radii), of the Gaussian (4 sigma, OpenCV's kernel), of marker
    finding, the largest nucleus (diameter of a disk of ``max_area_um2``,
    doubled for elongated nuclei), the cell's reach: the expansion, or
    the body's largest reach plus that of its background opening (2 radii),
    and with ``faint_pass`` the widening of the nuclei it searches around.

    Parameters
    ----------
    params : DetectionParams

    Returns
    -------
    float
        Margin in um (100 um with the defaults, 75 um with
        ``cell_body="expansion"``).
    """
    nucleus_um = 2.0 * 2.0 * float(np.sqrt(params.max_area_um2 / np.pi))
    reach = params.cell_expansion_um
    if params.cell_body == "stained":
        reach = params.body_max_um + 2.0 * params.body_background_um + 4.0 * BODY_SIGMA_UM
    return (
        2.0 * params.background_radius_um
        + 4.0 * params.sigma_um
        + _SPLIT_MIN_DISTANCE_UM
        + nucleus_um
        + reach
        + (params.faint_exclusion_um if params.faint_pass else 0.0)
    )

"""The slide's stain vectors for planning (:func:`ihc_score.run.plan.plan_slide`): estimated from its sample pixels,
pigment's colour left out, and refused when the slide is greyscale or not H-DAB."""

from __future__ import annotations

import numpy as np

from ihc_score.cells import PigmentParams, pigment_colour
from ihc_score.errors import NotDabStainError
from ihc_score.model import Model
from ihc_score.stain import StainVectors, deconvolve, estimate_stains, require_dab
from ihc_score.tissue import TissueMask

__all__ = ["slide_stains"]

#: A tissue pixel is grey when its channels differ by at most this many
#: grey levels; an image whose tissue is grey almost everywhere has no colour
#: to tell DAB from hematoxylin.
_GREY_SPREAD = 3
_GREY_FRACTION = 0.99


def slide_stains(name: str, pixels: np.ndarray, tissue: TissueMask, model: Model, has_tiles: bool) -> StainVectors:
    """The slide's stain vectors, from the tissue pixels of the sample patches; refuses greyscale and H&E slides.

    Raises
    ------
    NotDabStainError
    """
    defaults = model.stains.defaults(tissue.background)
    stains = defaults
    if has_tiles:
        if model.stains.estimate:
            stains = estimate_stains(pixels, background=tissue.background, defaults=defaults,
                                     params=model.stains.estimation)
            if model.pigment.exclude and stains.source == "estimated":
                stains = estimate_stains(_without_pigment(pixels, stains, model.pigment), background=tissue.background,
                                         defaults=defaults, params=model.stains.estimation)
        _require_colour(pixels, name)
        require_dab(pixels, background=tissue.background, slide_name=name, hematoxylin=stains.hematoxylin)
    return stains


def _without_pigment(pixels: np.ndarray, vectors: StainVectors, params: PigmentParams) -> np.ndarray:
    """The sample's pixels but those of pigment's colour under ``vectors``.

    Melanin and hemosiderin are darker and browner than DAB; at the far end
    of the DAB side their pixels would set the DAB vector.
    """
    flat = np.asarray(pixels).reshape(-1, 3)
    return flat[~pigment_colour(deconvolve(flat[None], vectors)[0], params)]


def _require_colour(pixels: np.ndarray, name: str) -> None:
    """Refuse a greyscale image: scoring it would call every slide negative.

    Raises
    ------
    NotDabStainError
    """
    if len(pixels) == 0:
        return
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]  # not max(axis=1): slow across 3 values
    spread = np.maximum(np.maximum(r, g), b).astype(np.int16) - np.minimum(np.minimum(r, g), b)
    if np.mean(spread <= _GREY_SPREAD) >= _GREY_FRACTION:
        raise NotDabStainError(
            f"{name}: a greyscale image, so DAB cannot be told from hematoxylin; no H-score is given (scan in colour)"
        )

"""Synthetic S100A9 (H-DAB) whole-slide images with exact ground truth.

The generator is the reference the whole tool is tested against. It works in
three separate steps:

1. :func:`make_layout` (pure): tissue pieces, tumour regions (metastases) and
   every cell, with its nucleus shape, stains and designed DAB class, from a
   :class:`SynthSpec` and its seed.
2. :func:`render_region` (pure): any level-0 rectangle of the slide as stain
   concentrations and RGB (Beer-Lambert through
   :func:`ihc_score.stain.compose_rgb`), with the nucleus and cell label
   images and the designed per-cell measurements. A rectangle is rendered
   with a margin wide enough that every pixel is the same whichever
   rectangle it is rendered in, so a slide is drawn block by block.
3. :func:`make_slide` (I/O): a pyramidal, JPEG-tiled, Aperio-style SVS that
   OpenSlide opens as vendor ``aperio`` with its pixel size, and the truth
   JSON beside it (``<stem>.truth.json``).

Conventions
-----------
Coordinates are level-0 pixels (x = column, y = row). OD is base-10 against
the slide's background (the blank glass colour ``I0``). A cell is its nucleus
grown by :data:`CELL_EXPANSION_UM`, each pixel going to the nearest nucleus
(the detector's definition). Every cell's DAB amplitude is solved so that its
mean DAB OD over that cell, before optics blur, noise and JPEG, is the value
recorded in the truth; its class is that mean against :data:`CLASS_THRESHOLDS`.

Modules
-------
:mod:`.spec`
    :class:`TumourRegion`, :class:`SynthSpec`, the class constants,
    :func:`shift_stains` and the named :data:`PRESETS`.
:mod:`.layout`
    Tissue and tumour fields, textures and cell placement: :class:`Cells`,
    :class:`SlideLayout`, :func:`make_layout`.
:mod:`.render`
    :class:`RenderedRegion` and :func:`render_region`.
:mod:`.svs`
    Pyramidal JPEG SVS writing, the truth JSON, :func:`truth_path` and
    :func:`make_slide`.
"""

from __future__ import annotations

from ihc_score.synthetic.layout import Cells, SlideLayout, make_layout
from ihc_score.synthetic.render import RenderedRegion, render_region
from ihc_score.synthetic.spec import (
    CELL_EXPANSION_UM,
    CLASS_BANDS,
    CLASS_THRESHOLDS,
    GENERATOR_VERSION,
    PRESETS,
    SynthSpec,
    TumourRegion,
    preset,
    shift_stains,
)
from ihc_score.synthetic.svs import make_slide, truth_path

__all__ = [
    "GENERATOR_VERSION",
    "CLASS_THRESHOLDS",
    "CLASS_BANDS",
    "CELL_EXPANSION_UM",
    "TumourRegion",
    "SynthSpec",
    "Cells",
    "SlideLayout",
    "RenderedRegion",
    "shift_stains",
    "preset",
    "PRESETS",
    "make_layout",
    "render_region",
    "make_slide",
    "truth_path",
]

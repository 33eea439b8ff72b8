"""Synthetic S100A9 (H-DAB) whole-slide images with exact ground truth.

The generator is the reference the whole tool is tested against. It works in
three separate steps:

1. :func:`make_layout` (pure): tissue pieces, the host tissue around the
   tumour (fibrous stroma or brain parenchyma), tumour regions (metastases)
   with their outline polygons, necrotic (excluded) areas, and every cell,
   with its nucleus shape, cytoplasm width, gap to its neighbours, dyes,
   kind and designed DAB class, from a :class:`SynthSpec` and its seed.
2. :func:`render_region` (pure): any level-0 rectangle of the slide as dye
   amounts and RGB through the generator's own optics (:mod:`.optics`: dye
   OD vectors, Beer-Lambert, blur of the light and a :class:`Scanner` with
   crosstalk, tone curve, glass colour and noise), with the nucleus and cell
   body label images and the per-cell truth. A rectangle is rendered with a
   margin wide enough that every pixel is the same whichever rectangle it
   is rendered in, so a slide is drawn block by block.
3. :func:`make_slide` (I/O): a pyramidal, JPEG-tiled, Aperio-style SVS that
   OpenSlide opens as vendor ``aperio`` with its pixel size, the truth JSON
   beside it (``<stem>.truth.json``: every cell, totals per metastasis and
   each metastasis's outline) and, if asked, the outlines as QuPath GeoJSON
   annotations (``<stem>.geojson``). :func:`make_case` writes several slides
   of one spec with consecutive seeds.

Conventions
-----------
Coordinates are level-0 pixels (x = column, y = row). OD is base 10 relative
to the blank glass. A cell is what is drawn for it, its **body**: the
nucleus grown by the cell's own cytoplasm width, each pixel going to the
nearest nucleus, less half the designed gap to its neighbours (bodies never
overlap). Every cell's DAB (in its :data:`STAININGS` pattern) is scaled so
that its mean DAB amount over its body, before the scanner's blur, tone
curve, noise and JPEG, is the value recorded in the truth; its class is that
mean against the designed :data:`CLASS_THRESHOLDS` (0.2, 0.4, 0.6). Nothing
in this package uses the scorer's stain vectors, cell compartment or
scoring: the only imports from outside it are :mod:`ihc_score.errors` and,
to write annotations, :mod:`ihc_score.regions`.
Metastases are solid sheets: tumour cells lie only inside their region's
outline (necroses cut out), host cells (stroma, glia, neurons) only outside
every outline and necrosis; necroses hold only nuclear dust and ghost cells,
which are drawn but are in no truth. With ``infiltrate_fraction`` above 0,
immune cells (lymphocytes, neutrophils, macrophages) take that share of each
metastasis's cell positions; every truth row names its cell's ``type``, and
the region totals stay over the tumour cells.

Modules
-------
:mod:`.spec`
    :class:`TumourRegion`, :class:`NecrosisRegion`, :class:`SynthSpec`, the
    class constants, staining patterns and gap fills.
:mod:`.presets`
    The named :data:`PRESETS` and :func:`preset`.
:mod:`.optics`
    :class:`Dyes` (:data:`DEFAULT_DYES`, :func:`shift_dyes`),
    :class:`Scanner` (:data:`SCANNERS`), Beer-Lambert and the sensor.
:mod:`.layout`
    Tissue, tumour and necrosis fields, outlines, textures and cell
    placement: :class:`SlideLayout`, :func:`make_layout`.
:mod:`.artefacts`
    Slide artefacts (:class:`Fold`, :class:`AirBubble`, :class:`BlurPatch`,
    :class:`PenStroke`), their outlines and their drawing.
:mod:`.outlines`
    Outline polygons of metastases and necroses.
:mod:`.tissue_types`
    :class:`Cells` and the cells of each kind (tumour, stroma, glia,
    neurons, nuclear dust, ghost cells, hemosiderin-laden macrophages); the
    neuropil texture.
:mod:`.infiltrates`
    Immune cells infiltrating the metastases (lymphocytes, neutrophils with
    lobed nuclei, macrophages with kidney-shaped nuclei): their share of
    the positions, shapes, DAB pattern and truth type.
:mod:`.pigments`
    Melanin and hemosiderin: their OD vectors (power law at effective RGB
    wavelengths), the granules of pigmented cells and their drawing.
:mod:`.drawn_cells`
    Cell bodies, staining patterns, DAB amplitudes and the per-cell truth.
:mod:`.render`
    :class:`RenderedRegion` and :func:`render_region`.
:mod:`.truth`
    The truth dict and its JSON text.
:mod:`.svs`
    Pyramidal JPEG SVS writing, annotations, :func:`truth_path`,
    :func:`annotation_path`, :func:`make_slide` and :func:`make_case`.
"""

from __future__ import annotations

from ihc_score.synthetic.artefacts import AirBubble, BlurPatch, Fold, PenStroke
from ihc_score.synthetic.layout import SlideLayout, make_layout
from ihc_score.synthetic.optics import DEFAULT_DYES, SCANNERS, Dyes, Scanner, shift_dyes
from ihc_score.synthetic.pigments import HEMOSIDERIN_OD, MELANIN_OD
from ihc_score.synthetic.presets import PRESETS, preset
from ihc_score.synthetic.render import RenderedRegion, render_region
from ihc_score.synthetic.spec import (
    CLASS_BANDS,
    CLASS_THRESHOLDS,
    GAP_FILLS,
    GENERATOR_VERSION,
    HOST_TISSUES,
    PIGMENT_FIELDS,
    STAININGS,
    THRESHOLD_GUARD_OD,
    NecrosisRegion,
    SynthSpec,
    TumourRegion,
)
from ihc_score.synthetic.svs import annotation_path, make_case, make_slide, truth_path, write_annotations
from ihc_score.synthetic.tissue_types import Cells

__all__ = [
    "GENERATOR_VERSION",
    "CLASS_THRESHOLDS",
    "CLASS_BANDS",
    "THRESHOLD_GUARD_OD",
    "STAININGS",
    "GAP_FILLS",
    "Dyes",
    "DEFAULT_DYES",
    "Scanner",
    "SCANNERS",
    "TumourRegion",
    "NecrosisRegion",
    "HOST_TISSUES",
    "PIGMENT_FIELDS",
    "MELANIN_OD",
    "HEMOSIDERIN_OD",
    "SynthSpec",
    "Fold",
    "AirBubble",
    "BlurPatch",
    "PenStroke",
    "Cells",
    "SlideLayout",
    "RenderedRegion",
    "shift_dyes",
    "preset",
    "PRESETS",
    "make_layout",
    "render_region",
    "make_slide",
    "make_case",
    "write_annotations",
    "truth_path",
    "annotation_path",
]

"""Reading whole-slide images.

One :class:`Slide` interface over OpenSlide (vendor formats), tifffile (TIFF
that OpenSlide refuses) and Pillow (PNG / JPEG fields), opened by one factory,
:func:`open_slide`; :class:`TileReader` reads tiles of a slide opened from its
path, as workers do; :func:`discover_slides` finds slide files in folders.
Label, macro and thumbnail images are never read.
"""

from ihc_score.slide.base import BackendRefusal, Slide
from ihc_score.slide.discovery import (
    OUTPUT_SUBFOLDERS,
    SLIDE_EXTENSIONS,
    case_of,
    discover_slides,
    is_output_folder,
    output_stems,
)
from ihc_score.slide.factory import open_slide
from ihc_score.slide.reader import TileReader

__all__ = [
    "Slide", "BackendRefusal", "open_slide", "TileReader", "SLIDE_EXTENSIONS", "discover_slides",
    "output_stems", "case_of", "OUTPUT_SUBFOLDERS", "is_output_folder",
]

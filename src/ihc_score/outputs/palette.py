"""Colours of classes, regions and tissue, the same in every output.

Okabe-Ito colours (Okabe & Ito, "Color Universal Design", 2008), chosen so
that the four cell classes stay distinguishable with the common forms of
colour blindness. Index the class tuples with :class:`ihc_score.score.classes.CellClass`
(0 = negative ... 3 = 3+).
"""

from __future__ import annotations

__all__ = [
    "CLASS_NAMES",
    "CLASS_COLOURS_HEX",
    "CLASS_COLOURS_RGB",
    "REGION_COLOUR_HEX",
    "REGION_COLOUR_RGB",
    "TISSUE_COLOUR_HEX",
    "TISSUE_COLOUR_RGB",
    "EXCLUSION_COLOUR_HEX",
    "EXCLUSION_COLOUR_RGB",
    "PIGMENT_COLOUR_HEX",
    "PIGMENT_COLOUR_RGB",
    "LEFT_OUT_COLOUR_HEX",
    "LEFT_OUT_COLOUR_RGB",
    "hex_to_rgb",
]


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` as an ``(r, g, b)`` tuple of 0-255 ints.

    Raises
    ------
    ValueError
        Not a ``#`` followed by six hexadecimal digits.
    """
    text = colour.strip()
    if len(text) != 7 or not text.startswith("#"):
        raise ValueError(f"colour must look like '#RRGGBB', got {colour!r}")
    try:
        return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
    except ValueError as err:
        raise ValueError(f"colour must look like '#RRGGBB', got {colour!r}") from err


#: Display names of the cell classes 0-3.
CLASS_NAMES: tuple[str, ...] = ("Negative", "1+", "2+", "3+")
#: Class colours: blue, yellow, orange, vermillion.
CLASS_COLOURS_HEX: tuple[str, ...] = ("#0072B2", "#F0E442", "#E69F00", "#D55E00")
CLASS_COLOURS_RGB: tuple[tuple[int, int, int], ...] = tuple(hex_to_rgb(c) for c in CLASS_COLOURS_HEX)
#: Outline of a scored region (metastasis): bluish green.
REGION_COLOUR_HEX = "#009E73"
REGION_COLOUR_RGB = hex_to_rgb(REGION_COLOUR_HEX)
#: Outline of the tissue: grey.
TISSUE_COLOUR_HEX = "#999999"
TISSUE_COLOUR_RGB = hex_to_rgb(TISSUE_COLOUR_HEX)
#: Hatching and outline of excluded areas (necrosis, artefacts): black.
EXCLUSION_COLOUR_HEX = "#000000"
EXCLUSION_COLOUR_RGB = hex_to_rgb(EXCLUSION_COLOUR_HEX)
#: Cells left ungraded because pigment covers them: reddish purple.
PIGMENT_COLOUR_HEX = "#CC79A7"
PIGMENT_COLOUR_RGB = hex_to_rgb(PIGMENT_COLOUR_HEX)
#: Cells of a type the model does not score (immune and other cells, counted apart): sky blue.
LEFT_OUT_COLOUR_HEX = "#56B4E9"
LEFT_OUT_COLOUR_RGB = hex_to_rgb(LEFT_OUT_COLOUR_HEX)

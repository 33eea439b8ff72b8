"""Exceptions raised by ihc-score.

Every error a user can cause or meet (a bad file, a missing pixel size, a bad
scoring model) is an :class:`IhcScoreError` subclass with a one-line message
that says what to change. Builtin bases are mixed in so callers can also catch
``OSError`` or ``ValueError`` as usual.
"""

from __future__ import annotations

__all__ = [
    "IhcScoreError",
    "SlideOpenError",
    "SlideReadError",
    "MissingPixelSizeError",
    "NotBrightfieldError",
    "NotDabStainError",
    "ModelError",
    "OutputError",
    "AnnotationError",
    "ValidationInputError",
]


class IhcScoreError(Exception):
    """Base class of every error ihc-score raises on purpose."""


class SlideOpenError(IhcScoreError, OSError):
    """A file cannot be opened as a slide (unsupported, not an image, corrupt header)."""


class SlideReadError(IhcScoreError, OSError):
    """Pixel data of an opened slide cannot be decoded (corrupt tile, truncated file)."""


class MissingPixelSizeError(IhcScoreError, ValueError):
    """Neither the slide nor the command line gives the pixel size."""


class NotBrightfieldError(IhcScoreError, ValueError):
    """The slide is not a brightfield H-DAB slide (fluorescence, no DAB), so no H-score is given."""


class NotDabStainError(IhcScoreError, ValueError):
    """The slide is brightfield but not stained with DAB (H&E, a red chromogen only), so no H-score is given."""


class ModelError(IhcScoreError, ValueError):
    """A scoring model file or override is invalid."""


class OutputError(IhcScoreError, OSError):
    """The output folder cannot be written (permissions, full disk)."""


class AnnotationError(IhcScoreError, ValueError):
    """An annotation file cannot be read or its regions are unusable (empty, outside the slide)."""


class ValidationInputError(IhcScoreError, ValueError):
    """A validation command's input (results folder, reference or outcome table, history) is unusable."""

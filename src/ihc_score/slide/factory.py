"""Opening a slide: :func:`open_slide` picks the backend that reads a file.

OpenSlide first (SVS, NDPI, MRXS, SCN, BIF, Philips TIFF, DICOM, generic
tiled TIFF), then tifffile for TIFF files OpenSlide refuses, then Pillow for
plain images; every backend gives the :class:`~ihc_score.slide.base.Slide`
interface and its conventions.
"""

from __future__ import annotations

from pathlib import Path

from ihc_score.checks import require_range
from ihc_score.errors import SlideOpenError
from ihc_score.slide.base import BackendRefusal, Slide

__all__ = ["open_slide"]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _sniff(path: Path) -> str | None:
    """Return "tiff" or "dicom" from the file's magic bytes, else None."""
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError as err:
        raise SlideOpenError(f"{path.name}: cannot read the file ({err}); check permissions") from err
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    if head[128:132] == b"DICM":
        return "dicom"
    return None


def open_slide(path: str | Path, *, mpp_option_um: float | None = None) -> Slide:
    """Open a whole-slide image or a plain image with the backend that reads it.

    Parameters
    ----------
    path : str or Path
        Slide file (for MRXS, the ``.mrxs`` file).
    mpp_option_um : float, optional
        Micrometres per level-0 pixel, used only when the file stores none
        (the file's own value wins; this one is kept as ``Slide.mpp_option_um``).

    Returns
    -------
    Slide
        Close it (or use ``with``) when done.

    Raises
    ------
    SlideOpenError
        The file is missing, unsupported, not an image or has a corrupt header.
    MissingPixelSizeError
        Neither the file nor ``mpp_option_um`` gives the pixel size.
    """
    # Imported here: OpenSlide (and each backend) loads only when a slide is opened.
    from ihc_score.slide import _image_backend, _openslide_backend, _tiff_backend  # noqa: PLC0415

    p = Path(path)
    if mpp_option_um is not None:
        require_range("mpp_option_um", mpp_option_um, low=0.0, low_open=True, unit="um/px")
    if not p.is_file():
        what = "is a folder, not a slide file" if p.is_dir() else "file not found"
        raise SlideOpenError(f"{p.name}: {what} ({p}); give the path of a slide file")
    kind = _sniff(p)
    vendor = _openslide_backend.detect_vendor(p)
    reasons: list[str] = []
    if vendor is not None and not (vendor == "generic-tiff" and _tiff_backend.is_ome(p)):
        try:
            return _openslide_backend.open_openslide(p, mpp_option_um=mpp_option_um)
        except BackendRefusal as err:
            if kind != "tiff":
                raise SlideOpenError(
                    f"{p.name}: OpenSlide cannot read this {vendor} file ({err}); "
                    "re-export or convert the slide (e.g. to a tiled pyramidal TIFF)"
                ) from err
            reasons.append(f"OpenSlide: {err}")
    if kind == "tiff":
        try:
            return _tiff_backend.open_tiff(p, mpp_option_um=mpp_option_um)
        except BackendRefusal as err:
            reasons.append(f"tifffile: {err}")
            raise SlideOpenError(
                f"{p.name}: unreadable TIFF ({'; '.join(reasons)}); convert it to a tiled "
                "pyramidal TIFF (e.g. vips tiffsave --tile --pyramid --compression jpeg)"
            ) from err
    try:
        return _image_backend.open_image(p, mpp_option_um=mpp_option_um)
    except BackendRefusal as err:
        raise SlideOpenError(
            f"{p.name}: not a slide or image that OpenSlide or Pillow can read ({err}); check the "
            "file is complete and is a slide (SVS, NDPI, MRXS, SCN, BIF, TIFF, DICOM) or PNG/JPEG"
        ) from err

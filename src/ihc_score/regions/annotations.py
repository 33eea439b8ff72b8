"""Read annotation files drawn by pathologists: QuPath GeoJSON, ImageScope XML, ASAP XML.

Every reader returns :class:`Annotation` shapes in slide level-0 pixel
coordinates (x right, y down), as drawn: geometry is not yet repaired, clipped
or cut by exclusions; :func:`ihc_score.regions.geometry.build_regions` does that. The
format is detected from the content, never from the file extension.

Shapes without an area (points, lines, rulers, arrows, rings with fewer than
three distinct vertices) and QuPath objects that are not annotations
(detections, cells, tiles, TMA cores) are skipped; :func:`load_annotations`
says how many and why. Degenerate rings with three or more distinct but
collinear vertices are kept and rejected by ``build_regions`` (no area).

Format rules
------------
QuPath GeoJSON
    FeatureCollection, bare list of Features, one Feature or a bare geometry.
    Object type from ``properties.objectType`` (0.4+), ``object_type`` or the
    older Feature ``id`` (``PathAnnotationObject``, ``PathDetectionObject``,
    ...). Class from ``classification.name``, ``classification.names``
    (joined with ``": "``) or a plain string. Polygon, MultiPolygon (holes
    kept) and the areal members of a GeometryCollection.
Aperio ImageScope XML
    Each ``Annotation`` is a layer; its ``Name`` (or an Attribute named
    ``Classification``/``Class``) is the class. Each ``Region`` is a shape
    named by its ``Text``, else by the layer name; Regions of one layer with
    the same non-empty ``Text`` form one shape. ``NegativeROA="1"`` regions
    are holes cut out of the shapes of their layer. ``Type="1"`` rectangles
    and ``Type="2"`` ellipses stored as two bounding-box corners become a
    rectangle and a 64-vertex polygon.
ASAP XML
    Each ``Annotation`` is one ring (vertices sorted by ``Order``; ``Spline``
    outlines are taken through their control points); ``PartOfGroup`` is the
    class (``None`` = no class). Annotations with the same ``Name`` and group
    form one shape. Group ``_2`` (CAMELYON16's non-tumour areas drawn inside
    tumour outlines) and groups matching :data:`EXCLUDED_CLASSES` (e.g.
    ``Exclusion``) are exclusions. ``Dot`` and ``PointSet`` are skipped.

Files are untrusted input: they are capped at :data:`MAX_FILE_BYTES` and
:data:`MAX_VERTICES`, XML with a DOCTYPE or ENTITY declaration is refused
(entity expansion, "billion laughs"), and every failure is an
:class:`~ihc_score.errors.AnnotationError` with a one-line message naming the
file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ihc_score.errors import AnnotationError
from ihc_score.regions._parsers import RawShape, Reader, parse_xml
from ihc_score.regions.geometry import Annotation, is_excluded

__all__ = [
    "ANNOTATION_SUFFIXES",
    "MAX_FILE_BYTES",
    "AnnotationFile",
    "find_annotation_file",
    "load_annotations",
    "read_annotations",
]

#: Largest annotation file read, in bytes.
MAX_FILE_BYTES = 200 * 1024 * 1024



@dataclass(frozen=True)
class AnnotationFile:
    """What one annotation file held.

    Attributes
    ----------
    path : Path
    format : str
        ``"qupath-geojson"``, ``"imagescope-xml"`` or ``"asap-xml"``.
    annotations : tuple of Annotation
        Areal shapes, in file order.
    skipped : tuple of str
        One line per reason, naming the first object skipped for it, e.g.
        ``"feature 4: detection object"`` or
        ``"feature 4 and 1200 more: detection object"``.
    n_skipped : int
        Number of objects skipped.
    """

    path: Path
    format: str
    annotations: tuple[Annotation, ...]
    skipped: tuple[str, ...] = ()
    n_skipped: int = 0


def read_annotations(path: str | Path) -> list[Annotation]:
    """Areal annotations of a QuPath GeoJSON, ImageScope XML or ASAP XML file.

    See :func:`load_annotations`; this returns only its ``annotations``.
    """
    return list(load_annotations(path).annotations)


def load_annotations(path: str | Path) -> AnnotationFile:
    """Read an annotation file; its format is detected from the content.

    Parameters
    ----------
    path : str or Path
        A QuPath GeoJSON export (FeatureCollection, list of Features, one
        Feature or a bare Polygon/MultiPolygon), an Aperio ImageScope XML file
        or an ASAP XML file. Coordinates are level-0 pixels.

    Returns
    -------
    AnnotationFile
        The shapes and the list of skipped objects. A file without any areal
        shape gives an empty ``annotations``.

    Raises
    ------
    AnnotationError
        Unreadable, empty, larger than :data:`MAX_FILE_BYTES`, not JSON/XML,
        not one of the formats, a DOCTYPE/ENTITY declaration, malformed
        coordinates, more than :data:`MAX_VERTICES` vertices.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise AnnotationError(f"{path}: annotation file is {size} bytes, more than {MAX_FILE_BYTES}; simplify it")
        data = path.read_bytes()
    except OSError as err:
        raise AnnotationError(f"{path}: cannot read annotation file: {err.strerror or err}") from err
    text = _decode(path, data)
    head = text.lstrip()[:1]
    reader = Reader(path)
    if head in ("{", "["):
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as err:
            raise AnnotationError(f"{path}: not valid JSON ({err}); export the annotations again") from err
        fmt, shapes = "qupath-geojson", reader.geojson(doc)
    elif head == "<":
        root = parse_xml(path, text)
        if root.tag == "Annotations":
            fmt, shapes = "imagescope-xml", reader.imagescope(root)
        elif root.tag == "ASAP_Annotations":
            fmt, shapes = "asap-xml", reader.asap(root)
        else:
            raise AnnotationError(
                f"{path}: XML root <{root.tag}> is neither ImageScope <Annotations> nor <ASAP_Annotations>"
            )
    else:
        raise AnnotationError(f"{path}: neither JSON nor XML; give a QuPath GeoJSON, ImageScope or ASAP XML file")
    skipped = tuple(f"{where}: {why}" if n == 1 else f"{where} and {n - 1} more: {why}"
                    for why, (n, where) in reader.skips.items())
    n_skipped = sum(n for n, _ in reader.skips.values())
    return AnnotationFile(path, fmt, tuple(_finish(shapes)), skipped, n_skipped)


def _decode(path: Path, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not UTF-8 or UTF-16 text; save the annotations as UTF-8") from err
    if not text.strip():
        raise AnnotationError(f"{path}: annotation file is empty")
    return text


def _finish(shapes: Iterable[RawShape]) -> list[Annotation]:
    """Annotations from raw shapes: default names (class, else ``region-<n>``) and exclusion."""
    out = []
    for n, (name, cls, geom, excluded, flags) in enumerate(shapes, start=1):
        name = name or cls or f"region-{n}"
        if excluded is None:
            excluded = is_excluded(cls, name)
        out.append(Annotation(name, cls, geom, excluded, flags))
    return out


#: Annotation file suffixes looked for beside a slide, in order of preference.
ANNOTATION_SUFFIXES = (".geojson", ".json", ".xml")


def find_annotation_file(slide: str | Path, annotations_dir: str | Path | None = None) -> Path | None:
    """The annotation file of a slide, or None.

    Looks in ``annotations_dir`` (when given), then beside the slide, for the
    slide's stem or full name followed by one of :data:`ANNOTATION_SUFFIXES`:
    for ``case1.svs``, ``case1.geojson``, ``case1.json``, ``case1.xml``, then
    ``case1.svs.geojson``, ... The first that exists is returned.
    """
    slide = Path(slide)
    folders = ([Path(annotations_dir)] if annotations_dir is not None else []) + [slide.parent]
    for folder in folders:
        for base in dict.fromkeys((slide.stem, slide.name)):
            for suffix in ANNOTATION_SUFFIXES:
                candidate = folder / f"{base}{suffix}"
                if candidate.is_file() and candidate != slide:
                    return candidate
    return None

"""Write regions as QuPath GeoJSON, Aperio ImageScope XML and ASAP XML.

Each writer takes regions (or annotations: anything with ``name``,
``classification`` and a level-0 ``geometry``) and, as ``excluded``, shapes to
be read back as exclusions. Output is deterministic (the same shapes give the
same bytes) and written atomically. Coordinates are level-0 pixels, written as
the shortest decimal that reads back to the same float, so
:func:`ihc_score.regions.annotations.read_annotations` returns the same geometry.

An excluded shape whose name and class do not mark it as excluded (see
:data:`~ihc_score.regions.geometry.EXCLUDED_CLASSES`) is written with QuPath's
class ``Ignore*``, so any reader leaves it out.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from shapely.geometry import MultiPolygon, Polygon, mapping

from ihc_score.fileio import atomic_write
from ihc_score.regions.geometry import is_excluded

__all__ = ["geojson_bytes", "imagescope_xml_bytes", "asap_xml_bytes", "write_geojson", "write_imagescope_xml",
           "write_asap_xml", "class_color"]

#: Colours (RGB) of QuPath's built-in classes; other classes get a colour derived from their name.
QUPATH_COLORS = {
    "tumor": (200, 0, 0), "stroma": (150, 200, 150), "immune cells": (160, 90, 160), "necrosis": (50, 50, 50),
    "other": (255, 200, 0), "region*": (0, 0, 180), "ignore*": (180, 180, 180), "positive": (200, 50, 50),
    "negative": (112, 112, 225),
}
_UNCLASSIFIED = (0, 200, 0)
_ID_NAMESPACE = uuid.UUID("6f0d3c52-3f4e-5a86-9a43-7b1b2f0c9e11")
#: ASAP group that marks holes (CAMELYON16 convention: non-tumour areas inside an outline).
ASAP_HOLE_GROUP = "_2"


class Shape(Protocol):
    """What the writers need of a region or an annotation (read-only attributes)."""

    @property
    def name(self) -> str: ...

    @property
    def classification(self) -> str: ...

    @property
    def geometry(self) -> Polygon | MultiPolygon: ...


def class_color(classification: str) -> tuple[int, int, int]:
    """RGB colour of a class: QuPath's for its built-in classes, else stable from the name."""
    key = classification.strip().lower()
    if not key:
        return _UNCLASSIFIED
    if key in QUPATH_COLORS:
        return QUPATH_COLORS[key]
    digest = hashlib.sha256(key.encode()).digest()
    return (64 + digest[0] % 160, 64 + digest[1] % 160, 64 + digest[2] % 160)


def _items(regions: Sequence[Shape], excluded: Sequence[Shape]) -> Iterator[tuple[str, str, Polygon | MultiPolygon]]:
    for r in regions:
        yield r.name, r.classification, r.geometry
    for e in excluded:
        cls = e.classification if is_excluded(e.classification, e.name) else "Ignore*"
        yield e.name, cls, e.geometry


def _polygons(geom: Polygon | MultiPolygon) -> list[Polygon]:
    return list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]


def _num(v: float) -> str:
    return repr(float(v))


def geojson_bytes(regions: Sequence[Shape], *, excluded: Sequence[Shape] = ()) -> bytes:
    """QuPath-importable GeoJSON FeatureCollection of the shapes (UTF-8 bytes)."""
    features = []
    for i, (name, cls, geom) in enumerate(_items(regions, excluded)):
        seed = f"{i}\0{name}\0{cls}\0{geom.wkb_hex}"
        props: dict[str, Any] = {"objectType": "annotation", "name": name}
        if cls:
            props["classification"] = {"name": cls, "color": list(class_color(cls))}
        props["isLocked"] = False
        features.append({
            "type": "Feature",
            "id": str(uuid.uuid5(_ID_NAMESPACE, seed)),
            "geometry": mapping(geom),
            "properties": props,
        })
    doc = {"type": "FeatureCollection", "features": features}
    return (json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def imagescope_xml_bytes(regions: Sequence[Shape], *, excluded: Sequence[Shape] = ()) -> bytes:
    """Aperio ImageScope XML: one annotation layer per shape, named by its class.

    Each polygon of a shape is a ``Region`` whose ``Text`` is the shape's
    name; each hole is a ``NegativeROA="1"`` region of the same layer.
    ``LineColor`` is the class colour packed as ``R + 256 G + 65536 B``.
    """
    root = ET.Element("Annotations")
    for a, (name, cls, geom) in enumerate(_items(regions, excluded), start=1):
        r, g, b = class_color(cls)
        layer = ET.SubElement(root, "Annotation", {
            "Id": str(a), "Name": cls, "ReadOnly": "0", "NameReadOnly": "0", "LineColorReadOnly": "0",
            "Incremental": "0", "Type": "4", "LineColor": str(r + 256 * g + 65536 * b), "Visible": "1",
            "Selected": "0", "MarkupImagePath": "", "MacroName": "",
        })
        attrs = ET.SubElement(layer, "Attributes")
        ET.SubElement(attrs, "Attribute", {"Name": "Description", "Id": "0", "Value": ""})
        regions_el = ET.SubElement(layer, "Regions")
        rid = 0
        for poly in _polygons(geom):
            for ring, negative in [(poly.exterior, "0")] + [(h, "1") for h in poly.interiors]:
                rid += 1
                region = ET.SubElement(regions_el, "Region", {
                    "Id": str(rid), "Type": "0", "Zoom": "1", "Selected": "0", "ImageLocation": "",
                    "ImageFocus": "-1", "Length": _num(ring.length), "Area": _num(Polygon(ring).area),
                    "Text": name, "NegativeROA": negative, "InputRegionId": "0", "Analyze": "1",
                    "DisplayId": str(rid),
                })
                ET.SubElement(region, "Attributes")
                vertices = ET.SubElement(region, "Vertices")
                for x, y in list(ring.coords)[:-1]:
                    ET.SubElement(vertices, "Vertex", {"X": _num(x), "Y": _num(y), "Z": "0"})
        ET.SubElement(layer, "Plots")
    return _xml_bytes(root)


def asap_xml_bytes(regions: Sequence[Shape], *, excluded: Sequence[Shape] = ()) -> bytes:
    """ASAP XML: one ``Polygon`` annotation per polygon, ``PartOfGroup`` = class.

    ASAP has no holes: a region's hole is written as an annotation named
    ``<name> hole <k>`` in group ``_2`` (CAMELYON16's exclusion group), which
    the reader treats as an exclusion, so it is cut out of every region it
    overlaps. Holes of excluded shapes cannot be written and are dropped.
    """
    root = ET.Element("ASAP_Annotations")
    anns = ET.SubElement(root, "Annotations")
    groups: dict[str, tuple[int, int, int]] = {}
    n_regions = len(regions)

    def add(name: str, group: str, ring: Any) -> None:
        color = class_color(group if group != ASAP_HOLE_GROUP else "ignore*")
        groups.setdefault(group, color)
        ann = ET.SubElement(anns, "Annotation", {
            "Name": name, "Type": "Polygon", "PartOfGroup": group or "None", "Color": "#%02X%02X%02X" % color,
        })
        coords = ET.SubElement(ann, "Coordinates")
        for k, (x, y) in enumerate(list(ring.coords)[:-1]):
            ET.SubElement(coords, "Coordinate", {"Order": str(k), "X": _num(x), "Y": _num(y)})

    for i, (name, cls, geom) in enumerate(_items(regions, excluded)):
        n_holes = 0
        for poly in _polygons(geom):
            add(name, cls, poly.exterior)
            for hole in poly.interiors if i < n_regions else ():
                n_holes += 1
                add(f"{name} hole {n_holes}", ASAP_HOLE_GROUP, hole)
    groups_el = ET.SubElement(root, "AnnotationGroups")
    for group, color in groups.items():
        if group:
            attrs = {"Name": group, "PartOfGroup": "None", "Color": "#%02X%02X%02X" % color}
            ET.SubElement(ET.SubElement(groups_el, "Group", attrs), "Attributes")
    return _xml_bytes(root)


def _write(path: str | Path, data: bytes) -> None:

    atomic_write(Path(path), data)


def write_geojson(path: str | Path, regions: Sequence[Shape], *, excluded: Sequence[Shape] = ()) -> None:
    """Write :func:`geojson_bytes` to ``path`` atomically (:class:`~ihc_score.errors.OutputError` on failure)."""
    _write(path, geojson_bytes(regions, excluded=excluded))


def write_imagescope_xml(path: str | Path, regions: Sequence[Shape], *, excluded: Sequence[Shape] = ()) -> None:
    """Write :func:`imagescope_xml_bytes` to ``path`` atomically."""
    _write(path, imagescope_xml_bytes(regions, excluded=excluded))


def write_asap_xml(path: str | Path, regions: Sequence[Shape], *, excluded: Sequence[Shape] = ()) -> None:
    """Write :func:`asap_xml_bytes` to ``path`` atomically."""
    _write(path, asap_xml_bytes(regions, excluded=excluded))

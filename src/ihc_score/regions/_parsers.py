"""Parsers behind :mod:`ihc_score.regions.annotations`: file content to raw shapes.

Each format parser returns ``(name, classification, geometry, excluded,
flags)`` tuples; names may be empty and ``excluded`` None (decided from the
class by the caller). Coordinates are level-0 pixels. Objects without an area
are counted by reason; malformed content raises
:class:`~ihc_score.errors.AnnotationError` naming the file and the object.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon, box

from ihc_score.errors import AnnotationError
from ihc_score.regions.geometry import Areal, _areal_of, make_areal

__all__ = ["MAX_VERTICES", "RawShape", "Reader", "parse_xml"]

#: Largest number of vertices read from one file.
MAX_VERTICES = 10_000_000
#: Vertices of the polygon that stands for an ImageScope ellipse.
_ELLIPSE_VERTICES = 64
#: QuPath object types that are not annotations (skipped).
_NOT_ANNOTATION = {"detection", "cell", "tile", "tma_core", "tmacore"}
_QUPATH_IDS = {"PathDetectionObject": "detection", "PathCellObject": "cell", "PathTileObject": "tile",
               "TMACoreObject": "tma_core", "PathAnnotationObject": "annotation"}
#: ASAP groups that mark exclusions (CAMELYON16: ``_2`` = non-tumour area inside a tumour outline).
_ASAP_EXCLUSION_GROUPS = {"_2"}


def parse_xml(path: Path, text: str) -> ET.Element:
    """Root element of an XML document; DOCTYPE and ENTITY declarations are refused (entity expansion)."""
    if re.search(r"<!\s*(DOCTYPE|ENTITY)", text, flags=re.IGNORECASE):
        raise AnnotationError(f"{path}: XML with DOCTYPE/ENTITY declarations is refused; remove them")
    try:
        return ET.fromstring(text)
    except ET.ParseError as err:
        raise AnnotationError(f"{path}: malformed XML ({err})") from err


# A shape before naming: (name or "", classification, geometry, excluded or None, flags)
RawShape = tuple[str, str, Areal, "bool | None", tuple[str, ...]]


class Reader:
    """Parsing state of one file: skipped objects and the vertex budget."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.skips: dict[str, tuple[int, str]] = {}  # reason -> (count, first object)
        self.n_vertices = 0

    def skip(self, where: str, why: str) -> None:
        n, first = self.skips.get(why, (0, where))
        self.skips[why] = (n + 1, first)

    def fail(self, where: str, what: str) -> AnnotationError:
        return AnnotationError(f"{self.path}: {where}: {what}")


    def ring(self, coords: Any, where: str) -> np.ndarray | None:
        """(n, 2) float64 vertices, or None (and a skip note) when fewer than 3 distinct."""
        try:
            xy = np.asarray(coords, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise self.fail(where, "coordinates are not lists of numbers") from err
        if xy.ndim != 2 or xy.shape[1] < 2:
            raise self.fail(where, "coordinates are not [x, y] pairs")
        xy = xy[:, :2]
        self.n_vertices += len(xy)
        if self.n_vertices > MAX_VERTICES:
            raise self.fail(where, f"more than {MAX_VERTICES} vertices; simplify the annotations")
        if not np.isfinite(xy).all():
            raise self.fail(where, "non-finite coordinate (NaN or infinity)")
        if len(np.unique(xy, axis=0)) < 3:
            self.skip(where, "fewer than 3 distinct vertices")
            return None
        return xy

    def polygon(self, rings: Any, where: str) -> Polygon | None:
        if not isinstance(rings, list) or not rings:
            raise self.fail(where, "Polygon coordinates must be a list of rings")
        shell = self.ring(rings[0], where)
        if shell is None:
            return None
        holes = [h for h in (self.ring(r, f"{where} hole") for r in rings[1:]) if h is not None]
        return Polygon(shell, holes)

    def xml_points(self, elements: list[ET.Element], where: str, message: str) -> np.ndarray:
        """(n, 2) float64 array of the X and Y attributes of XML elements."""
        pts = [(e.get("X"), e.get("Y")) for e in elements]
        try:
            if any(v is None for p in pts for v in p):
                raise ValueError(message)
            return np.array(pts, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError) as err:
            raise self.fail(where, message) from err

    # -- QuPath GeoJSON ---------------------------------------------------------------------------
    def geojson(self, doc: Any) -> list[RawShape]:
        if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
            features = doc.get("features")
            if not isinstance(features, list):
                raise self.fail("FeatureCollection", "'features' is not a list")
        elif isinstance(doc, list):
            features = doc
        elif isinstance(doc, dict) and doc.get("type") == "Feature":
            features = [doc]
        elif isinstance(doc, dict) and doc.get("type") in ("Polygon", "MultiPolygon", "GeometryCollection"):
            features = [{"type": "Feature", "geometry": doc, "properties": {}}]
        else:
            raise AnnotationError(
                f"{self.path}: JSON is not GeoJSON (no FeatureCollection, Feature or list of Features)"
            )
        out = []
        for i, feature in enumerate(features, start=1):
            where = f"feature {i}"
            if not isinstance(feature, dict) or feature.get("type") != "Feature":
                raise self.fail(where, "not a GeoJSON Feature")
            props = feature.get("properties") or {}
            if not isinstance(props, dict):
                raise self.fail(where, "'properties' is not an object")
            kind = str(props.get("objectType", props.get("object_type", _QUPATH_IDS.get(str(feature.get("id")), ""))))
            if kind.lower() in _NOT_ANNOTATION:
                self.skip(where, f"{kind} object")
                continue
            geom = self.geojson_geometry(feature.get("geometry"), where)
            if geom is None:
                continue
            name = props.get("name")
            out.append((str(name).strip() if name else "", _qupath_class(props.get("classification")), geom, None, ()))
        return out

    def geojson_geometry(self, geometry: Any, where: str) -> Areal | None:
        if not isinstance(geometry, dict) or "type" not in geometry:
            raise self.fail(where, "missing 'geometry'")
        kind = geometry["type"]
        if kind == "GeometryCollection":
            parts = [self.geojson_geometry(g, where) for g in geometry.get("geometries") or []]
            polys = [p for part in parts if part is not None for p in getattr(part, "geoms", [part])]
            if not polys:
                self.skip(where, "GeometryCollection without area")
            return _areal_of(polys)
        if kind not in ("Polygon", "MultiPolygon"):
            self.skip(where, f"{kind} has no area")
            return None
        coords = geometry.get("coordinates")
        if kind == "Polygon":
            return self.polygon(coords, where)
        if not isinstance(coords, list):
            raise self.fail(where, "MultiPolygon coordinates must be a list of polygons")
        return _areal_of([p for p in (self.polygon(c, where) for c in coords) if p is not None])

    # -- Aperio ImageScope XML --------------------------------------------------------------------
    def imagescope(self, root: ET.Element) -> list[RawShape]:
        out: list[RawShape] = []
        for a, layer in enumerate(root.iter("Annotation"), start=1):
            layer_name = (layer.get("Name") or "").strip()
            cls = layer_name
            for attr in layer.findall("Attributes/Attribute"):
                if (attr.get("Name") or "").strip().lower() in ("classification", "class") and attr.get("Value"):
                    cls = attr.get("Value", "").strip()
            positive: dict[str, list[Polygon]] = {}  # key: Text, or a per-region key when it is empty
            negative: list[Polygon] = []
            for r, region in enumerate(layer.findall("Regions/Region"), start=1):
                where = f"Annotation {a} Region {region.get('Id') or r}"
                xy = self.xml_points(region.findall("Vertices/Vertex"), where, "Vertex without numeric X and Y")
                kind = region.get("Type", "0")
                if kind in ("1", "2") and len(np.unique(xy, axis=0)) == 2:
                    xy = _box_or_ellipse(xy, ellipse=kind == "2")
                ring = self.ring(xy, where)
                if ring is None:
                    continue
                if region.get("NegativeROA", "0").strip() == "1":
                    negative.append(Polygon(ring))
                    continue
                text = (region.get("Text") or "").strip()
                positive.setdefault(text if text else f"\0{r}", []).append(Polygon(ring))
            for key, polys in positive.items():
                geom, flags = _areal_of(polys), ()
                if negative:
                    geom, flags = _difference(geom, negative)
                if geom is None:
                    self.skip(f"Annotation {a}", "region entirely inside its negative regions")
                    continue
                name = key if not key.startswith("\0") else layer_name
                out.append((name, cls, geom, None, flags))
        return out

    # -- ASAP XML ---------------------------------------------------------------------------------
    def asap(self, root: ET.Element) -> list[RawShape]:
        groups: dict[tuple[str, str], list[Polygon]] = {}
        for i, ann in enumerate(root.iter("Annotation"), start=1):
            name = (ann.get("Name") or "").strip()
            where = f"Annotation {i} ({name})" if name else f"Annotation {i}"
            if (ann.get("Type") or "Polygon") in ("Dot", "PointSet", "Measure", "Point"):
                self.skip(where, f"{ann.get('Type')} has no area")
                continue
            coords = ann.findall("Coordinates/Coordinate")
            message = "Coordinate without numeric Order, X and Y"
            try:
                order = [float(c.get("Order", k)) for k, c in enumerate(coords)]
            except ValueError as err:
                raise self.fail(where, message) from err
            xy = self.xml_points(coords, where, message)
            ring = self.ring(xy[np.argsort(order, kind="stable")], where)
            if ring is None:
                continue
            group = (ann.get("PartOfGroup") or "").strip()
            group = "" if group == "None" else group
            groups.setdefault((name or f"\0{i}", group), []).append(Polygon(ring))
        out: list[RawShape] = []
        for (name, group), polys in groups.items():
            excluded = True if group.lower() in _ASAP_EXCLUSION_GROUPS else None
            out.append(("" if name.startswith("\0") else name, group, _areal_of(polys), excluded, ()))
        return out


def _qupath_class(value: Any) -> str:
    """Class name from QuPath's ``classification``: object with name/names, or a plain string."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        if isinstance(value.get("name"), str):
            return value["name"].strip()
        if isinstance(value.get("names"), list):
            return ": ".join(str(n).strip() for n in value["names"])
    return ""


def _difference(geom: Areal, holes: list[Polygon]) -> tuple[Areal | None, tuple[str, ...]]:
    flags: tuple[str, ...] = ()
    if not (geom.is_valid and all(h.is_valid for h in holes)):
        flags = ("repaired_geometry",)
        geom = make_areal(geom) or Polygon()
        holes = [h for h in (make_areal(h) for h in holes) if h is not None]
    holes = [h for h in holes if h.intersects(geom)]
    if not holes:
        return geom if not geom.is_empty else None, flags
    cut = shapely.difference(geom, shapely.union_all(holes)) if holes else geom
    return make_areal(cut) if not cut.is_empty else None, flags


def _box_or_ellipse(xy: np.ndarray, *, ellipse: bool) -> np.ndarray:
    """ImageScope rectangles/ellipses stored as two bounding-box corners, as a polygon ring."""
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    if not ellipse:
        return np.asarray(box(x0, y0, x1, y1).exterior.coords)[:-1]
    t = np.linspace(0.0, 2.0 * math.pi, _ELLIPSE_VERTICES, endpoint=False)
    return np.column_stack([(x0 + x1) / 2 + (x1 - x0) / 2 * np.cos(t), (y0 + y1) / 2 + (y1 - y0) / 2 * np.sin(t)])

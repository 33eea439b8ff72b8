"""Annotation files in and out, region geometry, cell membership."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, Polygon, box

from ihc_score.errors import AnnotationError
from ihc_score.regions import (
    EXCLUDED_CLASSES,
    Annotation,
    Region,
    build_regions,
    find_annotation_file,
    is_excluded,
    load_annotations,
    read_annotations,
    region_membership,
    write_asap_xml,
    write_geojson,
    write_imagescope_xml,
)
from ihc_score.regions import _parsers as _annotation_parsers
from ihc_score.regions import annotations as annotations_io

SLIDE = (10_000, 8_000)
WRITERS = {"geojson": write_geojson, "imagescope": write_imagescope_xml, "asap": write_asap_xml}
FORMATS = {"geojson": "qupath-geojson", "imagescope": "imagescope-xml", "asap": "asap-xml"}


def _file(tmp_path: Path, text: str | bytes, name: str = "a.dat") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _same(a, b) -> bool:
    return a.symmetric_difference(b).area < 1e-6 and abs(a.area - b.area) < 1e-6


def _regions() -> tuple[tuple[Region, ...], list[Annotation]]:
    """Tumour with a hole, a two-part metastasis with a hole in one part, a concave one, necrosis inside the first."""
    anns = [
        Annotation("Met 1", "Tumor", Polygon([(100.5, 100.25), (1100.125, 100.5), (1100.75, 1100.0), (100.0, 1100.5)],
                                             [[(200, 200), (300, 200), (300, 300), (200, 300)]])),
        Annotation("Met 2", "Tumor", MultiPolygon([
            Polygon([(2000, 2000), (3000, 2000), (3000, 3000), (2000, 3000)],
                    [[(2100, 2100), (2200, 2100), (2200, 2200)]]),
            box(4000, 4000, 4500, 4600.333333333333),
        ])),
        Annotation("L-shape", "Metastasis", Polygon([(6000, 6000), (7000, 6000), (7000, 6500), (6500, 6500),
                                                     (6500, 7000), (6000, 7000)])),
        Annotation("Necrosis 1", "Necrosis", box(500, 500, 700, 800), excluded=True),
    ]
    return build_regions(anns, slide_size=SLIDE), [anns[3]]


# -- round trips ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", list(WRITERS))
def test_round_trip_keeps_geometry_names_classes_and_exclusions(tmp_path, fmt):
    regions, excluded = _regions()
    assert regions[0].flags == ("exclusions_cut",)
    path = tmp_path / f"out.{fmt}"
    WRITERS[fmt](path, regions, excluded=excluded)
    loaded = load_annotations(path)
    assert loaded.format == FORMATS[fmt]
    back = build_regions(loaded.annotations, slide_size=SLIDE)
    assert [r.name for r in back] == ["Met 1", "Met 2", "L-shape"]
    assert [r.classification for r in back] == ["Tumor", "Tumor", "Metastasis"]
    for r, o in zip(back, regions):
        assert _same(r.geometry, o.geometry), r.name
    nec = [a for a in loaded.annotations if a.name == "Necrosis 1"]
    assert len(nec) == 1 and nec[0].excluded and nec[0].classification == "Necrosis"
    assert _same(nec[0].geometry, excluded[0].geometry)
    # the hole of Met 1 and the necrosis cut are both absent from the region: 1000x1000 - 100x100 - 200x300
    assert back[0].geometry.area == pytest.approx(1000.375 * 1000.0 - 100 * 100 - 200 * 300, rel=1e-3)


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_writers_are_deterministic_and_exact(tmp_path, fmt):
    regions, excluded = _regions()
    WRITERS[fmt](tmp_path / "a", regions, excluded=excluded)
    WRITERS[fmt](tmp_path / "b", regions, excluded=excluded)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    if fmt != "asap":  # ASAP has no holes: they come back as exclusion shapes, checked above
        back = read_annotations(tmp_path / "a")
        assert shapely.equals_exact(shapely.normalize(back[2].geometry), shapely.normalize(regions[2].geometry), 1e-6)


def test_geojson_output_has_qupath_fields(tmp_path):
    regions, excluded = _regions()
    write_geojson(tmp_path / "r.geojson", regions, excluded=excluded)
    doc = json.loads((tmp_path / "r.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 4
    f = doc["features"][0]
    assert f["type"] == "Feature" and len(f["id"]) == 36 and f["id"].count("-") == 4
    assert f["properties"] == {"objectType": "annotation", "name": "Met 1",
                               "classification": {"name": "Tumor", "color": [200, 0, 0]}, "isLocked": False}
    assert len({g["id"] for g in doc["features"]}) == 4


def test_excluded_shape_without_exclusion_class_is_written_as_ignore(tmp_path):
    regions, _ = _regions()
    odd = Annotation("bubble", "Debris", box(10, 10, 20, 20), excluded=True)
    write_geojson(tmp_path / "r.geojson", regions, excluded=[odd])
    back = read_annotations(tmp_path / "r.geojson")
    assert back[-1].classification == "Ignore*" and back[-1].excluded


# -- files as the tools write them -------------------------------------------------------------------

QUPATH_04 = """{
  "type": "FeatureCollection",
  "features": [
    {"type": "Feature", "id": "0b7c5ce8-5e5b-4a0a-9a5d-1c6c0e5f2a11",
     "geometry": {"type": "Polygon", "coordinates": [[[100, 100], [600, 100], [600, 600], [100, 600], [100, 100]],
                                                     [[200, 200], [300, 200], [300, 300], [200, 300], [200, 200]]]},
     "properties": {"objectType": "annotation", "name": "Met A",
                    "classification": {"name": "Tumor", "color": [200, 0, 0]}, "isLocked": false}},
    {"type": "Feature", "id": "2f1e...", "geometry": {"type": "MultiPolygon", "coordinates": [
        [[[1000, 1000], [1100, 1000], [1100, 1100], [1000, 1100], [1000, 1000]]],
        [[[1200, 1000], [1300, 1000], [1300, 1100], [1200, 1100], [1200, 1000]]]]},
     "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}}},
    {"type": "Feature", "id": "c1", "geometry": {"type": "Polygon",
        "coordinates": [[[2000, 2000], [2010, 2000], [2010, 2010], [2000, 2000]]]},
     "properties": {"objectType": "detection", "classification": {"name": "Positive", "color": [200, 50, 50]},
                    "measurements": {"DAB: Mean": 0.4}}},
    {"type": "Feature", "id": "c2", "geometry": {"type": "Polygon",
        "coordinates": [[[2000, 2000], [2010, 2000], [2010, 2010], [2000, 2000]]]},
     "nucleusGeometry": {"type": "Polygon", "coordinates": [[[2001, 2001], [2005, 2001], [2005, 2005], [2001, 2001]]]},
     "properties": {"objectType": "cell", "isLocked": false}},
    {"type": "Feature", "id": "p1", "geometry": {"type": "MultiPoint", "coordinates": [[5, 5], [6, 6]]},
     "properties": {"objectType": "annotation", "name": "points"}},
    {"type": "Feature", "id": "l1", "geometry": {"type": "LineString", "coordinates": [[5, 5], [60, 60]]},
     "properties": {"objectType": "annotation"}},
    {"type": "Feature", "id": "n1", "geometry": {"type": "Polygon",
        "coordinates": [[[150, 150], [250, 150], [250, 180], [150, 180], [150, 150]]]},
     "properties": {"objectType": "annotation", "classification": {"name": "Ignore*", "color": [180, 180, 180]}}},
    {"type": "Feature", "id": "u1", "geometry": {"type": "Polygon",
        "coordinates": [[[3000, 3000], [3100, 3000], [3100, 3100], [3000, 3100], [3000, 3000]]]},
     "properties": {"objectType": "annotation", "isLocked": false}}
  ]
}"""

QUPATH_02_LIST = """[
  {"type": "Feature", "id": "PathAnnotationObject",
   "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [50, 0], [50, 50], [0, 50], [0, 0]]]},
   "properties": {"classification": {"name": "Necrosis", "colorRGB": -13421773}, "isLocked": false, "measurements": []}},
  {"type": "Feature", "id": "PathAnnotationObject",
   "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [500, 0], [500, 500], [0, 500], [0, 0]]]},
   "properties": {"name": "Old met", "classification": "Tumor", "isLocked": false, "measurements": []}},
  {"type": "Feature", "id": "PathDetectionObject",
   "geometry": {"type": "Polygon", "coordinates": [[[1, 1], [5, 1], [5, 5], [1, 1]]]},
   "properties": {"isLocked": false, "measurements": []}}
]"""


def test_qupath_04_feature_collection(tmp_path):
    loaded = load_annotations(_file(tmp_path, QUPATH_04, "slide.geojson"))
    names = [(a.name, a.classification, a.excluded) for a in loaded.annotations]
    assert names == [("Met A", "Tumor", False), ("Tumor", "Tumor", False), ("Ignore*", "Ignore*", True),
                     ("region-4", "", False)]
    assert loaded.skipped == ("feature 3: detection object", "feature 4: cell object",
                              "feature 5: MultiPoint has no area", "feature 6: LineString has no area")
    assert loaded.annotations[0].geometry.area == 500 * 500 - 100 * 100
    assert isinstance(loaded.annotations[1].geometry, MultiPolygon) and loaded.annotations[1].geometry.area == 20_000
    regions = build_regions(loaded.annotations, slide_size=SLIDE)
    assert [r.name for r in regions] == ["Met A", "Tumor", "region-4"]
    # the Ignore* strip 150..250 x 150..180 is cut; its part inside the hole (200..250 x 150..180 overlaps
    # the hole only where y >= 200, i.e. nowhere) so the whole strip counts
    assert regions[0].geometry.area == 500 * 500 - 100 * 100 - 100 * 30


def test_many_skipped_objects_are_summarised(tmp_path):
    cell = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 3], [0, 0]]]},
            "properties": {"objectType": "cell"}}
    met = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [9, 0], [9, 9], [0, 0]]]},
           "properties": {"objectType": "annotation", "name": "met"}}
    loaded = load_annotations(_file(tmp_path, json.dumps([cell] * 1000 + [met])))
    assert [a.name for a in loaded.annotations] == ["met"]
    assert loaded.skipped == ("feature 1 and 999 more: cell object",) and loaded.n_skipped == 1000


def test_qupath_02_bare_list_and_string_classification(tmp_path):
    anns = read_annotations(_file(tmp_path, QUPATH_02_LIST, "x.json"))
    assert [(a.name, a.classification, a.excluded) for a in anns] == [("Necrosis", "Necrosis", True),
                                                                       ("Old met", "Tumor", False)]
    (met,) = build_regions(anns, slide_size=SLIDE)
    assert met.geometry.area == 500 * 500 - 50 * 50 and met.flags == ("exclusions_cut",)


def test_qupath_single_feature_and_bare_geometry(tmp_path):
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 3], [0, 0]]]},
               "properties": {"name": "one"}}
    (a,) = read_annotations(_file(tmp_path, json.dumps(feature)))
    assert a.name == "one" and a.geometry.area == 6
    (b,) = read_annotations(_file(tmp_path, json.dumps(feature["geometry"]), "g.json"))
    assert b.name == "region-1" and b.geometry.area == 6


IMAGESCOPE = """<?xml version="1.0" encoding="UTF-8"?>
<Annotations MicronsPerPixel="0.252100">
<Annotation Id="1" Name="Tumor" ReadOnly="0" NameReadOnly="0" LineColorReadOnly="0" Incremental="0" Type="4" LineColor="65280" Visible="1" Selected="1" MarkupImagePath="" MacroName="">
  <Attributes><Attribute Name="Description" Id="0" Value=""/></Attributes>
  <Regions>
    <RegionAttributeHeaders>
      <AttributeHeader Id="9999" Name="Region" ColumnWidth="-1"/>
      <AttributeHeader Id="9997" Name="Length" ColumnWidth="-1"/>
      <AttributeHeader Id="9996" Name="Area" ColumnWidth="-1"/>
      <AttributeHeader Id="9998" Name="Text" ColumnWidth="-1"/>
    </RegionAttributeHeaders>
    <Region Id="1" Type="0" Zoom="0.042" Selected="0" ImageLocation="" ImageFocus="-1" Length="4000" Area="1000000" LengthMicrons="1008.4" AreaMicrons="63554.4" Text="Met left" NegativeROA="0" InputRegionId="0" Analyze="1" DisplayId="1">
      <Attributes/>
      <Vertices><Vertex X="1000" Y="1000" Z="0"/><Vertex X="2000" Y="1000" Z="0"/><Vertex X="2000" Y="2000" Z="0"/><Vertex X="1000" Y="2000" Z="0"/></Vertices>
    </Region>
    <Region Id="2" Type="0" Zoom="0.042" Selected="0" ImageLocation="" ImageFocus="-1" Length="400" Area="10000" Text="" NegativeROA="1" InputRegionId="0" Analyze="1" DisplayId="2">
      <Attributes/>
      <Vertices><Vertex X="1400" Y="1400" Z="0"/><Vertex X="1500" Y="1400" Z="0"/><Vertex X="1500" Y="1500" Z="0"/><Vertex X="1400" Y="1500" Z="0"/></Vertices>
    </Region>
    <Region Id="3" Type="2" Zoom="0.042" Selected="0" ImageLocation="" ImageFocus="-1" Text="" NegativeROA="0" InputRegionId="0" Analyze="1" DisplayId="3">
      <Attributes/>
      <Vertices><Vertex X="3000" Y="3000" Z="0"/><Vertex X="3400" Y="3200" Z="0"/></Vertices>
    </Region>
    <Region Id="4" Type="4" Text="ruler" NegativeROA="0"><Vertices><Vertex X="1" Y="1"/><Vertex X="9" Y="9"/></Vertices></Region>
  </Regions>
  <Plots/>
</Annotation>
<Annotation Id="2" Name="" LineColor="255" Visible="1">
  <Regions>
    <Region Id="1" Type="1" Text="" NegativeROA="0"><Vertices><Vertex X="5000" Y="5000"/><Vertex X="5100" Y="5000"/><Vertex X="5100" Y="5200"/><Vertex X="5000" Y="5200"/></Vertices></Region>
  </Regions>
</Annotation>
<Annotation Id="3" Name="Layer 3" LineColor="255">
  <Attributes><Attribute Name="Classification" Id="0" Value="Artefact"/></Attributes>
  <Regions>
    <Region Id="1" Type="0" Text="fold" NegativeROA="0"><Vertices><Vertex X="1900" Y="1900"/><Vertex X="2100" Y="1900"/><Vertex X="2100" Y="2100"/><Vertex X="1900" Y="2100"/></Vertices></Region>
  </Regions>
</Annotation>
</Annotations>
"""


def test_imagescope_as_written_by_imagescope(tmp_path):
    loaded = load_annotations(_file(tmp_path, IMAGESCOPE, "s.xml"))
    assert loaded.format == "imagescope-xml"
    got = [(a.name, a.classification, a.excluded) for a in loaded.annotations]
    assert got == [("Met left", "Tumor", False), ("Tumor", "Tumor", False), ("region-3", "", False),
                   ("fold", "Artefact", True)]
    assert loaded.skipped == ("Annotation 1 Region 4: fewer than 3 distinct vertices",)
    met, ellipse, rect = (a.geometry for a in loaded.annotations[:3])
    assert met.area == 1000 * 1000 - 100 * 100
    assert ellipse.area == pytest.approx(math.pi * 200 * 100, rel=0.01)
    assert rect.area == 100 * 200
    regions = build_regions(loaded.annotations, slide_size=SLIDE)
    assert [r.name for r in regions] == ["Met left", "Tumor", "region-3"]
    assert regions[0].geometry.area == 1000 * 1000 - 100 * 100 - 100 * 100  # fold corner cut


def test_imagescope_self_intersecting_region_with_hole_is_repaired(tmp_path):
    text = """<Annotations><Annotation Id="1" Name="Tumor"><Regions>
      <Region Id="1" Text="bow" NegativeROA="0"><Vertices><Vertex X="0" Y="0"/><Vertex X="100" Y="100"/>
        <Vertex X="100" Y="0"/><Vertex X="0" Y="100"/></Vertices></Region>
      <Region Id="2" NegativeROA="1"><Vertices><Vertex X="5" Y="45"/><Vertex X="15" Y="45"/>
        <Vertex X="15" Y="55"/><Vertex X="5" Y="55"/></Vertices></Region>
    </Regions></Annotation></Annotations>"""
    (ann,) = read_annotations(_file(tmp_path, text))
    assert ann.flags == ("repaired_geometry",)
    (region,) = build_regions([ann], slide_size=SLIDE)
    assert region.flags == ("repaired_geometry",) and region.geometry.area == pytest.approx(5000 - 100)


def test_imagescope_utf16_with_bom(tmp_path):
    text = IMAGESCOPE.replace('encoding="UTF-8"', 'encoding="UTF-16"')
    anns = read_annotations(_file(tmp_path, text.encode("utf-16"), "s16.xml"))
    assert len(anns) == 4


ASAP = """<?xml version="1.0"?>
<ASAP_Annotations>
  <Annotations>
    <Annotation Name="Annotation 0" Type="Polygon" PartOfGroup="metastases" Color="#F4FA58">
      <Coordinates>
        <Coordinate Order="0" X="1000.5" Y="1000" />
        <Coordinate Order="2" X="2000" Y="2000" />
        <Coordinate Order="1" X="2000" Y="1000" />
        <Coordinate Order="3" X="1000.5" Y="2000" />
      </Coordinates>
    </Annotation>
    <Annotation Name="Annotation 1" Type="Polygon" PartOfGroup="_2" Color="#64FE2E">
      <Coordinates>
        <Coordinate Order="0" X="1200" Y="1200" /><Coordinate Order="1" X="1300" Y="1200" />
        <Coordinate Order="2" X="1300" Y="1300" /><Coordinate Order="3" X="1200" Y="1300" />
      </Coordinates>
    </Annotation>
    <Annotation Name="Annotation 2" Type="Dot" PartOfGroup="None" Color="#F4FA58">
      <Coordinates><Coordinate Order="0" X="5" Y="5" /></Coordinates>
    </Annotation>
    <Annotation Name="Annotation 3" Type="Rectangle" PartOfGroup="None" Color="#F4FA58">
      <Coordinates>
        <Coordinate Order="0" X="3000" Y="3000" /><Coordinate Order="1" X="3100" Y="3000" />
        <Coordinate Order="2" X="3100" Y="3050" /><Coordinate Order="3" X="3000" Y="3050" />
      </Coordinates>
    </Annotation>
  </Annotations>
  <AnnotationGroups>
    <Group Name="metastases" PartOfGroup="None" Color="#ff0000"><Attributes /></Group>
    <Group Name="_2" PartOfGroup="None" Color="#64FE2E"><Attributes /></Group>
  </AnnotationGroups>
</ASAP_Annotations>
"""


def test_asap_as_written_by_asap(tmp_path):
    loaded = load_annotations(_file(tmp_path, ASAP, "c.xml"))
    assert loaded.format == "asap-xml"
    got = [(a.name, a.classification, a.excluded) for a in loaded.annotations]
    assert got == [("Annotation 0", "metastases", False), ("Annotation 1", "_2", True), ("Annotation 3", "", False)]
    assert loaded.skipped == ("Annotation 3 (Annotation 2): Dot has no area",)
    assert loaded.annotations[0].geometry.is_valid  # vertices put back in Order
    regions = build_regions(loaded.annotations, slide_size=SLIDE)
    assert regions[0].geometry.area == 999.5 * 1000 - 100 * 100
    assert regions[1].geometry.area == 100 * 50


# -- malformed input ------------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Annotations><Annotation Name="&lol2;"/></Annotations>"""


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ("  \n\t", "empty"),
    ("{\"type\": \"FeatureCollection\", \"features\": [", "not valid JSON"),
    ("{\"hello\": 1}", "not GeoJSON"),
    ("[1, 2, 3]", "not a GeoJSON Feature"),
    ("{\"type\": \"FeatureCollection\", \"features\": {}}", "'features' is not a list"),
    ("{\"type\": \"Feature\", \"properties\": {}}", "missing 'geometry'"),
    ("{\"type\": \"Polygon\", \"coordinates\": [[[\"a\", 1], [2, 3], [4, 5]]]}", "not lists of numbers"),
    ("{\"type\": \"Polygon\", \"coordinates\": [[1, 2, 3, 4]]}", "not [x, y] pairs"),
    ("{\"type\": \"Polygon\", \"coordinates\": [[[NaN, 1], [2, 3], [4, 5]]]}", "non-finite"),
    ("{\"type\": \"Polygon\", \"coordinates\": 5}", "list of rings"),
    ("<svg><rect/></svg>", "neither ImageScope"),
    ("<Annotations><Annotation>", "malformed XML"),
    (BILLION_LAUGHS, "DOCTYPE"),
    ("<Annotations><Annotation><Regions><Region><Vertices><Vertex X='a' Y='1'/></Vertices></Region>"
     "</Regions></Annotation></Annotations>", "numeric X and Y"),
    ("<ASAP_Annotations><Annotations><Annotation><Coordinates><Coordinate Order='0' X='1'/></Coordinates>"
     "</Annotation></Annotations></ASAP_Annotations>", "numeric Order, X and Y"),
    ("GIF89a\x00\x01", "neither JSON nor XML"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "not UTF-8"),
])
def test_malformed_files_raise_annotation_error(tmp_path, content, message):
    path = _file(tmp_path, content, "bad.geojson")
    with pytest.raises(AnnotationError, match=re.escape(message)) as info:
        read_annotations(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_size_and_vertex_caps(tmp_path, monkeypatch):
    with pytest.raises(AnnotationError, match="cannot read"):
        read_annotations(tmp_path / "absent.geojson")
    path = _file(tmp_path, QUPATH_04)
    monkeypatch.setattr(annotations_io, "MAX_FILE_BYTES", 100)
    with pytest.raises(AnnotationError, match="more than 100"):
        read_annotations(path)
    monkeypatch.setattr(annotations_io, "MAX_FILE_BYTES", 10**9)
    monkeypatch.setattr(_annotation_parsers, "MAX_VERTICES", 8)
    with pytest.raises(AnnotationError, match="more than 8 vertices"):
        read_annotations(path)


def _poly_file(tmp_path: Path, coords: list) -> Path:
    return _file(tmp_path, json.dumps({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": coords},
                                       "properties": {"name": "m", "classification": {"name": "Tumor"}}}))


def test_bow_tie_is_repaired_and_flagged(tmp_path):
    (ann,) = read_annotations(_poly_file(tmp_path, [[[0, 0], [100, 100], [100, 0], [0, 100], [0, 0]]]))
    assert not ann.geometry.is_valid
    (region,) = build_regions([ann], slide_size=SLIDE)
    assert region.flags == ("repaired_geometry",)
    assert region.geometry.is_valid and region.geometry.area == pytest.approx(2 * 2500)
    # the outline crosses itself at (50, 50): what is left is the left and right triangles
    assert region_membership([region], [50, 10, 90, 50], [20, 50, 50, 80]).tolist() == [[False, True, True, False]]


def test_fewer_than_three_points_is_skipped_and_degenerate_is_an_error(tmp_path):
    loaded = load_annotations(_poly_file(tmp_path, [[[0, 0], [10, 10], [0, 0]]]))
    assert loaded.annotations == () and loaded.skipped == ("feature 1: fewer than 3 distinct vertices",)
    assert loaded.n_skipped == 1
    (line,) = read_annotations(_poly_file(tmp_path, [[[0, 0], [10, 10], [20, 20], [0, 0]]]))
    with pytest.raises(AnnotationError, match=r"origin\.geojson: region 'm' has no area"):
        build_regions([line], slide_size=SLIDE, origin="origin.geojson")


def test_outside_slide_is_an_error_and_partly_outside_is_clipped():
    outside = Annotation("far", "Tumor", box(20_000, 100, 20_500, 600))
    with pytest.raises(AnnotationError, match=r"s\.xml: region 'far' lies outside the slide \(10000 x 8000 px\)"):
        build_regions([outside], slide_size=SLIDE, origin="s.xml")
    edge = Annotation("edge", "Tumor", box(-50, 7_900, 100, 8_100))
    (region,) = build_regions([edge], slide_size=SLIDE)
    assert region.flags == ("clipped_to_slide",)
    assert region.geometry.area == 100 * 100
    touching = Annotation("touch", "", box(10_000, 0, 10_100, 100))  # shares only an edge with the slide
    with pytest.raises(AnnotationError, match="outside the slide"):
        build_regions([touching], slide_size=SLIDE)


# -- exclusions, overlaps, names ----------------------------------------------------------------------

def test_necrosis_inside_tumour_is_cut_and_its_cells_are_out():
    anns = [Annotation("T", "Tumor", box(0, 0, 100, 100)), Annotation("N", "Necrosis", box(40, 40, 60, 60), True)]
    (region,) = build_regions(anns, slide_size=SLIDE)
    assert region.geometry.area == 100 * 100 - 20 * 20
    assert region.flags == ("exclusions_cut",)
    assert region_membership([region], [50, 10, 39.9, 60.1], [50, 10, 50, 50]).tolist() == [[False, True, True, True]]
    assert region.area_um2(0.5) == pytest.approx(9600 * 0.25) and region.area_mm2(0.5) == pytest.approx(9600 * 0.25e-6)


def test_region_entirely_inside_exclusion_is_an_error():
    anns = [Annotation("small", "Tumor", box(10, 10, 20, 20)), Annotation("bg", "Background", box(0, 0, 50, 50), True)]
    with pytest.raises(AnnotationError, match="entirely inside excluded areas"):
        build_regions(anns, slide_size=SLIDE)


def test_only_exclusions_give_no_regions():
    assert build_regions([Annotation("N", "Necrosis", box(0, 0, 5, 5), True)], slide_size=SLIDE) == ()


def test_overlapping_regions_are_flagged_and_share_cells():
    anns = [Annotation("A", "Tumor", box(0, 0, 100, 100)), Annotation("B", "Tumor", box(50, 0, 150, 100)),
            Annotation("C", "Tumor", box(150, 0, 250, 100))]  # C only touches B
    a, b, c = build_regions(anns, slide_size=SLIDE)
    assert a.flags == ("overlaps:B",) and b.flags == ("overlaps:A",) and c.flags == ()
    member = region_membership([a, b, c], [75, 25, 125, 150, 200], [50, 50, 50, 50, 50])
    assert member.tolist() == [[True, True, False, False, False],
                               [True, False, True, False, False],
                               [False, False, False, False, True]]


def test_repeated_names_are_made_unique_in_order():
    anns = [Annotation("Tumor", "Tumor", box(0, 0, 10, 10)), Annotation("Tumor", "Tumor", box(20, 0, 30, 10)),
            Annotation("Tumor-1", "Tumor", box(40, 0, 50, 10)), Annotation("x", "", box(60, 0, 70, 10))]
    assert [r.name for r in build_regions(anns, slide_size=SLIDE)] == ["Tumor-2", "Tumor-3", "Tumor-1", "x"]


def test_exclusion_patterns():
    assert "Ignore*" in EXCLUDED_CLASSES
    for label in ("Ignore*", "ignore", "NECROSIS", "necrotic tissue", "Artifact", "Artefact - fold", "Exclude",
                  "Excluded", "exclusion", "Background", "Haemorrhage"):
        assert is_excluded(label), label
    for label in ("Tumor", "Other", "Region*", "Stroma", "", "Met with necrosis"):
        assert not is_excluded(label), label


def test_region_validation():
    with pytest.raises(ValueError, match="Region.geometry"):
        Region("bow", Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]), "annotation")
    with pytest.raises(ValueError, match="Region.source"):
        Region("r", box(0, 0, 1, 1), "manual")
    with pytest.raises(ValueError, match="Region.name"):
        Region(" ", box(0, 0, 1, 1), "auto")
    with pytest.raises(ValueError, match="Annotation.geometry"):
        Annotation("a", "", Point(1, 1))  # type: ignore[arg-type]


def test_find_annotation_file(tmp_path):
    slide = _file(tmp_path, b"x", "case1.svs")
    assert find_annotation_file(slide) is None
    _file(tmp_path, "<x/>", "case1.xml")
    assert find_annotation_file(slide) == tmp_path / "case1.xml"
    _file(tmp_path, "{}", "case1.geojson")
    assert find_annotation_file(slide) == tmp_path / "case1.geojson"
    other = tmp_path / "ann"
    other.mkdir()
    _file(other, "{}", "case1.svs.json")
    assert find_annotation_file(slide, other) == other / "case1.svs.json"


# -- membership -----------------------------------------------------------------------------------

def test_membership_on_edges_corners_holes_and_nan():
    ring = Region("r", Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(4, 4), (6, 4), (6, 6), (4, 6)]]), "auto")
    x = [5, 0, 10, 10, 3, 4, 5, 5, 1e-9, -1, np.nan, 5, np.inf]
    y = [2, 5, 10, 5, 3, 5, 5, 4, 5, 5, 5, np.nan, 5]
    want = [True, False, False, False, True, False, False, False, True, False, False, False, False]
    assert region_membership([ring], x, y).tolist() == [want]
    assert region_membership([], x, y).shape == (0, len(x))
    assert region_membership([ring], np.empty(0), np.empty(0)).shape == (1, 0)
    with pytest.raises(ValueError, match="same length"):
        region_membership([ring], [1, 2], [1])


_SHAPES = [
    Region("concave", Polygon([(0, 0), (20, 0), (20, 20), (10, 5), (0, 20)], [[(2, 2), (5, 2), (5, 4)]]), "auto"),
    Region("multi", MultiPolygon([box(30, 0, 40, 10), Polygon([(30, 12), (40, 12), (35, 20)])]), "annotation"),
    Region("overlap", box(15, 0, 35, 15), "auto"),
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 45), st.integers(-5, 25), st.sampled_from([0.0, 0.5, 0.25, 1e-7])),
                min_size=1, max_size=60))
def test_membership_agrees_with_scalar_contains(points):
    x = np.array([p[0] + p[2] for p in points])
    y = np.array([p[1] + p[2] / 2 for p in points])
    got = region_membership(_SHAPES, x, y)
    want = [[r.geometry.contains(Point(px, py)) for px, py in zip(x, y)] for r in _SHAPES]
    assert got.tolist() == want


def test_membership_speed():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    regions = [Region(f"m{k}", Polygon(np.column_stack([5000 + 2000 * k % 40000 + 1500 * np.cos(t) * (1 + 0.2 * np.sin(7 * t)),
                                                        20000 + 1500 * np.sin(t)])), "auto") for k in range(10)]
    x = rng.uniform(0, 40_000, 200_000)
    y = rng.uniform(0, 40_000, 200_000)
    start = time.perf_counter()
    member = region_membership(regions, x, y)
    assert time.perf_counter() - start < 2.0
    want = shapely.contains(np.array([r.geometry for r in regions])[:, None], shapely.points(x[:3000], y[:3000])[None, :])
    assert (member[:, :3000] == want).all() and member.sum() > 1000

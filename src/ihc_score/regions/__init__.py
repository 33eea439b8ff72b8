"""Regions to score: the metastases.

:class:`Region` is pure geometry in level-0 pixels; annotation files
(QuPath GeoJSON, Aperio ImageScope XML, ASAP XML) are read into
:class:`Annotation` shapes and written back; :func:`build_regions` repairs,
clips and cuts exclusions; :func:`find_metastases` finds them from the
detected cells where no file draws them.
"""

from ihc_score.regions.annotations import (
    ANNOTATION_SUFFIXES,
    MAX_FILE_BYTES,
    AnnotationFile,
    find_annotation_file,
    load_annotations,
    read_annotations,
)
from ihc_score.regions.auto import SlideNuclei, TumourMap, find_metastases, tumour_map
from ihc_score.regions.auto_params import AutoRegionParams
from ihc_score.regions.cell_labels import CellLabels, read_cell_labels, write_cell_labels
from ihc_score.regions.geometry import (
    EXCLUDED_CLASSES,
    Annotation,
    Areal,
    Region,
    build_regions,
    is_excluded,
    make_areal,
    region_membership,
    regions_mask,
)
from ihc_score.regions.writers import (
    asap_xml_bytes,
    class_color,
    geojson_bytes,
    imagescope_xml_bytes,
    write_asap_xml,
    write_geojson,
    write_imagescope_xml,
)

__all__ = [
    "EXCLUDED_CLASSES", "Annotation", "Areal", "Region", "build_regions", "is_excluded", "make_areal",
    "region_membership", "regions_mask", "ANNOTATION_SUFFIXES", "MAX_FILE_BYTES", "AnnotationFile", "find_annotation_file",
    "load_annotations", "read_annotations", "geojson_bytes", "imagescope_xml_bytes", "asap_xml_bytes",
    "write_geojson", "write_imagescope_xml", "write_asap_xml", "class_color", "AutoRegionParams", "SlideNuclei", "TumourMap",
    "tumour_map", "find_metastases", "CellLabels", "read_cell_labels", "write_cell_labels",
]

"""Reading and writing QuPath's files without QuPath.

Reading: ``source.py`` opens what the user points at (a project, a folder of GeoJSON exports,
one export) as an :class:`AnnotationSource` of :class:`SourceImage` entries (``entries.py``) and
reads each image's objects with one of its readers: ``geojson.py`` (QuPath's exports),
``qpdata/`` (``data.qpdata`` decoded directly) or ``paquo_reader.py`` (through a local QuPath).
``project.py`` reads ``project.qpproj``; ``inspection.py`` is the ``inspect`` report.
Writing: ``writer.py`` makes projects QuPath opens (used by the importers).
"""

from mammotools.qupath.entries import AnnotationSource, SourceImage
from mammotools.qupath.inspection import format_report, inspect_source
from mammotools.qupath.source import READERS, nothing_to_read, open_source, read_annotations
from mammotools.qupath.writer import (
    annotation_feature,
    check_new_project,
    file_stamps,
    project_entry,
    read_import_record,
    write_annotations,
    write_import_record,
    write_project,
)

__all__ = [
    "READERS",
    "AnnotationSource",
    "SourceImage",
    "annotation_feature",
    "check_new_project",
    "file_stamps",
    "format_report",
    "inspect_source",
    "nothing_to_read",
    "open_source",
    "project_entry",
    "read_annotations",
    "read_import_record",
    "write_annotations",
    "write_import_record",
    "write_project",
]

"""Reading QuPath's files without QuPath: projects, GeoJSON exports (``.qpdata`` later)."""

from mammotools.qupath.source import AnnotationSource, ImageRecord, open_source, read_annotations

__all__ = ["AnnotationSource", "ImageRecord", "open_source", "read_annotations"]

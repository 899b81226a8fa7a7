"""What an annotation source lists: its images and where each one's annotations are.

Plain data shared by the readers (source.py, paquo_reader.py) and the stages that use them
(export, inspect), so that none of them imports another to get at these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mammotools.files import image_stem


@dataclass
class SourceImage:
    """One image and where its annotations are. Plain data, so it pickles to worker processes."""

    name: str  # QuPath's image name, or the annotation file's key outside a project
    entry_id: int | None = None
    width: int | None = None  # from the project; None when only the image file can tell
    height: int | None = None
    image_uri: str | None = None
    image_path_hint: Path | None = None  # a local path the project says the image is at
    annotation_path: Path | None = None
    reader: str | None = None  # key of READERS; None = no annotations found
    metadata: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    rotation: int = 0  # clockwise degrees QuPath turns the image by; annotations are on the turned image
    pixel_type: str | None = None  # the project's PixelType (UINT8, UINT16...); None where it does not say

    @property
    def stem(self) -> str:
        """The image name without its final extension."""
        return image_stem(self.name)


@dataclass
class AnnotationSource:
    """A project, a folder of exports or one export file, opened for reading."""

    path: Path
    kind: str  # "project", "folder" or "file"
    qupath_version: str | None
    images: list[SourceImage]
    path_classes: list[tuple[str, tuple[int, int, int]]] = field(default_factory=list)

"""Writing QuPath projects that QuPath opens: ``project.qpproj``, ``classes.json``, GeoJSON.

Used by the import commands. The project is QuPath 0.5 style; annotations are QuPath 0.4+
GeoJSON in ``annotations/<stem>.geojson``, where export-qupath reads them and
``qupath_scripts/import_annotations.groovy`` loads them into QuPath.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from mammotools.classes import ClassTable
from mammotools.errors import InputError
from mammotools.files import atomic_write_text, image_stem

QUPATH_VERSION = "0.5.1"


def check_new_project(out: Path) -> None:
    """Refuse to write over an existing project, or into a folder holding anything."""
    if (out / "project.qpproj").exists():
        raise InputError(f"{out}: already holds a QuPath project; choose a new --out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: exists and is not an empty folder; choose a new --out for the project")


def annotation_feature(geometry: BaseGeometry, cls: str, table: ClassTable, key: str, name: str | None = None) -> dict:
    """A QuPath 0.4+ GeoJSON annotation feature; ``key`` makes its UUID stable across runs."""
    properties: dict = {"objectType": "annotation", "classification": {"name": cls, "color": list(table.find(cls).color)}}
    if name:
        properties["name"] = name
    return {
        "type": "Feature",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
        "geometry": mapping(geometry),
        "properties": properties,
    }


def write_annotations(out: Path, image_name: str, features: list[dict]) -> None:
    """``out/annotations/<stem>.geojson`` as a FeatureCollection."""
    text = json.dumps({"type": "FeatureCollection", "features": features})
    atomic_write_text(out / "annotations" / f"{image_stem(image_name)}.geojson", text)


def project_entry(
    entry_id: int, image: Path, width: int, height: int, metadata: dict[str, str] | None = None, description: str = ""
) -> dict:
    """One image entry of project.qpproj, its URI the image file's absolute path."""
    uri = image.resolve().as_uri()
    entry = {
        "serverBuilder": {
            "builderType": "uri",
            "providerClassName": "qupath.lib.images.servers.imageio.ImageIoServerBuilder",
            "uri": uri,
            "args": [],
            "metadata": {"name": image.name, "width": width, "height": height, "sizeZ": 1, "sizeT": 1},
        },
        "entryID": entry_id,
        "randomizedName": str(uuid.uuid5(uuid.NAMESPACE_URL, uri)),
        "imageName": image.name,
        "metadata": metadata or {},
        "tags": [],
    }
    if description:
        entry["description"] = description
    return entry


def write_project(out: Path, entries: list[dict], table: ClassTable, final: Path | None = None) -> None:
    """``classifiers/classes.json`` then ``project.qpproj`` (last: it marks the project complete).

    ``final``: where the project will end up, when ``out`` is a temporary folder renamed into place.
    """
    classes = [{"name": c.name, "color": argb(c.color)} for c in table]
    atomic_write_text(out / "classifiers" / "classes.json", json.dumps({"pathClasses": classes}, indent=2))
    project = {
        "version": QUPATH_VERSION,
        "createTimestamp": 0,
        "modifyTimestamp": 0,
        "uri": ((final or out).resolve() / "project.qpproj").as_uri(),
        "lastID": len(entries),
        "images": entries,
    }
    atomic_write_text(out / "project.qpproj", json.dumps(project, indent=2))


def argb(rgb: tuple[int, int, int]) -> int:
    """Colour as QuPath stores it: a signed 32-bit packed ARGB int, opaque."""
    packed = (0xFF << 24) | (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
    return packed - (1 << 32)

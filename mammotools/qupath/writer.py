"""Writing QuPath projects that QuPath opens: ``project.qpproj``, ``classes.json``, GeoJSON.

Used by the import commands. The project is QuPath 0.5 style; annotations are QuPath 0.4+
GeoJSON in ``annotations/<stem>.geojson``, where export-qupath reads them and
``qupath_scripts/import_annotations.groovy`` loads them into QuPath.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from mammotools.classes import ClassTable
from mammotools.errors import InputError
from mammotools.files import atomic_write_text, image_stem

QUPATH_VERSION = "0.5.1"


IMPORT_RECORD = "mammotools-import.json"  # in a project an import wrote: its inputs and settings


def check_new_project(out: Path, recorded: dict | None = None, overwrite: bool = False) -> dict | None:
    """Refuse to write over an existing project, or into a folder holding anything, with two
    exceptions for an import (``recorded``: its command, inputs and settings): a project the same
    import wrote is complete (its record is returned: nothing to do, as every command's rerun),
    and one an import of other inputs or settings wrote is replaced with ``overwrite``. A project
    no import wrote (an annotator's) is never replaced."""
    if (out / "project.qpproj").exists():
        earlier = read_import_record(out)
        if recorded is None or earlier is None:
            raise InputError(f"{out}: already holds a QuPath project (not one an import wrote); choose a new --out")
        if earlier.get("settings") == recorded:
            return earlier
        if not overwrite:
            settings = earlier.get("settings")
            theirs: dict = settings if isinstance(settings, dict) else {}
            changed = [k for k in recorded if theirs.get(k) != recorded[k]] or ["its record"]
            raise InputError(
                f"{out}: holds a project imported from other inputs or settings (changed: {', '.join(changed)}); pass "
                "--overwrite to replace it (edits made in QuPath are lost), or choose a new --out"
            )
        return None
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: exists and is not an empty folder; choose a new --out for the project")
    return None


def read_import_record(out: Path) -> dict | None:
    """The record an import left in its project, or None (none, or not one we wrote)."""
    try:
        record = json.loads((out / IMPORT_RECORD).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_import_record(out: Path, recorded: dict, images: list[str], annotations: dict[str, int]) -> None:
    """What an import was made of (``recorded``: command, inputs and settings) and what it wrote."""
    record = {"settings": recorded, "images": images, "annotations": annotations}
    atomic_write_text(out / IMPORT_RECORD, json.dumps(record, indent=1))


def file_stamps(paths: Sequence[Path]) -> list[list]:
    """[name, bytes, modification time in ns] of each file: an input changed since an import shows."""
    stamps = []
    for path in paths:
        st = path.stat()
        stamps.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
    return stamps


def annotation_feature(geometry: BaseGeometry, cls: str, table: ClassTable, key: str, name: str | None = None) -> dict:
    """A QuPath 0.4+ GeoJSON annotation feature; ``key`` makes its UUID stable across runs."""
    region = table.find(cls)
    assert region is not None, f"{cls!r} is not a class of the table"  # callers pass the table's names
    properties: dict = {"objectType": "annotation", "classification": {"name": cls, "color": list(region.color)}}
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


#: The image server builders entries name. QuPath looks the class up by exact name among the
#: builders it registers and, if it is not there, fails ("Unable to build ImageServer ... I couldn't
#: find ...") without trying any other (``DefaultImageServerBuilder.buildOriginal`` in
#: qupath-core/.../images/servers/ImageServerBuilder.java, tags v0.3.2 to v0.6.0). Every release
#: from 0.3.2 to 0.6.0 registers the same builders in its
#: ``META-INF/services/qupath.lib.images.servers.ImageServerBuilder`` files: JsonImageServerBuilder
#: (qupath-core), ImageJServerBuilder (qupath-core-processing), and in the desktop build also
#: BioFormatsServerBuilder and OpenslideServerBuilder (their extensions).
#:
#: PNG, TIFF and PGM: ImageJ's builder with no arguments, what QuPath 0.5.1 itself writes for a PNG
#: when Bio-Formats is not there, and the one builder that every QuPath registers, down to its
#: bare core (qupath-core with qupath-core-processing, where ImageJServerBuilder is registered).
#: It reads 8- and 16-bit grey PNG, PGM and plain TIFF; a desktop QuPath opens it too.
IMAGEJ_BUILDER = ("qupath.imagej.images.servers.ImageJServerBuilder", ())
#: DICOM: Bio-Formats (series 0, as ``BioFormatsArgs.backToArgs`` writes it), because ImageJ
#: refuses compressed DICOM (JPEG, JPEG 2000, RLE: ij/plugin/DICOM.java) and OpenSlide reads only
#: whole-slide microscopy DICOM. A DICOM entry therefore needs QuPath's desktop build (Bio-Formats
#: 6.7 in QuPath 0.3.2 to 8.2 in 0.6.0), not a bare qupath-core.
BIOFORMATS_BUILDER = ("qupath.lib.images.servers.bioformats.BioFormatsServerBuilder", ("--series", "0"))
DICOM_SUFFIXES = (".dcm", ".dicom")


def server_builder(image: Path) -> dict:
    """The entry's ``serverBuilder``, as QuPath writes it when it adds the image to a project.

    No ``metadata``: QuPath's import command adds the builder without metadata
    (``ProjectImportImagesCommand``), reads it from the file when the image is opened and writes it
    only once the image is saved (``DefaultProjectImageEntry.saveImageData``). A partial block
    would be applied over the file's own and rejected ("Specified metadata is incompatible").
    """
    provider, args = BIOFORMATS_BUILDER if image.suffix.lower() in DICOM_SUFFIXES else IMAGEJ_BUILDER
    return {"builderType": "uri", "providerClassName": provider, "uri": image.resolve().as_uri(), "args": list(args)}


def project_entry(
    entry_id: int,
    image: Path,
    metadata: dict[str, str] | None = None,
    description: str = "",
) -> dict:
    """One image entry of project.qpproj, its URI the image file's absolute path.

    No size: QuPath reads it from the image file (see :func:`server_builder`). ``metadata`` is
    the entry's own key/value metadata (always written, ``{}`` if none: QuPath 0.5 fails later on
    an entry without it).
    """
    builder = server_builder(image)
    entry = {
        "serverBuilder": builder,
        "entryID": entry_id,
        "randomizedName": str(uuid.uuid5(uuid.NAMESPACE_URL, builder["uri"])),
        "imageName": image.name,
        "metadata": metadata or {},
        "tags": [],
    }
    if description:
        entry["description"] = description
    return entry


def write_project(
    out: Path,
    entries: list[dict],
    table: ClassTable,
    final: Path | None = None,
    extra: Sequence[tuple[str, tuple[int, int, int]]] = (),
) -> None:
    """``classifiers/classes.json`` then ``project.qpproj`` (last: it marks the project complete).

    ``final``: where the project will end up, when ``out`` is a temporary folder renamed into place.
    ``extra``: (name, RGB) of further classes the annotations use (an input project's own), listed
    after the table's, each name once.
    """
    classes = [{"name": c.name, "color": argb(c.color)} for c in table]
    names = {c["name"] for c in classes}
    classes += [{"name": name, "color": argb(rgb)} for name, rgb in dict(extra).items() if name not in names]
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

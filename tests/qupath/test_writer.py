"""Projects the import commands write: every image entry names a server builder QuPath has.

QuPath builds an entry's image server with the class named by ``providerClassName`` and nothing
else: an unknown name fails the image ("Unable to build ImageServer ... I couldn't find ...").
A ``metadata`` block in the builder is applied over the file's own, so a partial one is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from conftest import shared, write_project

from mammotools.classes import default_class_table, load_class_table
from mammotools.importers import import_masks, import_mias, parse_mapping, parse_values
from mammotools.qupath import writer
from mammotools.qupath.project import read_project
from mammotools.qupath.writer import BIOFORMATS_BUILDER, IMAGEJ_BUILDER, project_entry

# The ImageServerBuilder classes QuPath registers, read from every module's
# META-INF/services/qupath.lib.images.servers.ImageServerBuilder in github.com/qupath/qupath at
# tags v0.3.2, v0.4.0, v0.4.1, v0.4.2, v0.4.3, v0.4.4, v0.5.0, v0.5.1 and v0.6.0 (the same in each):
#   qupath-core/src/main/resources/META-INF/services/...              JsonImageServerBuilder
#   qupath-core-processing/src/main/resources/META-INF/services/...   ImageJServerBuilder
#   qupath-extension-bioformats/src/main/resources/META-INF/services/... BioFormatsServerBuilder
#   qupath-extension-openslide/src/main/resources/META-INF/services/...  OpenslideServerBuilder
_BUILDERS = frozenset(
    {
        "qupath.lib.images.servers.JsonImageServerBuilder",
        "qupath.imagej.images.servers.ImageJServerBuilder",
        "qupath.lib.images.servers.bioformats.BioFormatsServerBuilder",
        "qupath.lib.images.servers.openslide.OpenslideServerBuilder",
    }
)
# A bare qupath-core setup (core and core-processing jars, no extensions: how the team checks
# projects headlessly) registers only these two.
CORE_BUILDERS = frozenset(
    {"qupath.lib.images.servers.JsonImageServerBuilder", "qupath.imagej.images.servers.ImageJServerBuilder"}
)
REGISTERED_BUILDERS: dict[str, frozenset[str]] = {
    version: _BUILDERS for version in ("0.3.2", "0.4.0", "0.4.1", "0.4.2", "0.4.3", "0.4.4", "0.5.0", "0.5.1", "0.6.0")
}

# What a complete server metadata block holds: the keys QuPath writes (a saved entry of a real
# QuPath 0.6.0 project, ../shared/data/qupath/coscialab-0.6.0). Left out, a field keeps QuPath's
# default (no channels, 8-bit...) and ImageServerMetadata.isCompatibleMetadata refuses it.
SERVER_METADATA_KEYS = frozenset(
    {
        "name",
        "width",
        "height",
        "sizeZ",
        "sizeT",
        "channelType",
        "isRGB",
        "pixelType",
        "levels",
        "channels",
        "pixelCalibration",
        "preferredTileWidth",
        "preferredTileHeight",
    }
)

TISSUE = Path(__file__).resolve().parents[2] / "docs" / "classes" / "breast_tissue.json"


def uri_builders(builder: object) -> Iterator[dict]:
    """The ``uri`` builders of an entry's serverBuilder, down through wrappers (rotated, channels...)."""
    if isinstance(builder, dict):
        if builder.get("builderType") == "uri":
            yield builder
        for value in builder.values():
            yield from uri_builders(value)
    elif isinstance(builder, list):
        for value in builder:
            yield from uri_builders(value)


def entry_problems(entry: dict, version: str) -> list[str]:
    """Why QuPath ``version`` could not open this project entry's image; empty if it can."""
    problems = []
    builders = list(uri_builders(entry.get("serverBuilder")))
    if not builders:
        problems.append("no uri server builder")
    for builder in builders:
        name = builder.get("providerClassName")
        if name not in REGISTERED_BUILDERS[version]:
            problems.append(f"QuPath {version} registers no server builder {name!r}")

        if not isinstance(builder.get("args"), list) or not all(isinstance(a, str) for a in builder["args"]):
            problems.append("args is not a list of strings")
        if "metadata" in builder:
            missing = SERVER_METADATA_KEYS - set(builder["metadata"])
            if missing:
                problems.append(f"partial server metadata: no {sorted(missing)}")
    if not isinstance(entry.get("metadata"), dict):
        problems.append("the entry has no metadata map (QuPath 0.5 fails on it)")
    return problems


def core_problems(qpproj: Path) -> list[str]:
    """Entries of images other than DICOM that a bare qupath-core (no extensions) could not open."""
    data = json.loads(qpproj.read_text("utf-8"))
    return [
        f"{entry.get('imageName')}: {builder.get('providerClassName')!r}"
        for entry in data["images"]
        for builder in uri_builders(entry.get("serverBuilder"))
        if builder.get("providerClassName") not in CORE_BUILDERS
        and not str(builder.get("uri", "")).lower().endswith((".dcm", ".dicom"))
    ]


def project_problems(qpproj: Path) -> list[str]:
    """Every problem of every entry of a project.qpproj, for every QuPath version."""
    data = json.loads(qpproj.read_text("utf-8"))
    assert data["images"], f"{qpproj}: no images"
    return [
        f"{version} {entry.get('imageName')}: {problem}"
        for version in REGISTERED_BUILDERS
        for entry in data["images"]
        for problem in entry_problems(entry, version)
    ]


def test_written_entry_is_what_qupath_writes_on_import(tmp_path: Path) -> None:
    image = tmp_path / "images" / "case 1.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), np.zeros((6, 9), np.uint16))
    entry = project_entry(1, image, {"subject": "s1"}, "a note")
    assert entry["serverBuilder"] == {
        "builderType": "uri",
        "providerClassName": "qupath.imagej.images.servers.ImageJServerBuilder",
        "uri": image.resolve().as_uri(),
        "args": [],
    }  # what QuPath 0.5.1 writes for a PNG, opened by every QuPath down to the bare core
    dicom = project_entry(3, tmp_path / "images" / "1-1.dcm")["serverBuilder"]
    bioformats = "qupath.lib.images.servers.bioformats.BioFormatsServerBuilder"
    assert (dicom["providerClassName"], dicom["args"]) == (bioformats, ["--series", "0"])
    assert (entry["entryID"], entry["imageName"], entry["metadata"], entry["description"]) == (
        1,
        "case 1.png",
        {"subject": "s1"},
        "a note",
    )
    assert project_entry(2, image)["metadata"] == {}  # never absent: QuPath 0.5 needs the map
    out = tmp_path / "proj"
    writer.write_project(out, [entry], default_class_table())
    assert project_problems(out / "project.qpproj") == []
    # our own reader still reads it; the size is left for QuPath (and export) to read from the file
    [read] = read_project(out).entries
    assert (read.name, read.entry_id, read.uri_path, read.metadata) == ("case 1.png", 1, image.resolve(), {"subject": "s1"})
    assert (read.width, read.height) == (None, None)


def test_builders_are_registered_in_every_version() -> None:
    for provider, _ in (IMAGEJ_BUILDER, BIOFORMATS_BUILDER):
        assert all(provider in builders for builders in REGISTERED_BUILDERS.values())
    assert IMAGEJ_BUILDER[0] in CORE_BUILDERS  # PNG, TIFF and PGM entries open without the extensions


def test_import_masks_project_opens_in_every_version(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    label = np.full((20, 30), 64, np.uint8)
    label[5:15, 5:25] = 192
    cv2.imwrite(str(tmp_path / "img" / "m1.png"), np.zeros((20, 30), np.uint8))
    cv2.imwrite(str(tmp_path / "lab" / "m1_LI.png"), label)
    table = load_class_table(TISSUE)
    values = parse_values("64=Background,128=Adipose,192=Fibroglandular,255=Pectoral", table)
    import_masks(tmp_path / "lab", tmp_path / "img", values, tmp_path / "proj", table)
    assert project_problems(tmp_path / "proj" / "project.qpproj") == []
    assert core_problems(tmp_path / "proj" / "project.qpproj") == []


def test_import_mias_project_opens_in_every_version(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "mdb001.pgm"), np.zeros((64, 64), np.uint8))
    (tmp_path / "Info.txt").write_text("mdb001 G CIRC B 30 30 10\n")
    table = default_class_table()
    import_mias(tmp_path / "Info.txt", tmp_path / "images", tmp_path / "proj", table, parse_mapping((), table))
    assert project_problems(tmp_path / "proj" / "project.qpproj") == []
    assert core_problems(tmp_path / "proj" / "project.qpproj") == []


def test_check_refuses_builders_qupath_lacks_and_partial_metadata() -> None:
    good = {
        "serverBuilder": {
            "builderType": "uri",
            "providerClassName": "qupath.imagej.images.servers.ImageJServerBuilder",
            "uri": "file:/a.png",
            "args": [],
        },
        "metadata": {},
    }
    assert entry_problems(good, "0.5.1") == []
    made_up = json.loads(json.dumps(good))
    made_up["serverBuilder"]["providerClassName"] = "qupath.lib.images.servers.imageio.ImageIoServerBuilder"
    assert all("registers no server builder" in " ".join(entry_problems(made_up, v)) for v in REGISTERED_BUILDERS)
    wrapped = {
        "serverBuilder": {"builderType": "rotated", "rotation": "ROTATE_90", "builder": made_up["serverBuilder"]},
        "metadata": {},
    }
    assert entry_problems(wrapped, "0.6.0") != []
    partial = json.loads(json.dumps(good))
    partial["serverBuilder"]["metadata"] = {"name": "a.png", "width": 9, "height": 6, "sizeZ": 1, "sizeT": 1}
    assert any("partial server metadata" in p for p in entry_problems(partial, "0.5.1"))
    no_map = {"serverBuilder": good["serverBuilder"]}
    assert entry_problems(no_map, "0.5.1") == ["the entry has no metadata map (QuPath 0.5 fails on it)"]


def test_check_accepts_saved_entries(tmp_path: Path) -> None:
    """The test fixture's entries (complete metadata, as QuPath writes once an image is saved)."""
    project = write_project(tmp_path, {"a.png": (np.zeros((4, 5), np.uint8), []), "b.png": (np.zeros((4, 5, 3), np.uint8), [])})
    assert project_problems(project / "project.qpproj") == []


def test_check_accepts_a_real_qupath_project() -> None:
    assert project_problems(shared("qupath", "coscialab-0.6.0", "project.qpproj")) == []

"""QuPath project folders: ``project.qpproj``, ``classifiers/classes.json``, ``data/<id>/``.

Read without QuPath. Image sizes come from the entry's server builder; wrapped builders
(``rotated``, ``channels``, ``pyramidize``...) nest the real one under ``builder``, so the
search goes down the chain, then falls back to ``data/<id>/server.json`` and ``summary.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from mammotools.errors import InputError, MissingFileError

PROJECT_FILE = "project.qpproj"
MAX_BUILDER_DEPTH = 16


@dataclass
class ProjectEntry:
    """One image of a QuPath project, as ``project.qpproj`` describes it."""

    name: str  # imageName, as shown in QuPath
    entry_id: int | None
    width: int | None
    height: int | None
    uri: str | None  # where the image was on the annotator's machine
    data_dir: Path | None  # data/<entryID>/ (data.qpdata, summary.json...), if present
    metadata: dict[str, str] = field(default_factory=dict)
    rotation: int = 0  # clockwise degrees QuPath shows the image turned by (a "rotated" server)
    pixel_type: str | None = None  # QuPath's PixelType of the image server: UINT8, UINT16, ...

    @property
    def uri_path(self) -> Path | None:
        """The image's local path if ``uri`` is a ``file:`` URI, else None."""
        if not self.uri or not self.uri.startswith("file:"):
            return None
        return Path(unquote(urlparse(self.uri).path))


@dataclass
class Project:
    """A QuPath project read from its folder."""

    path: Path  # the project folder
    version: str | None
    entries: list[ProjectEntry]
    path_classes: list[tuple[str, tuple[int, int, int]]]  # classifiers/classes.json


def find_project_file(path: Path) -> Path | None:
    """``path`` itself if it is a ``.qpproj`` file, the project file in folder ``path``, or None."""
    if path.is_file() and path.suffix == ".qpproj":
        return path
    candidate = path / PROJECT_FILE
    return candidate if candidate.is_file() else None


def read_project(path: str | Path) -> Project:
    """Read a QuPath project (the folder or its ``project.qpproj``)."""
    path = Path(path)
    qpproj = find_project_file(path)
    if qpproj is None:
        raise MissingFileError(f"{path}: no {PROJECT_FILE} here; give a QuPath project folder")
    data = _load_json(qpproj)
    if not isinstance(data, dict) or not isinstance(data.get("images", []), list):
        raise InputError(f"{qpproj}: not a QuPath project file (no 'images' list)")
    folder = qpproj.parent
    entries = [_entry(item, i, qpproj, folder) for i, item in enumerate(data.get("images", []))]
    version = data.get("version")
    return Project(folder, str(version) if version else None, entries, _path_classes(folder))


def _entry(item: object, index: int, qpproj: Path, folder: Path) -> ProjectEntry:
    if not isinstance(item, dict):
        raise InputError(f"{qpproj}: image #{index + 1} is not a JSON object")
    entry_id = item.get("entryID")
    entry_id = int(entry_id) if isinstance(entry_id, (int, str)) and str(entry_id).isdigit() else None
    builder = item.get("serverBuilder")
    builder = builder if isinstance(builder, dict) else {}
    uri, meta, rotation = _innermost_builder(builder)
    data_dir = folder / "data" / str(entry_id) if entry_id is not None else None
    if data_dir is not None and not data_dir.is_dir():
        data_dir = None
    width, height = _size(meta)
    if (width is None or height is None) and data_dir is not None:
        width, height = _size_from_data_dir(data_dir)
    if rotation in (90, 270):  # annotations are drawn on the turned image: its size is swapped
        width, height = height, width
    name = item.get("imageName") or meta.get("name")
    if not name and uri:
        name = Path(unquote(urlparse(uri).path)).name
    metadata = item.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    return ProjectEntry(
        name=str(name or f"entry-{entry_id}"),
        entry_id=entry_id,
        width=width,
        height=height,
        uri=uri,
        data_dir=data_dir,
        metadata={str(k): str(v) for k, v in metadata.items()},
        rotation=rotation,
        pixel_type=str(meta["pixelType"]) if isinstance(meta.get("pixelType"), str) else None,
    )


ROTATIONS = {"ROTATE_NONE": 0, "ROTATE_90": 90, "ROTATE_180": 180, "ROTATE_270": 270}
UNKNOWN_ROTATION = -1  # a rotation QuPath does not write (e.g. ROTATE_45): the entry is refused on export


def _innermost_builder(builder: dict) -> tuple[str | None, dict, int]:
    """The image URI and metadata of a possibly wrapped server builder, and the clockwise
    rotation (0/90/180/270) of any ``rotated`` wrappers (QuPath's RotatedImageServer)."""
    uri: str | None = None
    meta: dict = {}
    rotation = 0
    unknown = False
    for _ in range(MAX_BUILDER_DEPTH):
        if builder.get("builderType") == "rotated":
            turn = ROTATIONS.get(str(builder.get("rotation")))
            unknown = unknown or turn is None
            rotation = (rotation + (turn or 0)) % 360
        if isinstance(builder.get("metadata"), dict) and not meta:
            meta = builder["metadata"]
        if isinstance(builder.get("uri"), str):
            uri = builder["uri"]
            if isinstance(builder.get("metadata"), dict):
                meta = builder["metadata"]
            break
        inner = builder.get("builder")
        if not isinstance(inner, dict):
            break
        builder = inner
    return uri, meta, UNKNOWN_ROTATION if unknown else rotation


def _size(meta: dict) -> tuple[int | None, int | None]:
    w, h = meta.get("width"), meta.get("height")
    if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
        return w, h
    return None, None


def _size_from_data_dir(data_dir: Path) -> tuple[int | None, int | None]:
    server = data_dir / "server.json"
    if server.is_file():
        try:
            _, meta, _ = _innermost_builder(json.loads(server.read_text("utf-8")))
            if _size(meta) != (None, None):
                return _size(meta)
        except (ValueError, AttributeError):
            pass
    summary = data_dir / "summary.json"
    if summary.is_file():
        try:
            server_info = json.loads(summary.read_text("utf-8")).get("server", {})
            return _size(server_info)
        except (ValueError, AttributeError):
            pass
    return None, None


def _path_classes(folder: Path) -> list[tuple[str, tuple[int, int, int]]]:
    classes_file = folder / "classifiers" / "classes.json"
    if not classes_file.is_file():
        return []
    try:  # only informative (colours of QuPath's classes): a damaged file must not stop a run
        data = _load_json(classes_file)
    except InputError:
        return []
    out = []
    for item in data.get("pathClasses", []) if isinstance(data, dict) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("color", 0), int):
            packed = item.get("color", 0) & 0xFFFFFF  # signed packed ARGB
            out.append((item["name"], (packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF)))
    return out


def _load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text("utf-8-sig"))
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply; the file is corrupt") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); the file is corrupt") from None

"""QuPath GeoJSON exports (0.2, 0.3, 0.4+) -> :class:`~mammotools.annotations.Annotation`.

Accepted containers: a FeatureCollection, a bare Feature or a JSON array of features, in a
``.geojson``/``.json`` file, gzip-compressed (``.gz``) or inside a ``.zip`` (every JSON member
is read). The version differences handled (docs/qupath-formats.md of the shared notes):

* object type: ``properties.objectType`` (0.4+), ``properties.object_type`` (0.3), or the
  Java class name in ``id`` (0.2: ``PathAnnotationObject``, ``PathDetectionObject``...);
  a feature with none of these (drawn by another tool) counts as an annotation;
* classification: ``{name, color}``, ``{names: [...], color}`` (0.4+ derived classes, joined
  as ``"A: B"``) or ``{name, colorRGB, parentClass?}`` (0.2/0.3);
* ``isLocked`` and ``measurements`` in every form (measurements are not needed and skipped).
"""

from __future__ import annotations

import gzip
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import shapely.geometry

from mammotools.annotations import ANNOTATION, Annotation
from mammotools.errors import InputError, MissingFileError

# Suffixes of annotation files, longest first so ".geojson.gz" wins over ".gz".
GEOJSON_SUFFIXES = (".geojson.gz", ".json.gz", ".geojson.zip", ".json.zip", ".geojson", ".json", ".gz", ".zip")

_JAVA_TYPES = {
    "PathAnnotationObject": "annotation",
    "PathDetectionObject": "detection",
    "PathCellObject": "cell",
    "PathTileObject": "tile",
    "TMACoreObject": "tmaCore",
    "PathRootObject": "root",
}

MAX_FILE_BYTES = 2 * 1024**3  # refuse absurd inputs instead of exhausting memory
# Decompressed text, gzip or zip: a compression bomb is refused after reading this much, in chunks.
MAX_TEXT_BYTES = 512 * 1024**2
MAX_COORDINATE = float(2**31)  # px: beyond any image; larger values overflow areas to infinity
TOO_LARGE = "export the annotations alone (no detections or cells), or one file per image"


def annotation_file_key(path: Path) -> str | None:
    """The image key of an annotation file name (``img_01.geojson.gz`` -> ``img_01``), or None."""
    lower = path.name.lower()
    for suffix in GEOJSON_SUFFIXES:
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return path.name[: -len(suffix)]
    return None


def read_geojson(path: str | Path) -> list[Annotation]:
    """Read every object of a QuPath GeoJSON export (annotations, detections, cells...).

    Callers filter with :attr:`Annotation.is_annotation`. Raises :class:`InputError` naming the
    file for an empty, corrupt or non-GeoJSON file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: annotation file not found")
    texts = _read_texts(path)
    annotations: list[Annotation] = []
    for member, text in texts:
        where = f"{path}{'!' + member if member else ''}"
        if not text.strip():
            raise InputError(f"{where}: the file is empty; re-export the annotations from QuPath")
        try:
            data = json.loads(text)
        except RecursionError:
            raise InputError(f"{where}: JSON nested too deeply to be a GeoJSON export; the file is corrupt") from None
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                "the export is corrupt or truncated, re-export it from QuPath"
            ) from None
        annotations.extend(parse_features(data, where, start=len(annotations)))
    return annotations


def _read_texts(path: Path) -> list[tuple[str, str]]:
    """Decoded text of the file, or of each JSON member of a zip archive."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"{path}: larger than {MAX_FILE_BYTES >> 30} GiB; split the export per image")
    name = path.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.infolist() if not m.is_dir() and m.filename.lower().endswith((".json", ".geojson"))]
                if not members:
                    raise InputError(f"{path}: the zip archive holds no .geojson or .json file")
                if sum(m.file_size for m in members) > MAX_TEXT_BYTES:
                    raise InputError(f"{path}: more than {MAX_TEXT_BYTES >> 20} MiB unpacked; {TOO_LARGE}")
                texts, left = [], MAX_TEXT_BYTES  # the bound holds for the whole archive, whatever its headers say
                for m in members:
                    with zf.open(m) as fh:
                        raw = _bounded(fh, str(path), left)
                    left -= len(raw)
                    texts.append((m.filename, raw.decode("utf-8-sig")))
                return texts
        with path.open("rb") as fh:
            magic = fh.read(2)
        if name.endswith(".gz") or magic == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                raw = _bounded(fh, str(path))
        else:
            if path.stat().st_size > MAX_TEXT_BYTES:
                raise InputError(f"{path}: more than {MAX_TEXT_BYTES >> 20} MiB of GeoJSON; {TOO_LARGE}")
            raw = path.read_bytes()
        return [("", raw.decode("utf-8-sig"))]
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: cannot decompress ({exc}); the file is corrupt, re-export it") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; is this really a GeoJSON export?") from None


def _bounded(fh: Any, where: str, limit: int | None = None) -> bytes:
    """All of a decompressing stream, refused as soon as it passes ``limit`` (MAX_TEXT_BYTES: a
    bomb costs that much reading, not its whole unpacked size)."""
    limit = MAX_TEXT_BYTES if limit is None else limit
    chunks, total = [], 0
    while chunk := fh.read(8 * 1024**2):
        total += len(chunk)
        if total > limit:
            raise InputError(f"{where}: more than {MAX_TEXT_BYTES >> 20} MiB unpacked; {TOO_LARGE}")
        chunks.append(chunk)
    return b"".join(chunks)


def _numbers_only(value: object, depth: int = 0) -> bool:
    """Whether GeoJSON ``coordinates`` hold only numbers (a ``"100"`` string is not one)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, list) and depth < 8:
        return all(_numbers_only(v, depth + 1) for v in value)
    return False


def parse_features(data: object, where: str, start: int = 0) -> list[Annotation]:
    """Annotations from parsed GeoJSON (FeatureCollection, Feature or list of features)."""
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise InputError(f"{where}: FeatureCollection without a 'features' list")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, list):
        features = data
        if any(not isinstance(f, dict) or (f.get("type") != "Feature" and "geometry" not in f) for f in features):
            raise InputError(f"{where}: a JSON list of things that are not GeoJSON features; is this really a QuPath export?")
    elif isinstance(data, dict) and "geometry" in data:
        features = [data]  # a Feature written without "type"
    else:
        raise InputError(
            f"{where}: not a GeoJSON Feature, FeatureCollection or list of features; "
            "export with QuPath's 'Export objects as GeoJSON' or qupath_scripts/export_annotations.groovy"
        )
    return [_parse_feature(f, where, start + i + 1) for i, f in enumerate(features)]


def _parse_feature(feature: object, where: str, index: int) -> Annotation:
    if not isinstance(feature, dict):
        raise InputError(f"{where}: feature #{index} is not a JSON object")
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise InputError(f"{where}: feature #{index} has non-object 'properties'")
    fid = feature.get("id")
    object_type = props.get("objectType") or props.get("object_type")
    if object_type is None and isinstance(fid, str) and fid in _JAVA_TYPES:
        object_type = _JAVA_TYPES[fid]  # QuPath 0.2 wrote the Java class name as the id
        fid = None
    class_name, color = _classification(props.get("classification"), where, index)
    ann = Annotation(
        geometry=shapely.geometry.GeometryCollection(),
        class_name=class_name,
        object_type=str(object_type or ANNOTATION),
        name=props.get("name") if isinstance(props.get("name"), str) else None,
        object_id=str(fid) if fid is not None else None,
        color=color,
        locked=bool(props.get("isLocked", props.get("locked", False))),
        source=where,
        index=index,
    )
    geometry = feature.get("geometry")
    if geometry is None:
        ann.problems.append("has no geometry")
        return ann
    parts = geometry.get("geometries") if isinstance(geometry, dict) else None
    coordinates = [g.get("coordinates") for g in parts if isinstance(g, dict)] if isinstance(parts, list) else None
    if not isinstance(geometry, dict) or not _numbers_only(coordinates if parts is not None else geometry.get("coordinates")):
        ann.malformed = True
        ann.problems.append(
            'malformed geometry: coordinates that are not all numbers (e.g. "100" in quotes); fix or delete it in QuPath'
        )
        return ann
    try:
        with warnings.catch_warnings():  # NaN coordinates make GEOS warn; they are reported below
            warnings.simplefilter("ignore", RuntimeWarning)
            geom = shapely.geometry.shape(geometry)
        values = shapely.get_coordinates(geom)
        finite = bool(np.isfinite(values).all())
        if finite and values.size and float(np.abs(values).max()) > MAX_COORDINATE:
            ann.malformed = True
            ann.problems.append(
                f"coordinates beyond ±{MAX_COORDINATE:.0f} px (up to {float(np.abs(values).max()):.3g}), far outside any "
                "image; fix or delete it in QuPath"
            )
            return ann
    except Exception as exc:  # shapely raises several types for malformed coordinates
        ann.malformed = True
        ann.problems.append(f"malformed geometry ({type(exc).__name__}: {str(exc)[:120]}); fix or delete it in QuPath")
        return ann
    if not finite:
        ann.malformed = True
        ann.problems.append("geometry with NaN or infinite coordinates; fix or delete it in QuPath")
        return ann
    ann.geometry = geom
    return ann


def _classification(value: object, where: str, index: int) -> tuple[str | None, tuple[int, int, int] | None]:
    if value is None:
        return None, None
    if isinstance(value, str):  # some tools write the bare class name
        return value, None
    if not isinstance(value, dict):
        raise InputError(f"{where}: feature #{index} has a classification that is not an object")
    names = value.get("names")
    if isinstance(names, list) and names:
        name: object = ": ".join(str(n) for n in names)
    else:
        name = value.get("name")
        parent = value.get("parentClass")
        if isinstance(parent, dict):
            parent_name, _ = _classification(parent, where, index)
            if parent_name and name and not str(name).startswith(parent_name + ":"):
                name = f"{parent_name}: {name}"
    color: tuple[int, int, int] | None = None
    rgb = value.get("color")
    if isinstance(rgb, list) and len(rgb) == 3 and all(isinstance(c, int) and not isinstance(c, bool) for c in rgb):
        color = (min(max(rgb[0], 0), 255), min(max(rgb[1], 0), 255), min(max(rgb[2], 0), 255))  # odd colours: not ours to fail on
    elif isinstance(value.get("colorRGB"), int):
        packed = value["colorRGB"] & 0xFFFFFF
        color = (packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF)
    return (str(name) if name else None), color

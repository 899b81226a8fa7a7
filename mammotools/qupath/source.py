"""Where annotations come from: one interface over projects, export folders and single files.

:func:`open_source` turns what the user points at into an :class:`AnnotationSource`: a list
of :class:`SourceImage` (name, size, where the image was, how to read its annotations).
:func:`read_annotations` reads one image's objects with the reader it names. Readers are a
plain dict, so the direct ``.qpdata`` reader and the paquo route slot in as new entries
without touching the export code.

Readers (``--reader``):

* ``auto`` (default): in a project, each image's ``data/<id>/data.qpdata`` read directly
  (no QuPath, no Java, no export step), else its GeoJSON export; a folder of exports or one
  export file is read as GeoJSON;
* ``qpdata``: only ``data.qpdata`` files; ``geojson``: only GeoJSON exports;
* ``paquo``: through paquo and a local QuPath install (qupath/paquo_reader.py).

Where GeoJSON exports are looked for in a project: ``<project>/annotations/<key>.<suffix>``
where ``<key>`` is the image name (``mammo_01.png``) or its stem (``mammo_01``) and
``<suffix>`` one of :data:`~mammotools.qupath.geojson.GEOJSON_SUFFIXES`
(``qupath_scripts/export_annotations.groovy`` writes ``<stem>.geojson`` there).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mammotools.annotations import Annotation
from mammotools.defaults import READERS_OFFERED
from mammotools.errors import InputError, MissingFileError
from mammotools.files import safe_file_name
from mammotools.qupath.entries import AnnotationSource, SourceImage
from mammotools.qupath.geojson import annotation_file_key, read_geojson
from mammotools.qupath.project import find_project_file, read_project

EXPORTS_FOLDER = "annotations"

READER_CHOICES = READERS_OFFERED  # --reader: "auto" and each of READERS


def _read_qpdata(image: SourceImage) -> list[Annotation]:
    from mammotools.qupath.qpdata import read_qpdata

    assert image.annotation_path is not None
    return read_qpdata(image.annotation_path)


def _read_paquo(image: SourceImage) -> list[Annotation]:
    from mammotools.qupath.paquo_reader import read_paquo_annotations

    assert image.annotation_path is not None and image.entry_id is not None
    return read_paquo_annotations(image.annotation_path, image.entry_id)


#: reader name -> function(image) -> all objects of one image
READERS: dict[str, Callable[[SourceImage], list[Annotation]]] = {
    "geojson": lambda image: read_geojson(image.annotation_path),  # type: ignore[arg-type]
    "qpdata": _read_qpdata,
    "paquo": _read_paquo,
}


def open_source(path: str | Path, reader: str = "auto") -> AnnotationSource:
    """Open a QuPath project folder (or ``.qpproj``), a folder of GeoJSON exports, or one export."""
    path = Path(path)
    if reader not in READER_CHOICES:
        raise InputError(f"--reader {reader!r}: choose one of {', '.join(READER_CHOICES)}")
    if not path.exists():
        raise MissingFileError(f"{path}: not found; give a QuPath project folder, a folder of GeoJSON exports or a GeoJSON file")
    if find_project_file(path) is not None:
        if reader == "paquo":
            from mammotools.qupath.paquo_reader import open_paquo_project

            return open_paquo_project(path)
        return _open_project(path, reader)
    if reader in ("qpdata", "paquo"):
        raise InputError(f"{path}: --reader {reader} needs a QuPath project folder (with project.qpproj)")
    if path.is_dir():
        if (path / "manifest.csv").is_file() and (path / "classes.json").is_file():
            raise InputError(
                f"{path}: a mammotools dataset (export-qupath, make-crops or augment output), not QuPath "
                "annotations; give the QuPath project folder or its GeoJSON exports"
            )
        files = sorted(p for p in path.iterdir() if p.is_file() and annotation_file_key(p))
        if not files:
            raise InputError(
                f"{path}: neither a QuPath project (no project.qpproj) nor a folder of GeoJSON exports "
                "(no .geojson/.json/.gz/.zip files); point at the project folder or the exports"
            )
        images = _images_from_files(files, path)
        return AnnotationSource(path, "folder", None, images)
    key = annotation_file_key(path)
    if key is None:
        raise InputError(f"{path}: not a GeoJSON export (.geojson, .json, .gz, .zip) nor a project.qpproj")
    return AnnotationSource(path, "file", None, [SourceImage(key, annotation_path=path, reader="geojson")])


def nothing_to_read(source: AnnotationSource, reader: str) -> str | None:
    """The error for a project in which the reader finds annotations for no image at all, else None."""
    if not source.images or any(image.reader is not None for image in source.images):
        return None
    n = len(source.images)
    exports = f"GeoJSON exports in {source.path / EXPORTS_FOLDER} (qupath_scripts/export_annotations.groovy writes them)"
    found = {
        "qpdata": f"no data/<id>/data.qpdata for any of its {n} image(s) (QuPath writes it when an image is saved); "
        f"save the images in QuPath, or read {exports} with --reader geojson",
        "geojson": f"none of its {n} image(s) has a GeoJSON export in {source.path / EXPORTS_FOLDER}; run "
        "qupath_scripts/export_annotations.groovy for the project, or read its data.qpdata files with --reader qpdata",
    }.get(
        reader,
        f"none of its {n} image(s) has a data.qpdata file or a GeoJSON export; save the images in QuPath, or write {exports}",
    )
    return f"{source.path}: {found}"


def read_annotations(image: SourceImage) -> list[Annotation]:
    """Every object QuPath holds for ``image`` (callers keep ``is_annotation`` ones)."""
    if image.reader is None or image.annotation_path is None:
        return []
    return READERS[image.reader](image)


def _open_project(path: Path, reader: str) -> AnnotationSource:
    project = read_project(path)
    exports_dir = project.path / EXPORTS_FOLDER
    exports: dict[str, list[Path]] = {}
    if exports_dir.is_dir():
        for p in sorted(exports_dir.iterdir()):
            key = annotation_file_key(p) if p.is_file() else None
            if key is not None:
                exports.setdefault(key, []).append(p)
    images = []
    for entry in project.entries:
        image = SourceImage(
            name=entry.name,
            entry_id=entry.entry_id,
            width=entry.width,
            height=entry.height,
            image_uri=entry.uri,
            image_path_hint=entry.uri_path,
            metadata=entry.metadata,
            rotation=entry.rotation,
            pixel_type=entry.pixel_type,
        )
        keys = dict.fromkeys([entry.name, image.stem, safe_file_name(image.stem)])
        found = next((exports[k] for k in keys if k in exports), [])
        if len(found) > 1:
            raise InputError(
                f"{exports_dir}: several exports for image {entry.name!r} ({', '.join(p.name for p in found)}); keep one"
            )
        qpdata = entry.data_dir / "data.qpdata" if entry.data_dir is not None else None
        if qpdata is not None and qpdata.is_file() and reader in ("auto", "qpdata"):
            image.annotation_path, image.reader = qpdata, "qpdata"
        elif found and reader in ("auto", "geojson"):
            image.annotation_path, image.reader = found[0], "geojson"
        elif reader == "qpdata":
            image.problems.append(f"no data/{entry.entry_id}/data.qpdata in the project; QuPath saves it with the image")
        else:
            image.problems.append(
                f"no GeoJSON export in {exports_dir} (expected {image.stem}.geojson)"
                + (" and no data.qpdata" if reader == "auto" else "")
                + "; run qupath_scripts/export_annotations.groovy in QuPath for this project"
            )
        images.append(image)
    return AnnotationSource(project.path, "project", project.version, images, project.path_classes)


def _images_from_files(files: list[Path], folder: Path) -> list[SourceImage]:
    by_key: dict[str, Path] = {}
    for p in files:
        key = annotation_file_key(p)
        assert key is not None
        if key in by_key:
            raise InputError(f"{folder}: {by_key[key].name} and {p.name} are both annotations of image {key!r}; keep one")
        by_key[key] = p
    return [SourceImage(k, annotation_path=p, reader="geojson") for k, p in by_key.items()]

"""The paquo route (``--reader paquo``), for users with QuPath installed.

paquo drives QuPath's own Java code through a JVM, so what it reads is what QuPath sees; it
needs a local QuPath (found through ``PAQUO_QUPATH_DIR`` or paquo's search of common install
folders). Importing ``paquo.projects`` starts the JVM, so it happens here, lazily, and any
failure becomes one :class:`PaquoUnavailableError` line keeping paquo's message and naming the
two ways on. Annotations are read in the main process (the JVM is not shared with workers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mammotools.annotations import Annotation
from mammotools.errors import MammoError
from mammotools.qupath.entries import AnnotationSource, SourceImage

_PROJECTS: dict[Path, Any] = {}  # opened paquo projects, one per path per process (JVM objects)


class PaquoUnavailableError(MammoError, RuntimeError):
    """paquo or QuPath is missing or cannot start."""


def paquo_projects_module() -> Any:
    """``paquo.projects``, imported now (this starts the JVM), or a clear error."""
    try:
        import paquo.projects
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "paquo":
            raise PaquoUnavailableError(
                "--reader paquo: paquo is not installed; `pip install paquo` and install QuPath, "
                "or read the project without QuPath with --reader auto"
            ) from None
        raise PaquoUnavailableError(f"--reader paquo: paquo could not start ({exc})") from None
    except Exception as exc:  # paquo raises ValueError, FileNotFoundError or jpype errors
        raise PaquoUnavailableError(
            f"--reader paquo: paquo could not start QuPath ({type(exc).__name__}: {exc}). Either install QuPath "
            "0.2-0.6 and set PAQUO_QUPATH_DIR to its folder, or read the project without QuPath: --reader auto "
            "(its data.qpdata files) or GeoJSON exports from qupath_scripts/export_annotations.groovy"
        ) from None
    return paquo.projects


def _project(path: Path) -> Any:
    key = path.resolve()
    if key not in _PROJECTS:
        module = paquo_projects_module()
        _PROJECTS[key] = module.QuPathProject(key, mode="r")
    return _PROJECTS[key]


def open_paquo_project(path: str | Path) -> AnnotationSource:
    """An :class:`~mammotools.qupath.entries.AnnotationSource` listing the project's images via paquo."""
    folder = Path(path)
    folder = folder.parent if folder.suffix == ".qpproj" else folder
    project = _project(folder)
    images = []
    for entry in project.images:
        uri = str(entry.uri) if getattr(entry, "uri", None) else None
        hint = None
        if uri and uri.startswith("file:"):
            from urllib.parse import unquote, urlparse

            hint = Path(unquote(urlparse(uri).path))
        metadata = {str(k): str(v) for k, v in dict(getattr(entry, "metadata", {}) or {}).items()}
        images.append(
            SourceImage(
                name=str(entry.image_name),
                entry_id=int(entry.entry_id),
                width=int(entry.width) if entry.width else None,
                height=int(entry.height) if entry.height else None,
                image_uri=uri,
                image_path_hint=hint,
                annotation_path=folder,
                reader="paquo",
                metadata=metadata,
            )
        )
    version = getattr(project, "version", None)
    return AnnotationSource(folder, "project", str(version) if version else None, images)


def read_paquo_annotations(project_path: Path, entry_id: int) -> list[Annotation]:
    """Annotations and detections of one image, read through paquo."""
    project = _project(project_path)
    entry = next((e for e in project.images if int(e.entry_id) == entry_id), None)
    if entry is None:
        raise MammoError(f"{project_path}: paquo finds no image with entry id {entry_id}")
    out: list[Annotation] = []
    hierarchy = entry.hierarchy
    for kind, objects in (("annotation", hierarchy.annotations), ("detection", hierarchy.detections)):
        for obj in objects:
            out.append(_annotation(obj, kind, str(project_path), len(out) + 1))
    return out


def _annotation(obj: Any, object_type: str, source: str, index: int) -> Annotation:
    path_class = obj.path_class
    class_name = color = None
    if path_class is not None:
        # .id is QuPath's toString(): the full derived name ("Tumor: Positive"); .name the last part
        class_name = str(getattr(path_class, "id", None) or path_class.name)
        if path_class.color is not None:
            r, g, b = path_class.color.to_rgb()
            color = (int(r), int(g), int(b))
    return Annotation(
        geometry=obj.roi,
        class_name=class_name,
        object_type=object_type,
        name=obj.name,
        color=color,
        locked=bool(getattr(obj, "locked", False)),
        source=source,
        index=index,
    )

"""The ``.qpdata`` file read from end to end: its layout, and the public read functions.

A ``.qpdata`` file is one Java ``ObjectOutputStream`` (QuPath's ``PathIO.writeImageDataSerialized``)
holding, in order (QuPath 0.2 to 0.7 alike):

1. ``writeUTF("Data file version N")``: N = 2 (QuPath 0.2) or 3 (0.3 to 0.7). QuPath 0.4+
   also knows a layout 4 (object UUIDs as fields) that no release can write yet (``PathIO``
   refuses to request a version above 3); it is read anyway;
2. a String: ``"Image path: <path>"`` (version 2) or JSON ``{dataVersion, qupathVersion,
   server: <ServerBuilder>, id?}`` (version 3);
3. a ``java.util.Locale``, the ``ImageData$ImageType`` enum, the ``ColorDeconvolutionStains``
   (or null) and the command-history ``Workflow``;
4. the ``PathObjectHierarchy`` (Serializable; fields ``rootObject``, then ``tmaGrid`` whose cores
   are back-references to children of the root);
5. a ``HashMap`` of image properties and the String ``"EOF"``.

``_QpdataStream`` is the grammar of :mod:`.stream` told about QuPath's classes (:mod:`.objects`)
and ROIs (:mod:`.rois`); the functions here walk that layout and make the objects.

Each object becomes an :class:`~mammotools.annotations.Annotation`: ``object_type``
(annotation, detection, cell, tile, tmaCore; a plugin's subclass as its nearest QuPath
ancestor, noted in ``problems``), ``class_name`` (``"Tumor: Positive"`` for a derived class,
None when unclassified), ``name``, ``locked``, ``object_id`` (the UUID that QuPath 0.4+ stores
and exports as the GeoJSON ``id``; None in 0.2/0.3 files), ``color`` (the object's own colour,
else its class's colour, as :func:`~mammotools.qupath.geojson.read_geojson` reports the
classification colour; None if neither), ``geometry`` (a cell's boundary; its nucleus is
ignored), ``source`` (the file) and ``index`` (1-based). Measurements are skipped. ``problems``
notes what could not be drawn (no ROI, an unknown ROI class, non-finite coordinates...).

Nesting: :func:`read_qpdata` returns the objects depth first (a parent, then its descendants,
then its next sibling): QuPath's own order. :func:`read_qpdata_tree` returns the same objects
as :class:`QpdataNode` trees (``children``, ``depth``).

Safety: any malformed or truncated file raises :class:`QpdataError` (with the byte offset); an
unexpected exception from the parser becomes one too, unless ``SAFETY_NET`` (read here, at each
call) is switched off, as the tests do to see the parser's own failures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import shapely

from mammotools.annotations import Annotation
from mammotools.errors import InputError, MissingFileError
from mammotools.qupath.qpdata.javaio import _MAGIC, _U2, QpdataError, _decode_modified_utf8, _JEnum, _JObj
from mammotools.qupath.qpdata.objects import (
    _HIERARCHY,
    _IMAGE_TYPE,
    _METADATA_MAP,
    _PATH_CLASS,
    _PATH_OBJECT_KINDS,
    QpdataHeader,
    _class_name,
    _header_from_string,
    _PathNode,
    _read_path_object,
)
from mammotools.qupath.qpdata.rois import _EMPTY, _POLYGON_PROXY, _ROI_KINDS, _make_polygons, _roi_geometry, _rounder
from mammotools.qupath.qpdata.stream import _Stream

_T = TypeVar("_T")

MAX_FILE_BYTES = 4 * 1024**3  # refuse absurd inputs instead of exhausting memory
HEADER_READ_BYTES = 1 << 20  # read_qpdata_header reads this much first (more only if needed)
SAFETY_NET = True  # unexpected exceptions become QpdataError (tests switch it off)

_FIX_NOT_QPDATA = "point to a QuPath project's data/<id>/data.qpdata file, or use a GeoJSON export"


@dataclass
class QpdataNode:
    """One object of the hierarchy with its child objects (see :func:`read_qpdata_tree`)."""

    annotation: Annotation
    depth: int  # 1 for children of the image's root object
    children: list[QpdataNode] = field(default_factory=list)


_NEEDED_CLASSES = frozenset({"java.util.UUID", _PATH_CLASS, _METADATA_MAP, _HIERARCHY, _IMAGE_TYPE, *_ROI_KINDS})


class _QpdataStream(_Stream):
    """The stream of a ``.qpdata`` file: QuPath's path objects become ``_PathNode``; ROIs and the
    classes the reader looks at are never skipped."""

    kinds = _PATH_OBJECT_KINDS
    needed = _NEEDED_CLASSES
    read_external = _read_path_object


def _read_bytes(path: Path, limit: int | None = None) -> tuple[bytes, bool]:
    """The file's bytes (at most ``limit``) and whether that is the whole file."""
    if not path.is_file():
        raise MissingFileError(f"{path}: QuPath data file not found")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise QpdataError(f"{path}: larger than {MAX_FILE_BYTES >> 30} GiB at byte offset 0; split the image's objects", 0)
    try:
        with path.open("rb") as fh:
            data = fh.read(limit) if limit is not None else fh.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc}); check the file's permissions") from None
    return data, len(data) >= size


def _start(stream: _Stream) -> tuple[int | None, str]:
    """Check the magic number and read the ``Data file version N`` line."""
    if stream.n < 4 or stream.data[:4] != _MAGIC:
        raise stream.fail("not a Java serialization stream (no AC ED 00 05 header)", 0, fix=_FIX_NOT_QPDATA)
    stream.pos = 4
    first = stream.top_level()
    if not isinstance(first, bytearray) or len(first) < 2:
        raise stream.fail("no 'Data file version' line", 4, fix=_FIX_NOT_QPDATA)
    (length,) = _U2.unpack_from(first, 0)
    if length + 2 > len(first):
        raise stream.fail("the 'Data file version' line is cut short", 4)
    line = _decode_modified_utf8(bytes(first[2 : 2 + length]))
    if not line.startswith("Data file version"):
        raise stream.fail(f"starts with {line[:40]!r} instead of 'Data file version'", 4, fix=_FIX_NOT_QPDATA)
    digits = line[len("Data file version") :].strip().split(".")[0]
    return (int(digits) if digits.isdigit() else None), line


def read_qpdata_header(path: str | Path) -> QpdataHeader:
    """The data version, QuPath version, image and image type of a ``.qpdata`` file.

    Cheap: reads the first megabyte (more only if the header is longer) and stops after the
    image type, before the objects.
    """
    path = Path(path)
    data, complete = _read_bytes(path, HEADER_READ_BYTES)
    stream = _QpdataStream(data, str(path))
    try:
        return _guarded(stream, lambda: _read_header(stream))
    except QpdataError as err:
        if complete or not err.truncated:
            raise
    data, _ = _read_bytes(path)  # a header longer than HEADER_READ_BYTES
    stream = _QpdataStream(data, str(path))
    return _guarded(stream, lambda: _read_header(stream))


def _read_header(stream: _Stream) -> QpdataHeader:
    version, _ = _start(stream)
    header = QpdataHeader(version, None, None, None)
    _header_from_string(header, stream.top_level())
    for _ in range(3):  # the Locale, then the ImageType enum
        value = stream.top_level()
        if isinstance(value, _JEnum) and value.class_name == _IMAGE_TYPE:
            header.image_type = value.constant  # type: ignore[assignment]
            break
        if isinstance(value, _JObj) and value.desc.name == _HIERARCHY:
            break
    return header


def _guarded(stream: _Stream, work: Callable[[], _T]) -> _T:
    """Run ``work``; any failure other than QpdataError (a safety net) becomes one too."""
    try:
        return work()
    except QpdataError:
        raise
    except RecursionError:
        raise stream.fail("objects nested too deeply") from None
    except MemoryError:
        raise stream.fail("too large to read into memory", fix="split the image's objects over several images") from None
    except Exception as exc:
        if not SAFETY_NET:  # tests turn the net off to see the reader's own failures
            raise
        raise stream.fail(f"unreadable data ({type(exc).__name__}: {exc})") from None


def _read_root(stream: _Stream) -> tuple[QpdataHeader, _PathNode | None]:
    """Parse the whole stream; the header and the hierarchy's root object."""
    version, _ = _start(stream)
    header = QpdataHeader(version, None, None, None)
    _header_from_string(header, stream.top_level())
    root: _PathNode | None = None
    found = False
    while True:
        try:
            value = stream.top_level()
        except QpdataError as err:
            if err.truncated and found:  # as QuPath: an early end after the hierarchy is tolerated
                break
            raise
        if isinstance(value, str) and value == "EOF":
            break
        if isinstance(value, _JEnum) and value.class_name == _IMAGE_TYPE and header.image_type is None:
            header.image_type = value.constant  # type: ignore[assignment]
        elif isinstance(value, _JObj) and value.desc.name == _HIERARCHY:
            candidate = value.fields.get("rootObject")
            if candidate is not None and not isinstance(candidate, _PathNode):
                raise stream.fail("the hierarchy's root is not a QuPath object", value.offset)
            root = candidate
            found = True
    if not found:
        raise stream.fail("no object hierarchy in the file", stream.pos)
    return header, root


def read_qpdata_tree(
    path: str | Path, *, precision: float | None = 0.01, ellipse_tolerance: float | None = None
) -> list[QpdataNode]:
    """The objects of a ``.qpdata`` file as trees: the children of the image's root object.

    ``precision`` and ``ellipse_tolerance``: see :mod:`.rois` (the defaults give the
    geometries QuPath itself shows and exports).
    """
    path = Path(path)
    data, _ = _read_bytes(path)
    stream = _QpdataStream(data, str(path))
    _, root = _guarded(stream, lambda: _read_root(stream))
    if root is None:
        return []
    return _guarded(stream, lambda: _build_nodes(stream, root, precision, ellipse_tolerance))


def read_qpdata(path: str | Path, *, precision: float | None = 0.01, ellipse_tolerance: float | None = None) -> list[Annotation]:
    """Every object of a ``.qpdata`` file except the root, depth first (QuPath's order).

    Annotations, detections, cells (their boundary; the nucleus is ignored), tiles and TMA
    cores. Raises :class:`QpdataError` (naming the file and the byte offset) for a damaged
    file and ``MissingFileError`` for a missing one.
    """
    out: list[Annotation] = []
    stack = list(reversed(read_qpdata_tree(path, precision=precision, ellipse_tolerance=ellipse_tolerance)))
    while stack:
        node = stack.pop()
        out.append(node.annotation)
        stack.extend(reversed(node.children))
    return out


def _build_nodes(stream: _Stream, root: _PathNode, precision: float | None, ellipse_tolerance: float | None) -> list[QpdataNode]:
    rounder = _rounder(precision)
    source = stream.where
    index = 0
    top: list[QpdataNode] = []
    polygons: list[tuple[Annotation, _JObj]] = []  # polygon ROIs, made in one vectorized batch
    classes: dict[int, tuple[str | None, int | None]] = {}
    # (node, depth, the list its QpdataNode goes into); children pushed in reverse for pre-order
    stack: list[tuple[_PathNode, int, list[QpdataNode]]] = [(child, 1, top) for child in reversed(root.children)]
    seen: set[int] = {id(root)}
    while stack:
        node, depth, siblings = stack.pop()
        if id(node) in seen:
            raise stream.fail("an object that is its own ancestor or appears twice in the hierarchy", node.offset)
        seen.add(id(node))
        if node.kind in ("root", "base"):  # not an object with a ROI: keep its children in its place
            stack.extend((child, depth, siblings) for child in reversed(node.children))
            continue
        index += 1
        key = id(node.path_class)
        if key not in classes:
            classes[key] = _class_name(node.path_class)
        class_name, class_color = classes[key]
        rgb = node.color if node.color is not None else class_color
        ann = Annotation(
            geometry=_EMPTY,
            class_name=class_name,
            object_type=node.kind,
            name=node.name,
            object_id=node.object_id,
            color=None if rgb is None else ((rgb >> 16) & 0xFF, (rgb >> 8) & 0xFF, rgb & 0xFF),
            locked=node.locked,
            source=source,
            index=index,
            problems=list(node.problems),
        )
        roi = node.roi
        if isinstance(roi, _JObj) and roi.desc.name == _POLYGON_PROXY:
            polygons.append((ann, roi))
        else:
            try:
                geometry, problem = _roi_geometry(roi, rounder, ellipse_tolerance)
            except (ValueError, TypeError, shapely.errors.GEOSException) as exc:
                offset = roi.offset if isinstance(roi, _JObj) else node.offset
                raise stream.fail(f"{ann.describe()} has a malformed ROI ({exc})", offset) from None
            ann.geometry = geometry
            if problem:
                ann.problems.append(problem)
        qn = QpdataNode(ann, depth)
        siblings.append(qn)
        stack.extend((child, depth + 1, qn.children) for child in reversed(node.children))
    if polygons:
        _make_polygons(stream, polygons, rounder)
    return top

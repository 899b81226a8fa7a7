"""QuPath's classes as they appear in the stream: path objects, PathClass, MetadataMap, the header.

Path objects (``PathRootObject``, ``PathAnnotationObject``, ``PathDetectionObject``,
``PathCellObject``, ``PathTileObject``, ``TMACoreObject``) are ``Externalizable``: their data is
one block-data section per *object* (not one per class of its hierarchy, which is what trips
generic Java-serialization readers), holding::

    name (String|null), colour (Integer|null),
    layout <= 3: [MetadataMap] (0.2, 0.3: only if the object has metadata; 0.4 to 0.7: always,
                 holding the object's UUID as "Object ID"), MeasurementList|null
                 (NumericMeasurementList$FloatList, or DefaultMeasurementList: an ArrayList
                 of DoubleMeasurement{value, name}, one Java object per measurement)
    layout 4:    UUID, int nFields, nFields x (MetadataMap|MeasurementList|null), where QuPath
                 0.6+ counts an empty MetadataMap that it does not write
    int nChildren, the children (depth first),
    PathROIObject adds: Boolean locked (absent in very old files), PathClass|null, ROI, double probability
    PathCellObject adds: the nucleus ROI;  TMACoreObject adds: boolean isMissing

``_read_path_object`` reads that data into a ``_PathNode`` (its ROI still the proxy object of
:mod:`.rois`); measurements are skipped. Externalizable subclasses of QuPath's path objects
(plugins) are read as their nearest known QuPath ancestor.

``PathClass`` is default-serialized (``parentClass``, ``name``, ``colorRGB``; derived classes
chain through ``parentClass``; a class whose name is null is QuPath's NULL_CLASS).

The header: a String, ``"Image path: <path>"`` (data version 2) or JSON ``{dataVersion,
qupathVersion, server: <ServerBuilder>, id?}`` (version 3), read into a :class:`QpdataHeader`
with the ``ImageData$ImageType`` enum that follows it.
"""

from __future__ import annotations

import json
import struct
import uuid
from dataclasses import dataclass
from typing import TypeGuard

from mammotools.qupath.qpdata.javaio import _F8, _I4, MAX_CLASS_CHAIN, QpdataError, _ClassDesc, _JObj
from mammotools.qupath.qpdata.stream import _Stream

_PATH_OBJECT_KINDS = {  # QuPath class -> object_type; "root" and "base" are not returned
    "qupath.lib.objects.PathRootObject": "root",
    "qupath.lib.objects.PathAnnotationObject": "annotation",
    "qupath.lib.objects.PathCellObject": "cell",
    "qupath.lib.objects.PathTileObject": "tile",
    "qupath.lib.objects.PathDetectionObject": "detection",
    "qupath.lib.objects.TMACoreObject": "tmaCore",
    "qupath.lib.objects.PathROIObject": "roi",  # an unknown direct subclass of PathROIObject
    "qupath.lib.objects.PathObject": "base",  # an unknown direct subclass of PathObject
}
_PATH_CLASS = "qupath.lib.objects.classes.PathClass"
_METADATA_MAP = "qupath.lib.objects.MetadataMap"
_HIERARCHY = "qupath.lib.objects.hierarchy.PathObjectHierarchy"
_IMAGE_TYPE = "qupath.lib.images.ImageData$ImageType"
_OBJECT_ID_KEY = "Object ID"


@dataclass
class QpdataHeader:
    """What a ``.qpdata`` file says about itself before its objects."""

    data_version: int | None  # 2 (QuPath 0.2), 3 (0.3 to 0.7)
    qupath_version: str | None  # the QuPath that wrote it (data version 3 only)
    server_path: str | None  # the image: the server builder's URI (v3) or "Image path: ..." (v2)
    image_type: str | None  # BRIGHTFIELD_H_E, FLUORESCENCE, OTHER...
    server: dict | None = None  # the whole server-builder JSON (data version 3), for the curious


class _PathNode:
    """A QuPath path object as read (geometry not made yet)."""

    __slots__ = (
        "children",
        "class_name",
        "color",
        "kind",
        "locked",
        "name",
        "object_id",
        "offset",
        "path_class",
        "problems",
        "roi",
    )

    def __init__(self, kind: str, class_name: str, offset: int) -> None:
        self.kind = kind
        self.class_name = class_name
        self.offset = offset
        self.name: str | None = None
        self.color: int | None = None
        self.object_id: str | None = None
        self.locked = False
        self.path_class: object = None
        self.roi: object = None
        self.children: list[_PathNode] = []
        self.problems: list[str] = []


class _Items:
    """A cursor over an Externalizable object's data, read as its readExternal would."""

    __slots__ = ("buf_pos", "i", "items", "offset", "stream")

    def __init__(self, stream: _Stream, items: list[object], offset: int) -> None:
        self.stream = stream
        self.items = items
        self.i = 0
        self.buf_pos = 0
        self.offset = offset

    def fail(self, what: str) -> QpdataError:
        return self.stream.fail(what, self.offset)

    def at_object(self) -> bool:
        """True if the next item is an object (not primitive data, not the end)."""
        self._skip_used_bytes()
        return self.i < len(self.items) and type(self.items[self.i]) is not bytearray

    def _skip_used_bytes(self) -> None:
        items = self.items
        if self.i < len(items) and type(items[self.i]) is bytearray and self.buf_pos >= len(items[self.i]):  # type: ignore[arg-type]
            self.i += 1
            self.buf_pos = 0

    def obj(self, what: str) -> object:
        self._skip_used_bytes()
        if self.i >= len(self.items):
            raise self.fail(f"{what} is missing from the object's data")
        item = self.items[self.i]
        if type(item) is bytearray:
            raise self.fail(f"primitive data where {what} was expected")
        self.i += 1
        return item

    def prim(self, st: struct.Struct, what: str) -> object:
        self._skip_used_bytes()
        if self.i >= len(self.items) or type(self.items[self.i]) is not bytearray:
            raise self.fail(f"{what} is missing from the object's data")
        buf: bytearray = self.items[self.i]  # type: ignore[assignment]
        if self.buf_pos + st.size > len(buf):
            raise self.fail(f"{what} is cut short in the object's data")
        (value,) = st.unpack_from(buf, self.buf_pos)
        self.buf_pos += st.size
        return value


def _is(value: object, class_name: str) -> TypeGuard[_JObj]:
    return isinstance(value, _JObj) and value.desc.name == class_name


def _boxed(value: object) -> object:
    """The value of a java.lang.Integer/Boolean/Double... (field ``value``), else None."""
    if isinstance(value, _JObj) and value.desc.name.startswith("java.lang."):
        return value.fields.get("value")
    return None


def _read_path_object(stream: _Stream, desc: _ClassDesc, items: list[object], offset: int) -> _PathNode:
    """A PathObject from its writeExternal data (see the module docstring for the layout)."""
    kind = desc.kind or "base"
    node = _PathNode(kind, desc.name, offset)
    cur = _Items(stream, items, offset)
    name = cur.obj("the object's name")
    node.name = name if isinstance(name, str) else None
    color = _boxed(cur.obj("the object's colour"))
    node.color = color if isinstance(color, int) and not isinstance(color, bool) else None
    nxt = cur.obj("the object's metadata or measurements")
    if _is(nxt, "java.util.UUID"):  # data file version 4
        f = nxt.fields
        node.object_id = _uuid_string(f.get("mostSigBits"), f.get("leastSigBits"))
        n_fields = cur.prim(_I4, "the number of fields")
        for _ in range(max(0, min(n_fields, len(items)))):  # type: ignore[call-overload]
            if not cur.at_object():  # QuPath 0.6 counts an empty metadata map it does not write
                break
            _apply_metadata(node, cur.obj("a field"))
    else:
        if _is(nxt, _METADATA_MAP):
            _apply_metadata(node, nxt)
            cur.obj("the object's measurements")
    n_children = cur.prim(_I4, "the number of child objects")
    if n_children < 0 or n_children > len(items):  # type: ignore[operator]
        raise cur.fail(f"invalid number of child objects ({n_children})")
    children = node.children
    for _ in range(n_children):  # type: ignore[call-overload]
        child = cur.obj("a child object")
        if not isinstance(child, _PathNode):
            what = child.desc.name if isinstance(child, _JObj) else type(child).__name__
            raise cur.fail(f"a child object that is not a QuPath object ({what})")
        children.append(child)
    if kind in ("root", "base"):
        return node
    first = cur.obj("the object's classification")
    locked = _boxed(first)
    if isinstance(locked, bool):
        node.locked = locked
        first = cur.obj("the object's classification")
    node.path_class = first if _is(first, _PATH_CLASS) else None
    node.roi = cur.obj("the object's ROI")
    cur.prim(_F8, "the classification probability")
    # PathCellObject: the nucleus ROI follows; TMACoreObject: boolean isMissing. Neither is needed.
    if kind == "roi":
        node.problems.append(f"unknown QuPath object class {desc.name}, read as an annotation")
        node.kind = "annotation"
    elif desc.name not in _PATH_OBJECT_KINDS:
        node.problems.append(f"QuPath object class {desc.name} (from a plugin) read as a {kind}")
    return node


def _uuid_string(msb: object, lsb: object) -> str | None:
    if not isinstance(msb, int) or not isinstance(lsb, int):
        return None
    return str(uuid.UUID(int=((msb & 0xFFFFFFFFFFFFFFFF) << 64) | (lsb & 0xFFFFFFFFFFFFFFFF)))


def _apply_metadata(node: _PathNode, value: object) -> None:
    """Take the object ID out of a MetadataMap (``writeExternal``: Integer 1, keys[], values[])."""
    if not _is(value, _METADATA_MAP):
        return
    extra = value.extra
    if len(extra) >= 3 and isinstance(extra[1], list) and isinstance(extra[2], list):
        for key, val in zip(extra[1], extra[2], strict=False):
            if key == _OBJECT_ID_KEY and isinstance(val, str) and node.object_id is None:
                node.object_id = val


def _class_name(path_class: object) -> tuple[str | None, int | None]:
    """``"Tumor: Positive"`` and the class colour of a PathClass (None for NULL_CLASS)."""
    names: list[str] = []
    color = None
    pc = path_class
    seen = 0
    while _is(pc, _PATH_CLASS) and seen < MAX_CLASS_CHAIN:
        fields = pc.fields
        name = fields.get("name")
        if seen == 0:
            c = _boxed(fields.get("colorRGB"))
            color = c if isinstance(c, int) and not isinstance(c, bool) else None
        if isinstance(name, str):
            names.append(name)
        pc = fields.get("parentClass")
        seen += 1
    if not names:
        return None, None
    return ": ".join(reversed(names)), color


def _header_from_string(header: QpdataHeader, text: object) -> None:
    if not isinstance(text, str):
        return
    if text.startswith("Image path: "):
        header.server_path = text[len("Image path: ") :]
        return
    try:
        info = json.loads(text)
    except ValueError:
        return
    if not isinstance(info, dict):
        return
    version = info.get("qupathVersion")
    header.qupath_version = version if isinstance(version, str) else None
    if header.data_version is None and isinstance(info.get("dataVersion"), int):
        header.data_version = info["dataVersion"]
    server = info.get("server")
    header.server = server if isinstance(server, dict) else None
    header.server_path = _server_uri(server) or (info.get("id") if isinstance(info.get("id"), str) else None)


def _server_uri(server: object) -> str | None:
    """The image URI of a (possibly wrapped: rotated, channels, pyramidize...) server builder."""
    for _ in range(32):
        if not isinstance(server, dict):
            return None
        uri = server.get("uri")
        if isinstance(uri, str):
            return uri
        uris = server.get("uris")
        if isinstance(uris, list) and uris and isinstance(uris[0], str):
            return uris[0]
        server = server.get("builder")
    return None

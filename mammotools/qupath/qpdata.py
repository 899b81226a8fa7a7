"""QuPath's ``data.qpdata`` files read directly: no QuPath, no Java, nothing executed.

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

``PathClass`` is default-serialized (``parentClass``, ``name``, ``colorRGB``; derived classes
chain through ``parentClass``; a class whose name is null is QuPath's NULL_CLASS). ROIs are
written through serialization proxies, identical from 0.2 to 0.7: ``PolygonROI``, ``PolylineROI``
and ``PointsROI`` as ``float[] x, y``; ``RectangleROI``, ``EllipseROI`` and ``LineROI`` as
``double x, y, x2, y2`` (two corners / the two end points); ``AreaROI`` as ``float[][] x, y``
(closed sub-paths filled with Java's non-zero winding rule); any other geometry as
``GeometryROI$WKBSerializationProxy{byte[] wkb}`` (2D big-endian JTS WKB). Each proxy also has
``int c, z, t`` (the image plane, ignored here) and cached statistics (skipped).

How geometries are made (``precision=0.01``, the default, reproduces what QuPath itself shows
and exports as GeoJSON, so both routes into mammotools give the same shapes):

* every coordinate is rounded to QuPath's 0.01 px grid (JTS ``PrecisionModel``: ``floor(v * 100
  + 0.5) / 100``); ``precision=None`` keeps the stored float values;
* an ellipse becomes the same 100-vertex polygon QuPath's JTS ``GeometricShapeFactory`` makes
  (vertex i at angle ``2*pi*i/100``, inscribed). Its largest distance to the true ellipse is
  ``a * (1 - cos(pi/100)) ~= 4.9e-4 * a`` for the semi-major axis a (0.025 px for a = 50 px, 0.5
  px for a = 1000 px), plus the 0.005 px grid rounding. ``ellipse_tolerance=t`` instead picks
  n vertices so that ``a * (1 - cos(pi/n))`` stays below ``t`` px: exact for a circle and an
  upper bound for an ellipse (its polygon is the circle's under an affine map that shrinks
  distances), so the polygon is the true ellipse to within t (before grid rounding);
* a polygon that is not valid (self-intersecting) and every area ROI are filled with the
  non-zero winding rule, as QuPath's ``java.awt.geom.Area`` conversion does;
* points: a Point for one point, else a MultiPoint; lines and polylines: a LineString.

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

Safety: the stream is parsed by hand (the grammar of the Java Object Serialization
Specification, chapter 6); nothing is instantiated or executed. Recursion depth, object count
and sizes are bounded, every claimed length is checked against the bytes left before anything
is allocated, and every loop consumes input, so any malformed or truncated file raises
:class:`QpdataError` (with the byte offset), parsing in time linear in its size (the repair of
self-intersecting polygons aside, which costs what shapely's noding costs). Classes this reader
does not know are skipped through their class descriptors (Serializable) or to the end of their
block data (Externalizable); Externalizable subclasses of QuPath's path objects (plugins) are
read as their nearest known QuPath ancestor.
"""

from __future__ import annotations

import json
import math
import re
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from mammotools.annotations import Annotation
from mammotools.errors import InputError, MissingFileError

_T = TypeVar("_T")

MAX_FILE_BYTES = 4 * 1024**3  # refuse absurd inputs instead of exhausting memory
MAX_DEPTH = 200  # nesting of objects in the stream (each hierarchy level costs two)
MAX_OBJECTS = 100_000_000  # Java objects (handles) in one stream
MAX_CLASS_CHAIN = 64  # superclasses of one class
HEADER_READ_BYTES = 1 << 20  # read_qpdata_header reads this much first (more only if needed)
QUPATH_ELLIPSE_VERTICES = 100  # JTS GeometricShapeFactory's default, which QuPath uses
SAFETY_NET = True  # unexpected exceptions become QpdataError (tests switch it off)
WINDING_CHUNK = 1 << 21  # elements per temporary when filling self-crossing areas
MAX_WINDING_WORK = 50_000_000  # faces x vertices beyond which an area is refused, not filled
MAX_ELLIPSE_VERTICES = 100_000  # with ellipse_tolerance

_FIX_CORRUPT = (
    "the file is damaged or truncated: open the project in QuPath and save the image again, "
    "or export GeoJSON with qupath_scripts/export_annotations.groovy"
)
_FIX_NOT_QPDATA = "point to a QuPath project's data/<id>/data.qpdata file, or use a GeoJSON export"

# Java Object Serialization Specification, 6.4.2 (terminal symbols and constants)
_MAGIC = b"\xac\xed\x00\x05"
TC_NULL = 0x70
TC_REFERENCE = 0x71
TC_CLASSDESC = 0x72
TC_OBJECT = 0x73
TC_STRING = 0x74
TC_ARRAY = 0x75
TC_CLASS = 0x76
TC_BLOCKDATA = 0x77
TC_ENDBLOCKDATA = 0x78
TC_RESET = 0x79
TC_BLOCKDATALONG = 0x7A
TC_EXCEPTION = 0x7B
TC_LONGSTRING = 0x7C
TC_PROXYCLASSDESC = 0x7D
TC_ENUM = 0x7E
_BASE_HANDLE = 0x7E0000
SC_WRITE_METHOD = 0x01
SC_SERIALIZABLE = 0x02
SC_EXTERNALIZABLE = 0x04
SC_BLOCK_DATA = 0x08
SC_ENUM = 0x10

_U1 = struct.Struct(">B")
_U2 = struct.Struct(">H")
_I4 = struct.Struct(">i")
_I8 = struct.Struct(">q")
_F8 = struct.Struct(">d")
_BOOL = struct.Struct(">?")
_UUID_FIELDS = struct.Struct(">qq")

# field type code -> (struct code, size); object types "L" and "[" are read as objects
_PRIMITIVES = {
    ord("B"): ("b", 1),
    ord("C"): ("H", 2),
    ord("D"): ("d", 8),
    ord("F"): ("f", 4),
    ord("I"): ("i", 4),
    ord("J"): ("q", 8),
    ord("S"): ("h", 2),
    ord("Z"): ("?", 1),
}
# primitive array element type -> numpy dtype (big-endian, as Java writes them)
_ARRAY_DTYPES = {
    "F": np.dtype(">f4"),
    "D": np.dtype(">f8"),
    "I": np.dtype(">i4"),
    "J": np.dtype(">i8"),
    "S": np.dtype(">i2"),
    "C": np.dtype(">u2"),
    "Z": np.dtype("?"),
}

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
_ROI_KINDS = {
    "qupath.lib.roi.PolygonROI$SerializationProxy": "polygon",
    "qupath.lib.roi.RectangleROI$SerializationProxy": "rectangle",
    "qupath.lib.roi.EllipseROI$SerializationProxy": "ellipse",
    "qupath.lib.roi.LineROI$SerializationProxy": "line",
    "qupath.lib.roi.PolylineROI$SerializationProxy": "polyline",
    "qupath.lib.roi.PointsROI$SerializationProxy": "points",
    "qupath.lib.roi.AreaROI$SerializationProxy": "area",
    "qupath.lib.roi.GeometryROI$WKBSerializationProxy": "wkb",
}
_POLYGON_PROXY = "qupath.lib.roi.PolygonROI$SerializationProxy"
_PATH_CLASS = "qupath.lib.objects.classes.PathClass"
_METADATA_MAP = "qupath.lib.objects.MetadataMap"
_HIERARCHY = "qupath.lib.objects.hierarchy.PathObjectHierarchy"
_IMAGE_TYPE = "qupath.lib.images.ImageData$ImageType"
_OBJECT_ID_KEY = "Object ID"


class QpdataError(InputError):
    """A ``.qpdata`` file that cannot be read; ``offset`` is where in the file it went wrong."""

    def __init__(self, message: str, offset: int, truncated: bool = False) -> None:
        super().__init__(message)
        self.offset = offset
        self.truncated = truncated  # the file ended early (QuPath tolerates this after the hierarchy)


@dataclass
class QpdataHeader:
    """What a ``.qpdata`` file says about itself before its objects."""

    data_version: int | None  # 2 (QuPath 0.2), 3 (0.3 to 0.7)
    qupath_version: str | None  # the QuPath that wrote it (data version 3 only)
    server_path: str | None  # the image: the server builder's URI (v3) or "Image path: ..." (v2)
    image_type: str | None  # BRIGHTFIELD_H_E, FLUORESCENCE, OTHER...
    server: dict | None = None  # the whole server-builder JSON (data version 3), for the curious


@dataclass
class QpdataNode:
    """One object of the hierarchy with its child objects (see :func:`read_qpdata_tree`)."""

    annotation: Annotation
    depth: int  # 1 for children of the image's root object
    children: list[QpdataNode] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# stream values


class _ClassDesc:
    __slots__ = (
        "chain",
        "fields",
        "flags",
        "handle",
        "kind",
        "name",
        "obj_fields",
        "placeholder",
        "plan",
        "prim_fields",
        "prim_struct",
        "run",
        "suid",
        "super",
    )

    def __init__(self, name: str, suid: int) -> None:
        self.name = name
        self.suid = suid
        self.flags = 0
        self.fields: list[tuple[int, str, str | None]] = []  # (type code, name, class of an object field)
        self.super: _ClassDesc | None = None
        self.chain: list[_ClassDesc] | None = None  # serializable classes, top superclass first
        self.kind: str | None = None  # path-object kind of the nearest known QuPath ancestor
        self.prim_struct: struct.Struct | None = None
        self.prim_fields: tuple[str, ...] = ()
        self.obj_fields: tuple[str, ...] = ()
        self.handle = -1
        # fast skipping of runs of objects of this class whose values are never needed
        self.run: tuple[re.Pattern[bytes], int] | None = None  # (pattern of a run, bytes per object)
        self.placeholder: _JObj | None = None
        # per serializable class of the chain: (primitive fields struct, their names, object field names, has writeObject)
        self.plan: tuple[tuple[struct.Struct | None, tuple[str, ...], tuple[str, ...], bool], ...] = ()


class _JObj:
    """A deserialized object: its class, field values by name and any custom data."""

    __slots__ = ("desc", "extra", "fields", "offset")

    def __init__(self, desc: _ClassDesc, offset: int) -> None:
        self.desc = desc
        self.fields: dict[str, object] = {}
        self.extra: list[object] = []  # block data (bytearray) and objects a writeObject/writeExternal added
        self.offset = offset


class _JEnum:
    __slots__ = ("class_name", "constant")

    def __init__(self, class_name: str, constant: object) -> None:
        self.class_name = class_name
        self.constant = constant


class _JClass:
    __slots__ = ("desc",)

    def __init__(self, desc: _ClassDesc | None) -> None:
        self.desc = desc


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


# --------------------------------------------------------------------------------------------
# the stream grammar


class _Stream:
    """Reads Java serialization grammar from bytes; values become the classes above."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data = data
        self.n = len(data)
        self.pos = 0
        self.where = where
        self.handles: list[object] = []
        self.depth = 0

    # -- errors ------------------------------------------------------------------------------

    def fail(self, what: str, offset: int | None = None, fix: str = _FIX_CORRUPT) -> QpdataError:
        at = self.pos if offset is None else offset
        return QpdataError(f"{self.where}: {what} at byte offset {at}; {fix}", at)

    def eof(self, need: int) -> QpdataError:
        err = QpdataError(
            f"{self.where}: the file ends early (needed {need} more byte(s)) at byte offset {self.n}; {_FIX_CORRUPT}",
            self.n,
            truncated=True,
        )
        return err

    def too_deep(self, pos: int) -> QpdataError:
        return self.fail(
            f"Java objects nested more than {MAX_DEPTH} deep (QuPath objects more than about {MAX_DEPTH // 2 - 3} levels)",
            pos,
            fix="a damaged file, or a hierarchy too deep for this reader: flatten it in QuPath or export GeoJSON",
        )

    def need(self, count: int) -> None:
        if self.pos + count > self.n:
            raise self.eof(self.pos + count - self.n)

    # -- primitives --------------------------------------------------------------------------

    def u1(self) -> int:
        if self.pos >= self.n:
            raise self.eof(1)
        b = self.data[self.pos]
        self.pos += 1
        return b

    def i4(self) -> int:
        self.need(4)
        (v,) = _I4.unpack_from(self.data, self.pos)
        self.pos += 4
        return v

    def utf(self) -> str:
        self.need(2)
        (length,) = _U2.unpack_from(self.data, self.pos)
        self.pos += 2
        return self.utf_bytes(length)

    def utf_bytes(self, length: int) -> str:
        self.need(length)
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return _decode_modified_utf8(raw)

    # -- objects -----------------------------------------------------------------------------

    def new_handle(self, value: object) -> int:
        handles = self.handles
        if len(handles) >= MAX_OBJECTS:
            raise self.fail(f"more than {MAX_OBJECTS} Java objects", fix="split the image's objects over several images")
        handles.append(value)
        return len(handles) - 1

    def obj(self) -> object:
        """One ``content`` that must be an object (readObject)."""
        data = self.data
        while True:
            pos = self.pos
            if pos >= self.n:
                raise self.eof(1)
            tc = data[pos]
            if tc == TC_REFERENCE:
                if pos + 5 > self.n:
                    raise self.eof(pos + 5 - self.n)
                self.pos = pos + 5
                h = _I4.unpack_from(data, pos + 1)[0] - _BASE_HANDLE
                if h < 0 or h >= len(self.handles):
                    raise self.fail(f"reference to unknown object handle {h + _BASE_HANDLE:#x}", pos)
                return self.handles[h]
            self.pos = pos + 1
            if tc == TC_OBJECT:
                return self.new_object(pos)
            if tc == TC_NULL:
                return None
            if tc == TC_STRING:
                end = pos + 3
                if end > self.n:
                    raise self.eof(end - self.n)
                end += (data[pos + 1] << 8) | data[pos + 2]
                if end > self.n:
                    raise self.eof(end - self.n)
                self.pos = end
                raw = data[pos + 3 : end]
                try:
                    s = raw.decode("utf-8")
                except UnicodeDecodeError:
                    s = _decode_modified_utf8(raw)
                self.new_handle(s)
                return s
            if tc == TC_ARRAY:
                return self.new_array(pos)
            if tc == TC_RESET:
                if self.depth > 0:
                    raise self.fail("stream reset inside an object", pos)
                self.handles = []
                continue
            return self.rare_object(tc, pos)

    def rare_object(self, tc: int, pos: int) -> object:
        """The less common ``content`` types: enums, long strings, classes, class descriptors."""
        if tc == TC_ENUM:
            desc = self.class_desc()
            if desc is None:
                raise self.fail("enum constant without a class", pos)
            value = _JEnum(desc.name, None)
            self.new_handle(value)
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.too_deep(pos)
            constant = self.obj()
            self.depth -= 1
            if not isinstance(constant, str):
                raise self.fail("enum constant whose name is not a string", pos)
            value.constant = constant
            return value
        if tc == TC_LONGSTRING:
            self.need(8)
            (length,) = _I8.unpack_from(self.data, self.pos)
            self.pos += 8
            if length < 0:
                raise self.fail("negative string length", pos)
            s = self.utf_bytes(length)
            self.new_handle(s)
            return s
        if tc == TC_CLASS:
            value = _JClass(self.class_desc())
            self.new_handle(value)
            return value
        if tc in (TC_CLASSDESC, TC_PROXYCLASSDESC):
            self.pos = pos
            return self.class_desc()
        if tc in (TC_BLOCKDATA, TC_BLOCKDATALONG):
            raise self.fail("primitive data where an object was expected", pos)
        if tc == TC_ENDBLOCKDATA:
            raise self.fail("end of an object's data where an object was expected", pos)
        if tc == TC_EXCEPTION:
            raise self.fail("QuPath hit an error while writing this file (a serialized exception)", pos)
        raise self.fail(f"invalid type code 0x{tc:02x}", pos)

    def class_desc(self) -> _ClassDesc | None:
        """``classDesc``: a new, proxy or referenced class descriptor, or null."""
        pos = self.pos
        tc = self.u1()
        if tc == TC_NULL:
            return None
        if tc == TC_REFERENCE:
            (h,) = _I4.unpack_from(self.data, self.pos) if self.pos + 4 <= self.n else (None,)
            if h is None:
                raise self.eof(4)
            self.pos += 4
            h -= _BASE_HANDLE
            if h < 0 or h >= len(self.handles) or not isinstance(self.handles[h], _ClassDesc):
                raise self.fail("reference to something that is not a class descriptor", pos)
            return self.handles[h]  # type: ignore[return-value]
        if tc == TC_CLASSDESC:
            name = self.utf()
            self.need(8)
            (suid,) = _I8.unpack_from(self.data, self.pos)
            self.pos += 8
            desc = _ClassDesc(name, suid)
            desc.handle = self.new_handle(desc)
            desc.flags = self.u1()
            self.need(2)
            (count,) = _U2.unpack_from(self.data, self.pos)
            self.pos += 2
            if count * 4 > self.n - self.pos:  # a field takes at least 4 bytes
                raise self.eof(count * 4 - (self.n - self.pos))
            fields = []
            for _ in range(count):
                fpos = self.pos
                code = self.u1()
                fname = self.utf()
                if code in _PRIMITIVES:
                    fields.append((code, fname, None))
                elif code in (ord("L"), ord("[")):
                    self.depth += 1
                    type_name = self.obj()
                    self.depth -= 1
                    if not isinstance(type_name, str):
                        raise self.fail("field type that is not a string", fpos)
                    fields.append((code, fname, type_name))
                else:
                    raise self.fail(f"invalid field type code 0x{code:02x}", fpos)
            desc.fields = fields
            self.skip_annotation()  # classAnnotation
            desc.super = self.nested_class_desc()
            self.finish_desc(desc, pos)
            return desc
        if tc == TC_PROXYCLASSDESC:
            desc = _ClassDesc("<dynamic proxy>", 0)
            self.new_handle(desc)
            count = self.i4()
            if count < 0 or count * 2 > self.n - self.pos:
                raise self.fail("invalid number of proxy interfaces", pos)
            for _ in range(count):
                self.utf()
            desc.flags = SC_SERIALIZABLE
            self.skip_annotation()
            desc.super = self.nested_class_desc()
            self.finish_desc(desc, pos)
            return desc
        raise self.fail(f"invalid class descriptor (type code 0x{tc:02x})", pos)

    def nested_class_desc(self) -> _ClassDesc | None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"class descriptors nested more than {MAX_DEPTH} deep")
        desc = self.class_desc()
        self.depth -= 1
        return desc

    def finish_desc(self, desc: _ClassDesc, pos: int) -> None:
        chain = []
        seen = set()
        d: _ClassDesc | None = desc
        while d is not None:
            if id(d) in seen or len(chain) >= MAX_CLASS_CHAIN:
                raise self.fail(f"class {desc.name!r} has a circular or too long superclass chain", pos)
            seen.add(id(d))
            chain.append(d)
            if desc.kind is None and d.name in _PATH_OBJECT_KINDS:
                desc.kind = _PATH_OBJECT_KINDS[d.name]
            d = d.super
        chain.reverse()
        desc.chain = chain
        prim = [(code, name) for code, name, _ in desc.fields if code in _PRIMITIVES]
        if prim:
            desc.prim_struct = struct.Struct(">" + "".join(_PRIMITIVES[code][0] for code, _ in prim))
            desc.prim_fields = tuple(name for _, name in prim)
        desc.obj_fields = tuple(name for code, name, _ in desc.fields if code not in _PRIMITIVES)
        desc.plan = tuple(
            (d.prim_struct, d.prim_fields, d.obj_fields, bool(d.flags & SC_WRITE_METHOD))
            for d in chain
            if d.flags & SC_SERIALIZABLE
        )
        if _skippable(desc):
            prim_size = desc.prim_struct.size if desc.prim_struct is not None else 0
            record = b"\x73\x71" + re.escape(_I4.pack(desc.handle + _BASE_HANDLE))
            # object fields: references (handles from 0x7E0000 up; never followed, so not checked further)
            record += b"." * prim_size + b"\x71\x00[\x7e-\xff].." * len(desc.obj_fields)
            desc.run = (re.compile(b"(?:" + record + b")+", re.S), 6 + prim_size + 5 * len(desc.obj_fields))
            desc.placeholder = _JObj(desc, -1)

    def skip_run(self, pos: int, limit: int) -> int:
        """Skip a run of up to ``limit`` objects of one skippable class (see ``_skippable``).

        ``pos`` is at a TC_OBJECT. Returns how many were skipped (0: none, read normally). The
        objects' fields must all be primitives or references, which is what a list of QuPath
        measurements looks like (``DoubleMeasurement{value, name}`` with a shared name). The
        skipped objects get handles (a shared placeholder) like any other.
        """
        data = self.data
        if pos + 6 > self.n or data[pos + 1] != TC_REFERENCE:
            return 0
        (h,) = _I4.unpack_from(data, pos + 2)
        h -= _BASE_HANDLE
        handles = self.handles
        if h < 0 or h >= len(handles):
            return 0
        desc = handles[h]
        if type(desc) is not _ClassDesc or desc.run is None:
            return 0
        pattern, size = desc.run
        m = pattern.match(data, pos)
        if m is None:
            return 0
        count = min((m.end() - pos) // size, limit)
        if count <= 0:
            return 0
        if len(handles) + count > MAX_OBJECTS:
            raise self.fail(f"more than {MAX_OBJECTS} Java objects", pos, fix="split the image's objects over several images")
        handles.extend([desc.placeholder] * count)
        self.pos = pos + count * size
        return count

    def skip_annotation(self) -> None:
        """Skip block data and objects up to TC_ENDBLOCKDATA (a class or object annotation)."""
        self.annotation()

    def annotation(self) -> list[object]:
        """Block data (merged into bytearrays) and objects up to TC_ENDBLOCKDATA."""
        items: list[object] = []
        data = self.data
        while True:
            pos = self.pos
            if pos >= self.n:
                raise self.eof(1)
            tc = data[pos]
            if tc == TC_ENDBLOCKDATA:
                self.pos = pos + 1
                return items
            if tc == TC_BLOCKDATA or tc == TC_BLOCKDATALONG:
                if tc == TC_BLOCKDATA:
                    self.need(2)
                    length = data[pos + 1]
                    start = pos + 2
                else:
                    self.need(5)
                    (length,) = _I4.unpack_from(data, pos + 1)
                    start = pos + 5
                    if length < 0:
                        raise self.fail("negative block-data length", pos)
                if start + length > self.n:
                    self.pos = start
                    raise self.eof(start + length - self.n)
                self.pos = start + length
                if items and type(items[-1]) is bytearray:
                    items[-1] += data[start : start + length]  # type: ignore[operator]
                else:
                    items.append(bytearray(data[start : start + length]))
            else:
                if tc == TC_OBJECT and pos + 6 <= self.n and data[pos + 1] == TC_REFERENCE:
                    h = _I4.unpack_from(data, pos + 2)[0] - _BASE_HANDLE
                    if 0 <= h < len(self.handles) and getattr(self.handles[h], "run", None) is not None:
                        count = self.skip_run(pos, self.n)
                        if count:
                            items.extend([self.handles[-1]] * count)
                            continue
                self.depth += 1
                if self.depth > MAX_DEPTH:
                    raise self.too_deep(pos)
                items.append(self.obj())
                self.depth -= 1

    def new_object(self, pos: int) -> object:
        depth = self.depth + 1
        if depth > MAX_DEPTH:
            raise self.too_deep(pos)
        self.depth = depth
        data = self.data
        p = self.pos
        handles = self.handles
        if p + 5 <= self.n and data[p] == TC_REFERENCE:  # the usual case: a class seen before
            h = _I4.unpack_from(data, p + 1)[0] - _BASE_HANDLE
            desc = handles[h] if 0 <= h < len(handles) else None
            if type(desc) is not _ClassDesc:
                raise self.fail("reference to something that is not a class descriptor", p)
            self.pos = p + 5
        else:
            desc = self.class_desc()
            if desc is None:
                raise self.fail("object without a class", pos)
        obj = _JObj(desc, pos)
        handle = len(handles)
        if handle >= MAX_OBJECTS:
            raise self.fail(f"more than {MAX_OBJECTS} Java objects", pos, fix="split the image's objects over several images")
        handles.append(obj)
        if desc.placeholder is not None:  # a class whose values are never needed: skip the fields
            st = desc.prim_struct
            if st is not None:
                if self.pos + st.size > self.n:
                    raise self.eof(self.pos + st.size - self.n)
                self.pos += st.size
            for _ in desc.obj_fields:
                self.obj()
            handles[handle] = desc.placeholder
            self.depth -= 1
            return desc.placeholder
        if desc.flags & SC_EXTERNALIZABLE:
            if not desc.flags & SC_BLOCK_DATA:
                raise self.fail(
                    f"{desc.name} was written with the pre-1.2 Java stream protocol, which cannot be skipped safely", pos
                )
            items = self.annotation()
            if desc.kind is not None:
                node = _read_path_object(self, desc, items, pos)
                handles[handle] = node
                self.depth -= 1
                return node
            obj.extra = items
        else:
            fields = obj.fields
            for st, prim_fields, obj_fields, write_method in desc.plan:  # type: ignore[union-attr]
                if st is not None:
                    p = self.pos
                    if p + st.size > self.n:
                        raise self.eof(p + st.size - self.n)
                    fields.update(zip(prim_fields, st.unpack_from(data, p), strict=True))
                    self.pos = p + st.size
                for name in obj_fields:
                    fields[name] = self.obj()
                if write_method:
                    obj.extra.extend(self.annotation())
        self.depth -= 1
        return obj

    def new_array(self, pos: int) -> object:
        depth = self.depth + 1
        if depth > MAX_DEPTH:
            raise self.too_deep(pos)
        self.depth = depth
        data = self.data
        p = self.pos
        handles = self.handles
        if p + 9 <= self.n and data[p] == TC_REFERENCE:  # the usual case: an array class seen before
            h = _I4.unpack_from(data, p + 1)[0] - _BASE_HANDLE
            desc = handles[h] if 0 <= h < len(handles) else None
            if type(desc) is not _ClassDesc:
                raise self.fail("reference to something that is not a class descriptor", p)
            self.pos = p + 5
        else:
            desc = self.class_desc()
        if desc is None or len(desc.name) < 2 or desc.name[0] != "[":
            raise self.fail("array without an array class", pos)
        handle = self.new_handle(None)
        size = self.i4()
        left = self.n - self.pos
        element = desc.name[1]
        value: object
        if element == "B":
            if size < 0 or size > left:
                raise self.eof(size - left) if size > 0 else self.fail("negative array length", pos)
            value = bytes(self.data[self.pos : self.pos + size])
            self.pos += size
        elif element in _ARRAY_DTYPES:
            dtype = _ARRAY_DTYPES[element]
            if size < 0 or size * dtype.itemsize > left:
                raise self.eof(size * dtype.itemsize - left) if size > 0 else self.fail("negative array length", pos)
            value = np.frombuffer(self.data, dtype=dtype, count=size, offset=self.pos)
            self.pos += size * dtype.itemsize
        elif element in ("L", "["):
            if size < 0 or size > left:  # every element takes at least one byte
                raise self.eof(size - left) if size > 0 else self.fail("negative array length", pos)
            items: list[object] = []
            self.handles[handle] = items
            data = self.data
            while len(items) < size:
                if self.pos < self.n and data[self.pos] == TC_OBJECT:
                    start = self.pos
                    count = self.skip_run(start, size - len(items))
                    if count:
                        items.extend([self.handles[-1]] * count)
                        continue
                items.append(self.obj())
            value = items
        else:
            raise self.fail(f"array of unknown element type {desc.name!r}", pos)
        self.handles[handle] = value
        self.depth -= 1
        return value

    def top_level(self) -> object:
        """The next top-level ``content``: an object, or block data as a bytearray."""
        pos = self.pos
        if pos >= self.n:
            raise self.eof(1)
        tc = self.data[pos]
        if tc == TC_BLOCKDATA or tc == TC_BLOCKDATALONG:
            if tc == TC_BLOCKDATA:
                self.need(2)
                length = self.data[pos + 1]
                start = pos + 2
            else:
                self.need(5)
                (length,) = _I4.unpack_from(self.data, pos + 1)
                start = pos + 5
                if length < 0:
                    raise self.fail("negative block-data length", pos)
            if start + length > self.n:
                self.pos = start
                raise self.eof(start + length - self.n)
            self.pos = start + length
            return bytearray(self.data[start : start + length])
        return self.obj()


_NEEDED_CLASSES = {"java.util.UUID", _PATH_CLASS, _METADATA_MAP, _HIERARCHY, _IMAGE_TYPE}


def _skippable(desc: _ClassDesc) -> bool:
    """True for classes whose values this reader never needs and whose objects are flat
    (Serializable, one class, default field data only): runs of them are skipped at C speed."""
    return (
        desc.flags & (SC_SERIALIZABLE | SC_EXTERNALIZABLE | SC_WRITE_METHOD | SC_ENUM) == SC_SERIALIZABLE
        and desc.super is None
        and desc.kind is None
        and not desc.name.startswith(("java.lang.", "["))
        and desc.name not in _NEEDED_CLASSES
        and desc.name not in _ROI_KINDS
    )


def _decode_modified_utf8(raw: bytes) -> str:
    """Java's modified UTF-8 (NUL as C0 80, supplementary characters as surrogate pairs)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # invalid bytes are replaced, not raised: a name is never worth failing a whole file for
    try:
        text = raw.replace(b"\xc0\x80", b"\x00").decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


# --------------------------------------------------------------------------------------------
# QuPath's classes


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


def _is(value: object, class_name: str) -> bool:
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
        f = nxt.fields  # type: ignore[union-attr]
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
    extra = value.extra  # type: ignore[union-attr]
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
        fields = pc.fields  # type: ignore[union-attr]
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


# --------------------------------------------------------------------------------------------
# geometry


Rounder = Callable[[np.ndarray], np.ndarray] | None


def _rounder(precision: float | None) -> Rounder:
    """Coordinates onto QuPath's grid: JTS ``PrecisionModel.makePrecise`` is ``floor(v * s + 0.5) / s``."""
    if not precision:
        return None
    scale = 1.0 / precision

    def round_to_grid(a: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # huge values become inf: reported as non-finite
            return np.floor(a * scale + 0.5) / scale

    return round_to_grid


_EMPTY = shapely.GeometryCollection()
_NON_FINITE = "has non-finite coordinates (NaN or infinity); nothing drawn"


def _is_float_array(value: object) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind == "f"


def _xy(x: object, y: object, rounder: Rounder) -> np.ndarray:
    """(n, 2) float64 coordinates from a proxy's ``float[] x, y``."""
    if not (_is_float_array(x) and _is_float_array(y)):
        raise ValueError("x and y are not float arrays")
    if len(x) != len(y):  # type: ignore[arg-type]
        raise ValueError(f"{len(x)} x but {len(y)} y coordinates")  # type: ignore[arg-type]
    with np.errstate(invalid="ignore"):  # a signalling NaN (a damaged file) is no reason to warn
        xy = np.column_stack([x, y]).astype(np.float64)  # type: ignore[list-item]
    return rounder(xy) if rounder is not None else xy


def _double(fields: dict, name: str) -> float:
    v = fields.get(name)
    if not isinstance(v, float):
        raise ValueError(f"coordinate {name!r} is missing")
    return v


def _ellipse(x0: float, y0: float, x1: float, y1: float, n: int) -> np.ndarray:
    """The closed ring JTS's GeometricShapeFactory.createEllipse makes: vertex i at angle i * (2 pi / n)."""
    rx = (x1 - x0) / 2.0
    ry = (y1 - y0) / 2.0
    angles = np.arange(n) * (2 * math.pi / n)
    ring = np.column_stack([rx * np.cos(angles) + (x0 + rx), ry * np.sin(angles) + (y0 + ry)])
    return np.vstack([ring, ring[:1]])


def _ellipse_vertices(x0: float, y0: float, x1: float, y1: float, tolerance: float | None) -> int:
    if tolerance is None:
        return QUPATH_ELLIPSE_VERTICES
    a = max(abs(x1 - x0), abs(y1 - y0)) / 2.0
    if a <= tolerance:
        return 8
    # the chord error of n equal parametric steps is at most a * (1 - cos(pi / n))
    n = math.ceil(math.pi / math.acos(1.0 - tolerance / a))
    return int(min(max(n, 8), MAX_ELLIPSE_VERTICES))


def _winding_numbers(points: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Winding number of a closed ring around each point (the crossing rule with edge directions).

    Points are taken in chunks so that no temporary exceeds WINDING_CHUNK elements: memory stays
    bounded whatever the file claims (a crafted self-crossing polygon has many faces and edges).
    """
    x0 = ring[:-1, 0][None, :]
    y0 = ring[:-1, 1][None, :]
    x1 = ring[1:, 0][None, :]
    y1 = ring[1:, 1][None, :]
    out = np.empty(len(points), dtype=np.int64)
    step = max(1, WINDING_CHUNK // max(1, len(ring) - 1))
    for start in range(0, len(points), step):
        px = points[start : start + step, 0][:, None]
        py = points[start : start + step, 1][:, None]
        side = (x1 - x0) * (py - y0) - (px - x0) * (y1 - y0)
        up = (y0 <= py) & (y1 > py) & (side > 0)
        down = (y0 > py) & (y1 <= py) & (side < 0)
        out[start : start + step] = up.sum(axis=1) - down.sum(axis=1)
    return out


def _fill_nonzero(rings: list[np.ndarray]) -> BaseGeometry:
    """The region that closed paths enclose under the non-zero winding rule (Java's ``Area``).

    The paths' linework is noded and polygonized into faces; a face is kept where the sum of the
    paths' winding numbers around it is not zero. A hole is thus a contour running the other
    way round from its shell, as ``java.awt.geom.Area`` writes them.
    """
    closed = []
    for ring in rings:
        if len(ring) < 3:
            continue
        if not np.array_equal(ring[0], ring[-1]):
            ring = np.vstack([ring, ring[:1]])
        if len(np.unique(ring, axis=0)) >= 3:
            closed.append(ring)
    if not closed:
        return shapely.Polygon()
    if len(closed) == 1:
        poly = shapely.Polygon(closed[0])
        if poly.is_valid:
            return poly
    noded = shapely.union_all(shapely.linestrings(closed) if len(closed) > 1 else [shapely.LineString(closed[0])])
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))
    if len(faces) == 0:
        return shapely.Polygon()
    if len(faces) * sum(len(r) for r in closed) > MAX_WINDING_WORK:
        raise ValueError(
            f"a self-crossing area of {len(faces)} faces and {sum(len(r) for r in closed)} vertices is too complex to fill"
        )
    points = shapely.point_on_surface(faces)
    inside = shapely.get_coordinates(points)
    winding = np.zeros(len(faces), dtype=np.int64)
    lines = shapely.linestrings(closed) if len(closed) > 1 else np.array([shapely.LineString(closed[0])])
    # only rings whose bounding box holds a face's point can wind around it
    point_idx, ring_idx = shapely.STRtree(lines).query(points)
    order = np.argsort(ring_idx, kind="stable")
    point_idx, ring_idx = point_idx[order], ring_idx[order]
    bounds = np.flatnonzero(np.diff(ring_idx)) + 1
    for pts, rings_of in zip(np.split(point_idx, bounds), np.split(ring_idx, bounds), strict=True):
        if len(pts):
            winding[pts] += _winding_numbers(inside[pts], closed[rings_of[0]])
    kept = faces[winding != 0]
    if len(kept) == 0:
        return shapely.Polygon()
    return shapely.union_all(kept)


def _roi_geometry(roi: object, rounder: Rounder, ellipse_tolerance: float | None) -> tuple[BaseGeometry, str | None]:
    """Shapely geometry of a ROI proxy (polygons are made in ``_make_polygons``) and a problem, or None."""
    if roi is None:
        return _EMPTY, "has no ROI; nothing drawn"
    if not isinstance(roi, _JObj):
        raise ValueError("the ROI is not an object")
    kind = _ROI_KINDS.get(roi.desc.name)
    f = roi.fields
    if kind in ("rectangle", "ellipse", "line"):
        x0, y0, x1, y1 = (_double(f, k) for k in ("x", "y", "x2", "y2"))
        if not np.isfinite([x0, y0, x1, y1]).all():
            return (shapely.LineString() if kind == "line" else shapely.Polygon()), _NON_FINITE
        if kind == "line":
            c = np.array([[x0, y0], [x1, y1]])
        else:
            x0, x1 = min(x0, x1), max(x0, x1)
            y0, y1 = min(y0, y1), max(y0, y1)
            if x1 - x0 <= 0 or y1 - y0 <= 0:
                return shapely.Polygon(), f"{kind} with zero width or height; nothing drawn"
            if kind == "rectangle":
                c = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
            else:
                c = _ellipse(x0, y0, x1, y1, _ellipse_vertices(x0, y0, x1, y1, ellipse_tolerance))
        if rounder is not None:
            c = rounder(c)
        if not np.isfinite(c).all():
            return (shapely.LineString() if kind == "line" else shapely.Polygon()), _NON_FINITE
        return (shapely.LineString(c) if kind == "line" else shapely.Polygon(c)), None
    if kind in ("polyline", "points", "polygon"):
        xy = _xy(f.get("x"), f.get("y"), rounder)
        if not np.isfinite(xy).all():
            return _EMPTY, _NON_FINITE
        if kind == "polygon":
            geom = _fill_nonzero([xy])
            return geom, ("polygon with fewer than 3 distinct vertices; nothing drawn" if geom.is_empty else None)
        if len(xy) == 0:
            return (shapely.LineString() if kind == "polyline" else shapely.MultiPoint()), f"{kind} without points; nothing drawn"
        if len(xy) == 1:
            return shapely.Point(xy[0]), ("polyline with a single point, read as a point" if kind == "polyline" else None)
        return (shapely.LineString(xy) if kind == "polyline" else shapely.MultiPoint(xy)), None
    if kind == "area":
        xs, ys = f.get("x"), f.get("y")
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            raise ValueError("area ROI without matching x and y contour arrays")
        rings = [_xy(x, y, rounder) for x, y in zip(xs, ys, strict=True)]
        if not all(np.isfinite(r).all() for r in rings):
            return shapely.Polygon(), _NON_FINITE
        geom = _fill_nonzero(rings)
        return geom, ("area without any enclosed region; nothing drawn" if geom.is_empty else None)
    if kind == "wkb":
        wkb = f.get("wkb")
        if not isinstance(wkb, bytes):
            raise ValueError("geometry ROI without WKB bytes")
        _check_wkb(wkb)
        with np.errstate(invalid="ignore"):
            geom = shapely.from_wkb(wkb)
        if not np.isfinite(shapely.get_coordinates(geom)).all():
            return _EMPTY, _NON_FINITE
        if rounder is not None:
            geom = shapely.transform(geom, rounder)
        return geom, None
    return _EMPTY, f"unsupported ROI type {roi.desc.name}; nothing drawn"


def _check_wkb(wkb: bytes) -> None:
    """Walk a WKB geometry's headers, checking every count against the bytes left."""
    pos = _check_wkb_geometry(wkb, 0, 0)
    if pos != len(wkb):
        raise ValueError(f"{len(wkb) - pos} stray byte(s) after the WKB geometry")


def _check_wkb_geometry(wkb: bytes, pos: int, depth: int) -> int:
    if depth > 32:
        raise ValueError("WKB geometry collections nested too deeply")
    if pos + 5 > len(wkb):
        raise ValueError("WKB geometry cut short")
    order = wkb[pos]
    if order not in (0, 1):
        raise ValueError(f"invalid WKB byte order {order}")
    u4 = struct.Struct(">I" if order == 0 else "<I")
    (gtype,) = u4.unpack_from(wkb, pos + 1)
    pos += 5
    dims = 2
    if gtype & 0x80000000:  # EWKB Z
        dims += 1
    if gtype & 0x40000000:  # EWKB M
        dims += 1
    if gtype & 0x20000000:  # EWKB SRID
        if pos + 4 > len(wkb):
            raise ValueError("WKB geometry cut short")
        pos += 4
    base = gtype & 0x0FFFFFFF
    iso, base = divmod(base, 1000)
    if iso not in (0, 1, 2, 3):
        raise ValueError(f"unsupported WKB geometry type {gtype}")
    dims += {0: 0, 1: 1, 2: 1, 3: 2}[iso]
    point = 8 * dims

    def count(p: int) -> tuple[int, int]:
        if p + 4 > len(wkb):
            raise ValueError("WKB geometry cut short")
        return u4.unpack_from(wkb, p)[0], p + 4

    if base == 1:
        pos += point
    elif base == 2:
        n, pos = count(pos)
        pos += n * point
    elif base == 3:
        rings, pos = count(pos)
        if rings * 4 > len(wkb) - pos:
            raise ValueError("WKB geometry cut short")
        for _ in range(rings):
            n, pos = count(pos)
            pos += n * point
            if pos > len(wkb):
                break
    elif base in (4, 5, 6, 7):
        parts, pos = count(pos)
        if parts * 5 > len(wkb) - pos:
            raise ValueError("WKB geometry cut short")
        for _ in range(parts):
            pos = _check_wkb_geometry(wkb, pos, depth + 1)
    else:
        raise ValueError(f"unsupported WKB geometry type {gtype}")
    if pos > len(wkb):
        raise ValueError("WKB geometry cut short")
    return pos


# --------------------------------------------------------------------------------------------
# reading files


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


def read_qpdata_header(path: str | Path) -> QpdataHeader:
    """The data version, QuPath version, image and image type of a ``.qpdata`` file.

    Cheap: reads the first megabyte (more only if the header is longer) and stops after the
    image type, before the objects.
    """
    path = Path(path)
    data, complete = _read_bytes(path, HEADER_READ_BYTES)
    stream = _Stream(data, str(path))
    try:
        return _guarded(stream, lambda: _read_header(stream))
    except QpdataError as err:
        if complete or not err.truncated:
            raise
    data, _ = _read_bytes(path)  # a header longer than HEADER_READ_BYTES
    stream = _Stream(data, str(path))
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

    ``precision`` and ``ellipse_tolerance``: see the module docstring (the defaults give the
    geometries QuPath itself shows and exports).
    """
    path = Path(path)
    data, _ = _read_bytes(path)
    stream = _Stream(data, str(path))
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


def _make_polygons(stream: _Stream, polygons: list[tuple[Annotation, _JObj]], rounder: Rounder) -> None:
    """Geometries of all polygon ROIs at once (shapely's vectorized constructors)."""
    xs, ys = [], []
    for ann, roi in polygons:
        x, y = roi.fields.get("x"), roi.fields.get("y")
        if not (_is_float_array(x) and _is_float_array(y) and len(x) == len(y)):  # type: ignore[arg-type]
            raise stream.fail(f"{ann.describe()} has a malformed polygon ROI (x and y are not matching float arrays)", roi.offset)
        xs.append(x)
        ys.append(y)
    lengths = np.fromiter((len(x) for x in xs), dtype=np.int64, count=len(xs))
    ring_of = np.repeat(np.arange(len(lengths)), lengths)
    with np.errstate(invalid="ignore"):
        coords = np.column_stack([np.concatenate(xs), np.concatenate(ys)]).astype(np.float64)
    if rounder is not None:
        coords = rounder(coords)
    ok = lengths >= 3
    finite = np.isfinite(coords).all(axis=1)
    if not finite.all():
        ok[np.unique(ring_of[~finite])] = False
    geoms = np.empty(len(polygons), dtype=object)
    rings = shapely.linearrings(coords[ok[ring_of]], indices=np.repeat(np.arange(int(ok.sum())), lengths[ok]))
    geoms[ok] = shapely.polygons(rings)
    valid = np.zeros(len(polygons), dtype=bool)
    valid[ok] = shapely.is_valid(geoms[ok])
    ends = np.cumsum(lengths)
    for i in np.flatnonzero(~valid):
        ann = polygons[i][0]
        ring = coords[ends[i] - lengths[i] : ends[i]]
        if not np.isfinite(ring).all():
            geoms[i] = shapely.Polygon()
            ann.problems.append(_NON_FINITE)
            continue
        geoms[i] = _fill_nonzero([ring])  # self-intersecting: filled as QuPath's Area does
        if geoms[i].is_empty:
            ann.problems.append("polygon with fewer than 3 distinct vertices; nothing drawn")
    for (ann, _), geom in zip(polygons, geoms, strict=True):
        ann.geometry = geom

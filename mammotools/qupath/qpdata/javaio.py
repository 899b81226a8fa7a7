"""Java serialization's vocabulary: what the grammar in :mod:`.stream` is built from.

The terminal symbols and constants of the Java Object Serialization Specification (6.4.2),
the limits every read is held to, :class:`QpdataError` (raised by every module of this
package), the values a stream yields (class descriptors, objects, enum constants, classes),
Java's modified UTF-8, and ``_Input``: the byte cursor under the grammar (offsets, bounds
checks against the bytes left, errors naming the byte offset, object handles, and skipping runs
of flat objects whose values are never needed).
"""

from __future__ import annotations

import re
import struct

import numpy as np

from mammotools.errors import InputError

MAX_DEPTH = 200  # nesting of objects in the stream (each hierarchy level costs two)
MAX_OBJECTS = 100_000_000  # Java objects (handles) in one stream
MAX_CLASS_CHAIN = 64  # superclasses of one class

_FIX_CORRUPT = (
    "the file is damaged or truncated: open the project in QuPath and save the image again, "
    "or export GeoJSON with qupath_scripts/export_annotations.groovy"
)

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

_U2 = struct.Struct(">H")
_I4 = struct.Struct(">i")
_I8 = struct.Struct(">q")
_F8 = struct.Struct(">d")

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
_ARRAY_DTYPES: dict[str, np.dtype] = {
    "F": np.dtype(">f4"),
    "D": np.dtype(">f8"),
    "I": np.dtype(">i4"),
    "J": np.dtype(">i8"),
    "S": np.dtype(">i2"),
    "C": np.dtype(">u2"),
    "Z": np.dtype("?"),
}


class QpdataError(InputError):
    """A ``.qpdata`` file that cannot be read; ``offset`` is where in the file it went wrong."""

    def __init__(self, message: str, offset: int, truncated: bool = False) -> None:
        super().__init__(message)
        self.offset = offset
        self.truncated = truncated  # the file ended early (QuPath tolerates this after the hierarchy)


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
        self.kind: str | None = None  # kind of the nearest ancestor in the stream's kinds (QuPath path objects)
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


class _Input:
    """A cursor over a stream's bytes: errors, bounds checks, primitives and object handles
    (runs of flat objects included: ``skip_run``). The grammar itself is ``stream._Stream``."""

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

    def skip_run(self, pos: int, limit: int) -> int:
        """Skip a run of up to ``limit`` objects of one skippable class (see ``stream._skippable``).

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

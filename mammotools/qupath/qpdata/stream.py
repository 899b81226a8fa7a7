"""The grammar of Java serialization, parsed by hand: ``_Stream`` reads a stream's contents.

The Java Object Serialization Specification, chapter 6: objects, arrays, strings, enums,
classes, class descriptors (new, proxy or referenced), handles, block data and resets, read into
the values of :mod:`.javaio`; nothing is instantiated or executed. Recursion depth, object count
and sizes are bounded, every claimed length is checked against the bytes left before anything is
allocated, and every loop consumes input, so any malformed or truncated stream raises
:class:`~.javaio.QpdataError` (with the byte offset), parsing in time linear in its size.
Classes the stream's user does not know are skipped through their class descriptors
(Serializable) or to the end of their block data (Externalizable); runs of flat objects whose
values are never needed (QuPath's measurements) are skipped at C speed.

A subclass says what it knows of the classes (see ``reader._QpdataStream``): ``kinds`` names the
Externalizable classes whose objects ``read_external`` reads from their block data (subclasses
from plugins included: a class takes the kind of its nearest listed ancestor), ``needed`` the
classes whose values must never be skipped.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from mammotools.qupath.qpdata.javaio import (
    _ARRAY_DTYPES,
    _BASE_HANDLE,
    _I4,
    _I8,
    _PRIMITIVES,
    _U2,
    MAX_CLASS_CHAIN,
    MAX_DEPTH,
    MAX_OBJECTS,
    SC_BLOCK_DATA,
    SC_ENUM,
    SC_EXTERNALIZABLE,
    SC_SERIALIZABLE,
    SC_WRITE_METHOD,
    TC_ARRAY,
    TC_BLOCKDATA,
    TC_BLOCKDATALONG,
    TC_CLASS,
    TC_CLASSDESC,
    TC_ENDBLOCKDATA,
    TC_ENUM,
    TC_EXCEPTION,
    TC_LONGSTRING,
    TC_NULL,
    TC_OBJECT,
    TC_PROXYCLASSDESC,
    TC_REFERENCE,
    TC_RESET,
    TC_STRING,
    _ClassDesc,
    _decode_modified_utf8,
    _Input,
    _JClass,
    _JEnum,
    _JObj,
)


class _Stream(_Input):
    """Reads Java serialization grammar from bytes; values become the classes of :mod:`.javaio`."""

    # class -> kind: Externalizable objects of these classes and their subclasses go to read_external
    kinds: ClassVar[Mapping[str, str]] = {}
    # classes whose values are needed: their objects are never skipped
    needed: ClassVar[frozenset[str]] = frozenset()

    def read_external(self, desc: _ClassDesc, items: list[object], offset: int) -> object:
        """The value of an Externalizable object of a class with a kind, from its block data ``items``."""
        raise NotImplementedError

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
            jclass = _JClass(self.class_desc())
            self.new_handle(jclass)
            return jclass
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
            return self.handles[h]
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
            fields: list[tuple[int, str, str | None]] = []
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
        chain: list[_ClassDesc] = []
        seen = set()
        d: _ClassDesc | None = desc
        while d is not None:
            if id(d) in seen or len(chain) >= MAX_CLASS_CHAIN:
                raise self.fail(f"class {desc.name!r} has a circular or too long superclass chain", pos)
            seen.add(id(d))
            chain.append(d)
            if desc.kind is None and d.name in self.kinds:
                desc.kind = self.kinds[d.name]
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
        if _skippable(desc, self.needed):
            prim_size = desc.prim_struct.size if desc.prim_struct is not None else 0
            record = b"\x73\x71" + re.escape(_I4.pack(desc.handle + _BASE_HANDLE))
            # object fields: references (handles from 0x7E0000 up; never followed, so not checked further)
            record += b"." * prim_size + b"\x71\x00[\x7e-\xff].." * len(desc.obj_fields)
            desc.run = (re.compile(b"(?:" + record + b")+", re.S), 6 + prim_size + 5 * len(desc.obj_fields))
            desc.placeholder = _JObj(desc, -1)

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
                    items[-1] += data[start : start + length]
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
                node = self.read_external(desc, items, pos)
                handles[handle] = node
                self.depth -= 1
                return node
            obj.extra = items
        else:
            fields = obj.fields
            for st, prim_fields, obj_fields, write_method in desc.plan:
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


def _skippable(desc: _ClassDesc, needed: frozenset[str]) -> bool:
    """True for classes whose values the reader never needs (not ``needed``) and whose objects are
    flat (Serializable, one class, default field data only): runs of them are skipped at C speed."""
    return (
        desc.flags & (SC_SERIALIZABLE | SC_EXTERNALIZABLE | SC_WRITE_METHOD | SC_ENUM) == SC_SERIALIZABLE
        and desc.super is None
        and desc.kind is None
        and not desc.name.startswith(("java.lang.", "["))
        and desc.name not in needed
    )

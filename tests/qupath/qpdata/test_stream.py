"""The Java serialization grammar (``stream``, ``javaio``): modified UTF-8 and hostile streams."""

from __future__ import annotations

import struct
import time
import tracemalloc
from pathlib import Path

import pytest

from mammotools.qupath.qpdata import QpdataError, read_qpdata
from mammotools.qupath.qpdata.javaio import _decode_modified_utf8


def test_java_modified_utf8() -> None:
    """Java writes NUL as C0 80 and characters beyond the BMP as two 3-byte surrogates."""
    assert _decode_modified_utf8("Läsion".encode()) == "Läsion"
    assert _decode_modified_utf8(b"a\xc0\x80b \xed\xa0\xbd\xed\xb8\x80") == "a\x00b \U0001f600"


# ---------------------------------------------------------------------------------------------
# hostile streams: one clear QpdataError, quickly, without large allocations


def stream(*body: bytes) -> bytes:
    """A stream that starts like a .qpdata file (version line, JSON header), then ``body``."""
    version = b"Data file version 3"
    header = b"{}"
    return (
        b"\xac\xed\x00\x05"
        + bytes([0x77, len(version) + 2])
        + struct.pack(">H", len(version))
        + version
        + b"t"
        + struct.pack(">H", len(header))
        + header
        + b"".join(body)
    )


OBJECT_ARRAY_DESC = b"ur\x00\x13[Ljava.lang.Object;" + struct.pack(">q", -8012369246846506644) + b"\x02\x00\x00xp"


@pytest.mark.parametrize(
    ("body", "what"),
    [
        # 100000 object arrays nested in each other
        (OBJECT_ARRAY_DESC + b"\x00\x00\x00\x01" + (b"uq\x00~\x00\x01\x00\x00\x00\x01" * 100000), "nested more than"),
        # an array claiming 2^31-1 floats
        (b"ur\x00\x02[F" + struct.pack(">q", 1) + b"\x02\x00\x00xp\x7f\xff\xff\xff", "ends early"),
        # a string claiming 2^63-1 bytes
        (b"|\x7f\xff\xff\xff\xff\xff\xff\xff", "ends early"),
        # block data claiming 2 GiB
        (b"z\x7f\xff\xff\xff", "ends early"),
        # a class claiming 65535 fields
        (b"sr\x00\x01A" + struct.pack(">q", 1) + b"\x02\xff\xff", "ends early"),
        # a reference to a handle that does not exist
        (b"q\x00\x7e\x10\x00", "unknown object handle"),
        # a class whose superclass is itself
        (b"sr\x00\x01A" + struct.pack(">q", 1) + b"\x02\x00\x00xq\x00~\x00\x01", "circular"),
        # a flood of stream resets, then the end
        (b"y" * 200000, "ends early"),
        (b"\x99", "invalid type code"),
    ],
    ids=["deep", "huge-array", "huge-string", "huge-block", "many-fields", "bad-reference", "class-cycle", "resets", "bad-code"],
)
def test_hostile_streams(tmp_path: Path, body: bytes, what: str) -> None:
    """Claims are checked against the bytes left: quick errors, no large allocations."""
    path = tmp_path / "hostile.qpdata"
    path.write_bytes(stream(body))
    start = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(QpdataError, match=what):
            read_qpdata(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 20 * len(path.read_bytes()) + 10_000_000

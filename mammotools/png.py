"""Writing PNG files fast and losslessly: the rows filtered in NumPy, deflated by ISA-L.

PNG encoding was half of data preparation's time. OpenCV's encoder at its default settings
takes 13-16 ms for a 900 px 16-bit crop and 0.44 s for a 4096x5120 mammogram; the PNG "Up"
filter (each row minus the one above) with ISA-L's deflate at level 1 takes a third of that for
the same size (``benchmarks/png_settings.py`` measures every setting against OpenCV's). Region
masks (1-bit) and label maps (palette) keep their long runs unfiltered: 5x and 8-12x faster
than OpenCV's, masks 6% smaller, label maps 39% larger (94 against 68 KB at full size).

The files are ordinary PNGs (one IHDR, PLTE for a palette, IDAT, IEND; no interlace) that
OpenCV, Pillow, Java's ImageIO (ImageJ, QuPath) read; the pixels round-trip exactly. Where
the ``isal`` package cannot be imported, Python's zlib at level 1 writes the same pixels in
larger files, 5-6x slower for 16-bit images. Deflate output may differ between CPU types (ISA-L
picks its code for the CPU); the pixels never do.

Memory: the rows are filtered and compressed in strips of about 4 MB; beside the array, a
full-field image needs twice its compressed size (the pieces, then the file's bytes) plus one
strip: 59 MB for a 28 MB 4096x5120 16-bit PNG.
"""

from __future__ import annotations

import struct
import types
import zlib
from collections.abc import Iterator

import numpy as np

_deflate: types.ModuleType
try:
    from isal import isal_zlib as _deflate
except ImportError:  # isal not importable: the same pixels, slower (see above)
    _deflate = zlib

LEVEL = 1  # ISA-L's levels are 0-3: 1 is as fast as 0 and 25-40% smaller; 2 and 3 no smaller (benchmarks/png_settings.py)
STRIP_BYTES = 4 << 20
MAX_CHUNK = (1 << 31) - 1  # PNG's limit on a chunk's length
SIGNATURE = b"\x89PNG\r\n\x1a\n"
GRAY, RGB, PALETTE = 0, 2, 3  # PNG colour types
NONE, UP = 0, 2  # PNG row filters


def encode_image(array: np.ndarray, row_filter: int = UP, level: int = LEVEL) -> bytes:
    """PNG bytes of a ``(H, W)`` gray or ``(H, W, 3)`` RGB array, uint8 or uint16 (8 or 16 bits
    per sample, big-endian in the file as PNG wants), Up-filtered (``row_filter``, ``level``:
    other choices, for benchmarks/png_settings.py)."""
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"a PNG image must be uint8 or uint16, got {array.dtype}")
    if array.ndim == 2:
        color = GRAY
    elif array.ndim == 3 and array.shape[2] == 3:
        color = RGB
    else:
        raise ValueError(f"a PNG image must be (H, W) or (H, W, 3), got {array.shape}")
    array = np.ascontiguousarray(array)
    h, w = array.shape[:2]
    if array.dtype == np.uint16:
        strips = (s.astype(">u2").view(np.uint8).reshape(len(s), -1) for s in _strips(array))
    else:
        strips = (s.reshape(len(s), -1) for s in _strips(array))
    return _png(w, h, 8 * array.itemsize, color, strips, row_filter, level)


def encode_bilevel(mask: np.ndarray, row_filter: int = NONE, level: int = LEVEL) -> bytes:
    """A 0/non-0 ``(H, W)`` uint8 map as a 1-bit gray PNG (non-0 -> white): OpenCV reads it back
    as 0/255, Pillow as mode "1"."""
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"a mask must be (H, W) uint8, got {mask.shape} {mask.dtype}")
    h, w = mask.shape
    rows = (np.packbits(s != 0, axis=1) for s in _strips(np.ascontiguousarray(mask)))
    return _png(w, h, 1, GRAY, rows, row_filter, level)


def encode_palette(label: np.ndarray, palette: bytes, row_filter: int = NONE, level: int = LEVEL) -> bytes:
    """An ``(H, W)`` uint8 map as an 8-bit palette PNG: the values are the palette indices,
    ``palette`` 768 bytes (256 RGB colours)."""
    if label.dtype != np.uint8 or label.ndim != 2:
        raise ValueError(f"a label map must be (H, W) uint8, got {label.shape} {label.dtype}")
    if len(palette) != 768:
        raise ValueError("a palette holds 256 RGB entries (768 bytes)")
    h, w = label.shape
    return _png(w, h, 8, PALETTE, _strips(np.ascontiguousarray(label)), row_filter, level, palette)


def _strips(array: np.ndarray) -> Iterator[np.ndarray]:
    """Consecutive row blocks of about STRIP_BYTES each (at least one row)."""
    rows = max(1, STRIP_BYTES // max(1, array[0].nbytes if len(array) else 1))
    for start in range(0, len(array), rows):
        yield array[start : start + rows]


def _png(width: int, height: int, depth: int, color: int, strips: Iterator[np.ndarray], row_filter: int, level: int,
         palette: bytes | None = None) -> bytes:  # fmt: skip
    """The PNG of ``strips``: blocks of rows as bytes, ``(n, bytes per row)`` uint8, in order."""
    if not (0 < width < 1 << 31 and 0 < height < 1 << 31):
        raise ValueError(f"a PNG is 1 to 2**31-1 pixels wide and high, not {width}x{height}")
    if row_filter not in (NONE, UP):
        raise ValueError(f"row filter {row_filter}: this writer filters rows by None (0) or Up (2)")
    compressor = _deflate.compressobj(level)
    idat: list[bytes] = []
    above: np.ndarray | None = None  # the last row of the previous strip
    for block in strips:
        rows = np.empty((block.shape[0], block.shape[1] + 1), np.uint8)
        rows[:, 0] = row_filter
        if row_filter == UP:
            np.subtract(block[1:], block[:-1], out=rows[1:, 1:])  # uint8 arithmetic wraps: modulo 256
            if above is None:
                rows[0, 1:] = block[0]  # the row above the first is zero
            else:
                np.subtract(block[0], above, out=rows[0, 1:])
            above = block[-1].copy()
        else:
            rows[:, 1:] = block
        idat.append(compressor.compress(rows))
    idat.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    parts = [SIGNATURE, _chunk(b"IHDR", header)]
    if palette is not None:
        parts.append(_chunk(b"PLTE", palette))
    size = sum(len(piece) for piece in idat)
    if size <= MAX_CHUNK:
        crc = zlib.crc32(b"IDAT")
        for piece in idat:
            crc = zlib.crc32(piece, crc)
        parts += [struct.pack(">I", size), b"IDAT", *idat, struct.pack(">I", crc)]
    else:  # a chunk holds at most 2**31 - 1 bytes: the stream goes on in the next IDAT
        data = b"".join(idat)
        idat.clear()
        parts += [_chunk(b"IDAT", data[i : i + MAX_CHUNK]) for i in range(0, size, MAX_CHUNK)]
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind)))

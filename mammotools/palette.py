"""Label maps as palette PNGs: the pixel values are the labels, and the file opens as a picture.

OpenCV writes 8-bit grayscale PNGs several times faster than PIL (performance-notes.md). The
image data of an 8-bit grayscale PNG and of an 8-bit palette PNG are byte-identical (one
filter byte then one byte per pixel per row), so the grayscale file becomes a palette file by
changing the colour type in the header and adding a PLTE chunk, without re-encoding.
"""

from __future__ import annotations

import os
import struct
import zlib

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GRAY, _PALETTE = 0, 3


def encode_label_png(label: np.ndarray, palette: bytes) -> bytes:
    """PNG bytes of a label map: (H, W) uint8 -> 8-bit palette PNG with ``palette`` (768 bytes RGB)."""
    if label.dtype != np.uint8 or label.ndim != 2:
        raise ValueError(f"label map must be (H, W) uint8, got {label.shape} {label.dtype}")
    if len(palette) != 768:
        raise ValueError("palette must hold 256 RGB entries (768 bytes)")
    ok, buf = cv2.imencode(".png", label)
    if not ok:
        raise RuntimeError("OpenCV could not encode the label map as PNG")
    data = buf.tobytes()
    # IHDR is always the first chunk: length(4) type(4) data(13) crc(4) after the signature.
    ihdr_start = len(PNG_SIGNATURE)
    length, ctype = struct.unpack(">I4s", data[ihdr_start : ihdr_start + 8])
    if ctype != b"IHDR" or length != 13:
        raise RuntimeError("unexpected PNG layout from OpenCV")
    ihdr = bytearray(data[ihdr_start + 8 : ihdr_start + 8 + 13])
    if ihdr[8] != 8 or ihdr[9] != _GRAY:  # bit depth, colour type
        raise RuntimeError("OpenCV did not write an 8-bit grayscale PNG")
    ihdr[9] = _PALETTE
    rest = data[ihdr_start + 8 + 13 + 4 :]
    return PNG_SIGNATURE + _chunk(b"IHDR", bytes(ihdr)) + _chunk(b"PLTE", palette) + rest


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """A label map PNG back as (H, W) uint8 values (palette indices, not colours)."""
    from PIL import Image

    from mammotools.errors import InputError

    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise InputError(f"{path}: a label map must be an 8-bit palette or grayscale PNG, not {im.mode}")
            return np.asarray(im).astype(np.uint8, copy=False)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the label map ({exc}); re-run the command that made it") from None

"""Lossless reading and writing of full-field mammograms (3000x4000 to 4096x5120, 12-16 bit).

Array contracts: grayscale is ``(H, W) uint8`` or ``(H, W) uint16``; colour is ``(H, W, 3)``
uint8/uint16 in RGB order. Bit depth is kept and nothing is rescaled silently. PNG, TIFF and
PGM are decoded by OpenCV (fast); DICOM by pydicom (imported lazily). Every problem with a
file is raised as a one-line :class:`InputError` naming the file.

This module is the one image reader: every command decodes images through :func:`read_image`,
:func:`read_image_size` or :func:`open_pillow`, and each turns whatever a decoder raises (Pillow's
ValueError for a PNG text chunk past ``MAX_TEXT_CHUNK``, its DecompressionBombError, OpenCV's
cv2.error, MemoryError...) into that one line. Files are opened by Python (``open``) and decoders
get their bytes or a file object, never the name: a name that is not UTF-8 (kept by Python as
surrogates, PEP 383) reads like any other, where ``cv2.imread`` of such a name crashes the process
(a segmentation fault). Names written into outputs must be UTF-8 (:func:`name_problem`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from mammotools.errors import InputError, MammoError, MissingFileError, printable
from mammotools.files import atomic_write_bytes
from mammotools.png import SIGNATURE as PNG_SIGNATURE
from mammotools.png import encode_bilevel, encode_image

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", ".pgm", ".dcm", ".dicom")
_RASTER_FORMATS = ("PNG", "TIFF", "PPM")  # Pillow's format names; PPM covers PGM
_SUPPORTED = "supported formats are PNG, TIFF, PGM and DICOM"
_AGAIN = "copy or export the file again"
_TIFF_LAYOUT_TAGS = (258, 273, 279, 320, 324, 325, 338, 339)  # bits, strips, colormap, tiles, samples
_TIFF_TYPE_BYTES = (1, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4, 1, 1, 8, 8, 8)  # bytes per value, by TIFF type
# What decoders raise on a file they refuse (Pillow, OpenCV, zlib, struct): each becomes one line.
_DECODER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, OSError, SyntaxError, EOFError, IndexError, KeyError, TypeError, ArithmeticError, cv2.error,
)  # fmt: skip


MAX_NAME_BYTES = 200  # an output's name: this stem, a suffix (".json", "_probabilities.png"), a temporary's ".tmp-PID"


def name_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a file's name cannot name outputs, or None when it can.

    The one rule for names that are not UTF-8 (bytes such as ``b"\\xff.png"``, which Python keeps
    as surrogates): such a file is read like any other (by its bytes), but names nothing that is
    written, because records, GeoJSON, CSV and QuPath projects are UTF-8 text and QuPath (Java)
    cannot open a file by a name that is not, so an output named after it, with the bytes escaped,
    would not lead back to it. The item is refused alone with this line."""
    name = os.fspath(path)
    try:
        size = len(Path(name).stem.encode("utf-8"))  # the name alone: the folder names no output
    except UnicodeEncodeError:
        shown = printable(Path(name).name)
        return (
            f"{printable(name)}: the file name '{shown}' is not valid UTF-8 (a name from another system's "
            "encoding); outputs, QuPath projects and QuPath itself need UTF-8 names: rename the file "
            "(e.g. convmv -f latin1 -t utf8 --notest FILE)"
        )
    if size > MAX_NAME_BYTES:
        return (
            f"{printable(Path(name).name)[:48]}...: the file name is {size} bytes long; outputs named after it "
            "(with their suffixes and "
            f"temporary names) must stay under the 255 bytes a file system allows: rename it to at most "
            f"{MAX_NAME_BYTES} bytes"
        )
    return None


@contextlib.contextmanager
def decoding(path: str | os.PathLike[str], what: str = "image", fix: str = _AGAIN) -> Iterator[None]:
    """Run a decoder on ``path``: whatever it raises on a file it refuses becomes one
    :class:`InputError` line naming the file, what it is, the decoder's reason and ``fix``."""
    from PIL import Image

    try:
        yield
    except MammoError:
        raise
    except MemoryError:
        raise InputError(f"{path}: not enough memory to decode this {what}; free memory, or check the file") from None
    except Image.DecompressionBombError as exc:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise InputError(
            f"{path}: too large to open ({exc}): Pillow refuses images over {limit / 1e6:.0f} Mpx, twice its "
            "PIL.Image.MAX_IMAGE_PIXELS, as possible decompression bombs; a full-field mammogram is under 30 Mpx: "
            "check the file, or downscale or tile it"
        ) from None
    except _DECODER_ERRORS as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300] or type(exc).__name__
        if "MAX_TEXT_CHUNK" in reason or "MAX_TEXT_MEMORY" in reason:
            fix = "its PNG text (metadata) inflates past Pillow's limit against decompression bombs; save it without text chunks"
        raise InputError(f"{path}: not a readable {what} ({reason}); {fix}") from None


@contextlib.contextmanager
def open_pillow(path: str | os.PathLike[str], what: str = "image", fix: str = _AGAIN) -> Iterator[Any]:
    """A Pillow image of the file, opened from its bytes (any file name), inside :func:`decoding`:
    the block's decoding errors (``np.asarray(im)`` decodes) become one line naming the file."""
    from PIL import Image

    p = _existing(path)
    with decoding(p, what, fix), open(p, "rb") as fh, Image.open(fh) as im:
        yield im


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True for a supported suffix, or a DICOM file (``DICM`` at byte 128) without a suffix.

    A purely numeric suffix, as in UID-named files (``1.2.840.113619.2.55.3``), counts as none.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    return (suffix == "" or suffix[1:].isdigit()) and p.is_file() and _has_dicom_preamble(p)


def read_image(path: str | os.PathLike[str], voi: bool = True, notes: list[str] | None = None) -> np.ndarray:
    """Read an image losslessly: ``(H, W)`` uint8/uint16 gray, or ``(H, W, 3)`` uint8/uint16 RGB.

    PNG/TIFF/PGM pixels come back exactly as stored (a PGM with maxval 4095 stays 0..4095; an
    alpha channel is dropped only when fully opaque). DICOM gets one deliberate transformation,
    the display pipeline: modality LUT (Rescale Slope/Intercept), then the VOI LUT or window if
    present (a window maps onto ``[0, 2**BitsStored - 1]``), then MONOCHROME1 is inverted so
    that bright means dense. The result is rounded, clipped to ``[0, 2**BitsStored - 1]`` (the
    output range pydicom uses for unsigned data) and is uint16 if BitsStored > 8, else uint8.
    Without rescale or VOI (most MG files) the stored values come back unchanged. ``voi=False``
    skips the VOI step (the modality values are kept, clipped to the stored range). Each DICOM
    transformation that changed values is described in ``notes`` (when given), for the record.

    Raises :class:`MissingFileError` if ``path`` does not exist, :class:`InputError` for a
    truncated, corrupt, unsupported, multi-page, float/32-bit or pixel-less file.
    """
    p = _existing(path)
    if p.suffix.lower() in (".dcm", ".dicom") or _has_dicom_preamble(p):
        return _read_dicom(p, voi, notes if notes is not None else [])
    mode, (width, height) = _inspect_raster(p)
    with decoding(p):  # by its bytes: cv2.imread of a name that is not UTF-8 crashes the process
        arr: np.ndarray | None = cv2.imdecode(np.frombuffer(p.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.shape[:2] != (height, width):
        raise InputError(f"{p}: image data cannot be decoded (truncated or corrupt); {_AGAIN}")
    if arr.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{p}: {arr.dtype} pixels are not supported; convert to 8/16-bit")
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if channels == 4 and arr[..., 3].min() != np.iinfo(arr.dtype).max:
        raise InputError(f"{p}: image has transparent pixels; save it without alpha channel")
    if channels in (3, 4):
        if mode.startswith(("L", "I")):  # gray + alpha, which OpenCV expands to BGRA
            return np.ascontiguousarray(arr[..., 0])
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGB)
    if channels != 1:
        raise InputError(f"{p}: {channels}-channel images are not supported; save as gray/RGB")
    return arr


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Return ``(width, height)`` from the header only, without decoding pixels.

    Raises the errors of :func:`read_image` that the header can show.
    """
    p = _existing(path)
    if p.suffix.lower() in (".dcm", ".dicom") or _has_dicom_preamble(p):
        ds = _dcmread(p, stop_before_pixels=True)
        _check_dicom_header(p, ds, has_pixels=bool(ds.get("Rows") and ds.get("Columns")))
        return int(ds.Columns), int(ds.Rows)
    return _inspect_raster(p)[1]


def encode_png(array: np.ndarray) -> bytes:
    """Lossless PNG bytes of a ``(H, W)`` or ``(H, W, 3)`` RGB, uint8 or uint16 array (written by
    :mod:`mammotools.png`: 2.2-3.8x faster than OpenCV's encoder, the same size within 2.5%)."""
    dtype = getattr(array, "dtype", type(array).__name__)
    if not isinstance(array, np.ndarray) or dtype not in (np.uint8, np.uint16):
        raise ValueError(f"encode_png needs a uint8 or uint16 array, got {dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"encode_png needs an (H, W) or (H, W, 3) array, got {array.shape}")
    return encode_image(array)


def png_checked(path: str | os.PathLike[str]) -> tuple[int, int, int, int] | None:
    """(width, height, bits, channels) of a plain gray or RGB 8/16-bit PNG whose every chunk is
    whole (its CRC checks, IDAT present, IEND last), without decoding its pixels: about 30x
    cheaper than a decode for a full-field mammogram, and what a copy of its bytes needs.

    None for any other PNG (palette, alpha, other depths: decode it with :func:`read_image`);
    :class:`InputError` for a PNG cut short or corrupt."""
    import struct
    import zlib

    p = _existing(path)
    data = p.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        return None
    view, pos, header, idat = memoryview(data), len(PNG_SIGNATURE), None, False
    while True:
        if pos + 12 > len(data):
            raise InputError(f"{p}: PNG file is truncated (no IEND chunk); {_AGAIN}")
        (length,) = struct.unpack(">I", view[pos : pos + 4])
        kind = bytes(view[pos + 4 : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise InputError(f"{p}: PNG file is truncated (its {kind.decode('latin-1')} chunk is cut short); {_AGAIN}")
        if zlib.crc32(view[pos + 4 : end]) != struct.unpack(">I", view[end : end + 4])[0]:
            raise InputError(f"{p}: PNG file is corrupt (a {kind.decode('latin-1')} chunk fails its checksum); {_AGAIN}")
        if header is None:
            if kind != b"IHDR" or length != 13:
                return None
            header = struct.unpack(">IIBB", view[pos + 8 : pos + 18])
        idat |= kind == b"IDAT"
        pos = end + 4
        if kind == b"IEND":
            break
    width, height, bits, colour = header
    if not idat or bits not in (8, 16) or colour not in (0, 2) or not width or not height:
        return None
    return width, height, bits, 1 if colour == 0 else 3


def encode_mask_png(mask: np.ndarray) -> bytes:
    """A 0/255 (H, W) uint8 map as a 1-bit grayscale PNG (a fifth of the time of OpenCV's
    1-bit encoder at its defaults, 6% smaller; benchmarks/png_settings.py). OpenCV reads it back
    as the same 0/255 map; Pillow as mode "1" (``np.asarray`` gives True/False), Java's ImageIO
    as samples 0/1."""
    return encode_bilevel(mask)


def write_png(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` (as accepted by :func:`encode_png`) to ``path`` as PNG, atomically."""
    atomic_write_bytes(path, encode_png(array))


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a folder, not an image file; give the path of an image")
    if not p.is_file():
        raise MissingFileError(f"{p}: file not found; check the path")
    return p


def _has_dicom_preamble(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _inspect_raster(p: Path) -> tuple[str, tuple[int, int]]:
    """Check a PNG/TIFF/PGM header without decoding pixels; return (Pillow mode, size)."""
    with open_pillow(p, "image, or truncated", _SUPPORTED) as im:
        fmt, mode, size, needed = im.format, im.mode, im.size, _needed_bytes(im, p)
        pages = getattr(im, "n_frames", 1)
    if fmt not in _RASTER_FORMATS:
        raise InputError(f"{p}: {fmt} images are not supported; {_SUPPORTED}")
    if pages > 1:
        raise InputError(f"{p}: has {pages} pages; only single-page images are supported, save one per file")
    file_size = p.stat().st_size
    if needed is not None and file_size < needed:
        raise InputError(f"{p}: file is truncated ({file_size} bytes, its header needs {needed}); {_AGAIN}")
    if fmt == "PNG":  # libpng stops at IEND: without it the file was cut short
        with open(p, "rb") as f:
            f.seek(max(0, file_size - 1024))
            if b"IEND\xaeB`\x82" not in f.read():  # IEND chunk and its CRC
                raise InputError(f"{p}: PNG file is truncated (no IEND chunk); {_AGAIN}")
    return mode, size


def _needed_bytes(im: Any, p: Path) -> int | None:
    """File size a TIFF or binary PGM/PPM needs according to its header (None: unknown)."""
    if im.format == "TIFF":
        tags = im.tag_v2
        offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)  # strips or tiles
        ends = [] if offsets is None or counts is None else [np.add(offsets, counts, dtype=np.int64).max()]
        return int(max(ends + _tiff_directory_ends(p)))
    if im.format == "PPM" and im.mode != "1" and im.tile and im.tile[0][0] in ("raw", "ppm"):
        _, _, offset, args = im.tile[0]  # ("raw", rawmode) or ("ppm", (mode, maxval))
        args = args if isinstance(args, tuple) else (args,)
        depth = 2 if "16" in str(args[0]) or (len(args) > 1 and args[1] > 255) else 1
        return offset + im.size[0] * im.size[1] * depth * (3 if im.mode == "RGB" else 1)
    return None  # PNG (checked by IEND) or plain-text PGM


def _tiff_directory_ends(p: Path) -> list[int]:
    """Where the first TIFF directory (classic or BigTIFF) and its out-of-line layout values end."""
    with open(p, "rb") as f:
        head = f.read(16)
        order: Literal["little", "big"] = "little" if head[:2] == b"II" else "big"
        big = head[2:4] in (b"\0+", b"+\0")
        size, entry = (8, 20) if big else (4, 12)  # inline value / offset size, directory entry size
        ifd = int.from_bytes(head[8:16] if big else head[4:8], order)
        f.seek(ifd)
        count = int.from_bytes(f.read(8 if big else 2), order)
        table = f.read(count * entry)
    ends = [ifd + (8 if big else 2) + count * entry + size]
    for e in (table[i : i + entry] for i in range(0, len(table) - entry + 1, entry)):
        kind = int.from_bytes(e[2:4], order)
        nbytes = int.from_bytes(e[4 : 4 + size], order) * _TIFF_TYPE_BYTES[kind if kind < 19 else 1]
        if nbytes > size and int.from_bytes(e[:2], order) in _TIFF_LAYOUT_TAGS:
            ends.append(int.from_bytes(e[4 + size :], order) + nbytes)
    return ends


def _dcmread(p: Path, **kwargs: Any) -> Any:
    import pydicom

    try:
        ds = pydicom.dcmread(p, **kwargs)
        list(ds)  # convert every value now, so that a damaged one fails here
        return ds
    except Exception as exc:  # pydicom raises many types on damaged files
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{p}: not a readable DICOM file ({reason}); {_AGAIN}") from None


def _check_dicom_header(p: Path, ds: Any, has_pixels: bool) -> None:
    if "TransferSyntaxUID" not in ds.get("file_meta", {}):
        raise InputError(f"{p}: DICOM header has no Transfer Syntax UID (truncated or corrupt file); {_AGAIN}")
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise InputError(f"{p}: DICOM has float pixel data; convert it to 8/16-bit")
    if not has_pixels:  # pydicom drops all elements, or those after the cut, from a truncated file
        sop_class = getattr(ds.file_meta.get("MediaStorageSOPClassUID"), "name", "")
        if len(ds) == 0 or "Rows" in ds or "Image" in sop_class:
            raise InputError(f"{p}: DICOM image without pixel data, the file is truncated or corrupt; {_AGAIN}")
        raise InputError(f"{p} is a DICOM file without pixel data (not an image); give a DICOM image")
    if int(ds.get("NumberOfFrames") or 1) > 1:
        raise InputError(f"{p}: multi-frame DICOM ({ds.NumberOfFrames} frames) is not supported; export one per file")
    if int(ds.get("BitsStored") or 0) > 16:
        raise InputError(f"{p}: {ds.BitsStored}-bit DICOM pixels; convert it to 8/16-bit")


def _read_dicom(p: Path, voi: bool, notes: list[str]) -> np.ndarray:
    import warnings

    from pydicom import pixels

    with warnings.catch_warnings():  # pydicom warns about oddities it repairs; not for the user's console
        warnings.simplefilter("ignore")
        return _decode_dicom(p, voi, notes, pixels)


def _decode_dicom(p: Path, voi: bool, notes: list[str], pixels: Any) -> np.ndarray:
    ds = _dcmread(p)
    _check_dicom_header(p, ds, has_pixels="PixelData" in ds)
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        available = pixels.get_decoder(syntax).is_available
    except NotImplementedError:
        fix = "convert it to uncompressed DICOM (gdcmconv --raw)"
        raise InputError(f"{p}: no Python package decodes DICOM transfer syntax '{syntax.name}'; {fix}") from None
    if not available:
        name = syntax.name.upper()
        package = "pylibjpeg-openjpeg" if "2000" in name else "pylibjpeg-libjpeg" if "JPEG" in name else "pylibjpeg-rle"
        raise InputError(f"{p}: no decoder installed for '{syntax.name}' pixel data; pip install pylibjpeg {package}")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # decoders raise many types on bad data
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{p}: DICOM pixel data cannot be decoded ({reason}); {_AGAIN}") from None
    bits = int(ds.BitsStored)
    dtype, top = (np.uint16 if bits > 8 else np.uint8), 2**bits - 1
    photometric = str(ds.PhotometricInterpretation)
    if photometric == "PALETTE COLOR":
        return pixels.apply_color_lut(arr, ds)
    if arr.ndim == 3:  # RGB: pydicom has already converted YBR to RGB
        return arr.astype(dtype, copy=False)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    if "ModalityLUTSequence" in ds or (slope, intercept) != (1.0, 0.0):
        arr = pixels.apply_modality_lut(arr, ds)
        notes.append(f"DICOM modality LUT applied (rescale slope {slope:g}, intercept {intercept:g})")
    # ds is ours alone: strip the rescale so that a window maps onto [0, top] (pydicom would
    # otherwise map it onto the rescaled range) and apply it to the modality values.
    for keyword in ("ModalityLUTSequence", "RescaleSlope", "RescaleIntercept"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelRepresentation = 0
    has_voi = "VOILUTSequence" in ds or "WindowCenter" in ds
    if voi and has_voi:
        try:
            arr = pixels.apply_voi_lut(arr, ds)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:  # Window Width 0, a broken VOI LUT
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise InputError(
                f"{p}: its DICOM VOI window or LUT cannot be applied ({reason}); pass --no-dicom-voi to keep the stored "
                "values, or fix the file's Window Center/Width"
            ) from None
        window = f"center {ds.WindowCenter}, width {ds.WindowWidth}" if "WindowCenter" in ds else "VOI LUT sequence"
        notes.append(
            f"DICOM VOI window applied ({window}): values outside it are clipped to 0..{top}; "
            "pass --no-dicom-voi to keep the stored values"
        )
    arr = np.clip(np.rint(arr) if arr.dtype.kind == "f" else arr, 0, top).astype(dtype, copy=False)
    if photometric == "MONOCHROME1":
        np.subtract(dtype(top), arr, out=arr)
        notes.append("DICOM MONOCHROME1 inverted so that bright means dense")
    return arr


def image_bits(image: np.ndarray) -> int:
    """Bit depth the image's values need: 8 for uint8, else 8..16 from its maximum (12-bit
    mammograms stored in uint16 give 12). Intensity augmentations stay within it."""
    if image.dtype == np.uint8:
        return 8
    return max(8, int(image.max()).bit_length())

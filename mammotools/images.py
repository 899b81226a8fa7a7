"""Lossless reading and writing of full-field mammograms.

Pixels come back exactly as stored: same bit depth, never rescaled. Array contracts:
grayscale is ``(H, W) uint8`` or ``(H, W) uint16``; colour is ``(H, W, 3)`` uint8/uint16 in RGB
order. PNG, TIFF and PGM are decoded by OpenCV (fast); DICOM by pydicom (imported lazily).
Every problem with a file is raised as a one-line :class:`InputError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mammotools.errors import InputError, MissingFileError
from mammotools.files import atomic_write_bytes

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", ".pgm", ".dcm", ".dicom")
_DICOM_SUFFIXES = (".dcm", ".dicom")
_RASTER_FORMATS = ("PNG", "TIFF", "PPM")  # Pillow's names; PPM covers PGM
_SUPPORTED = "supported formats are PNG, TIFF, PGM and DICOM"
_FIX_COPY = "copy or export the file again"


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True for a supported suffix, or for a DICOM file named without one (e.g. ``IM0001``).

    A purely numeric suffix, as in UID-named files (``1.2.840.113619.2.55.3``), counts as none.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    return (suffix == "" or suffix[1:].isdigit()) and p.is_file() and _has_dicom_preamble(p)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image losslessly: ``(H, W)`` uint8/uint16 grayscale or ``(H, W, 3)`` RGB.

    PNG/TIFF/PGM pixels are returned exactly as stored (a PGM with maxval 4095 stays 0..4095;
    an alpha channel is dropped only when fully opaque). For DICOM the one deliberate
    transformation is the display pipeline: the modality LUT (Rescale Slope/Intercept), then
    the VOI LUT or window (if present; the window maps onto ``[0, 2**BitsStored - 1]``), then
    MONOCHROME1 is inverted so that bright means dense. The result is rounded, clipped to
    ``[0, 2**BitsStored - 1]`` and returned as uint16 if BitsStored > 8, else uint8; without
    rescale or VOI (most MG files) the stored values come back unchanged.

    Raises :class:`MissingFileError` if ``path`` does not exist and :class:`InputError` for a
    truncated, corrupt, unsupported, multi-page, float/32-bit or pixel-less file.
    """
    p = _existing(path)
    if _is_dicom(p):
        return _read_dicom(p)
    mode, (width, height) = _inspect_raster(p)
    arr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.shape[:2] != (height, width):
        raise InputError(f"{p}: the image data cannot be decoded (truncated or corrupt); "
                         f"{_FIX_COPY}")
    if arr.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{p}: {arr.dtype} pixels are not supported; convert the image to "
                         "8- or 16-bit unsigned integers")
    if arr.ndim == 3 and arr.shape[2] == 4:
        if arr[..., 3].min() != np.iinfo(arr.dtype).max:
            raise InputError(f"{p}: the image has transparent pixels; save it without an alpha "
                             "channel")
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[2] == 3:
        if mode.startswith(("L", "I")):  # gray + alpha, expanded to BGR by OpenCV
            return np.ascontiguousarray(arr[..., 0])
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if arr.ndim != 2:
        raise InputError(f"{p}: {arr.shape[2]}-channel images are not supported; save it as "
                         "grayscale or RGB")
    return arr


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Return ``(width, height)`` from the header only, without decoding pixels.

    Raises the same errors as :func:`read_image` for what the header shows.
    """
    p = _existing(path)
    if _is_dicom(p):
        ds = _dcmread(p, stop_before_pixels=True)
        _check_dicom_header(p, ds, has_pixels="Rows" in ds and "Columns" in ds)
        return int(ds.Columns), int(ds.Rows)
    return _inspect_raster(p)[1]


def encode_png(array: np.ndarray) -> bytes:
    """Lossless PNG bytes of a ``(H, W)`` or ``(H, W, 3)`` RGB uint8/uint16 array.

    OpenCV's default parameters are used on purpose: setting a compression level takes it
    off its fast path.
    """
    if not isinstance(array, np.ndarray) or array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"encode_png needs a uint8 or uint16 array, got {_describe(array)}")
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim != 2:
        raise ValueError(f"encode_png needs an (H, W) or (H, W, 3) array, got {array.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {array.shape} {array.dtype} array as PNG")
    return buf.tobytes()


def write_png(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` (as for :func:`encode_png`) to ``path`` as PNG, atomically."""
    atomic_write_bytes(path, encode_png(array))


def _describe(obj: Any) -> str:
    return f"{obj.dtype} array" if isinstance(obj, np.ndarray) else type(obj).__name__


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


def _is_dicom(p: Path) -> bool:
    return p.suffix.lower() in _DICOM_SUFFIXES or _has_dicom_preamble(p)


def _inspect_raster(p: Path) -> tuple[str, tuple[int, int]]:
    """Check a PNG/TIFF/PGM header (lazily, no pixel decoding); return (Pillow mode, size)."""
    from PIL import Image

    try:
        with Image.open(p) as im:
            fmt, mode, size = im.format, im.mode, im.size
            pages = getattr(im, "n_frames", 1)
            needed = _needed_bytes(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{p}: not a readable image ({exc}); {_SUPPORTED}") from None
    if fmt not in _RASTER_FORMATS:
        raise InputError(f"{p}: {fmt} images are not supported; {_SUPPORTED}")
    if pages > 1:
        raise InputError(f"{p}: has {pages} pages; only single-page images are supported, "
                         "save each page as its own file")
    file_size = p.stat().st_size
    if needed is not None and file_size < needed:
        raise InputError(f"{p}: file is truncated ({file_size} bytes, its header needs "
                         f"{needed}); {_FIX_COPY}")
    if fmt == "PNG":
        with open(p, "rb") as f:
            f.seek(max(0, file_size - 1024))
            if b"IEND" not in f.read():
                raise InputError(f"{p}: PNG file is truncated (no IEND chunk); {_FIX_COPY}")
    return mode, size


def _needed_bytes(im: Any) -> int | None:
    """Bytes an uncompressed PGM/PPM or a TIFF needs according to its header (None: unknown)."""
    if im.format == "TIFF":
        tags = im.tag_v2
        offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)
        if offsets is None or counts is None:
            return None
        return max(o + c for o, c in zip(np.atleast_1d(offsets), np.atleast_1d(counts)))
    if im.format == "PPM" and im.mode != "1" and im.tile:
        codec, _, offset, args = im.tile[0]
        if codec not in ("raw", "ppm"):  # plain (ASCII) PGM: size unknown
            return None
        args = args if isinstance(args, tuple) else (args,)
        wide = "16" in str(args[0]) or (len(args) > 1 and args[1] > 255)
        width, height = im.size
        return offset + width * height * (2 if wide else 1) * (3 if im.mode == "RGB" else 1)
    return None


def _dcmread(p: Path, **kwargs: Any) -> Any:
    import pydicom

    try:
        return pydicom.dcmread(p, **kwargs)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{p}: not a readable DICOM file ({reason}); {_FIX_COPY}") from None


def _check_dicom_header(p: Path, ds: Any, has_pixels: bool) -> None:
    if "TransferSyntaxUID" not in ds.get("file_meta", {}):
        raise InputError(f"{p}: DICOM header is incomplete (no Transfer Syntax UID), the file "
                         f"is truncated or corrupt; {_FIX_COPY}")
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise InputError(f"{p}: DICOM has float pixel data; convert it to 8- or 16-bit")
    if not has_pixels:
        maybe = ", or the file is truncated" if "Rows" in ds else ""
        raise InputError(f"{p}: is a DICOM file without pixel data (not an image{maybe}); "
                         "give the path of a DICOM image")
    if int(ds.get("NumberOfFrames") or 1) > 1:
        raise InputError(f"{p}: multi-frame DICOM ({ds.NumberOfFrames} frames) is not "
                         "supported; export each frame as its own image")
    if int(ds.get("BitsStored") or 0) > 16:
        raise InputError(f"{p}: {ds.BitsStored}-bit DICOM pixels are not supported; convert "
                         "to 8- or 16-bit")


def _read_dicom(p: Path) -> np.ndarray:
    from pydicom import pixels

    ds = _dcmread(p)
    _check_dicom_header(p, ds, has_pixels="PixelData" in ds)
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        decoder = pixels.get_decoder(syntax)
    except NotImplementedError:
        raise InputError(f"{p}: no installed package decodes DICOM transfer syntax "
                         f"'{syntax.name}'; convert it to uncompressed DICOM "
                         "(e.g. gdcmconv --raw)") from None
    if not decoder.is_available:
        name = syntax.name.upper()
        package = ("pylibjpeg-openjpeg" if "2000" in name else "pylibjpeg-libjpeg"
                   if "JPEG" in name else "pylibjpeg-rle")
        raise InputError(f"{p}: no decoder installed for '{syntax.name}' DICOM pixel data; "
                         f"run: pip install pylibjpeg {package}")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on bad data
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{p}: DICOM pixel data cannot be decoded ({reason}); the file is "
                         f"truncated or corrupt, {_FIX_COPY}") from None
    bits = int(ds.BitsStored)
    dtype, top = (np.uint16 if bits > 8 else np.uint8), 2**bits - 1
    photometric = str(ds.PhotometricInterpretation)
    if photometric == "PALETTE COLOR":
        return pixels.apply_color_lut(arr, ds)
    if arr.ndim == 3:  # RGB (pydicom already converted YBR to RGB)
        return arr.astype(dtype, copy=False)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    if "ModalityLUTSequence" in ds or (slope, intercept) != (1.0, 0.0):
        arr = pixels.apply_modality_lut(arr, ds)
    # The window is applied to modality values and mapped onto [0, top], whatever the rescale.
    for keyword in ("ModalityLUTSequence", "RescaleSlope", "RescaleIntercept"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelRepresentation = 0
    arr = pixels.apply_voi_lut(arr, ds)
    if arr.dtype.kind == "f":
        arr = np.rint(arr)
    arr = np.clip(arr, 0, top).astype(dtype, copy=False)
    if photometric == "MONOCHROME1":
        arr = np.subtract(dtype(top), arr, dtype=dtype)
    return arr

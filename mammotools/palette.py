"""Label maps as palette PNGs: the pixel values are the labels, and the file opens as a picture.

Written by mammotools.png (unfiltered rows, ISA-L deflate: 9-12x faster than OpenCV's 8-bit PNG,
files about 40% larger, 94 KB for a full-field map; benchmarks/png_settings.py); read back by
Pillow as the palette indices.
"""

from __future__ import annotations

import os

import numpy as np


def encode_label_png(label: np.ndarray, palette: bytes) -> bytes:
    """PNG bytes of a label map: (H, W) uint8 -> 8-bit palette PNG with ``palette`` (768 bytes RGB)."""
    from mammotools.png import encode_palette

    return encode_palette(label, palette)  # it checks the map and the palette


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """A label map PNG back as (H, W) uint8 values (palette indices, not colours); a file that
    does not decode is one InputError line (:func:`mammotools.images.open_pillow`)."""
    from mammotools.errors import InputError
    from mammotools.images import open_pillow

    with open_pillow(path, "label map", "re-run the command that made it") as im:
        if im.mode not in ("P", "L"):
            raise InputError(f"{path}: a label map must be an 8-bit palette or grayscale PNG, not {im.mode}")
        return np.asarray(im).astype(np.uint8, copy=False)

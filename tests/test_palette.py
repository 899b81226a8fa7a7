"""Label maps as palette PNGs: exact values, and colours from the class table."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from mammotools.classes import default_class_table
from mammotools.palette import encode_label_png


def test_palette_png_keeps_values_and_shows_colours() -> None:
    table = default_class_table()
    label = np.random.default_rng(0).integers(0, 14, (61, 97)).astype(np.uint8)
    data = encode_label_png(label, table.palette())
    Image.open(io.BytesIO(data)).verify()  # CRCs and chunk layout are valid
    image = Image.open(io.BytesIO(data))
    assert image.mode == "P" and image.size == (97, 61)
    assert np.array_equal(np.array(image), label)
    rgb = np.array(image.convert("RGB"))
    tumor = table.find("Tumor")
    assert tuple(rgb[label == tumor.label][0]) == tumor.color

"""The PNG writer: every kind of file the pipeline writes reads back with the exact pixels in
OpenCV and Pillow, across strip boundaries and with the zlib fallback; whole chunks (CRCs)."""

from __future__ import annotations

import io
import shutil
import subprocess
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mammotools import png
from mammotools.images import png_checked


def decoded(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("shape, dtype", [((517, 333), np.uint16), ((61, 47, 3), np.uint16), ((61, 47, 3), np.uint8),
                                          ((300, 1), np.uint8), ((1, 1), np.uint16)])  # fmt: skip
@pytest.mark.parametrize("strip", [png.STRIP_BYTES, 1, 999])  # one strip; one row each; strips of some rows
def test_images_read_back_exactly(shape: tuple, dtype: type, strip: int, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(png, "STRIP_BYTES", strip)
    rng = np.random.default_rng(len(shape) + strip)
    array = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    array[: shape[0] // 2] //= 7  # smoother rows too: the Up filter's differences wrap both ways
    data = png.encode_image(array)
    back = decoded(data)
    assert np.array_equal(back if array.ndim == 2 else back[..., ::-1], array)  # OpenCV gives BGR
    if dtype == np.uint8 or array.ndim == 2:
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), array)
    (tmp_path / "a.png").write_bytes(data)
    channels = 1 if array.ndim == 2 else 3
    assert png_checked(tmp_path / "a.png") == (shape[1], shape[0], 8 * array.itemsize, channels)  # every CRC checks


def test_a_mask_is_1_bit_and_a_label_map_a_palette(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    mask = np.where(rng.random((203, 99)) > 0.6, 255, 0).astype(np.uint8)  # width not a multiple of 8
    for strip in (png.STRIP_BYTES, 50):
        monkeypatch.setattr(png, "STRIP_BYTES", strip)
        data = png.encode_bilevel(mask)
        assert data[24:26] == bytes([1, png.GRAY])  # IHDR: bit depth 1, gray
        assert np.array_equal(decoded(data), mask)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), mask > 0)
    label = rng.integers(0, 12, (150, 77)).astype(np.uint8)
    palette = bytes(range(256)) * 3
    image = Image.open(io.BytesIO(png.encode_palette(label, palette)))
    assert image.mode == "P" and np.array_equal(np.asarray(image), label)
    assert bytes(image.getpalette()[:768]) == palette


def test_without_isal_zlib_writes_the_same_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    array = np.random.default_rng(1).integers(0, 4096, (120, 90)).astype(np.uint16)
    fast = png.encode_image(array)
    monkeypatch.setattr(png, "_deflate", zlib)
    slow = png.encode_image(array)
    assert np.array_equal(decoded(slow), array) and np.array_equal(decoded(fast), array)


def test_what_cannot_be_a_png_is_refused() -> None:
    with pytest.raises(ValueError, match="uint8 or uint16"):
        png.encode_image(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, 3\)"):
        png.encode_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="1 to 2\\*\\*31-1 pixels"):
        png.encode_image(np.zeros((0, 4), np.uint8))
    with pytest.raises(ValueError, match="768 bytes"):
        png.encode_palette(np.zeros((4, 4), np.uint8), b"\0" * 10)
    with pytest.raises(ValueError, match="mask must be"):
        png.encode_bilevel(np.zeros((4, 4), np.uint16))


JAVA_READER = """
import java.io.File;
import java.awt.image.*;
import javax.imageio.ImageIO;

public class ReadPng {
    public static void main(String[] args) throws Exception {
        for (String name : args) {
            BufferedImage im = ImageIO.read(new File(name));
            Raster r = im.getRaster();
            long sum = 0, weighted = 0;
            for (int y = 0; y < im.getHeight(); y++)
                for (int x = 0; x < im.getWidth(); x++)
                    for (int b = 0; b < r.getNumBands(); b++) {
                        int v = r.getSample(x, y, b);
                        sum += v;
                        weighted += (long) v * ((y * 31L + x * 7L + b) % 1009);
                    }
            System.out.println(im.getWidth() + " " + im.getHeight() + " " + r.getNumBands() + " "
                + r.getSampleModel().getSampleSize(0) + " " + sum + " " + weighted);
        }
    }
}
"""


def java_sums(array: np.ndarray) -> str:
    """What ReadPng prints for the array: width height bands bits sum weighted-sum."""
    a = array.astype(np.int64) if array.ndim == 3 else array.astype(np.int64)[..., None]
    h, w, bands = a.shape
    y, x, b = np.meshgrid(np.arange(h), np.arange(w), np.arange(bands), indexing="ij")
    bits = {np.dtype(np.uint16): 16, np.dtype(np.uint8): 8, np.dtype(bool): 1}[array.dtype]
    return f"{w} {h} {bands} {bits} {a.sum()} {(a * ((y * 31 + x * 7 + b) % 1009)).sum()}"


def test_java_imageio_reads_the_pixels_written(tmp_path: Path) -> None:
    """QuPath opens PNGs through ImageJ, which reads them with Java's ImageIO: the same values."""
    java = shutil.which("java")
    if java is None:
        pytest.skip("no java on this machine (QuPath's runtime reads PNGs with javax.imageio)")
    rng = np.random.default_rng(5)
    gray16 = rng.integers(0, 4096, (37, 45)).astype(np.uint16)
    rgb8 = rng.integers(0, 256, (21, 19, 3)).astype(np.uint8)
    mask = np.where(rng.random((33, 50)) > 0.5, 255, 0).astype(np.uint8)
    label = rng.integers(0, 14, (29, 31)).astype(np.uint8)
    files = {
        "gray16.png": (png.encode_image(gray16), gray16),
        "rgb8.png": (png.encode_image(rgb8), rgb8),
        "mask.png": (png.encode_bilevel(mask), mask > 0),  # 1-bit samples: 0/1
        "label.png": (png.encode_palette(label, bytes(range(256)) * 3), label),  # palette indices
    }
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "ReadPng.java").write_text(JAVA_READER)
    done = subprocess.run([java, str(tmp_path / "ReadPng.java"), *[str(tmp_path / n) for n in files]],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = [java_sums(array) for _, array in files.values()]
    assert done.stdout.split("\n")[:4] == expected


def test_a_stream_longer_than_a_chunk_goes_on_in_the_next_idat(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(png, "MAX_CHUNK", 1000)  # PNG's limit is 2**31 - 1 bytes
    array = np.random.default_rng(2).integers(0, 65536, (40, 50)).astype(np.uint16)
    data = png.encode_image(array)
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append((data[pos + 4 : pos + 8], length))
        pos += 12 + length
    lengths = [n for kind, n in chunks if kind == b"IDAT"]
    assert len(lengths) > 3 and set(lengths[:-1]) == {1000} and 0 < lengths[-1] <= 1000
    assert [kind for kind, _ in chunks] == [b"IHDR", *[b"IDAT"] * len(lengths), b"IEND"]
    assert np.array_equal(decoded(data), array) and np.array_equal(np.asarray(Image.open(io.BytesIO(data))), array)
    (tmp_path / "a.png").write_bytes(data)
    assert png_checked(tmp_path / "a.png") == (50, 40, 16, 1)

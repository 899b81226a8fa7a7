"""Class-balanced crop centres (paper, 3.1.2) and crop windows.

For each crop: take the image's labels, remove the common ones (mammary gland and background,
one of which is in every crop), choose one remaining label uniformly at random, then one pixel of
that label uniformly at random: that pixel is the crop centre. With no such label, the centre is
a uniformly random pixel inside the breast (any label but the bottom class), or anywhere when
the image has no breast pixel.

Cost: one pass over the label map per candidate label to count its pixels per row; then each
crop costs a binary search over the rows and a scan of one row, whatever the image height, so
drawing many crops from a large label map stays cheap (benchmarks/crops.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Window:
    """A crop window in source pixel coordinates; ``row0``/``col0`` < 0 when padded."""

    row0: int
    col0: int
    size: int
    padded: bool


class PixelPicker:
    """Uniformly random pixels of one value (or of "not this value") in a label map."""

    def __init__(self, label: np.ndarray, value: int, invert: bool = False) -> None:
        self.label, self.value, self.invert = label, value, invert
        # OpenCV's compare and row sums: one pass, several times faster than numpy's (label == v).sum(1)
        # 255 where it matches; the ignore: OpenCV's stubs leave out the scalar src2 that compare accepts
        hits = cv2.compare(label, value, cv2.CMP_NE if invert else cv2.CMP_EQ)  # type: ignore[call-overload]
        per_row = cv2.reduce(hits, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() // 255
        self.cumulative = np.cumsum(per_row, dtype=np.int64)  # (H,) pixels up to each row
        self.count = int(self.cumulative[-1]) if self.cumulative.size else 0

    def pick(self, rng: np.random.Generator) -> tuple[int, int]:
        """(row, col) of a pixel drawn uniformly among the matching ones."""
        j = int(rng.integers(self.count))
        row = int(np.searchsorted(self.cumulative, j, side="right"))
        before = int(self.cumulative[row - 1]) if row else 0
        line = self.label[row]
        cols = np.flatnonzero(line != self.value if self.invert else line == self.value)
        return row, int(cols[j - before])


def choose_centre(
    rng: np.random.Generator,
    pickers: dict[int, PixelPicker],
    breast: PixelPicker | None,
    shape: tuple[int, int],
) -> tuple[int, int, int | None]:
    """(row, col, chosen label or None for the fallback) of one crop centre."""
    labels = sorted(pickers)
    if labels:
        value = labels[int(rng.integers(len(labels)))]
        return (*pickers[value].pick(rng), value)
    if breast is not None and breast.count:
        return (*breast.pick(rng), None)
    return int(rng.integers(shape[0])), int(rng.integers(shape[1])), None


def window_around(row: int, col: int, shape: tuple[int, int], size: int) -> Window:
    """A ``size`` x ``size`` window centred on (row, col), shifted to lie inside the image; along
    a side shorter than ``size`` the image is centred in the window (the rest is padding)."""
    height, width = shape

    def start(centre: int, extent: int) -> int:
        if extent < size:
            return -((size - extent) // 2)
        return min(max(centre - size // 2, 0), extent - size)

    return Window(start(row, height), start(col, width), size, height < size or width < size)


def cut(array: np.ndarray, window: Window, fill: int) -> np.ndarray:
    """The window's pixels of ``array`` (H, W[, C]); padding takes the value ``fill``."""
    h, w = array.shape[:2]
    s = window.size
    if not window.padded:
        return array[window.row0 : window.row0 + s, window.col0 : window.col0 + s].copy()
    out = np.full((s, s, *array.shape[2:]), fill, array.dtype)
    r0, c0 = max(window.row0, 0), max(window.col0, 0)
    r1, c1 = min(window.row0 + s, h), min(window.col0 + s, w)
    out[r0 - window.row0 : r1 - window.row0, c0 - window.col0 : c1 - window.col0] = array[r0:r1, c0:c1]
    return out

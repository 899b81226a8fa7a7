"""Sliding-window inference a band of rows at a time: memory bounded by the window, not the image.

:func:`mammotools.inference.sliding_window_scores` keeps (num_classes, H, W) float32 accumulators,
a weight map and a padded float copy of the image: with the label map, its argmax (int64) and the
probabilities brought back to the image's size, ``predict`` held about 71 bytes per pixel with 4
classes (1.5 GB at 3000 x 3000; a 12000 x 12000 image failed at the argmax after 7.5 minutes).
Here the same tiles are run in the same batches and blended in the same order, but each band of
rows is handed out as soon as no later tile reaches it, the image is read a band at a time
(:class:`RowSource`: the caller converts its rows to floats on demand), a model run at ``--scale``
has its bands resized to the image's rows as they come (:func:`resized_strips`), and only what the
outputs need is kept per pixel (:class:`LabelMap`): the class index (1 byte), the probability of
that class (4 bytes, for the shapes' mean probability) and, when asked for, each class's
probability as 8 bits. Measured by benchmarks/predict_memory.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mammotools.inference.sliding import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_OVERLAP,
    _blend_probabilities,
    _check_image,
    _check_window,
    _evaluating,
    _logits,
    _model_device,
    _model_input,
    _pad_axis,
    gaussian_weights,
    tile_starts,
    windows_per_pass,
)


@dataclass(frozen=True)
class RowSource:
    """An image read a band of rows at a time: ``shape`` is (C, H, W); ``rows(y0, y1)`` returns
    rows y0..y1-1 as a (C, y1 - y0, W) float tensor, already normalised."""

    shape: tuple[int, int, int]
    rows: Callable[[int, int], torch.Tensor]

    @staticmethod
    def of(image: torch.Tensor) -> RowSource:
        """The rows of an image held whole."""
        _check_image(image)
        c, h, w = (int(v) for v in image.shape)
        return RowSource((c, h, w), lambda a, b: image[:, a:b])


def _padded_band(source: RowSource, first: int, stop: int, top: int, mode: str, value: float) -> torch.Tensor:
    """Rows first..stop-1 of the image padded by ``top`` rows above, as ``_pad_axis`` pads the
    whole image (``mode``: "value", "reflect" or "zeros"); not yet padded sideways."""
    channels, h, w = source.shape
    index = torch.arange(first, stop) - top
    if mode == "reflect":
        index = torch.where(index < 0, -index, index)
        index = torch.where(index >= h, 2 * (h - 1) - index, index)
    inside = (index >= 0) & (index < h)
    band = torch.full((channels, stop - first, w), value if mode == "value" else 0.0)
    if bool(inside.any()):
        lo, hi = int(index[inside].min()), int(index[inside].max()) + 1
        rows = source.rows(lo, hi)
        band = band.to(rows.dtype)
        band[:, inside] = rows[:, index[inside] - lo]
    return band


def sliding_window_strips(
    model: nn.Module,
    image: torch.Tensor | RowSource,
    num_classes: int,
    window: int,
    out: int | None = None,
    overlap: float = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    pad_value: float | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """The probabilities of :func:`~mammotools.inference.sliding_window_scores`, as bands of rows:
    yields ``(y0, probs)``, probs (num_classes, rows, W) float32 on the compute device, top to
    bottom, each image row once. Bit for bit the whole-image result: the windows run in the same
    batches (``batch_size``, small windows packed by :func:`~mammotools.inference.sliding.windows_per_pass`).

    Same arguments, but ``image`` may be a :class:`RowSource`. The accumulators cover the rows
    the current batch of tiles reaches: ``out`` rows (plus one row of tiles per extra row a batch
    spans), times the padded width, times ``num_classes``.
    """
    source = image if isinstance(image, RowSource) else RowSource.of(image)
    out = window if out is None else out
    margin = _check_window(window, out)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    run_on = torch.device(device) if device is not None else _model_device(model)
    batch_size = windows_per_pass(batch_size, window)
    _, h, w = source.shape
    hh, ww = max(h, out), max(w, out)  # as the whole-image route: an axis shorter than a tile is centred in it
    oy, ox = (hh - h) // 2, (ww - w) // 2
    top, bottom = margin + oy, margin + hh - h - oy
    mode = "value" if pad_value is not None else "reflect" if max(top, bottom) < h else "zeros"
    ys, xs = tile_starts(hh, out, overlap), tile_starts(ww, out, overlap)
    positions = [(y, x) for y in ys for x in xs]
    weights = gaussian_weights(out, run_on)
    base = 0  # the output region's row at the accumulators' first row
    scores = torch.zeros((num_classes, 0, ww), dtype=torch.float32, device=run_on)
    total_weight = torch.zeros((0, ww), dtype=torch.float32, device=run_on)
    band, band_rows = torch.empty(0), (-1, -1)  # the padded rows of the last batch: the next ones of its row share them
    with _evaluating(model, run_on, dtype):
        for first in range(0, len(positions), batch_size):
            batch = positions[first : first + batch_size]
            y_lo, y_hi = batch[0][0], batch[-1][0]
            if band_rows != (y_lo, y_hi):
                del band
                band = _padded_band(source, y_lo, y_hi + window, top, mode, 0.0 if pad_value is None else pad_value)
                band = _pad_axis(band, 2, margin + ox, margin + ww - w - ox, pad_value)
                band_rows = (y_lo, y_hi)
            windows = torch.stack([band[:, y - y_lo : y - y_lo + window, x : x + window] for y, x in batch])
            logits = _logits(model(_model_input(windows, run_on)))
            expected = (len(batch), num_classes, out, out)
            if tuple(logits.shape) != expected:
                raise ValueError(
                    f"the model returned {tuple(logits.shape)} for {tuple(windows.shape)} windows, expected {expected}: "
                    "check num_classes, window and out"
                )
            probs = _blend_probabilities(logits, weights)
            del logits, windows
            grow = y_hi + out - base - total_weight.shape[0]
            if grow > 0:
                scores = torch.cat([scores, scores.new_zeros((num_classes, grow, ww))], 1)
                total_weight = torch.cat([total_weight, total_weight.new_zeros((grow, ww))], 0)
            for (y, x), p in zip(batch, probs, strict=True):
                scores[:, y - base : y - base + out, x : x + out] += p
                total_weight[y - base : y - base + out, x : x + out] += weights
            del probs
            final = positions[first + batch_size][0] if first + batch_size < len(positions) else hh  # no later tile above
            if final > base:
                n = final - base
                done = scores[:, :n] / total_weight[:n]
                scores, total_weight = scores[:, n:].clone(), total_weight[n:].clone()
                lo, hi = max(base, oy), min(final, oy + h)  # the image's rows of the band
                if hi > lo:
                    yield lo - oy, done[:, lo - base : hi - base, ox : ox + w]
                base = final


def resized_strips(
    strips: Iterator[tuple[int, torch.Tensor]], size_in: tuple[int, int], size_out: tuple[int, int]
) -> Iterator[tuple[int, torch.Tensor]]:
    """Bands of (C, h, w) probabilities resized to (H, W) = ``size_out`` as they come: bilinear,
    as :func:`~mammotools.inference.resize_scores` (``align_corners=False``), done along the width
    by PyTorch and along the height by the same weights computed here (the same values up to
    float rounding: label maps may differ only where two classes tie within about 1e-6)."""
    (h, w), (big_h, big_w) = size_in, size_out
    if (h, w) == (big_h, big_w):
        yield from strips
        return
    src = np.float32(h) / np.float32(big_h) * (np.arange(big_h, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0))
    i0 = src.astype(np.int64)
    i1 = np.where(i0 < h - 1, i0 + 1, i0)
    l1 = (src - i0).astype(np.float32)
    l0 = (np.float32(1) - l1).astype(np.float32)
    buffer: torch.Tensor | None = None
    start, row = 0, 0  # the buffer's first source row; the next output row
    for y0, strip in strips:
        wide = F.interpolate(strip.unsqueeze(0), size=(strip.shape[1], big_w), mode="bilinear", align_corners=False)[0]
        buffer = wide if buffer is None else torch.cat([buffer, wide], 1)
        end = y0 + strip.shape[1]
        stop = int(np.searchsorted(i1, end))  # output rows whose two source rows have come
        if stop > row:
            a = buffer[:, torch.from_numpy(i0[row:stop] - start)]
            b = buffer[:, torch.from_numpy(i1[row:stop] - start)]
            wa = torch.from_numpy(l0[row:stop]).to(buffer.device)[None, :, None]
            wb = torch.from_numpy(l1[row:stop]).to(buffer.device)[None, :, None]
            yield row, wa * a + wb * b
            row = stop
            keep = int(i0[stop]) if stop < big_h else end
            buffer, start = buffer[:, keep - start :].clone(), keep


@dataclass
class LabelMap:
    """What ``predict`` keeps of an image's probabilities.

    label: (H, W) uint8 class indices (the argmax, the first class on a tie); confidence: (H, W)
    float32, the probability of each pixel's class; probabilities: (num_classes, H, W) uint8,
    each class's probability as 0..255 (``rint(p * 255)``), or None when not asked for."""

    label: np.ndarray
    confidence: np.ndarray
    probabilities: np.ndarray | None


def label_map_by_strips(
    strips: Iterator[tuple[int, torch.Tensor]], num_classes: int, size: tuple[int, int], probabilities: bool = False
) -> LabelMap:
    """A :class:`LabelMap` of (H, W) = ``size`` from bands of probabilities (of
    :func:`sliding_window_strips`, resized by :func:`resized_strips`): the same argmax and
    values as from the whole (num_classes, H, W) float32 array, without holding it."""
    if num_classes > 256:
        raise ValueError(f"a uint8 label map holds at most 256 classes, got num_classes={num_classes}")
    height, width = size
    label = np.empty((height, width), np.uint8)
    confidence = np.empty((height, width), np.float32)
    eight = np.empty((num_classes, height, width), np.uint8) if probabilities else None
    for y0, strip in strips:
        p = strip.float().cpu().numpy()
        index = p.argmax(0)
        label[y0 : y0 + p.shape[1]] = index
        confidence[y0 : y0 + p.shape[1]] = np.take_along_axis(p, index[None], 0)[0]
        if eight is not None:
            eight[:, y0 : y0 + p.shape[1]] = np.rint(p * 255)
    return LabelMap(label, confidence, eight)

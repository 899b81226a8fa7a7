"""Sliding-window inference over a whole mammogram, and the one-pass baseline.

Models are trained on crops (256 to 1500 px) but a mammogram is 3000 to 5000 px a side, so a
whole image is predicted window by window. A model's output for an input window of side
``window`` is the centred square of side ``out``: ``out == window`` for padded models (FCN,
Dilation, DeepLabV3), ``out = window - 184`` for the unpadded U-Net (572 -> 388). The output
tiles are laid to cover the image exactly, overlapping by ``overlap``, the last one ending at
the border; each input window reaches ``(window - out) / 2`` px beyond its tile, so the image
is padded by that margin (reflected, or the given ``pad_value``); an image axis shorter than a
tile is centred in the tile. Overlapping
tiles are blended with Gaussian weights (sigma = out / 8, as nnU-Net), so tile borders, where
a model sees least context, count least.

Memory is bounded by one batch of ``batch_size`` windows (and its activations), the
(num_classes, H, W) accumulators and a padded copy of the image, never by the whole image's
activations. Windows smaller than ``PACKED_SIDE`` are packed by pixels, so that a pass holds as
many pixels as ``batch_size`` windows of that side (see :func:`windows_per_pass`): a forward call
costs about as much for 4 windows of 32 px as for 256 of them on a CPU, and a 32 px model
slid over a 256 px crop needs 225 windows. :func:`whole_image_scores` is the one-pass baseline the benchmark compares with.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_OVERLAP = 0.5
DEFAULT_BATCH_SIZE = 4
PACKED_SIDE = 256  # windows smaller than this are packed into a pass by pixels (windows_per_pass)
GAUSSIAN_SIGMA_SCALE = 1 / 8  # sigma = out / 8, nnU-Net's choice


def gaussian_weights(size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Blending weights of one output tile: (size, size) float32, maximum 1, every weight > 0.

    A separable Gaussian centred on the tile (at (size - 1) / 2, so symmetric for even sizes)
    with sigma = size / 8. Its corners are exp(-32) ~ 1e-14 of the centre, still positive in
    float32; a weight is never 0 so every pixel covered by a tile has a defined average.
    """
    if size < 1:
        raise ValueError(f"tile size must be at least 1, got {size}")
    sigma = size * GAUSSIAN_SIGMA_SCALE
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    w = torch.outer(g, g)
    w = (w / w.max()).to(torch.float32)
    tiny = torch.finfo(torch.float32).tiny
    return w.clamp_min(tiny)


def tile_starts(length: int, out: int, overlap: float = DEFAULT_OVERLAP) -> list[int]:
    """Start positions of the output tiles along one axis of ``length`` px.

    Tiles of side ``out`` step by at most ``out * (1 - overlap)``, spread evenly, the first at
    0 and the last ending exactly at ``length`` (no gap, nothing out of range). ``length`` must
    be at least ``out`` (pad the image first).
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if length < out:
        raise ValueError(f"axis of {length} px is shorter than the tile ({out} px): pad it first")
    if length == out:
        return [0]
    step = max(1.0, out * (1 - overlap))
    n = math.ceil((length - out) / step) + 1
    span = length - out
    return [round(i * span / (n - 1)) for i in range(n)]


def _pad_axis(image: torch.Tensor, axis: int, before: int, after: int, value: float | None = None) -> torch.Tensor:
    """Pad one spatial axis of (C, H, W) with ``value``; None: reflected where the axis is long
    enough, else zeros."""
    if before == 0 and after == 0:
        return image
    pad = (before, after) if axis == 2 else (0, 0, before, after)
    if value is not None:
        return F.pad(image, pad, mode="constant", value=value)
    if max(before, after) < image.shape[axis]:
        return F.pad(image, pad, mode="reflect")
    return F.pad(image, pad, mode="constant", value=0.0)


def _check_image(image: torch.Tensor) -> None:
    if image.dim() != 3 or not image.is_floating_point():
        raise ValueError(f"image must be a (C, H, W) float tensor, got shape {tuple(image.shape)} dtype {image.dtype}")


def _check_window(window: int, out: int) -> int:
    """The margin (window - out) / 2 a model eats on each side."""
    if out < 1 or out > window or (window - out) % 2:
        raise ValueError(
            f"a model's output ({out} px) must be a centred part of its input ({window} px): out <= window and window - out even"
        )
    return (window - out) // 2


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _logits(output: object) -> torch.Tensor:
    # torchvision's segmentation models return {"out": logits, "aux": ...}.
    if isinstance(output, Mapping):
        output = output["out"]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"the model returned {type(output).__name__}, expected a tensor of logits")
    return output


@contextlib.contextmanager
def _evaluating(model: nn.Module, device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Eval mode, inference mode and optional autocast; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    try:
        with torch.inference_mode(), autocast:
            yield
    finally:
        model.train(was_training)


def _model_input(windows: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Windows (B, C, h, w) as the model gets them: on ``device``, and channels-last on the CPU.

    A CPU convolution (oneDNN) runs faster on channels-last input, and an NCHW model follows its
    input's layout without being converted. Measured (2-core x86_64 CPU, 4 windows of 512 px,
    median of 3): smp-unet width 0.25 5.6 -> 4.1 s a pass, fcn8 width 0.25 2.0 -> 1.4 s; the
    label maps equal. Left as it is on a GPU (untested there; see ``train --channels-last``)."""
    windows = windows.to(device, non_blocking=True)
    if device.type == "cpu" and windows.dim() == 4:
        windows = windows.contiguous(memory_format=torch.channels_last)
    return windows


def _blend_probabilities(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Softmax over classes times the tile weights, (B, num_classes, out, out) float32 in the
    standard layout, so that the per-tile sums read it contiguously."""
    return torch.softmax(logits.float().contiguous(), dim=1) * weights


def windows_per_pass(batch_size: int, window: int) -> int:
    """Windows per forward call: ``batch_size`` windows of ``window`` px, or for a window smaller
    than ``PACKED_SIDE`` as many as hold the pixels of ``batch_size`` windows of ``PACKED_SIDE``
    (memory stays bounded by that; tiny windows no longer cost a forward call each few).
    Measured (deeplabv3-r18, width 1/16, 2-core CPU): 32 px windows, 8.4 ms each 4 a pass, 1.1 ms
    each 256 a pass."""
    return batch_size * max(1, PACKED_SIDE**2 // window**2)


def _sliding_window(
    model: nn.Module,
    image: torch.Tensor,
    num_classes: int,
    window: int,
    out: int | None,
    overlap: float,
    batch_size: int,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
    pad_value: float | None = None,
) -> torch.Tensor:
    """The blended probabilities, (num_classes, H, W) float32 on the compute device."""
    _check_image(image)
    out = window if out is None else out
    margin = _check_window(window, out)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    run_on = torch.device(device) if device is not None else _model_device(model)
    _, h, w = image.shape
    # Output region at least one tile a side; the input reaches `margin` beyond it. An axis shorter
    # than a tile is centred in it, as make-crops centres an image shorter than its crops (a model
    # may have learned where the border of such an image lies: measured on DDSM, mean Dice 0.889
    # centred against 0.832 at the edge).
    hh, ww = max(h, out), max(w, out)
    oy, ox = (hh - h) // 2, (ww - w) // 2
    padded = _pad_axis(image, 1, margin + oy, margin + hh - h - oy, pad_value)
    padded = _pad_axis(padded, 2, margin + ox, margin + ww - w - ox, pad_value)
    ys, xs = tile_starts(hh, out, overlap), tile_starts(ww, out, overlap)
    positions = [(y, x) for y in ys for x in xs]

    weights = gaussian_weights(out, run_on)
    batch_size = windows_per_pass(batch_size, window)
    scores = torch.zeros((num_classes, hh, ww), dtype=torch.float32, device=run_on)
    total_weight = torch.zeros((hh, ww), dtype=torch.float32, device=run_on)
    with _evaluating(model, run_on, dtype):
        for first in range(0, len(positions), batch_size):
            batch_positions = positions[first : first + batch_size]
            # Tile (y, x) of the output region is window (y, x) of the padded image.
            windows = torch.stack([padded[:, y : y + window, x : x + window] for y, x in batch_positions])
            logits = _logits(model(_model_input(windows, run_on)))
            expected = (len(batch_positions), num_classes, out, out)
            if tuple(logits.shape) != expected:
                raise ValueError(
                    f"the model returned {tuple(logits.shape)} for {tuple(windows.shape)} windows, expected {expected}: "
                    "check num_classes, window and out"
                )
            probs = _blend_probabilities(logits, weights)
            for (y, x), p in zip(batch_positions, probs, strict=True):
                scores[:, y : y + out, x : x + out] += p
                total_weight[y : y + out, x : x + out] += weights
    scores /= total_weight
    return scores[:, oy : oy + h, ox : ox + w]


def sliding_window_scores(
    model: nn.Module,
    image: torch.Tensor,
    num_classes: int,
    window: int,
    out: int | None = None,
    overlap: float = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    pad_value: float | None = None,
) -> torch.Tensor:
    """Class probabilities of a whole image, predicted window by window and blended.

    image: (C, H, W) float, already normalised, any H, W (smaller than a window too).
    model: takes (B, C, window, window), returns logits (B, num_classes, out, out) for the
    centred ``out`` square (``out`` None: the whole window), or a mapping whose ``"out"`` is
    that (torchvision). It runs in eval mode under torch.inference_mode; its mode is restored.
    window, out: the model's input side and output side; ``(window - out) / 2`` is the context
    margin each window reaches beyond its tile. overlap: fraction of a tile shared with its
    neighbour, in [0, 1). batch_size: windows per forward call (windows under PACKED_SIDE px
    packed by pixels, :func:`windows_per_pass`).
    device: where windows run and the accumulators live; the model must be on it already.
    None: the model's device. dtype: autocast dtype (e.g. torch.float16 on CUDA), None = off.
    pad_value: what the windows see beyond the image (a model trained on make-crops crops saw
    black there: the scaled value of intensity 0); None: the image reflected.

    Returns (num_classes, H, W) float32 softmax probabilities (summing to 1 per pixel) on the
    CPU, or on ``device`` when one is given.
    """
    probs = _sliding_window(model, image, num_classes, window, out, overlap, batch_size, device, dtype, pad_value)
    return probs if device is not None else probs.cpu()


def predict_label_map(
    model: nn.Module,
    image: torch.Tensor,
    num_classes: int,
    window: int,
    out: int | None = None,
    overlap: float = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """The label map of a whole image: (H, W) uint8, the argmax of :func:`sliding_window_scores`.

    Same arguments; the argmax is taken on the compute device, so only the label map is copied
    back. num_classes must be at most 256.
    """
    if num_classes > 256:
        raise ValueError(f"a uint8 label map holds at most 256 classes, got num_classes={num_classes}")
    probs = _sliding_window(model, image, num_classes, window, out, overlap, batch_size, device, dtype)
    return probs.argmax(dim=0).to(torch.uint8).cpu().numpy()


def resize_scores(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(num_classes, h, w) probabilities resized to ``size`` = (H, W), bilinearly (a model run at
    ``--scale`` predicts a smaller image; its scores are brought back to the image's pixels).
    Bilinear weights sum to one, so each pixel's probabilities still sum to 1."""
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores
    return F.interpolate(scores.unsqueeze(0), size=size, mode="bilinear", align_corners=False)[0]


def whole_image_scores(
    model: nn.Module,
    image: torch.Tensor,
    num_classes: int,
    device: torch.device | str | None = None,
    *,
    window: int | None = None,
    out: int | None = None,
    multiple: int = 32,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Class probabilities of a whole image from one forward pass: the baseline to compare
    sliding windows against (memory grows with the image's activations).

    image: (C, H, W) float, already normalised. The image is padded at the bottom and right
    (reflected, or zeros along an axis too short) to the smallest input side the model
    accepts: a multiple of ``multiple`` (``window`` None, output = input), or ``window`` plus a
    multiple of ``multiple`` with output = input - (window - out) (e.g. the unpadded U-Net:
    window 572, out 388, multiple 16), in which case the ``(window - out) / 2`` margin is also
    padded on the top and left. device, dtype: as :func:`sliding_window_scores`.

    Returns (num_classes, H, W) float32 softmax probabilities, on the CPU or on ``device``.
    """
    _check_image(image)
    if multiple < 1:
        raise ValueError(f"multiple must be at least 1, got {multiple}")
    run_on = torch.device(device) if device is not None else _model_device(model)
    _, h, w = image.shape
    if window is None:
        margin, base = 0, 0
    else:
        out = window if out is None else out
        margin = _check_window(window, out)
        base = window

    def input_side(side: int) -> int:
        # smallest base + k * multiple (k >= 0 when window is given) whose output covers `side`
        k = max(0, math.ceil((side + 2 * margin - base) / multiple))
        return base + k * multiple

    sh, sw = input_side(h), input_side(w)
    padded = _pad_axis(image, 1, margin, sh - h - margin)
    padded = _pad_axis(padded, 2, margin, sw - w - margin)
    with _evaluating(model, run_on, dtype):
        logits = _logits(model(_model_input(padded.unsqueeze(0), run_on)))
    expected = (1, num_classes, sh - 2 * margin, sw - 2 * margin)
    if tuple(logits.shape) != expected:
        raise ValueError(
            f"the model returned {tuple(logits.shape)} for a {(sh, sw)} input, expected {expected}: "
            "check num_classes, window, out and multiple"
        )
    # outside inference mode, so the result is an ordinary tensor (in-place ops allowed)
    probs = torch.softmax(logits[0, :, :h, :w].float(), dim=0)
    return probs if device is not None else probs.cpu()

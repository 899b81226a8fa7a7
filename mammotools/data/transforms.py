"""The paper's online input pipeline (method.md, "Online input pipeline"), in numpy.

Per training item: a random window of the model's input size inside the crop, a horizontal
flip (p = 0.5) and a contrast change (p = 0.5), gray replicated to 3 channels, intensities
scaled to [-0.5, 0.5] by the image's bit depth; RGB images (Cityscapes) also get a brightness
and a saturation change (p = 0.5 each). Validation items get the scaling only.

Array contracts: image (H, W) or (H, W, 3) uint8/uint16; label (H, W) uint8 label values
(``IGNORE_LABEL`` = no class); model input (3, H, W) float32 in [-0.5, 0.5]; target (H, W)
int64 class indices (0..C-1) or ``IGNORE_LABEL``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mammotools.defaults import IGNORE_LABEL

# What a model sees beyond a mammogram's border: make-crops pads crops with intensity 0, which
# scale_image maps to -0.5; sliding windows pad whole images with the same value.
OUTSIDE_IMAGE = -0.5
CONTRAST_RANGE = (0.7, 1.3)  # factor around the image's mean, drawn uniformly (method.md: "random contrast")
FLIP_P = 0.5
CONTRAST_P = 0.5
# RGB images only (the paper's Cityscapes pipeline): brightness shifts the [-0.5, 0.5] values by
# up to 32/255 (TensorFlow's customary max_delta); saturation scales each pixel's distance from
# its gray value.
BRIGHTNESS_DELTA = 32 / 255
SATURATION_RANGE = (0.5, 1.5)


@dataclass(frozen=True)
class Augment:
    """What the online pipeline does to a training item (all off for validation)."""

    flip_p: float = FLIP_P
    contrast_p: float = CONTRAST_P
    contrast_range: tuple[float, float] = CONTRAST_RANGE
    brightness_p: float = 0.5  # RGB images only
    saturation_p: float = 0.5  # RGB images only


NO_AUGMENT = Augment(flip_p=0.0, contrast_p=0.0, brightness_p=0.0, saturation_p=0.0)


def label_lookup(labels: list[int]) -> np.ndarray:
    """256-entry table: label value -> class index (position in ``labels``); every other value,
    ``IGNORE_LABEL`` included, -> ``IGNORE_LABEL``."""
    lut = np.full(256, IGNORE_LABEL, np.int64)
    for index, value in enumerate(labels):
        lut[value] = index
    return lut


def scale_image(image: np.ndarray, bits: int) -> np.ndarray:
    """(H, W[, 3]) integer image -> (3, H, W) float32 in [-0.5, 0.5]: value / (2**bits - 1) - 0.5,
    gray replicated to three channels (values above the bit depth are clipped)."""
    peak = float((1 << bits) - 1)
    x = np.minimum(image.astype(np.float32), peak)
    x *= np.float32(1.0 / peak)
    x -= np.float32(0.5)
    if x.ndim == 2:
        return np.broadcast_to(x, (3, *x.shape)).copy()
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def scaled_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """(H, W) of an image of ``shape`` resized by ``scale`` (each side rounded, at least 1 px)."""
    h, w = shape
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_image(image: np.ndarray, scale: float) -> np.ndarray:
    """An (H, W[, 3]) image resized by ``scale``: pixel-area averaging down, bilinear up; same dtype.

    Training crops and the whole images scored by sliding window go through this one function,
    so a model sees the same resampling in both. ``scale == 1`` returns the image itself.
    """
    if scale == 1:
        return image
    import cv2

    h, w = scaled_shape(image.shape[:2], scale)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def resize_label(label: np.ndarray, scale: float) -> np.ndarray:
    """An (H, W) uint8 label map resized by ``scale``, nearest neighbour (no invented values)."""
    if scale == 1:
        return label
    import cv2

    h, w = scaled_shape(label.shape, scale)
    return cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)


Size = int | tuple[int, int]  # a square side, or (height, width)


def as_shape(size: Size) -> tuple[int, int]:
    """(height, width) of a window given as a side or a (height, width) pair."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def random_window(rng: np.random.Generator, shape: tuple[int, int], size: Size) -> tuple[int, int]:
    """Top-left corner of a ``size`` window (a side, or (height, width)) drawn uniformly inside ``shape``."""
    h, w = shape
    wh, ww = as_shape(size)
    return int(rng.integers(0, h - wh + 1)), int(rng.integers(0, w - ww + 1))


def centre_crop(array: np.ndarray, size: Size) -> np.ndarray:
    """The central ``size`` part (a side, or (height, width)) of a (..., H, W) array (the unpadded U-Net's output region)."""
    h, w = array.shape[-2:]
    sh, sw = as_shape(size)
    r, c = (h - sh) // 2, (w - sw) // 2
    return array[..., r : r + sh, c : c + sw]


def training_item(
    image: np.ndarray,
    label: np.ndarray,
    bits: int,
    lut: np.ndarray,
    rng: np.random.Generator,
    in_size: Size,
    out_size: Size,
    augment: Augment,
) -> tuple[np.ndarray, np.ndarray]:
    """One (model input, target) pair: (3, in_h, in_w) float32, (out_h, out_w) int64; sizes are
    a side or (height, width).

    The window is drawn at random for training (``augment`` not NO_AUGMENT) and centred for
    validation; the target is the window's central ``out_size`` part.
    """
    h, w = label.shape
    ih, iw = as_shape(in_size)
    if rng is not None and augment != NO_AUGMENT:
        r0, c0 = random_window(rng, (h, w), (ih, iw))
    else:
        r0, c0 = (h - ih) // 2, (w - iw) // 2
    image = image[r0 : r0 + ih, c0 : c0 + iw]
    target = lut[label[r0 : r0 + ih, c0 : c0 + iw]]
    x = scale_image(image, bits)
    if augment.flip_p and rng.random() < augment.flip_p:
        x = np.ascontiguousarray(x[..., ::-1])
        target = np.ascontiguousarray(target[..., ::-1])
    if image.ndim == 3:  # RGB: brightness and saturation too (gray images draw nothing here)
        if augment.brightness_p and rng.random() < augment.brightness_p:
            x = np.clip(x + np.float32(rng.uniform(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)), -0.5, 0.5).astype(np.float32)
        if augment.saturation_p and rng.random() < augment.saturation_p:
            gray = x.mean(axis=0, keepdims=True)
            factor = np.float32(rng.uniform(*SATURATION_RANGE))
            x = np.clip(gray + (x - gray) * factor, -0.5, 0.5).astype(np.float32)
    if augment.contrast_p and rng.random() < augment.contrast_p:
        factor = np.float32(rng.uniform(*augment.contrast_range))
        mean = np.float32(x.mean())
        x = np.clip((x - mean) * factor + mean, -0.5, 0.5).astype(np.float32)
    if as_shape(out_size) != (ih, iw):
        target = np.ascontiguousarray(centre_crop(target, out_size))
    return x, target

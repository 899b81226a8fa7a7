"""The ten named offline augmentation variants of the paper (3.1.2, Fig. 4), image + label map.

Intensity variants change the image and leave the label map as it is; they compute in float32
and round back to the image's dtype, clipped to its bit depth (``peak = 2**bits - 1``, e.g.
4095 for a 12-bit mammogram stored in uint16). Geometric variants move the label map with the
image: nearest neighbour for labels (no new label values), bilinear for the image; corners
uncovered by a rotation are 0 in the image and the background label in the map.

Defaults (module constants, one place): noise std 2% of peak; unsharp mask amount 1.0 at sigma
2 px; Gaussian smoothing sigma 1.5 px; CLAHE clip limit 2.0 on an 8x8 grid; contrast x1.3 and
x0.7 around the crop's mean; horizontal and vertical mirror; rotation by +10 and -10 degrees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

# numpy and OpenCV are imported where they are used, so the CLI reads the variant names
# without loading them.
if TYPE_CHECKING:
    import numpy as np

NOISE_STD = 0.02  # fraction of the peak value
SHARPEN_AMOUNT, SHARPEN_SIGMA = 1.0, 2.0
SMOOTH_SIGMA = 1.5
CLAHE_CLIP, CLAHE_GRID = 2.0, 8
CONTRAST_UP, CONTRAST_DOWN = 1.3, 0.7
ROTATION_DEGREES = 10.0

Pair = tuple["np.ndarray", "np.ndarray"]


@dataclass(frozen=True)
class Variant:
    """A named augmentation: ``apply(image, label, rng, peak, fill_label) -> (image, label)``."""

    name: str
    geometric: bool
    description: str
    apply: Callable[[np.ndarray, np.ndarray, np.random.Generator, int, int], Pair]
    # whether the label map's pixel counts can change: a rotation's corners do; a mirror only
    # rearranges the pixels, an intensity variant leaves the map as it is
    recounts: bool = False


def _to_dtype(values: np.ndarray, like: np.ndarray, peak: int) -> np.ndarray:
    """float32 values rounded and clipped to [0, peak], in ``like``'s dtype (in place on values)."""
    import numpy as np

    np.rint(values, out=values)
    np.clip(values, 0, peak, out=values)
    return values.astype(like.dtype)


def _noise(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, peak: int, fill: int) -> Pair:
    import numpy as np

    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noise *= NOISE_STD * peak
    noise += image
    return _to_dtype(noise, image, peak), label


def _sharpen(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, peak: int, fill: int) -> Pair:
    import cv2
    import numpy as np

    x = image.astype(np.float32)
    blurred = cv2.GaussianBlur(x, (0, 0), SHARPEN_SIGMA, borderType=cv2.BORDER_REFLECT)
    sharp = cv2.addWeighted(x, 1 + SHARPEN_AMOUNT, blurred, -SHARPEN_AMOUNT, 0)  # x + a (x - blur)
    return _to_dtype(sharp, image, peak), label


def _smooth(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, peak: int, fill: int) -> Pair:
    import cv2
    import numpy as np

    blurred = cv2.GaussianBlur(image.astype(np.float32), (0, 0), SMOOTH_SIGMA, borderType=cv2.BORDER_REFLECT)
    return _to_dtype(blurred, image, peak), label


def _clahe(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, peak: int, fill: int) -> Pair:
    import cv2
    import numpy as np

    clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=(CLAHE_GRID, CLAHE_GRID))
    full = 255 if image.dtype == np.uint8 else 65535
    # CLAHE's output spans the dtype's whole range: scale it back to the image's bit depth
    channels = [image] if image.ndim == 2 else [image[..., c] for c in range(image.shape[2])]
    out = [clahe.apply(np.ascontiguousarray(ch)).astype(np.float32) * np.float32(peak / full) for ch in channels]
    merged = out[0] if image.ndim == 2 else np.stack(out, axis=-1)
    return _to_dtype(merged, image, peak), label


def _contrast(factor: float) -> Callable[..., Pair]:
    def apply(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, peak: int, fill: int) -> Pair:
        import cv2
        import numpy as np

        mean = float(cv2.mean(image)[0]) if image.ndim == 2 else float(image.mean())
        scaled = image.astype(np.float32)
        scaled *= factor
        scaled += mean * (1 - factor)  # mean + factor (x - mean)
        return _to_dtype(scaled, image, peak), label

    return apply


def _flip(axis: int) -> Callable[..., Pair]:
    code = 1 if axis == 1 else 0  # OpenCV: 1 = around the vertical axis (left-right), 0 = top-bottom

    def apply(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, peak: int, fill: int) -> Pair:
        import cv2

        return cv2.flip(image, code), cv2.flip(label, code)

    return apply


def _rotate(degrees: float) -> Callable[..., Pair]:
    def apply(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, peak: int, fill: int) -> Pair:
        import cv2

        h, w = label.shape
        # positive = clockwise on screen (y points down), about the crop centre
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -degrees, 1.0)
        img = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        lab = cv2.warpAffine(label, matrix, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
        return img, lab

    return apply


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("noise", False, f"additive Gaussian noise, std {NOISE_STD:.0%} of peak", _noise),
        Variant("sharpen", False, f"unsharp mask, amount {SHARPEN_AMOUNT}, sigma {SHARPEN_SIGMA} px", _sharpen),
        Variant("smooth", False, f"Gaussian smoothing, sigma {SMOOTH_SIGMA} px", _smooth),
        Variant("clahe", False, f"contrast enhancement: CLAHE, clip {CLAHE_CLIP}, {CLAHE_GRID}x{CLAHE_GRID} grid", _clahe),
        Variant("contrast_up", False, f"contrast x{CONTRAST_UP} around the mean", _contrast(CONTRAST_UP)),
        Variant("contrast_down", False, f"contrast x{CONTRAST_DOWN} around the mean", _contrast(CONTRAST_DOWN)),
        Variant("flip_lr", True, "mirror left-right", _flip(1)),
        Variant("flip_ud", True, "mirror top-bottom", _flip(0)),
        Variant("rotate_cw", True, f"rotate {ROTATION_DEGREES:g} degrees clockwise", _rotate(ROTATION_DEGREES), True),
        Variant("rotate_ccw", True, f"rotate {ROTATION_DEGREES:g} degrees anticlockwise", _rotate(-ROTATION_DEGREES), True),
    )
}


def apply_variant(name: str, image: np.ndarray, label: np.ndarray, rng: np.random.Generator, bits: int, fill_label: int) -> Pair:
    """Apply variant ``name`` to an image (H, W[, 3]) uint8/uint16 and its label map (H, W) uint8;
    ``bits``: the depth of the image's values, 1..8 for uint8, 1..16 for uint16."""
    most = 8 * image.dtype.itemsize
    if not 1 <= bits <= most:  # a larger peak would wrap or zero the values on the cast back
        from mammotools.errors import InputError

        raise InputError(f"bit depth {bits}: a {image.dtype} image holds 1..{most}-bit values; give the image's bit depth")
    peak = (1 << bits) - 1
    return VARIANTS[name].apply(image, label, rng, peak, fill_label)

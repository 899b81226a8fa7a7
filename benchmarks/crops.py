"""make-crops and augment speed, each against a named baseline, side by side in one run.

1. Crop centres and cuts on full-field label maps: mammotools (count each candidate label's
   pixels per row once per image, then a binary search and one row scan per crop) against two
   baselines: the strongest simple one, ``np.argwhere(label == v)`` run once per label per image
   and its pixel lists kept for the image's crops; and the naive one that scans the label map
   for every crop. The figure that matters is the time per image (setup plus its 10 crops);
   crops per second without the setup are shown too, at three image sizes.
2. The ten augmentation variants of a 1500x1500 16-bit crop: mammotools.augment against
   albumentations doing the same operations (albumentations is not a dependency: install it in
   the benchmark environment, ``pip install -r benchmarks/requirements.txt``; without it that
   part is skipped with a note).

    python benchmarks/crops.py [--crops 200] [--baseline-crops 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from mammotools.crops.centres import PixelPicker, choose_centre, cut, window_around
from mammotools.seeds import crop_seed

SIZE = 900  # crop side for the centre benchmark
PER_IMAGE = 10  # make-crops' default number of crops per image
COMMON = {0, 13}  # background, mammary gland


def synthetic_label(height: int, width: int) -> np.ndarray:
    """A mammogram-like label map: breast (13) on background (0), pectoral (7), a few lesions."""
    yy, xx = np.ogrid[0:height, 0:width]
    label = np.zeros((height, width), np.uint8)
    label[(xx / (0.8 * width)) ** 2 + ((yy - height / 2) / (0.45 * height)) ** 2 < 1] = 13
    label[(xx < 0.3 * width * (1 - yy / (0.6 * height)))] = 7
    rng = np.random.default_rng(0)
    for value, radius, n in ((1, 0.02, 3), (4, 0.003, 20), (6, 0.006, 5), (5, 0.004, 1)):
        for _ in range(n):
            cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.2, 0.6) * width
            label[(yy - cy) ** 2 + (xx - cx) ** 2 < (radius * width) ** 2] = value
    return label


def ours(label: np.ndarray, n: int) -> tuple[float, float]:
    """(setup seconds, seconds per crop) of mammotools' sampling + cut."""
    start = time.perf_counter()
    present = np.flatnonzero(cv2.calcHist([label], [0], None, [256], [0, 256]).ravel())  # as crops/image.py does
    pickers = {int(v): PixelPicker(label, int(v)) for v in present if int(v) not in COMMON}
    setup = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(n):
        rng = np.random.default_rng(crop_seed(0, "x", i))
        row, col, _ = choose_centre(rng, pickers, None, label.shape)
        cut(label, window_around(row, col, label.shape, SIZE), 0)
    return setup, (time.perf_counter() - start) / n


def baseline(label: np.ndarray, n: int) -> tuple[float, float]:
    """(setup seconds, seconds per crop) when each crop scans the map for its label's pixels."""
    start = time.perf_counter()
    candidates = [int(v) for v in np.unique(label) if int(v) not in COMMON]
    setup = time.perf_counter() - start
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    for _ in range(n):
        value = candidates[int(rng.integers(len(candidates)))]
        pixels = np.argwhere(label == value)
        row, col = pixels[int(rng.integers(len(pixels)))]
        cut(label, window_around(int(row), int(col), label.shape, SIZE), 0)
    return setup, (time.perf_counter() - start) / n


def cached(label: np.ndarray, n: int) -> tuple[float, float]:
    """(setup seconds, seconds per crop) with every candidate label's pixel list found once per
    image (``np.argwhere``) and kept for its crops: the strongest simple baseline."""
    start = time.perf_counter()
    pixels = {int(v): np.argwhere(label == v) for v in np.unique(label) if int(v) not in COMMON}
    candidates = list(pixels)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    for _ in range(n):
        found = pixels[candidates[int(rng.integers(len(candidates)))]]
        row, col = found[int(rng.integers(len(found)))]
        cut(label, window_around(int(row), int(col), label.shape, SIZE), 0)
    return setup, (time.perf_counter() - start) / n


def sorted_once(label: np.ndarray, n: int) -> tuple[float, float]:
    """(setup seconds, seconds per crop) with every pixel's flat index sorted by label once per
    image (a stable sort of uint8 values is a radix sort): each label's pixels are one slice."""
    start = time.perf_counter()
    flat = label.ravel()
    order = np.argsort(flat, kind="stable")
    ends = np.cumsum(np.bincount(flat, minlength=256))
    candidates = [int(v) for v in np.flatnonzero(np.bincount(flat, minlength=256)) if int(v) not in COMMON]
    setup = time.perf_counter() - start
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    for _ in range(n):
        value = candidates[int(rng.integers(len(candidates)))]
        lo = int(ends[value - 1]) if value else 0
        row, col = divmod(int(order[lo + int(rng.integers(int(ends[value]) - lo))]), label.shape[1])
        cut(label, window_around(row, col, label.shape, SIZE), 0)
    return setup, (time.perf_counter() - start) / n


def variants_ours(image: np.ndarray, label: np.ndarray) -> None:
    from mammotools.augment import VARIANTS, apply_variant

    for name in VARIANTS:
        apply_variant(name, image, label, np.random.default_rng(0), 12, 0)


def albumentations_pipeline():  # type: ignore[no-untyped-def]
    """The same ten operations in albumentations (each applied with p=1), or None if absent."""
    try:
        import albumentations as A
    except ImportError:
        return None
    return [
        A.GaussNoise(std_range=(0.02, 0.02), p=1),
        A.Sharpen(alpha=(0.5, 0.5), lightness=(1, 1), p=1),
        A.GaussianBlur(sigma_limit=(1.5, 1.5), blur_limit=0, p=1),
        A.CLAHE(clip_limit=(2, 2), tile_grid_size=(8, 8), p=1),
        A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=(0.3, 0.3), p=1),
        A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=(-0.3, -0.3), p=1),
        A.HorizontalFlip(p=1),
        A.VerticalFlip(p=1),
        A.Rotate(limit=(10, 10), border_mode=0, p=1),
        A.Rotate(limit=(-10, -10), border_mode=0, p=1),
    ]


def variants_albumentations(transforms, image: np.ndarray, label: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    # albumentations 2 takes uint8 or float32 images, not uint16: the 12-bit crop goes in as
    # float32 in [0, 1] (its documented route for high bit depth), CLAHE as uint8 (its only
    # input type); the conversions are timed too, as a user would have to do them.
    as_float = image.astype(np.float32) / 4095
    for t in transforms:
        if t.__class__.__name__ == "CLAHE":
            t(image=(image >> 4).astype(np.uint8), mask=label)
        else:
            out = t(image=as_float, mask=label)["image"]
            np.clip(np.rint(out * 4095), 0, 4095).astype(np.uint16)


def median_time(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crops", type=int, default=200)
    ap.add_argument("--baseline-crops", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    print(f"crop centres + {SIZE} px cuts, {PER_IMAGE} crops per image (medians of {args.runs} runs)")
    print(
        f"  {'label map':<12}{'ours s/image':>13}{'sorted once s/image':>21}{'ratio':>7}{'argwhere cached':>17}{'ratio':>7}"
        f"{'naive s/image':>15}{'ratio':>7}{'ours crops/s':>14}"
    )
    for height, width in ((1280, 1024), (2560, 2048), (5120, 4096)):
        label = synthetic_label(height, width)
        o = [ours(label, args.crops) for _ in range(args.runs)]
        c = [cached(label, args.crops) for _ in range(args.runs)]
        s = [sorted_once(label, args.crops) for _ in range(args.runs)]
        s_image = statistics.median(x[0] for x in s) + PER_IMAGE * statistics.median(x[1] for x in s)
        b = [baseline(label, args.baseline_crops) for _ in range(args.runs)]
        o_crop, o_setup = statistics.median(x[1] for x in o), statistics.median(x[0] for x in o)
        c_crop, c_setup = statistics.median(x[1] for x in c), statistics.median(x[0] for x in c)
        b_crop = statistics.median(x[1] for x in b)
        o_image, c_image, b_image = o_setup + PER_IMAGE * o_crop, c_setup + PER_IMAGE * c_crop, PER_IMAGE * b_crop
        print(
            f"  {width}x{height:<7}{o_image:>13.4f}{s_image:>21.4f}{s_image / o_image:>6.1f}x{c_image:>17.4f}"
            f"{c_image / o_image:>6.1f}x{b_image:>15.4f}{b_image / o_image:>6.1f}x{1 / o_crop:>14.0f}"
        )

    rng = np.random.default_rng(1)
    image = rng.integers(0, 4096, (1500, 1500)).astype(np.uint16)
    label = rng.integers(0, 14, (1500, 1500)).astype(np.uint8)
    ours_t = median_time(lambda: variants_ours(image, label), args.runs)
    print(f"\nten variants of a 1500x1500 uint16 crop + label map (medians of {args.runs} runs)")
    print(f"  mammotools.augment      {ours_t:.3f} s")
    transforms = albumentations_pipeline()
    if transforms is None:
        print("  albumentations          not installed (pip install -r benchmarks/requirements.txt)")
        return
    import albumentations

    alb_t = median_time(lambda: variants_albumentations(transforms, image, label), args.runs)
    print(f"  albumentations {albumentations.__version__:<8} {alb_t:.3f} s   (ours / theirs: {ours_t / alb_t:.2f})")


if __name__ == "__main__":
    main()

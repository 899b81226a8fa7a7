"""How balanced a crop set's classes are, against uniformly random crops of the same images.

Used to check that make-crops' balanced centres do what the paper wants: rare classes (tumor,
pectoral muscle, ...) take a larger share of the crops' pixels than random crops give them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mammotools.crops.centres import cut, window_around
from mammotools.export import open_export_dataset
from mammotools.palette import read_label_png
from mammotools.seeds import crop_seed


def normalized_entropy(pixels: dict[str, int]) -> float:
    """Entropy of the class shares divided by log(#classes): 1 = perfectly even, 0 = one class."""
    total = sum(pixels.values())
    shares = [n / total for n in pixels.values() if n]
    if len(pixels) < 2 or total == 0:
        return 0.0
    return -sum(p * math.log(p) for p in shares) / math.log(len(pixels))


def uniform_crop_pixels(dataset_path: str | Path, size: int, per_image: int, seed: int = 0) -> dict[str, int]:
    """Class pixels of ``per_image`` crops per image with uniformly random centres (the baseline)."""
    dataset = open_export_dataset(dataset_path)
    totals = dict.fromkeys(dataset.table.names, 0)
    for name in dataset.names:
        label = read_label_png(dataset.label_path(name))
        for i in range(per_image):
            rng = np.random.default_rng(crop_seed(seed, "uniform/" + name, i))
            centre = int(rng.integers(label.shape[0])), int(rng.integers(label.shape[1]))
            crop = cut(label, window_around(*centre, label.shape, size), dataset.table.bottom.label)
            counts = np.bincount(crop.ravel(), minlength=256)
            for c in dataset.table:
                totals[c.name] += int(counts[c.label])
    return totals


def manifest_pixels(rows: list[dict[str, str]], names: list[str], slugs: list[str]) -> dict[str, int]:
    """Class pixels summed over a crop manifest's rows."""
    return {n: sum(int(r[f"pixels_{s}"]) for r in rows) for n, s in zip(names, slugs, strict=True)}

"""A torch ``Dataset`` over the train or val files of a crop (or augmented) dataset.

Each item's randomness comes from ``(seed, epoch, index)`` alone, not from the loader worker
that reads it, so a run is the same with any number of workers and a resumed run repeats the
interrupted epoch exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from mammotools.crops import CropDataset, CropFile, checked_bits
from mammotools.data.transforms import (
    NO_AUGMENT,
    Augment,
    Size,
    as_shape,
    label_lookup,
    resize_image,
    resize_label,
    scaled_shape,
    training_item,
)
from mammotools.defaults import CROP_SIZES, IGNORE_LABEL
from mammotools.errors import InputError
from mammotools.images import read_image
from mammotools.palette import read_label_png
from mammotools.split import TRAIN


@dataclass(frozen=True)
class TaskClasses:
    """The classes a model is trained on, and how label values map to them."""

    names: list[str]  # class i's name
    lut: np.ndarray  # 256 entries: label value -> class index, or IGNORE_LABEL

    def pixel_shares(self, files: list[CropFile], table_labels: dict[str, int]) -> np.ndarray:
        """Each class's share (0..1) of the pixels of ``files`` (padding not counted)."""
        totals = np.zeros(len(self.names), np.float64)
        for f in files:
            for name, n in f.pixels.items():
                index = int(self.lut[table_labels[name]]) if name in table_labels else IGNORE_LABEL
                if index != IGNORE_LABEL:
                    totals[index] += n
        return totals / max(totals.sum(), 1.0)


def task_classes(dataset: CropDataset, task: str = "regions") -> TaskClasses:
    """The dataset's classes in label order, or ``task="tumor"``: non-tumor (0) against tumor (1)."""
    classes = sorted(dataset.table, key=lambda c: c.label)
    if task == "regions":
        return TaskClasses([c.name for c in classes], label_lookup([c.label for c in classes]))
    if task != "tumor":
        raise InputError(f"--task {task!r}: choose regions or tumor")
    tumor = dataset.table.find("Tumor")
    if tumor is None:
        raise InputError(f"--task tumor needs a class named Tumor; {dataset.path} has {', '.join(dataset.table.names)}")
    lut = np.full(256, IGNORE_LABEL, np.int64)
    for c in classes:
        lut[c.label] = 1 if c.label == tumor.label else 0
    return TaskClasses(["Non-tumor", "Tumor"], lut)


class CropSegmentationSet(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(model input (3, in, in) float32, target (out, out) int64) for each file of one side.

    Training items: a random ``in_size`` window of the crop, flip and contrast at p = 0.5;
    validation items: the centred window, no augmentation. Padding (label 255) is ignored.
    ``scale``: each crop is first resized by this factor (0.5: the model sees half resolution,
    so an ``in_size`` window covers ``in_size / scale`` px of the mammogram).
    """

    def __init__(
        self,
        files: list[CropFile],
        lut: np.ndarray,
        in_size: Size,
        out_size: Size,
        train: bool,
        seed: int = 0,
        augment: Augment | None = None,
        scale: float = 1.0,
    ) -> None:
        self.files, self.lut, self.in_size, self.out_size = files, lut, in_size, out_size
        self.scale = scale
        self.augment = (augment or Augment()) if train else NO_AUGMENT
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose random windows and flips the items get (as DistributedSampler.set_epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Item ``key``: an index (of the epoch set by :meth:`set_epoch`) or an (epoch, index) pair."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        f = self.files[index]
        image = read_image(f.image_path)
        label = read_label_png(f.label_path)
        bits = checked_bits(f.bits, image, f.image_path, "rerun the command that made it with --overwrite")
        side = max(as_shape(self.in_size))
        if min(scaled_shape(label.shape, self.scale)) < side:
            raise InputError(
                f"{f.image_path}: {label.shape[1]}x{label.shape[0]} is smaller than the model's input "
                f"({size_words(self.in_size)}{scale_words(self.scale)}); {crops_needed_words(side, self.scale)}"
            )
        image, label = resize_image(image, self.scale), resize_label(label, self.scale)
        rng = np.random.default_rng([self.seed, epoch, index])
        x, y = training_item(image, label, bits, self.lut, rng, self.in_size, self.out_size, self.augment)
        return torch.from_numpy(x), torch.from_numpy(y)


def crop_size_needed(in_size: int, scale: float = 1.0) -> tuple[int, int]:
    """(least, suggested): the smallest crop side that holds an ``in_size`` input seen at ``scale``
    (crops resized by ``scale`` before the window is drawn), and the crop size to make: the
    smallest of the paper's sizes (CROP_SIZES) that holds it, which leaves the window room to move
    (a crop of exactly the input is always the same window), else the least. The one rule behind
    every "make crops of at least" message and docs/training.md: 256 px at --scale 0.5 -> (512, 700)."""
    least = math.ceil(in_size / scale)
    while min(scaled_shape((least, least), scale)) < in_size:
        least += 1
    return least, next((s for s in CROP_SIZES if s >= least), least)


def crops_needed_words(in_size: int, scale: float = 1.0) -> str:
    """``crops of at least 512 px are needed: `mammotools make-crops DATASET --size 700 --out CROPS` ...``"""
    least, suggested = crop_size_needed(in_size, scale)
    room = f" (the paper's size that holds it, with room for the window to move; {least} works)" if suggested > least else ""
    return f"crops of at least {least} px are needed: `mammotools make-crops DATASET --size {suggested} --out CROPS`{room}"


def size_words(size: Size) -> str:
    """``256 px`` or ``1024x1400 px`` (height x width)."""
    h, w = as_shape(size)
    return f"{h} px" if h == w else f"{h}x{w} px"


def scale_words(scale: float) -> str:
    return "" if scale == 1 else f" at --scale {scale:g}"


def check_crop_size(dataset: CropDataset, in_size: Size, scale: float = 1.0) -> None:
    """Refuse a dataset whose crops (resized by ``scale``) are smaller than the model's input
    (its longer side, for a non-square input), naming the size to make."""
    in_size = max(as_shape(in_size))
    size = dataset.size
    if size is not None and dataset.kind == "cityscapes" and min(scaled_shape((size, size), scale)) < in_size:
        raise InputError(
            f"{dataset.path}: the scenes' shorter side ({size} px{scale_words(scale)}) is smaller than the model's input "
            f"({in_size} px); give a smaller --input-size, or a larger --scale"
        )
    if size is not None and min(scaled_shape((size, size), scale)) < in_size:
        raise InputError(
            f"{dataset.path}: crops of {size} px are smaller than the model's input ({in_size} px{scale_words(scale)}); "
            f"{crops_needed_words(in_size, scale)}"
        )


def training_sets(
    dataset: CropDataset,
    lut: np.ndarray,
    in_size: Size,
    out_size: Size,
    seed: int,
    augment: Augment | None = None,
    scale: float = 1.0,
) -> tuple[CropSegmentationSet, list[CropFile]]:
    """The training set, and the validation files (validated whole, by sliding window)."""
    check_crop_size(dataset, in_size, scale)
    train = CropSegmentationSet(dataset.split_files(TRAIN), lut, in_size, out_size, True, seed, augment, scale)
    if not len(train):
        raise InputError(f"{dataset.path}: no training files; the split put every subject in validation")
    return train, dataset.val

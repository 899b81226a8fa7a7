"""Cross-validation by subject over a crop dataset: fold k of K puts the crops of fold k's
subjects in validation and every other subject's crops in training.

make-crops cuts crops from every image of the export dataset, validation subjects included, so
one crop dataset serves every fold. augment augments only the training side of its hold-out, so
an augmented dataset cannot be refolded fairly (fold k would train on some subjects' ten variants
and on others' originals alone); folds take make-crops folders, whose crops the training pipeline
still flips and contrast-jitters online.
"""

from __future__ import annotations

from dataclasses import replace

from mammotools.crops import ORIGINAL, CropDataset
from mammotools.errors import InputError
from mammotools.split import SPLIT_FILE, fold_sides, read_split


def fold_crops(dataset: CropDataset, folds: int, fold: int) -> CropDataset:
    """``dataset`` with each file on its side of fold ``fold`` of ``folds`` (files stay where they are)."""
    if dataset.kind == "cityscapes":
        raise InputError(f"{dataset.path}: Cityscapes has its own validation cities; leave out --folds")
    if dataset.kind == "augmented" and any(f.variant != ORIGINAL for f in dataset.files):
        raise InputError(
            f"{dataset.path}: an augmented dataset cannot be split into folds (augment varied only its training "
            "subjects); give the make-crops folder it was made from (training still flips and jitters contrast)"
        )
    split_file = dataset.path / SPLIT_FILE
    if not split_file.is_file():
        raise InputError(f"{dataset.path}: no split.csv, so its subjects are not known; cut the crops again with make-crops")
    sides = fold_sides(read_split(split_file), folds, fold)
    unknown = sorted({f.source for f in dataset.files if f.source not in sides})
    if unknown:
        raise InputError(
            f"{dataset.path}: crops of {', '.join(unknown[:3])}, an image not in split.csv; cut the crops again with make-crops"
        )
    files = [replace(f, split=sides[f.source]) for f in dataset.files]
    return replace(dataset, files=files)

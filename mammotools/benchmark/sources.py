"""What a benchmark trains on and scores on: an export-qupath dataset and its crop datasets
(mammograms), or a Cityscapes folder (the paper's check of its implementations, Table 9).

Every model is scored on the same whole images: the export dataset's validation subjects (or,
with ``--folds K``, each fold's subjects by the models trained without them), or Cityscapes' val
scenes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mammotools.benchmark.protocol import open_crop_sets
from mammotools.classes import ClassTable
from mammotools.crops import CropDataset
from mammotools.errors import InputError
from mammotools.export import open_export_dataset
from mammotools.split import SPLIT_FILE, TRAIN, VAL, draw_folds, read_split

MAMMOGRAPHY, CITYSCAPES = "mammography", "cityscapes"
KINDS = (MAMMOGRAPHY, CITYSCAPES)


@dataclass
class ScoredImages:
    """The whole images every model is scored on, and the data the runs train on."""

    kind: str  # MAMMOGRAPHY or CITYSCAPES
    path: Path
    table: ClassTable
    training: int  # images training draws from (every fold's training side counted once)
    val: list[str]  # the images scored (with folds: every image, each by its fold's models)
    files: dict[str, tuple[Path, Path]]  # name -> (image, label)
    crop_sets: list[CropDataset]
    fold_of: dict[str, int] = field(default_factory=dict)  # name -> fold (1..K); empty without folds

    def fold_images(self, fold: int) -> list[str]:
        return [n for n in self.val if self.fold_of.get(n, 0) == fold]


def open_sources(kind: str, dataset_path: Path, crop_paths: list[Path], folds: int) -> ScoredImages:
    """The benchmark's data, checked (one clear error before anything is written)."""
    if kind not in KINDS:
        raise InputError(f"--dataset {kind!r}: choose one of {', '.join(KINDS)}")
    if kind == CITYSCAPES:
        return _cityscapes(dataset_path, crop_paths, folds)
    from mammotools.data import is_cityscapes

    if is_cityscapes(dataset_path):
        raise InputError(f"{dataset_path}: a Cityscapes folder; add --dataset cityscapes (and leave out CROPS)")
    dataset = open_export_dataset(dataset_path)
    crop_sets = open_crop_sets(crop_paths, dataset)
    files = {n: (dataset.image_path(n), dataset.label_path(n)) for n in dataset.names_in(TRAIN) + dataset.names_in(VAL)}
    if not folds:
        val = dataset.names_in(VAL)
        if not val:
            raise InputError(f"{dataset.path}: the split puts no image in validation; nothing to score the models on")
        return ScoredImages(MAMMOGRAPHY, dataset.path, dataset.table, len(dataset.names_in(TRAIN)), val, files, crop_sets)
    augmented = [c.path for c in crop_sets if c.kind == "augmented"]
    if augmented:
        raise InputError(
            f"--folds: {augmented[0]} is an augmented dataset, and augment varied only the training subjects of the "
            "hold-out, so its folds would not be alike; give the make-crops folders (training still flips and jitters "
            "contrast), or leave out --folds"
        )
    split = read_split(dataset.path / SPLIT_FILE)
    by_subject = draw_folds([subject for subject, _ in split.values()], folds)
    fold_of = {name: by_subject[subject] for name, (subject, _) in split.items() if name in files}
    return ScoredImages(MAMMOGRAPHY, dataset.path, dataset.table, len(files), sorted(fold_of), files, crop_sets, fold_of)


def _cityscapes(path: Path, crop_paths: list[Path], folds: int) -> ScoredImages:
    from mammotools.data import open_cityscapes

    if crop_paths:
        raise InputError(
            "--dataset cityscapes trains on random windows of the whole scenes (the paper's random crop); leave out CROPS"
        )
    if folds:
        raise InputError("--dataset cityscapes: Cityscapes has its own validation cities; leave out --folds")
    scenes = open_cityscapes(path)
    files = {f.name: (f.image_path, f.label_path) for f in scenes.files}
    val = [f.name for f in scenes.val]
    return ScoredImages(CITYSCAPES, scenes.path, scenes.table, len(scenes.train), val, files, [scenes])

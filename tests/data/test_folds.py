"""Cross-validation by subject over one crop dataset: each fold validates its subjects' crops and
trains on the others'; augmented datasets are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_dataset

from mammotools.augment import augment_dataset
from mammotools.crops import CropSettings, make_crops, open_crop_dataset
from mammotools.data import fold_crops
from mammotools.errors import InputError
from mammotools.split import draw_folds


def test_each_fold_validates_its_subjects_and_every_crop_once(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c64", CropSettings(size=64, per_image=2))
    crops = open_crop_dataset(tmp_path / "c64")
    fold_of = draw_folds(sorted({f.subject for f in crops.files}), 3)
    validated: list[str] = []
    for k in (1, 2, 3):
        fold = fold_crops(crops, 3, k)
        assert {f.subject for f in fold.val} == {s for s, n in fold_of.items() if n == k}
        assert not {f.subject for f in fold.val} & {f.subject for f in fold.train}
        assert all(f.image_path.is_file() for f in fold.files)  # the files stay where make-crops wrote them
        validated += [f.name for f in fold.val]
    assert sorted(validated) == sorted(f.name for f in crops.files)


def test_augmented_data_cannot_be_folded(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c64", CropSettings(size=64, per_image=1))
    augment_dataset(tmp_path / "c64", tmp_path / "aug", variants=("flip_lr",))
    with pytest.raises(InputError, match="augmented dataset cannot be split into folds"):
        fold_crops(open_crop_dataset(tmp_path / "aug"), 3, 1)

"""Cityscapes in its standard layout: the 19 training classes (every other label id ignored), the
scenes of each side, the RGB pipeline, and a run trained and scored on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_cityscapes
from PIL import Image

from mammotools.data import is_cityscapes, open_cityscapes, open_training_data, task_classes
from mammotools.data.transforms import BRIGHTNESS_DELTA, NO_AUGMENT, Augment, label_lookup, training_item
from mammotools.defaults import IGNORE_LABEL
from mammotools.errors import InputError, MissingFileError
from mammotools.metrics import read_confusion_csv


def test_scenes_classes_and_ignored_ids(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cs")
    scenes = open_training_data(root)
    assert is_cityscapes(root) and scenes.kind == "cityscapes" and scenes.size == 80
    assert [f.name for f in scenes.val] == ["frankfurt_000000_000019", "frankfurt_000001_000019"]
    assert len(scenes.train) == 4 and {f.subject for f in scenes.train} == {"aachen", "bremen"}
    classes = task_classes(scenes)
    assert len(classes.names) == 19 and classes.names[0] == "road" and classes.names[-1] == "bicycle"
    lut = classes.lut
    assert (lut[7], lut[23], lut[26], lut[33]) == (0, 10, 13, 18)  # trainIds
    assert lut[0] == lut[1] == lut[255] == IGNORE_LABEL  # void, ego vehicle
    first = scenes.train[0]
    ids = np.asarray(Image.open(first.label_path))
    assert first.pixels["road"] == int((ids == 7).sum()) and first.pixels["car"] == int((ids == 26).sum())
    assert first.pixels["sky"] + first.pixels["road"] + first.pixels["car"] == int((ids > 1).sum())


def test_layout_errors_name_the_file(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cs")
    label = next((root / "gtFine" / "val").rglob("*_labelIds.png"))
    label.unlink()
    with pytest.raises(MissingFileError, match=label.name):
        open_cityscapes(root)
    with pytest.raises(InputError, match="not a Cityscapes folder"):
        open_cityscapes(tmp_path)


def test_rgb_pipeline_brightness_and_saturation() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(100, 156, (32, 32, 3)).astype(np.uint8)  # no value near the clipping bounds
    label = np.zeros((32, 32), np.uint8)
    lut = label_lookup([0])
    plain, _ = training_item(image, label, 8, lut, np.random.default_rng(1), 32, 32, NO_AUGMENT)
    only = Augment(flip_p=0, contrast_p=0, brightness_p=1, saturation_p=0)
    bright, _ = training_item(image, label, 8, lut, np.random.default_rng(1), 32, 32, only)
    shift = bright - plain
    assert np.allclose(shift, shift.flat[0], atol=1e-6) and 0 < abs(shift.flat[0]) <= BRIGHTNESS_DELTA  # one shift
    only = Augment(flip_p=0, contrast_p=0, brightness_p=0, saturation_p=1)
    saturated, _ = training_item(image, label, 8, lut, np.random.default_rng(1), 32, 32, only)
    assert np.allclose(saturated.mean(0), plain.mean(0), atol=1e-5)  # each pixel's gray value kept
    assert not np.allclose(saturated, plain)  # its colour moved
    gray = image[..., 0]  # gray images draw nothing for brightness and saturation: the same item as before
    a, _ = training_item(gray, label, 8, lut, np.random.default_rng(2), 16, 16, Augment())
    b, _ = training_item(gray, label, 8, lut, np.random.default_rng(2), 16, 16, Augment(brightness_p=0, saturation_p=0))
    assert np.array_equal(a, b)


def test_train_and_evaluate_on_cityscapes(tmp_path: Path) -> None:
    import json

    from mammotools.train import evaluate_run, make_config, start_runtime, stop_runtime, train_run

    root = make_cityscapes(tmp_path / "cs")
    config = make_config("fast", None, width=0.0625, epochs=2, batch_size=4, input_size=64, workers=0, device="cpu", lr=3e-3)
    runtime = start_runtime("cpu", "auto")
    try:
        train_run(root, "fcn32", tmp_path / "run", config, runtime)
    finally:
        stop_runtime(runtime)
    summary = evaluate_run(tmp_path / "run", root, tmp_path / "eval", device="cpu")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert summary.images == 2 and metrics["settings"]["kind"] == "cityscapes"
    ids = np.asarray(Image.open(root / "gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png"))
    matrix, _ = read_confusion_csv(tmp_path / "eval" / "confusion.csv")
    assert matrix.sum() == 2 * int((ids > 1).sum())  # both val scenes, void and ego vehicle not scored
    prediction = np.asarray(Image.open(tmp_path / "eval" / "predictions" / "frankfurt_000000_000019.png"))
    assert prediction.shape == ids.shape and set(np.unique(prediction)) <= {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24,
                                                                           25, 26, 27, 28, 31, 32, 33}  # fmt: skip


def test_every_pair_is_checked_before_training(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cs")
    label = root / "gtFine/val/frankfurt/frankfurt_000001_000019_gtFine_labelIds.png"
    Image.open(label).resize((320, 160)).save(label)
    with pytest.raises(InputError, match="320x160 but its image"):
        open_cityscapes(root)
    root = make_cityscapes(tmp_path / "cs2")
    label = root / "gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png"
    Image.open(label).convert("RGB").save(label)
    with pytest.raises(InputError, match="not the 8-bit label ids"):
        open_cityscapes(root)
    root = make_cityscapes(tmp_path / "cs3")
    for kind, suffix in (("leftImg8bit", "_leftImg8bit.png"), ("gtFine", "_gtFine_labelIds.png")):
        (root / kind / "val" / "aachen").mkdir()
        src = root / kind / "train" / "aachen" / f"aachen_000000_000019{suffix}"
        (root / kind / "val" / "aachen" / src.name).write_bytes(src.read_bytes())
    with pytest.raises(InputError, match="'aachen' has scenes in both train and val"):
        open_cityscapes(root)


def test_the_truth_is_shown_in_the_class_colours(tmp_path: Path) -> None:
    from mammotools.benchmark.figures import _display
    from mammotools.data.cityscapes import cityscapes_table

    root = make_cityscapes(tmp_path / "cs")
    label = root / "gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png"
    shown = _display(label, False, cityscapes_table().palette())
    ids = np.asarray(Image.open(label))
    assert tuple(shown[ids == 26][0]) == (0, 0, 142) and tuple(shown[ids == 23][0]) == (70, 130, 180)  # car, sky
    image = _display(root / "leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png", True)
    assert not np.array_equal(image[..., 0], image[..., 2])  # in colour, not grey

"""evaluate: every model through the sliding window gives a seamless map of the image's size;
a trained run's outputs are complete and recomputable from the saved confusion matrix."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_dataset
from PIL import Image

from mammotools.crops import CropSettings, make_crops
from mammotools.inference import predict_label_map
from mammotools.metrics import read_confusion_csv, scores
from mammotools.models import MODELS, build_model, input_sizes, output_size
from mammotools.train import make_config, start_runtime, train_run
from mammotools.train.evaluate import evaluate_run


class Constant(torch.nn.Module):
    """A real model's output geometry, with class 1 everywhere."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        constant = torch.zeros_like(out)
        constant[:, 1] = 1.0
        return out * 0 + constant


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_gives_a_seamless_map_of_the_image_size(name: str) -> None:
    window = input_sizes(name).above(256)  # the unpadded U-Net: 268 in, 84 out
    model = Constant(build_model(name, 3, width=0.0625 if not name.startswith("smp") else 0.25)).eval()
    image = torch.rand(3, 150, 171) - 0.5
    labels = predict_label_map(model, image, 3, window, output_size(name, window), overlap=0.5, batch_size=2)
    assert labels.shape == (150, 171) and (labels == 1).all()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    dataset = make_dataset(root)
    make_crops(dataset, root / "c", CropSettings(size=64, per_image=3, task="tumor"))
    config = make_config("fast", None, epochs=2, width=0.0625, input_size=64, batch_size=4, workers=0)
    train_run(root / "c", "fcn32", root / "run", config, start_runtime("cpu", "fp32"))
    return dataset, root / "c", root / "run"


def test_outputs_are_complete_and_recomputable(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    dataset, crops, trained = run
    summary = evaluate_run(trained, dataset, tmp_path / "e", device="cpu")  # whole validation images, 14-class table
    names = [r["name"] for r in csv.DictReader((dataset / "split.csv").open()) if r["split"] == "val"]
    assert summary.images == len(names) == 2
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    matrix, classes = read_confusion_csv(tmp_path / "e" / "confusion.csv")
    assert classes == ["Non-tumor", "Tumor"]
    assert scores(matrix, classes)["mean_iou"] == metrics["mean_iou"]
    assert int(matrix.sum()) == sum(np.array(Image.open(dataset / "labels" / f"{n}.png")).size for n in names)
    for n in names:
        prediction = np.array(Image.open(tmp_path / "e" / "predictions" / f"{n}.png"))
        assert prediction.shape == np.array(Image.open(dataset / "labels" / f"{n}.png")).shape
        assert set(np.unique(prediction)) <= {0, 1}  # the dataset's Background and Tumor label values
    rows = list(csv.DictReader((tmp_path / "e" / "per_image.csv").open()))
    assert sorted(r["name"] for r in rows) == sorted(names)
    crop_summary = evaluate_run(trained, crops, tmp_path / "c", device="cpu", save_predictions=False)
    assert crop_summary.images == 6 and not any((tmp_path / "c" / "predictions").iterdir())


def test_a_run_at_half_scale_is_scored_on_the_images_own_pixels(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c", CropSettings(size=128, per_image=2, task="tumor"))
    config = make_config("fast", None, epochs=1, width=0.0625, input_size=64, batch_size=4, workers=0, scale=0.5)
    train_run(tmp_path / "c", "fcn32", tmp_path / "run", config, start_runtime("cpu", "fp32"))
    evaluate_run(tmp_path / "run", dataset, tmp_path / "e", device="cpu")
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["settings"]["scale"] == 0.5
    names = [r["name"] for r in csv.DictReader((dataset / "split.csv").open()) if r["split"] == "val"]
    total = 0
    for n in names:
        truth = np.array(Image.open(dataset / "labels" / f"{n}.png"))
        prediction = np.array(Image.open(tmp_path / "e" / "predictions" / f"{n}.png"))
        assert prediction.shape == truth.shape  # predicted at half size, scored at full size
        total += truth.size
    assert metrics["pixels"] == total


def test_a_benchmark_folder_given_for_a_run_lists_its_runs(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """evaluate and predict on a benchmark's --out: say so and list its runs, not "damaged"."""
    from mammotools.errors import InputError
    from mammotools.predict import predict_images

    bench = tmp_path / "bench"
    (bench / "runs").mkdir(parents=True)
    (bench / "run.json").write_text(json.dumps({"kind": "mammotools benchmark", "models": ["fcn8"]}))
    dataset, _, trained = run
    (bench / "runs" / "fcn8-seed0").symlink_to(trained.resolve(), target_is_directory=True)
    message = f"{bench}: a benchmark folder, not one training run; give one of its runs: {bench / 'runs' / 'fcn8-seed0'}"
    with pytest.raises(InputError, match=re.escape(message)):
        evaluate_run(bench, dataset, tmp_path / "e", "cpu")
    with pytest.raises(InputError, match="a benchmark folder, not one training run"):
        predict_images(bench, dataset / "images", tmp_path / "p")
    assert not (tmp_path / "e").exists() and not (tmp_path / "p").exists()


def test_out_is_only_ever_an_evaluation_and_the_default_is_one_per_dataset(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """evaluate --out follows every --out's rules: never a folder of something else (an unrelated
    metrics.json, an export dataset), another evaluation only with --overwrite (its predictions
    then gone), and two datasets of one folder name do not share the default folder."""
    import shutil

    from mammotools.errors import InputError

    dataset, crops, trained = run
    unrelated = tmp_path / "u"
    unrelated.mkdir()
    (unrelated / "metrics.json").write_text('{"mine": 1}')
    for out in (unrelated, dataset):
        before = sorted(p.name for p in out.iterdir())
        for overwrite in (False, True):
            with pytest.raises(InputError, match="not empty and not an evaluation"):
                evaluate_run(trained, crops, out, "cpu", overwrite=overwrite)
        assert sorted(p.name for p in out.iterdir()) == before
    assert (unrelated / "metrics.json").read_text() == '{"mine": 1}'
    out = tmp_path / "e"
    evaluate_run(trained, dataset, out, "cpu")
    evaluate_run(trained, dataset, out, "cpu")  # the same evaluation again: rewritten
    images = sorted(p.name for p in (out / "predictions").iterdir())
    with pytest.raises(InputError, match="holds an evaluation of another run, stage or dataset; pass --overwrite"):
        evaluate_run(trained, crops, out, "cpu")
    assert sorted(p.name for p in (out / "predictions").iterdir()) == images
    evaluate_run(trained, crops, out, "cpu", overwrite=True)
    assert not set(images) & {p.name for p in (out / "predictions").iterdir()}  # none of the other dataset's left
    assert json.loads((out / "metrics.json").read_text())["settings"]["dataset"] == str(crops)
    twins = []
    for side in ("x", "y"):
        shutil.copytree(crops, tmp_path / side / "c")
        twins.append(evaluate_run(trained, tmp_path / side / "c", None, "cpu", save_predictions=False).out)
    assert twins[0] != twins[1] and all(t.parent == trained for t in twins)
    assert json.loads((twins[1] / "evaluation.json").read_text())["dataset"] == str((tmp_path / "y" / "c").resolve())
    assert evaluate_run(trained, tmp_path / "y" / "c", None, "cpu", save_predictions=False).out == twins[1]  # stable

"""The protocol: staged models share runs, each run gets the smallest crops that hold its input,
crops from another dataset or split are refused."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import make_dataset

from mammotools.benchmark import PAPER_MODELS, parse_models
from mammotools.benchmark.protocol import chains, choose_crops, open_crop_sets, plan_jobs
from mammotools.crops import CropSettings, make_crops, open_crop_dataset
from mammotools.errors import InputError
from mammotools.export import open_export_dataset
from mammotools.models import MODELS

STAGES = {m: MODELS[m].stages for m in MODELS}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("protocol")
    dataset = make_dataset(root)
    make_crops(dataset, root / "c64", CropSettings(size=64, per_image=1))
    make_crops(dataset, root / "c256", CropSettings(size=256, per_image=1))
    return root


def test_staged_models_share_one_run() -> None:
    assert chains(list(PAPER_MODELS), STAGES) == {
        "fcn8": ["fcn32", "fcn16", "fcn8"],
        "unet": ["unet"],
        "dilation10-global": ["dilation10-front", "dilation10-context", "dilation10-global"],
        "deeplabv3-r18": ["deeplabv3-r18"],
    }
    assert chains(["fcn16", "unet"], STAGES) == {"fcn16": ["fcn16"], "unet": ["unet"]}  # fcn16's own fcn32 -> fcn16 run
    assert chains(["fcn32", "fcn16"], STAGES) == {"fcn16": ["fcn32", "fcn16"]}


def test_model_names() -> None:
    assert parse_models(None, MODELS) == list(PAPER_MODELS)
    assert parse_models("unet, fcn8,unet", MODELS) == ["unet", "fcn8"]
    with pytest.raises(InputError, match=r"unknown model.*fcn4; choose from fcn32"):
        parse_models("fcn4", MODELS)
    for empty in ("", ",", " , "):
        with pytest.raises(InputError, match="name at least one model"):
            parse_models(empty, MODELS)


def test_each_run_gets_the_smallest_crops_that_hold_its_input(data: Path) -> None:
    dataset = open_export_dataset(data / "dataset")
    crop_sets = open_crop_sets([data / "c256", data / "c64"], dataset)
    assert [c.size for c in crop_sets] == [64, 256]
    assert choose_crops(crop_sets, "fcn8", 64, 1.0, 64).size == 64
    assert choose_crops(crop_sets, "fcn8", 65, 1.0, 256).size == 256
    assert choose_crops(crop_sets, "fcn8", 128, 0.5, 256).size == 256  # 256 px crops at half scale: 128
    with pytest.raises(InputError, match=r"\(64 px, 6 px at --scale 0.1, 256 px, 26 px at --scale 0.1\)"):
        choose_crops(crop_sets, "fcn8", 32, 0.1, 320)
    with pytest.raises(InputError, match=r"572 px inputs, larger than every CROPS dataset's crops \(64 px, 256 px\)"):
        choose_crops(crop_sets, "unet", 572, 1.0, 700)
    jobs = plan_jobs(["fcn32", "fcn16", "unet"], crop_sets, 0, 1.0, quick=True)
    assert [(j.chain, j.scored, j.crop_size, j.input_size) for j in jobs] == [
        ("fcn16", ("fcn32", "fcn16"), 64, 64),  # the largest side <= 128 in the 64 px crops
        ("unet", ("unet",), 256, 252),  # the unpadded U-Net takes nothing that small: the largest in 256 px crops
    ]
    with pytest.raises(InputError, match="make-crops DATASET --size 700"):
        plan_jobs(["unet"], crop_sets, 0, 1.0, quick=False)  # the paper's 572 needs larger crops


def test_crops_of_another_dataset_or_split_are_refused(data: Path, tmp_path: Path) -> None:
    dataset = open_export_dataset(data / "dataset")
    other = make_dataset(tmp_path)
    make_crops(other, tmp_path / "other", CropSettings(size=64, per_image=1))
    with pytest.raises(InputError, match=r"not from .*every CROPS dataset must come from the benchmark's export dataset"):
        open_crop_sets([data / "c64", tmp_path / "other"], dataset)
    # the same crops with one subject moved to the other side of the split
    split = data / "c64" / "split.csv"
    rows = list(csv.DictReader(split.open()))
    original = split.read_bytes()
    try:
        moved = rows[0]["subject"]
        for row in rows:  # every image of one subject
            if row["subject"] == moved:
                row["split"] = "val" if row["split"] == "train" else "train"
        with split.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        with pytest.raises(InputError, match="subject split differs"):
            open_crop_sets([data / "c64"], dataset)
    finally:
        split.write_bytes(original)
    assert open_crop_dataset(data / "c64").size == 64
    (data / "c64" / "split.csv").rename(data / "c64" / "split.kept")
    try:
        with pytest.raises(InputError, match=r"no split\.csv, so its subject split cannot be checked"):
            open_crop_sets([data / "c64"], dataset)
    finally:
        (data / "c64" / "split.kept").rename(data / "c64" / "split.csv")
    assert len(open_crop_sets([data / "c64", data / "c64"], dataset)) == 1  # named twice, counted once

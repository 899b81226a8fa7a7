"""Recipes, overrides, and the config saved with a run and read back by --config."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from mammotools.errors import InputError, MissingFileError
from mammotools.train.config import RECIPES, make_config, read_config, save_config


def test_paper_recipe_is_table_8() -> None:
    paper = RECIPES["paper"]
    assert (paper.optimizer, paper.lr, paper.momentum, paper.weight_decay) == ("sgd", 1e-4, 0.9, 0.005)
    assert (paper.schedule, paper.step_epochs, paper.gamma, paper.epochs) == ("step", 10, 0.3, 100)
    assert paper.class_weights == "inverse-share" and paper.patience > 0


def test_overrides_then_saved_and_read_back(tmp_path: Path) -> None:
    config = make_config("paper", None, lr=0.01, epochs=3, seed=None)
    assert (config.lr, config.epochs, config.optimizer, config.seed) == (0.01, 3, "sgd", 0)
    save_config(config, tmp_path / "config.json")
    assert read_config(tmp_path / "config.json") == config
    again = make_config("fast", tmp_path / "config.json", batch_size=2)
    assert asdict(again) == {**asdict(config), "batch_size": 2}  # the file's values, then the options


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"optimizer": "adam"}, "optimizer 'adam': choose one of sgd, adamw"),
        ({"overlap": 1.0}, "overlap"),
        ({"epochs": 0}, "epochs 0: must be positive"),
        ({"nonsense": 1}, "unknown training setting"),
        ({"scale": 0.0}, "scale 0.0: give 0.05 <= scale <= 4"),
    ],
)
def test_bad_values_are_one_clear_error(values: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        make_config("fast", None, **values)


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError):
        make_config("fast", tmp_path / "none.json")
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"lr": "fast"}))
    with pytest.raises(InputError, match="lr must be float"):
        make_config("fast", bad)
    bad.write_text(json.dumps({"learning_rate": 1}))
    with pytest.raises(InputError, match="unknown setting"):
        make_config("fast", bad)
    with pytest.raises(InputError, match="--recipe 'quick'"):
        make_config("quick")


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [("--weight-decay", "nan", "weight_decay nan: must be a finite number"), ("--width", "inf", "width inf: must be a finite"),
     ("--seed", str(2**64), "seed 18446744073709551616: give a seed from 0 to 4,294,967,295"),
     ("--epochs", str(2**64), "epochs 18446744073709551616: give at most"), ("--workers", "100000", "give at most 256")],
)  # fmt: skip
def test_options_past_click_are_one_line_before_anything_is_written(tmp_path: Path, option: str, value: str, says: str) -> None:
    from click.testing import CliRunner

    from mammotools.cli import main

    result = CliRunner().invoke(main, ["train", str(tmp_path / "crops"), "--model", "fcn32", "--out", str(tmp_path / "r"),
                                       option, value])  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.strip() == f"Error: {says}" or says in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
    number = float(value) if value.isalpha() else int(value)
    with pytest.raises(InputError):
        make_config("fast", None, **{option[2:].replace("-", "_"): number})

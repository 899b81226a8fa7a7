"""train and evaluate on the command line: choices from the registry, one-line errors, Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_dataset

from mammotools.cli import main
from mammotools.crops import CropSettings, make_crops
from mammotools.models import MODELS


def run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-train")
    make_crops(make_dataset(root), root / "c", CropSettings(size=64, per_image=2))
    return root / "c"


def test_model_choices_come_from_the_registry() -> None:
    code, output = run("train", "--help")
    assert code == 0 and f"[{'|'.join(MODELS)}]" in "".join(output.split())
    code, output = run("train", "x", "--model", "segnet", "--out", "y")
    assert code == 2 and "'segnet' is not one of" in output


def test_train_then_evaluate(crops: Path, tmp_path: Path) -> None:
    small = ["--width", "0.0625", "--input-size", "64", "--batch-size", "4", "--workers", "0", "--epochs", "1"]
    code, output = run("train", crops, "--model", "fcn32", "--out", tmp_path / "r", *small)
    assert code == 0, output
    assert "fcn32 epoch 1: loss" in output and "best val mIoU" in output and "trained from scratch" in output
    code, output = run("evaluate", tmp_path / "r", crops, "--out", tmp_path / "e")
    assert code == 0 and "image(s): pixel accuracy" in output and (tmp_path / "e" / "metrics.json").is_file()
    code, output = run("train", crops, "--model", "fcn32", "--out", tmp_path / "r", *small[:-1], "2")
    assert code == 1 and "pass --overwrite" in output  # other settings in the same run folder


def test_one_line_errors(crops: Path, tmp_path: Path) -> None:
    code, output = run("train", crops, "--model", "unet", "--out", tmp_path / "u", "--width", "0.0625")
    assert code == 1 and "smaller than the model's input (572 px)" in output and "--size 700" in output
    code, output = run("train", crops, "--model", "fcn8", "--out", tmp_path / "f", "--input-size", "60")
    assert code == 1 and "nearest valid sizes" in output
    code, output = run("evaluate", tmp_path / "nothing", crops)
    assert code == 1 and "not a training run" in output
    code, output = run("train", crops, "--model", "fcn8", "--out", tmp_path / "g", "--pretrained", tmp_path / "none.pth")
    assert code != 0 and "none.pth" in output


def test_ctrl_c_says_how_to_resume(crops: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mammotools.train as train

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "train_run", interrupted)
    code, output = run("train", crops, "--model", "fcn32", "--out", tmp_path / "r")
    assert code == 130 and "--resume" in output and f"--out {tmp_path / 'r'}" in output


def test_progress_without_a_terminal_prints_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """stderr to a log file: a line every 10% of an epoch (or every minute), not one bar at its end."""
    from mammotools.cli.training import ProgressReporter

    reporter = ProgressReporter()
    assert reporter.plain  # pytest's captured stderr is no terminal
    reporter.epoch_start("fcn32", 0, 30, 200)
    for step in range(10, 201, 10):  # the loop reports every 10 steps
        reporter.batch(step, 0.5, 12.0)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "fcn32 epoch 1/30: 200 step(s)"
    assert lines[1] == "fcn32 epoch 1/30: step 20/200 (10%), loss 0.5000, 12.0 img/s"
    assert len(lines) == 11 and lines[-1].startswith("fcn32 epoch 1/30: step 200/200 (100%)")

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
    assert (
        code == 1
        and "smaller than the model's input (572 px)" in output
        and "at least 572 px" in output
        and "--size 700" in output
    )
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


@pytest.mark.parametrize(
    "bad",
    [
        ["--model", "smp-unet", "--encoder", "resnet19"],
        ["--model", "fcn32", "--pretrained", "README.md"],
        ["--model", "deeplabv3-r18", "--pretrained", "README.md"],
        ["--model", "fcn33"],
        ["--model", "fcn32", "--task", "tumour"],
        ["--model", "fcn32", "--input-size", "40"],
        ["--model", "fcn32", "--input-size", "8"],
        ["--model", "fcn32", "--folds", "50", "--fold", "3"],
        ["--model", "fcn32", "--scale", "0.05"],
        ["--model", "fcn32", "CROPS=nowhere"],
        ["--model", "fcn32", "CROPS=dataset"],
    ],
)
def test_a_refused_start_leaves_no_run_folder(crops: Path, tmp_path: Path, bad: list[str]) -> None:
    """Issue 19: `--encoder resnet19` or `--pretrained README.md` left --out/{config.json,run.json},
    and the corrected command was then refused as "a run of other settings"."""
    source = crops
    if bad[-1].startswith("CROPS="):
        source = {"nowhere": tmp_path / "nowhere", "dataset": crops.parent / "dataset" / "manifest.csv"}[bad.pop()[6:]]
    out = tmp_path / "r"
    code, output = run("train", source, "--out", out, "--width", "0.0625", "--epochs", "1", "--workers", "0", *bad)
    assert code in (1, 2) and "Error" in output, output
    assert not out.exists()


def test_a_start_that_failed_before_its_first_epoch_is_taken_over(
    crops: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped in its first epoch (out of memory at --batch-size 1000) holds nothing to lose:
    the corrected command starts it over instead of asking for --overwrite."""
    import mammotools.train.run as train_run

    small = ["--width", "0.0625", "--input-size", "64", "--workers", "0", "--epochs", "1"]
    with monkeypatch.context() as patch:
        patch.setattr(train_run, "train_stage", lambda *a, **k: (_ for _ in ()).throw(MemoryError("out of memory")))
        result = CliRunner().invoke(main, ["train", str(crops), "--model", "fcn32", "--out", str(tmp_path / "r"), *small,
                                           "--batch-size", "1000"])  # fmt: skip
        assert isinstance(result.exception, MemoryError) and (tmp_path / "r" / "config.json").is_file()
    code, output = run("train", crops, "--model", "fcn32", "--out", tmp_path / "r", *small, "--batch-size", "4")
    assert code == 0 and "best val mIoU" in output, output


def test_the_crop_size_rule_of_the_message_is_the_docs(crops: Path, tmp_path: Path) -> None:
    """Issue 19: `--input-size 256 --scale 0.5` on smaller crops suggested `--size 700` where
    docs/training.md said 512 suffices: one rule (crop_size_needed), the message and the docs agree."""
    import re

    from mammotools.data.crops import crop_size_needed

    docs = " ".join((Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text().split())
    found = re.search(
        r"a (\d+) px input at `--scale ([\d.]+)` needs crops of at least (\d+) px.*?`make-crops --size (\d+)`", docs
    )
    assert found, "docs/training.md no longer states the rule"
    side, scale, least, suggested = int(found[1]), float(found[2]), int(found[3]), int(found[4])
    assert crop_size_needed(side, scale) == (least, suggested) == (512, 700)
    code, output = run("train", crops, "--model", "fcn32", "--out", tmp_path / "r", "--input-size", "256", "--scale", "0.5")
    assert code == 1 and "crops of at least 512 px are needed" in output and "--size 700" in output
    assert crop_size_needed(250, 1.0) == (250, 256) and crop_size_needed(2000, 1.0) == (2000, 2000)
    assert not (tmp_path / "r").exists()

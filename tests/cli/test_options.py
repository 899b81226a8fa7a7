"""Each name list is written once and the CLI's choices and help are built from it."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from mammotools.augment import VARIANTS, parse_variants
from mammotools.cli import main
from mammotools.defaults import CROP_SIZES, DEFAULT_COMMON, READERS_OFFERED, TASKS
from mammotools.qupath import READERS


def help_of(command: str) -> str:
    return " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())


def test_readers_offered_are_the_readers() -> None:
    assert READERS_OFFERED[0] == "auto" and set(READERS_OFFERED[1:]) == set(READERS)
    for command in ("inspect", "export-qupath"):
        assert f"--reader [{'|'.join(READERS_OFFERED)}]" in help_of(command)


def test_variants_help_and_default_come_from_the_registry() -> None:
    text = help_of("augment")
    assert f"default: all {len(VARIANTS)} ({', '.join(VARIANTS)})" in text
    assert parse_variants(None) == tuple(VARIANTS)


def test_make_crops_choices_and_defaults() -> None:
    text = help_of("make-crops")
    assert f"--task [{'|'.join(TASKS)}]" in text
    assert f"(the paper: {', '.join(map(str, CROP_SIZES))})" in text
    assert f"[default: {', '.join(DEFAULT_COMMON)}]" in text


def test_commands_are_listed_in_pipeline_order_each_with_an_example() -> None:
    """Issue 19: `mammotools --help` lists the commands as the pipeline runs, and each command's
    help ends with an example command line."""
    output = CliRunner().invoke(main, ["--help"]).output
    listed = [line.split()[0] for line in output.split("Commands:")[1].strip().splitlines()]
    assert listed == [
        "import-masks", "import-mias", "inspect", "export-qupath", "make-crops", "augment",
        "train", "evaluate", "benchmark", "predict",
    ]  # fmt: skip
    for command in listed:
        text = CliRunner().invoke(main, [command, "--help"]).output
        assert "Example" in text and f"  mammotools {command} " in text, command


def test_one_name_per_meaning_with_the_old_spellings_kept() -> None:
    """--workers: worker processes only; loader processes, decoding threads and windows per pass
    have their own names; the old spellings still parse, unlisted."""
    for command in ("export-qupath", "make-crops", "augment"):
        assert "--workers INTEGER RANGE Worker processes" in help_of(command), command
    for command in ("train", "benchmark"):
        assert "--loader-workers" in help_of(command) and "--workers" not in help_of(command), command
    assert "--decode-threads" in help_of("predict") and "--workers" not in help_of("predict")
    for command in ("evaluate", "predict"):
        text = help_of(command)
        assert "--window-batch" in text and "--batch-size" not in text and "--batch " not in text, command
    assert "--batch-size INTEGER RANGE Images per step" in help_of("train")

    import click

    from mammotools.cli.options import alias, window_batch_option

    @click.command()
    @window_batch_option(4, "4")
    @alias("--batch", "batch_size", click.IntRange(min=1))
    def probe(batch_size: int) -> None:
        click.echo(f"batch {batch_size}")

    for args, shown in (
        ([], 4),
        (["--batch", "2"], 2),
        (["--window-batch", "3"], 3),
        (["--window-batch", "3", "--batch", "2"], 3),
    ):
        assert CliRunner().invoke(probe, args).output == f"batch {shown}\n", args
    assert "--batch " not in CliRunner().invoke(probe, ["--help"]).output


def test_inputs_are_named_for_what_they_are_and_benchmark_takes_crops_one_way() -> None:
    usage = {c: CliRunner().invoke(main, [c, "--help"]).output.splitlines()[0] for c in ("inspect", "export-qupath",
             "predict", "import-masks", "import-mias", "benchmark")}  # fmt: skip
    assert usage["inspect"].endswith("inspect [OPTIONS] PROJECT") and usage["export-qupath"].endswith("[OPTIONS] PROJECT")
    assert usage["predict"].endswith("RUN IMAGES") and usage["import-masks"].endswith("LABELS")
    assert usage["import-mias"].endswith("INFO_TXT") and usage["benchmark"].endswith("DATASET [CROPS]...")
    assert "--crops" not in help_of("benchmark")
    result = CliRunner().invoke(main, ["benchmark", "nowhere", "--crops", "c1", "c2", "--out", "x"])
    assert "No such option" not in result.output  # the old spelling still parses


def test_train_shows_its_defaults_and_explains_patience_and_pretrained() -> None:
    from mammotools.train import TrainConfig

    text = help_of("train")
    config = TrainConfig()
    for option, value in (("--seed", config.seed), ("--device", config.device), ("--precision", config.precision),
                          ("--width", f"{config.width:g}"), ("--task", config.task)):  # fmt: skip
        assert re.search(rf"{option} \S+ .*?\[default: {value}\]", text), option
    assert "0 = never stop early" in text and "smp encoder" in text


def test_progress_without_a_terminal_prints_plain_lines_on_long_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review of issue 19: export-qupath, make-crops, augment and predict showed only their label
    when stderr was a log file (click's bar draws nothing there): 185 s of predict without a word."""
    from mammotools.cli import options

    clock = [0.0]
    monkeypatch.setattr(options.time, "monotonic", lambda: clock[0])
    progress = options.Progress("Predicting", " image(s)")
    assert progress.plain  # pytest's stderr is not a terminal
    progress.on_plan(60, 0)
    for i in range(60):
        clock[0] += 3.0  # 3 s an image: 180 s in all
        progress.on_item(f"i{i}")
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "Predicting 60 image(s)"
    assert lines[1:] == [f"Predicting {n} of 60 image(s) done ({n / 60:.0%})" for n in range(6, 61, 6)]
    quick = options.Progress("Exporting", " image(s)")
    quick.on_plan(24, 0)
    for i in range(24):
        clock[0] += 0.02  # a run of half a second: only its label
        quick.on_item(f"i{i}")
    assert capsys.readouterr().err.splitlines() == ["Exporting 24 image(s)"]

"""Each name list is written once and the CLI's choices and help are built from it."""

from __future__ import annotations

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

"""What a new user tripped on (issue 19, section 3): each case one clear line, the right exit
status, and nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_dataset

from mammotools.cli import main


def run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_make_crops_refuses_an_export_that_was_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: make-crops drew split.csv over the images a stopped export had written; once the
    export was finished it refused the new subjects. A stopped export is now refused until finished."""
    import mammotools.export.image as export_image

    make_dataset(tmp_path)
    real, calls = export_image.export_image, []

    def stop_at_third(*args: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    export = ["export-qupath", tmp_path / "project", "--images", tmp_path / "images", "--out", tmp_path / "ds", "--workers", "1"]
    with monkeypatch.context() as patch:
        patch.setattr(export_image, "export_image", stop_at_third)
        assert run(*export)[0] == 130
    crops = ["make-crops", tmp_path / "ds", "--size", "32", "--per-image", "1", "--out", tmp_path / "c"]
    for command in (crops, ["augment", tmp_path / "ds", "--out", tmp_path / "a"]):
        code, output = run(*command)
        assert code == 1 and "export-qupath run was stopped before it finished (2 of 6 images exported)" in output
        assert "run the same export-qupath command again" in output and len(output.strip().splitlines()) == 1
    assert not (tmp_path / "ds" / "split.csv").exists() and not (tmp_path / "c").exists() and not (tmp_path / "a").exists()
    assert run(*export)[0] == 0  # finished: the dataset is whole
    code, output = run(*crops)
    assert code == 0 and "6 image(s) cropped" in output

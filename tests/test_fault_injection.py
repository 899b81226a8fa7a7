"""Writes failing at chosen points (as a full disk or a lost mount makes them fail) in
export-qupath, make-crops and augment: after each failure every output there decodes, no
temporary is left, and a rerun gives the same bytes as a run without faults.

Every output goes through mammotools.files.atomic_path, whose last step (_commit: the rename
that makes a file visible) is made to fail after N files, for N spread over the whole run.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
from conftest import make_dataset

import mammotools.files as files
from mammotools.augment import augment_dataset
from mammotools.crops import CropSettings, make_crops
from mammotools.export import ExportSettings, export_dataset

FAULT_POINTS = 10  # failures tried per command, spread over its writes
REAL_COMMIT = files._commit


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file's bytes (records hold timings: only their names)."""
    return {
        str(p.relative_to(folder)): b"" if p.parent.name == "records" else p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_all_decode(folder: Path) -> None:
    for p in folder.rglob("*"):
        assert ".tmp-" not in p.name, p
        if p.suffix == ".png":
            assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED) is not None, p
        elif p.suffix == ".json":
            json.loads(p.read_text("utf-8"))
        elif p.suffix == ".csv":
            assert p.read_text("utf-8").endswith("\n"), p


class FailAfter:
    """_commit that raises ENOSPC once ``n`` files have been committed."""

    def __init__(self, n: int) -> None:
        self.n, self.count = n, 0

    def __call__(self, tmp: Path, target: Path) -> None:
        if self.count >= self.n:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        self.count += 1
        REAL_COMMIT(tmp, target)


def count_writes(monkeypatch: pytest.MonkeyPatch, run: Callable[[Path], object], out: Path) -> int:
    counter = FailAfter(10**9)
    monkeypatch.setattr(files, "_commit", counter)
    run(out)
    monkeypatch.setattr(files, "_commit", REAL_COMMIT)
    return counter.count


def check_command(monkeypatch: pytest.MonkeyPatch, run: Callable[[Path], object], root: Path) -> None:
    run(root / "first")  # make-crops records the dataset's split.csv on its first run: later runs only read it
    clean = root / "clean"
    total = count_writes(monkeypatch, run, clean)
    expected = outputs(clean)
    assert total > FAULT_POINTS
    for k, n in enumerate(sorted({round(i * (total - 1) / (FAULT_POINTS - 1)) for i in range(FAULT_POINTS)})):
        out = root / f"fault{k}"
        monkeypatch.setattr(files, "_commit", FailAfter(n))
        with pytest.raises(OSError, match="No space left"):
            run(out)
        monkeypatch.setattr(files, "_commit", REAL_COMMIT)
        if out.exists():
            assert_all_decode(out)
        run(out)  # the rerun, space freed
        assert outputs(out) == expected, f"rerun after a failure at write {n} of {total}"


def test_export_make_crops_and_augment_survive_failing_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = make_dataset(tmp_path)
    project = tmp_path / "project"
    settings = ExportSettings(sigma=2, point_radius=4)
    check_command(monkeypatch, lambda out: export_dataset(project, out, tmp_path / "images", settings=settings, workers=1),
                  tmp_path / "export")  # fmt: skip
    crop_settings = CropSettings(size=64, per_image=3)
    check_command(monkeypatch, lambda out: make_crops(dataset, out, crop_settings, workers=1), tmp_path / "crops")
    crops = tmp_path / "crops" / "clean"
    check_command(monkeypatch, lambda out: augment_dataset(crops, out, ("flip_lr", "noise", "rotate_cw"), workers=1),
                  tmp_path / "augment")  # fmt: skip

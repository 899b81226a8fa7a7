"""Finding images: never inside a folder mammotools wrote, even one a killed run left without its manifest."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from conftest import feature, rect, write_project

from mammotools.export import ExportSettings, export_dataset
from mammotools.locate import ImageIndex


def test_images_are_never_taken_from_an_earlier_output(tmp_path: Path) -> None:
    pixels = (np.arange(60 * 80).reshape(60, 80) % 4096).astype(np.uint16)
    project = write_project(tmp_path, {"a.png": (pixels, [feature(rect(0, 0, 40, 60), "Mammary gland")])})
    images = tmp_path / "images"
    export_dataset(project, images / "ds", images, settings=ExportSettings(sigma=0))
    (images / "ds" / "manifest.csv").unlink()  # as a run killed with -9 leaves it
    cv2.imwrite(str(images / "ds" / "images" / "a.png"), np.zeros((60, 80), np.uint16))  # the copy differs
    index = ImageIndex(images)
    assert index.by_name["a.png"] == [images / "a.png"]
    export_dataset(project, tmp_path / "second", images, settings=ExportSettings(sigma=0))
    again = cv2.imread(str(tmp_path / "second" / "images" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(again, pixels)

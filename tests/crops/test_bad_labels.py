"""A label map holding a value its class table does not know fails that image alone, saying so."""

from __future__ import annotations

from pathlib import Path

from conftest import make_dataset
from PIL import Image

from mammotools.crops import CropSettings, make_crops
from mammotools.palette import read_label_png


def test_unknown_label_value_fails_its_image_alone(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    label_file = dataset / "labels" / "s0_L_CC.png"
    label = read_label_png(label_file).copy()
    label[5:9, 5:9] = 200  # not a class of the table
    with Image.open(label_file) as im:
        palette = im.getpalette()
    edited = Image.fromarray(label, mode="P")
    edited.putpalette(palette or [])
    edited.save(label_file)
    summary = make_crops(dataset, tmp_path / "crops", CropSettings(size=64, per_image=2))
    assert [name for name, _ in summary.failed] == ["s0_L_CC"]
    message = summary.failed[0][1]
    assert "s0_L_CC.png" in message and "label value(s) 200" in message and "export-qupath" in message
    assert len(summary.done) == 5

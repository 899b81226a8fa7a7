"""Reading a dataset folder made by ``export-qupath`` (layout in export.py)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from mammotools.classes import ClassTable, load_class_table
from mammotools.errors import InputError


@dataclass
class Dataset:
    """An export-qupath dataset: its class table and one manifest row per image."""

    path: Path
    table: ClassTable
    rows: list[dict[str, str]]

    def image_path(self, name: str) -> Path:
        return self.path / "images" / f"{name}.png"

    def label_path(self, name: str) -> Path:
        return self.path / "labels" / f"{name}.png"

    def fingerprint(self, name: str) -> str:
        """The export's fingerprint of an image (changes whenever the image was re-exported)."""
        record = self.path / "records" / f"{name}.json"
        try:
            return str(json.loads(record.read_text("utf-8")).get("fingerprint", ""))
        except (OSError, ValueError):
            return ""


def open_dataset(path: str | Path) -> Dataset:
    """Open a dataset folder; :class:`InputError` if it is not one, saying how to make one."""
    path = Path(path)
    manifest, classes = path / "manifest.csv", path / "classes.json"
    if not path.is_dir() or not manifest.is_file() or not classes.is_file():
        raise InputError(
            f"{path}: not a mammotools dataset (no manifest.csv and classes.json); "
            "make one with `mammotools export-qupath PROJECT --out DATASET`"
        )
    with manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    if "name" not in (reader.fieldnames or []) or (path / "settings.json").is_file():
        raise InputError(
            f"{path}: not a mammotools dataset made by export-qupath (this looks like a crop or augmented "
            "dataset); give the folder export-qupath wrote"
        )
    if not rows:
        raise InputError(f"{manifest}: the dataset holds no image; export some first")
    for row in rows:
        for p in (path / "images" / f"{row['name']}.png", path / "labels" / f"{row['name']}.png"):
            if not p.is_file():
                raise InputError(f"{p}: listed in {manifest} but missing; re-run export-qupath on this dataset")
    return Dataset(path, load_class_table(classes), rows)

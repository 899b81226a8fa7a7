"""Cut one image's crops (the work a worker process does for ``make-crops``): balanced centres
(centres.py), windows, the files, the record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from mammotools.crops.centres import PixelPicker, choose_centre, cut, window_around
from mammotools.crops.layout import split_files
from mammotools.defaults import IGNORE_LABEL
from mammotools.errors import InputError
from mammotools.files import atomic_write_bytes, atomic_write_text
from mammotools.images import encode_png, image_bits, read_image
from mammotools.palette import encode_label_png, read_label_png
from mammotools.records import forget
from mammotools.seeds import crop_seed

if TYPE_CHECKING:
    from mammotools.classes import ClassTable
    from mammotools.crops.layout import CropSettings


@dataclass
class CropJob:
    """One source image: where it is, and which side of the split it is on."""

    name: str
    subject: str
    split: str
    image_path: Path
    label_path: Path
    source_fingerprint: str = ""  # the dataset record's: changes when export-qupath redid the image


def crop_files(out: Path, record: dict) -> list[Path]:
    """The files a make-crops record stands for (used to remove them before a redo)."""
    return split_files(out, record.get("crops", []), "crop")


def cut_image_crops(
    job: CropJob,
    out: Path,
    table: ClassTable,
    out_table: ClassTable,
    lut: list[int],
    common: list[int],
    settings: CropSettings,
) -> dict:
    """Write ``settings.per_image`` crops of one image and its record; return the record."""
    forget(out, job.name, crop_files)  # an earlier run's crops of this image, wherever they went
    image = read_image(job.image_path)
    label = read_label_png(job.label_path)
    if image.shape[:2] != label.shape:
        raise InputError(
            f"{job.label_path}: label map is {label.shape[1]}x{label.shape[0]} but the image is "
            f"{image.shape[1]}x{image.shape[0]}; re-run export-qupath for this image"
        )
    bits = image_bits(image)
    present = np.flatnonzero(cv2.calcHist([label], [0], None, [256], [0, 256]).ravel())
    unknown = [int(v) for v in present if int(v) not in {c.label for c in table}]
    if unknown:
        raise InputError(
            f"{job.label_path}: label value(s) {', '.join(map(str, unknown[:10]))} are not in the dataset's class table "
            f"(classes.json: {', '.join(f'{c.label}={c.name}' for c in table)[:300]}); re-run export-qupath for this image"
        )
    pickers = {int(v): PixelPicker(label, int(v)) for v in present if int(v) not in common}
    breast = PixelPicker(label, table.bottom.label, invert=True) if not pickers else None
    remap = np.asarray(lut, np.uint8)
    palette = out_table.palette()
    crops = []
    for i in range(settings.per_image):
        seed = crop_seed(settings.seed, job.name, i)
        rng = np.random.default_rng(seed)
        row, col, chosen = choose_centre(rng, pickers, breast, label.shape)
        window = window_around(row, col, label.shape, settings.size)
        image_crop = cut(image, window, 0)
        label_crop = remap[cut(label, window, IGNORE_LABEL)]  # padding is no class: never background
        name = f"{job.name}_{i:03d}"
        atomic_write_bytes(out / job.split / "images" / f"{name}.png", encode_png(image_crop))
        atomic_write_bytes(out / job.split / "labels" / f"{name}.png", encode_label_png(label_crop, palette))
        counts = cv2.calcHist([label_crop], [0], None, [256], [0, 256]).ravel()
        crops.append(
            {
                "crop": name,
                "split": job.split,
                "source": job.name,
                "subject": job.subject,
                "size": settings.size,
                "row0": window.row0,
                "col0": window.col0,
                "padded": window.padded,
                "centre_row": row,
                "centre_col": col,
                "centre_class": table.by_label(chosen).name if chosen is not None else "(breast)",
                "seed": seed,
                "bits": bits,
                "pixels": {c.name: int(counts[c.label]) for c in out_table},
            }
        )
    record = {
        "name": job.name,
        "split": job.split,
        "source_fingerprint": job.source_fingerprint,
        "crops": crops,
    }
    atomic_write_text(out / "records" / f"{job.name}.json", json.dumps(record, indent=1))
    return record

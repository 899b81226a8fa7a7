"""Augment one crop (the work a worker process does for ``augment``): apply each variant
(variants.py), write the files and the record."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from mammotools.augment.variants import VARIANTS, apply_variant
from mammotools.crops import checked_bits, split_files
from mammotools.files import atomic_path, atomic_write_bytes, atomic_write_text
from mammotools.images import encode_png, open_pillow, read_image
from mammotools.palette import encode_label_png, read_label_png
from mammotools.records import forget
from mammotools.seeds import crop_seed

if TYPE_CHECKING:
    from mammotools.classes import ClassTable


@dataclass
class AugmentJob:
    """One crop (or whole image) and what to make of it."""

    crop: str
    split: str
    source: str
    subject: str
    bits: int  # 0: found from the image
    variants: tuple[str, ...]  # empty for validation crops: copied as they are
    keep_original: bool
    image_path: Path
    label_path: Path


def augment_files(out: Path, record: dict) -> list[Path]:
    """The files an augment record stands for (used to remove them before a redo)."""
    return split_files(out, record.get("outputs", []), "file")


def source_stamp(job: AugmentJob) -> list[int]:
    """Size and modification time of the crop's image and label: they change when it is remade."""
    stats = [job.image_path.stat(), job.label_path.stat()]
    return [v for st in stats for v in (st.st_size, st.st_mtime_ns)]


def write_crop_variants(job: AugmentJob, out: Path, seed: int, table: ClassTable) -> dict:
    """Write the crop's variants (and/or a copy of it) and its record; return the record."""
    forget(out, job.crop, augment_files)  # an earlier run's outputs of this crop, wherever they went

    src_image, src_label = job.image_path, job.label_path
    label = read_label_png(src_label)
    with open_pillow(src_label, "label map", "make the crops again") as im:
        palette = bytes(im.getpalette() or [])[:768].ljust(768, b"\0")
    outputs = []

    # a recorded depth is checked against the pixels, also for a crop copied as it is (training scales by
    # it); "": a whole image copied unread, its depth not known
    image = read_image(src_image) if job.variants or job.bits else None
    bits: int | str = checked_bits(job.bits or None, image, src_image) if image is not None else ""

    def count(label_map: np.ndarray) -> np.ndarray:
        return cv2.calcHist([label_map], [0], None, [256], [0, 256]).ravel()

    counts_before = count(label)  # what an intensity variant or a mirror keeps

    def record(file: str, variant: str, variant_seed: int | str, counts: np.ndarray) -> None:
        outputs.append(
            {
                "file": file,
                "split": job.split,
                "crop": job.crop,
                "source": job.source,
                "subject": job.subject,
                "variant": variant,
                "seed": variant_seed,
                "bits": bits,
                "pixels": {c.name: int(counts[c.label]) for c in table},
            }
        )

    if job.keep_original:
        for src, kind in ((src_image, "images"), (src_label, "labels")):
            with atomic_path(out / job.split / kind / f"{job.crop}.png") as tmp:
                shutil.copyfile(src, tmp)
        record(job.crop, "original", "", counts_before)
    if job.variants and image is not None:
        for name in job.variants:
            variant_seed = crop_seed(seed, f"{job.crop}/{name}", 0)  # by name: the order of --variants does not matter
            rng = np.random.default_rng(variant_seed)
            new_image, new_label = apply_variant(name, image, label, rng, int(bits), table.bottom.label)
            file = f"{job.crop}_{name}"
            atomic_write_bytes(out / job.split / "images" / f"{file}.png", encode_png(new_image))
            atomic_write_bytes(out / job.split / "labels" / f"{file}.png", encode_label_png(new_label, palette))
            record(file, name, variant_seed, count(new_label) if VARIANTS[name].recounts else counts_before)
    result = {"crop": job.crop, "split": job.split, "stamp": source_stamp(job), "outputs": outputs}
    atomic_write_text(out / "records" / f"{job.crop}.json", json.dumps(result, indent=1))
    return result

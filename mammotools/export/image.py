"""Export one image (the work a worker process does for ``export-qupath``).

Order of writes: the image, the region masks (one folder, renamed into place), the label map,
then the record. Each is atomic, and the record, written last, marks the image complete.
Peak memory is about one decoded image, or the label map plus the region windows, not both:
the image is written and dropped before the maps are built.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mammotools.errors import InputError
from mammotools.export.layout import write_masks_folder
from mammotools.files import atomic_path, atomic_write_bytes, atomic_write_text
from mammotools.images import encode_mask_png, encode_png, png_checked, read_image
from mammotools.masks import label_pixel_counts, merge_region_maps, overlap_counts, region_maps
from mammotools.palette import encode_label_png

LOSS_WARNING_FRACTION = 0.5

if TYPE_CHECKING:
    from mammotools.classes import ClassTable
    from mammotools.export.plan import ExportSettings, ImageJob
    from mammotools.masks import RegionMap


def export_image(job: ImageJob, out: Path, table: ClassTable, settings: ExportSettings) -> dict:
    """Write all outputs of one image; return its record (also written to records/<name>.json)."""
    # The record marks the outputs complete: it goes first, so that an interruption while the
    # outputs are rewritten (say with --overwrite) never leaves an old record over new files.
    (out / "records" / f"{job.name}.json").unlink(missing_ok=True)
    timings: dict[str, float] = {}
    image_warnings: list[str] = []
    t = time.perf_counter()
    rotation = job.source_image.rotation
    if rotation not in (0, 90, 180, 270):
        raise InputError(
            f"{job.image_path}: the project's entry has a rotation QuPath does not write (it writes ROTATE_NONE, "
            "ROTATE_90, ROTATE_180 or ROTATE_270); fix the entry's serverBuilder in project.qpproj, or re-add the image in QuPath"
        )
    # A plain PNG is copied as it is: its header and checksums are all the checks it needs (the
    # pixels are decoded by make-crops, once). Anything else is decoded here, and encoded.
    plain = png_checked(job.image_path) if job.image_path.suffix.lower() == ".png" and not rotation else None
    image = None
    if plain is not None:
        width, height, bits, _ = plain
    else:
        image = read_image(job.image_path, voi=settings.dicom_voi, notes=image_warnings)
        if rotation:  # QuPath showed (and the annotator drew on) the image turned clockwise
            image = np.ascontiguousarray(np.rot90(image, k=-(rotation // 90)))
            image_warnings.append(f"turned {rotation} degrees clockwise, as QuPath shows it (a rotated image server)")
        height, width, bits = image.shape[0], image.shape[1], image.dtype.itemsize * 8
    timings["decode"] = time.perf_counter() - t
    _check_pixel_type(job, bits)
    if (width, height) != (job.width, job.height):
        raise InputError(
            f"{job.image_path}: the image is {width}x{height} but the project says {job.width}x{job.height} "
            f"(annotations: {job.source_image.annotation_path}); they would not line up: point --images at the "
            "image that was annotated"
        )
    t = time.perf_counter()
    target = out / "images" / f"{job.name}.png"
    if image is None:  # a plain PNG, checked above: its bytes are copied, not re-encoded
        with atomic_path(target) as tmp:
            shutil.copyfile(job.image_path, tmp)
    else:
        atomic_write_bytes(target, encode_png(image))
    del image
    timings["encode_image"] = time.perf_counter() - t

    t = time.perf_counter()
    shape = (height, width)
    maps = region_maps(table, job.geometries, shape, settings.sigma, settings.point_radius)
    image_warnings += smoothing_losses(maps, settings.sigma)
    maps = [m for m in maps if m.pixels]
    label = merge_region_maps(maps, shape, table.bottom.label)
    pixels = label_pixel_counts(label, table)
    overlaps = overlap_counts(maps)
    timings["masks"] = time.perf_counter() - t

    t = time.perf_counter()
    write_masks_folder(out / "masks" / job.name, encode_region_masks(maps, shape))
    atomic_write_bytes(out / "labels" / f"{job.name}.png", encode_label_png(label, table.palette()))
    timings["encode_maps"] = time.perf_counter() - t

    record = {
        "name": job.name,
        "subject": job.subject,
        "width": width,
        "height": height,
        "source": str(job.image_path),
        "annotations": str(job.source_image.annotation_path or ""),
        "entry_id": job.source_image.entry_id if job.source_image.entry_id is not None else "",
        "regions": [m.region.slug for m in maps],
        "pixels": pixels,
        "overlaps": [{"regions": list(pair), "pixels": n} for pair, n in overlaps.items()],
        "warnings": job.warnings + image_warnings,
        "image_warnings": image_warnings,
        "settings": {"sigma": settings.sigma, "point_radius": settings.point_radius},
        "fingerprint": job.fingerprint,
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }
    atomic_write_text(out / "records" / f"{job.name}.json", json.dumps(record, indent=1))
    return record


def encode_region_masks(maps: list[RegionMap], shape: tuple[int, int]) -> dict[str, bytes]:
    """1-bit PNG bytes of each region's full-size 0/255 map, encoded on OpenCV's thread count.

    The PNG writer (NumPy, ISA-L) releases the GIL, so threads encode masks side by side; a pool worker
    has one thread (init_worker), so N workers still use N cores. At most ``threads`` full-size
    maps are in memory at once.
    """
    import cv2

    def encode(rmap: RegionMap) -> tuple[str, bytes]:
        return rmap.region.slug, encode_mask_png(rmap.full_size(shape))

    threads = max(1, cv2.getNumThreads())
    if threads == 1:
        return dict(encode(m) for m in maps)
    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(encode, maps))


def smoothing_losses(maps: list[RegionMap], sigma: float) -> list[str]:
    """Warnings for regions that smoothing shrank to less than half (thin bands, tiny blobs)."""
    out = []
    for m in maps:
        if m.drawn_pixels > 0 and m.pixels < LOSS_WARNING_FRACTION * m.drawn_pixels:
            out.append(
                f"smoothing (sigma {sigma:g} px) left {m.pixels} of the {m.drawn_pixels} pixels drawn for "
                f"{m.region.name!r}: the region is thinner than the filter; lower --sigma or draw it wider"
            )
    return out


PIXEL_BITS = {"UINT8": 8, "INT8": 8, "UINT16": 16, "INT16": 16}


def _check_pixel_type(job: ImageJob, bits: int) -> None:
    """Refuse a file whose pixel type is not the one the project was annotated on (an 8-bit copy
    of a 16-bit mammogram has lost its grey levels)."""
    recorded = PIXEL_BITS.get(str(job.source_image.pixel_type).upper())
    if recorded is not None and recorded != bits:
        raise InputError(
            f"{job.image_path}: holds {bits}-bit pixels but the project's image is "
            f"{job.source_image.pixel_type}; point --images at the image that was annotated (not a converted copy)"
        )

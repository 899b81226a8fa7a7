"""The export dataset folder: its layout (a contract), the reader later stages use, its writers.

Layout::

    dataset/classes.json               the class table used
    dataset/manifest.csv               a row per image (MANIFEST_FIELDS, pixels_<class>, overlaps)
    dataset/images/<name>.png          the image, lossless, original bit depth
    dataset/labels/<name>.png          merged label map: uint8 palette PNG, values = labels
    dataset/masks/<name>/<region>.png  binary map per region present, after smoothing: a 1-bit PNG
                                        (OpenCV reads 0/255, PIL mode "1")
    dataset/records/<name>.json        what was done for the image; written last, so its
                                       presence marks the image's outputs complete
    dataset/split.csv                  the subject-level split, once make-crops or augment drew it
    dataset/unfinished.json            while an export run is under way: the images it was asked for;
                                       removed when the run reaches its end (a stopped run leaves
                                       it, so later stages refuse the dataset until it is finished)

:func:`open_export_dataset` is how make-crops, augment and training read such a folder.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mammotools.classes import ClassTable, load_class_table
from mammotools.errors import InputError, MissingFileError
from mammotools.files import atomic_path, atomic_write_bytes, atomic_write_text, read_csv_rows, remove_stale_temporaries
from mammotools.records import EXPORT_RECORD, read_record
from mammotools.split import SPLIT_FILE, read_split

MANIFEST_FIELDS = ["name", "subject", "width", "height", "source", "annotations", "entry_id"]
SUBFOLDERS = ("images", "labels", "masks", "records")
MAKE_ONE = "make one with `mammotools export-qupath PROJECT --out DATASET`"
UNFINISHED = "unfinished.json"


@dataclass(frozen=True)
class ExportedImage:
    """One manifest row of an export dataset."""

    name: str  # output stem: images/<name>.png, labels/<name>.png
    subject: str  # the patient, for the subject-level split
    width: int
    height: int
    source: str  # the image file it was exported from
    annotations: str  # the annotation file it was read from ("" if none)
    entry_id: int | None  # the QuPath project's entry id, None outside a project
    pixels: dict[str, int] = field(default_factory=dict)  # class name -> pixels of the merged label map
    overlaps: dict[tuple[str, str], int] = field(default_factory=dict)  # (region, region) -> pixels both covered


@dataclass
class ExportDataset:
    """An export-qupath dataset, opened: its class table, one :class:`ExportedImage` per image,
    and the subject split when one has been drawn (``split.csv``)."""

    path: Path
    table: ClassTable
    images: list[ExportedImage]
    split: dict[str, str] | None = None  # image name -> "train" | "val"; None until drawn

    @property
    def names(self) -> list[str]:
        """The image names, in manifest order."""
        return [image.name for image in self.images]

    def image_path(self, name: str) -> Path:
        """The image (PNG, original bit depth: 8 or 16 bit, gray or RGB)."""
        return self.path / "images" / f"{name}.png"

    def label_path(self, name: str) -> Path:
        """The merged label map: (H, W) uint8 palette PNG, values = the table's labels."""
        return self.path / "labels" / f"{name}.png"

    def mask_path(self, name: str, region_slug: str) -> Path:
        """The binary map (0/255) of one region of one image."""
        return self.path / "masks" / name / f"{region_slug}.png"

    def names_in(self, side: str) -> list[str]:
        """The images on one side ("train" or "val") of the recorded split; an error if none is recorded."""
        if self.split is None:
            raise InputError(f"{self.path}: no {SPLIT_FILE} yet; make-crops or augment draws the subject split")
        return [name for name in self.names if self.split.get(name) == side]

    def fingerprint(self, name: str) -> str:
        """The export's fingerprint of an image (changes whenever the image was re-exported)."""
        record = read_record(self.path, name)
        return str(record.get("fingerprint", "")) if record else ""


def open_export_dataset(path: str | Path) -> ExportDataset:
    """Open an export-qupath dataset; :class:`InputError` naming the fix if ``path`` is not one."""
    path = Path(path)
    manifest, classes = path / "manifest.csv", path / "classes.json"
    if not path.exists():
        raise MissingFileError(f"{path}: not found; give the dataset folder export-qupath wrote ({MAKE_ONE})")
    if path.is_file() and path.name in ("manifest.csv", "classes.json", SPLIT_FILE):
        raise InputError(f"{path}: a file of a dataset; give the dataset folder itself ({path.parent})")
    if path.is_dir() and (path / UNFINISHED).is_file():
        raise InputError(unfinished_message(path))
    if not path.is_dir() or not manifest.is_file() or not classes.is_file():
        raise InputError(f"{path}: not a mammotools dataset (no manifest.csv and classes.json); {MAKE_ONE}")
    if (path / "settings.json").is_file():
        raise InputError(
            f"{path}: not a mammotools dataset made by export-qupath (this looks like a crop or augmented "
            "dataset); give the folder export-qupath wrote"
        )
    fieldnames, rows = read_csv_rows(manifest, "re-run export-qupath on this dataset")
    if "name" not in fieldnames:
        raise InputError(f"{manifest}: no 'name' column, not a manifest export-qupath wrote; re-run export-qupath")
    if not rows:
        raise InputError(f"{manifest}: the dataset holds no image; export some first")
    table = load_class_table(classes)
    images = [_exported_image(row, table, manifest, line) for line, row in enumerate(rows, start=2)]
    names = [image.name for image in images]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"{manifest}: lists {', '.join(twice[:5])} more than once; re-run export-qupath on this dataset")
    for image in images:
        for p in (path / "images" / f"{image.name}.png", path / "labels" / f"{image.name}.png"):
            if not p.is_file():
                raise InputError(f"{p}: listed in {manifest} but missing; re-run export-qupath on this dataset")
    split_file = path / SPLIT_FILE
    split = {name: side for name, (_, side) in read_split(split_file).items()} if split_file.is_file() else None
    return ExportDataset(path, table, images, split)


def unfinished_message(path: Path) -> str:
    """Why an export dataset whose run was stopped is refused: a split or crops drawn over part of
    its images would no longer fit once the export is finished."""
    try:
        planned = json.loads((path / UNFINISHED).read_text("utf-8"))["images"]
        complete = sum(1 for name in planned if read_record(path, name, EXPORT_RECORD) is not None)
        counts = f" ({complete} of {len(planned)} images exported)"
    except (OSError, ValueError, KeyError, TypeError):
        counts = ""
    return (
        f"{path}: its export-qupath run was stopped before it finished, or some of its images failed{counts}; run "
        "the same export-qupath command again to finish it (fixing or removing from the project the images that "
        "failed), then use the dataset"
    )


def mark_unfinished(out: Path, names: list[str]) -> None:
    """Record that an export run of ``names`` is under way (removed by :func:`mark_finished`)."""
    atomic_write_text(out / UNFINISHED, json.dumps({"images": sorted(names)}, indent=1))


def mark_finished(out: Path) -> None:
    """The export run reached its end (every image exported or reported failed)."""
    if (out / UNFINISHED).exists():  # not touched otherwise: a read-only copy of a finished dataset reruns
        (out / UNFINISHED).unlink()


def _exported_image(row: dict[str, str], table: ClassTable, manifest: Path, line: int) -> ExportedImage:
    name = row.get("name") or ""
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise InputError(
            f"{manifest}:{line}: image name {name[:80]!r} is not a file name export-qupath writes; re-run export-qupath"
        )
    try:
        pixels = {c.name: int(row.get(f"pixels_{c.slug}") or 0) for c in table}
        overlaps = {}
        for part in filter(None, (row.get("overlaps") or "").split(";")):
            pair, _, count = part.rpartition("=")
            a, _, b = pair.partition("|")
            overlaps[(a, b)] = int(count)
        entry = row.get("entry_id") or ""
        return ExportedImage(
            name=row["name"],
            subject=row.get("subject") or "",
            width=int(row["width"]),
            height=int(row["height"]),
            source=row.get("source") or "",
            annotations=row.get("annotations") or "",
            entry_id=int(entry) if entry else None,
            pixels=pixels,
            overlaps=overlaps,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{manifest}:{line}: damaged row ({exc}); re-run export-qupath on this dataset") from None


def check_export_folder(out: Path, table: ClassTable, overwrite: bool) -> bool:
    """Refuse a ``--out`` that is not new, empty or an export dataset of the same class table
    (unless ``overwrite``), before anything is read or written; True if its table differs."""
    classes_file = out / "classes.json"
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose another --out")
    if (out / "settings.json").is_file():
        raise InputError(f"{out}: a crop or augmented dataset, not an export-qupath dataset; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not classes_file.is_file():
        raise InputError(f"{out}: folder is not empty and is not a mammotools dataset; choose an empty or new --out")
    if not classes_file.is_file():
        return False
    try:
        same = json.loads(classes_file.read_text("utf-8")) == json.loads(table.to_json())
    except ValueError:
        same = False
    if not same and not overwrite:
        raise InputError(
            f"{classes_file}: this dataset was made with another class table; pass --overwrite "
            "to rebuild it with the new one, or choose another --out"
        )
    return not same


def prepare_export_folder(out: Path, table: ClassTable, overwrite: bool) -> None:
    """Create the dataset folder (checked by :func:`check_export_folder`) and write its class table."""
    if check_export_folder(out, table, overwrite):  # another table: earlier outputs no longer mean anything
        for sub in SUBFOLDERS:
            shutil.rmtree(out / sub, ignore_errors=True)
    # The class table first: it marks the folder as a dataset, so a run stopped right after
    # (a full disk) leaves a folder that the rerun recognises and completes.
    if not ((out / "classes.json").is_file() and (out / "classes.json").read_text("utf-8") == table.to_json()):
        atomic_write_text(out / "classes.json", table.to_json())  # unchanged: not rewritten (a read-only copy reruns)
    for sub in SUBFOLDERS:
        (out / sub).mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)


def export_files(out: Path, record: dict) -> list[Path]:
    """The files and folder an export record stands for."""
    name = record.get("name", "")
    if not name or "/" in name or name in (".", ".."):
        return []
    return [out / "images" / f"{name}.png", out / "labels" / f"{name}.png", out / "masks" / name]


def write_manifest(out: Path, table: ClassTable, names: set[str] | None = None) -> Path:
    """Write ``manifest.csv`` from the complete image records (of ``names`` if given); return its path.

    Columns: MANIFEST_FIELDS, then ``pixels_<class slug>`` for each class (pixels of the merged
    label map), then ``overlaps``: ``A|B=n`` pairs joined by ``;`` (pixels both binary maps
    covered before merging; empty when no regions overlapped).
    """
    records = []
    for path in sorted((out / "records").glob("*.json")):
        record = read_record(out, path.stem, EXPORT_RECORD) if names is None or path.stem in names else None
        if record is not None:
            records.append(record)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS + [f"pixels_{c.slug}" for c in table] + ["overlaps"])
    for r in records:
        overlaps = ";".join(f"{o['regions'][0]}|{o['regions'][1]}={o['pixels']}" for o in r.get("overlaps", []))
        pixels = r.get("pixels", {})
        writer.writerow([r.get(k, "") for k in MANIFEST_FIELDS] + [pixels.get(c.name, 0) for c in table] + [overlaps])
    target = out / "manifest.csv"
    data = buf.getvalue().encode("utf-8")
    if not (target.is_file() and target.read_bytes() == data):  # unchanged: not rewritten (a read-only copy reruns)
        atomic_write_bytes(target, data)
    return target


def write_masks_folder(folder: Path, masks: dict[str, bytes]) -> None:
    """Write a region-name -> PNG bytes dict as ``folder/<region>.png``, the folder atomically."""
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        for slug, data in masks.items():
            (tmp / f"{slug}.png").write_bytes(data)

"""The crop dataset folder (``make-crops``, and ``augment``, which keeps the same layout): its
layout (a contract), the reader training uses, and the writers of its tables.

Layout::

    crops/settings.json                 how it was made: {"kind": "crops" | "augmented", ...}
    crops/classes.json                  class table of the crops (two classes with --task tumor)
    crops/split.csv                     the export dataset's subject-level split (name, subject, split)
    crops/train/images/<file>.png       image, lossless, bit depth kept
    crops/train/labels/<file>.png       label map, uint8 palette PNG; padding is the bottom class
    crops/val/images/..., crops/val/labels/...   the validation subjects' files
    crops/manifest.csv                  one row per file (CROP_FIELDS or AUGMENT_FIELDS, then pixels_<class>)
    crops/class_weights.json            {"classes": [{name, label, percent, weight}]}: w = 1 - x/100,
                                        x = the class's % of the training pixels
    crops/records/<item>.json           one image's crops (one crop's variants); written last

:func:`open_crop_dataset` reads either kind.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mammotools.classes import ClassTable, RegionClass, load_class_table
from mammotools.defaults import DEFAULT_COMMON, DEFAULT_PER_IMAGE, IGNORE_LABEL
from mammotools.errors import InputError, MissingFileError
from mammotools.files import atomic_write_bytes, atomic_write_text, read_csv_rows, remove_stale_temporaries
from mammotools.records import RECORDS, read_record
from mammotools.split import TRAIN, VAL

if TYPE_CHECKING:
    import numpy as np

CROP_FIELDS = [
    "crop", "split", "source", "subject", "size", "row0", "col0", "padded",
    "centre_row", "centre_col", "centre_class", "seed", "bits",
]  # fmt: skip
AUGMENT_FIELDS = ["file", "split", "crop", "source", "subject", "variant", "seed", "bits"]
ORIGINAL = "original"  # the variant name of an unaugmented file
MAKE_ONE = "make one with `mammotools make-crops DATASET --size N --out CROPS`"


@dataclass(frozen=True)
class CropSettings:
    """What a crop dataset is made with (recorded in settings.json)."""

    size: int
    per_image: int = DEFAULT_PER_IMAGE
    seed: int = 0
    task: str = "regions"
    common: tuple[str, ...] = DEFAULT_COMMON


@dataclass(frozen=True)
class CropFile:
    """One image/label pair of a crop or augmented dataset (a manifest row)."""

    name: str  # file stem: <split>/images/<name>.png and <split>/labels/<name>.png
    split: str  # "train" or "val"
    crop: str  # the crop it is, or was made from
    source: str  # the export dataset's image it was cut from
    subject: str
    variant: str  # ORIGINAL, or the augmentation variant applied
    bits: int | None  # bit depth of the image's values (12 for 12-bit data in uint16); None: not recorded
    pixels: dict[str, int]  # class name -> pixels of the label map
    image_path: Path
    label_path: Path


@dataclass(frozen=True)
class ClassWeight:
    """A class's share of the training pixels and its loss weight (the paper's w = 1 - x/100)."""

    name: str
    label: int
    percent: float
    weight: float


@dataclass
class CropDataset:
    """A make-crops or augment folder, opened."""

    path: Path
    kind: str  # "crops" or "augmented"
    table: ClassTable
    settings: dict  # settings.json as recorded
    files: list[CropFile]
    class_weights: list[ClassWeight] = field(default_factory=list)

    def split_files(self, side: str) -> list[CropFile]:
        """The files of one side, "train" or "val"."""
        return [f for f in self.files if f.split == side]

    @property
    def train(self) -> list[CropFile]:
        return self.split_files(TRAIN)

    @property
    def val(self) -> list[CropFile]:
        return self.split_files(VAL)

    @property
    def crop_settings(self) -> CropSettings | None:
        """The make-crops settings behind it (None for an augmented export dataset: whole images)."""
        recorded = self.settings.get("crop_settings", self.settings) if self.kind == "augmented" else self.settings
        values = recorded.get("settings") if isinstance(recorded, dict) else None
        if not isinstance(values, dict):
            return None
        known = {k: values[k] for k in CropSettings.__dataclass_fields__ if k in values}
        if not isinstance(known.get("size"), int):
            raise InputError(f"{self.path / 'settings.json'}: no crop size recorded; rerun make-crops with --overwrite")
        return CropSettings(**{**known, "common": tuple(known.get("common", DEFAULT_COMMON))})

    @property
    def size(self) -> int | None:
        """The crops' side in px; None when the files are whole images."""
        settings = self.crop_settings
        return settings.size if settings else None


UNFINISHED = "unfinished.json"  # while a make-crops or augment run is under way, or when some of its items failed
MADE_BY = {"crops": "make-crops", "augmented": "augment"}


def mark_unfinished(out: Path, kind: str, items: list[str]) -> None:
    """Record that a run writing ``items`` into ``out`` is under way (removed by :func:`mark_finished`
    once every item is complete): a stopped or partly failed folder is refused by its readers."""
    atomic_write_text(out / UNFINISHED, json.dumps({"command": MADE_BY[kind], "items": sorted(items)}, indent=1))


def mark_finished(out: Path) -> None:
    """Every item of the run is complete."""
    if (out / UNFINISHED).exists():
        (out / UNFINISHED).unlink()


def _refuse_unfinished(path: Path, kind: str) -> None:
    if not (path / UNFINISHED).is_file():
        return
    try:
        count = f" ({len(json.loads((path / UNFINISHED).read_text('utf-8'))['items'])} item(s) planned)"
    except (OSError, ValueError, KeyError, TypeError):
        count = ""
    raise InputError(
        f"{path}: its {MADE_BY[kind]} run was stopped before it finished, or some of its items failed{count}; "
        f"run the same {MADE_BY[kind]} command again to finish it (fixing what failed), then use the folder"
    )


def open_crop_dataset(path: str | Path) -> CropDataset:
    """Open a make-crops or augment folder; :class:`InputError` naming the fix if ``path`` is not one.

    Files the manifest lists but that are gone are not checked here: :func:`missing_files` lists them.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: not found; give a crop dataset folder ({MAKE_ONE})")
    if path.is_file() and path.name in ("manifest.csv", "settings.json", "classes.json", "class_weights.json"):
        raise InputError(f"{path}: a file of a crop dataset; give the folder itself ({path.parent})")
    needed = [path / n for n in ("settings.json", "manifest.csv", "classes.json")]
    if not path.is_dir() or not all(p.is_file() for p in needed):
        raise InputError(f"{path}: not a crop dataset (needs settings.json, manifest.csv and classes.json); {MAKE_ONE}")
    settings = _read_json(path / "settings.json", "rerun the command that made it with --overwrite")
    kind = folder_kind(settings)
    if kind not in ("crops", "augmented") or not isinstance(settings, dict):
        raise InputError(f"{path / 'settings.json'}: not the settings of a crop or augmented dataset; {MAKE_ONE}")
    _refuse_unfinished(path, kind)
    table = load_class_table(path / "classes.json")
    files = _read_manifest(path, kind, table)
    weights_file = path / "class_weights.json"
    weights = read_class_weights(weights_file) if weights_file.is_file() else []
    return CropDataset(path, kind, table, settings, files, weights)


def _read_json(path: Path, fix: str) -> object:
    try:
        return json.loads(path.read_text("utf-8-sig"))
    except FileNotFoundError:
        raise MissingFileError(f"{path}: not found; {fix}") from None
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{path}: cannot be read ({exc.__class__.__name__}); {fix}") from None


# Whole-number columns of a manifest and their least value (a column an older folder lacks is not checked).
_INT_COLUMNS = {"size": 1, "row0": None, "col0": None, "centre_row": 0, "centre_col": 0, "seed": 0}
MAX_BITS = 16  # uint16, the deepest images read


def _read_manifest(path: Path, kind: str, table: ClassTable) -> list[CropFile]:
    manifest = path / "manifest.csv"
    key = "crop" if kind == "crops" else "file"
    fix = "rerun the command that made it with --overwrite"
    try:
        fieldnames, rows = read_csv_rows(manifest, fix)
    except OSError as exc:
        raise InputError(f"{manifest}: cannot be read ({exc.strerror or exc.__class__.__name__}); {fix}") from None
    if not rows or key not in fieldnames:
        raise InputError(f"{manifest}: holds no crop; run {'make-crops' if kind == 'crops' else 'augment'} first")
    files = []
    for line, row in enumerate(rows, start=2):
        try:
            name, side = row[key], row["split"]
            if side not in (TRAIN, VAL) or not name or "/" in name or None in (row.get("crop"), row.get("source")):
                raise ValueError(f"split {side!r}, name {name!r}, or columns missing")
            for column, least in _INT_COLUMNS.items():
                if row.get(column):  # empty: not recorded (a whole image's seed)
                    _whole_number(row[column], column, least)
            bits = row.get("bits") or ""
            files.append(
                CropFile(
                    name=name,
                    split=side,
                    crop=row["crop"],
                    source=row["source"],
                    subject=row.get("subject") or "",
                    variant=row.get("variant") or ORIGINAL,
                    bits=_whole_number(bits, "bits", 1, MAX_BITS) if bits else None,
                    pixels={c.name: _whole_number(row.get(f"pixels_{c.slug}") or "0", f"pixels_{c.slug}", 0) for c in table},
                    image_path=path / side / "images" / f"{name}.png",
                    label_path=path / side / "labels" / f"{name}.png",
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{manifest}:{line}: damaged row ({exc}); rerun the command that made it with --overwrite") from None
    return files


def _whole_number(text: str | None, column: str, least: int | None, most: int | None = None) -> int:
    """``text`` as an int in [least, most]; ValueError naming the column otherwise."""
    try:
        value: int | None = int(text or "")
    except ValueError:
        value = None
    if value is None or (least is not None and value < least) or (most is not None and value > most):
        valid = "a whole number" if least is None else f"{least}..{most}" if most is not None else f"a whole number >= {least}"
        raise ValueError(f"{column} {text!r}: must be {valid}")
    return value


def checked_bits(recorded: int | None, image: np.ndarray, path: Path, fix: str = "rerun make-crops with --overwrite") -> int:
    """The bit depth to treat ``image`` (decoded from ``path``) as: ``recorded`` (a manifest's)
    checked against the pixels, else found from them. A depth the file's dtype cannot hold
    (12 for uint8), or below its largest value, is an :class:`InputError` naming the file and ``fix``."""
    from mammotools.images import image_bits

    if not recorded:
        return image_bits(image)
    most = 8 * image.dtype.itemsize
    top = int(image.max()) if image.size else 0
    if not 1 <= recorded <= most or top > (1 << recorded) - 1:
        raise InputError(
            f"{path}: the manifest records {recorded}-bit values, but the file holds {image.dtype} values up to {top}; {fix}"
        )
    return recorded


def missing_files(dataset: CropDataset) -> list[tuple[str, str]]:
    """(name, message) for each listed file whose image or label is gone."""
    out = []
    for f in dataset.files:
        lost = [p for p in (f.image_path, f.label_path) if not p.is_file()]
        if lost:
            out.append((f.name, f"{lost[0]}: listed in the manifest but missing; rerun the command that made it"))
    return out


def read_class_weights(path: str | Path) -> list[ClassWeight]:
    """The classes of a ``class_weights.json``, in table order."""
    path = Path(path)
    data = _read_json(path, "rerun make-crops (or augment) to rewrite it")
    try:
        assert isinstance(data, dict)
        return [ClassWeight(str(c["name"]), int(c["label"]), float(c["percent"]), float(c["weight"])) for c in data["classes"]]
    except (AssertionError, KeyError, TypeError, ValueError):
        raise InputError(f"{path}: not a class weights file; rerun make-crops (or augment) to rewrite it") from None


def two_class_table(table: ClassTable) -> tuple[ClassTable, list[int]]:
    """The tumor-vs-rest table and the lookup (256 entries) mapping labels into it."""
    tumor = table.find("Tumor")
    if tumor is None:
        raise InputError(f"--task tumor needs a class named Tumor; the dataset's classes are {', '.join(table.names)}")
    out = ClassTable(
        [RegionClass("Tumor", 1, tumor.color, 1, tumor.smooth), RegionClass("Non-tumor", 0, (0, 0, 0), 2, False)],
        source="two-class task",
    )
    lut = [0] * 256
    lut[tumor.label] = 1
    lut[IGNORE_LABEL] = IGNORE_LABEL
    return out, lut


def write_records_manifest(out: Path, key: str, fields: list[str], table: ClassTable, shape: object = None) -> list[dict]:
    """``out/manifest.csv`` from the ``key`` lists of every ``out/records/*.json``: ``fields``,
    then ``pixels_<class>`` per class; returns the rows. A damaged record is left out (its item
    is redone on the next run)."""
    rows: list[dict] = []
    for path in sorted((out / "records").glob("*.json")):
        record = read_record(out, path.stem, shape)
        if record is not None and isinstance(record.get(key), list):
            rows.extend(record[key])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fields + [f"pixels_{c.slug}" for c in table])
    for row in rows:
        writer.writerow([row.get(k, "") for k in fields] + [row["pixels"].get(c.name, 0) for c in table])
    atomic_write_bytes(out / "manifest.csv", buf.getvalue().encode("utf-8"))
    return rows


def class_weights(table: ClassTable, rows: list[dict]) -> list[dict]:
    """Per class: share x (%) of the training files' pixels and weight w = 1 - x/100 (paper, 3.5)."""
    totals = {c.name: 0 for c in table}
    for row in rows:
        if row["split"] == TRAIN:
            for name, n in row["pixels"].items():
                totals[name] = totals.get(name, 0) + n
    all_pixels = sum(totals.values()) or 1
    return [
        {"name": c.name, "label": c.label, "percent": 100 * totals[c.name] / all_pixels,
         "weight": 1 - totals[c.name] / all_pixels}
        for c in table
    ]  # fmt: skip


def write_class_weights(out: Path, table: ClassTable, rows: list[dict]) -> None:
    """Write class_weights.json for the training step."""
    atomic_write_text(out / "class_weights.json", json.dumps({"classes": class_weights(table, rows)}, indent=1))


def split_files(out: Path, items: list[dict], key: str) -> list[Path]:
    """``out/<split>/{images,labels}/<item[key]>.png`` for each listed item: the files of a
    make-crops or augment record (items with an odd split or a path in the name are skipped)."""
    return [
        out / item["split"] / kind / f"{item[key]}.png"
        for item in items
        if item.get("split") in ("train", "val") and "/" not in str(item.get(key, "/"))
        for kind in ("images", "labels")
    ]


def folder_kind(settings: object) -> str | None:
    """ "crops" or "augmented" from a settings.json (folders made before the "kind" key was
    written are recognised by their keys), or None."""
    if not isinstance(settings, dict):
        return None
    if "kind" in settings:
        return str(settings["kind"])
    return "augmented" if "variants" in settings else "crops" if "settings" in settings else None


def check_split_folder(out: Path, kind: str, recorded: dict | None, overwrite: bool, source: Path) -> None:
    """Refuse an ``out`` that :func:`prepare_split_folder` would refuse, writing nothing (so a wrong
    ``--out`` is refused before the split is drawn). ``recorded`` None: its settings are not known yet."""
    settings_file = out / "settings.json"
    if out.exists() and out.resolve() == source.resolve():
        raise InputError(f"--out {out}: is the input folder itself; choose another folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder; choose another --out")
    if out.exists() and any(out.iterdir()):
        try:
            earlier = json.loads(settings_file.read_text("utf-8")) if settings_file.is_file() else None
        except (ValueError, UnicodeDecodeError):
            earlier = None
        if not isinstance(earlier, dict) or folder_kind(earlier) != kind:
            raise InputError(f"{out}: not empty and not a folder of {kind} made by this command; choose an empty or new --out")
        if recorded is not None and {**earlier, "kind": kind} != recorded and not overwrite:  # older folders compare equal
            raise InputError(
                f"{settings_file}: made with other settings or from another input; pass --overwrite to remake it, "
                "or choose another --out"
            )


def prepare_split_folder(out: Path, kind: str, recorded: dict, overwrite: bool, source: Path) -> None:
    """Make ``out`` ready for a make-crops or augment run (``kind``: "crops" or "augmented").

    ``out`` must be new, empty, or a folder this same command made (its ``settings.json`` says
    ``kind``): never the input, never a dataset of another kind, whatever ``--overwrite`` says.
    Other settings than ``recorded`` need ``overwrite``, which then clears the earlier outputs.
    """
    check_split_folder(out, kind, recorded, overwrite, source)
    if overwrite:  # everything is remade: earlier outputs must not linger beside the new ones
        for sub in (RECORDS, "train", "val"):
            shutil.rmtree(out / sub, ignore_errors=True)
    # settings.json first: it marks the folder as this command's, so a run stopped right after
    # (a full disk) leaves a folder that the rerun recognises and completes.
    atomic_write_text(out / "settings.json", json.dumps(recorded, indent=1))
    for sub in (RECORDS, "train/images", "train/labels", "val/images", "val/labels"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)

"""Per-item records: ``<out>/records/<name>.json``, written last, mark an item's outputs complete.

Every command that writes many files (export-qupath, make-crops, augment) keeps one record per
item listing what it wrote. Before an item is redone its old record goes first, then the files it
lists, so an interrupted redo is never mistaken for a complete one and no stale file outlives
its record (a crop that moved to the validation side leaves nothing behind in training).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

RECORDS = "records"

FilesOf = Callable[[Path, dict], Iterable[Path]]  # (out, record) -> the files and folders it stands for


# The shape of each command's records (see well_formed): a record of another shape (edited,
# damaged) counts as missing, so its item is redone.
EXPORT_RECORD = {"name": str, "fingerprint": str, "regions": [str], "pixels": {"*": int},
                 "overlaps": [{"regions": [str], "pixels": int}]}  # fmt: skip
CROP_ENTRY = {"crop": str, "split": str, "source": str, "subject": str, "seed": int, "pixels": {"*": int}}
CROPS_RECORD = {"name": str, "split": str, "source_fingerprint": str, "crops": [CROP_ENTRY]}
AUGMENT_ENTRY = {"file": str, "split": str, "crop": str, "source": str, "variant": str, "pixels": {"*": int}}
AUGMENT_RECORD = {"crop": str, "split": str, "outputs": [AUGMENT_ENTRY]}


def well_formed(value: object, shape: object) -> bool:
    """Whether ``value`` has ``shape``: a type; ``[shape]``, a list of such; ``{"*": shape}``, a
    dict of str to such; ``{key: shape, ...}``, a dict with at least those keys."""
    if isinstance(shape, type):
        return isinstance(value, shape) and not (shape is int and isinstance(value, bool))
    if isinstance(shape, list):
        return isinstance(value, list) and all(well_formed(v, shape[0]) for v in value)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return False
        if "*" in shape:
            return all(isinstance(k, str) and well_formed(v, shape["*"]) for k, v in value.items())
        return all(k in value and well_formed(value[k], s) for k, s in shape.items())
    return True


def read_record(out: Path, name: str, shape: object = None) -> dict | None:
    """The record of ``name`` in ``out``, or None if it has none (or a damaged one, or one not of
    ``shape``: not complete)."""
    path = out / RECORDS / f"{name}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        return None
    if not isinstance(record, dict) or (shape is not None and not well_formed(record, shape)):
        return None
    return record


def forget(out: Path, name: str, files_of: FilesOf, fallback: dict | None = None) -> None:
    """Delete ``name``'s record, then every file it lists (the record first: see module doc).

    ``fallback`` stands in for a record that is missing or damaged, where the files can be
    named without it (an export's are named after the image).
    """
    record = read_record(out, name) or fallback
    (out / RECORDS / f"{name}.json").unlink(missing_ok=True)
    if record is None:
        return
    try:
        paths = list(files_of(out, record))
    except (TypeError, AttributeError, KeyError, ValueError):  # a damaged record: its files cannot be named
        paths = list(files_of(out, fallback)) if fallback is not None else []
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def files_present(out: Path, record: dict, files_of: FilesOf) -> bool:
    """Whether every file a record lists is still there and whole (else the item is redone): a
    PNG must also pass :func:`pngs_complete`, so a file cut short by a crash is remade."""
    files = list(files_of(out, record))
    return all(p.exists() for p in files) and pngs_complete(p for p in files if p.suffix.lower() == ".png")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk every complete PNG ends with


def pngs_complete(paths: Iterable[Path]) -> bool:
    """Whether every file is there and looks whole: a PNG signature at the start and the IEND
    chunk at the end (a file cut short, or zero-filled after a crash, is not). Cheap: 20 bytes
    read per file, nothing decoded."""
    for p in paths:
        try:
            with open(p, "rb") as fh:
                head = fh.read(len(PNG_SIGNATURE))
                if fh.seek(0, os.SEEK_END) < len(PNG_SIGNATURE) + len(PNG_END):
                    return False
                fh.seek(-len(PNG_END), os.SEEK_END)
                tail = fh.read()
        except OSError:  # missing, a folder, unreadable
            return False
        if head != PNG_SIGNATURE or tail != PNG_END:
            return False
    return True


def leftovers(out: Path, current: set[str]) -> list[str]:
    """Names with a record in ``out`` that are not in ``current`` (no longer in the input)."""
    folder = out / RECORDS
    return sorted(p.stem for p in folder.glob("*.json") if p.stem not in current) if folder.is_dir() else []

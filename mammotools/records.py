"""Per-item records: ``<out>/records/<name>.json``, written last, mark an item's outputs complete.

Every command that writes many files (export-qupath, make-crops, augment) keeps one record per
item listing what it wrote. Before an item is redone its old record goes first, then the files it
lists, so an interrupted redo is never mistaken for a complete one and no stale file outlives
its record (a crop that moved to the validation side leaves nothing behind in training).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from mammotools.errors import InputError
from mammotools.files import atomic_write_text, remove_stale_temporaries

RECORDS = "records"

FilesOf = Callable[[Path, dict], Iterable[Path]]  # (out, record) -> the files and folders it stands for


def read_record(out: Path, name: str) -> dict | None:
    """The record of ``name`` in ``out``, or None if it has none (or a damaged one: not complete)."""
    path = out / RECORDS / f"{name}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def forget(out: Path, name: str, files_of: FilesOf, fallback: dict | None = None) -> None:
    """Delete ``name``'s record, then every file it lists (the record first: see module doc).

    ``fallback`` stands in for a record that is missing or damaged, where the files can be
    named without it (an export's are named after the image).
    """
    record = read_record(out, name) or fallback
    (out / RECORDS / f"{name}.json").unlink(missing_ok=True)
    if record is None:
        return
    for path in files_of(out, record):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def split_files(out: Path, items: list[dict], key: str) -> list[Path]:
    """``out/<split>/{images,labels}/<item[key]>.png`` for each listed item: the files of a
    make-crops or augment record (items with an odd split or a path in the name are skipped)."""
    return [
        out / item["split"] / kind / f"{item[key]}.png"
        for item in items
        if item.get("split") in ("train", "val") and "/" not in str(item.get(key, "/"))
        for kind in ("images", "labels")
    ]


def files_present(out: Path, record: dict, files_of: FilesOf) -> bool:
    """Whether every file a record lists is still there (else the item is redone)."""
    return all(p.exists() for p in files_of(out, record))


def leftovers(out: Path, current: set[str]) -> list[str]:
    """Names with a record in ``out`` that are not in ``current`` (no longer in the input)."""
    folder = out / RECORDS
    return sorted(p.stem for p in folder.glob("*.json") if p.stem not in current) if folder.is_dir() else []


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
    for sub in (RECORDS, "train/images", "train/labels", "val/images", "val/labels"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    atomic_write_text(out / "settings.json", json.dumps(recorded, indent=1))

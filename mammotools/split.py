"""Subjects (patients) and the subject-level train/validation hold-out.

The paper split its augmented images at random, so augmented copies of one woman's mammograms
fell on both sides. Here the hold-out is drawn over **subjects**, before cropping and
augmenting, with a seed, and recorded once in ``<dataset>/split.csv`` (``name,subject,split``);
every later command reads it, so no crop or augmented copy of a validation subject is trained on.

A subject comes from, in order: a user CSV (``--subjects``, columns ``name,subject``), the
dataset manifest's ``subject`` column (the QuPath project's ``subject``/``patient`` metadata),
or the image name: a CBIS-DDSM patient id where there is one (``Calc-Test_P_00038_RIGHT_CC`` ->
``P_00038``), else the name with view and laterality tokens removed (``case12-L-MLO`` ->
``case12``, ``A_0002_1.RIGHT_MLO`` -> ``A_0002_1``).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from mammotools.defaults import DEFAULT_VAL_FRACTION
from mammotools.errors import InputError, MissingFileError
from mammotools.files import create_exclusively

SPLIT_FILE = "split.csv"
TRAIN, VAL = "train", "val"
VIEW_TOKENS = frozenset("l r left right cc mlo ml lm lmo xccl xccm at fb sio rcc lcc rmlo lmlo view".split())


CBIS_PATIENT = re.compile(r"P_\d{5}")  # CBIS-DDSM: Mass-Training_P_00001_LEFT_CC, Calc-Test_P_00001_...


def subject_from_name(name: str) -> str:
    """The subject part of an image name: a CBIS-DDSM patient id (``P_00001``) where there is one,
    else the name with view and laterality tokens removed."""
    cbis = CBIS_PATIENT.search(name)
    if cbis:
        return cbis.group(0)
    tokens = re.split(r"([_.\- ]+)", name)
    kept: list[str] = []
    for i in range(0, len(tokens), 2):
        if tokens[i].lower() in VIEW_TOKENS:
            continue
        if kept:
            kept.append(tokens[i - 1])
        kept.append(tokens[i])
    subject = "".join(kept).strip("_.- ")
    return subject or name


def read_subjects_csv(path: Path) -> dict[str, str]:
    """``name -> subject`` from a CSV with columns ``name`` and ``subject``; a name given twice
    with two different subjects is refused (the same row twice is accepted)."""
    if not path.exists():
        raise MissingFileError(f"{path}: subjects file not found; give a CSV with columns name,subject")
    fieldnames, rows = _read_csv(path, "save it as a UTF-8 CSV file with columns name,subject")
    if not {"name", "subject"} <= set(fieldnames):
        raise InputError(f"{path}: needs the columns name,subject (found {fieldnames or None})")
    out: dict[str, str] = {}
    line_of: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        name, subject = (row.get("name") or "").strip(), (row.get("subject") or "").strip()
        if not name or not subject:
            continue
        if name in out and out[name] != subject:
            raise InputError(
                f"{path}:{line}: {name!r} is listed again with another subject ({out[name]!r} at line "
                f"{line_of[name]}, {subject!r} here); keep one row per image"
            )
        out[name] = subject
        line_of.setdefault(name, line)
    return out


def _read_csv(path: Path, fix: str) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of a CSV file a user may have edited: unreadable or non-UTF-8 files are
    one :class:`InputError` naming the file and ``fix``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MissingFileError(f"{path}: not found; {fix}") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a CSV file; {fix}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start} cannot be decoded); {fix}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc.__class__.__name__}); {fix}") from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        return list(reader.fieldnames or []), list(reader)
    except csv.Error as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc}); {fix}") from None


def draw_split(subjects: list[str], val_fraction: float, seed: int) -> dict[str, str]:
    """``subject -> "train" | "val"``: a seeded shuffle of the sorted subjects, the first
    ``round(val_fraction * n)`` (at least one when there are two or more) to validation."""
    unique = sorted(set(subjects))
    if not 0 <= val_fraction < 1:
        raise InputError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(unique))
    n_val = round(val_fraction * len(unique))
    if val_fraction > 0 and len(unique) >= 2:
        n_val = min(max(n_val, 1), len(unique) - 1)
    val = {unique[i] for i in order[:n_val]}
    return {s: (VAL if s in val else TRAIN) for s in unique}


def read_split(path: Path) -> dict[str, tuple[str, str]]:
    """``name -> (subject, split)`` from a split.csv, checked: known sides, one side per subject."""
    fix = "fix the file or delete it to redraw the split"
    fieldnames, rows = _read_csv(path, fix)
    if not {"name", "subject", "split"} <= set(fieldnames):
        raise InputError(f"{path}: needs the columns name,subject,split (found {fieldnames or None}); {fix}")
    recorded: dict[str, tuple[str, str]] = {}
    side_of: dict[str, tuple[str, int]] = {}
    for line, row in enumerate(rows, start=2):
        name, subject, split = (row.get(k) or "" for k in ("name", "subject", "split"))
        if split not in (TRAIN, VAL):
            raise InputError(f"{path}:{line}: split {split!r} for {name!r}; it must be {TRAIN} or {VAL}; {fix}")
        if not name or not subject:
            raise InputError(f"{path}:{line}: empty name or subject; {fix}")
        if subject in side_of and side_of[subject][0] != split:
            raise InputError(
                f"{path}:{line}: subject {subject!r} is on both sides ({side_of[subject][0]} at line "
                f"{side_of[subject][1]}, {split} here); a subject's images must all be on one side; {fix}"
            )
        side_of.setdefault(subject, (split, line))
        recorded[name] = (subject, split)
    return recorded


def load_or_draw_split(
    dataset: Path,
    subjects: dict[str, str],
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
) -> dict[str, tuple[str, str]]:
    """``name -> (subject, split)`` for the images of ``subjects``, drawing and recording the
    split in ``dataset/split.csv`` the first time, reading it afterwards."""
    path = dataset / SPLIT_FILE
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: is a folder, not the split file; remove it so that the split is drawn and recorded there")
    if not path.is_file():
        by_subject = draw_split(list(subjects.values()), val_fraction, seed)
        rows = {name: (subj, by_subject[subj]) for name, subj in sorted(subjects.items())}
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["name", "subject", "split"])
        writer.writerows([name, subj, split] for name, (subj, split) in rows.items())
        if create_exclusively(path, buf.getvalue().encode("utf-8")):
            return rows
        # another run (make-crops or augment into another --out) recorded its split first: use that one
    recorded = read_split(path)
    subject_split = {subj: split for subj, split in recorded.values()}
    out = {}
    for name, subj in subjects.items():
        if name in recorded and recorded[name][0] != subj:
            raise InputError(
                f"{path}: records {name!r} as subject {recorded[name][0]!r}, now it is {subj!r}; "
                "the split must not change under a dataset: fix the subjects, or delete split.csv to redraw it"
            )
        if subj not in subject_split:
            raise InputError(
                f"{path}: subject {subj!r} (image {name!r}) is not in the recorded split; delete split.csv "
                "to redraw the split over all subjects (this changes the validation set)"
            )
        out[name] = (subj, subject_split[subj])
    return out


FOLD_SEED = 0  # folds are drawn once per dataset: every model, seed and run of a benchmark shares them


def draw_folds(subjects: list[str], folds: int, seed: int = FOLD_SEED) -> dict[str, int]:
    """``subject -> fold`` (1..folds) for cross-validation by subject: a seeded shuffle of the
    sorted subjects dealt round-robin, so fold sizes differ by at most one subject."""
    unique = sorted(set(subjects))
    if not 2 <= folds <= len(unique):
        raise InputError(
            f"--folds {folds}: give 2 to {len(unique)} (the number of subjects); each fold holds out at least one subject"
        )
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[int(i)]: position % folds + 1 for position, i in enumerate(order)}


def fold_sides(split: dict[str, tuple[str, str]], folds: int, fold: int) -> dict[str, str]:
    """``name -> "train" | "val"`` of fold ``fold`` of ``folds``: its subjects are validation, all
    the others training. ``split``: a split.csv as :func:`read_split` reads it (every subject of
    the dataset, whichever side the hold-out put it on)."""
    if not 1 <= fold <= folds:
        raise InputError(f"--fold {fold}: give 1 to {folds}")
    fold_of = draw_folds([subject for subject, _ in split.values()], folds)
    return {name: (VAL if fold_of[subject] == fold else TRAIN) for name, (subject, _) in split.items()}

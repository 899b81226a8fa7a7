"""Finding a project's image files on this machine.

QuPath stores absolute ``file:`` URIs from the annotator's machine. An image is looked up, in
order: by file name in the ``--images`` folder (searched recursively, hidden folders and the
output folder left out; where several files share the name, as every ``1-1.dcm`` of CBIS-DDSM
does, the one whose folders end like the recorded path's), by stem there (so ``mammo_01.dcm`` is found for an entry called
``mammo_01.png``), by the file name of the project's URI (an image renamed in QuPath), then at
the project's URI itself if that path exists here.
"""

from __future__ import annotations

import os
from pathlib import Path

from mammotools.errors import InputError
from mammotools.files import image_stem
from mammotools.images import is_image_file


class ImageIndex:
    """Image files under a folder, by name and by stem (built once, looked up many times)."""

    def __init__(self, folder: Path | None, exclude: Path | None = None) -> None:
        self.folder = folder
        self.by_name: dict[str, list[Path]] = {}
        self.by_stem: dict[str, list[Path]] = {}
        if folder is None:
            return
        for root, dirs, files in os.walk(folder):
            # skip hidden folders, the output folder and any other mammotools dataset (one may sit
            # inside the images: its PNGs are outputs, not images to find)
            dirs[:] = sorted(
                d
                for d in dirs
                if not d.startswith(".")
                and (exclude is None or Path(root, d).resolve() != exclude)
                and not _is_dataset(Path(root, d))
            )
            for name in sorted(files):
                p = Path(root, name)
                if not name.startswith(".") and is_image_file(p):
                    self.by_name.setdefault(name, []).append(p)
                    self.by_stem.setdefault(image_stem(name), []).append(p)

    def find(self, name: str, hint: Path | None = None) -> Path | None:
        """The image file for QuPath image ``name`` (or for the file name of ``hint``, the path the
        project recorded, for an image renamed in QuPath); raises if the name is ambiguous."""
        keys = [(self.by_name, Path(name).name), (self.by_stem, image_stem(name))]
        if hint is not None:
            keys += [(self.by_name, hint.name), (self.by_stem, image_stem(hint.name))]
        for table, key in keys:
            found = table.get(key, [])
            if len(found) > 1 and hint is not None:
                found = _closest(found, hint)
            if len(found) > 1:
                listed = ", ".join(str(p) for p in found[:5])
                raise InputError(
                    f"{self.folder}: image {name!r} matches several files ({listed}); "
                    "keep one or point --images at a folder that holds one"
                )
            if found:
                return found[0]
        if hint is not None and hint.is_file():
            return hint
        return None


def _is_dataset(folder: Path) -> bool:
    """A folder mammotools wrote (export, crops or augment): a class table beside a manifest, a
    settings file or per-item records (a killed run may not have written its manifest yet)."""
    return (folder / "classes.json").is_file() and (
        (folder / "manifest.csv").is_file() or (folder / "settings.json").is_file() or (folder / "records").is_dir()
    )


def _closest(candidates: list[Path], hint: Path) -> list[Path]:
    """The candidates sharing the most trailing path components with ``hint`` (the annotator's
    path): ``.../P_00001_LEFT_CC/1-1.dcm`` picks the copy under a ``P_00001_LEFT_CC`` folder."""
    hint_parts = hint.parts[::-1]

    def shared(p: Path) -> int:
        n = 0
        for a, b in zip(p.parts[::-1], hint_parts, strict=False):
            if a != b:
                break
            n += 1
        return n

    best = max(shared(p) for p in candidates)
    if best < 2:  # the file name alone: no folder tells them apart
        return candidates
    return [p for p in candidates if shared(p) == best]


def distinct_names(paths: list[Path], name_of: dict[Path, str]) -> dict[Path, str]:
    """Output names for images whose stems collide: the first folder that tells them apart is
    put in front (``Mass-Training_P_00001_LEFT_CC_1-1``); unique stems keep their name."""
    groups: dict[str, list[Path]] = {}
    for p in paths:
        groups.setdefault(name_of[p], []).append(p)
    out = dict(name_of)
    for name, group in groups.items():
        if len(group) < 2:
            continue
        parents = [p.parent.parts for p in group]
        common = 0
        while all(len(q) > common for q in parents) and len({q[common] for q in parents}) == 1:
            common += 1
        first = [q[common] if len(q) > common else "" for q in parents]
        use_first = len(set(first)) == len(first)  # one folder tells them apart: use it alone
        for p, q, f in zip(group, parents, first, strict=True):
            prefix = f if use_first else "_".join(q[common:])
            out[p] = f"{prefix}_{name}" if prefix else name
        if len({out[p] for p in group}) < len(group):  # still not told apart: keep the clash visible
            for p in group:
                out[p] = name
    return out

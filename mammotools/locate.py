"""Finding a project's image files on this machine.

QuPath stores absolute ``file:`` URIs from the annotator's machine. An image is looked up, in
order: by file name in the ``--images`` folder (searched recursively), by stem there (so
``mammo_01.dcm`` is found for an entry called ``mammo_01.png``), then at the project's URI if
that path exists here.
"""

from __future__ import annotations

from pathlib import Path

from mammotools.errors import InputError
from mammotools.files import image_stem
from mammotools.images import is_image_file


class ImageIndex:
    """Image files under a folder, by name and by stem (built once, looked up many times)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.by_name: dict[str, list[Path]] = {}
        self.by_stem: dict[str, list[Path]] = {}
        if folder is None:
            return
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.name.startswith(".") and is_image_file(p):
                self.by_name.setdefault(p.name, []).append(p)
                self.by_stem.setdefault(image_stem(p.name), []).append(p)

    def find(self, name: str, hint: Path | None = None) -> Path | None:
        """The image file for QuPath image ``name``; raises if the name is ambiguous."""
        for table, key in ((self.by_name, Path(name).name), (self.by_stem, image_stem(name))):
            found = table.get(key, [])
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

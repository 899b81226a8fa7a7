"""What ``predict`` reads: a folder of images (PNG, TIFF, PGM, DICOM), one image file, or a
QuPath project, whose entries' images are found as export-qupath finds them (``--images``, then
the project's own paths) and whose annotations are kept beside the predicted ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mammotools.errors import InputError, MissingFileError, printable
from mammotools.files import image_stem
from mammotools.images import is_image_file, name_problem
from mammotools.locate import ImageIndex
from mammotools.qupath import SourceImage, open_source


@dataclass
class PredictInput:
    """One image to predict: its name in the outputs, its file, and its project entry (if any)."""

    name: str
    path: Path | None  # None: the project's image was not found here (the problem says why)
    entry: SourceImage | None = None
    problem: str | None = None


@dataclass
class Inputs:
    images: list[PredictInput]
    project: Path | None  # the QuPath project read, when a project was given


def is_project(path: Path) -> bool:
    return path.suffix == ".qpproj" or (path.is_dir() and (path / "project.qpproj").is_file())


def find_inputs(path: str | Path, images_dir: str | Path | None = None, exclude: Path | None = None) -> Inputs:
    """The images ``path`` names (a folder of images, one image, or a QuPath project)."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: not found; give a folder of images, an image file or a QuPath project")
    if images_dir is not None and not is_project(path):
        raise InputError(f"--images {images_dir}: applies to a QuPath project; {path} is not one (give its images as SOURCE)")
    if images_dir is not None and not Path(images_dir).is_dir():
        raise MissingFileError(f"--images {images_dir}: not a folder; give the folder that holds the project's images")
    if is_project(path):
        source = open_source(path)
        index = ImageIndex(Path(images_dir), exclude) if images_dir else None
        found = []
        for entry in source.images:
            hint = entry.image_path_hint
            image = index.find(entry.name, hint) if index else (hint if hint is not None and hint.is_file() else None)
            problem = None
            if image is not None and name_problem(image):
                problem, image = name_problem(image), None
            if image is None and problem is None:
                where = f"in {images_dir}" if images_dir else f"at {hint or entry.image_uri}"
                problem = f"image {entry.name!r} of {path} not found {where}; give --images FOLDER that holds it"
            found.append(PredictInput(printable(image_stem(entry.name)), image, entry, problem))
        if not found:
            raise InputError(f"{path}: the project has no images")
        seen: dict[str, SourceImage] = {}
        for item in found:
            assert item.entry is not None
            if item.name in seen:
                raise InputError(
                    f"{path}: entries {seen[item.name].entry_id} and {item.entry.entry_id} are both named "
                    f"{item.entry.name!r}; rename one in QuPath (the outputs are named after the images)"
                )
            seen[item.name] = item.entry
        return Inputs(found, source.path)
    if path.is_file():
        if not is_image_file(path):
            raise InputError(f"{path}: not an image this toolkit reads (PNG, TIFF, PGM, DICOM)")
        if name_problem(path):
            raise InputError(str(name_problem(path)))
        return Inputs([PredictInput(image_stem(path.name), path)], None)
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_file(p))
    if not files:
        raise InputError(f"{path}: no image files (PNG, TIFF, PGM, DICOM) in the folder; give a folder of images or a project")
    names = [printable(image_stem(p.name)) for p in files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"{path}: several files share the name {twice[0]!r} (e.g. .png and .dcm); keep one of them")
    # a name that is not UTF-8 is read like any other, but names no output: that image fails alone
    return Inputs([_image(name, p) for name, p in zip(names, files, strict=True)], None)


def _image(name: str, path: Path) -> PredictInput:
    problem = name_problem(path)
    return PredictInput(name, None, problem=problem) if problem else PredictInput(name, path)

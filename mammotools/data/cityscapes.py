"""Cityscapes, with which the paper checks its implementations (Table 9), read in its standard
layout and trained on as a crop dataset whose "crops" are the whole 2048x1024 street scenes::

    cityscapes/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    cityscapes/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

The 19 training classes are the official ``trainId`` classes (cityscapesScripts' ``labels.py``);
every other label id (void, license plate, ...) is ignored (255), as the benchmark does. Training
draws a random window of the model's input from each scene (the paper's random crop), with the
RGB pipeline of transforms.py (flip, brightness, saturation and contrast at p = 0.5 each);
validation scores the whole val scenes by sliding window. The test split has no public labels
and is not read.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mammotools.classes import ClassTable, RegionClass
from mammotools.crops import CropDataset, CropFile, open_crop_dataset
from mammotools.errors import InputError, MissingFileError
from mammotools.split import TRAIN, VAL

KIND = "cityscapes"
IMAGES, LABELS = "leftImg8bit", "gtFine"
IMAGE_SUFFIX, LABEL_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png"

# (name, label id, colour) of the 19 classes with a trainId, in trainId order.
CLASSES = (
    ("road", 7, (128, 64, 128)),
    ("sidewalk", 8, (244, 35, 232)),
    ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)),
    ("fence", 13, (190, 153, 153)),
    ("pole", 17, (153, 153, 153)),
    ("traffic light", 19, (250, 170, 30)),
    ("traffic sign", 20, (220, 220, 0)),
    ("vegetation", 21, (107, 142, 35)),
    ("terrain", 22, (152, 251, 152)),
    ("sky", 23, (70, 130, 180)),
    ("person", 24, (220, 20, 60)),
    ("rider", 25, (255, 0, 0)),
    ("car", 26, (0, 0, 142)),
    ("truck", 27, (0, 0, 70)),
    ("bus", 28, (0, 60, 100)),
    ("train", 31, (0, 80, 100)),
    ("motorcycle", 32, (0, 0, 230)),
    ("bicycle", 33, (119, 11, 32)),
)
LAYOUT_HINT = "a Cityscapes folder holds leftImg8bit/{train,val}/<city>/ and gtFine/{train,val}/<city>/"


def is_cityscapes(path: str | Path) -> bool:
    """Whether ``path`` is a folder in the Cityscapes layout."""
    path = Path(path)
    return (path / IMAGES).is_dir() and (path / LABELS).is_dir()


def cityscapes_table() -> ClassTable:
    """The 19 classes, label values = Cityscapes label ids, in trainId order (rank)."""
    return ClassTable(
        [RegionClass(name, label, colour, rank, False) for rank, (name, label, colour) in enumerate(CLASSES, start=1)],
        source="Cityscapes (19 training classes)",
    )


def _scenes(root: Path, side: str) -> list[tuple[str, str, Path, Path]]:
    """(name, city, image, label) of every scene of one side, sorted by name."""
    folder = root / IMAGES / side
    if not folder.is_dir():
        raise InputError(f"{root}: no {IMAGES}/{side}/ folder; {LAYOUT_HINT}")
    found = []
    for image in sorted(folder.glob(f"*/*{IMAGE_SUFFIX}")):
        name = image.name[: -len(IMAGE_SUFFIX)]
        city = image.parent.name
        label = root / LABELS / side / city / f"{name}{LABEL_SUFFIX}"
        if not label.is_file():
            raise MissingFileError(f"{label}: the labels of {image} are missing; {LAYOUT_HINT} (gtFine_labelIds.png files)")
        found.append((name, city, image, label))
    if not found:
        raise InputError(f"{folder}: no *{IMAGE_SUFFIX} images; {LAYOUT_HINT}")
    return found


def _label_counts(path: Path) -> np.ndarray:
    from mammotools.images import read_image

    label = read_image(path)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise InputError(f"{path}: not an 8-bit single-channel label id PNG; {LAYOUT_HINT}")
    return np.bincount(label.ravel(), minlength=256)


def _check_pair(image: Path, label: Path) -> int:
    """The shorter side of a scene, after checking from the headers that its label map is an
    8-bit grayscale PNG of the image's size (one clear line otherwise)."""
    from mammotools.images import open_pillow, read_image_size

    width, height = read_image_size(image)
    with open_pillow(label, "label id PNG", f"{LAYOUT_HINT} (gtFine_labelIds.png files)") as im:
        mode, size = im.mode, im.size
    if mode != "L":
        raise InputError(f"{label}: a {mode} image, not the 8-bit label ids (use the *_gtFine_labelIds.png files)")
    if size != (width, height):
        raise InputError(
            f"{label}: {size[0]}x{size[1]} but its image {image.name} is {width}x{height}; give the pair as released"
        )
    return min(width, height)


@functools.lru_cache(maxsize=4)
def _open(root: Path, signature: tuple[int, int]) -> CropDataset:
    table = cityscapes_table()
    files: list[CropFile] = []
    sizes = []
    sides = {side: _scenes(root, side) for side in (TRAIN, VAL)}
    both = sorted({city for _, city, _, _ in sides[TRAIN]} & {city for _, city, _, _ in sides[VAL]})
    if both:
        raise InputError(
            f"{root}: the city {both[0]!r} has scenes in both train and val, so some would be trained on and then scored; "
            "Cityscapes' val cities are its own: keep each city on one side"
        )
    for side in (TRAIN, VAL):
        scenes = sides[side]
        for _, _, image, label in scenes:  # headers only: every pair checked before anything trains
            sizes.append(_check_pair(image, label))
        with ThreadPoolExecutor(max_workers=4) as pool:  # cv2 decodes without the GIL
            counts = list(pool.map(_label_counts, [label for *_, label in scenes])) if side == TRAIN else []
        for i, (name, city, image, label) in enumerate(scenes):
            pixels = {c.name: int(counts[i][c.label]) for c in table} if counts else {c.name: 0 for c in table}
            files.append(CropFile(name, side, name, name, city, "original", 8, pixels, image, label))
    settings = {"kind": KIND, "settings": {"size": min(sizes)}, "dataset": str(root)}
    return CropDataset(root, KIND, table, settings, files)


def open_cityscapes(path: str | Path) -> CropDataset:
    """A Cityscapes folder as a crop dataset (train and val scenes, the 19 classes; the pixel
    counts of the training labels, for the class weights, are read once per process)."""
    root = Path(path).resolve()
    if not is_cityscapes(root):
        raise InputError(f"{path}: not a Cityscapes folder; {LAYOUT_HINT}")
    signature = tuple(len(list((root / IMAGES / side).glob(f"*/*{IMAGE_SUFFIX}"))) for side in (TRAIN, VAL))
    return _open(root, (signature[0], signature[1]))


def open_training_data(path: str | Path) -> CropDataset:
    """What ``train`` trains on: a make-crops or augment folder, or a Cityscapes folder."""
    if is_cityscapes(path):
        return open_cityscapes(path)
    return open_crop_dataset(path)

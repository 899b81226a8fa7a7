"""Shared fixtures: tiny synthetic QuPath projects the tests build themselves."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared(*parts: str) -> Path:
    """A path in ../shared/data, skipping the test (with the reason) where it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it sits beside the project in CI)")
    return path


def feature(geometry: dict, cls: str | None, object_type: str = "annotation", **props: object) -> dict:
    """A QuPath 0.4+ GeoJSON feature."""
    properties: dict = {"objectType": object_type, **props}
    if cls is not None:
        properties["classification"] = {"name": cls, "color": [255, 0, 0]}
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def rect(x0: float, y0: float, x1: float, y1: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def point(x: float, y: float) -> dict:
    return {"type": "Point", "coordinates": [x, y]}


def saved_server_metadata(name: str, pixels: np.ndarray) -> dict:
    """The complete server metadata QuPath writes into an entry once the image has been saved
    (the keys of a real QuPath 0.6.0 project's Bio-Formats entry; a grey image has one white channel)."""
    h, w = pixels.shape[:2]
    rgb = pixels.ndim == 3
    channels = [{"name": c, "color": col} for c, col in (("Red", -65536), ("Green", -16711936), ("Blue", -16776961))]
    return {
        "name": name,
        "width": w,
        "height": h,
        "sizeZ": 1,
        "sizeT": 1,
        "channelType": "DEFAULT",
        "isRGB": rgb,
        "pixelType": pixels.dtype.name.upper(),  # QuPath's PixelType names: UINT8, UINT16, FLOAT32...
        "levels": [{"downsample": 1.0, "width": w, "height": h}],
        "channels": channels if rgb else [{"name": "Channel 1", "color": -1}],
        "pixelCalibration": {
            "pixelWidth": {"value": 1.0, "unit": "px"},
            "pixelHeight": {"value": 1.0, "unit": "px"},
            "zSpacing": {"value": 1.0, "unit": "z-slice"},
            "timeUnit": "SECONDS",
            "timepoints": [],
        },
        "preferredTileWidth": w,
        "preferredTileHeight": h,
    }


def write_project(root: Path, images: dict[str, tuple[np.ndarray, list[dict]]], version: str = "0.5.1") -> Path:
    """Write a QuPath project: images in root/images, project in root/project, exports in annotations/.

    ``images`` maps a file name (``a.png``) to (pixels, features). URIs point to another machine,
    as in a project copied from an annotator's computer.
    """
    project = root / "project"
    (project / "annotations").mkdir(parents=True)
    (root / "images").mkdir(exist_ok=True)
    entries = []
    for i, (name, (pixels, features)) in enumerate(images.items(), start=1):
        cv2.imwrite(str(root / "images" / name), pixels)
        entries.append(
            {
                "serverBuilder": {
                    "builderType": "uri",
                    "providerClassName": "qupath.lib.images.servers.bioformats.BioFormatsServerBuilder",
                    "uri": f"file:/Users/someone/study/{name}",
                    "args": ["--series", "0"],
                    "metadata": saved_server_metadata(name, pixels),
                },
                "entryID": i,
                "imageName": name,
                "metadata": {},
            }
        )
        stem = name.rsplit(".", 1)[0]
        (project / "annotations" / f"{stem}.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    (project / "project.qpproj").write_text(json.dumps({"version": version, "images": entries}))
    return project


def make_dataset(root: Path) -> Path:
    """An export-qupath dataset of 6 images of 3 subjects (two views each), 12-bit, one small."""
    from mammotools.export import ExportSettings, export_dataset

    rng = np.random.default_rng(0)
    images = {}
    for s in range(3):
        for view in ("L_CC", "R_CC"):
            h, w = (90, 100) if (s, view) == (2, "R_CC") else (200, 300)
            pixels = rng.integers(0, 4096, (h, w)).astype(np.uint16)
            feats = [
                feature(rect(0, 0, w * 0.7, h), "Mammary gland"),
                feature(rect(10, 10, 30, 30), "Tumor"),
                feature(rect(w - 40, 0, w, 40), "Pectoral muscle"),
                feature(point(w * 0.5, h * 0.5), "Nipple"),
            ]
            images[f"s{s}_{view}.png"] = (pixels, feats)
    project = write_project(root, images)
    export_dataset(project, root / "dataset", root / "images", settings=ExportSettings(sigma=0, point_radius=4))
    return root / "dataset"


def make_cityscapes(root: Path, width: int = 160, height: int = 80) -> Path:
    """A tiny folder in the Cityscapes layout: 2 train cities of 2 scenes, 1 val city of 2 scenes.

    Each scene: sky (id 23) above, road (7) below, a car (26), a void strip (id 0) and an ego
    vehicle band (1) at the bottom; each class has its own colour, with noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    colours = {23: (70, 130, 180), 7: (128, 64, 128), 26: (0, 0, 142), 0: (0, 0, 0), 1: (20, 20, 20)}
    for side, cities in (("train", ("aachen", "bremen")), ("val", ("frankfurt",))):
        for city in cities:
            for n in range(2):
                ids = np.full((height, width), 23, np.uint8)
                ids[height // 2 :] = 7
                c0 = int(rng.integers(0, width - 40))
                ids[height // 2 - 10 : height // 2 + 10, c0 : c0 + 30] = 26
                ids[:, :4] = 0
                ids[-6:] = 1
                rgb = np.zeros((height, width, 3), np.uint8)
                for value, colour in colours.items():
                    rgb[ids == value] = colour
                rgb = np.clip(rgb.astype(int) + rng.integers(-10, 11, rgb.shape), 0, 255).astype(np.uint8)
                stem = f"{city}_{n:06d}_000019"
                (root / "leftImg8bit" / side / city).mkdir(parents=True, exist_ok=True)
                (root / "gtFine" / side / city).mkdir(parents=True, exist_ok=True)
                Image.fromarray(rgb).save(root / "leftImg8bit" / side / city / f"{stem}_leftImg8bit.png")
                Image.fromarray(ids).save(root / "gtFine" / side / city / f"{stem}_gtFine_labelIds.png")
    return root

"""How good predict's outputs are, on an output folder of ``mammotools predict``.

For every image predicted: (1) per-class Dice of the predicted label map against the truth of an
export dataset (the same images' labels/), summed over the images; (2) the round trip: the
predicted annotations in annotations/<name>.geojson read back by our own reader and rasterized
again (pixel centres, as export-qupath draws), per-class IoU against the predicted label map
(what a reviewer opening the project sees against what the model said).

    python benchmarks/predict_roundtrip.py PREDICTIONS DATASET
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mammotools.annotations import PREDICTION_NAME
from mammotools.classes import RegionClass, load_class_table
from mammotools.masks import rasterize_region
from mammotools.palette import read_label_png
from mammotools.qupath import open_source, read_annotations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", type=Path)
    parser.add_argument("dataset", type=Path)
    args = parser.parse_args()
    table = load_class_table(args.dataset / "classes.json")  # the label values the run writes are the dataset's
    names = [c.name for c in table]
    dice_parts = {n: [0, 0] for n in names}  # 2|A∩B|, |A|+|B|
    iou_parts = {n: [0, 0] for n in names if n != table.bottom.name}  # |A∩B|, |A∪B|
    source = open_source(args.predictions)
    for image in source.images:
        stem = image.stem
        predicted = read_label_png(args.predictions / "labels" / f"{stem}.png")
        truth = read_label_png(args.dataset / "labels" / f"{stem}.png")
        shapes = [a for a in read_annotations(image) if (a.name or "").startswith(PREDICTION_NAME)]
        for c in table:
            p, t = predicted == c.label, truth == c.label
            dice_parts[c.name][0] += 2 * int((p & t).sum())
            dice_parts[c.name][1] += int(p.sum() + t.sum())
            if c.name in iou_parts:
                geoms = [a.geometry for a in shapes if a.class_name == c.name]
                region = rasterize_region(RegionClass(c.name, c.label, c.color, 1, False), geoms, predicted.shape)
                drawn = region.full_size(predicted.shape) > 0 if region else np.zeros_like(p)
                iou_parts[c.name][0] += int((drawn & p).sum())
                iou_parts[c.name][1] += int((drawn | p).sum())
    result = {
        "images": len(source.images),
        "dice_vs_truth": {n: a / b if b else None for n, (a, b) in dice_parts.items()},
        "roundtrip_iou": {n: a / b if b else None for n, (a, b) in iou_parts.items()},
    }
    present = [v for v in result["dice_vs_truth"].values() if v is not None]
    result["mean_dice_vs_truth"] = sum(present) / len(present)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

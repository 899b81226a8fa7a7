"""Class balance of make-crops' balanced crops against uniformly random crops, on real data.

DDSM tissue (../shared/data/ddsm-tissue: 60 film mammograms, background / adipose /
fibroglandular / pectoral) goes through import-masks and export-qupath (smoothing off), then
make-crops --size 256 and augment; the same number of crops with uniformly random centres is
the baseline. Prints each class's share of the crops' pixels and the normalized entropy of the
shares (1 = all classes equal).

    python benchmarks/crop_balance.py [--per-image 20] [--size 256]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from mammotools.augment import augment_dataset, parse_variants
from mammotools.classes import load_class_table
from mammotools.crops import CropSettings, make_crops
from mammotools.crops.balance import manifest_pixels, normalized_entropy, uniform_crop_pixels
from mammotools.export import ExportSettings, export_dataset
from mammotools.importers import import_masks, parse_values

ROOT = Path(__file__).resolve().parents[1]
DDSM = ROOT.parent / "shared" / "data" / "ddsm-tissue"
TABLE = ROOT / "docs" / "classes" / "breast_tissue.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-image", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    table = load_class_table(TABLE)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        start = time.perf_counter()
        values = parse_values("64=Background,128=Adipose,192=Fibroglandular,255=Pectoral", table)
        import_masks(DDSM / "labels", DDSM / "images", values, t / "project", table)
        export_dataset(t / "project", t / "dataset", DDSM / "images", table=table, settings=ExportSettings(sigma=0), workers=2)
        crops = make_crops(t / "dataset", t / "crops", CropSettings(size=args.size, per_image=args.per_image), workers=2)
        aug = augment_dataset(t / "crops", t / "aug", parse_variants(None), workers=2)
        elapsed = time.perf_counter() - start
        rows = list(csv.DictReader((t / "crops" / "manifest.csv").open()))
        names, slugs = table.names, [c.slug for c in table]
        balanced = manifest_pixels(rows, names, slugs)
        uniform = uniform_crop_pixels(t / "dataset", args.size, args.per_image)
        print(
            f"DDSM tissue, 60 images: {crops.crops['train']} training + {crops.crops['val']} validation crops of "
            f"{args.size} px ({args.per_image} per image), {aug.files['train']} augmented training files; "
            f"import + export + crops + augment in {elapsed:.1f} s"
        )
        print(f"\n  {'class':<18}{'balanced crops':>16}{'uniform crops':>16}")
        for n in names:
            print(
                f"  {n:<18}{100 * balanced[n] / sum(balanced.values()):>15.1f}%{100 * uniform[n] / sum(uniform.values()):>15.1f}%"
            )
        print(f"  {'normalized entropy':<18}{normalized_entropy(balanced):>16.3f}{normalized_entropy(uniform):>16.3f}")
        b_min, u_min = (100 * min(d.values()) / sum(d.values()) for d in (balanced, uniform))
        b_ratio, u_ratio = (max(d.values()) / max(min(d.values()), 1) for d in (balanced, uniform))
        print(f"  {'smallest share':<18}{b_min:>15.1f}%{u_min:>15.1f}%")
        print(f"  {'largest/smallest':<18}{b_ratio:>16.1f}{u_ratio:>16.1f}")


if __name__ == "__main__":
    main()

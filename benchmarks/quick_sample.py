"""The README's first command on the bundled sample cohort: how long it takes, and whether the
quick benchmark's models visibly learn.

Runs export-qupath, make-crops --size 256, augment and benchmark --quick on sample_data/ (each a
separate process, as a user runs them, in a temporary folder), then prints per command its wall
seconds, and per model, side by side with the baselines a model must beat:

- pixel accuracy next to the majority-class rate of the validation images (what a model that
  paints every pixel with the most common class scores);
- the mean Dice of the large classes (those covering at least 5% of the validation pixels:
  background, mammary gland, pectoral muscle on the sample) next to that same constant model's.

    python benchmarks/quick_sample.py [--reuse FOLDER]   # FOLDER: a finished run's working folder

State the machine with the figures: the README quotes an idle 2-core x86_64 machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
LARGE_SHARE = 0.05  # a class covering at least this share of the validation pixels is "large"


def mammotools() -> list[str]:
    return [sys.executable, "-m", "mammotools"]


def run_commands(work: Path) -> dict[str, float]:
    steps = {
        "export-qupath": ["export-qupath", str(SAMPLE / "project"), "--images", str(SAMPLE / "images"), "--out", "dataset"],
        "make-crops": ["make-crops", "dataset", "--size", "256", "--out", "crops256"],
        "augment": ["augment", "crops256", "--out", "crops256-aug"],
        "benchmark --quick": ["benchmark", "dataset", "crops256-aug", "--quick", "--out", "bench-quick"],
    }
    seconds: dict[str, float] = {}
    for name, args in steps.items():
        start = time.perf_counter()
        subprocess.run([*mammotools(), *args], cwd=work, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds[name] = time.perf_counter() - start
        print(f"  {name:<20} {seconds[name]:7.1f} s", flush=True)
    return seconds


def validation_pixels(work: Path) -> dict[str, int]:
    """Pixels per class over the validation images (from the export's manifest and the split)."""
    split = {r["name"]: r["split"] for r in csv.DictReader((work / "crops256" / "split.csv").open())}
    classes = json.loads((work / "dataset" / "classes.json").read_text())
    slugs = {c["name"]: "pixels_" + "".join(ch if ch.isalnum() else "_" for ch in c["name"].lower()).strip("_") for c in classes}
    totals = dict.fromkeys(slugs, 0)
    for row in csv.DictReader((work / "dataset" / "manifest.csv").open()):
        if split.get(row["name"]) == "val":
            for name, column in slugs.items():
                totals[name] += int(row.get(column) or 0)
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", type=Path, help="the working folder of a finished run: only read its results")
    parser.add_argument("--bench", default="bench-quick", help="with --reuse: the benchmark folder in it to read")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} core(s), Python {platform.python_version()}")
    if args.reuse:
        work = args.reuse
    else:
        work = Path(tempfile.mkdtemp(prefix="quick-sample-"))
        print(f"README's first command in {work}:")
        seconds = run_commands(work)
        print(f"  {'total':<20} {sum(seconds.values()):7.1f} s ({sum(seconds.values()) / 60:.1f} min)")

    pixels = validation_pixels(work)
    total = sum(pixels.values())
    large = [c for c, n in pixels.items() if n >= LARGE_SHARE * total]
    majority = max(pixels, key=lambda c: pixels[c])
    majority_rate = pixels[majority] / total
    # The constant model's Dice: 2|A∩B|/(|A|+|B|), per large class; the majority class's is
    # 2n/(n+total), every other class's 0.
    constant_dice = sum(2 * pixels[majority] / (pixels[majority] + total) if c == majority else 0.0 for c in large) / len(large)
    print(f"validation: {total:,} pixels; large classes (>= {LARGE_SHARE:.0%}): "
          + ", ".join(f"{c} {pixels[c] / total:.0%}" for c in large))  # fmt: skip
    results = json.loads((work / args.bench / "results.json").read_text())
    print(f"\n{'model':<20} {'pixel acc':>10} {'majority':>9} {'large-class Dice':>17} {'constant':>9}")
    for model in results["models"]:
        classes = model["classes"]
        dice = sum(classes[c]["dice"] for c in large if c in classes) / len(large)
        print(f"{model['model']:<20} {model['pixel_accuracy']:>10.1%} {majority_rate:>9.1%} {dice:>17.2f} {constant_dice:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

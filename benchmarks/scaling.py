"""How data preparation scales: seconds per image of export-qupath + make-crops + augment with 1
and 2 local worker processes and on a local Dask cluster of 2 worker processes, for 10, 40 and
160 small images (640x800, 12-bit, 5 classes), so that the cost of starting workers is known and
seen amortised. Each configuration runs in this process through the library, as the commands do.

    python benchmarks/scaling.py [--counts 10,40,160] [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import feature, rect, write_project

from mammotools.augment import augment_dataset
from mammotools.crops import CropSettings, make_crops
from mammotools.export import ExportSettings, export_dataset
from mammotools.runner import use_scheduler


def make_project(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    images = {}
    for i in range(n):
        pixels = rng.integers(0, 4096, (800, 640)).astype(np.uint16)
        features = [feature(rect(0, 0, 500, 800), "Mammary gland"), feature(rect(40, 40, 160, 200), "Tumor"),
                    feature(rect(0, 0, 120, 300), "Pectoral muscle"), feature(rect(300, 500, 340, 540), "Calcifications"),
                    feature(rect(600, 700, 640, 800), "Text")]  # fmt: skip
        images[f"p{i // 2:04d}_{'LR'[i % 2]}_CC.png"] = (pixels, features)
    return write_project(root, images)


def pipeline(root: Path, tag: str, workers: int) -> float:
    start = time.perf_counter()
    export_dataset(root / "project", root / f"ds-{tag}", root / "images", settings=ExportSettings(), workers=workers)
    make_crops(root / f"ds-{tag}", root / f"c-{tag}", CropSettings(size=256, per_image=10), workers=workers)
    augment_dataset(root / f"c-{tag}", root / f"a-{tag}", ("flip_lr", "noise", "rotate_cw"), workers=workers)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="10,40,160")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    from distributed import LocalCluster

    counts = [int(c) for c in args.counts.split(",")]
    print(f"export-qupath + make-crops 256 (10 per image) + augment (3 variants), 640x800 images; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; seconds per image, median of {args.runs}")  # fmt: skip
    print(f"  {'images':>7}{'1 process':>12}{'2 processes':>13}{'Dask, 2 workers':>17}")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for n in counts:
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                make_project(root, n)
                times: dict[str, list[float]] = {"1": [], "2": [], "dask": []}
                for r in range(args.runs):
                    times["1"].append(pipeline(root, f"one{r}", 1) / n)
                    times["2"].append(pipeline(root, f"two{r}", 2) / n)
                    with use_scheduler(cluster.scheduler_address):
                        times["dask"].append(pipeline(root, f"dask{r}", 0) / n)
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"  {n:>7}{med['1']:>12.3f}{med['2']:>13.3f}{med['dask']:>17.3f}")


if __name__ == "__main__":
    main()

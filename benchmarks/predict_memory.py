"""Peak memory of predict's per-image work, per pixel: bands of rows against whole-image arrays.

Each method in a fresh process, from a decoded 16-bit grey image to what predict writes (the
label map PNG, the traced shapes with their mean probability), with a small conv net of
``--classes`` outputs, windows of ``--window`` px, overlap 0.5:

* whole (baseline, predict before issue 20): the plain full-image float32 accumulators of
  mammotools.inference.sliding_window_scores, a float copy of the image, the (classes, H, W)
  probabilities, their int64 argmax;
* strips (predict now): mammotools.inference.strips: the image read, blended and reduced a band
  of rows at a time; kept per pixel: class index and its probability.

Printed: peak resident memory above the process's resident memory before the work (``ru_maxrss``),
per pixel, medians of ``--runs``; seconds; how many pixels the two label maps agree on.

    python benchmarks/predict_memory.py [--sizes 2000,3000] [--classes 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def resident_bytes() -> int:
    import os

    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(method: str, side: int, args: argparse.Namespace, out: Path) -> None:
    import numpy as np
    import torch
    from torch import nn

    from mammotools.data import OUTSIDE_IMAGE, scale_image
    from mammotools.images import image_bits
    from mammotools.inference import resize_scores, sliding_window_scores
    from mammotools.inference.strips import RowSource, label_map_by_strips, resized_strips, sliding_window_strips
    from mammotools.palette import encode_label_png
    from mammotools.predict.shapes import label_map_features

    torch.manual_seed(0)
    torch.set_num_threads(1)
    k = args.classes
    model = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.Conv2d(8, k, 1)).eval()
    yy, xx = np.mgrid[0:side, 0:side]
    pixels = (2000 + 1500 * np.sin(xx / 97.0) * np.cos(yy / 131.0)).astype(np.uint16)  # smooth blobs: few shapes
    traced = [(f"class {i}", i, (0, 100, 200)) for i in range(1, k)]
    palette = bytes(range(256)) * 3
    values = np.arange(k, dtype=np.uint8)
    before = resident_bytes()
    start = time.perf_counter()
    if method == "whole":
        x = torch.from_numpy(scale_image(pixels, image_bits(pixels)))
        scores = sliding_window_scores(model, x, k, args.window, args.window, 0.5, args.batch, None, None, OUTSIDE_IMAGE)
        del x
        probabilities = resize_scores(scores, pixels.shape).numpy()
        label = probabilities.argmax(0).astype(np.uint8)
        confidence = probabilities
    else:
        bits = image_bits(pixels)
        source = RowSource((3, side, side), lambda a, b: torch.from_numpy(scale_image(pixels[a:b], bits)))
        strips = sliding_window_strips(model, source, k, args.window, args.window, 0.5, args.batch, None, None, OUTSIDE_IMAGE)
        kept = label_map_by_strips(resized_strips(strips, (side, side), (side, side)), k, (side, side))
        label, confidence = kept.label, kept.confidence
    encode_label_png(values[label], palette)
    features = label_map_features(label, traced, confidence, 0.7, 25, "bench")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    np.save(out / f"{method}-{side}.npy", label)
    (out / f"{method}-{side}.json").write_text(json.dumps({"seconds": seconds, "peak": peak, "shapes": len(features)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="2000,3000", help="image sides, px")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=["whole", "strips"])
    parser.add_argument("--side", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.side, args, args.out)
        return
    sides = [int(v) for v in args.sizes.split(",")]
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; {args.classes} classes, window "
          f"{args.window}, {args.batch} windows per pass, 1 thread; medians of {args.runs} runs")  # fmt: skip
    print(f"\n  {'image':>11s} {'method':44s} {'peak MB':>8s} {'bytes/px':>8s} {'seconds':>8s}")
    import numpy as np

    peaks: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for side in sides:
            runs: dict[str, list[dict]] = {"whole": [], "strips": []}
            for _ in range(args.runs):
                for method in runs:  # interleaved
                    cmd = [sys.executable, __file__, "--child", method, "--side", str(side), "--out", tmp]
                    cmd += ["--classes", str(args.classes), "--window", str(args.window), "--batch", str(args.batch)]
                    done = subprocess.run(cmd, capture_output=True, text=True)
                    if done.returncode != 0:
                        sys.exit(f"{method} {side}: {done.stderr[-500:]}")
                    runs[method].append(json.loads((Path(tmp) / f"{method}-{side}.json").read_text()))
            for method, found in runs.items():
                label = "whole-image float32 accumulators (baseline)" if method == "whole" else "bands of rows (predict now)"
                peak = statistics.median(r["peak"] for r in found)
                seconds = statistics.median(r["seconds"] for r in found)
                print(f"  {side:>5d}x{side:<5d} {label:44s} {peak / 1e6:8.0f} {peak / side**2:8.1f} {seconds:8.2f}")
            a, b = (np.load(Path(tmp) / f"{m}-{side}.npy") for m in runs)
            print(f"  {'':11s} label maps agree on {100 * float((a == b).mean()):.4f}% of pixels")
            peaks[side] = {m: statistics.median(r["peak"] for r in found) for m, found in runs.items()}
    if len(sides) > 1:  # what each further pixel costs, the fixed share (model, windows, libraries) left out
        small, big = min(sides), max(sides)
        slope = {m: (peaks[big][m] - peaks[small][m]) / (big**2 - small**2) for m in peaks[big]}
        print(f"\n  bytes per further pixel ({small} -> {big} px a side): whole-image {slope['whole']:.1f}, "
              f"bands of rows {slope['strips']:.1f} ({slope['whole'] / slope['strips']:.1f}x less)")  # fmt: skip


if __name__ == "__main__":
    main()

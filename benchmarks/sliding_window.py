"""Whole-mammogram inference: sliding windows against one forward pass over the whole image.

A 4096x5120 image through a model, each method in a fresh process (so peak memory is its own):

* sliding: mammotools.inference.sliding_window_scores, windows of the model's input size,
  overlap 0.5, Gaussian blending, ``--batch`` windows per forward pass (memory bounded by them);
* whole: mammotools.inference.whole_image_scores, one forward pass over the padded image (the
  baseline, where memory allows).

Time (median of runs) and peak resident memory above the process's baseline, and how many
pixels the two label maps agree on.

    python benchmarks/sliding_window.py [--model smp-unet --width 0.25 --window 512] [--size 4096x5120]
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


def child(method: str, args: argparse.Namespace, out: Path) -> None:
    import numpy as np
    import torch

    from mammotools.inference import sliding_window_scores, whole_image_scores
    from mammotools.models import build_model, output_size

    torch.manual_seed(0)
    width, height = (int(v) for v in args.size.split("x"))
    model = build_model(args.model, 4, width=args.width, encoder=args.encoder).eval()
    image = torch.rand(3, height, width) - 0.5
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.inference_mode():
        if method == "sliding":
            scores = sliding_window_scores(model, image, 4, args.window, output_size(args.model, args.window), 0.5, args.batch)
        else:
            scores = whole_image_scores(model, image, 4)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    np.save(out / f"{method}.npy", scores.argmax(0).numpy().astype(np.uint8))
    (out / f"{method}.json").write_text(json.dumps({"seconds": seconds, "peak_mb": peak / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smp-unet")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", default="4096x5120", help="WIDTHxHEIGHT")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=["sliding", "whole"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args, args.out)
        return
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; {args.model} width {args.width}, "
          f"image {args.size}, window {args.window}, {args.batch} windows per pass; medians of {args.runs} runs")  # fmt: skip
    results: dict[str, list[dict]] = {"sliding": [], "whole": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            for method in results:  # interleaved
                cmd = [sys.executable, __file__, "--child", method, "--out", tmp, "--model", args.model]
                cmd += ["--encoder", args.encoder, "--width", str(args.width), "--window", str(args.window)]
                cmd += ["--batch", str(args.batch), "--size", args.size]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    results[method].append({"seconds": float("nan"), "peak_mb": float("nan"), "error": done.stderr[-300:]})
                    continue
                results[method].append(json.loads((Path(tmp) / f"{method}.json").read_text()))
        import numpy as np

        agree = None
        if all((Path(tmp) / f"{m}.npy").is_file() for m in results):
            a, b = (np.load(Path(tmp) / f"{m}.npy") for m in results)
            agree = float((a == b).mean())
    print(f"\n  {'method':34s} {'seconds':>8s} {'peak MB':>8s}")
    for method, runs in results.items():
        label = "sliding windows (mammotools)" if method == "sliding" else "one pass, whole image (baseline)"
        errors = [r["error"] for r in runs if "error" in r]
        if errors:
            print(f"  {label:34s} failed: {errors[0].strip().splitlines()[-1]}")
            continue
        seconds, peak = statistics.median(r["seconds"] for r in runs), statistics.median(r["peak_mb"] for r in runs)
        print(f"  {label:34s} {seconds:8.2f} {peak:8.0f}")
    if agree is not None:
        print(f"  label maps agree on {100 * agree:.2f}% of pixels")


if __name__ == "__main__":
    main()

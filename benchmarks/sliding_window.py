"""Whole-mammogram inference: our sliding window against MONAI's and against one forward pass.

One synthetic 12-bit mammogram (a bright breast on black, noise, read as x / 4095 - 0.5) through
one model (the same seeded weights in every process), each method in a fresh process so that
its peak memory is its own, the runs interleaved (ours, MONAI's, one pass, ours, ...):

* ours: mammotools.inference.sliding_window_scores, ``--window`` px windows, overlap 0.5,
  Gaussian blending (sigma 1/8 of the tile), ``--batch`` windows per forward pass;
* monai: monai.inferers.sliding_window_inference at the same settings (roi ``--window``,
  sw_batch_size ``--batch``, overlap 0.5, mode "gaussian", sigma_scale 0.125), blending the
  softmax probabilities as ours does (MONAI is a benchmark requirement only:
  ``pip install -r benchmarks/requirements.txt``);
* ours, --large-window: ours with larger windows (a fully convolutional model takes any size);
* whole: mammotools.inference.whole_image_scores, one forward pass over the padded image.

Prints the median time, the ratio to MONAI's, the median peak resident memory above the
process's baseline (model and image already built), and the share of pixels whose label
(argmax) agrees with ours. The defaults finish in a few minutes on 2 cores; the issue's figure:

    python benchmarks/sliding_window.py --size 2048x2560 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = {
    "ours": "ours: sliding windows (mammotools)",
    "monai": "MONAI sliding_window_inference",
    "large": "ours, --large-window windows",
    "whole": "one pass, whole image (baseline)",
}


def synthetic_mammogram(height: int, width: int, seed: int = 0):  # -> torch.Tensor
    """(3, H, W) float32: a 12-bit image (a half-ellipse of tissue with blobs, on black) as
    x / 4095 - 0.5, the three channels equal (the models take 3)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = ((yy - height / 2) / (0.45 * height)) ** 2 + (xx / (0.8 * width)) ** 2
    tissue = np.clip(1.2 - r, 0, 1) * 2500
    for _ in range(12):  # dense blobs
        cy, cx, s = rng.uniform(0, height), rng.uniform(0, 0.6 * width), rng.uniform(20, 0.05 * height)
        tissue += 1200 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2)) * (r < 1)
    pixels = np.clip(np.rint(tissue + rng.normal(0, 60, tissue.shape) * (r < 1)), 0, 4095).astype(np.uint16)
    image = torch.from_numpy(pixels.astype(np.float32) / 4095 - 0.5)
    return image.expand(3, height, width).contiguous()


def child(method: str, args: argparse.Namespace, out: Path) -> None:
    import numpy as np
    import torch

    from mammotools.inference import sliding_window_scores, whole_image_scores
    from mammotools.models import build_model, output_size

    torch.manual_seed(0)
    width, height = (int(v) for v in args.size.split("x"))
    model = build_model(args.model, 4, width=args.width, encoder=args.encoder).eval()
    image = synthetic_mammogram(height, width)
    if method == "monai":
        from monai.inferers import sliding_window_inference
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.inference_mode():
        if method in ("ours", "large"):
            window = args.window if method == "ours" else args.large_window
            scores = sliding_window_scores(model, image, 4, window, output_size(args.model, window), 0.5, args.batch)
        elif method == "monai":
            roi = (args.window, args.window)
            scores = sliding_window_inference(
                image[None], roi, args.batch, lambda x: torch.softmax(model(x), 1),
                overlap=0.5, mode="gaussian", sigma_scale=0.125,
            )[0]  # fmt: skip
        else:
            scores = whole_image_scores(model, image, 4)
        labels = scores.argmax(0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    np.save(out / f"{method}.npy", labels.numpy().astype(np.uint8))
    (out / f"{method}.json").write_text(json.dumps({"seconds": seconds, "peak_mb": peak / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smp-unet")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--large-window", type=int, default=1024, help="ours again with these windows; 0: skip")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", default="1024x1280", help="WIDTHxHEIGHT")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {','.join(METHODS)}")
    parser.add_argument("--child", choices=list(METHODS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args, args.out)
        return
    methods = [m for m in args.methods.split(",") if m and not (m == "large" and not args.large_window)]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}: choose from {','.join(METHODS)}")
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}")  # fmt: skip
    print(f"{args.model} ({args.encoder}) width {args.width}, 12-bit image {args.size}, window {args.window}, "
          f"overlap 0.5, Gaussian sigma 1/8, {args.batch} windows per pass; medians of {args.runs} interleaved runs")  # fmt: skip
    results: dict[str, list[dict]] = {m: [] for m in methods}
    labels = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            for method in methods:
                cmd = [sys.executable, __file__, "--child", method, "--out", tmp, "--model", args.model]
                cmd += ["--encoder", args.encoder, "--width", str(args.width), "--window", str(args.window)]
                cmd += ["--large-window", str(args.large_window), "--batch", str(args.batch), "--size", args.size]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    results[method].append({"seconds": float("nan"), "peak_mb": float("nan"), "error": done.stderr[-300:]})
                    continue
                results[method].append(json.loads((Path(tmp) / f"{method}.json").read_text()))
        import numpy as np

        for method in methods:
            if (Path(tmp) / f"{method}.npy").is_file():
                labels[method] = np.load(Path(tmp) / f"{method}.npy")
    medians = {}
    for method, runs in results.items():
        if not any("error" in r for r in runs):
            medians[method] = statistics.median(r["seconds"] for r in runs), statistics.median(r["peak_mb"] for r in runs)
    reference = medians.get("monai", (float("nan"), 0))[0]
    print(f"\n  {'method':36s} {'seconds':>8s} {'vs MONAI':>9s} {'peak MB':>8s} {'labels = ours':>14s}")
    for method, runs in results.items():
        label = METHODS[method].replace("--large-window", str(args.large_window))
        if method not in medians:
            error = next(r["error"] for r in runs if "error" in r)
            print(f"  {label:36s} failed: {error.strip().splitlines()[-1]}")
            continue
        seconds, peak = medians[method]
        agree = f"{100 * float((labels[method] == labels['ours']).mean()):.3f}%" if "ours" in labels and method in labels else "-"
        print(f"  {label:36s} {seconds:8.2f} {reference / seconds:8.2f}x {peak:8.0f} {agree:>14s}")
    print("  (vs MONAI: MONAI's time / this method's time; above 1 is faster than MONAI)")


if __name__ == "__main__":
    main()

"""Training throughput: the whole loop against bare forward+backward+step, and the loader alone.

Three figures in one run, images/s (medians of the repeats):

* bare: forward + backward + optimizer step of the model on one batch already in memory, the
  upper bound of the loop (the named baseline; target: the loop reaches >= 0.9 of it);
* loop: mammotools' training loop (mammotools.train.loop.train_stage: loader, transfers,
  autocast, loss, step, bookkeeping) over the same number of batches;
* loader: the DataLoader alone, reading, windowing, flipping and scaling the crops (it must
  outpace the model).

On a GPU also bf16 and fp16 against fp32, and channels-last against not (bare steps). The crops
are the DDSM tissue crops when given (``--crops``), else a synthetic crop dataset made here.

    python benchmarks/training.py [--crops CROPS] [--model smp-unet --encoder resnet18 --width 0.25]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from mammotools.crops import CropSettings, make_crops, open_crop_dataset  # noqa: E402
from mammotools.data import CropSegmentationSet, task_classes  # noqa: E402
from mammotools.models import build_model, output_size  # noqa: E402
from mammotools.train import make_config, start_runtime  # noqa: E402
from mammotools.train.loop import EpochSampler, train_stage  # noqa: E402
from mammotools.train.runtime import loader_workers  # noqa: E402


def synthetic_crops(root: Path, size: int) -> Path:
    from conftest import make_dataset  # the tests' synthetic 12-bit dataset

    make_crops(make_dataset(root), root / "crops", CropSettings(size=size, per_image=20))
    return root / "crops"


def bare_rate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, dtype: torch.dtype | None) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    device = x.device

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False):
            out = model(x)
        loss = loss_fn(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crops", type=Path)
    parser.add_argument("--model", default="smp-unet")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=-1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    runtime = start_runtime(args.device, "auto")
    device = runtime.device
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, device {device}{gpu}")
    print(f"torch {torch.__version__}; {args.model} width {args.width} at {args.input_size} px, batch {args.batch}")
    with tempfile.TemporaryDirectory() as tmp:
        crops = args.crops or synthetic_crops(Path(tmp), args.input_size)
        dataset = open_crop_dataset(crops)
        classes = task_classes(dataset)
        out = output_size(args.model, args.input_size)
        n_files = args.steps * args.batch
        files = (dataset.train * (n_files // max(len(dataset.train), 1) + 1))[:n_files]
        train_set = CropSegmentationSet(files, classes.lut, args.input_size, out, train=True)
        workers = loader_workers(args.workers)
        model = build_model(args.model, len(classes.names), width=args.width, encoder=args.encoder).to(device)
        x, y = next(iter(DataLoader(train_set, batch_size=args.batch)))
        x, y = x.to(device), y.to(device)
        results: dict[str, list[float]] = {"bare": [], "loop": [], "loader": []}
        config = make_config(
            "fast", None, epochs=1, patience=0, batch_size=args.batch, workers=workers, width=args.width,
            encoder=args.encoder, input_size=args.input_size, device=args.device,
        )  # fmt: skip
        for _ in range(args.repeats):  # interleaved: the machine's noise hits all alike
            results["bare"].append(bare_rate(model, x, y, args.steps, runtime.amp_dtype))
            stage_dir = Path(tmp) / "stage"
            stage_dir.mkdir(exist_ok=True)
            result = train_stage("bench", stage_dir, model, train_set, [], classes.names, classes.lut, None, config, runtime,
                                 args.input_size, out)  # fmt: skip
            results["loop"].append(result.history[-1]["images_per_s"])
            loader = DataLoader(train_set, batch_size=args.batch, sampler=EpochSampler(len(train_set), 0), num_workers=workers,
                                pin_memory=device.type == "cuda")  # fmt: skip
            start = time.perf_counter()
            seen = sum(len(batch[0]) for batch in loader)
            results["loader"].append(seen / (time.perf_counter() - start))
        bare = statistics.median(results["bare"])
        print(f"\nimages/s, medians of {args.repeats} (loader: {workers} worker process(es))")
        for name, values in results.items():
            rate = statistics.median(values)
            print(f"  {name:8s} {rate:9.1f}   {rate / bare:5.2f}x bare")
        loop = statistics.median(results["loop"])
        print(f"  loop / bare = {loop / bare:.3f} (target >= 0.9: {'met' if loop / bare >= 0.9 else 'missed'}); "
              f"loader / bare = {statistics.median(results['loader']) / bare:.1f}")  # fmt: skip
        if device.type != "cuda":
            print("\nno GPU here: the bf16 / fp16 / fp32 and channels-last comparisons run on a GPU only")
            return
        print("\nGPU number formats and memory layout (bare steps, images/s)")
        formats = [("fp32", None, False), ("bf16", torch.bfloat16, False), ("fp16", torch.float16, False)]
        for label, dtype, channels_last in [*formats, ("bf16 channels-last", torch.bfloat16, True)]:
            m = build_model(args.model, len(classes.names), width=args.width, encoder=args.encoder).to(device)
            xx = x.contiguous(memory_format=torch.channels_last) if channels_last else x
            if channels_last:
                m = m.to(memory_format=torch.channels_last)
            print(f"  {label:20s} {bare_rate(m, xx, y, args.steps, dtype):9.1f}")


if __name__ == "__main__":
    main()

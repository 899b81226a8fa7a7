"""One training stage: epochs of SGD/AdamW over the training crops, validation by sliding window
after each, a checkpoint per epoch, the best model by validation mIoU, early stopping.

Reproducible: each item's window and flips come from (seed, epoch, index) and each epoch's
order and dropout from (seed, epoch), so a run stopped anywhere and resumed from its last
checkpoint ends with the weights an uninterrupted run would have (same device, ``--deterministic``
for GPU kernels).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from mammotools.data import CropSegmentationSet
from mammotools.defaults import IGNORE_LABEL
from mammotools.errors import InputError, MammoError, TrainingFailed
from mammotools.files import atomic_write_text
from mammotools.metrics import scores
from mammotools.train import checkpoint
from mammotools.train.config import TrainConfig
from mammotools.train.evaluation import EvalImage, evaluate_images
from mammotools.train.runtime import Runtime, barrier, loader_workers, rng_states

LOG = "log.jsonl"
REPORT_EVERY = 10  # steps between progress reports


class Reporter(Protocol):
    """Progress callbacks (the CLI draws a bar; the library prints nothing)."""

    def epoch_start(self, stage: str, epoch: int, epochs: int, batches: int) -> None: ...
    def batch(self, steps_done: int, loss: float, images_per_s: float) -> None: ...
    def epoch_end(self, record: dict[str, Any]) -> None: ...


class Silent:
    """A reporter that reports nothing."""

    def epoch_start(self, stage: str, epoch: int, epochs: int, batches: int) -> None:
        pass

    def batch(self, steps_done: int, loss: float, images_per_s: float) -> None:
        pass

    def epoch_end(self, record: dict[str, Any]) -> None:
        pass


@dataclass
class StageResult:
    """How a stage ended (``stopped_by``: "epochs", "patience" or "budget")."""

    stage: str
    best_epoch: int
    best_miou: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str = "epochs"

    @property
    def seconds(self) -> float:
        return float(sum(r["seconds"] for r in self.history))

    @property
    def images_seen(self) -> int:
        return int(sum(r.get("images_seen", 0) for r in self.history))


@dataclass(frozen=True)
class StageSize:
    """A stage's training input (height, width), output, and the square window (and its output)
    the whole images are scored with (the input's shorter side: fully convolutional models take
    any valid window)."""

    input: tuple[int, int]
    output: tuple[int, int]
    window: int
    window_out: int


class EpochSampler(Sampler[tuple[int, int]]):
    """(epoch, index) pairs in an order drawn from (seed, epoch): the dataset reads the epoch from
    the key, so persistent loader workers need no message. Under torchrun each rank takes every
    world_size-th item of the same order (padded to equal shares, as DistributedSampler does).

    ``per_epoch`` (0: all): an epoch is the first ``per_epoch`` items of its order, so each epoch
    draws a fresh subset (nnU-Net's fixed-length epochs; --quick trains on a sample this way)."""

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1, per_epoch: int = 0) -> None:
        self.size, self.seed, self.rank, self.world = size, seed, rank, world_size
        self.drawn = min(per_epoch, size) if per_epoch else size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.drawn / self.world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(self.size, generator=generator).tolist()[: self.drawn]
        order += order[: len(self) * self.world - self.drawn]
        return iter((self.epoch, i) for i in order[self.rank :: self.world])


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**63


BUDGET_WARMUP = 0.05  # under a budget, the share of it a warm-up takes (recipes that warm up)


def budget_factor(config: TrainConfig, progress: float) -> float:
    """The learning-rate multiplier at ``progress`` (0..1) of a stage's time budget: the recipe's
    schedule run on the budget's clock (warm-up over its first 5%, then cosine to zero at its end;
    step: x gamma every step_epochs / epochs of it)."""
    warmup = BUDGET_WARMUP if config.warmup_epochs > 0 else 0.0
    if progress < warmup:
        return 0.01 + 0.99 * progress / warmup
    if config.schedule == "step":
        return float(config.gamma ** math.floor(progress * config.epochs / config.step_epochs))
    rest = (progress - warmup) / max(1e-9, 1.0 - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, rest)))


def lr_factor(config: TrainConfig, steps_per_epoch: int) -> Any:
    """The learning-rate multiplier at each optimizer step: warm-up, then step or cosine decay."""
    warmup = config.warmup_epochs * steps_per_epoch
    total = config.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return 0.01 + 0.99 * step / warmup
        if config.schedule == "step":
            return float(config.gamma ** (step // (config.step_epochs * steps_per_epoch)))
        progress = (step - warmup) / max(1.0, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(config: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def train_stage(
    stage: str,
    stage_dir: Path,
    model: torch.nn.Module,
    train_set: CropSegmentationSet,
    val_images: list[EvalImage],
    class_names: list[str],
    lut: np.ndarray,
    class_weights: torch.Tensor | None,
    config: TrainConfig,
    runtime: Runtime,
    size: StageSize,
    resume: bool = False,
    reporter: Reporter | None = None,
    normalization: str = "paper",
    budget_seconds: float = 0.0,
) -> StageResult:
    """Train ``model`` for one stage into ``stage_dir`` (checkpoint.pt, best.pt, log.jsonl).

    ``normalization``: how the model is fed (models.inputs; the saved weights are ``model``'s own).
    ``budget_seconds``: the stage's share of a time budget (0: none): the stage stops once its
    wall-clock time (training and validation, resumed time included) reaches it, mid-epoch if
    need be (that epoch is then validated and kept), and the learning-rate schedule runs on
    that clock. A non-finite loss stops the stage with :class:`TrainingFailed`; no weights of
    that epoch are kept."""
    from mammotools.models import with_input_normalization

    reporter = reporter or Silent()
    device = runtime.device
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(config, params)
    sampler = EpochSampler(len(train_set), config.seed, runtime.rank, runtime.world_size, config.epoch_crops)
    batch_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if batch_norm and min(len(sampler), config.batch_size) < 2:
        raise InputError(
            f"{stage}: its BatchNorm layers cannot train on batches of one crop (batch size {config.batch_size}, "
            f"{len(sampler)} crop(s) per epoch and process); give --batch-size 2 or more and at least 2 crops per "
            "epoch and process (--epoch-crops)"
        )
    drop_last = drops_last_batch(len(sampler), config.batch_size)
    steps_per_epoch = len(sampler) // config.batch_size if drop_last else math.ceil(len(sampler) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
    scaler = torch.amp.GradScaler(device.type, enabled=runtime.uses_scaler)
    start, best, best_epoch, since_best, history = 0, -1.0, -1, 0, []
    if resume and (stage_dir / checkpoint.CHECKPOINT).is_file():
        path = stage_dir / checkpoint.CHECKPOINT
        state = checkpoint.load(path, resumable=True)
        checkpoint.load_weights(model, state["model"], path)
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
        except (ValueError, KeyError, TypeError, RuntimeError) as error:
            raise InputError(f"{path}: its optimizer state does not fit the model ({error}); {checkpoint.RETRAIN}") from None
        start, best, best_epoch = state["epoch"] + 1, state["best_miou"], state["best_epoch"]
        since_best, history = state["since_best"], state["history"]
        if runtime.is_main:  # a kill between the checkpoint and the log leaves the log an epoch short
            write_log(stage_dir, history)
    net: torch.nn.Module = with_input_normalization(model, normalization)
    fed = net  # what validation calls: the model with its input normalisation, not DDP-wrapped
    if runtime.distributed:
        ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)
    if config.compile:
        net = torch.compile(net)  # type: ignore[assignment]  # a callable module
    workers = loader_workers(config.workers)
    loader = DataLoader(
        Guarded(train_set),  # keyed by (epoch, index): see EpochSampler
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        drop_last=drop_last,
        collate_fn=collate_guarded,
        # its own generator: the loader must not draw from the global torch RNG, which seeds each
        # epoch's dropout (drawing from it would tie results to the worker count and break resume)
        generator=torch.Generator().manual_seed(config.seed),
    )
    weight = class_weights.to(device) if class_weights is not None else None
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE_LABEL)
    stopped, stopped_by = False, "epochs"
    spent = float(sum(r["seconds"] for r in history))  # this stage's time so far (a resume keeps it)
    for epoch in range(start, config.epochs):
        if config.patience and since_best >= config.patience:
            stopped, stopped_by = True, "patience"
            break
        if budget_seconds and spent >= budget_seconds:
            break
        started = time.perf_counter()
        torch.manual_seed(epoch_seed(config.seed, epoch))  # dropout and any other torch randomness
        sampler.set_epoch(epoch)
        net.train()
        reporter.epoch_start(stage, epoch, config.epochs, steps_per_epoch)
        total_loss, seen = torch.zeros((), device=device), 0
        tick, window_images = time.perf_counter(), 0
        for step, batch in enumerate(loader):
            if isinstance(batch, Failed):  # a bad crop: its own one-line error, from a worker or not
                raise batch.error
            x, y = batch
            if not bool((y != IGNORE_LABEL).any()):  # all padding: nothing to learn (checked on the CPU copy)
                continue
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if budget_seconds:
                progress = _budget_progress(spent + time.perf_counter() - started, budget_seconds, runtime)
                if progress >= 1.0:
                    break  # the budget is spent: this partial epoch is validated and kept (unless empty)
                # the schedule ends with whichever comes first: the budget or the epochs
                progress = max(progress, (epoch * steps_per_epoch + step) / (config.epochs * steps_per_epoch))
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * budget_factor(config, progress)
            with runtime.autocast():
                logits = net(x)
            loss = loss_fn(logits.float(), y)
            if (step + 1) % REPORT_EVERY == 0 and not bool(torch.isfinite(loss.detach())):
                raise _diverged(stage, epoch, float(loss.detach()), config)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if not budget_seconds:
                scheduler.step()
            total_loss += loss.detach() * len(x)
            seen += len(x)
            window_images += len(x)
            if (step + 1) % REPORT_EVERY == 0 or step + 1 == steps_per_epoch:  # reading the loss waits for the GPU
                now = time.perf_counter()
                reporter.batch(step + 1, float(loss.detach()), window_images * runtime.world_size / max(now - tick, 1e-9))
                tick, window_images = now, 0
        train_seconds = time.perf_counter() - started
        totals = torch.stack([total_loss.float(), torch.tensor(float(seen), device=device)])
        if runtime.distributed:  # the epoch's loss over every rank's share
            torch.distributed.all_reduce(totals)
        if budget_seconds and float(totals[1]) == 0:  # the budget ran out before this epoch's first step
            spent += train_seconds
            break
        epoch_loss = float(totals[0]) / max(float(totals[1]), 1.0)
        if not math.isfinite(epoch_loss):
            raise _diverged(stage, epoch, epoch_loss, config)
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):  # a last step can blow up the weights
            raise _diverged(stage, epoch, float("nan"), config, weights=True)
        matrix = evaluate_images(
            fed, val_images[runtime.rank :: runtime.world_size], lut, len(class_names), size.window, size.window_out,
            device, config.overlap, config.val_batch, runtime.amp_dtype, scale=config.scale,
        )  # fmt: skip
        matrix.all_reduce()
        metrics = scores(matrix.to_numpy(), class_names)
        miou = float(metrics["mean_iou"] or 0.0)
        record = {
            "stage": stage,
            "epoch": epoch,
            "train_loss": epoch_loss,
            "lr": optimizer.param_groups[0]["lr"],
            "val_pixel_accuracy": metrics["pixel_accuracy"],
            "val_mean_iou": miou,
            "val_mean_class_accuracy": metrics["mean_accuracy"],
            "val_mean_dice": metrics["mean_dice"],
            "val_classes": metrics["classes"],
            "train_seconds": train_seconds,
            "images_per_s": seen * runtime.world_size / max(train_seconds, 1e-9),
            "images_seen": seen * runtime.world_size,
            "seconds": time.perf_counter() - started,
        }
        spent += record["seconds"]
        history.append(record)
        if miou > best:
            best, best_epoch, since_best = miou, epoch, 0
            if runtime.is_main:
                checkpoint.save(stage_dir / checkpoint.BEST, {"model": model.state_dict(), "epoch": epoch, "metrics": metrics})
        else:
            since_best += 1
        if runtime.is_main:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch,
                "best_miou": best,
                "best_epoch": best_epoch,
                "since_best": since_best,
                "history": history,
                "rng": rng_states(),
            }
            checkpoint.save(stage_dir / checkpoint.CHECKPOINT, state)
            write_log(stage_dir, history)
        barrier(runtime)
        reporter.epoch_end(record)
    if budget_seconds and spent >= budget_seconds:
        stopped_by = "budget"
    return StageResult(stage, best_epoch, best, len(history), stopped, history, stopped_by)


def drops_last_batch(items: int, batch_size: int) -> bool:
    """Whether an epoch's last batch is left out: when it would hold a single crop (BatchNorm
    cannot normalise one value per channel: smp-deeplabv3plus's pooled branch, smp-unet's 1 px
    bottleneck at small inputs). The crop left out changes with the epoch's order."""
    return items > 1 and items % batch_size == 1


def write_log(stage_dir: Path, history: list[dict[str, Any]]) -> None:
    """log.jsonl: one line per epoch, from the records the checkpoint keeps."""
    atomic_write_text(stage_dir / LOG, "".join(json.dumps(r) + "\n" for r in history))


@dataclass
class Failed:
    """A batch whose crop could not be read: the error, carried out of the loader worker whole
    (torch would re-raise it as "Caught InputError in DataLoader worker process 0" and a traceback)."""

    error: MammoError


class Guarded(Dataset):
    """A dataset whose user-fixable errors become :class:`Failed` items."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        try:
            return self.dataset[key]
        except MammoError as error:
            return Failed(error)


def collate_guarded(items: list[Any]) -> Any:
    """torch's default collation, or the first :class:`Failed` item of the batch."""
    failed = next((item for item in items if isinstance(item, Failed)), None)
    return failed if failed is not None else default_collate(items)


def _budget_progress(elapsed: float, budget_seconds: float, runtime: Runtime) -> float:
    """The share of a stage's budget spent; under torchrun the largest of the ranks' (they stop together)."""
    progress = elapsed / budget_seconds
    if runtime.distributed:
        shared = torch.tensor([progress], dtype=torch.float64, device=runtime.device)
        torch.distributed.all_reduce(shared, op=torch.distributed.ReduceOp.MAX)
        progress = float(shared[0])
    return progress


def _diverged(stage: str, epoch: int, loss: float, config: TrainConfig, weights: bool = False) -> TrainingFailed:
    what = "the weights became NaN or infinite" if weights else f"the training loss became {loss}"
    return TrainingFailed(
        f"{stage}: {what} in epoch {epoch + 1}; no weights of that epoch are kept. "
        f"Lower the learning rate (now {config.lr:g}) or the weight decay (now {config.weight_decay:g})"
    )

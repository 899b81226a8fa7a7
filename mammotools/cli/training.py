"""Commands that train and score models: ``train`` and ``evaluate``.

torch is imported inside the commands; the model names come from the registry when the
``--model`` choices are first needed (``train --help`` or a run), never for ``mammotools --help``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from mammotools.cli.options import (
    FILE,
    FOLDER,
    INPUT_SIZE,
    alias,
    budget_option,
    device_option,
    example,
    input_size_values,
    loader_workers_option,
    overlap_option,
    precision_option,
    stops_saying,
    user_errors,
    window_batch_option,
)
from mammotools.defaults import CLASS_WEIGHTINGS, DEFAULT_SEED, DEFAULT_WIDTH, OPTIMIZERS, SCHEDULES, TASKS

TRAIN_DEFAULTS_NOTE = "(default: the recipe's)"


class LazyChoice(click.Choice):
    """A Choice whose names are read (importing their registry) only when first needed."""

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self._names: tuple[str, ...] | None = None
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        if self._names is None:
            self._names = tuple(self._load())
        return self._names


def _model_names() -> list[str]:
    from mammotools.models import MODELS

    return list(MODELS)


def _recipes() -> list[str]:
    from mammotools.train import RECIPES

    return list(RECIPES)


PLAIN_EVERY_SHARE, PLAIN_EVERY_SECONDS = 0.1, 60.0  # without a terminal: a line per 10% of an epoch or per minute


class ProgressReporter:
    """Draws a bar per epoch with the loss and images/s; prints each epoch's validation line.

    Where stderr is not a terminal (a log file, CI, a job queue) a bar would print nothing until
    the epoch ends: it prints a plain line every 10% of the epoch or every minute instead."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.steps = 0
        self.plain = not sys.stderr.isatty()
        self.label, self.batches, self.last_share, self.last_time = "", 1, 0.0, 0.0

    def epoch_start(self, stage: str, epoch: int, epochs: int, batches: int) -> None:
        label = f"{stage} epoch {epoch + 1}/{epochs}"
        self.steps = 0
        if self.plain:
            self.label, self.batches, self.last_share, self.last_time = label, max(batches, 1), 0.0, time.monotonic()
            click.echo(f"{label}: {batches} step(s)", err=True)
            return
        self.bar = click.progressbar(length=batches, label=label, file=sys.stderr, show_pos=True, item_show_func=lambda s: s)
        self.bar.__enter__()

    def batch(self, steps_done: int, loss: float, images_per_s: float) -> None:
        if self.plain:
            share, now = steps_done / self.batches, time.monotonic()
            due = share - self.last_share >= PLAIN_EVERY_SHARE - 1e-9 or now - self.last_time >= PLAIN_EVERY_SECONDS
            if due or steps_done >= self.batches:
                click.echo(
                    f"{self.label}: step {steps_done}/{self.batches} ({100 * share:.0f}%), loss {loss:.4f}, "
                    f"{images_per_s:.1f} img/s",
                    err=True,
                )
                self.last_share, self.last_time = share, now
            return
        if self.bar is not None:
            self.bar.update(steps_done - self.steps, f"loss {loss:.4f}, {images_per_s:.1f} img/s")
            self.steps = steps_done

    def epoch_end(self, record: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        click.echo(
            f"{record['stage']} epoch {record['epoch'] + 1}: loss {record['train_loss']:.4f}, "
            f"val pixel acc {_pct(record['val_pixel_accuracy'])}, mIoU {_pct(record['val_mean_iou'])}, "
            f"mean class acc {_pct(record['val_mean_class_accuracy'])}, mean Dice {_pct(record['val_mean_dice'])}; "
            f"{record['images_per_s']:.1f} img/s, {record['seconds']:.0f} s",
            err=True,
        )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


@click.command(
    "train",
    short_help="Train a model of the paper on a crop dataset.",
    epilog=example(
        "mammotools train crops256-aug/ --model fcn8 --input-size 256 --epochs 20 --out runs/fcn8/",
        "mammotools train crops256-aug/ --model fcn8 --input-size 256 --epochs 20 --out runs/fcn8/ --resume   # after Ctrl-C",
    ),
)
@click.argument("crops", type=click.Path(path_type=Path))
@click.option("--model", "model_name", required=True, type=LazyChoice(_model_names), help="The model to train (all its stages).")
@click.option("--out", required=True, type=FOLDER, help="Run folder to write (checkpoints, logs, the best model).")
@click.option(
    "--recipe", type=LazyChoice(_recipes), default="fast", help="Named settings: fast (AdamW, cosine) or paper (Table 8)."
)
@click.option("--config", "config_file", type=FILE, help="A run's config.json: its settings (then the options below) are used.")
@click.option("--epochs", type=click.IntRange(min=1), help=f"Maximum epochs per stage {TRAIN_DEFAULTS_NOTE}.")
@click.option(
    "--epoch-crops",
    type=click.IntRange(min=1),
    help="Training crops per epoch, a fresh random draw each epoch (default: every training crop).",
)
@click.option("--batch-size", type=click.IntRange(min=1), help=f"Images per step and process {TRAIN_DEFAULTS_NOTE}.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help=f"Learning rate {TRAIN_DEFAULTS_NOTE}.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), help=f"Optimizer {TRAIN_DEFAULTS_NOTE}.")
@click.option("--weight-decay", type=click.FloatRange(min=0), help=f"L2 / weight decay {TRAIN_DEFAULTS_NOTE}.")
@click.option("--schedule", type=click.Choice(SCHEDULES), help=f"Learning-rate schedule {TRAIN_DEFAULTS_NOTE}.")
@click.option(
    "--patience",
    type=click.IntRange(min=0),
    help=f"Early stopping: a stage stops after this many epochs without a better val mIoU; 0 = never stop early, "
    f"train every epoch {TRAIN_DEFAULTS_NOTE}.",
)
@click.option(
    "--class-weights",
    type=click.Choice(CLASS_WEIGHTINGS),
    help=f"Loss weights: the paper's w = 1 - x/100, median frequency, or none {TRAIN_DEFAULTS_NOTE}.",
)
@click.option(
    "--task",
    type=click.Choice(TASKS),
    help=f"regions: the dataset's classes; tumor: tumor vs non-tumor.  [default: {TASKS[0]}]",
)
@click.option(
    "--width",
    type=click.FloatRange(min=0, min_open=True),
    help=f"Channel width factor of the paper models (1 = the paper's; 0.125 for a quick try).  [default: {DEFAULT_WIDTH:g}]",
)
@click.option("--encoder", help="smp models: the encoder (e.g. resnet34).")
@click.option(
    "--input-size",
    type=INPUT_SIZE,
    help="Model input in px for every stage: a side (256) or HEIGHTxWIDTH (1024x1400) (default: each stage's paper input).",
)
@budget_option(
    "Wall-clock minutes of training for the run, shared equally by its stages (default: none; the recipe's "
    "or --epochs still caps the epochs)."
)
@click.option(
    "--scale",
    type=click.FloatRange(0.05, 4.0),
    help="Resize crops and images by this before the model (0.5: half resolution, twice the context; default 1).",
)
@click.option(
    "--pretrained",
    type=FILE,
    help="Local ImageNet weights, nothing is downloaded: a torchvision VGG16 or ResNet-18 state dict for the paper's "
    "models, or for the smp models an smp encoder's (torch.save(model.encoder.state_dict(), PATH) of a model built with "
    "encoder_weights='imagenet').",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    help=f"Seed of the weights, windows, flips and order.  [default: {DEFAULT_SEED}]",
)
@click.option(
    "--folds", type=click.IntRange(min=2), help="Cross-validation by subject: K folds of the dataset's subjects (with --fold)."
)
@click.option("--fold", type=click.IntRange(min=1), help="With --folds K: the fold (1..K) held out for validation.")
@click.option(
    "--deterministic", is_flag=True, default=None, help="Deterministic GPU kernels (same seed and device: same weights)."
)
@device_option(None)
@precision_option
@click.option("--channels-last", is_flag=True, default=None, help="Channels-last memory format (faster convolutions on GPUs).")
@click.option("--compile", "compile_model", is_flag=True, default=None, help="torch.compile the model.")
@loader_workers_option
@alias("--workers", "workers", click.IntRange(min=0))
@click.option("--resume", is_flag=True, help="Continue a stopped run from its last complete epoch.")
@click.option("--overwrite", is_flag=True, help="Start the run over if --out holds a run of other settings.")
@user_errors
def train_cmd(
    crops: Path, model_name: str, out: Path, recipe: str, config_file: Path | None, resume: bool, overwrite: bool, **values: Any
) -> None:
    """Train MODEL on CROPS (a make-crops or augment folder), staged as the paper does.

    fcn8 trains fcn32, then fcn16, then fcn8; dilation10-global trains the front end, the
    context module (front frozen), then everything. Each epoch is checkpointed; Ctrl-C leaves a
    run that --resume continues. Under torchrun each process trains its share of every epoch.
    """
    from mammotools.train import make_config, start_runtime, stop_runtime, train_run

    renamed = {"compile_model": "compile"}
    input_size_values(values)
    overrides = {renamed.get(k, k): v for k, v in values.items()}
    if overrides.get("pretrained") is not None:
        overrides["pretrained"] = str(overrides["pretrained"])
    if resume and config_file is None and (out / "config.json").is_file():
        config_file = out / "config.json"  # a resume continues the run as it was configured
    config = make_config(recipe, config_file, **overrides)
    runtime = start_runtime(config.device, config.precision)
    try:
        summary = train_run(
            crops, model_name, out, config, runtime, resume, overwrite, ProgressReporter() if runtime.is_main else None
        )
    except KeyboardInterrupt:
        if runtime.is_main:
            click.echo(f"\nStopped. The run keeps its last complete epoch; continue it with:\n  mammotools train {crops} "
                       f"--model {model_name} --out {out} --resume", err=True)  # fmt: skip
        raise SystemExit(130) from None
    finally:
        stop_runtime(runtime)
    if not runtime.is_main:
        return
    for note in summary.notes:
        click.echo(f"note: {note}", err=True)
    for stage in summary.skipped:
        click.echo(f"{stage}: finished by an earlier run, skipped")
    for result in summary.stages:
        click.echo(
            f"{result.stage}: best val mIoU {_pct(result.best_miou)} at epoch {result.best_epoch + 1} of {result.epochs_run}"
            + (" (stopped early)" if result.stopped_early else "")
        )
    click.echo(f"Run: {out}  (evaluate it: mammotools evaluate {out} DATASET)")


@click.command(
    "evaluate",
    short_help="Score a trained run on a dataset's validation images.",
    epilog=example("mammotools evaluate runs/fcn8/ dataset/   # the whole validation images of the export"),
)
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "--out", type=FOLDER, help="Folder for metrics.json, confusion.csv, per_image.csv, predictions/ (default: RUN/eval-NAME)."
)
@device_option()
@overlap_option
@window_batch_option(None, "the run's, 4")
@alias("--batch-size", "batch_size", click.IntRange(min=1))
@click.option("--no-predictions", is_flag=True, help="Do not write the predicted label maps.")
@click.option("--overwrite", is_flag=True, help="Replace an evaluation of another run, stage or dataset in --out.")
@user_errors
@stops_saying("the evaluation was not finished; run the same evaluate command again.")
def evaluate_cmd(
    run: Path,
    dataset: Path,
    out: Path | None,
    device: str,
    overlap: float | None,
    batch_size: int | None,
    no_predictions: bool,
    overwrite: bool,
) -> None:
    """Score the trained RUN on DATASET: a crop dataset's validation crops, or the whole validation
    images of an export dataset (its split.csv), by sliding window with Gaussian blending."""
    from mammotools.train import evaluate_run

    summary = evaluate_run(run, dataset, out, device, overlap, batch_size, not no_predictions, overwrite=overwrite)
    m = summary.metrics
    click.echo(
        f"{summary.images} image(s): pixel accuracy {_pct(m['pixel_accuracy'])}, mean IoU {_pct(m['mean_iou'])}, "
        f"mean class accuracy {_pct(m['mean_accuracy'])}, mean Dice {_pct(m['mean_dice'])}; {summary.seconds:.1f} s"
    )
    for name, c in m["classes"].items():
        if c["present"]:
            click.echo(f"  {name:24s} IoU {_pct(c['iou'])}  Dice {_pct(c['dice'])}  accuracy {_pct(c['accuracy'])}")
    click.echo(f"Results: {summary.out}  (metrics.json, confusion.csv, per_image.csv, predictions/)")

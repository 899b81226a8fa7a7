"""Training settings: named recipes, every value overridable, saved with the run and read back.

``paper`` is Table 8 of the paper as it gives it. ``fast`` converges from scratch in a few
epochs (AdamW, one warm-up epoch, cosine decay) and is the default: on the DDSM tissue images
(U-Net from scratch, 256 px) SGD at 1e-4 reached mean Dice 0.43 after 5 epochs where Adam at
1e-3 reached 0.87 after 3 (measured here; docs/training.md has the figures).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from mammotools.defaults import (
    CLASS_WEIGHTINGS,
    DEFAULT_SEED,
    DEFAULT_WIDTH,
    DEVICES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TASKS,
)
from mammotools.errors import InputError, MissingFileError
from mammotools.files import atomic_write_text


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (config.json of a run)."""

    recipe: str = "fast"
    optimizer: str = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # step: x gamma every step_epochs; cosine: to 0 over the epochs
    step_epochs: int = 10
    gamma: float = 0.3
    warmup_epochs: float = 1.0  # linear warm-up from lr/100
    epochs: int = 30
    epoch_crops: int = 0  # training crops per epoch, a fresh random draw each epoch; 0: every training crop
    patience: int = 8  # epochs without a better validation mIoU before stopping; 0 = never stop early
    batch_size: int = 8  # per process
    class_weights: str = "inverse-share"  # the paper's w = 1 - x/100; median-frequency; none
    task: str = TASKS[0]
    width: float = DEFAULT_WIDTH  # channel width factor of the paper models (1 = the paper's)
    encoder: str = "resnet34"  # smp models only
    input_size: int = 0  # input height (or side) in px for every stage; 0: each stage's paper input
    input_width: int = 0  # input width in px when not square (--input-size 1024x1400); 0: = input_size
    budget_minutes: float = 0.0  # wall-clock training minutes for the whole run (all stages); 0: no budget
    scale: float = 1.0  # the model sees crops and images resized by this (0.5: half resolution, twice the context)
    seed: int = DEFAULT_SEED
    folds: int = 0  # cross-validation by subject: K folds (0: the dataset's own hold-out)
    fold: int = 0  # which fold (1..folds) is validation
    deterministic: bool = False
    device: str = DEVICES[0]
    precision: str = PRECISIONS[0]  # auto: bf16 on a GPU that has it, else fp16 on a GPU, fp32 on the CPU
    channels_last: bool = False
    compile: bool = False
    workers: int = -1  # loader processes; -1: chosen from the machine
    overlap: float = 0.5  # sliding-window overlap for validation
    val_batch: int = 4  # windows per forward pass in validation
    pretrained: str = ""  # local ImageNet weights file (torchvision VGG16 / ResNet-18, or an smp encoder)


MIN_SCALE, MAX_SCALE = 0.05, 4.0
MAX_WIDTH = 8.0  # channels x 8 (a VGG16 of 4096-channel convs): beyond, a typo that asks for terabytes
MAX_BUDGET_MINUTES = 525_600
MAX_SEED = 2**32 - 1  # numpy's seeds stop there; torch's at 2**64 - 1 (a larger one was an OverflowError traceback)
MAX_INT = 2**31 - 1  # epochs, batches, sizes: beyond this a value is a typo, and torch's int32 arguments overflow
MAX_WORKERS = 256

RECIPES: dict[str, TrainConfig] = {
    "fast": TrainConfig(),
    "paper": TrainConfig(
        recipe="paper",
        optimizer="sgd",
        lr=1e-4,
        momentum=0.9,
        weight_decay=0.005,  # the paper's L2 0.005
        schedule="step",
        step_epochs=10,
        gamma=0.3,
        warmup_epochs=0.0,
        epochs=100,
        patience=4,
        batch_size=8,
    ),
}

CHOICES = {
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "class_weights": CLASS_WEIGHTINGS,
    "device": DEVICES,
    "precision": PRECISIONS,
    "task": TASKS,
    "recipe": tuple(RECIPES),
}


def make_config(recipe: str = "fast", config_file: Path | None = None, **overrides: Any) -> TrainConfig:
    """A recipe, then the values of ``config_file`` (a run's config.json), then ``overrides``
    (None values are left out), checked."""
    if recipe not in RECIPES:
        raise InputError(f"--recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
    config = RECIPES[recipe]
    if config_file is not None:
        config = replace(config, **_read_values(config_file))
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise InputError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
    config = replace(config, **given)
    check_config(config)
    return config


def _read_values(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MissingFileError(f"{path}: not found; give --config a config.json written by a run")
    try:
        data = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{path}: not JSON; give --config a config.json written by a run") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object of settings")
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = set(data) - set(known)
    if unknown:
        raise InputError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    defaults = TrainConfig()
    for key, value in data.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            data[key] = float(value)
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise InputError(f"{path}: {key} must be {expected.__name__}, not {value!r}")
    return data


def check_config(config: TrainConfig) -> None:
    """One clear error for a value out of range or not among the choices."""
    for key, valid in CHOICES.items():
        if getattr(config, key) not in valid:
            raise InputError(f"{key} {getattr(config, key)!r}: choose one of {', '.join(valid)}")
    positive = {"lr": config.lr, "epochs": config.epochs, "batch_size": config.batch_size, "width": config.width}
    for key, value in positive.items():
        if not value > 0:
            raise InputError(f"{key} {value}: must be positive")
    for key in ("lr", "weight_decay", "momentum", "gamma", "warmup_epochs", "scale", "width", "budget_minutes", "overlap"):
        value = getattr(config, key)
        if not math.isfinite(value):
            raise InputError(f"{key} {value}: must be a finite number")
    if config.budget_minutes > MAX_BUDGET_MINUTES:
        raise InputError(f"budget_minutes {config.budget_minutes:g}: give at most {MAX_BUDGET_MINUTES:,} minutes (a year)")
    if config.budget_minutes < 0:
        raise InputError(f"budget_minutes {config.budget_minutes}: give minutes > 0 (or 0: no budget, train --epochs)")
    if config.input_width < 0 or (config.input_width and not config.input_size):
        raise InputError(f"input_width {config.input_width}: give --input-size HEIGHTxWIDTH (e.g. 1024x1400)")
    if not 0 <= config.overlap < 1:
        raise InputError(f"overlap {config.overlap}: give 0 <= overlap < 1")
    if config.patience < 0 or config.warmup_epochs < 0 or config.weight_decay < 0 or config.step_epochs < 1:
        raise InputError("patience, warmup_epochs and weight_decay must be >= 0, step_epochs >= 1")
    if config.seed > MAX_SEED:
        raise InputError(f"seed {config.seed}: give a seed from 0 to {MAX_SEED:,}")
    if config.epoch_crops < 0:
        raise InputError(f"epoch_crops {config.epoch_crops}: give a number of crops >= 1 (or 0: every training crop)")
    for key in ("epochs", "epoch_crops", "batch_size", "patience", "step_epochs", "val_batch", "input_size", "input_width",
                "folds", "fold"):  # fmt: skip
        if getattr(config, key) > MAX_INT:
            raise InputError(f"{key} {getattr(config, key)}: give at most {MAX_INT:,}")
    if config.workers > MAX_WORKERS:
        raise InputError(f"workers {config.workers}: give at most {MAX_WORKERS} loader processes")
    if config.seed < 0 or config.momentum < 0 or config.val_batch < 1 or config.workers < -1 or config.input_size < 0:
        raise InputError("seed, momentum and input_size must be >= 0, val_batch >= 1, workers >= 0 (or -1: chosen)")
    if config.width > MAX_WIDTH:
        raise InputError(f"width {config.width:g}: give at most {MAX_WIDTH:g} (1 = the paper's channels)")
    if not MIN_SCALE <= config.scale <= MAX_SCALE:
        raise InputError(f"scale {config.scale}: give {MIN_SCALE} <= scale <= {MAX_SCALE} (1 = the images' own resolution)")
    if config.folds != 0 and config.fold == 0:
        raise InputError(f"--folds {config.folds}: give --fold k too, the fold held out (1..{config.folds})")
    if config.folds == 0 and config.fold != 0:
        raise InputError(f"fold {config.fold}: give --folds K too (the number of folds), or leave --fold out")
    if config.folds != 0 and (config.folds < 2 or not 1 <= config.fold <= config.folds):
        raise InputError(f"folds {config.folds}, fold {config.fold}: give folds >= 2 and a fold from 1 to folds")
    if not 0 < config.gamma <= 1:
        raise InputError(f"gamma {config.gamma}: give 0 < gamma <= 1")


def save_config(config: TrainConfig, path: Path) -> None:
    """config.json of a run (read back by ``--config``)."""
    atomic_write_text(path, json.dumps(asdict(config), indent=1))


def read_config(path: Path) -> TrainConfig:
    """A run's config.json, its values checked as the options' are (an edited or damaged file is one
    line naming it, not a traceback where a value is first used)."""
    config = replace(TrainConfig(), **_read_values(path))
    try:
        check_config(config)
    except InputError as error:
        raise InputError(f"{path}: {error}; correct it, or train the run again") from None
    return config

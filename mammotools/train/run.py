"""A training run: the run folder, the paper's staged training, resuming, the final model.

Layout of a run (``--out``)::

    run/run.json                    model, dataset, classes, label -> class table, sizes, stages
    run/config.json                 every training setting (read back by ``--config``)
    run/stages/<stage>/checkpoint.pt  last complete epoch: resumable (checkpoint.py)
    run/stages/<stage>/best.pt      the stage's best model by validation mIoU
    run/stages/<stage>/log.jsonl    one line per epoch: losses, validation metrics, lr, seconds
    run/stages/<stage>/done.json    the stage finished: a rerun skips it

Staged as the paper trains: ``fcn8`` trains fcn32, then fcn16 from it, then fcn8 from fcn16;
``dilation10-global`` trains the front end, then the context module with the front frozen,
then everything (at a tenth of the learning rate: FINE_TUNE_LR). ImageNet weights load from a
local file (``pretrained``) into the first stage.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mammotools.crops import CropDataset
from mammotools.data import TaskClasses, fold_crops, open_training_data, task_classes, training_sets
from mammotools.errors import InputError, MissingFileError
from mammotools.files import atomic_write_text, output_lock, remove_dead_temporaries
from mammotools.models import (
    IMAGENET,
    MODELS,
    PAPER,
    build_model,
    freeze_front,
    get_spec,
    init_from_previous_stage,
    load_pretrained,
    output_size,
    paper_shape,
)
from mammotools.train import checkpoint
from mammotools.train.config import TrainConfig, read_config, save_config
from mammotools.train.evaluation import EvalImage
from mammotools.train.loop import LOG, Reporter, StageResult, StageSize, train_stage, write_log
from mammotools.train.runtime import Runtime, barrier, main_first, seed_everything

RUN_FILE, CONFIG_FILE, DONE = "run.json", "config.json", "done.json"
CONTEXT_STAGE = "dilation10-context"  # trained with the front end frozen
# Stages that fine-tune every layer of a model already trained: Yu & Koltun's joint stage runs at a
# rate below the context stage's. At the full rate Adam undid the two stages before it (on the
# sample cohort's quick run: val pixel accuracy 81% after the context stage, 43% after "global").
FINE_TUNE_LR = {"dilation10-global": 0.1}


@dataclass
class RunSummary:
    """What a training run did."""

    out: Path
    stages: list[StageResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # stages finished by an earlier run
    notes: list[str] = field(default_factory=list)


def class_weights(classes: TaskClasses, dataset: CropDataset, how: str) -> tuple[torch.Tensor | None, list[float]]:
    """Loss weights per class from the training files' pixel shares x (0..1): ``inverse-share``
    is the paper's w = 1 - x (nearly flat when there are many classes: with 14 all fall in
    0.9-1.0); ``median-frequency`` is median(x) / x (Eigen & Fergus), 0 for absent classes."""
    shares = classes.pixel_shares(dataset.train, {c.name: c.label for c in dataset.table})
    if int((shares > 0).sum()) < 2:
        held = ", ".join(n for n, x in zip(classes.names, shares, strict=True) if x > 0) or "none"
        raise InputError(
            f"{dataset.path}: the training crops hold a single class ({held}): nothing to learn; "
            "cut crops from images annotated with several classes"
        )
    if how == "none":
        return None, [1.0] * len(shares)
    if how == "inverse-share":
        weights = 1.0 - shares
    else:
        present = shares[shares > 0]
        median = float(np.median(present)) if len(present) else 1.0
        weights = np.where(shares > 0, median / np.maximum(shares, 1e-12), 0.0)
    return torch.tensor(weights, dtype=torch.float32), [float(w) for w in weights]


def class_colours(dataset: CropDataset, classes: TaskClasses) -> list[dict[str, Any]]:
    """Each class of the run with the label value and colour it is written back with (predict's
    label maps and QuPath annotations): the dataset table's, and for tumor against non-tumor
    the bottom class's and the Tumor class's."""
    table = dataset.table
    if classes.names == ["Non-tumor", "Tumor"] and table.find("Non-tumor") is None:
        tumor = table.find("Tumor")
        pairs = [("Non-tumor", table.bottom), ("Tumor", tumor if tumor is not None else table.bottom)]
    else:
        pairs = [(name, table.find(name) or table.bottom) for name in classes.names]
    return [{"name": name, "label": c.label, "color": list(c.color)} for name, c in pairs]


def train_run(
    crops_path: str | Path,
    model_name: str,
    out: str | Path,
    config: TrainConfig,
    runtime: Runtime,
    resume: bool = False,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    check_only: bool = False,
) -> RunSummary:
    """Train ``model_name`` (all its stages) on a crop or augmented dataset (or a Cityscapes folder)
    into the run folder ``out``.

    ``check_only``: do every check (data, settings, an existing run in ``out``) and write nothing."""
    out = Path(out)
    if model_name not in MODELS:
        raise InputError(f"--model {model_name!r}: choose one of {', '.join(MODELS)}")
    spec = MODELS[model_name]
    if config.pretrained and not Path(config.pretrained).is_file():
        raise MissingFileError(f"--pretrained {config.pretrained}: not found; give a local weights file (nothing is downloaded)")
    dataset = open_training_data(crops_path)
    if config.folds:
        dataset = fold_crops(dataset, config.folds, config.fold)
    classes = task_classes(dataset, config.task)
    sizes = {stage: stage_size(stage, config) for stage in spec.stages}
    final = sizes[spec.stages[-1]]
    weights, weight_list = class_weights(classes, dataset, config.class_weights)
    normalization = IMAGENET if config.pretrained and spec.backbone is not None else PAPER
    description = {
        "model": model_name,
        "stages": list(spec.stages),
        "dataset": str(dataset.path.resolve()),
        "classes": classes.names,
        "table": class_colours(dataset, classes),
        "lut": classes.lut.tolist(),
        "input_size": final.window,
        "output_size": final.window_out,
        "stage_sizes": {
            stage: {"input": list(s.input), "output": list(s.output), "window": s.window, "window_output": s.window_out}
            for stage, s in sizes.items()
        },
        "input_normalization": normalization,
        "scale": config.scale,
        "class_weights": weight_list,
    }
    summary = RunSummary(out)
    train_sets = {}
    for stage, size in sizes.items():  # every stage's crops checked before anything is written
        train_sets[stage], val_files = training_sets(
            dataset, classes.lut, size.input, size.output, config.seed, scale=config.scale
        )
    val_images = [EvalImage(f.name, f.image_path, f.label_path, f.bits) for f in val_files]
    if not val_images:
        raise InputError(f"{dataset.path}: no validation files; the split put every subject in training")
    probe = build_model(spec.stages[0], len(classes.names), width=config.width, encoder=config.encoder)
    if config.pretrained:  # a file that does not fit is refused before the run folder is made
        load_pretrained(probe, spec.stages[0], Path(config.pretrained))
    del probe
    if check_only:
        _check_run_folder(out, description, config, resume, overwrite)
        return summary
    # --out's lock, as every command that writes takes it; under torchrun rank 0 alone writes and holds it
    with output_lock(out) if runtime.is_main else contextlib.nullcontext():
        with main_first(runtime):  # only once the data is known to fit: a refused start writes nothing
            if runtime.is_main:
                _prepare_run(out, description, config, resume, overwrite)
        _train_stages(out, spec.stages, classes, config, runtime, resume, reporter, summary, train_sets, val_images, sizes,
                      weights, normalization)  # fmt: skip
    return summary


def _train_stages(
    out: Path, stages: tuple[str, ...], classes: TaskClasses, config: TrainConfig, runtime: Runtime, resume: bool,
    reporter: Reporter | None, summary: RunSummary, train_sets: dict[str, Any], val_images: list[EvalImage],
    sizes: dict[str, StageSize], weights: torch.Tensor | None, normalization: str,
) -> None:  # fmt: skip
    """Train each stage of a prepared run folder in turn, skipping those finished before."""
    previous: dict[str, Any] | None = None
    for index, stage in enumerate(stages):
        stage_dir = out / "stages" / stage
        trained = (stage_dir / DONE).is_file() or (stage_dir / checkpoint.CHECKPOINT).is_file()
        if runtime.is_main and trained and not (stage_dir / checkpoint.BEST).is_file():
            # its best model was deleted (damaged, as the error said to): the stage is trained again from its start
            for name in (DONE, checkpoint.CHECKPOINT, LOG):
                (stage_dir / name).unlink(missing_ok=True)
            summary.notes.append(f"{stage}: {stage_dir / checkpoint.BEST} is missing: the stage is trained again")
        barrier(runtime)
        if (stage_dir / DONE).is_file():
            summary.skipped.append(stage)
            previous = checkpoint.load(stage_dir / checkpoint.BEST)["model"]
            continue
        seed_everything(config.seed + index, config.deterministic)
        model = build_model(stage, len(classes.names), width=config.width, encoder=config.encoder)
        if previous is not None:
            init_from_previous_stage(model, previous)
        elif config.pretrained:
            loaded = load_pretrained(model, stage, Path(config.pretrained))
            summary.notes.append(f"{stage}: ImageNet weights for {len(loaded)} layer(s) from {config.pretrained}")
        else:
            summary.notes.append(f"{stage}: no pretrained weights given (--pretrained FILE): trained from scratch")
        if stage == CONTEXT_STAGE:
            freeze_front(model)
        with main_first(runtime):
            if runtime.is_main:
                stage_dir.mkdir(parents=True, exist_ok=True)
        stage_resume = resume and (stage_dir / checkpoint.CHECKPOINT).is_file()
        budget = config.budget_minutes * 60.0 / len(stages)  # each stage an equal share of the run's
        stage_config = replace(config, lr=config.lr * FINE_TUNE_LR.get(stage, 1.0))
        result = train_stage(
            stage, stage_dir, model, train_sets[stage], val_images, classes.names, classes.lut, weights, stage_config,
            runtime, sizes[stage], stage_resume, reporter, normalization, budget,
        )  # fmt: skip
        if not (stage_dir / checkpoint.BEST).is_file():  # not one step fitted the budget (or its share of it)
            raise InputError(
                f"{stage}: the budget ran out before its first step ({budget:.3g} s, the stage's share of --budget); "
                "give a larger --budget"
            )
        summary.stages.append(result)
        if runtime.is_main:
            done: dict[str, Any] = {"best_epoch": result.best_epoch, "best_mean_iou": result.best_miou}
            done |= {"epochs": result.epochs_run}
            done |= {"stopped_early": result.stopped_early, "stopped_by": result.stopped_by, "seconds": result.seconds}
            done |= {"images_seen": result.images_seen, "budget_seconds": budget, "input": list(sizes[stage].input)}
            atomic_write_text(stage_dir / DONE, json.dumps(done, indent=1))
        previous = checkpoint.load(stage_dir / checkpoint.BEST)["model"]  # every rank: written before the last barrier


def _whole_log(records: list[Any], stage_dir: Path) -> bool:
    """Whether a log's records are the stage's: one per epoch in order (as many as done.json says
    when the stage is done), each with its finite loss and seconds (an emptied, doubled or edited
    log is not)."""
    import math

    numbers = ("train_loss", "seconds")
    for i, r in enumerate(records):
        if not isinstance(r, dict) or r.get("epoch") != i:
            return False
        if not all(isinstance(r.get(k), (int, float)) and math.isfinite(r[k]) and r[k] >= 0 for k in numbers):
            return False
    try:
        done = json.loads((stage_dir / DONE).read_text("utf-8"))
    except (OSError, ValueError):
        return bool(records)
    return not isinstance(done, dict) or done.get("epochs") in (None, len(records))


def stage_log(stage_dir: Path) -> list[dict[str, Any]]:
    """A stage's epoch records (its log.jsonl). A log that is missing or has a line that is not a
    record (edited, or cut short) is rewritten from the records its checkpoint.pt keeps; without
    that, one :class:`InputError` naming the file."""
    path = stage_dir / LOG
    try:
        records = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
        if _whole_log(records, stage_dir):
            return records
    except (OSError, ValueError):
        pass
    if (stage_dir / checkpoint.CHECKPOINT).is_file():
        try:
            history = checkpoint.load(stage_dir / checkpoint.CHECKPOINT, resumable=True)["history"]
        except InputError:
            history = None
        if isinstance(history, list):
            write_log(stage_dir, history)
            return history
    raise InputError(
        f"{path}: missing or damaged (a line is not an epoch record), and no checkpoint.pt to rewrite it from; "
        "delete the stage's folder and run the same command again: the stage is trained again"
    )


def stage_size(stage: str, config: TrainConfig) -> StageSize:
    """The input a stage trains at: --input-size (HEIGHTxWIDTH) for every stage when given, else
    the paper's for that stage (Dilation10: 632, 1024 x 1400, 1400); its output, and the square
    window whole images are scored with (the input's shorter side). An input the model cannot
    take is one :class:`InputError` naming the nearest valid sizes."""
    if config.input_size:
        shape = (config.input_size, config.input_width or config.input_size)
    else:
        shape = paper_shape(stage)
    out = (output_size(stage, shape[0]), output_size(stage, shape[1]))
    window = min(shape)
    if get_spec(stage).family == "unet":
        # The unpadded U-Net's valid convolutions make a pixel's score depend on its 92 px of
        # context only, not on the tile it falls in (up to the pooling grid's alignment): whole images are scored with tiles of at
        # least its paper input (572 -> 388), as its authors tile, not hundreds of 68 px tiles.
        window = max(window, get_spec(stage).paper_input)
    return StageSize(shape, out, window, output_size(stage, window))


def _check_run_folder(out: Path, description: dict[str, Any], config: TrainConfig, resume: bool, overwrite: bool) -> None:
    """Refuse an ``out`` that is not this run (same model, data, settings), unless ``overwrite``."""
    run_file = out / RUN_FILE
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder; choose another --out")
    if run_file.is_file():
        try:
            earlier = json.loads(run_file.read_text("utf-8"))
        except (ValueError, OSError):
            earlier = None
        if not isinstance(earlier, dict) and not overwrite and _has_epochs(out):
            raise InputError(f"{run_file}: damaged (not a run.json mammotools wrote); pass --overwrite to start the run over")
        try:
            same = _comparable(earlier) == _comparable(description) and _identity(read_config(out / CONFIG_FILE)) == _identity(
                config
            )
        except (ValueError, KeyError, TypeError, AttributeError, InputError, OSError):
            same = False
        if not same and not overwrite and _has_epochs(out):  # a run without a complete epoch has nothing to lose
            raise InputError(
                f"{out}: a run of other settings, data or model; pass --overwrite to start it over, or choose another --out"
            )
        if not overwrite and not resume and any((out / "stages").glob(f"*/{checkpoint.CHECKPOINT}")):
            if not _all_done(out, description):
                raise InputError(
                    f"{out}: this run was stopped before it finished; pass --resume to continue it, or --overwrite to start over"
                )
    elif out.exists() and any(out.iterdir()):
        raise InputError(f"--out {out}: not empty and not a training run; choose an empty or new --out")


def _has_epochs(out: Path) -> bool:
    """Whether the run folder holds a complete epoch (a checkpoint or a stage's best model): a
    folder without one (a start that failed in its first epoch) is taken over by other settings."""
    stages = out / "stages"
    return any(stages.glob(f"*/{checkpoint.CHECKPOINT}")) or any(stages.glob(f"*/{checkpoint.BEST}"))


def _comparable(description: dict[str, Any]) -> dict[str, Any]:
    """run.json without what only describes the run's outputs (the class colours, recorded since 0.1)."""
    return {k: v for k, v in description.items() if k != "table"}


def _prepare_run(out: Path, description: dict[str, Any], config: TrainConfig, resume: bool, overwrite: bool) -> None:
    """Create the run folder, or check that an existing one is this run (same model, data, settings)."""
    _check_run_folder(out, description, config, resume, overwrite)
    if (out / RUN_FILE).is_file() and (overwrite or not _has_epochs(out)):  # start over, whatever the earlier run was
        shutil.rmtree(out / "stages", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(out)  # a checkpoint a killed run was writing (as large as the checkpoint)
    atomic_write_text(out / RUN_FILE, json.dumps(description, indent=1))
    save_config(config, out / CONFIG_FILE)


NOT_IDENTITY = ("workers", "val_batch", "device")  # how a run is computed here, not what it computes


def _identity(config: TrainConfig) -> dict[str, Any]:
    """The settings that make a run what it is (a resume may change the others)."""
    return {k: v for k, v in asdict(config).items() if k not in NOT_IDENTITY}


def _all_done(out: Path, description: dict[str, Any]) -> bool:
    return all((out / "stages" / s / DONE).is_file() for s in description["stages"])


def stage_window(description: dict[str, Any], stage: str | None = None) -> tuple[int, int]:
    """(window, output) whole images are scored with by ``stage`` (None: the last) of a run's
    run.json: the stage's own (Dilation10's stages train at different inputs); runs written
    before stage sizes were recorded: the run's one size."""
    stage = stage or description["stages"][-1]
    recorded = description.get("stage_sizes", {}).get(stage)
    if recorded:
        return int(recorded["window"]), int(recorded["window_output"])
    return int(description["input_size"]), int(description["output_size"])


def run_normalization(description: dict[str, Any]) -> str:
    """How a run's models are fed (models.inputs): recorded in run.json; older runs: the paper's scaling."""
    return str(description.get("input_normalization", PAPER))


def _benchmark_folder(folder: Path) -> str:
    """The message for a benchmark's --out given where one training run is expected: its runs."""
    runs = sorted(p for p in (folder / "runs").glob("*") if (p / RUN_FILE).is_file())
    listed = ", ".join(str(p) for p in runs[:12]) + (f" and {len(runs) - 12} more" if len(runs) > 12 else "")
    return f"{folder}: a benchmark folder, not one training run; give one of its runs" + (
        f": {listed}" if runs else " (it has no finished runs yet)"
    )


def final_model(run: Path, stage: str | None = None) -> tuple[dict[str, Any], dict[str, Any], TrainConfig]:
    """(run.json, the best.pt of ``stage`` (None: the last stage), config) of a finished or stopped run."""
    run_file = run / RUN_FILE
    if not run_file.is_file():
        raise InputError(
            f"{run}: not a training run (no run.json); train one with `mammotools train CROPS --model NAME --out RUN`"
        )
    try:
        description = json.loads(run_file.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError):
        description = None
    if isinstance(description, dict) and description.get("kind") == "mammotools benchmark":
        raise InputError(_benchmark_folder(run))
    try:
        stages = list(description["stages"]) if isinstance(description, dict) else None
    except (KeyError, TypeError):
        stages = None
    if description is None or not stages or not isinstance(description.get("classes"), list):
        raise InputError(f"{run_file}: damaged (not a run.json mammotools wrote); train the run again") from None
    if not (run / CONFIG_FILE).is_file():
        raise InputError(f"{run}: not a complete training run (no {CONFIG_FILE}); train the run again")
    last = stage or stages[-1]
    if last not in stages:
        raise InputError(f"{run}: has no stage {last!r}; its stages are {', '.join(stages)}")
    try:
        stage_window(description, last)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InputError(
            f"{run_file}: damaged (no input size of the stage {last}); train the run again (or restore its run.json)"
        ) from None
    best = run / "stages" / last / checkpoint.BEST
    if not best.is_file():
        raise InputError(f"{run}: the stage {last} has no best model yet; train (or --resume) the run first")
    config = read_config(run / CONFIG_FILE)
    state = checkpoint.load(best)
    with torch.device("meta"):  # the shapes only: nothing allocated
        model = build_model(last, len(description["classes"]), width=config.width, encoder=config.encoder)
    why = checkpoint.weights_mismatch(model, state["model"])
    if why:
        raise InputError(
            f"{best}: weights of another model, width or class count than {run_file} and {CONFIG_FILE} describe ({why}); "
            f"{checkpoint.RETRAIN}"
        )
    checkpoint.check_finite(state["model"], best)
    return description, state, config

"""``benchmark``: train every model by one protocol, score each on the same whole validation
images, and write the report.

Layout of ``--out``::

    run.json                          protocol, seeds, split, versions, hardware, start and end
    runs/<model>-seed<N>/             a training run (mammotools train's layout) per model and seed
                                      (runs/<model>-fold<K>-seed<N>/ with --folds); a staged run
                                      (fcn8: fcn32 -> fcn16 -> fcn8) serves each stage
    runs/<run>/eval-<stage>/          evaluate's outputs for each benchmarked stage
    results.md, results.csv, results.json, confusion/, figures/, report.html   (report.py)

A rerun with the same settings reuses every finished run and evaluation; a killed benchmark
resumes where it stopped (each run resumes from its last complete epoch).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mammotools.benchmark.protocol import (
    QUICK_BATCH,
    QUICK_EPOCH_CROPS,
    QUICK_EPOCHS,
    QUICK_SMP_WIDTH,
    QUICK_WIDTH,
    Job,
    plan_jobs,
)
from mammotools.benchmark.sources import MAMMOGRAPHY, open_sources
from mammotools.errors import InputError, MammoError
from mammotools.files import atomic_write_text, remove_dead_temporaries

BUDGET_EPOCH_CAP = 10_000  # epochs per stage under --budget without --epochs: the budget stops training first
RUN_FILE = "run.json"
KIND = "mammotools benchmark"
RUNS = "runs"
BEST = "best.pt"


@dataclass
class BenchmarkSettings:
    """What a benchmark compares and how (``overrides``: training settings, as ``mammotools
    train`` takes them, applied to every model)."""

    models: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    folds: int = 0  # cross-validation by subject: K folds, each scored by the models trained without it
    dataset: str = MAMMOGRAPHY  # or "cityscapes"
    quick: bool = False
    recipe: str = "fast"
    overrides: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    overwrite: bool = False
    pictures: int = 3  # validation images shown side by side in the report


@dataclass
class Entry:
    """One benchmarked model at one seed: where its run and evaluation are, and what they cost."""

    model: str
    seed: int
    chain: str
    run: Path
    evaluation: Path
    input_size: int | str  # the stage's training input: a side, or "HEIGHTxWIDTH"
    crops: Path
    train_seconds: float
    epochs: int
    parameters: int
    metrics: dict[str, Any]
    fold: int = 0  # 1..K with --folds
    failed: str = ""  # why training failed (NaN loss, out of memory): the row is marked failed, metrics are {}
    images_seen: int = 0  # training windows seen, its earlier stages included
    stopped_by: str = ""  # how its last stage ended: "epochs", "patience" or "budget"

    @property
    def tag(self) -> str:
        """``seed0``, or ``fold2-seed0``: the run's name after its model."""
        return f"seed{self.seed}" if not self.fold else f"fold{self.fold}-seed{self.seed}"


@dataclass
class BenchmarkResult:
    out: Path
    entries: list[Entry]
    trained: list[str]  # runs trained (or resumed) now
    reused: list[str]  # runs finished by an earlier benchmark
    failed: list[str] = field(default_factory=list)  # runs whose training failed (NaN loss, out of memory)
    report: Path | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # results.json's "models": one per model


class Events:
    """What the benchmark tells the user (the CLI prints; the library stays silent)."""

    def run_start(self, job: Job, repeat: str, config: dict[str, Any]) -> None: ...
    def run_end(self, job: Job, repeat: str, reused: bool) -> None: ...
    def evaluated(self, model: str, repeat: str, metrics: dict[str, Any], reused: bool) -> None: ...
    def run_failed(self, job: Job, repeat: str, reason: str) -> None: ...


def repeats(settings: BenchmarkSettings) -> list[tuple[int, int]]:
    """(seed, fold) of every repetition of the protocol (fold 0: the dataset's own hold-out)."""
    return [(seed, fold) for seed in settings.seeds for fold in (range(1, settings.folds + 1) if settings.folds else [0])]


def repeat_words(seed: int, fold: int, folds: int) -> str:
    return f"seed {seed}" if not fold else f"fold {fold} of {folds}, seed {seed}"


def run_name(chain: str, seed: int, fold: int) -> str:
    return f"{chain}-seed{seed}" if not fold else f"{chain}-fold{fold}-seed{seed}"


def job_config(job: Job, seed: int, settings: BenchmarkSettings, fold: int = 0) -> Any:
    """The training settings of one run: the recipe, --quick's sizes, the user's overrides, the
    job's input size, the seed and the fold."""
    from mammotools.models import MODELS
    from mammotools.train import make_config

    values: dict[str, Any] = {}
    if settings.quick:
        smp = MODELS[job.chain].family == "smp"
        values.update(width=QUICK_SMP_WIDTH if smp else QUICK_WIDTH, epochs=QUICK_EPOCHS, epoch_crops=QUICK_EPOCH_CROPS,
                      batch_size=QUICK_BATCH, patience=0,
                      warmup_epochs=0.0)  # fmt: skip
        if smp:
            values["encoder"] = "resnet18"
    values.update({k: v for k, v in settings.overrides.items() if v is not None})
    if MODELS[job.chain].family != "smp":
        values.pop("encoder", None)  # --encoder picks the smp models' encoder; the paper's models have fixed backbones
    if settings.overrides.get("budget_minutes") and settings.overrides.get("epochs") is None:
        values["epochs"] = BUDGET_EPOCH_CAP  # the budget decides when training stops
    if not job.per_stage:  # --input-size as this model takes it, or --quick's one side
        height, width = (job.shape * 2)[:2] if job.shape else (job.input_size, job.input_size)
        values.update(input_size=height, input_width=width if width != height else 0)
    values.update(seed=seed, device=settings.device)
    if fold:
        values.update(folds=settings.folds, fold=fold)
    return make_config(settings.recipe, None, **values)


def _prepare_out(out: Path) -> None:
    """Make ``out``, or check it holds an earlier benchmark (never a training run or anything else)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder; choose another --out")
    if (out / RUN_FILE).is_file():
        try:
            earlier = json.loads((out / RUN_FILE).read_text("utf-8"))
        except (ValueError, OSError):
            earlier = None
        if not isinstance(earlier, dict) or earlier.get("kind") != KIND:
            raise InputError(f"--out {out}: holds a training run or other output, not a benchmark; choose a new --out")
    elif out.is_dir() and any(out.iterdir()):
        raise InputError(f"--out {out}: not empty and not a benchmark; choose an empty or new --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise InputError(f"--out {out}: cannot write there ({error.strerror}); choose a folder you can write to") from None
    remove_dead_temporaries(out)  # a report file a killed benchmark was writing


def _pretrained_fits(jobs: list[Job], configs: dict[tuple[str, int, int], Any], path: str) -> dict[str, bool]:
    """Which runs the --pretrained file fits (its backbone: VGG16 for FCN and Dilation10, ResNet-18
    for DeepLabV3, an smp encoder's for smp models, none for the U-Net), tried on each run's first
    stage before anything trains. A file that fits none of them is an error."""
    from mammotools.models import MODELS, build_model, load_pretrained

    fits: dict[str, bool] = {}
    reasons = []
    for job in jobs:
        config = next(c for (chain, _, _), c in configs.items() if chain == job.chain)
        first = MODELS[job.chain].stages[0]
        try:
            load_pretrained(build_model(first, 2, width=config.width, encoder=config.encoder), first, Path(path))
            fits[job.chain] = True
        except InputError as error:
            fits[job.chain] = False
            reasons.append(f"{job.chain}: {error}")
    if not any(fits.values()):
        raise InputError(f"--pretrained {path} fits none of the models ({'; '.join(reasons)[:600]})")
    return fits


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("mammotools", "torch", "torchvision", "segmentation-models-pytorch", "numpy", "opencv-python-headless"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _hardware(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "machine": platform.machine(),
        "system": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "device": device,
        "cuda": torch.version.cuda,
        "gpu": None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


@dataclass
class TrainingCost:
    """What training a benchmarked stage took, its earlier stages included (fcn16's includes fcn32)."""

    seconds: float = 0.0
    epochs: int = 0
    images_seen: int = 0
    stopped_by: str = ""  # how the stage itself ended (done.json): epochs, patience or budget


def training_cost(run: Path, stages: tuple[str, ...], upto: str) -> TrainingCost:
    """Seconds, epochs and training windows of ``run``'s stages up to and including ``upto``
    (from each stage's log.jsonl), and how ``upto`` ended (its done.json)."""
    from mammotools.train import stage_log

    cost = TrainingCost()
    for stage in stages[: stages.index(upto) + 1]:
        for record in stage_log(run / "stages" / stage):  # a damaged log is rewritten from the checkpoint
            cost.seconds += float(record.get("seconds", 0.0))
            cost.images_seen += int(record.get("images_seen", 0))
            cost.epochs += 1
    done = run / "stages" / upto / "done.json"
    try:
        recorded = json.loads(done.read_text("utf-8"))
        cost.stopped_by = str(recorded.get("stopped_by", "")) if isinstance(recorded, dict) else ""
    except (OSError, ValueError):
        pass
    return cost


def _stage_input(description: dict[str, Any], stage: str) -> int | str:
    """The input a stage trained at, from its run.json: a side (256) or "HEIGHTxWIDTH"."""
    recorded = description.get("stage_sizes", {}).get(stage)
    if not recorded:
        return int(description["input_size"])
    h, w = recorded["input"]
    return int(h) if h == w else f"{h}x{w}"


def _class_count(run: Path) -> int:
    try:
        return len(json.loads((run / "run.json").read_text("utf-8"))["classes"])
    except (OSError, ValueError, KeyError):
        return 2


METRIC_KEYS = ("pixel_accuracy", "mean_iou", "mean_accuracy", "mean_dice", "classes", "images", "seconds", "scored")


def _current(eval_dir: Path, best: Path, expected: list[list[str]]) -> bool:
    """Whether an earlier evaluation can be reused: complete (metrics.json, written last), newer
    than the model, of the same images with the same truth, and whole: a metrics.json or
    per_image.csv that does not parse as evaluate writes it (edited, damaged) is redone."""
    metrics_file = eval_dir / "metrics.json"
    if not all((eval_dir / n).is_file() for n in ("metrics.json", "confusion.csv", "per_image.csv")):
        return False
    if metrics_file.stat().st_mtime < best.stat().st_mtime:
        return False
    try:
        metrics = json.loads(metrics_file.read_text("utf-8"))
    except (ValueError, OSError):
        return False
    if not isinstance(metrics, dict) or any(k not in metrics for k in METRIC_KEYS) or not isinstance(metrics["classes"], dict):
        return False
    return metrics["scored"] == expected and _per_image_whole(eval_dir / "per_image.csv", list(metrics["classes"]), expected)


def _per_image_whole(path: Path, classes: list[str], expected: list[list[str]]) -> bool:
    """Whether per_image.csv is evaluate's: its columns (with the per-image pixel counts the
    subject-bootstrap intervals need; older evaluations lack them), one row per scored image,
    numbers where numbers belong."""
    columns = ["name", "pixels", "pixel_accuracy", "mean_iou", "mean_dice", *[f"iou_{c}" for c in classes]]
    columns += [f"{kind}_{c}" for kind in ("tp", "true", "predicted") for c in classes]
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            if next(reader, None) != columns:
                return False
            rows = list(reader)
        names = []
        for row in rows:
            if len(row) != len(columns):
                return False
            names.append(row[0])
            int(row[1])
            for value in row[2 : 5 + len(classes)]:  # shares: a number from 0 to 1 (empty: class absent)
                if value and not 0.0 <= float(value) <= 1.0:  # NaN fails this too
                    return False
            if any(int(v) < 0 for v in row[5 + len(classes) :]):
                return False
    except (OSError, ValueError, UnicodeDecodeError, csv.Error):
        return False
    return sorted(names) == sorted(name for name, _ in expected)


def failure_reason(error: Exception) -> str:
    """Why a run failed, in one line: a user-facing error's message, else the exception's type and
    first line (a crash of the model's code, e.g. BatchNorm given one value per channel)."""
    if isinstance(error, MammoError):
        return str(error)
    first = (str(error).strip().splitlines() or [""])[0][:300]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _parameters(model: str, classes: int, config: Any) -> int:
    from mammotools.models import build_model

    net = build_model(model, classes, width=config.width, encoder=config.encoder)
    return sum(p.numel() for p in net.parameters())


def run_benchmark(
    dataset_path: str | Path,
    crop_paths: list[Path],
    out: str | Path,
    settings: BenchmarkSettings,
    reporter: Any = None,
    events: Events | None = None,
) -> BenchmarkResult:
    """Train and score ``settings.models`` on the crop datasets, report into ``out`` (layout above).

    Every check (data, models, sizes, weights, earlier runs in ``out``) comes before anything is
    written, so a refused benchmark leaves ``out`` as it was."""
    from mammotools.models import MODELS
    from mammotools.train import evaluate_run, scored_identity, start_runtime, stop_runtime, train_run

    events = events or Events()
    out, dataset_path = Path(out), Path(dataset_path)
    if not settings.models:
        raise InputError("--models: name at least one model")
    if not settings.seeds:
        raise InputError("--seeds: give at least one seed, e.g. 0 or 0,1,2")
    scored = open_sources(settings.dataset, dataset_path, [Path(p) for p in crop_paths], settings.folds)
    scale = float(settings.overrides.get("scale") or 1.0)
    jobs = plan_jobs(
        settings.models, scored.crop_sets, int(settings.overrides.get("input_size") or 0), scale, settings.quick,
        int(settings.overrides.get("input_width") or 0),
    )  # fmt: skip
    plan = repeats(settings)
    configs = {(job.chain, seed, fold): job_config(job, seed, settings, fold) for job in jobs for seed, fold in plan}
    pretrained = str(settings.overrides.get("pretrained") or "")
    fits = _pretrained_fits(jobs, configs, pretrained) if pretrained else {}
    for (chain, seed, fold), config in configs.items():
        if pretrained and not fits[chain]:  # this model starts from scratch; run.json and the report say so
            configs[(chain, seed, fold)] = replace(config, pretrained="")
    runtime = start_runtime(settings.device, str(settings.overrides.get("precision") or "auto"))
    for job in jobs:
        for seed, fold in plan:
            run_dir = out / RUNS / run_name(job.chain, seed, fold)
            try:
                train_run(job.crops, job.chain, run_dir, configs[(job.chain, seed, fold)], runtime, True, settings.overwrite,
                          check_only=True)  # fmt: skip
            except InputError as error:
                if "a run of other settings" in str(error) or "not a training run" in str(error):
                    raise InputError(
                        f"{run_dir}: trained by an earlier benchmark with other settings; choose a new --out, "
                        "or pass --overwrite to train it again"
                    ) from None
                raise
    _prepare_out(out)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    record: dict[str, Any] = {
        "kind": KIND,
        "dataset": str(scored.path.resolve()),
        "dataset_kind": scored.kind,
        "crops": [str(c.path.resolve()) for c in scored.crop_sets],
        "models": settings.models,
        "seeds": settings.seeds,
        "folds": settings.folds,
        "quick": settings.quick,
        "recipe": settings.recipe,
        "overrides": {k: v for k, v in settings.overrides.items() if v is not None},
        "runs": [
            {
                "model": job.chain,
                "scores": list(job.scored),
                "crops": str(job.crops),
                "crop_size": job.crop_size,
                "input_size": job.input_size,
                "pretrained": bool(configs[(job.chain, *plan[0])].pretrained),
            }
            for job in jobs
        ],
        "configs": {run_name(chain, seed, fold): asdict(config) for (chain, seed, fold), config in configs.items()},
        "split": {
            "train": scored.training,
            "val": len(scored.val),
            "val_images": scored.val,
            **({"folds": {str(k): scored.fold_images(k) for k in range(1, settings.folds + 1)}} if settings.folds else {}),
        },
        "versions": _versions(),
        "hardware": _hardware(settings.device),
        "started": started,
        "finished": None,
    }
    atomic_write_text(out / RUN_FILE, json.dumps(record, indent=1))
    result = BenchmarkResult(out, [], [], [])
    try:
        for seed, fold in plan:
            words = repeat_words(seed, fold, settings.folds)
            for job in jobs:
                config = configs[(job.chain, seed, fold)]
                run_dir = out / RUNS / run_name(job.chain, seed, fold)
                events.run_start(job, words, asdict(config))

                def failed(model: str, reason: str, job: Job = job, run_dir: Path = run_dir, config: Any = config,
                           seed: int = seed, fold: int = fold) -> Entry:  # fmt: skip
                    return Entry(model, seed, job.chain, run_dir, run_dir / f"eval-{model}", job.input_size, job.crops,
                                 0.0, 0, _parameters(model, _class_count(run_dir), config), {}, fold, failed=reason)  # fmt: skip

                try:
                    summary = train_run(job.crops, job.chain, run_dir, config, runtime, True, settings.overwrite, reporter)
                except OSError:
                    raise  # the machine (a full disk): the next runs would fail alike
                except Exception as error:  # NaN loss, out of memory, a crash: its rows are marked failed, the others go on
                    reason = failure_reason(error)
                    events.run_failed(job, words, reason)
                    result.failed.append(run_dir.name)
                    result.entries.extend(failed(model, reason) for model in job.scored)
                    continue
                reused = not summary.stages
                (result.reused if reused else result.trained).append(run_dir.name)
                events.run_end(job, words, reused)
                stages = MODELS[job.chain].stages
                description = json.loads((run_dir / "run.json").read_text("utf-8"))
                for model in job.scored:
                    eval_dir = run_dir / f"eval-{model}"
                    metrics_file = eval_dir / "metrics.json"
                    best = run_dir / "stages" / model / BEST
                    names = scored.fold_images(fold) if fold else scored.val
                    expected = scored_identity([(n, scored.files[n][1]) for n in names])
                    try:
                        fresh = _current(eval_dir, best, expected)
                        if not fresh:  # the benchmark owns its runs' evaluation folders: a stale one is replaced
                            if eval_dir.is_dir():  # whatever is in it (a damaged or missing evaluation.json too)
                                shutil.rmtree(eval_dir)
                            evaluate_run(run_dir, scored.path, eval_dir, device=settings.device, stage=model, overwrite=True)
                        metrics = json.loads(metrics_file.read_text("utf-8"))
                        cost = training_cost(run_dir, stages, model)
                    except OSError:
                        raise
                    except Exception as error:
                        reason = failure_reason(error)
                        events.run_failed(job, words, reason)
                        if run_dir.name not in result.failed:
                            result.failed.append(run_dir.name)
                        result.entries.append(failed(model, reason))
                        continue
                    events.evaluated(model, words, metrics, fresh)
                    entry = Entry(model, seed, job.chain, run_dir, eval_dir, _stage_input(description, model), job.crops,
                                  cost.seconds, cost.epochs, _parameters(model, len(metrics["classes"]), config), metrics,
                                  fold)  # fmt: skip
                    entry.images_seen, entry.stopped_by = cost.images_seen, cost.stopped_by
                    result.entries.append(entry)
    finally:
        stop_runtime(runtime)
    from mammotools.benchmark.report import remove_report, write_report

    order = {m: i for i, m in enumerate(settings.models)}
    result.entries.sort(key=lambda e: (order[e.model], e.seed, e.fold))
    record["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    record["wall_seconds"] = round(time.time() - datetime.fromisoformat(started).timestamp(), 1)
    record["trained"], record["reused"], record["failed"] = result.trained, result.reused, result.failed
    remove_report(out)  # an earlier report may show other models, seeds or pictures
    result.report, result.rows = write_report(out, scored, result.entries, record, settings)
    atomic_write_text(out / RUN_FILE, json.dumps(record, indent=1))
    return result

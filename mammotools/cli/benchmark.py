"""The ``benchmark`` command: every model by one protocol, one report.

torch, scipy and matplotlib are imported inside the command."""

from __future__ import annotations

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
    one_writer,
    precision_option,
    stops_saying,
    user_errors,
)
from mammotools.cli.training import LazyChoice, ProgressReporter, _pct, _recipes

PATH = click.Path(path_type=Path)


def _seeds(ctx: click.Context, param: click.Parameter, text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give seeds as whole numbers separated by commas, e.g. 0,1,2") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"{text!r}: give distinct seeds >= 0, e.g. 0,1,2")
    return seeds


def _spread(row: dict[str, Any], metric: str, seeds: int) -> str:
    value = _pct(row[metric])
    return value if seeds < 2 or row[f"{metric}_std"] is None else f"{value} ±{100 * row[f'{metric}_std']:.1f}"


@click.command(
    "benchmark",
    short_help="Train and compare the paper's models; write a report.",
    epilog=example(
        "mammotools benchmark dataset/ crops256-aug/ --quick --out bench-quick/",
        "mammotools benchmark dataset/ crops256/ crops900/ --models fcn8,unet --budget 10 --out bench/",
    ),
)
@click.argument("dataset", type=PATH)
@click.argument("more_crops", nargs=-1, type=PATH, metavar="[CROPS]...")
# --crops A B C was a second way to give CROPS (B and C landing in the argument): kept working, unlisted.
@click.option("--crops", multiple=True, type=PATH, hidden=True)
@click.option("--out", required=True, type=FOLDER, help="Benchmark folder: the runs, the tables and report.html.")
@click.option("--models", help="Comma-separated models (default: the paper's eight; any registered model).")
@click.option(
    "--seeds", default="0", callback=_seeds, help="Seeds to repeat the protocol with, e.g. 0,1,2 (mean and std reported)."
)
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    help="Cross-validation by subject: K folds, each scored by models trained on the others (make-crops folders).",
)
@click.option(
    "--dataset",
    "dataset_kind",
    type=click.Choice(["mammography", "cityscapes"]),
    default="mammography",
    help="cityscapes: DATASET is a Cityscapes folder (leftImg8bit/, gtFine/), trained on whole scenes; no CROPS.",
)
@click.option(
    "--quick", is_flag=True, help="Width 1/8, inputs up to 128 px, 2 epochs of 800 crops: about 5 minutes on a 2-core CPU."
)
@click.option("--recipe", type=LazyChoice(_recipes), default="fast", help="Training recipe for every model.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs per stage, every model (default: the recipe's).")
@click.option(
    "--epoch-crops",
    type=click.IntRange(min=1),
    help="Training crops per epoch, a fresh random draw each epoch (default: every training crop; --quick 800).",
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Batch per process (default: the recipe's).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Learning rate (default: the recipe's).")
@click.option("--width", type=click.FloatRange(min=0, min_open=True), help="Channel width of the paper models.")
@click.option("--encoder", help="smp models: the encoder (e.g. resnet18; default resnet34, --quick resnet18).")
@click.option(
    "--input-size",
    type=INPUT_SIZE,
    help="One input for every model and stage: a side (256) or HEIGHTxWIDTH, each model taking the largest it can "
    "up to it (the unpadded U-Net: 252) (default: each stage's paper input).",
)
@budget_option(
    "Equal training budget: wall-clock minutes per run, training and validation (a staged run's stages, "
    "fcn32 -> fcn16 -> fcn8, share it equally); without --epochs the epochs are not capped."
)
@click.option("--scale", type=click.FloatRange(0.05, 4.0), help="Resize crops and images by this before the models.")
@click.option("--pretrained", type=FILE, help="Local ImageNet weights for the first stage of every model.")
@device_option()
@precision_option
@loader_workers_option
@alias("--workers", "workers", click.IntRange(min=0))
@click.option("--pictures", type=click.IntRange(min=0), default=3, help="Validation images shown side by side.")
@click.option("--overwrite", is_flag=True, help="Train again the runs in --out that have other settings.")
@user_errors
@stops_saying(
    "the runs keep their last complete epoch; run the same benchmark command again to resume (finished runs are reused)."
)
@one_writer
def benchmark_cmd(
    dataset: Path,
    more_crops: tuple[Path, ...],
    crops: tuple[Path, ...],
    out: Path,
    models: str | None,
    seeds: list[int],
    folds: int | None,
    dataset_kind: str,
    quick: bool,
    recipe: str,
    device: str,
    pictures: int,
    overwrite: bool,
    **values: Any,
) -> None:
    """Train every model on the CROPS datasets (make-crops or augment folders cut from DATASET) by
    one protocol and score each on the same whole validation images of DATASET (an export-qupath
    dataset with its split).

    Each model trains on the smallest crop dataset that holds its input; staged models share
    runs (fcn16 is the stage after fcn32). --seeds and --folds (by subject) repeat the protocol.
    --dataset cityscapes: DATASET is a Cityscapes folder, shown beside the paper's Table 9.
    A rerun reuses finished runs; a killed one resumes.
    Writes results.md/.csv/.json, confusion matrices, figures and report.html into --out.
    """
    from mammotools.benchmark import BenchmarkSettings, Events, epochs_words, flags, parse_models, run_benchmark
    from mammotools.models import MODELS

    if values.get("pretrained") is not None:
        values["pretrained"] = str(values["pretrained"])
    input_size_values(values)
    settings = BenchmarkSettings(
        models=parse_models(models, MODELS),
        seeds=seeds,
        folds=folds or 0,
        dataset=dataset_kind,
        quick=quick,
        recipe=recipe,
        overrides=values,
        device=device,
        overwrite=overwrite,
        pictures=pictures,
    )

    class Say(Events):
        def run_start(self, job: Any, repeat: str, config: dict[str, Any]) -> None:
            inputs = f"each stage's paper input (up to {job.input_size} px)" if job.per_stage else f"{job.input_size} px inputs"
            budget = config.get("budget_minutes") or 0
            length = f"a budget of {budget:g} min" if budget else epochs_words(config)
            click.echo(
                f"== {job.chain} (scores {', '.join(job.scored)}), {repeat}: {inputs} from "
                f"{job.crops} ({job.crop_size} px crops), width {config['width']:g}, {length}",
                err=True,
            )

        def run_failed(self, job: Any, repeat: str, reason: str) -> None:
            click.echo(f"   {job.chain}, {repeat}: TRAINING FAILED: {reason}", err=True)

        def run_end(self, job: Any, repeat: str, reused: bool) -> None:
            if reused:
                click.echo(f"   {job.chain}, {repeat}: trained by an earlier run, reused", err=True)

        def evaluated(self, model: str, repeat: str, metrics: dict[str, Any], reused: bool) -> None:
            click.echo(
                f"   {model}, {repeat}: pixel acc {_pct(metrics['pixel_accuracy'])}, mIoU {_pct(metrics['mean_iou'])}, "
                f"mean class acc {_pct(metrics['mean_accuracy'])}" + (" (scored earlier)" if reused else ""),
                err=True,
            )

    result = run_benchmark(dataset, [*crops, *more_crops], out, settings, ProgressReporter(), Say())
    click.echo(
        f"{'QUICK benchmark' if quick else 'Benchmark'}: {len(settings.models)} model(s), seed(s) {','.join(map(str, seeds))}"
        + (f", {folds} folds by subject" if folds else "")
        + (" (mean ± std over runs)" if len(seeds) * (folds or 1) > 1 else "")
    )
    runs = len(seeds) * (folds or 1)
    w = 14 if runs > 1 else 10  # room for the spread
    click.echo(f"  {'model':<20} {'pixel acc':>{w}} {'mean IoU':>{w}} {'class acc':>{w}} {'mean Dice':>{w}}")
    for row in result.rows:
        cells = [_spread(row, m, runs) for m in ("pixel_accuracy", "mean_iou", "mean_accuracy", "mean_dice")]
        click.echo(f"  {row['model']:<20} " + " ".join(f"{c:>{w}}" for c in cells))
    for line in flags(result.rows):
        click.echo(f"  ! {line}", err=True)
    click.echo(f"Report: {result.report}  (tables: results.md, results.csv, results.json)")
    if result.failed:
        click.echo(
            f"Error: {len(result.failed)} run(s) failed to train: {', '.join(result.failed)} (marked failed in the report)",
            err=True,
        )
        raise SystemExit(1)

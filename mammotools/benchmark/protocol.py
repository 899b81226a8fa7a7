"""One protocol for every model: which models, which crop dataset each trains on, at what input
size, with which settings, and which training runs that takes.

Staged models share runs: fcn16 is the fcn stage after fcn32, so a benchmark of fcn32, fcn16
and fcn8 trains one fcn8 run (fcn32 -> fcn16 -> fcn8) and scores each stage's best model; the
same for the three Dilation10 stages. Each run trains on the smallest given crop dataset whose
crops cover its input; every crop dataset must come from the benchmark's export dataset and
carry its subject split, so every model is scored on the same whole validation images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mammotools.crops import CropDataset, open_crop_dataset
from mammotools.errors import InputError
from mammotools.export import ExportDataset
from mammotools.split import SPLIT_FILE, read_split

# The paper's eight models, in its order (section 2; Tables 9 and 10).
PAPER_MODELS = (
    "fcn32",
    "fcn16",
    "fcn8",
    "unet",
    "dilation10-front",
    "dilation10-context",
    "dilation10-global",
    "deeplabv3-r18",
)

# --quick: minutes on a laptop CPU. Widths keep each architecture (strides, skips, dilations)
# at 1/8 of the paper's channels (at 1/16 U-Net's last level has 4 channels for 14 classes and
# learns nothing in minutes); inputs at most 128 px (the unpadded U-Net: the largest it takes
# inside the crops); each epoch a fresh draw of 800 training crops; no warm-up.
QUICK_WIDTH = 0.125
QUICK_SMP_WIDTH = 0.25
QUICK_INPUT = 128
QUICK_EPOCHS = 2
QUICK_EPOCH_CROPS = 800
QUICK_BATCH = 4


@dataclass(frozen=True)
class Job:
    """One training run of the benchmark: ``chain`` trained (all its stages) on ``crops``; the
    stages in ``scored`` are the benchmark's models."""

    chain: str
    scored: tuple[str, ...]
    crops: Path
    crop_size: int
    input_size: int  # the largest input side of its stages (what its crops must hold)
    per_stage: bool = False  # each stage trains at the paper's own input (Dilation10: 632, 1024x1400, 1400)
    shape: tuple[int, ...] = ()  # the one (height, width) every stage trains at, unless per_stage


def parse_models(text: str | None, registered: dict) -> list[str]:
    """``"unet,fcn8"`` -> ["unet", "fcn8"]; None or empty: the paper's eight. Unknown names are
    one error listing the valid ones."""
    if text is None:
        return list(PAPER_MODELS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError(
            f"--models {text!r}: name at least one model, e.g. --models unet,fcn8 (leave it out for the paper's eight)"
        )
    unknown = [n for n in names if n not in registered]
    if unknown:
        raise InputError(f"--models: unknown model(s) {', '.join(unknown)}; choose from {', '.join(registered)}")
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen


def chains(models: list[str], stages_of: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """The runs to train: run model -> the benchmark models scored from its stages, in order.

    A model is scored from the longest requested run whose stages hold it (fcn16 from an fcn8
    run when fcn8 is requested too, else from its own fcn32 -> fcn16 run)."""
    runs: dict[str, list[str]] = {}
    for model in models:
        holders = [m for m in models if model in stages_of[m]]
        chain = max(holders, key=lambda m: len(stages_of[m]))
        runs.setdefault(chain, []).append(model)
    return {chain: sorted(scored, key=stages_of[chain].index) for chain, scored in runs.items()}


def source_dataset(crops: CropDataset) -> Path | None:
    """The export dataset a crop (or augmented) dataset was cut from, as recorded."""
    settings = crops.settings
    if crops.kind == "augmented":
        settings = settings.get("crop_settings") or {}
    recorded = settings.get("dataset") if isinstance(settings, dict) else None
    return Path(recorded) if isinstance(recorded, str) else None


def open_crop_sets(paths: list[Path], dataset: ExportDataset) -> list[CropDataset]:
    """The crop datasets, smallest crops first, checked to come from ``dataset`` with its split."""
    if not paths:
        raise InputError("CROPS: give at least one crop or augmented dataset cut from DATASET after it (make-crops, augment)")
    if dataset.split is None:
        raise InputError(f"{dataset.path}: no split.csv; cut the crops with `mammotools make-crops {dataset.path} ...` first")
    opened = []
    for path in dict.fromkeys(Path(p).resolve() for p in paths):  # the same folder named twice counts once
        crops = open_crop_dataset(path)
        source = source_dataset(crops)
        if source is None or source.resolve() != dataset.path.resolve():
            raise InputError(
                f"{path}: cut from {source or 'an unknown dataset'}, not from {dataset.path}; every CROPS dataset must "
                "come from the benchmark's export dataset, so that every model is scored on the same validation images"
            )
        split_file = path / SPLIT_FILE
        if not split_file.is_file():
            raise InputError(
                f"{path}: no split.csv, so its subject split cannot be checked against {dataset.path}'s; "
                "cut the crops again with make-crops (and augment)"
            )
        split = {name: side for name, (_, side) in read_split(split_file).items()}
        if split != dataset.split:
            raise InputError(
                f"{path}: its subject split differs from {dataset.path / SPLIT_FILE}; cut it again from the dataset "
                "(`make-crops --overwrite`) so that all the models share one split"
            )
        if crops.size is None:
            raise InputError(f"{path}: no crop size recorded; give a make-crops or augment folder")
        opened.append(crops)
    return sorted(opened, key=lambda c: c.size or 0)


def choose_crops(crop_sets: list[CropDataset], model: str, input_size: int, scale: float, make_hint: int) -> CropDataset:
    """The smallest crop dataset whose crops (resized by ``scale``) cover ``input_size``."""
    for crops in crop_sets:
        size = crops.size or 0
        if round(size * scale) >= input_size:
            return crops
    if crop_sets and crop_sets[0].kind == "cityscapes":
        raise InputError(
            f"{model} takes {input_size} px inputs, more than the scenes' shorter side ({crop_sets[0].size} px"
            f"{'' if scale == 1 else f' at --scale {scale:g}'}); give a smaller --input-size, or a larger --scale"
        )
    if scale == 1:
        sizes = ", ".join(f"{c.size} px" for c in crop_sets)
    else:
        sizes = ", ".join(f"{c.size} px, {round((c.size or 0) * scale)} px at --scale {scale:g}" for c in crop_sets)
    raise InputError(
        f"{model} takes {input_size} px inputs, larger than every CROPS dataset's crops ({sizes}); "
        f"make crops that hold it: `mammotools make-crops DATASET --size {make_hint} --out CROPS`"
    )


def _make_hint(input_size: int, scale: float) -> int:
    """The crop size to suggest: the one rule of data.crops.crop_size_needed."""
    from mammotools.data import crop_size_needed

    return crop_size_needed(input_size, scale)[1]


def quick_input(chain: str, crop_sets: list[CropDataset], scale: float) -> int:
    """--quick's input side: the largest the model takes up to QUICK_INPUT inside the smallest
    crops; a model that takes none that small (the unpadded U-Net) gets the largest that fits
    the smallest crops that hold one."""
    from mammotools.models import input_sizes

    sizes = input_sizes(chain)
    for crops in crop_sets:
        side = round((crops.size or 0) * scale)
        found = sizes.below(min(QUICK_INPUT, side)) or sizes.below(side)
        if found is not None:
            return found
    return sizes.start


def plan_jobs(
    models: list[str], crop_sets: list[CropDataset], input_size: int, scale: float, quick: bool, input_width: int = 0
) -> list[Job]:
    """The training runs of the benchmark, in the order of ``models``.

    input_size (input_width): the user's --input-size for every stage, each model taking the
    largest input it can up to it (the unpadded U-Net: 252 for 256) (0: each stage's paper
    input, or --quick's one side)."""
    from mammotools.models import MODELS, output_size, paper_shape, valid_input_size

    jobs = []
    for chain, scored in chains(models, {m: MODELS[m].stages for m in MODELS}).items():
        per_stage = False
        if input_size:
            sides = [valid_input_size(chain, input_size), valid_input_size(chain, input_width or input_size)]
        elif quick:
            sides = [quick_input(chain, crop_sets, scale)]
        else:
            per_stage = True
            sides = [side for stage in MODELS[chain].stages for side in paper_shape(stage)]
        for side in sides:
            output_size(chain, side)  # an input the model cannot take is one clear error, before any training
        side = max(sides)
        crops = choose_crops(crop_sets, chain, side, scale, _make_hint(side, scale))
        jobs.append(Job(chain, tuple(scored), crops.path, crops.size or 0, side, per_stage, tuple(sides[:2])))
    return jobs

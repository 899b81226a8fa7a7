"""Training runs: exact resume after a kill mid-epoch, staged training, a frozen front, DDP on CPU."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from conftest import make_dataset

from mammotools.crops import CropSettings, make_crops, open_crop_dataset
from mammotools.data import task_classes, training_sets
from mammotools.models import build_model
from mammotools.train import make_config, start_runtime, stop_runtime, train_run
from mammotools.train.checkpoint import load
from mammotools.train.evaluation import EvalImage
from mammotools.train.loop import StageSize, train_stage

TINY = {"width": 0.0625, "input_size": 64, "batch_size": 4, "workers": 0, "val_batch": 2}


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    make_crops(make_dataset(root), root / "c", CropSettings(size=64, per_image=3))
    return root / "c"


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class KillAt:
    """A reporter that interrupts the run at one epoch, as Ctrl-C would."""

    def __init__(self, epoch: int) -> None:
        self.kill, self.epoch = epoch, -1

    def epoch_start(self, stage: str, epoch: int, epochs: int, batches: int) -> None:
        self.epoch = epoch

    def batch(self, steps_done: int, loss: float, images_per_s: float) -> None:
        if self.epoch == self.kill:
            raise KeyboardInterrupt

    def epoch_end(self, record: dict[str, Any]) -> None:
        pass


def test_a_killed_run_resumes_to_the_same_weights(crops: Path, tmp_path: Path) -> None:
    config = make_config("fast", None, epochs=3, patience=0, **TINY)
    runtime = start_runtime("cpu", "fp32")
    train_run(crops, "fcn32", tmp_path / "whole", config, runtime)
    with pytest.raises(KeyboardInterrupt):
        train_run(crops, "fcn32", tmp_path / "killed", config, runtime, reporter=KillAt(epoch=1))
    assert load(tmp_path / "killed" / "stages" / "fcn32" / "checkpoint.pt")["epoch"] == 0  # the last complete epoch
    from mammotools.errors import InputError

    with pytest.raises(InputError, match="--resume"):
        train_run(crops, "fcn32", tmp_path / "killed", config, runtime)
    train_run(crops, "fcn32", tmp_path / "killed", config, runtime, resume=True)
    whole = load(tmp_path / "whole" / "stages" / "fcn32" / "checkpoint.pt")
    resumed = load(tmp_path / "killed" / "stages" / "fcn32" / "checkpoint.pt")
    assert whole["epoch"] == resumed["epoch"] == 2
    assert same_weights(whole["model"], resumed["model"])
    assert [r["train_loss"] for r in whole["history"]] == [r["train_loss"] for r in resumed["history"]]
    log = (tmp_path / "killed" / "stages" / "fcn32" / "log.jsonl").read_text().splitlines()
    assert len(log) == 3  # one line per epoch, none twice


def test_stages_chain_and_a_rerun_skips_them(crops: Path, tmp_path: Path) -> None:
    config = make_config("fast", None, epochs=1, **TINY)
    runtime = start_runtime("cpu", "fp32")
    summary = train_run(crops, "fcn16", tmp_path / "r", config, runtime)
    assert [s.stage for s in summary.stages] == ["fcn32", "fcn16"]
    fcn32 = load(tmp_path / "r" / "stages" / "fcn32" / "best.pt")["model"]
    fcn16 = build_model("fcn16", 14, width=0.0625)
    from mammotools.models import init_from_previous_stage

    init_from_previous_stage(fcn16, fcn32)
    shared = [k for k in fcn32 if k in fcn16.state_dict()]
    assert shared and all(torch.equal(fcn16.state_dict()[k], fcn32[k]) for k in shared)  # fcn16 starts from fcn32
    again = train_run(crops, "fcn16", tmp_path / "r", config, runtime)
    assert again.skipped == ["fcn32", "fcn16"] and again.stages == []


def test_the_context_stage_leaves_the_front_unchanged(crops: Path, tmp_path: Path) -> None:
    config = make_config("fast", None, epochs=2, lr=0.01, **TINY)
    train_run(crops, "dilation10-context", tmp_path / "d", config, start_runtime("cpu", "fp32"))
    front = load(tmp_path / "d" / "stages" / "dilation10-front" / "best.pt")["model"]
    context = load(tmp_path / "d" / "stages" / "dilation10-context" / "checkpoint.pt")["model"]
    shared = [k for k in front if k in context]
    assert len(shared) > 10 and all(torch.equal(front[k], context[k]) for k in shared)
    assert any(
        not torch.equal(context[k], build_model("dilation10-context", 14, width=0.0625).state_dict()[k])
        for k in context
        if k not in front
    )


def _ddp_worker(rank: int, world: int, port: int, crops: str, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})  # fmt: skip
    torch.set_num_threads(1)
    runtime = start_runtime("cpu", "fp32")
    config = make_config("fast", None, epochs=2, **TINY)
    dataset = open_crop_dataset(crops)
    classes = task_classes(dataset)
    train_set, val = training_sets(dataset, classes.lut, 64, 64, 0)
    model = build_model("fcn32", len(classes.names), width=0.0625)
    stage_dir = Path(out) / "stage"
    stage_dir.mkdir(parents=True, exist_ok=True)
    images = [EvalImage(f.name, f.image_path, f.label_path, f.bits) for f in val]
    train_stage(
        "fcn32",
        stage_dir,
        model,
        train_set,
        images,
        classes.names,
        classes.lut,
        None,
        config,
        runtime,
        StageSize((64, 64), (64, 64), 64, 64),
    )
    torch.save(model.state_dict(), Path(out) / f"rank{rank}.pt")
    stop_runtime(runtime)


def test_ddp_on_cpu_keeps_the_ranks_weights_identical(crops: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(crops), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert same_weights(a, b)
    assert load(tmp_path / "stage" / "checkpoint.pt")["epoch"] == 1  # rank 0 wrote the checkpoint


def test_loader_workers_do_not_change_the_result(crops: Path, tmp_path: Path) -> None:
    runtime = start_runtime("cpu", "fp32")
    results = []
    for workers in (0, 2):
        config = make_config("fast", None, epochs=2, **{**TINY, "workers": workers})
        train_run(crops, "fcn32", tmp_path / f"w{workers}", config, runtime)  # fcn32 has dropout: global RNG matters
        results.append(load(tmp_path / f"w{workers}" / "stages" / "fcn32" / "checkpoint.pt")["model"])
    assert same_weights(*results)


def test_a_batch_of_padding_only_is_skipped(tmp_path: Path) -> None:
    import json

    make_crops(make_dataset(tmp_path), tmp_path / "c", CropSettings(size=512, per_image=2))  # mostly padding
    config = make_config("fast", None, epochs=1, **{**TINY, "batch_size": 1})
    train_run(tmp_path / "c", "fcn32", tmp_path / "r", config, start_runtime("cpu", "fp32"))
    record = json.loads((tmp_path / "r" / "stages" / "fcn32" / "log.jsonl").read_text().splitlines()[0])
    assert record["train_loss"] == record["train_loss"]  # not NaN


def test_each_dilation10_stage_has_the_papers_own_input() -> None:
    from mammotools.train.run import stage_size

    paper = make_config("fast", None)
    sizes = {s: stage_size(s, paper) for s in ("dilation10-front", "dilation10-context", "dilation10-global")}
    assert [sizes[s].input for s in sizes] == [(632, 632), (1024, 1400), (1400, 1400)]
    assert sizes["dilation10-context"].window == 1024  # whole images are scored by square windows of its shorter side
    given = make_config("fast", None, input_size=64, input_width=96)
    assert {stage_size(s, given).input for s in sizes} == {(64, 96)}
    assert stage_size("unet", make_config("fast", None)).output == (388, 388)


def test_a_dilation10_run_trains_each_stage_at_its_own_input(crops: Path, tmp_path: Path) -> None:
    """The stage sizes reach the data: run.json and each stage's done.json record them, and a
    non-square --input-size trains on (height, width) windows."""
    import json

    seen: list[tuple[int, ...]] = []
    original = torch.nn.Module.__call__

    config = make_config("fast", None, epochs=1, **{**TINY, "input_size": 48, "input_width": 64})
    with pytest.MonkeyPatch.context() as patch:

        def spy(self: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
            if self.training and type(self).__name__ == "Dilation10" and args:
                seen.append(tuple(args[0].shape[-2:]))
            return original(self, *args, **kwargs)

        patch.setattr(torch.nn.Module, "__call__", spy)
        train_run(crops, "dilation10-context", tmp_path / "d", config, start_runtime("cpu", "fp32"))
    assert seen and set(seen) == {(48, 64)}
    run = json.loads((tmp_path / "d" / "run.json").read_text())
    assert run["stage_sizes"]["dilation10-front"]["input"] == [48, 64]
    assert run["input_size"] == 48 and run["input_normalization"] == "paper"
    done = json.loads((tmp_path / "d" / "stages" / "dilation10-context" / "done.json").read_text())
    assert done["input"] == [48, 64] and done["images_seen"] > 0


def test_pretrained_runs_are_fed_as_imagenet_weights_expect(crops: Path, tmp_path: Path) -> None:
    """With ImageNet weights the model sees (x - mean) / std of x in [0, 1]; without, the paper's
    value / peak - 0.5; the run records which and evaluate applies the same."""
    import json

    import torchvision

    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    inputs: dict[str, list[torch.Tensor]] = {}
    original = torch.nn.Module.__call__

    def spy(self: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        if type(self).__name__ == "DeepLabV3" and args:
            inputs.setdefault(current, []).append(args[0].detach().clone())
        return original(self, *args, **kwargs)

    runtime = start_runtime("cpu", "fp32")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.Module, "__call__", spy)
        for current, pretrained in (("scratch", ""), ("imagenet", str(weights))):
            config = make_config("fast", None, epochs=1, pretrained=pretrained, **{**TINY, "width": 1.0})
            train_run(crops, "deeplabv3-r18", tmp_path / current, config, runtime)
    scratch, imagenet = inputs["scratch"][0], inputs["imagenet"][0]
    assert scratch.min() >= -0.5 and scratch.max() <= 0.5
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    back = imagenet * std + mean - 0.5  # the same pipeline values, before ImageNet's normalisation
    assert back.min() >= -0.5 - 1e-5 and back.max() <= 0.5 + 1e-5
    assert imagenet.abs().max() > 1.0 > scratch.abs().max()  # on ImageNet's scale, about 4.4 times wider
    assert json.loads((tmp_path / "imagenet" / "run.json").read_text())["input_normalization"] == "imagenet"
    assert json.loads((tmp_path / "scratch" / "run.json").read_text())["input_normalization"] == "paper"
    from mammotools.train import evaluate_run

    inputs.clear()
    current = "evaluate"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.Module, "__call__", spy)
        evaluate_run(tmp_path / "imagenet", crops, tmp_path / "eval", "cpu")
    assert min(float(x.min()) for x in inputs["evaluate"]) < -1.5  # padding and dark pixels: (0 - 0.485) / 0.229


def test_a_budget_stops_training_and_the_run_says_so(crops: Path, tmp_path: Path) -> None:
    import json

    config = make_config("fast", None, epochs=10_000, patience=0, budget_minutes=0.002, **TINY)  # 0.12 s
    summary = train_run(crops, "fcn16", tmp_path / "b", config, start_runtime("cpu", "fp32"))
    assert [s.stopped_by for s in summary.stages] == ["budget", "budget"]
    assert all(s.epochs_run <= 2 for s in summary.stages)
    done = json.loads((tmp_path / "b" / "stages" / "fcn32" / "done.json").read_text())
    assert done["stopped_by"] == "budget" and done["budget_seconds"] == pytest.approx(0.06)
    assert (tmp_path / "b" / "stages" / "fcn16" / "best.pt").is_file()  # the partial epoch is validated and kept


def test_a_loss_that_becomes_nan_stops_the_run_and_keeps_no_nan_weights(crops: Path, tmp_path: Path) -> None:
    from mammotools.errors import TrainingFailed

    config = make_config("fast", None, epochs=2, lr=1e30, warmup_epochs=0.0, **TINY)
    with pytest.raises(
        TrainingFailed, match=r"fcn32: the training loss became nan in epoch 1.*Lower the learning rate \(now 1e\+30\)"
    ):
        train_run(crops, "fcn32", tmp_path / "n", config, start_runtime("cpu", "fp32"))
    assert not (tmp_path / "n" / "stages" / "fcn32" / "best.pt").exists()
    assert not (tmp_path / "n" / "stages" / "fcn32" / "done.json").exists()
    # a last step can blow up the weights while every loss seen was finite: those weights are not kept either
    blown = make_config("fast", None, epochs=1, lr=1.0, weight_decay=1e300, warmup_epochs=0.0, **{**TINY, "batch_size": 64})
    with pytest.raises(TrainingFailed, match=r"fcn32: (the weights became NaN or infinite|the training loss became)"):
        train_run(crops, "fcn32", tmp_path / "w", blown, start_runtime("cpu", "fp32"))
    assert not (tmp_path / "w" / "stages" / "fcn32" / "best.pt").exists()


def test_a_budget_longer_than_the_epochs_still_runs_the_whole_schedule(crops: Path, tmp_path: Path) -> None:
    import json

    config = make_config("fast", None, epochs=3, patience=0, budget_minutes=60.0, **TINY)
    train_run(crops, "fcn32", tmp_path / "s", config, start_runtime("cpu", "fp32"))
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "s" / "stages" / "fcn32" / "log.jsonl").read_text().splitlines()]
    assert len(lrs) == 3 and lrs[0] > 0.5e-3 and lrs[-1] < 0.2e-3  # out of warm-up, down to near zero by the last epoch


def test_a_refused_start_writes_nothing(crops: Path, tmp_path: Path) -> None:
    """Weights that fit no layer, or crops of a single class, are refused before the run folder exists."""
    import torchvision

    from mammotools.data import TaskClasses
    from mammotools.errors import InputError

    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    config = make_config("fast", None, epochs=1, pretrained=str(weights), **{**TINY, "width": 1.0})
    with pytest.raises(InputError, match=r"no features\.0\.weight"):
        train_run(crops, "fcn32", tmp_path / "p", config, start_runtime("cpu", "fp32"))
    assert not (tmp_path / "p").exists()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TaskClasses, "pixel_shares", lambda self, files, labels: np.eye(len(self.names))[0])
        with pytest.raises(InputError, match=r"the training crops hold a single class .*: nothing to learn"):
            train_run(crops, "fcn32", tmp_path / "one", make_config("fast", None, epochs=1, **TINY), start_runtime("cpu", "fp32"))
    assert not (tmp_path / "one").exists()


def test_epoch_crops_draws_a_fresh_subset_each_epoch_and_resumes_exactly() -> None:
    from mammotools.train.loop import EpochSampler

    def drawn(sampler: EpochSampler, epoch: int) -> list[int]:
        sampler.set_epoch(epoch)
        return [i for _, i in sampler]

    sampler = EpochSampler(100, seed=3, per_epoch=10)
    first, second = drawn(sampler, 0), drawn(sampler, 1)
    assert len(sampler) == 10 and len(first) == len(set(first)) == 10 and first != second
    assert drawn(EpochSampler(100, seed=3, per_epoch=10), 1) == second  # (seed, epoch) alone decide: a resume repeats it
    whole = EpochSampler(100, seed=3)
    assert sorted(drawn(whole, 0)) == list(range(100)) and drawn(whole, 0)[:10] == first  # the head of the full order
    ranks = [EpochSampler(100, seed=3, rank=r, world_size=3, per_epoch=10) for r in range(3)]
    shares = [drawn(s, 0) for s in ranks]
    assert all(len(s) == 4 for s in shares) and set().union(*shares) == set(first)  # the same draw, shared by the ranks
    assert len(EpochSampler(5, seed=0, per_epoch=10)) == 5  # never more than there are


def test_a_run_with_epoch_crops_trains_on_that_many_per_epoch(crops: Path, tmp_path: Path) -> None:
    import json

    config = make_config("fast", None, epochs=2, patience=0, epoch_crops=4, **TINY)
    train_run(crops, "fcn32", tmp_path / "r", config, start_runtime("cpu", "fp32"))
    done = json.loads((tmp_path / "r" / "stages" / "fcn32" / "done.json").read_text())
    assert done["images_seen"] == 2 * 4
    with pytest.raises(Exception, match="epoch_crops -1"):
        make_config("fast", None, epoch_crops=-1)


def test_the_dilation10_global_stage_fine_tunes_at_a_tenth_of_the_rate(crops: Path, tmp_path: Path) -> None:
    """The joint stage fine-tunes a trained front and context: at the full rate it undid them."""
    import json

    config = make_config("fast", None, epochs=1, schedule="step", step_epochs=10, warmup_epochs=0.0, lr=2e-3, **TINY)
    train_run(crops, "dilation10-global", tmp_path / "d", config, start_runtime("cpu", "fp32"))

    def lr(stage: str) -> float:
        return json.loads((tmp_path / "d" / "stages" / stage / "log.jsonl").read_text().splitlines()[0])["lr"]

    assert lr("dilation10-front") == lr("dilation10-context") == pytest.approx(2e-3)
    assert lr("dilation10-global") == pytest.approx(2e-4)
    assert json.loads((tmp_path / "d" / "config.json").read_text())["lr"] == 2e-3  # the run's setting is unchanged


@pytest.mark.parametrize("small", [{"batch_size": 1}, {"epoch_crops": 1}])
def test_batches_of_one_crop_are_refused_for_batchnorm_models(crops: Path, tmp_path: Path, small: dict) -> None:
    """Review of issue 20: smp-deeplabv3plus crashed on --batch-size 1 or --epoch-crops 1 (BatchNorm:
    "Expected more than 1 value per channel") with a traceback."""
    from mammotools.errors import InputError

    config = make_config("fast", None, epochs=1, **{**TINY, "encoder": "resnet18", **small})
    with pytest.raises(InputError, match=r"BatchNorm layers cannot train on batches of one crop.*--batch-size 2"):
        train_run(crops, "smp-deeplabv3plus", tmp_path / "r", config, start_runtime("cpu", "fp32"))
    plain = make_config("fast", None, epochs=1, **{**TINY, **small})
    train_run(crops, "fcn32", tmp_path / "f", plain, start_runtime("cpu", "fp32"))  # no BatchNorm: trains


def test_config_json_values_are_checked_when_read_back(tmp_path: Path) -> None:
    """Review of issue 20: an edited config.json (overlap 1.5, val_batch 0, device tpu, width 1e6)
    was a traceback where the value was first used, or accepted."""
    import json

    from mammotools.errors import InputError
    from mammotools.train.config import TrainConfig, read_config, save_config

    for key, value in (("overlap", 1.5), ("val_batch", 0), ("device", "tpu"), ("precision", "fp8"), ("width", 1e6)):
        path = tmp_path / "config.json"
        save_config(TrainConfig(), path)
        data = json.loads(path.read_text())
        data[key] = value
        path.write_text(json.dumps(data))
        with pytest.raises(InputError, match=rf"config\.json: .*{key}.*; correct it, or train the run again"):
            read_config(path)


def test_a_budget_too_small_for_one_step_is_one_line_and_no_stage_done(crops: Path, tmp_path: Path) -> None:
    """Review of issue 20: --budget 0.000001 wrote done.json for a stage without a model, then said
    "best.pt: no checkpoint; train the run first" on every --resume."""
    from mammotools.errors import InputError

    config = make_config("fast", None, epochs=1, budget_minutes=1e-9, **TINY)
    with pytest.raises(InputError, match=r"fcn32: the budget ran out before its first step .* give a larger --budget"):
        train_run(crops, "fcn8", tmp_path / "r", config, start_runtime("cpu", "fp32"))
    assert not (tmp_path / "r" / "stages" / "fcn32" / "done.json").exists()

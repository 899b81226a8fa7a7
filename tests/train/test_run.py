"""The run folder keeps its promises (issue 20): one writer per --out, a log restored on resume,
damaged files each one line naming the file (and the advice given works), stale temporaries
removed, a bad crop one line with or without loader workers, a last batch of one left out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_dataset

from mammotools.crops import CropSettings, make_crops, open_crop_dataset
from mammotools.errors import InputError
from mammotools.files import output_lock
from mammotools.train import evaluate_run, final_model, make_config, start_runtime, train_run
from mammotools.train.checkpoint import load

TINY = {"width": 0.0625, "input_size": 64, "batch_size": 4, "workers": 0, "val_batch": 2, "patience": 0}


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run")
    make_crops(make_dataset(root), root / "c", CropSettings(size=64, per_image=3))
    return root / "c"


@pytest.fixture(scope="module")
def trained(crops: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    train_run(crops, "fcn32", out, make_config("fast", None, epochs=2, **TINY), start_runtime("cpu", "fp32"))
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def test_a_second_train_into_the_same_out_is_refused(crops: Path, tmp_path: Path) -> None:
    config = make_config("fast", None, epochs=1, **TINY)
    with output_lock(tmp_path / "r"):  # a first run writing there
        with pytest.raises(InputError, match=rf"--out {tmp_path / 'r'}: another mammotools run \(process {os.getpid()}\)"):
            train_run(crops, "fcn32", tmp_path / "r", config, start_runtime("cpu", "fp32"), overwrite=True)
    assert not (tmp_path / "r").exists()


def test_two_train_commands_into_one_out_the_second_refused(crops: Path, tmp_path: Path) -> None:
    """Two processes: the one that finds the lock held exits 1 with one line; the folder is the first's."""
    args = [sys.executable, "-m", "mammotools", "train", str(crops), "--model", "fcn32", "--out", str(tmp_path / "r"),
            "--width", "0.0625", "--input-size", "64", "--workers", "0", "--epochs", "1", "--overwrite"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with output_lock(tmp_path / "r"):
        second = subprocess.run(args, capture_output=True, text=True, env=env)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert second.stderr.strip().splitlines()[-1].startswith(f"Error: --out {tmp_path / 'r'}: another mammotools run")


def test_evaluate_takes_the_out_lock(trained: Path, crops: Path, tmp_path: Path) -> None:
    with output_lock(tmp_path / "e"), pytest.raises(InputError, match="another mammotools run"):
        evaluate_run(trained, crops, tmp_path / "e", "cpu")
    assert not (tmp_path / "e").exists()


class KillLogWrite:
    """atomic_write_text of the loop that dies (as kill -9 would) when it writes log.jsonl for epoch ``epoch``."""

    def __init__(self, real: object, epoch: int) -> None:
        self.real, self.epoch = real, epoch

    def __call__(self, path: Path, text: str) -> None:
        if path.name == "log.jsonl" and len(text.splitlines()) == self.epoch + 1:
            raise KeyboardInterrupt
        self.real(path, text)  # type: ignore[operator]


def test_a_kill_between_checkpoint_and_log_loses_no_epoch_of_the_log(crops: Path, tmp_path: Path) -> None:
    import mammotools.train.loop as loop

    config = make_config("fast", None, epochs=2, **TINY)
    runtime = start_runtime("cpu", "fp32")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "atomic_write_text", KillLogWrite(loop.atomic_write_text, epoch=1))
        with pytest.raises(KeyboardInterrupt):
            train_run(crops, "fcn32", tmp_path / "r", config, runtime)
    stage = tmp_path / "r" / "stages" / "fcn32"
    assert load(stage / "checkpoint.pt")["epoch"] == 1 and len((stage / "log.jsonl").read_text().splitlines()) == 1
    train_run(crops, "fcn32", tmp_path / "r", config, runtime, resume=True)  # nothing left to train: only the log
    lines = [json.loads(line) for line in (stage / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1] and (stage / "done.json").is_file()


def test_stale_checkpoint_temporaries_of_dead_runs_are_removed(trained: Path, tmp_path: Path, crops: Path) -> None:
    run = copy_of(trained, tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = run / "stages" / "fcn32" / f".checkpoint.pt.tmp-{pid}"
    stale.write_bytes(b"x" * 1000)
    alive = run / "stages" / "fcn32" / f".best.pt.tmp-{os.getppid()}"  # a live process's: left alone
    alive.write_bytes(b"y")
    train_run(crops, "fcn32", run, make_config("fast", None, epochs=2, **TINY), start_runtime("cpu", "fp32"), resume=True)
    assert not stale.exists() and alive.exists()


@pytest.mark.parametrize("damage", ["best-as-checkpoint", "other-width"])
def test_a_checkpoint_that_cannot_be_resumed_is_one_line(trained: Path, tmp_path: Path, crops: Path, damage: str) -> None:
    run = copy_of(trained, tmp_path)
    stage = run / "stages" / "fcn32"
    (stage / "done.json").unlink()  # stopped before the end: the resume reads checkpoint.pt
    if damage == "best-as-checkpoint":
        shutil.copy(stage / "best.pt", stage / "checkpoint.pt")
        expected = r"checkpoint\.pt: not a resumable checkpoint \(no optimizer"
    else:
        state = load(stage / "checkpoint.pt")
        other = tmp_path / "wide"
        train_run(crops, "fcn32", other, make_config("fast", None, epochs=1, **{**TINY, "width": 0.125}),
                  start_runtime("cpu", "fp32"))  # fmt: skip
        state["model"] = load(other / "stages" / "fcn32" / "best.pt")["model"]
        torch.save(state, stage / "checkpoint.pt")
        expected = r"checkpoint\.pt: weights of another model, width or class count .* where the model's is"
    with pytest.raises(InputError, match=expected) as refused:
        train_run(crops, "fcn32", run, make_config("fast", None, epochs=2, **TINY), start_runtime("cpu", "fp32"), resume=True)
    assert "delete it and run the same train command again" in str(refused.value)
    (stage / "checkpoint.pt").unlink()  # the advice: the stage trains again from its start
    train_run(crops, "fcn32", run, make_config("fast", None, epochs=2, **TINY), start_runtime("cpu", "fp32"), resume=True)
    assert load(stage / "checkpoint.pt")["epoch"] == 1 and (stage / "done.json").is_file()


def test_weights_of_another_width_are_one_line_in_evaluate(trained: Path, tmp_path: Path, crops: Path) -> None:
    run = copy_of(trained, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "width": 0.125}))
    with pytest.raises(InputError, match=r"best\.pt: weights of another model, width or class count than .*run\.json"):
        final_model(run)  # what evaluate and predict load the model with
    with pytest.raises(InputError, match=r"best\.pt: weights of another model"):
        evaluate_run(run, crops, tmp_path / "e", "cpu")
    assert not (tmp_path / "e").exists()


def test_non_finite_weights_are_one_line_not_a_model_scored(trained: Path, tmp_path: Path, crops: Path) -> None:
    """Review of issue 20: a best.pt with NaN weights (a run older than the NaN checks) was scored
    as a normal model (IoU 0%, exit 0) and predicted nothing."""
    run = copy_of(trained, tmp_path)
    best = next((run / "stages").iterdir()) / "best.pt"
    state = torch.load(best, weights_only=False)
    key = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][key] = torch.full_like(state["model"][key], float("nan"))
    torch.save(state, best)
    with pytest.raises(InputError, match=r"best\.pt: non-finite weights \(NaN or inf in .*the training diverged\)"):
        final_model(run)
    with pytest.raises(InputError, match="non-finite weights"):
        evaluate_run(run, crops, tmp_path / "e", "cpu")


@pytest.mark.parametrize("content", ["[]", "{}", "no json", "without input_size"])
def test_a_damaged_run_json_is_one_line(trained: Path, tmp_path: Path, crops: Path, content: str) -> None:
    run = copy_of(trained, tmp_path)
    if content == "without input_size":
        description = json.loads((run / "run.json").read_text())
        del description["input_size"], description["stage_sizes"]
        content = json.dumps(description)
    (run / "run.json").write_text(content)
    with pytest.raises(InputError, match=r"run\.json: damaged"):
        evaluate_run(run, crops, tmp_path / "e", "cpu")
    if content in ("[]", "no json"):
        with pytest.raises(InputError, match=r"run\.json: damaged .*pass --overwrite"):
            train_run(crops, "fcn32", run, make_config("fast", None, epochs=2, **TINY), start_runtime("cpu", "fp32"))


def test_deleting_a_damaged_best_model_then_training_again_retrains_the_stage(trained: Path, tmp_path: Path, crops: Path) -> None:
    run = copy_of(trained, tmp_path)
    best = run / "stages" / "fcn32" / "best.pt"
    clean = load(best)["model"]
    best.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"best\.pt: damaged checkpoint .*delete it and run the same train command again"):
        evaluate_run(run, crops, tmp_path / "e", "cpu")
    config = make_config("fast", None, epochs=2, **TINY)
    with pytest.raises(InputError, match=r"best\.pt: damaged checkpoint"):
        train_run(crops, "fcn32", run, config, start_runtime("cpu", "fp32"))
    best.unlink()  # as the line says
    summary = train_run(crops, "fcn32", run, config, start_runtime("cpu", "fp32"))
    assert [s.stage for s in summary.stages] == ["fcn32"] and any("trained again" in n for n in summary.notes)
    again = load(best)["model"]
    assert again.keys() == clean.keys() and all(torch.equal(again[k], clean[k]) for k in clean)  # the same weights
    evaluate_run(run, crops, tmp_path / "e", "cpu")


def test_a_bad_crop_is_the_same_one_line_with_and_without_loader_workers(crops: Path, tmp_path: Path) -> None:
    copy = tmp_path / "c"
    shutil.copytree(crops, copy)
    bad = sorted(open_crop_dataset(copy).train, key=lambda f: f.name)[0].image_path
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    messages = []
    for workers in (0, 1):
        config = make_config("fast", None, epochs=1, **{**TINY, "workers": workers, "batch_size": 64})
        with pytest.raises(InputError) as failed:
            train_run(copy, "fcn32", tmp_path / f"w{workers}", config, start_runtime("cpu", "fp32"))
        messages.append(str(failed.value))
    assert messages[0] == messages[1] and bad.name in messages[0]
    assert "DataLoader worker" not in messages[1] and "Traceback" not in messages[1] and "\n" not in messages[1]


def test_a_last_batch_of_one_crop_is_left_out(crops: Path, tmp_path: Path) -> None:
    """smp-deeplabv3plus's BatchNorm cannot train on one crop: the epoch's last batch of one is
    left out (the one left out changes with each epoch's order), and a resume still gives the
    same weights."""
    count = len(open_crop_dataset(crops).train)
    assert count > 3
    config = make_config("fast", None, epochs=2, encoder="resnet18", **{**TINY, "width": 0.25, "batch_size": count - 1})
    runtime = start_runtime("cpu", "fp32")
    train_run(crops, "smp-deeplabv3plus", tmp_path / "whole", config, runtime)
    record = json.loads((tmp_path / "whole" / "stages" / "smp-deeplabv3plus" / "log.jsonl").read_text().splitlines()[0])
    assert record["images_seen"] == count - 1
    from mammotools.train.loop import drops_last_batch

    assert drops_last_batch(9, 4) and not drops_last_batch(1, 4) and not drops_last_batch(8, 4) and not drops_last_batch(10, 4)


@pytest.mark.parametrize("damage", ["empty", "doubled", "nan seconds", "no loss"])
def test_a_damaged_log_is_rewritten_from_the_checkpoint(trained: Path, tmp_path: Path, damage: str) -> None:
    """Review of issue 20: the benchmark took times and curves from an emptied or doubled log, or
    one with NaN seconds (results.json then held NaN), or failed on a record without its loss."""
    from mammotools.train.run import stage_log

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    stage = next(p for p in (run / "stages").iterdir() if (p / "log.jsonl").is_file())
    log = stage / "log.jsonl"
    clean = log.read_text()
    lines = clean.splitlines()
    log.write_text({
        "empty": "",
        "doubled": clean + clean,
        "nan seconds": lines[0].replace('"seconds": ', '"seconds": NaN, "was": ') + "\n",
        "no loss": '{"epoch": 0, "seconds": 1}\n',
    }[damage])  # fmt: skip
    records = stage_log(stage)
    assert [r["epoch"] for r in records] == list(range(len(lines)))
    assert log.read_text() == clean  # rewritten from the checkpoint's records

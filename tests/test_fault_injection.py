"""Writes failing at chosen points (as a full disk or a lost mount makes them fail) in
export-qupath, make-crops, augment and train: after each failure every output there decodes, no
temporary is left, and a rerun gives the same bytes as a run without faults (train: its
``--resume`` gives the same weights and log as a run without faults).

Every output goes through mammotools.files.atomic_path, whose last step (_commit: the rename
that makes a file visible) is made to fail after N files, for N spread over the whole run; a
checkpoint is also made to fail in the middle of its writing.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
from conftest import make_dataset

import mammotools.files as files
from mammotools.augment import augment_dataset
from mammotools.crops import CropSettings, make_crops
from mammotools.export import ExportSettings, export_dataset

FAULT_POINTS = 10  # failures tried per command, spread over its writes
REAL_COMMIT = files._commit


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file's bytes (records hold timings: only their names)."""
    return {
        str(p.relative_to(folder)): b"" if p.parent.name == "records" else p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_all_decode(folder: Path) -> None:
    for p in folder.rglob("*"):
        assert ".tmp-" not in p.name, p
        if p.suffix == ".png":
            assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED) is not None, p
        elif p.suffix == ".json":
            json.loads(p.read_text("utf-8"))
        elif p.suffix == ".csv":
            assert p.read_text("utf-8").endswith("\n"), p


class FailAfter:
    """_commit that raises ENOSPC once ``n`` files have been committed."""

    def __init__(self, n: int) -> None:
        self.n, self.count = n, 0

    def __call__(self, tmp: Path, target: Path) -> None:
        if self.count >= self.n:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        self.count += 1
        REAL_COMMIT(tmp, target)


def count_writes(monkeypatch: pytest.MonkeyPatch, run: Callable[[Path], object], out: Path) -> int:
    counter = FailAfter(10**9)
    monkeypatch.setattr(files, "_commit", counter)
    run(out)
    monkeypatch.setattr(files, "_commit", REAL_COMMIT)
    return counter.count


def check_command(monkeypatch: pytest.MonkeyPatch, run: Callable[[Path], object], root: Path) -> None:
    run(root / "first")  # make-crops records the dataset's split.csv on its first run: later runs only read it
    clean = root / "clean"
    total = count_writes(monkeypatch, run, clean)
    expected = outputs(clean)
    assert total > FAULT_POINTS
    for k, n in enumerate(sorted({round(i * (total - 1) / (FAULT_POINTS - 1)) for i in range(FAULT_POINTS)})):
        out = root / f"fault{k}"
        monkeypatch.setattr(files, "_commit", FailAfter(n))
        with pytest.raises(OSError, match="No space left"):
            run(out)
        monkeypatch.setattr(files, "_commit", REAL_COMMIT)
        if out.exists():
            assert_all_decode(out)
        run(out)  # the rerun, space freed
        assert outputs(out) == expected, f"rerun after a failure at write {n} of {total}"


def test_export_make_crops_and_augment_survive_failing_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = make_dataset(tmp_path)
    project = tmp_path / "project"
    settings = ExportSettings(sigma=2, point_radius=4)
    check_command(monkeypatch, lambda out: export_dataset(project, out, tmp_path / "images", settings=settings, workers=1),
                  tmp_path / "export")  # fmt: skip
    crop_settings = CropSettings(size=64, per_image=3)
    check_command(monkeypatch, lambda out: make_crops(dataset, out, crop_settings, workers=1), tmp_path / "crops")
    crops = tmp_path / "crops" / "clean"
    check_command(monkeypatch, lambda out: augment_dataset(crops, out, ("flip_lr", "noise", "rotate_cw"), workers=1),
                  tmp_path / "augment")  # fmt: skip


TRAIN_TINY = {"width": 0.0625, "input_size": 64, "batch_size": 4, "workers": 0, "val_batch": 2, "patience": 0, "epochs": 2}


def trained_state(out: Path) -> dict[str, object]:
    """Each stage's final and best weights and its log's epochs and losses (timings differ run to run)."""
    import torch

    state: dict[str, object] = {}
    for stage in sorted((out / "stages").iterdir()):
        for name in ("checkpoint.pt", "best.pt"):
            state[f"{stage.name}/{name}"] = torch.load(stage / name, weights_only=False)["model"]
        log = [json.loads(line) for line in (stage / "log.jsonl").read_text().splitlines()]
        state[f"{stage.name}/log"] = [(r["epoch"], r["train_loss"], r["val_mean_iou"]) for r in log]
        assert json.loads((stage / "done.json").read_text())["epochs"] == len(log)
    return state


def same_state(a: dict[str, object], b: dict[str, object]) -> bool:
    import torch

    if a.keys() != b.keys():
        return False
    for key in a:
        if isinstance(a[key], dict):
            x, y = a[key], b[key]
            if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):  # type: ignore[union-attr, index]
                return False
        elif a[key] != b[key]:
            return False
    return True


class FailMidCheckpoint:
    """``open`` for checkpoint.save whose ``n``-th file (0-based) fails as a full disk after 2,000 bytes."""

    def __init__(self, n: int) -> None:
        self.n, self.count = n, 0

    def __call__(self, path: object, mode: str = "r") -> object:
        handle = open(path, mode)  # type: ignore[call-overload]
        if "w" not in mode:
            return handle
        self.count += 1
        if self.count - 1 != self.n:
            return handle
        real_write = handle.write
        written = [0]

        def write(data: bytes) -> int:
            if written[0] + len(data) > 2000:
                raise OSError(errno.ENOSPC, "No space left on device")
            written[0] += len(data)
            return int(real_write(data))

        handle.write = write
        return handle


def test_train_survives_failing_writes_and_resumes_to_the_clean_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes failing at points spread over two stages' epochs (run.json, each checkpoint, best
    model, log and done.json), and in the middle of writing a checkpoint: the folder holds no
    temporary and nothing half-written, and --resume ends with the clean run's weights and log."""
    import torch

    import mammotools.train.checkpoint as checkpoint
    from mammotools.train import make_config, start_runtime, train_run

    make_crops(make_dataset(tmp_path), tmp_path / "c", CropSettings(size=64, per_image=2))
    config = make_config("fast", None, **TRAIN_TINY)
    runtime = start_runtime("cpu", "fp32")

    def run(out: Path, resume: bool = False) -> object:
        return train_run(tmp_path / "c", "fcn16", out, config, runtime, resume=resume)

    saves = FailMidCheckpoint(10**9)
    monkeypatch.setattr(checkpoint, "open", saves, raising=False)
    total = count_writes(monkeypatch, run, tmp_path / "clean")
    monkeypatch.delattr(checkpoint, "open")
    expected = trained_state(tmp_path / "clean")
    assert total >= 12  # run.json, config.json, then per epoch a checkpoint, a log, a best model; done.json per stage

    def check(out: Path) -> None:
        for p in out.rglob("*"):
            assert ".tmp-" not in p.name, p
            if p.suffix == ".pt":
                torch.load(p, weights_only=False)
            elif p.suffix == ".json":
                json.loads(p.read_text())
            elif p.suffix == ".jsonl":
                assert all(json.loads(line) for line in p.read_text().splitlines())
        run(out, resume=True)  # the rerun, space freed
        assert same_state(trained_state(out), expected), out

    points = sorted({round(i * (total - 1) / (FAULT_POINTS - 1)) for i in range(FAULT_POINTS)})
    for k, n in enumerate(points):
        out = tmp_path / f"commit{k}"
        monkeypatch.setattr(files, "_commit", FailAfter(n))
        with pytest.raises(OSError, match="No space left"):
            run(out)
        monkeypatch.setattr(files, "_commit", REAL_COMMIT)
        check(out)
    for n in (0, saves.count // 2, saves.count - 1):  # the first checkpoint file, one of the second stage's, the last one
        out = tmp_path / f"inside{n}"
        monkeypatch.setattr(checkpoint, "open", FailMidCheckpoint(n), raising=False)
        with pytest.raises(OSError, match="No space left") as failed:
            run(out)
        monkeypatch.delattr(checkpoint, "open")
        assert ".pt" in str(failed.value.filename)
        check(out)


def predict_outputs(folder: Path) -> dict[str, bytes]:
    """As :func:`outputs`, less what differs from run to run by design: predictions.csv's
    seconds, and project.qpproj's own uri (its folder)."""
    found = outputs(folder)
    if "predictions.csv" in found:
        rows = [line.split(",") for line in found["predictions.csv"].decode().splitlines()]
        found["predictions.csv"] = "\n".join(",".join(r[:4] + r[5:]) for r in rows).encode()
    if "project.qpproj" in found:
        project = json.loads(found["project.qpproj"])
        project.pop("uri")
        found["project.qpproj"] = json.dumps(project).encode()
    return found


def test_predict_survives_failing_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk stops predict (it does not fail image after image); what is written decodes,
    and the rerun gives the outputs of a run without faults."""
    from mammotools.errors import InputError
    from mammotools.predict import PredictSettings, predict_images
    from mammotools.train import make_config, start_runtime, train_run

    make_crops(make_dataset(tmp_path), tmp_path / "c", CropSettings(size=64, per_image=2))
    config = make_config("fast", None, epochs=1, width=0.0625, input_size=64, batch_size=4, workers=0)
    train_run(tmp_path / "c", "fcn32", tmp_path / "run", config, start_runtime("cpu", "fp32"))
    settings = PredictSettings(device="cpu", min_area=4, probabilities=True)

    def run(out: Path) -> object:
        return predict_images(tmp_path / "run", tmp_path / "images", out, settings)

    clean = tmp_path / "clean"
    total = count_writes(monkeypatch, run, clean)
    expected = predict_outputs(clean)
    assert total > FAULT_POINTS and len(list((clean / "labels").iterdir())) == 6
    for k, n in enumerate(sorted({round(i * (total - 1) / (FAULT_POINTS - 1)) for i in range(FAULT_POINTS)})):
        out = tmp_path / f"fault{k}"
        monkeypatch.setattr(files, "_commit", FailAfter(n))
        with pytest.raises((OSError, InputError), match="No space left"):
            run(out)
        monkeypatch.setattr(files, "_commit", REAL_COMMIT)
        if out.exists():
            assert_all_decode(out)
        summary = run(out)  # the rerun, space freed
        assert not summary.failed  # type: ignore[attr-defined]
        assert predict_outputs(out) == expected, f"rerun after a failure at write {n} of {total}"

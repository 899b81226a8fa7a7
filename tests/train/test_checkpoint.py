"""Checkpoints on a full disk: the write that failed, as every command reports a full disk."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import make_dataset

import mammotools.train.checkpoint as checkpoint
from mammotools.crops import CropSettings, make_crops


class FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return len(data)


def full_disk_open(room: int) -> object:
    def fake(path: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if "w" in mode:
            Path(str(path)).touch()
            return FullDisk(room)
        return open(path, mode, *args, **kwargs)  # type: ignore[call-overload]

    return fake


@pytest.mark.parametrize("room", [0, 3000])
def test_a_full_disk_while_checkpointing_is_no_space_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, room: int) -> None:
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"the previous checkpoint")
    monkeypatch.setattr(checkpoint, "open", full_disk_open(room), raising=False)
    with pytest.raises(OSError) as failed:
        checkpoint.save(target, {"model": {"w": torch.zeros(10_000)}})
    assert failed.value.errno == errno.ENOSPC and Path(str(failed.value.filename)).name.startswith(".checkpoint.pt.tmp-")
    assert target.read_bytes() == b"the previous checkpoint" and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_torchs_own_write_error_is_a_full_disk_only_when_it_is_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(state: object, f: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0")

    monkeypatch.setattr(torch, "save", failing)
    for full, code in ((True, errno.ENOSPC), (False, errno.EIO)):
        monkeypatch.setattr(checkpoint, "disk_full", lambda folder, full=full: full)
        with pytest.raises(OSError) as failed:
            checkpoint.save(tmp_path / "best.pt", {"model": {}})
        assert failed.value.errno == code and not list(tmp_path.iterdir())
    assert "inline_container" in str(failed.value)  # not a full disk: what torch said, in one line


def test_train_on_a_full_disk_says_so_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mammotools.cli import main

    make_crops(make_dataset(tmp_path), tmp_path / "c", CropSettings(size=64, per_image=2))
    monkeypatch.setattr(checkpoint, "open", full_disk_open(100), raising=False)
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["train", str(tmp_path / "c"), "--model", "fcn32", "--out", str(out), "--width", "0.0625",
                                       "--input-size", "64", "--workers", "0", "--epochs", "1"])  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: --out {out}: No space left on device;") and "run the same command again" in last
    assert not list(out.rglob("*.tmp-*"))

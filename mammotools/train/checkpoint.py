"""Checkpoints, written atomically: a killed run resumes from its last complete epoch.

``checkpoint.pt`` (after every epoch): model, optimizer, scheduler, gradient scaler, epoch,
random states, the best validation mIoU so far, the epochs since it, and every epoch's log
record (log.jsonl is rewritten from them on resume). ``best.pt``: the model of the best epoch
and its metrics. A temporary file renamed into place, so an interruption never leaves a
half-written checkpoint.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import torch

from mammotools.errors import InputError
from mammotools.files import atomic_path, disk_full

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
RESUMABLE = ("model", "optimizer", "scheduler", "scaler", "epoch", "best_miou", "best_epoch", "since_best", "history")
RETRAIN = "delete it and run the same train command again (with --resume): the stage is trained again"


class _Writer:
    """A file torch.save writes through, keeping the OSError of a failed write: torch turns it into
    a RuntimeError ("[enforce fail at inline_container.cc:672]") that no longer says the disk is full."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return int(self.handle.write(data))
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.handle.flush()


def save(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary name beside ``path``, then rename. A failed write (a full
    disk, a quota, a lost mount) is the OSError that failed it, naming ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            writer = _Writer(handle)
            try:
                torch.save(state, writer)  # type: ignore[arg-type]  # a file-like object with write and flush
            except (RuntimeError, OSError) as error:
                if writer.error is not None:  # torch passes it on, or wraps it in a RuntimeError
                    raise OSError(writer.error.errno, writer.error.strerror, str(tmp)) from None
                if isinstance(error, OSError):
                    raise
                if disk_full(path.parent):  # torch's own writer failed, not ours: blame the disk only when it is full
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp)) from None
                first = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
                raise OSError(errno.EIO, f"writing the checkpoint failed ({first})", str(tmp)) from None


def load(path: Path, resumable: bool = False) -> dict[str, Any]:
    """A checkpoint written by :func:`save` (weights and plain Python values; loaded on the CPU);
    ``resumable``: one with everything a resume needs (a checkpoint.pt, not a best.pt)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no checkpoint; train the run first") from None
    except Exception as exc:  # torch raises RuntimeError, pickle errors, EOFError... for a damaged file
        raise InputError(f"{path}: damaged checkpoint ({type(exc).__name__}); {RETRAIN}") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise InputError(f"{path}: not a mammotools checkpoint; {RETRAIN}")
    if resumable:
        missing = [key for key in RESUMABLE if key not in state]
        if missing:
            no = ", ".join(missing)
            raise InputError(f"{path}: not a resumable checkpoint (no {no}: a best.pt copied over it?); {RETRAIN}")
    return state


def weights_mismatch(model: torch.nn.Module, weights: dict[str, Any]) -> str:
    """Why ``weights`` (a state dict) do not fit ``model``: "" when they do."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    if missing:
        return f"no {missing[0]}" + (f" and {len(missing) - 1} more tensor(s)" if len(missing) > 1 else "")
    extra = [k for k in weights if k not in own]
    if extra:
        return f"{extra[0]} is not a layer of the model" + (f" ({len(extra) - 1} more)" if len(extra) > 1 else "")
    for key, tensor in own.items():
        shape = tuple(getattr(weights[key], "shape", ()))
        if shape != tuple(tensor.shape):
            return f"{key} is {shape} where the model's is {tuple(tensor.shape)}"
    return ""


def load_weights(model: torch.nn.Module, weights: dict[str, Any], path: Path) -> None:
    """Load ``weights`` (read from ``path``) into ``model``: one :class:`InputError` naming the file
    when they are of another model or width, instead of torch's size-mismatch traceback."""
    why = weights_mismatch(model, weights)
    if why:
        raise InputError(
            f"{path}: weights of another model, width or class count than the run's run.json and config.json describe "
            f"({why}); {RETRAIN}"
        )
    check_finite(weights, path)
    model.load_state_dict(weights)


def check_finite(weights: dict[str, Any], path: Path) -> None:
    """One :class:`InputError` naming ``path`` when a weight is NaN or inf (a run that diverged
    before NaN was caught: older versions kept such weights as best)."""
    floats = {k: v for k, v in weights.items() if torch.is_tensor(v) and v.is_floating_point()}
    broken = [k for k, v in floats.items() if not bool(torch.isfinite(v).all())]
    if broken:
        raise InputError(
            f"{path}: non-finite weights (NaN or inf in {broken[0]}{' and more' if len(broken) > 1 else ''}: the training "
            f"diverged); {RETRAIN} with a lower --lr"
        )


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DistributedDataParallel and torch.compile wrappers."""
    inner = getattr(model, "module", model)
    return getattr(inner, "_orig_mod", inner)

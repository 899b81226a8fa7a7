"""Checkpoints, written atomically: a killed run resumes from its last complete epoch.

``checkpoint.pt`` (after every epoch): model, optimizer, scheduler, gradient scaler, epoch,
random states, the best validation mIoU so far and the epochs since it. ``best.pt``: the model
of the best epoch and its metrics. A temporary file renamed into place, so an interruption
never leaves a half-written checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mammotools.errors import InputError
from mammotools.files import atomic_path

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


def save(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary name beside ``path``, then rename."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save` (weights and plain Python values; loaded on the CPU)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no checkpoint; train the run first") from None
    except Exception as exc:  # torch raises RuntimeError, pickle errors, EOFError... for a damaged file
        raise InputError(f"{path}: damaged checkpoint ({type(exc).__name__}); delete it and train the stage again") from None
    if not isinstance(state, dict) or "model" not in state:
        raise InputError(f"{path}: not a mammotools checkpoint")
    return state


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DistributedDataParallel and torch.compile wrappers."""
    inner = getattr(model, "module", model)
    return getattr(inner, "_orig_mod", inner)

"""Segmentation metrics from one confusion matrix accumulated over a whole validation set.

The paper (section 4) reports pixel accuracy, mean IoU and mean per-class accuracy, all read
from one confusion matrix summed over every validation pixel (not averaged per image); we add
per-class IoU, Dice and accuracy, and mean Dice, because pixel accuracy is dominated by
background. :class:`ConfusionMatrix` accumulates the matrix with torch, on the device the
predictions are on; :func:`scores` and the CSV functions need numpy only, so every figure can be
recomputed from a saved matrix without torch.

Classes absent from a validation set (see :func:`scores`):

- a class with no pixel in truth **and** none in prediction (its row and its column are zero)
  is left out of every mean: there is nothing to score. segmentation_models_pytorch's metrics
  score such a class 1.0 by default (``zero_division=1.0``), which inflates the means of a set
  where rare classes (calcifications, axillary lymph nodes) are missing;
- a class predicted but never true has IoU 0 and Dice 0 and counts in mean IoU and mean Dice
  (every pixel given to it is a false positive); its accuracy (recall) is undefined and it is
  left out of mean accuracy.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mammotools.errors import InputError, MissingFileError
from mammotools.files import atomic_write_bytes

if TYPE_CHECKING:
    import torch

CSV_CORNER = "truth\\prediction"  # the CSV's top-left cell: rows are truth, columns prediction


class ConfusionMatrix:
    """A (C, C) int64 confusion matrix, rows = truth, columns = prediction, summed over batches.

    ``update`` takes integer label tensors of any (equal) shape; pixels whose target is
    ``ignore_index`` are skipped. The matrix lives on ``device``, or, when ``device`` is None,
    on the device of the first tensors given to ``update`` (CPU until then), so a validation
    loop on the GPU never copies label maps back to the CPU.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.device = device
        self._matrix: torch.Tensor | None = None

    @property
    def matrix(self) -> torch.Tensor:
        """The matrix so far: (C, C) int64 tensor, ``matrix[t, p]`` = pixels of truth t predicted p."""
        if self._matrix is None:
            return self._zeros()
        return self._matrix

    def _zeros(self) -> torch.Tensor:
        import torch

        c = self.num_classes
        return torch.zeros((c, c), dtype=torch.int64, device=self.device or "cpu")

    def reset(self) -> None:
        """Start again from an all-zero matrix (same device)."""
        if self._matrix is not None:
            self._matrix.zero_()

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch. pred, target: integer label tensors of one shape (any batch shape).

        Values must lie in [0, C) except target pixels equal to ``ignore_index``, which are
        skipped; anything else raises ValueError (a wrong ``num_classes`` would otherwise
        silently count pixels in the wrong cells).
        """
        import torch

        if pred.shape != target.shape:
            raise ValueError(f"pred and target must have one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
        if pred.is_floating_point() or target.is_floating_point():
            raise ValueError(f"pred and target must be integer label tensors, got {pred.dtype} and {target.dtype}")
        if self._matrix is None:
            if self.device is None:
                self.device = target.device
            self._matrix = self._zeros()
        matrix = self._matrix
        # int64 before multiplying: target * C overflows uint8 label maps.
        t = target.to(matrix.device, torch.int64, non_blocking=True).reshape(-1)
        p = pred.to(matrix.device, torch.int64, non_blocking=True).reshape(-1)
        keep = t != self.ignore_index
        t, p = t[keep], p[keep]
        c = self.num_classes
        if t.numel() == 0:
            return
        bad = (t < 0) | (t >= c) | (p < 0) | (p >= c)
        if bool(bad.any()):
            wrong = sorted(set(torch.cat([t[bad], p[bad]]).unique().tolist()) - set(range(c)))
            raise ValueError(
                f"label value(s) {wrong[:5]} outside [0, {c}) in prediction or target; "
                f"check num_classes={c} and ignore_index={self.ignore_index}"
            )
        matrix += torch.bincount(t * c + p, minlength=c * c).reshape(c, c)

    def all_reduce(self) -> None:
        """Sum the matrix over torch.distributed ranks (in place); a no-op when not initialised.

        Every rank must call it. With the NCCL backend a rank that saw no batch allocates its
        zero matrix on its current CUDA device.
        """
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        if self._matrix is None:
            if self.device is None and dist.get_backend() == "nccl":
                self.device = torch.device("cuda", torch.cuda.current_device())
            self._matrix = self._zeros()
        dist.all_reduce(self._matrix, op=dist.ReduceOp.SUM)

    def to_numpy(self) -> np.ndarray:
        """A copy of the matrix: (C, C) int64 numpy array."""
        return np.array(self.matrix.detach().cpu().numpy(), dtype=np.int64)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return math.fsum(kept) / len(kept) if kept else None


def scores(matrix: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """The paper's three figures and per-class IoU / Dice / accuracy, from one confusion matrix.

    matrix: (C, C) non-negative integers, rows = truth, columns = prediction; class_names: C
    names, in label order. Returns a JSON-ready dict (plain floats, ints, bools, None)::

        {"pixels": total counted pixels,
         "pixel_accuracy": trace / total,
         "mean_iou", "mean_dice": over the present classes,
         "mean_accuracy": over the classes present in truth,
         "classes": {name: {"iou", "dice", "accuracy", "present", "true_pixels", "predicted_pixels"}}}

    A class is ``present`` when its row or its column holds a pixel. For class k with tp =
    matrix[k, k], t = row sum (truth), p = column sum (prediction): IoU = tp / (t + p - tp),
    Dice = 2 tp / (t + p), accuracy (recall) = tp / t. An undefined figure is None: IoU and
    Dice of an absent class, accuracy of a class absent from truth; None figures are left out
    of the means (the module docstring says why; smp would score absent classes 1.0). A
    matrix with no pixel gives None for every figure.
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got shape {m.shape}")
    if m.dtype.kind not in "iu" or (m.size and m.min() < 0):
        raise ValueError(f"confusion matrix must hold non-negative integers, got dtype {m.dtype}")
    if len(class_names) != m.shape[0]:
        raise ValueError(f"{len(class_names)} class name(s) for a {m.shape[0]}-class confusion matrix")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class names must be unique, got {class_names}")
    m = m.astype(np.int64)
    tp = [int(v) for v in np.diag(m)]
    truth = [int(v) for v in m.sum(axis=1)]
    predicted = [int(v) for v in m.sum(axis=0)]
    total = int(m.sum())

    classes: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(class_names):
        union = truth[k] + predicted[k] - tp[k]
        classes[name] = {
            "iou": _ratio(tp[k], union),
            "dice": _ratio(2 * tp[k], truth[k] + predicted[k]),
            "accuracy": _ratio(tp[k], truth[k]),
            "present": union > 0,
            "true_pixels": truth[k],
            "predicted_pixels": predicted[k],
        }
    per_class = list(classes.values())
    return {
        "pixels": total,
        "pixel_accuracy": _ratio(sum(tp), total),
        "mean_iou": _mean([c["iou"] for c in per_class]),
        "mean_accuracy": _mean([c["accuracy"] for c in per_class]),
        "mean_dice": _mean([c["dice"] for c in per_class]),
        "classes": classes,
    }


def write_confusion_csv(path: str | os.PathLike[str], matrix: np.ndarray, class_names: list[str]) -> None:
    """Write the matrix as CSV, atomically: header ``truth\\prediction,<names>``, then one row
    per true class, ``<name>,<counts>``. matrix: (C, C) non-negative integers."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or len(class_names) != m.shape[0]:
        raise ValueError(f"{len(class_names)} class name(s) for a confusion matrix of shape {m.shape}")
    if m.dtype.kind not in "iu":
        raise ValueError(f"confusion matrix must hold integers, got dtype {m.dtype}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([CSV_CORNER, *class_names])
    for name, row in zip(class_names, m.tolist(), strict=True):
        writer.writerow([name, *row])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def read_confusion_csv(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """Read a matrix written by :func:`write_confusion_csv`: ((C, C) int64 array, C names).

    Also after a spreadsheet saved it (BOM, CRLF). Raises MissingFileError or InputError
    (naming the file and the problem) for anything else.
    """
    p = Path(path)
    fix = "give a confusion matrix CSV written by mammotools (header truth\\prediction,<class names>)"
    if not p.is_file():
        raise MissingFileError(f"{p}: confusion matrix file not found")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if row]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{p}: not a readable CSV file ({exc}); {fix}") from None
    if not rows or len(rows[0]) < 2:
        raise InputError(f"{p}: no header of class names; {fix}")
    names = rows[0][1:]
    body = rows[1:]
    if [row[0] for row in body] != names:
        raise InputError(f"{p}: row names {[row[0] for row in body]} differ from column names {names}; {fix}")
    values: list[list[int]] = []
    for row in body:
        if len(row) != len(names) + 1:
            raise InputError(f"{p}: row {row[0]!r} has {len(row) - 1} count(s), expected {len(names)}; {fix}")
        try:
            counts = [int(v) for v in row[1:]]
        except ValueError:
            raise InputError(f"{p}: row {row[0]!r} holds a value that is not an integer; {fix}") from None
        if min(counts) < 0:
            raise InputError(f"{p}: row {row[0]!r} holds a negative count; {fix}")
        values.append(counts)
    return np.array(values, dtype=np.int64).reshape(len(names), len(names)), names

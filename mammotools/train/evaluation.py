"""Scoring a model on whole images (validation crops or full mammograms) by sliding window.

One confusion matrix is accumulated over all the images (on the model's device), summed over
the ranks under torchrun, and every figure comes from it (mammotools.metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mammotools.crops import checked_bits
from mammotools.data import OUTSIDE_IMAGE, resize_image, scale_image
from mammotools.images import read_image
from mammotools.inference import resize_scores, sliding_window_scores
from mammotools.metrics import ConfusionMatrix
from mammotools.palette import read_label_png


@dataclass(frozen=True)
class EvalImage:
    """One image to score: its files and bit depth (None: found from the image)."""

    name: str
    image_path: Path
    label_path: Path
    bits: int | None = None


def evaluate_images(
    model: torch.nn.Module,
    images: Iterable[EvalImage],
    lut: np.ndarray,
    num_classes: int,
    window: int,
    out: int,
    device: torch.device,
    overlap: float = 0.5,
    batch_size: int = 4,
    autocast_dtype: torch.dtype | None = None,
    on_image: Callable[[EvalImage, np.ndarray, np.ndarray], None] | None = None,
    scale: float = 1.0,
) -> ConfusionMatrix:
    """The confusion matrix of ``model`` over ``images`` (label values mapped by ``lut``).

    ``on_image(image, prediction, target)`` sees each image's predicted class map (H, W) uint8
    and its target (H, W) int64 (255 = ignored), e.g. to save predictions or per-image scores.
    ``scale``: the model runs on the image resized by it (as it was trained); its scores are
    resized back, so the image is scored on its own pixels.
    """
    matrix = ConfusionMatrix(num_classes, device=device)
    model.eval()
    for item in images:
        pixels = read_image(item.image_path)
        size = pixels.shape[:2]
        x = torch.from_numpy(
            scale_image(
                resize_image(pixels, scale), checked_bits(item.bits, pixels, item.image_path, "rerun the command that made it")
            )
        )
        del pixels
        scores = sliding_window_scores(
            model,
            x,
            num_classes,
            window,
            out,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
            dtype=autocast_dtype,
            pad_value=OUTSIDE_IMAGE,
        )
        scores = resize_scores(scores, size)
        prediction = scores.argmax(0).to(torch.uint8)
        del scores
        target = torch.from_numpy(lut[read_label_png(item.label_path)])
        matrix.update(prediction.to(device), target.to(device))
        if on_image is not None:
            on_image(item, prediction.cpu().numpy(), target.numpy())
    return matrix

"""Fixtures of the model tests: a tiny learnable batch, parameter counts, seeded runs.

Fixtures rather than importable helpers: ``from conftest import`` finds tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn


def _parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _block_batch(size: int, num_classes: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """2 images of ``size`` px made of 2x2 blocks, each block one class painted in that class's colour.

    Returns images (2, 3, size, size) float32 and label maps (2, size, size) int64: a task every
    model can learn at its own output stride.
    """
    gen = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, num_classes, (2, 2, 2), generator=gen)
    first, second = size // 2, size - size // 2
    label = torch.cat([cells[:, :1].expand(-1, first, -1), cells[:, 1:].expand(-1, second, -1)], dim=1)
    label = torch.cat([label[:, :, :1].expand(-1, -1, first), label[:, :, 1:].expand(-1, -1, second)], dim=2)
    colours = torch.randn(num_classes, 3, generator=gen) * 0.5
    images = colours[label].permute(0, 3, 1, 2) + 0.1 * torch.randn(2, 3, size, size, generator=gen)
    return images.contiguous(), label.contiguous()


@pytest.fixture
def parameter_count() -> Callable[[nn.Module], int]:
    """Counts a model's parameters."""
    return _parameter_count


@pytest.fixture
def block_batch() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """Makes a tiny learnable batch: ``block_batch(size)`` -> images, label maps (see ``_block_batch``)."""
    return _block_batch


@pytest.fixture
def seeded() -> Iterator[None]:
    """Torch's global generator seeded for the test only (dropout and init draw from it), restored after."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield

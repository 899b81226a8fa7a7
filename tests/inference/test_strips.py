"""Sliding windows a band of rows at a time (issue 20, item 13): the same probabilities as the
whole-image accumulators, bit for bit, the same label maps, with memory bounded by the window."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import mammotools.inference.sliding as sliding
from mammotools.inference import resize_scores, sliding_window_scores
from mammotools.inference.strips import RowSource, label_map_by_strips, resized_strips, sliding_window_strips


class CroppedConv(nn.Module):
    """A fixed random ``kernel`` conv without padding, then a centre crop to ``side - 2 * crop``."""

    def __init__(self, channels: int, num_classes: int, kernel: int = 3, crop: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, num_classes, kernel)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen))
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=gen) * 0.1)
        self.crop = crop - (kernel - 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        c = self.crop
        return y[:, :, c : y.shape[2] - c, c : y.shape[3] - c] if c else y


def image(h: int, w: int, channels: int = 3) -> torch.Tensor:
    return torch.randn((channels, h, w), generator=torch.Generator().manual_seed(1))


def strips_whole(strips) -> torch.Tensor:
    parts = list(strips)
    assert [y for y, _ in parts] == list(np.cumsum([0] + [p.shape[1] for _, p in parts[:-1]]))  # in order, each row once
    return torch.cat([p for _, p in parts], 1)


@pytest.mark.parametrize(("h", "w", "window", "out"), [(97, 83, 16, 16), (130, 61, 24, 16), (9, 40, 16, 12), (5, 7, 16, 16)])
@pytest.mark.parametrize("batch", [1, 3, 7])
@pytest.mark.parametrize("pad_value", [None, -0.5])
def test_bands_equal_the_whole_image_accumulators_bit_for_bit(
    h: int, w: int, window: int, out: int, batch: int, pad_value: float | None
) -> None:
    crop = (window - out) // 2
    model, x = CroppedConv(3, 4, kernel=3 if crop else 1, crop=crop), image(h, w)
    whole = sliding_window_scores(model, x, 4, window, out, 0.5, batch, pad_value=pad_value)
    bands = strips_whole(sliding_window_strips(model, x, 4, window, out, 0.5, batch, pad_value=pad_value))
    assert bands.shape == whole.shape == (4, h, w)
    assert torch.equal(bands, whole)


def test_the_image_is_read_a_band_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sliding, "PACKED_SIDE", 1)  # 2 windows a pass, unpacked
    x, asked = image(400, 50), []

    def rows(a: int, b: int) -> torch.Tensor:
        asked.append(b - a)
        return x[:, a:b]

    model = CroppedConv(3, 2, kernel=1, crop=0)
    bands = list(sliding_window_strips(model, RowSource((3, 400, 50), rows), 2, 32, 32, 0.5, 2))
    assert max(asked) <= 32 + 16  # a batch of 2 tiles spans at most two rows of tiles
    assert max(b.shape[1] for _, b in bands) <= 32 and sum(b.shape[1] for _, b in bands) == 400
    assert torch.equal(torch.cat([b for _, b in bands], 1), sliding_window_scores(model, x, 2, 32, 32, 0.5, 2))


@pytest.mark.parametrize(("size_in", "size_out"), [((50, 40), (100, 80)), ((50, 40), (123, 77)), ((64, 64), (31, 45))])
def test_bands_resized_as_they_come_agree_with_the_whole_resize(size_in: tuple, size_out: tuple) -> None:
    model, x = CroppedConv(3, 4, kernel=1, crop=0), image(*size_in)
    whole = resize_scores(sliding_window_scores(model, x, 4, 16, 16, 0.5, 3), size_out)
    bands = strips_whole(resized_strips(sliding_window_strips(model, x, 4, 16, 16, 0.5, 3), size_in, size_out))
    assert bands.shape == whole.shape
    assert torch.allclose(bands, whole, atol=1e-6, rtol=0)
    top2 = whole.topk(2, dim=0).values
    clear = (top2[0] - top2[1]) > 1e-5  # ties aside
    assert torch.equal(bands.argmax(0)[clear], whole.argmax(0)[clear]) and clear.float().mean() > 0.99


def test_the_label_map_equals_the_argmax_of_the_whole_probabilities() -> None:
    model, x = CroppedConv(3, 4, kernel=3, crop=1), image(150, 110)
    whole = sliding_window_scores(model, x, 4, 20, 18, 0.5, 4).numpy()
    kept = label_map_by_strips(sliding_window_strips(model, x, 4, 20, 18, 0.5, 4), 4, (150, 110), True)
    label = whole.argmax(0).astype(np.uint8)  # what predict computed from the whole array
    np.testing.assert_array_equal(kept.label, label)
    np.testing.assert_array_equal(kept.confidence, np.take_along_axis(whole, label[None].astype(np.int64), 0)[0])
    assert kept.probabilities is not None
    np.testing.assert_array_equal(kept.probabilities, np.rint(whole * 255).astype(np.uint8))

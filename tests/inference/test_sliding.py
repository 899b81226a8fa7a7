"""Sliding-window inference: seamless maps of the exact size, no shift, Gaussian blending,
bounded window batches; the one-pass baseline."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mammotools.inference.sliding as sliding
from mammotools.inference import (
    gaussian_weights,
    predict_label_map,
    sliding_window_scores,
    tile_starts,
    whole_image_scores,
)

UNET_CROP = 184  # the unpadded U-Net: 572 in, 388 out


class ConstantModel(nn.Module):
    """Logits favouring ``label`` everywhere, for the central (side - 2 * crop) square."""

    def __init__(self, num_classes: int, label: int, crop: int = 0) -> None:
        super().__init__()
        self.num_classes, self.label, self.crop = num_classes, label, crop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        logits = torch.zeros((b, self.num_classes, h - 2 * self.crop, w - 2 * self.crop))
        logits[:, self.label] = 5.0
        return logits


class CroppedConv(nn.Module):
    """A fixed random ``k x k`` conv without padding, then a centre crop: output side = input - 2 * crop."""

    def __init__(self, channels: int, num_classes: int, kernel: int = 1, crop: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, num_classes, kernel, padding=0)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen))
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=gen))
        self.crop = crop - (kernel - 1) // 2  # what is left to crop after the conv's own shrink

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        c = self.crop
        return y[:, :, c : y.shape[2] - c, c : y.shape[3] - c] if c else y


class Counting(nn.Module):
    """Wraps a model and records the batch size of each forward call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        return self.inner(x)


def random_image(channels: int, h: int, w: int, seed: int = 1) -> torch.Tensor:
    return torch.randn((channels, h, w), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("window, out", [(32, 32), (32 + UNET_CROP, 32)])
@pytest.mark.parametrize("h, w", [(20, 13), (32, 32), (45, 77), (100, 33)])
def test_constant_model_gives_a_seamless_map_of_the_image_size(window: int, out: int, h: int, w: int) -> None:
    # 20x13 is smaller than any window (and than the U-Net margin: padded with zeros), 45 and 77
    # are not multiples of the stride (16).
    model = ConstantModel(4, label=2, crop=(window - out) // 2)
    image = random_image(3, h, w)
    probs = sliding_window_scores(model, image, 4, window, out)
    assert probs.shape == (4, h, w) and probs.dtype == torch.float32 and probs.device.type == "cpu"
    assert torch.allclose(probs.sum(dim=0), torch.ones(h, w))
    expected = torch.softmax(torch.tensor([0.0, 0.0, 5.0, 0.0]), dim=0)
    assert torch.allclose(probs, expected[:, None, None].expand(4, h, w), atol=1e-6)
    labels = predict_label_map(model, image, 4, window, out)
    assert labels.shape == (h, w) and labels.dtype == np.uint8 and (labels == 2).all()


@pytest.mark.parametrize("kernel, crop", [(1, 0), (1, 3), (3, 1), (3, 5)])
@pytest.mark.parametrize("h, w", [(37, 53), (9, 70)])
def test_per_pixel_model_through_windows_equals_the_whole_image(kernel: int, crop: int, h: int, w: int) -> None:
    # A k x k conv needs (k - 1) / 2 px of context: sliding windows reflect-pad the image by the
    # margin, so the exact answer is the conv over the reflect-padded image; any shift of a
    # tile against its window would change the values.
    model = CroppedConv(3, 5, kernel=kernel, crop=crop)
    image = random_image(3, h, w, seed=h + w)
    window = 16
    out = window - 2 * crop
    ctx = (kernel - 1) // 2
    with torch.no_grad():
        exact = torch.softmax(model.conv(F.pad(image, (ctx, ctx, ctx, ctx), mode="reflect")), dim=0)
    probs = sliding_window_scores(model, image, 5, window, out, overlap=0.25, batch_size=3)
    torch.testing.assert_close(probs, exact, atol=1e-5, rtol=1e-5)
    labels = predict_label_map(model, image, 5, window, out, overlap=0.25, batch_size=3)
    np.testing.assert_array_equal(labels, exact.argmax(dim=0).numpy())


def test_gaussian_weights_are_positive_peak_one_and_sigma_an_eighth() -> None:
    for size in (1, 4, 16, 17, 388):
        w = gaussian_weights(size)
        assert w.shape == (size, size) and w.dtype == torch.float32
        assert (w > 0).all() and w.max() == 1.0
        assert torch.equal(w, w.T) and torch.equal(w, w.flip(0))
    w = gaussian_weights(17)  # centre at 8, sigma = 17 / 8
    sigma = 17 / 8
    assert w[8, 8 + 3].item() == pytest.approx(math.exp(-9 / (2 * sigma**2)), rel=1e-6)
    assert w[8 + 2, 8 + 3].item() == pytest.approx(math.exp(-13 / (2 * sigma**2)), rel=1e-6)


class TopLeftModel(nn.Module):
    """Per window, P(class 1) = sigmoid(top-left input value), the same on every output pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x[:, 0, 0, 0]
        logits = torch.zeros((x.shape[0], 2, x.shape[2], x.shape[3]))
        logits[:, 1] = z[:, None, None]
        return logits


def test_two_overlapping_windows_blend_as_a_gaussian_weighted_average() -> None:
    # 4x6 image, window = out = 4, overlap 0.5: tiles at columns 0 and 2, overlapping on 2 and 3.
    # Channel 0 holds the column index, so the tiles see 0 and 2 at their top-left corner:
    # P1 = sigmoid(0) = 1/2 on the first, sigmoid(2) on the second.
    image = torch.arange(6, dtype=torch.float32).expand(1, 4, 6).clone()
    assert tile_starts(6, 4, 0.5) == [0, 2] and tile_starts(4, 4, 0.5) == [0]
    probs = sliding_window_scores(TopLeftModel(), image, 2, window=4)
    # sigma = 4 / 8 = 1/2, centre 1.5: weights exp(-2 (i - 1.5)^2) / exp(-1/2) = [e^-4, 1, 1, e^-4]
    # per column (the row factor is common to both tiles and cancels).
    a, b, e = 0.5, 1 / (1 + math.exp(-2)), math.exp(-4)
    expected = [a, a, (1 * a + e * b) / (1 + e), (e * a + 1 * b) / (1 + e), b, b]
    for row in range(4):
        assert probs[1, row].tolist() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("batch_size", [1, 3, 4])
def test_forward_calls_never_exceed_the_batch_size(batch_size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sliding, "PACKED_SIDE", 1)  # windows as they are, unpacked
    model = Counting(ConstantModel(3, label=1))
    sliding_window_scores(model, random_image(1, 70, 50), 3, window=16, batch_size=batch_size)
    n = len(tile_starts(70, 16)) * len(tile_starts(50, 16))
    assert n == 8 * 6
    assert max(model.batches) <= batch_size and sum(model.batches) == n
    assert len(model.batches) == math.ceil(n / batch_size)


def test_small_windows_are_packed_by_pixels_with_the_same_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: a 32 px model validated on 256 px crops made 57 forward calls of 4 windows per crop
    (most of a tiny run's time); a pass now holds the pixels of 4 windows of 256 px."""
    assert sliding.windows_per_pass(4, 32) == 4 * 64 and sliding.windows_per_pass(4, 100) == 4 * 6
    assert sliding.windows_per_pass(4, 256) == 4 and sliding.windows_per_pass(2, 572) == 2
    image, model = random_image(2, 256, 256), Counting(CroppedConv(2, 3))
    packed = sliding_window_scores(model, image, 3, window=32, batch_size=4)
    assert model.batches == [225]  # 15 x 15 windows, one call
    assert max(model.batches) * 32**2 <= 4 * sliding.PACKED_SIDE**2
    monkeypatch.setattr(sliding, "PACKED_SIDE", 1)
    model.batches.clear()
    assert torch.allclose(sliding_window_scores(model, image, 3, window=32, batch_size=4), packed, atol=1e-6)
    assert len(model.batches) == 57


@pytest.mark.parametrize("out", [1, 7, 16, 388])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.9])
def test_tiles_cover_every_axis_without_gaps_or_overrun(out: int, overlap: float) -> None:
    for length in [out, out + 1, out + 15, 2 * out - 1, 3 * out + 5, 1000]:
        if length < out:
            continue
        starts = tile_starts(length, out, overlap)
        assert starts[0] == 0 and starts[-1] == length - out and starts == sorted(set(starts))
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s : s + out] = True
        assert covered.all()
        stride = max(1.0, out * (1 - overlap))
        assert all(b - a <= math.ceil(stride) for a, b in itertools.pairwise(starts))


def test_model_mode_is_restored_and_inference_runs_in_eval_mode() -> None:
    seen: list[bool] = []

    class Probe(ConstantModel):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(self.training and torch.is_grad_enabled())
            return super().forward(x)

    model = Probe(2, 0)
    model.train()
    sliding_window_scores(model, random_image(1, 10, 10), 2, window=8)
    whole_image_scores(model, random_image(1, 10, 10), 2)
    assert seen and not any(seen) and model.training


def test_wrong_output_shape_or_window_is_one_clear_error() -> None:
    image = random_image(1, 20, 20)
    wrong = r"returned \(9, 3, 8, 8\) .* expected \(9, 3, 10, 10\): check num_classes, window and out"  # 9 windows, packed
    with pytest.raises(ValueError, match=wrong):
        sliding_window_scores(ConstantModel(3, 0, crop=2), image, 3, window=12, out=8 + 2)
    with pytest.raises(ValueError, match="window - out even"):
        sliding_window_scores(ConstantModel(3, 0), image, 3, window=12, out=9)
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_scores(ConstantModel(3, 0), image, 3, window=12, overlap=1.0)
    with pytest.raises(ValueError, match=r"\(C, H, W\) float"):
        sliding_window_scores(ConstantModel(3, 0), image[0], 3, window=12)


def test_device_argument_keeps_the_result_there() -> None:
    probs = sliding_window_scores(ConstantModel(3, 1), random_image(1, 9, 9), 3, window=8, device="cpu")
    assert probs.device.type == "cpu"
    probs += 1  # an ordinary tensor, not an inference-mode one
    assert whole_image_scores(ConstantModel(3, 1), random_image(1, 9, 9), 3, device="cpu").add_(1).shape == (3, 9, 9)


def test_torchvision_style_dict_output_is_read() -> None:
    class DictModel(ConstantModel):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
            return {"out": super().forward(x), "aux": x}

    labels = predict_label_map(DictModel(3, 2), random_image(1, 30, 20), 3, window=16)
    assert (labels == 2).all()


@pytest.mark.parametrize("kernel, crop", [(1, 0), (3, 1), (3, 6)])
def test_whole_image_pass_equals_the_exact_answer_and_the_windows(kernel: int, crop: int) -> None:
    model = Counting(CroppedConv(2, 4, kernel=kernel, crop=crop, seed=3))
    image = random_image(2, 41, 29, seed=7)
    ctx = (kernel - 1) // 2
    with torch.no_grad():
        exact = torch.softmax(model.inner.conv(F.pad(image, (ctx, ctx, ctx, ctx), mode="reflect")), dim=0)
    window = 20 if crop else None
    whole = whole_image_scores(model, image, 4, window=window, out=20 - 2 * crop if crop else None, multiple=8)
    assert model.batches == [1]
    torch.testing.assert_close(whole, exact, atol=1e-5, rtol=1e-5)
    windows = sliding_window_scores(model, image, 4, window=20, out=20 - 2 * crop)
    torch.testing.assert_close(windows, whole, atol=1e-5, rtol=1e-5)


def test_whole_image_pads_to_a_size_the_model_accepts() -> None:
    sizes: list[tuple[int, int]] = []

    class UNetLike(nn.Module):
        """Accepts 572 + 16 k only, answers the centre (input - 184)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[2:]
            assert (h - 572) % 16 == 0 and (w - 572) % 16 == 0, (h, w)
            sizes.append((h, w))
            return torch.zeros((x.shape[0], 2, h - UNET_CROP, w - UNET_CROP))

    probs = whole_image_scores(UNetLike(), random_image(1, 300, 420), 2, window=572, out=388, multiple=16)
    assert probs.shape == (2, 300, 420)
    assert sizes == [(572, 572 + 2 * 16)]  # outputs 388 >= 300 (never below window) and 420 exactly
    assert whole_image_scores(ConstantModel(2, 1), random_image(1, 33, 64), 2).shape == (2, 33, 64)


@pytest.mark.gpu
def test_autocast_on_cuda_matches_float32() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    model = CroppedConv(3, 5, kernel=3, crop=8).cuda()
    image = random_image(3, 300, 257)
    full = sliding_window_scores(model, image, 5, window=64, out=48, device="cuda")
    half = sliding_window_scores(model, image, 5, window=64, out=48, device="cuda", dtype=torch.float16)
    assert full.device.type == "cuda" and half.dtype == torch.float32
    torch.testing.assert_close(half, full, atol=1e-2, rtol=1e-2)
    cpu = sliding_window_scores(model.cpu(), image, 5, window=64, out=48)
    torch.testing.assert_close(full.cpu(), cpu, atol=1e-5, rtol=1e-5)


class BorderDistance(nn.Module):
    """Logits saying whether each pixel is left of the window's centre column (a position-aware model)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        left = (torch.arange(w) < w // 2).float().expand(b, 1, h, w)
        return torch.cat([left, 1 - left], dim=1) * 10


def test_an_image_narrower_than_the_window_is_centred_in_it_and_padded_with_the_value() -> None:
    image = torch.zeros(3, 40, 20)  # 20 px wide in a 32 px window: 6 px of padding each side, as make-crops lays it
    labels = predict_label_map(BorderDistance(), image, 2, 32, overlap=0.5, batch_size=1)
    assert labels.shape == (40, 20)
    assert (labels[:, :10] == 0).all() and (labels[:, 10:] == 1).all()  # the window's centre is the image's

    seen: list[torch.Tensor] = []

    class Spy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.clone())
            return torch.zeros(x.shape[0], 2, x.shape[2], x.shape[3])

    sliding_window_scores(Spy(), torch.full((3, 32, 20), 0.25), 2, 32, pad_value=-0.5)
    window = seen[0][0, 0]
    assert (window[:, :6] == -0.5).all() and (window[:, 6:26] == 0.25).all() and (window[:, 26:] == -0.5).all()


class LayoutRecorder(nn.Module):
    """Wraps a model and records whether each forward call's input was channels-last."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.channels_last: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.channels_last.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return self.inner(x)


def test_windows_reach_a_cpu_model_channels_last_with_the_same_label_map() -> None:
    """Issue 24: a CPU convolution runs 1.3-1.5x faster on channels-last input (smp-unet, fcn8),
    the time that kept us behind MONAI's sliding window; the model's own layout is left alone."""

    class Standard(nn.Module):  # the same model, fed the standard layout as before
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.contiguous())

    image = random_image(3, 70, 90, seed=5)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    model = LayoutRecorder(net)
    probs = sliding_window_scores(model, image, 4, window=32, batch_size=2)
    assert model.channels_last and all(model.channels_last)
    assert all(p.is_contiguous() for p in net.parameters())
    whole = whole_image_scores(model, image, 4, multiple=1)
    assert model.channels_last[-1]
    assert probs.is_contiguous() and probs.shape == (4, 70, 90)
    standard = sliding_window_scores(Standard(net), image, 4, window=32, batch_size=2)
    torch.testing.assert_close(probs, standard, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(whole, whole_image_scores(Standard(net), image, 4, multiple=1), atol=1e-5, rtol=1e-5)
    labels = predict_label_map(model, image, 4, window=32, batch_size=2)
    np.testing.assert_array_equal(labels, predict_label_map(Standard(net), image, 4, window=32, batch_size=2))

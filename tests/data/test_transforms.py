"""The online pipeline: scaling by bit depth, gray to 3 channels, windows, flips and contrast kept in step."""

from __future__ import annotations

import numpy as np

from mammotools.data.transforms import NO_AUGMENT, Augment, centre_crop, label_lookup, scale_image, training_item


def test_scale_by_bit_depth_and_three_channels() -> None:
    image = np.array([[0, 4095], [2048, 5000]], np.uint16)  # 12-bit data, one value above the depth
    x = scale_image(image, 12)
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    assert np.allclose(x[0], [[-0.5, 0.5], [2048 / 4095 - 0.5, 0.5]], atol=1e-6)
    assert np.array_equal(x[0], x[2])
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 1] = 255
    assert np.allclose(scale_image(rgb, 8)[1], 0.5) and np.allclose(scale_image(rgb, 8)[0], -0.5)


def test_lookup_maps_labels_and_ignores_the_rest() -> None:
    lut = label_lookup([0, 64, 200])
    assert (lut[0], lut[64], lut[200], lut[1], lut[255]) == (0, 1, 2, 255, 255)


def test_window_flip_and_contrast_move_image_and_target_together() -> None:
    rng = np.random.default_rng(0)
    image = (np.arange(40 * 50).reshape(40, 50) % 255).astype(np.uint8)  # 255 = 3 * 85: value % 3 survives
    label = (np.arange(40 * 50).reshape(40, 50) % 3).astype(np.uint8)
    lut = label_lookup([0, 1, 2])
    flips = 0
    for seed in range(40):
        x, y = training_item(image, label, 8, lut, np.random.default_rng(seed), 16, 16, Augment(contrast_p=0.0))
        # find where the window came from: the target is a window of the label, maybe mirrored
        assert x.shape == (3, 16, 16) and y.shape == (16, 16) and y.dtype == np.int64
        grey = np.rint((x[0] + 0.5) * 255).astype(np.int64)
        assert np.array_equal(grey % 3, y)  # the image and the label stayed aligned (image value % 3 == label)
        flips += int(grey[0, 0] > grey[0, 1])
    assert 8 < flips < 32  # flipped about half the time
    x, y = training_item(image, label, 8, lut, rng, 16, 16, Augment(flip_p=0.0, contrast_p=1.0, contrast_range=(2.0, 2.0)))
    assert x.min() >= -0.5 and x.max() <= 0.5 and x.std() > scale_image(image[:16, :16], 8).std()


def test_validation_is_centred_and_unpadded_unet_target_is_the_centre() -> None:
    image = np.zeros((30, 30), np.uint8)
    label = np.zeros((30, 30), np.uint8)
    label[15, 15] = 1
    x, y = training_item(image, label, 8, label_lookup([0, 1]), np.random.default_rng(0), 20, 10, NO_AUGMENT)
    assert x.shape == (3, 20, 20) and y.shape == (10, 10)
    assert y.sum() == 1 and y[5, 5] == 1  # window rows 5..24, centre 10 rows 10..19
    assert np.array_equal(centre_crop(np.arange(16).reshape(4, 4), 2), [[5, 6], [9, 10]])

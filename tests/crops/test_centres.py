"""Balanced crop centres: rates per class, uniform pixels, windows inside or padded, seeds."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mammotools.crops.centres import PixelPicker, Window, choose_centre, cut, window_around
from mammotools.seeds import crop_seed

BACKGROUND, TUMOR, CALC, PECTORAL, GLAND = 0, 1, 4, 7, 13


def label_map() -> np.ndarray:
    """Known areas: gland 60,000 px, pectoral 20,000, tumor 100, calcifications 3 x 9."""
    label = np.zeros((400, 500), np.uint8)
    label[50:350, 100:300] = GLAND
    label[0:100, 300:500] = PECTORAL
    label[200:210, 150:160] = TUMOR
    for r, c in ((100, 120), (300, 250), (150, 280)):
        label[r : r + 3, c : c + 3] = CALC
    return label


def test_centre_classes_at_the_expected_rate() -> None:
    label = label_map()
    pickers = {v: PixelPicker(label, v) for v in (TUMOR, CALC, PECTORAL)}  # gland and background excluded
    n = 3000
    chosen = Counter()
    for i in range(n):
        rng = np.random.default_rng(crop_seed(7, "img", i))
        row, col, value = choose_centre(rng, pickers, None, label.shape)
        assert label[row, col] == value  # the centre lies on the chosen class
        chosen[value] += 1
    # each of the 3 rare classes with probability 1/3, whatever its area (100 px or 20,000 px);
    # binomial sd = sqrt(p(1-p)/n) = 0.0086: tolerance 0.03 is 3.5 sd
    for value in (TUMOR, CALC, PECTORAL):
        assert abs(chosen[value] / n - 1 / 3) < 0.03, chosen


def test_pixels_of_a_class_are_drawn_uniformly() -> None:
    label = label_map()
    picker = PixelPicker(label, CALC)
    assert picker.count == 27
    rng = np.random.default_rng(3)
    hits = Counter(picker.pick(rng) for _ in range(27 * 400))
    assert len(hits) == 27  # every pixel reachable
    counts = np.array(list(hits.values()))
    # 400 expected per pixel; chi-square with 26 dof, 99.9% quantile is 54.1
    assert ((counts - 400) ** 2 / 400).sum() < 54.1


def test_fallback_inside_the_breast() -> None:
    label = np.zeros((100, 100), np.uint8)
    label[40:60, 0:30] = GLAND
    breast = PixelPicker(label, BACKGROUND, invert=True)
    for i in range(50):
        row, col, value = choose_centre(np.random.default_rng(i), {}, breast, label.shape)
        assert value is None and label[row, col] == GLAND


@pytest.mark.parametrize(
    ("centre", "expected"),
    [
        ((200, 250), (136, 186)),  # centred
        ((5, 5), (0, 0)),  # shifted inside at the top-left
        ((399, 499), (272, 372)),  # shifted inside at the bottom-right
    ],
)
def test_windows_stay_inside(centre: tuple[int, int], expected: tuple[int, int]) -> None:
    w = window_around(*centre, (400, 500), 128)
    assert (w.row0, w.col0, w.padded) == (*expected, False)


def test_small_image_is_centred_and_padded() -> None:
    image = np.arange(60 * 80, dtype=np.uint16).reshape(60, 80)
    w = window_around(30, 40, image.shape, 128)
    assert w == Window(-34, -24, 128, True)
    out = cut(image, w, 0)
    assert out.shape == (128, 128) and out.dtype == np.uint16
    assert np.array_equal(out[34:94, 24:104], image)
    assert out[:34].sum() == 0 and out[:, :24].sum() == 0
    labels = cut(np.full((60, 80), 5, np.uint8), w, 0)
    assert int((labels == 5).sum()) == 60 * 80  # padding is background


def test_crop_seeds_are_stable_and_distinct() -> None:
    assert crop_seed(0, "a", 1) == crop_seed(0, "a", 1)
    assert len({crop_seed(0, "a", i) for i in range(100)} | {crop_seed(1, "a", 0), crop_seed(0, "b", 0)}) == 102

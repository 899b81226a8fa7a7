"""Region maps: the pixel rule, discs, holes, smoothing against scipy, merging, overlaps."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from scipy import ndimage

from mammotools.classes import default_class_table
from mammotools.masks import (
    merge_region_maps,
    overlap_counts,
    rasterize_region,
    region_maps,
    smooth_region,
)

TABLE = default_class_table()
TUMOR, GLAND = TABLE.find("Tumor"), TABLE.find("Mammary gland")


def test_pixel_centre_rule() -> None:
    # edges on pixel boundaries: exactly the covered pixels; edges through centres: half-open
    rmap = rasterize_region(TUMOR, [shapely.box(10, 20, 13, 24)], (50, 50))
    assert rmap.pixels == 12 and (rmap.rows, rmap.cols) == (slice(20, 24), slice(10, 13))
    # a box from 10.4 to 12.6 contains the centres 10.5, 11.5, 12.5
    assert rasterize_region(TUMOR, [shapely.box(10.4, 10.4, 12.6, 12.6)], (50, 50)).pixels == 9


@pytest.mark.parametrize(("radius", "expected"), [(1, 5), (2, 13), (5, 81), (10, 317)])
def test_point_becomes_disc_of_lattice_points(radius: float, expected: int) -> None:
    # a point at a pixel centre: pixels whose centre lies within the radius (Gauss circle counts)
    rmap = rasterize_region(TUMOR, [shapely.Point(25.5, 25.5)], (60, 60), point_radius=radius)
    assert rmap.pixels == expected


def test_point_near_border_is_cut_by_the_image() -> None:
    rmap = rasterize_region(TUMOR, [shapely.Point(0.5, 0.5)], (60, 60), point_radius=5)
    # offsets (c, r) >= 0 with c^2 + r^2 <= 25: 6 + 5 + 5 + 5 + 4 + 1 for r = 0..5
    assert rmap.pixels == 26


def test_hole_and_multipolygon() -> None:
    ring = shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(3, 3), (7, 3), (7, 7), (3, 7)]])
    multi = shapely.MultiPolygon([ring, shapely.box(20, 20, 22, 22)])
    rmap = rasterize_region(GLAND, [multi], (30, 30))
    full = rmap.full_size((30, 30))
    assert rmap.pixels == 100 - 16 + 4 and full[5, 5] == 0 and full[0, 0] == 255


def reference_smooth(mask: np.ndarray, sigma: float) -> np.ndarray:
    """The straightforward way: scipy on the whole float map, threshold at 0.5."""
    return ndimage.gaussian_filter(mask.astype(np.float32), sigma) >= 0.5


@pytest.mark.parametrize("sigma", [2.0, 5.0, 9.0])
def test_windowed_smoothing_matches_whole_image_scipy(sigma: float) -> None:
    rng = np.random.default_rng(3)
    shape = (220, 260)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 40))
    radii = rng.uniform(40, 90, 40)
    blob = shapely.Polygon(np.c_[130 + radii * np.cos(angles), 110 + radii * np.sin(angles)])
    edge = shapely.box(-5, 150, 60, 260)  # touches the image border: reflective edge handling
    rmap = rasterize_region(GLAND, [blob, edge], shape)
    smoothed = smooth_region(rmap, sigma, shape).full_size(shape) > 0
    expected = reference_smooth(rmap.full_size(shape) > 0, sigma)
    differ = int((smoothed != expected).sum())
    assert differ <= 0.0005 * expected.sum()  # rounding of the uint8 filter, at most a few pixels
    assert smoothed.sum() != rmap.pixels  # smoothing did change the map


def test_smoothing_can_erase_a_thin_band_and_says_so() -> None:
    maps = region_maps(TABLE, {"Skin": [shapely.box(10, 10, 12, 90)]}, (100, 100), sigma=5)
    [skin] = maps
    assert skin.pixels == 0 and skin.drawn_pixels == 160


def test_merge_by_rank_and_overlaps() -> None:
    shape = (40, 40)
    maps = region_maps(
        TABLE,
        {
            "Mammary gland": [shapely.box(0, 0, 30, 30)],
            "Tumor": [shapely.box(20, 20, 40, 40)],
            "Text": [shapely.box(35, 0, 40, 5)],
        },
        shape,
        sigma=0,
    )
    label = merge_region_maps(maps, shape, TABLE.bottom.label)
    assert label[25, 25] == TUMOR.label and label[10, 10] == GLAND.label and label[2, 37] == 10
    assert int((label == 0).sum()) == 1600 - 900 - 400 + 100 - 25
    assert overlap_counts(maps) == {("Tumor", "Mammary gland"): 100}


def test_regions_outside_the_image_give_nothing() -> None:
    assert rasterize_region(TUMOR, [shapely.box(100, 100, 120, 120)], (50, 50)) is None


@pytest.mark.parametrize("sigma", [1.0, 5.0, 40.0])  # 40: the kernel radius (160) exceeds a tile
def test_tiled_smoothing_equals_one_filter_over_the_window(sigma: float) -> None:
    import cv2

    from mammotools.masks import _blur_threshold

    rng = np.random.default_rng(5)
    binary = np.zeros((700, 900), np.uint8)
    binary[100:600, 50:640] = 255  # a big block: uniform tiles inside, seams on tile edges
    binary[128:256, 256:384] = 0  # a hole exactly on tile boundaries
    binary[rng.integers(0, 700, 300), rng.integers(0, 900, 300)] = 255  # scattered dots
    radius = int(4 * sigma + 0.5)
    whole = cv2.GaussianBlur(binary, (2 * radius + 1,) * 2, sigma, sigma, borderType=cv2.BORDER_REFLECT) >= 128
    assert np.array_equal(_blur_threshold(binary, sigma, radius), whole)

"""Region maps: rasterize each region's annotations, smooth the flagged ones, merge by rank.

Pixel rule (one rule, everywhere): a pixel belongs to a polygon when its **centre** lies inside
it (GDAL's rule, via ``rasterio.features.rasterize``), so a rectangle from x=10 to x=20 covers
exactly the 10 columns 10..19 and holes stay holes. Lines (polylines) burn the pixels they pass
through. A point (e.g. a nipple marked with QuPath's point tool) becomes a disc: the pixels
whose centre lies within ``point_radius`` of it.

Smoothing (method.md): Gaussian filter of the binary map, then threshold at 0.5
(``value >= 0.5``), with the kernel truncated at 4 sigma as ``scipy.ndimage`` does and
reflective borders at the image edge. It is computed only on the region's bounding box plus
that 4-sigma margin, on uint8 0/255 data with OpenCV, which gives the same map as filtering
the whole image in float (up to rounding in a handful of edge pixels; benchmarks/masks.py).

Memory: each :class:`RegionMap` holds only its window, and the label map is the one full-size
array, written in place: (H, W) uint8, every pixel the label of the highest-ranked region
covering it, the bottom class (Background, label 0 in the default table) elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import cv2
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from mammotools.classes import ClassTable, RegionClass

DEFAULT_SIGMA = 5.0  # px: Gaussian sigma for smoothed regions
DEFAULT_POINT_RADIUS = 25.0  # px: radius of the disc a point annotation becomes
TRUNCATE = 4.0  # kernel radius in sigmas, as scipy.ndimage.gaussian_filter's default


@dataclass
class RegionMap:
    """A region's binary map, stored on its window of the image only.

    ``mask``: (h, w) bool, the window ``rows`` x ``cols`` of the full (H, W) image.
    """

    region: RegionClass
    rows: slice
    cols: slice
    mask: np.ndarray
    drawn_pixels: int = -1  # pixels as drawn, before smoothing (-1: not recorded)

    @property
    def pixels(self) -> int:
        """Number of pixels in the region."""
        return int(np.count_nonzero(self.mask))

    def full_size(self, shape: tuple[int, int]) -> np.ndarray:
        """The map on the whole image: (H, W) uint8, 255 inside the region, 0 outside."""
        out = np.zeros(shape, np.uint8)
        out[self.rows, self.cols][self.mask] = 255
        return out


def rasterize_region(
    region: RegionClass,
    geometries: Sequence[BaseGeometry],
    shape: tuple[int, int],
    point_radius: float = DEFAULT_POINT_RADIUS,
) -> RegionMap | None:
    """Draw a region's geometries (pixel coordinates) into a map of its window; None if empty."""
    from rasterio.features import rasterize  # heavy import, only where needed
    from rasterio.transform import Affine

    height, width = shape
    shapes, points = _split_parts(geometries)
    bounds = [g.bounds for g in shapes]
    bounds += [(x - point_radius, y - point_radius, x + point_radius, y + point_radius) for x, y in points]
    if not bounds:
        return None
    minx, miny, maxx, maxy = (f(b[i] for b in bounds) for i, f in enumerate((min, min, max, max)))
    c0, r0 = max(0, math.floor(minx)), max(0, math.floor(miny))
    c1, r1 = min(width, math.ceil(maxx) + 1), min(height, math.ceil(maxy) + 1)
    if c1 <= c0 or r1 <= r0:
        return None
    if shapes:
        mask = rasterize(
            ((g, 1) for g in shapes),
            out_shape=(r1 - r0, c1 - c0),
            transform=Affine(1, 0, c0, 0, 1, r0),
            fill=0,
            dtype="uint8",
        ).view(bool)
    else:
        mask = np.zeros((r1 - r0, c1 - c0), bool)
    for x, y in points:
        _draw_disc(mask, x - c0, y - r0, point_radius)
    return _trimmed(RegionMap(region, slice(r0, r1), slice(c0, c1), mask))


def smooth_region(rmap: RegionMap, sigma: float, shape: tuple[int, int]) -> RegionMap | None:
    """Gaussian-smooth a region map and threshold it at 0.5; None if nothing remains.

    Only the window plus a ``TRUNCATE * sigma`` margin is filtered: beyond it the map is 0,
    so the result equals filtering the whole image.
    """
    if sigma <= 0:
        return rmap
    radius = int(TRUNCATE * sigma + 0.5)
    height, width = shape
    r0, r1 = max(0, rmap.rows.start - radius), min(height, rmap.rows.stop + radius)
    c0, c1 = max(0, rmap.cols.start - radius), min(width, rmap.cols.stop + radius)
    padded = np.zeros((r1 - r0, c1 - c0), np.uint8)
    padded[rmap.rows.start - r0 : rmap.rows.stop - r0, rmap.cols.start - c0 : rmap.cols.stop - c0][rmap.mask] = 255
    size = 2 * radius + 1
    # BORDER_REFLECT (abc|cba) is scipy's "reflect"; it only matters at the image edge.
    blurred = cv2.GaussianBlur(padded, (size, size), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    del padded
    # uint8 holds round(255 * v); v >= 0.5 <=> 255 v >= 127.5 <=> rounded value >= 128.
    mask = blurred >= 128
    return _trimmed(RegionMap(rmap.region, slice(r0, r1), slice(c0, c1), mask))


def region_maps(
    table: ClassTable,
    geometries_by_class: dict[str, Sequence[BaseGeometry]],
    shape: tuple[int, int],
    sigma: float = DEFAULT_SIGMA,
    point_radius: float = DEFAULT_POINT_RADIUS,
) -> list[RegionMap]:
    """Rasterize (and smooth where the table says so) every class that has geometries.

    ``geometries_by_class`` maps class names of ``table`` to their geometries. Returns the
    maps, highest rank first; a map that smoothing erased is kept with an empty window (its
    ``drawn_pixels`` tell how much was lost).
    """
    maps = []
    for region in table:
        geoms = geometries_by_class.get(region.name)
        if not geoms:
            continue
        rmap = rasterize_region(region, geoms, shape, point_radius)
        if rmap is None:
            continue
        drawn = rmap.pixels
        if region.smooth:
            rmap = smooth_region(rmap, sigma, shape)
        if rmap is None:  # smoothing erased it: keep an empty map so callers can tell
            rmap = RegionMap(region, slice(0, 0), slice(0, 0), np.zeros((0, 0), bool))
        rmap.drawn_pixels = drawn
        maps.append(rmap)
    return maps


def merge_region_maps(maps: Iterable[RegionMap], shape: tuple[int, int], fill_label: int) -> np.ndarray:
    """Merge region maps by rank into a label map: (H, W) uint8, ``fill_label`` where uncovered.

    Regions are painted from the lowest rank up, so the highest-ranked region wins overlaps.
    """
    label = np.full(shape, fill_label, np.uint8)
    for rmap in sorted(maps, key=lambda m: -m.region.rank):
        label[rmap.rows, rmap.cols][rmap.mask] = rmap.region.label
    return label


def overlap_counts(maps: Sequence[RegionMap]) -> dict[tuple[str, str], int]:
    """Pixels covered by both regions, for every pair that overlaps (names, higher rank first)."""
    out = {}
    ordered = sorted(maps, key=lambda m: m.region.rank)
    for a, b in combinations(ordered, 2):
        r0, r1 = max(a.rows.start, b.rows.start), min(a.rows.stop, b.rows.stop)
        c0, c1 = max(a.cols.start, b.cols.start), min(a.cols.stop, b.cols.stop)
        if r1 <= r0 or c1 <= c0:
            continue
        ma = a.mask[r0 - a.rows.start : r1 - a.rows.start, c0 - a.cols.start : c1 - a.cols.start]
        mb = b.mask[r0 - b.rows.start : r1 - b.rows.start, c0 - b.cols.start : c1 - b.cols.start]
        n = int(np.count_nonzero(ma & mb))
        if n:
            out[(a.region.name, b.region.name)] = n
    return out


def label_pixel_counts(label: np.ndarray, table: ClassTable) -> dict[str, int]:
    """Pixels of each class of ``table`` in a label map (every class, zeros included)."""
    counts = np.bincount(label.ravel(), minlength=256)
    return {c.name: int(counts[c.label]) for c in table}


def _split_parts(geometries: Iterable[BaseGeometry]) -> tuple[list[BaseGeometry], list[tuple[float, float]]]:
    """Areas and lines to rasterize, and point coordinates to draw as discs."""
    shapes, points = [], []
    for geom in geometries:
        for part in shapely.get_parts(geom):
            if part.is_empty:
                continue
            if part.geom_type == "Point":
                points.append((part.x, part.y))
            elif part.geom_type == "GeometryCollection":
                sub_shapes, sub_points = _split_parts(part.geoms)
                shapes += sub_shapes
                points += sub_points
            else:
                shapes.append(part)
    return shapes, points


def _draw_disc(mask: np.ndarray, x: float, y: float, radius: float) -> None:
    """Set the pixels of ``mask`` whose centre is within ``radius`` of (x, y) (window coords)."""
    h, w = mask.shape
    r0, r1 = max(0, math.floor(y - radius)), min(h, math.ceil(y + radius) + 1)
    c0, c1 = max(0, math.floor(x - radius)), min(w, math.ceil(x + radius) + 1)
    if r1 <= r0 or c1 <= c0:
        return
    yy = (np.arange(r0, r1) + 0.5 - y)[:, None] ** 2
    xx = (np.arange(c0, c1) + 0.5 - x)[None, :] ** 2
    mask[r0:r1, c0:c1] |= (yy + xx) <= radius * radius


def _trimmed(rmap: RegionMap) -> RegionMap | None:
    """Shrink the window to the mask's bounding box; None if the mask is empty."""
    rows = np.flatnonzero(rmap.mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(rmap.mask.any(axis=0))
    ra, rb, ca, cb = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if (ra, rb, ca, cb) == (0, rmap.mask.shape[0], 0, rmap.mask.shape[1]):
        return rmap
    r0, c0 = rmap.rows.start, rmap.cols.start
    mask = np.ascontiguousarray(rmap.mask[ra:rb, ca:cb])
    return RegionMap(rmap.region, slice(r0 + ra, r0 + rb), slice(c0 + ca, c0 + cb), mask)

"""Region maps: rasterize each region's annotations, smooth the flagged ones, merge by rank.

Pixel rule (one rule, everywhere): a pixel belongs to a polygon when its **centre** lies inside
it (GDAL's rule; :func:`fill_polygon` gives rasterio's pixels, faster), so a rectangle from x=10 to x=20 covers
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import cv2
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from mammotools.classes import ClassTable, RegionClass
from mammotools.defaults import DEFAULT_POINT_RADIUS, DEFAULT_SIGMA

TRUNCATE = 4.0  # kernel radius in sigmas, as scipy.ndimage.gaussian_filter's default
TILE = 128  # px: tile size of the smoothing; only tiles near a boundary are filtered
STRIP_WIDTH = 8192  # px: small windows are filtered side by side in strips up to this wide


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
        np.multiply(self.mask.view(np.uint8), 255, out=out[self.rows, self.cols])
        return out


def rasterize_region(
    region: RegionClass,
    geometries: Sequence[BaseGeometry],
    shape: tuple[int, int],
    point_radius: float = DEFAULT_POINT_RADIUS,
) -> RegionMap | None:
    """Draw a region's geometries (pixel coordinates) into a map of its window; None if empty."""

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
    mask = np.zeros((r1 - r0, c1 - c0), bool)
    lines = []
    for part in shapes:
        if isinstance(part, shapely.Polygon):
            fill_polygon(mask, part, r0, c0)
        else:
            lines.append(part)
    if lines:
        from rasterio.features import rasterize  # lines are rare: import GDAL only for them
        from rasterio.transform import Affine

        mask |= rasterize(
            ((g, 1) for g in lines),
            out_shape=mask.shape,
            transform=Affine(1, 0, c0, 0, 1, r0),
            fill=0,
            dtype="uint8",
        ).view(bool)
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
    inner = padded[rmap.rows.start - r0 : rmap.rows.stop - r0, rmap.cols.start - c0 : rmap.cols.stop - c0]
    np.multiply(rmap.mask.view(np.uint8), 255, out=inner)
    mask = _blur_threshold(padded, sigma, radius)
    del padded
    return _trimmed(RegionMap(rmap.region, slice(r0, r1), slice(c0, c1), mask))


def _blur_threshold(binary: np.ndarray, sigma: float, radius: int) -> np.ndarray:
    """Gaussian blur of a 0/255 map, thresholded at 0.5: (h, w) uint8 -> (h, w) bool.

    The filter only changes pixels within ``radius`` of the region's boundary, so the map is
    cut into tiles and only the tiles the boundary crosses are filtered, with a ``radius``
    strip around them, in runs of adjacent tiles; every other pixel keeps its value. For a
    large region (the breast) this filters a fraction of the window, with the same result.
    """
    tile = TILE
    h, w = binary.shape
    nty, ntx = -(-h // tile), -(-w // tile)
    padded = np.zeros((nty * tile, ntx * tile), np.uint8)
    padded[:h, :w] = binary
    blocks = padded.reshape(nty, tile, ntx, tile)
    hi = blocks.max(axis=(1, 3))
    lo = blocks.min(axis=(1, 3))
    # the edge tiles hold padding zeros: judge them by the real pixels only
    if h % tile or w % tile:
        for ty, tx in {(nty - 1, x) for x in range(ntx)} | {(y, ntx - 1) for y in range(nty)}:
            real = binary[ty * tile : (ty + 1) * tile, tx * tile : (tx + 1) * tile]
            lo[ty, tx] = real.min()
    del padded, blocks
    # Pixels change only within `radius` of the boundary, which lies in the mixed tiles, or on
    # the seam between uniform tiles of different values: filter those tiles plus a `radius`
    # strip around them (reading `radius` further), leave every other pixel as it is.
    k = -(-radius // tile)
    kernel = np.ones((2 * k + 1, 2 * k + 1), np.uint8)
    core = (hi != lo) | _seam(hi, lo, kernel)
    out = np.repeat(np.repeat(hi == 255, tile, axis=0), tile, axis=1)[:h, :w]
    pieces = []  # (rows written, columns written, input with a full `radius` margin on every side)
    for ty in range(nty):
        cols = core[ty]
        if not cols.any():
            continue
        edges = np.flatnonzero(np.diff(np.r_[0, cols.view(np.int8), 0]))
        o0, o1 = max(0, ty * tile - radius), min(h, (ty + 1) * tile + radius)  # rows written
        a0, a1 = max(0, o0 - radius), min(h, o1 + radius)  # rows read
        for start, stop in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
            p0, p1 = max(0, start * tile - radius), min(w, stop * tile + radius)
            b0, b1 = max(0, p0 - radius), min(w, p1 + radius)
            window = binary[a0:a1, b0:b1]
            margins = (radius - (o0 - a0), radius - (a1 - o1), radius - (p0 - b0), radius - (b1 - p1))
            if any(margins):  # at the map's edge: BORDER_REFLECT (abc|cba) is scipy's "reflect"
                window = cv2.copyMakeBorder(window, *margins, borderType=cv2.BORDER_REFLECT)
            pieces.append((o0, o1, p0, p1, window))
    _blur_pieces(pieces, out, sigma, radius)
    return out


def _blur_pieces(pieces: list, out: np.ndarray, sigma: float, radius: int) -> None:
    """Filter many small windows as few wide strips (OpenCV is several times faster per pixel
    on one wide image than on many small ones) and write their thresholded centres to ``out``.

    Each window carries a ``radius`` margin of real (or reflected) input, so the pixels kept
    read nothing of their neighbours in the strip: side by side they give what they give alone.
    """
    size = 2 * radius + 1
    by_height: dict[int, list] = {}
    for piece in pieces:
        by_height.setdefault(piece[4].shape[0], []).append(piece)
    for group in by_height.values():
        start = 0
        while start < len(group):
            stop, width = start, 0
            while stop < len(group) and (stop == start or width + group[stop][4].shape[1] <= STRIP_WIDTH):
                width += group[stop][4].shape[1]
                stop += 1
            strip = group[start][4] if stop - start == 1 else np.hstack([p[4] for p in group[start:stop]])
            blurred = cv2.GaussianBlur(strip, (size, size), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
            x = 0
            for o0, o1, p0, p1, window in group[start:stop]:
                # uint8 holds round(255 * v); v >= 0.5 <=> 255 v >= 127.5 <=> rounded value >= 128.
                out[o0:o1, p0:p1] = blurred[radius : radius + o1 - o0, x + radius : x + radius + p1 - p0] >= 128
                x += window.shape[1]
            start = stop


def _seam(hi: np.ndarray, lo: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Uniform tiles next to a uniform tile of the other value (a boundary on the tile edge)."""
    uniform = hi == lo
    ones = (uniform & (hi == 255)).view(np.uint8)
    zeros = (uniform & (hi == 0)).view(np.uint8)
    return (uniform & (hi == 255) & cv2.dilate(zeros, kernel).view(bool)) | (
        uniform & (hi == 0) & cv2.dilate(ones, kernel).view(bool)
    )


def region_maps(
    table: ClassTable,
    geometries_by_class: Mapping[str, Sequence[BaseGeometry]],
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
        np.copyto(label[rmap.rows, rmap.cols], rmap.region.label, where=rmap.mask)
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
    # OpenCV's histogram: no int64 copy of the map (np.bincount would make one)
    counts = cv2.calcHist([label], [0], None, [256], [0, 256]).ravel().astype(np.int64)
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


def fill_polygon(mask: np.ndarray, polygon: shapely.Polygon, row0: int, col0: int) -> None:
    """Set the pixels of ``mask`` whose centre lies inside ``polygon`` (holes excluded).

    ``mask``: (h, w) bool, the window whose top-left pixel is (``row0``, ``col0``) of the image.
    A scanline fill: for each pixel row, the crossings of its centre line (y = r + 0.5) with the
    polygon's edges, paired left to right; a pixel is inside when its centre x + 0.5 lies in
    [left, right). Edges are half-open in y, so a vertex on a centre line is counted once. It
    gives the same pixels as GDAL's rasterizer (tests compare it with rasterio) in a third of
    the time, since only the spans are written.
    """
    h, w = mask.shape
    rings = [polygon.exterior, *polygon.interiors]
    coords = [shapely.get_coordinates(ring) for ring in rings]
    x0 = np.concatenate([c[:-1, 0] for c in coords]) - col0
    x1 = np.concatenate([c[1:, 0] for c in coords]) - col0
    y0 = np.concatenate([c[:-1, 1] for c in coords]) - row0
    y1 = np.concatenate([c[1:, 1] for c in coords]) - row0
    first = np.maximum(np.ceil(np.minimum(y0, y1) - 0.5), 0).astype(np.int64)
    stop = np.minimum(np.ceil(np.maximum(y0, y1) - 0.5), h).astype(np.int64)
    n = np.maximum(stop - first, 0)
    keep = n > 0  # horizontal edges and edges outside the window cross no centre line
    x0, x1, y0, y1, first, n = x0[keep], x1[keep], y0[keep], y1[keep], first[keep], n[keep]
    total = int(n.sum())
    if total == 0:
        return
    edge = np.repeat(np.arange(n.size), n)
    rows = first[edge] + np.arange(total) - np.repeat(np.cumsum(n) - n, n)
    x = x0[edge] + (rows + 0.5 - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    order = np.lexsort((x, rows))
    rows, x = rows[order], x[order]
    cols = np.clip(np.ceil(x - 0.5), 0, w).astype(np.int64)
    for r, a, b in zip(rows[0::2].tolist(), cols[0::2].tolist(), cols[1::2].tolist(), strict=True):
        if b > a:
            mask[r, a:b] = True


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

#!/usr/bin/env python3
"""(Re)create the synthetic QuPath sample project in this folder.

A cohort of twelve women, CC and MLO (24 small mammogram-like phantoms, 16-bit PNG, 12-bit
values) with QuPath 0.4+ GeoJSON annotations and a QuPath 0.5-style ``project.qpproj``. Everything is derived from fixed
seeds (one ``numpy.random.Generator`` per phantom and purpose, no global seeding), so every
run writes the same bytes given the same numpy / OpenCV / shapely versions.

Usage (from the repository root)::

    .venv/bin/python sample_data/make_sample_data.py            # writes into sample_data/
    .venv/bin/python sample_data/make_sample_data.py --check    # ... and validates the result
    .venv/bin/python sample_data/make_sample_data.py --out DIR  # writes somewhere else

Layout written under the output folder::

    images/<stem>.png
    project/project.qpproj
    project/classifiers/classes.json
    project/annotations/<stem>.geojson
    README.md
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import uuid
from pathlib import Path

import cv2
import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon, box, shape
from shapely.geometry.polygon import orient

SEED = 20240611

# The toolkit's default class table: name -> RGB.
CLASSES: list[tuple[str, tuple[int, int, int]]] = [
    ("Tumor", (255, 0, 0)),
    ("Nipple", (255, 128, 0)),
    ("Areola", (255, 200, 150)),
    ("Calcifications", (255, 255, 0)),
    ("Skin", (255, 170, 200)),
    ("Thick vessels", (150, 0, 200)),
    ("Pectoral muscle", (0, 150, 255)),
    ("Axillary lymph nodes", (0, 200, 100)),
    ("Calcified vessels", (200, 200, 0)),
    ("Text", (128, 128, 128)),
    ("Submammary tissue", (150, 100, 50)),
    ("Foreign object", (0, 255, 255)),
    ("Mammary gland", (255, 230, 200)),
    ("Background", (0, 0, 0)),
]
CLASS_RGB = dict(CLASSES)

# Where the project "lived" on the annotator's machine (deliberately not this machine).
FOREIGN_ROOT = "file:/Users/radiologist/mammo-study"
CREATE_TIMESTAMP = 1717236000000  # 2024-06-01T10:00:00Z, milliseconds like QuPath
MODIFY_TIMESTAMP = 1717322400000  # 2024-06-02T10:00:00Z
PIXEL_SIZE_UM = 100.0  # 0.1 mm per pixel

BACKGROUND = 100.0
NOISE_SIGMA = 2.5


def signed_argb(rgb: tuple[int, int, int]) -> int:
    """Pack RGB with alpha 255 the way QuPath stores colours: a signed 32-bit ARGB int."""
    r, g, b = rgb
    v = (0xFF << 24) | (r << 16) | (g << 8) | b
    return v - (1 << 32) if v >= (1 << 31) else v


def rng_for(*key: int) -> np.random.Generator:
    return np.random.default_rng([SEED, *key])


def new_uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


# --------------------------------------------------------------------------- geometry helpers


def ellipse(cx: float, cy: float, rx: float, ry: float, angle_deg: float = 0.0, n: int = 64) -> Polygon:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    ca, sa = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    x, y = rx * np.cos(t), ry * np.sin(t)
    return Polygon(np.column_stack([cx + ca * x - sa * y, cy + sa * x + ca * y]))


def blob(rng: np.random.Generator, cx: float, cy: float, r: float, n: int = 96) -> Polygon:
    """Irregular star-shaped blob (lobulated outline) for a tumour."""
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    rad = np.ones(n)
    for k in range(2, 8):
        rad += rng.uniform(0.03, 0.16) / (k / 2.0) * np.cos(k * t + rng.uniform(0, 2 * math.pi))
    return Polygon(np.column_stack([cx + r * rad * np.cos(t), cy + r * rad * np.sin(t)]))


def bezier(p0, p1, p2, n: int = 40) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, p1, p2 = (np.asarray(p, float) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def tube(points: np.ndarray, width: float) -> Polygon:
    """Thin elongated polygon around a centre line (vessels)."""
    return LineString(points).buffer(width / 2.0, quad_segs=4).simplify(0.05)


def largest(g) -> Polygon:
    if isinstance(g, Polygon):
        return g
    polys = [p for p in getattr(g, "geoms", []) if isinstance(p, Polygon)]
    return max(polys, key=lambda p: p.area)


def longest_line(g) -> LineString:
    if isinstance(g, LineString):
        return g
    if isinstance(g, MultiLineString):
        merged = shapely.line_merge(g)
        if isinstance(merged, LineString):
            return merged
        return max(merged.geoms, key=lambda ln: ln.length)
    lines = [ln for ln in g.geoms if isinstance(ln, LineString)]
    return max(lines, key=lambda ln: ln.length)


def snap(g):
    """Snap to a 0.01 px grid (valid output) and orient polygons counter-clockwise."""
    g = shapely.set_precision(g, 0.01)
    if isinstance(g, Polygon):
        return orient(g, 1.0)
    if isinstance(g, MultiPolygon):
        return MultiPolygon([orient(p, 1.0) for p in g.geoms])
    return g


def _r(v: float) -> float:
    return round(float(v), 2) + 0.0  # + 0.0 turns -0.0 into 0.0


def _ring(coords) -> list[list[float]]:
    return [[_r(x), _r(y)] for x, y in coords]


def to_geojson(g) -> dict:
    g = snap(g)
    if isinstance(g, Point):
        return {"type": "Point", "coordinates": [_r(g.x), _r(g.y)]}
    if isinstance(g, Polygon):
        return {"type": "Polygon", "coordinates": [_ring(g.exterior.coords)] + [_ring(i.coords) for i in g.interiors]}
    if isinstance(g, MultiPolygon):
        return {
            "type": "MultiPolygon",
            "coordinates": [[_ring(p.exterior.coords)] + [_ring(i.coords) for i in p.interiors] for p in g.geoms],
        }
    raise TypeError(f"unsupported geometry {g.geom_type}")


# --------------------------------------------------------------------------- rasterisation


def _pts(coords) -> np.ndarray:
    # QuPath pixel (i, j) covers [i, i+1) x [j, j+1); OpenCV draws at pixel centres.
    a = (np.asarray(coords, float)[:, :2] - 0.5) * 16.0
    return np.round(a).astype(np.int32)


def raster(g, hw: tuple[int, int], blur: float = 0.0) -> np.ndarray:
    """Anti-aliased float mask in [0, 1] of a (multi)polygon; optional Gaussian blur (sigma)."""
    m = np.zeros(hw, np.uint8)
    polys = [g] if isinstance(g, Polygon) else list(g.geoms)
    for p in polys:
        cv2.fillPoly(m, [_pts(p.exterior.coords)], 255, cv2.LINE_AA, 4)
        for hole in p.interiors:
            cv2.fillPoly(m, [_pts(hole.coords)], 0, cv2.LINE_AA, 4)
    f = m.astype(np.float64) / 255.0
    if blur > 0:
        f = cv2.GaussianBlur(f, (0, 0), blur)
    return f


def smooth_noise(rng: np.random.Generator, hw: tuple[int, int], sigma: float) -> np.ndarray:
    f = cv2.GaussianBlur(rng.standard_normal(hw), (0, 0), sigma)
    return f / f.std()


# --------------------------------------------------------------------------- phantom builder


class Phantom:
    """One synthetic mammogram: its image and its list of GeoJSON features."""

    def __init__(self, index: int, stem: str, width: int, height: int, side: str, view: str):
        self.index, self.stem, self.W, self.H = index, stem, width, height
        self.side, self.view = side, view
        self.s = 1.0 if side == "L" else -1.0  # +1: chest wall at x = 0, breast extends right
        self.xc = 0.0 if side == "L" else float(width)
        self.hw = (height, width)
        self.rng_img = rng_for(index, 1)
        self.rng_geo = rng_for(index, 2)
        self.rng_ids = rng_for(index, 3)
        self.features: list[dict] = []
        self.img = np.full(self.hw, BACKGROUND)
        self.frame = box(0, 0, width, height)

    # -- annotations
    def add(self, cls: str, geom, name: str | None = None, object_type: str = "annotation", color_of: str | None = None):
        props: dict = {"objectType": object_type}
        if name is not None:
            props["name"] = name
        props["classification"] = {"name": cls, "color": list(CLASS_RGB[color_of or cls])}
        self.features.append({"type": "Feature", "id": new_uuid(self.rng_ids), "geometry": to_geojson(geom), "properties": props})

    # -- breast outline
    def breast(self, cy, a, b_top, b_bot, t_nip, nip_h=11.0, n=300):
        t = np.linspace(-math.pi / 2, math.pi / 2, n)
        wob = np.zeros(n)
        for k in (2, 3, 5):
            wob += self.rng_geo.uniform(0.004, 0.012) * np.sin(k * t + self.rng_geo.uniform(0, 2 * math.pi))
        b = np.where(t < 0, b_top, b_bot)
        x0, y0 = a * np.cos(t) * (1 + wob), b * np.sin(t) * (1 + wob)
        # nipple bump: push the outline outwards along the radius
        rad = np.hypot(x0, y0)
        bump = nip_h * np.exp(-(((t - t_nip) / 0.045) ** 2))
        x0, y0 = x0 * (1 + bump / rad), y0 * (1 + bump / rad)
        curve = np.column_stack([self.xc + self.s * x0, cy + y0])
        curve[0, 0] = curve[-1, 0] = self.xc
        self.outline = largest(Polygon(curve).intersection(self.frame))
        self.curve = longest_line(LineString(curve).intersection(self.frame))  # skin side only
        i = int(np.argmin(np.abs(t - t_nip)))
        tip = curve[i]
        inward = np.array([self.xc, cy]) - tip
        self.inward = inward / np.linalg.norm(inward)
        self.nipple_tip = tip
        self.cy = cy

    def inside(self, g, margin: float = 0.0) -> Polygon:
        """Clip a polygon to the breast (optionally shrunk by ``margin`` px)."""
        region = self.outline.buffer(-margin) if margin else self.outline
        return largest(g.intersection(region))

    def point_on_outline(self, t_frac: float) -> np.ndarray:
        p = self.curve.interpolate(t_frac, normalized=True)
        return np.array([p.x, p.y])

    def skin_band(self, width=6.0) -> Polygon:
        """Band along the skin side of the outline: outline minus an inner ring -> a hole."""
        inner = self.outline.buffer(-1.0).difference(self.curve.buffer(width, quad_segs=8))
        inner = largest(inner).simplify(0.25)
        return Polygon(self.outline.exterior.coords, [inner.exterior.coords])

    # -- rendering of the base breast
    def render_breast(self, gland_gain=950.0):
        hw = self.hw
        mask = raster(self.outline, hw)
        inside = (mask > 0.5).astype(np.uint8)
        d_in = cv2.distanceTransform(inside, cv2.DIST_L2, 5).astype(np.float64)
        thick = 1.0 - np.exp(-d_in / 45.0)
        tissue = 650.0 + 650.0 * thick
        g = 0.65 * smooth_noise(self.rng_img, hw, 10.0) + 0.75 * smooth_noise(self.rng_img, hw, 28.0)
        fg = 1.0 / (1.0 + np.exp(-2.2 * (g - 0.35)))
        region = np.clip((d_in - 18.0) / 70.0, 0.0, 1.0)
        tissue += gland_gain * fg * region
        # skin line: bright thin band along the curved outline
        line = np.full(hw, 255, np.uint8)
        cv2.polylines(line, [_pts(self.curve.coords)], False, 0, 1, cv2.LINE_8, 4)
        d_curve = cv2.distanceTransform(line, cv2.DIST_L2, 5).astype(np.float64)
        tissue += 420.0 * np.clip(1.0 - d_curve / 5.0, 0.0, 1.0) ** 0.8
        self.img = BACKGROUND + mask * (tissue - BACKGROUND)

    def paint(self, geom, amount: float, blur: float = 1.0):
        self.img += amount * raster(geom, self.hw, blur)

    def paint_max(self, geom, value: float, blur: float = 0.0):
        m = raster(geom, self.hw, blur)
        self.img = np.maximum(self.img, value * m + self.img * (1 - m))

    def label(self, x0, y0, x1, y1, text: str) -> Polygon:
        rect = box(x0, y0, x1, y1)
        self.paint_max(rect, 3850.0)
        m = np.zeros(self.hw, np.uint8)
        cv2.putText(m, text, (int(x0) + 10, int(y1) - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2, cv2.LINE_AA)
        f = m.astype(np.float64) / 255.0
        self.img = self.img * (1 - f) + 700.0 * f
        return rect

    def finish(self) -> np.ndarray:
        noise = self.rng_img.normal(0.0, NOISE_SIGMA, self.hw)
        return np.clip(np.rint(self.img + noise), 0, 4095).astype(np.uint16)


# --------------------------------------------------------------------------- the three hand-drawn phantoms


def phantom_001() -> Phantom:
    """Left CC-like view: chest wall on the left, nipple pointing right."""
    p = Phantom(1, "phantom_001", 640, 800, "L", "CC")
    p.breast(cy=410.0, a=440.0, b_top=330.0, b_bot=345.0, t_nip=0.03)
    p.render_breast()
    rng = p.rng_geo

    p.add("Mammary gland", p.outline, name="Breast")
    p.add("Skin", p.skin_band(14.0))

    tip = p.nipple_tip
    nip = tip + 5.0 * p.inward
    p.paint(Point(*nip).buffer(7.0, quad_segs=8), 180.0, 1.5)
    areola = p.inside(ellipse(*(tip + 16.0 * p.inward), 20.0, 30.0, 0.0))
    p.paint(areola, 90.0, 3.0)
    p.add("Nipple", Point(*nip))  # marked with the point tool
    p.add("Areola", areola)

    # vessels (one passes near, not through, the tumour)
    v1 = p.inside(tube(bezier((40, 250), (200, 300), (380, 240)), 14.0), 6.0)
    v2 = p.inside(tube(bezier((30, 560), (180, 520), (330, 600)), 12.0), 6.0)
    for v in (v1, v2):
        p.paint(v, 260.0, 1.0)
        p.add("Thick vessels", v)

    tumor = blob(rng, 262.0, 350.0, 27.0)
    p.paint(tumor, 1250.0, 2.0)
    p.paint(tumor.buffer(-10), 350.0, 3.0)
    p.add("Tumor", tumor, name="Lesion A")
    # a cell-detection-like object the toolkit must ignore
    p.add("Tumor", ellipse(262.0, 350.0, 6.0, 5.0, 20.0, n=24), object_type="detection")

    calcs = []
    for cx, cy in [(318, 462), (327, 471), (312, 480), (333, 458), (322, 488)]:
        c = ellipse(cx + rng.uniform(-1, 1), cy + rng.uniform(-1, 1), rng.uniform(3, 4), rng.uniform(3, 4), 0.0, n=16)
        p.paint(c, 2400.0, 0.7)
        calcs.append(c)
    p.add("Calcifications", MultiPolygon(calcs), name="Cluster 1")

    # skin marker (metal BB / tape) straddling the skin line, upper outer quadrant
    q = p.point_on_outline(0.22)
    marker = box(q[0] - 8, q[1] - 5, q[0] + 8, q[1] + 5)
    p.paint_max(marker, 4000.0, 0.6)
    p.add("Foreign object", marker, name="Skin marker")

    p.add("Text", p.label(496, 24, 616, 66, "L CC"))
    return p


def phantom_002() -> Phantom:
    """Right MLO-like view: chest wall on the right, pectoral triangle top right."""
    p = Phantom(2, "phantom_002", 640, 800, "R", "MLO")
    p.breast(cy=380.0, a=450.0, b_top=560.0, b_bot=360.0, t_nip=0.30)
    p.render_breast()
    rng = p.rng_geo
    W = p.W

    p.add("Mammary gland", p.outline, name="Breast")
    p.add("Skin", p.skin_band(14.0))

    # pectoral muscle: corner triangle with a slightly convex front edge
    edge = bezier((W - 275.0, 0.0), (W - 120.0, 230.0), (W, 520.0), n=48)
    edge[:, 0] -= 14.0 * np.sin(np.linspace(0, math.pi, len(edge)))
    pect = largest(Polygon([(W, 0.0), *edge[:-1], (W, 520.0)]).intersection(p.outline))
    yy = np.arange(p.H, dtype=np.float64)[:, None] * np.ones((1, W))
    p.img += raster(pect, p.hw, 2.5) * (1150.0 - 0.6 * yy)
    p.add("Pectoral muscle", pect)

    node = ellipse(392.0, 112.0, 20.0, 13.0, -30.0)
    p.paint(node, 720.0, 1.5)
    p.paint(ellipse(398.0, 108.0, 6.0, 4.0, -30.0, n=32), -320.0, 1.5)  # fatty hilum
    p.add("Axillary lymph nodes", node)

    tumor = blob(rng, 398.0, 372.0, 30.0)
    vessels = [
        p.inside(tube(bezier((600, 300), (420, 330), (300, 470)), 14.0), 6.0),  # crosses the tumour on purpose
        p.inside(tube(bezier((560, 600), (420, 560), (300, 630)), 12.0), 6.0),
    ]
    for v in vessels:
        p.paint(v, 260.0, 1.0)
        p.add("Thick vessels", v)
    p.paint(tumor, 1300.0, 2.0)
    p.paint(tumor.buffer(-12), 300.0, 3.0)
    p.add("Tumor", tumor, name="Lesion B")

    tip = p.nipple_tip
    nc = tip + 3.0 * p.inward
    nipple = p.inside(ellipse(*nc, 9.0, 7.0, 25.0, n=32))
    areola = p.inside(ellipse(*(tip + 15.0 * p.inward), 22.0, 30.0, 25.0))
    p.paint(areola, 90.0, 3.0)
    p.paint(nipple, 160.0, 1.5)
    p.add("Nipple", nipple)
    p.add("Areola", areola)

    for cx, cy in [(330.0, 505.0), (341.0, 497.0), (336.0, 516.0)]:
        c = ellipse(cx, cy, rng.uniform(3, 4), rng.uniform(3, 4), 0.0, n=16)
        p.paint(c, 2300.0, 0.7)
        p.add("Calcifications", c)

    # inframammary fold: band along the lower skin near the chest wall
    pts = np.asarray(p.curve.coords)
    sel = pts[(pts[:, 1] > p.cy + 0.55 * 360.0) & (np.abs(pts[:, 0] - p.xc) < 190.0)]
    band = largest(LineString(sel).buffer(18.0, cap_style="flat").intersection(p.outline.buffer(-0.5)))
    band = band.simplify(0.2)
    p.paint(band, 160.0, 3.0)
    p.add("Submammory tissue", band, color_of="Submammary tissue")  # the paper's misspelling

    p.add("Text", p.label(24, 734, 150, 776, "R MLO"))
    return p


def phantom_003() -> Phantom:
    """Left MLO-like view, a slightly different size; its project entry is a wrapped server."""
    p = Phantom(3, "phantom_003", 600, 760, "L", "MLO")
    p.breast(cy=360.0, a=420.0, b_top=520.0, b_bot=345.0, t_nip=0.28)
    p.render_breast(gland_gain=1100.0)
    rng = p.rng_geo

    p.add("Mammary gland", p.outline, name="Breast")
    p.add("Skin", p.skin_band(12.0))

    edge = bezier((245.0, 0.0), (110.0, 220.0), (0.0, 480.0), n=48)
    edge[:, 0] += 12.0 * np.sin(np.linspace(0, math.pi, len(edge)))
    pect = largest(Polygon([(0.0, 0.0), *edge[:-1], (0.0, 480.0)]).intersection(p.outline))
    yy = np.arange(p.H, dtype=np.float64)[:, None] * np.ones((1, p.W))
    p.img += raster(pect, p.hw, 2.5) * (1100.0 - 0.6 * yy)
    p.add("pectoral muscle", pect, color_of="Pectoral muscle")  # different case on purpose

    node = ellipse(232.0, 108.0, 17.0, 11.0, 35.0)
    p.paint(node, 700.0, 1.5)
    p.paint(ellipse(227.0, 104.0, 5.0, 3.5, 35.0, n=32), -300.0, 1.5)
    p.add("Axillary lymph nodes", node)

    for v in (tube(bezier((20, 300), (160, 340), (300, 300)), 13.0), tube(bezier((20, 610), (130, 560), (250, 600)), 12.0)):
        v = p.inside(v, 6.0)
        p.paint(v, 260.0, 1.0)
        p.add("Thick vessels", v)

    cv_line = bezier((70.0, 520.0), (165.0, 545.0), (255.0, 500.0), n=48)
    calc_vessel = tube(cv_line, 10.0)
    yy, xx = np.mgrid[0 : p.H, 0 : p.W]
    p.img += raster(calc_vessel, p.hw, 0.6) * (1000.0 + 600.0 * (np.sin(xx / 3.0) > -0.2))
    p.add("Calcified vessels", calc_vessel)

    tumor = blob(rng, 236.0, 420.0, 24.0)
    p.paint(tumor, 1350.0, 2.0)
    p.paint(tumor.buffer(-9), 300.0, 3.0)
    p.add("Tumor", tumor, name="Lesion C")

    for cx, cy in [(190.0, 395.0), (276.0, 452.0)]:
        c = ellipse(cx, cy, rng.uniform(3, 4), rng.uniform(3, 4), 0.0, n=16)
        p.paint(c, 2300.0, 0.7)
        p.add("Calcifications", c)

    pts = np.asarray(p.curve.coords)
    sel = pts[(pts[:, 1] > p.cy + 0.55 * 345.0) & (np.abs(pts[:, 0] - p.xc) < 170.0)]
    band = largest(LineString(sel).buffer(16.0, cap_style="flat").intersection(p.outline.buffer(-0.5)))
    band = band.simplify(0.2)
    p.paint(band, 150.0, 3.0)
    p.add("Submammary tissue", band)

    p.add("Text", p.label(456, 20, 580, 62, "L MLO"))
    return p


# --------------------------------------------------------------------------- the cohort

# Twelve women, CC and MLO each (24 images): the three hand-drawn phantoms above (P001's
# L CC and R MLO, P002's L MLO) and 21 drawn from per-image random parameters: breast size and
# shape, density (gland gain), side, a tumour in most, calcifications in some, vessels, the
# pectoral muscle, lymph node and inframammary fold on MLO views. Enough women that the 70/30
# subject split leaves several validation women, small enough to train on a laptop CPU.
WOMEN = 12


def cohort_plan() -> list[tuple[int, str, str, str]]:
    """(index, subject, side, view) of the generated images, after the three hand-drawn ones."""
    plan = [(4, "P002", "L", "CC")]
    index = 5
    for woman in range(3, WOMEN + 1):
        side = "L" if rng_for(1000 + woman).random() < 0.5 else "R"
        for view in ("CC", "MLO"):
            plan.append((index, f"P{woman:03d}", side, view))
            index += 1
    return plan


def random_inside(p: Phantom, rng: np.random.Generator, margin: float) -> np.ndarray:
    """A random point at least ``margin`` px inside the breast outline (rejection sampling)."""
    region = p.outline.buffer(-margin)
    x0, y0, x1, y1 = region.bounds
    for _ in range(1000):
        q = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        if region.contains(Point(*q)):
            return q
    raise RuntimeError(f"{p.stem}: no point {margin} px inside the breast")


def cohort_phantom(index: int, side: str, view: str) -> Phantom:
    """One generated mammogram of the cohort."""
    shape_rng = rng_for(index, 4)
    width, height = (640, 800) if shape_rng.random() < 0.6 else (600, 760)
    p = Phantom(index, f"phantom_{index:03d}", width, height, side, view)
    H, W = p.H, p.W
    if view == "CC":
        p.breast(
            cy=H / 2 + shape_rng.uniform(-25, 25), a=shape_rng.uniform(360, 450),
            b_top=shape_rng.uniform(290, 340), b_bot=shape_rng.uniform(300, 350), t_nip=shape_rng.uniform(-0.06, 0.06),
        )
    else:
        p.breast(
            cy=shape_rng.uniform(350, 400), a=shape_rng.uniform(390, 450),
            b_top=shape_rng.uniform(480, 560), b_bot=shape_rng.uniform(320, 365), t_nip=shape_rng.uniform(0.24, 0.32),
        )
    p.render_breast(gland_gain=shape_rng.uniform(750.0, 1250.0))
    rng = p.rng_geo

    p.add("Mammary gland", p.outline, name="Breast")
    p.add("Skin", p.skin_band(shape_rng.uniform(11.0, 15.0)))

    if view == "MLO":
        # pectoral muscle: the chest-wall corner at the top, a slightly convex front edge
        top, bottom = shape_rng.uniform(220, 290), shape_rng.uniform(460, 540)
        edge = bezier((top, 0.0), (shape_rng.uniform(100, 140), 0.45 * bottom), (0.0, bottom), n=48)
        edge[:, 0] += shape_rng.uniform(8, 16) * np.sin(np.linspace(0, math.pi, len(edge)))
        edge[:, 0] = p.xc + p.s * edge[:, 0]
        pect = largest(Polygon([(p.xc, 0.0), *edge[:-1], (p.xc, bottom)]).intersection(p.outline))
        # dense, homogeneous muscle in front of the gland (as on a real MLO view): it replaces the
        # tissue, fading downwards, with a faint texture of its own
        yy = np.arange(H, dtype=np.float64)[:, None] * np.ones((1, W))
        muscle = shape_rng.uniform(2350.0, 2650.0) - 0.8 * yy + 35.0 * smooth_noise(p.rng_img, p.hw, 6.0)
        m = raster(pect, p.hw, 2.5)
        p.img = p.img * (1 - m) + muscle * m
        p.add("Pectoral muscle", pect)
        if shape_rng.random() < 0.6:
            c = np.array([p.xc + p.s * shape_rng.uniform(200, 260), shape_rng.uniform(95, 130)])
            node = p.inside(ellipse(*c, 18.0, 12.0, p.s * -30.0), 4.0)
            p.paint(node, 700.0, 1.5)
            p.add("Axillary lymph nodes", node)
        pts = np.asarray(p.curve.coords)
        sel = pts[(pts[:, 1] > p.cy + 0.55 * 340.0) & (np.abs(pts[:, 0] - p.xc) < 180.0)]
        if len(sel) >= 2:
            band = largest(LineString(sel).buffer(17.0, cap_style="flat").intersection(p.outline.buffer(-0.5)))
            band = band.simplify(0.2)
            p.paint(band, 155.0, 3.0)
            p.add("Submammary tissue", band)

    for _ in range(int(shape_rng.integers(1, 4))):
        a, b = random_inside(p, rng, 30.0), random_inside(p, rng, 30.0)
        mid = (a + b) / 2 + rng.normal(0, 40, 2)
        v = p.inside(tube(bezier(a, mid, b), rng.uniform(10.0, 14.0)), 6.0)
        p.paint(v, 260.0, 1.0)
        p.add("Thick vessels", v)

    tip = p.nipple_tip
    if shape_rng.random() < 0.5:
        nip = tip + 5.0 * p.inward
        p.paint(Point(*nip).buffer(7.0, quad_segs=8), 170.0, 1.5)
        p.add("Nipple", Point(*nip))
    else:
        nipple = p.inside(ellipse(*(tip + 3.0 * p.inward), 9.0, 7.0, rng.uniform(0, 180), n=32))
        p.paint(nipple, 160.0, 1.5)
        p.add("Nipple", nipple)
    areola = p.inside(ellipse(*(tip + 15.0 * p.inward), rng.uniform(18, 23), rng.uniform(26, 32), 0.0))
    p.paint(areola, 90.0, 3.0)
    p.add("Areola", areola)

    if shape_rng.random() < 0.75:
        c = random_inside(p, rng, 90.0)
        tumor = blob(rng, c[0], c[1], rng.uniform(18.0, 32.0))
        p.paint(tumor, rng.uniform(1150.0, 1400.0), 2.0)
        p.paint(tumor.buffer(-9), 300.0, 3.0)
        p.add("Tumor", tumor)
    if shape_rng.random() < 0.5:
        c = random_inside(p, rng, 60.0)
        dots = [ellipse(*(c + rng.normal(0, 9, 2)), rng.uniform(3, 4), rng.uniform(3, 4), 0.0, n=16) for _ in range(4)]
        cluster = shapely.union_all(dots)
        for d in dots:
            p.paint(d, 2300.0, 0.7)
        p.add("Calcifications", cluster)

    tag = f"{side} {view}"
    x0 = W - 144.0 if side == "L" else 24.0  # the corner away from the chest wall
    y0 = 20.0 if view == "CC" else H - 66.0
    p.add("Text", p.label(x0, y0, x0 + 120, y0 + 42, tag))
    return p


# --------------------------------------------------------------------------- project files

SUBJECTS = {"phantom_001": "P001", "phantom_002": "P001", "phantom_003": "P002"} | {
    f"phantom_{index:03d}": subject for index, subject, _, _ in cohort_plan()
}


def uri_builder(stem: str, w: int, h: int) -> dict:
    return {
        "builderType": "uri",
        "providerClassName": "qupath.lib.images.servers.bioformats.BioFormatsServerBuilder",
        "uri": f"{FOREIGN_ROOT}/images/{stem}.png",
        "args": [],
        "metadata": {
            "name": f"{stem}.png",
            "width": w,
            "height": h,
            "sizeZ": 1,
            "sizeT": 1,
            "channelType": "DEFAULT",
            "isRGB": False,
            "pixelType": "UINT16",
            "levels": [{"downsample": 1.0, "width": w, "height": h}],
            "channels": [{"name": "Channel 1", "color": -1}],
            "pixelCalibration": {
                "pixelWidth": {"value": PIXEL_SIZE_UM, "unit": "µm"},
                "pixelHeight": {"value": PIXEL_SIZE_UM, "unit": "µm"},
                "zSpacing": {"value": 1.0, "unit": "z-slice"},
                "timeUnit": "SECONDS",
                "timepoints": [],
            },
            "preferredTileWidth": w,
            "preferredTileHeight": h,
        },
    }


def project_json(phantoms: list[Phantom]) -> dict:
    ids = rng_for(0, 3)
    images = []
    for p in phantoms:
        builder = uri_builder(p.stem, p.W, p.H)
        if p.index == 3:
            builder = {"builderType": "rotated", "rotation": "ROTATE_NONE", "builder": builder}
        images.append(
            {
                "serverBuilder": builder,
                "entryID": p.index,
                "randomizedName": new_uuid(ids),
                "imageName": f"{p.stem}.png",
                "metadata": {"subject": SUBJECTS[p.stem]},
                "tags": [],
            }
        )
    return {
        "version": "0.5.1",
        "createTimestamp": CREATE_TIMESTAMP,
        "modifyTimestamp": MODIFY_TIMESTAMP,
        "uri": f"{FOREIGN_ROOT}/project.qpproj",
        "lastID": len(phantoms),
        "images": images,
    }


def dump_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


README = """\
# Sample data

A small, fully synthetic QuPath project for trying out and testing `mammotools`: a cohort of
twelve women, CC and MLO views (24 mammogram-like phantoms, `images/phantom_001.png` ...
`phantom_024.png`, 16-bit grayscale PNG holding 12-bit values, 640 x 800 or 600 x 760 px at
0.1 mm/px, about 9 MB in all) and their annotations, exported the way QuPath 0.4+ writes GeoJSON
(`project/annotations/<stem>.geojson`), plus a QuPath 0.5.1-style `project/project.qpproj`
(each image's woman in its `subject` metadata, so the split is by woman) and the class list
`project/classifiers/classes.json`. The phantoms are drawn by `make_sample_data.py` from fixed
seeds (numpy `Generator`s, no global seeding), so they are byte-for-byte reproducible: a
breast-shaped half ellipse of random size and density with smoothed-noise fibroglandular
tissue, a brighter skin line, a nipple and areola, vessels, a tumour blob in most images,
calcification clusters in some, the pectoral muscle, inframammary fold and often a lymph node on
the MLO views, a bright text label and, in one image, a metal skin marker. No patient data is
involved. The large regions (background, mammary gland, pectoral muscle) are what a quick
benchmark learns in minutes; the small ones (tumour, calcifications, nipple) need real training.
The project's image URIs point to `/Users/radiologist/mammo-study/...` on purpose (another
machine), so pass `--images sample_data/images` to the toolkit. The first three phantoms also
exercise awkward cases: a skin band polygon with a hole, a nipple marked as a point,
overlapping classes (tumour over gland, over a vessel; areola over nipple), a class name in
different case (`pectoral muscle`), the paper's misspelling `Submammory tissue`, a `detection`
object that must be ignored, and an image whose server builder is wrapped (`"builderType":
"rotated"`).

Regenerate (from the repository root):

    .venv/bin/python sample_data/make_sample_data.py --check
"""


# --------------------------------------------------------------------------- checks


def check(out: Path) -> int:
    """Validate the written project; print class coverage; return the number of problems."""
    problems = 0
    proj = json.loads((out / "project" / "project.qpproj").read_text("utf-8"))
    known = {n.casefold() for n, _ in CLASSES} | {"submammory tissue"}
    for entry in proj["images"]:
        b = entry["serverBuilder"]
        while "builder" in b:
            b = b["builder"]
        w, h = b["metadata"]["width"], b["metadata"]["height"]
        stem = entry["imageName"].rsplit(".", 1)[0]
        img = cv2.imread(str(out / "images" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        if img is None or img.dtype != np.uint16 or img.shape != (h, w) or int(img.max()) > 4095:
            print(f"  {stem}: bad image")
            problems += 1
        frame = box(0, 0, w, h)
        fc = json.loads((out / "project" / "annotations" / f"{stem}.geojson").read_text("utf-8"))
        counts: dict[str, int] = {}
        kinds: set[str] = set()
        for f in fc["features"]:
            g = shape(f["geometry"])
            cls = f["properties"]["classification"]["name"]
            kinds.add(f["geometry"]["type"] + (" with hole" if isinstance(g, Polygon) and g.interiors else ""))
            if not g.is_valid or not frame.covers(g) or cls.casefold() not in known:
                print(f"  {stem}: bad feature {f['id']} ({cls}): valid={g.is_valid} inside={frame.covers(g)}")
                problems += 1
            key = cls if f["properties"]["objectType"] == "annotation" else f"{cls} [detection]"
            counts[key] = counts.get(key, 0) + 1
        print(f"{stem} {w}x{h} subject={entry['metadata']['subject']} builder={entry['serverBuilder']['builderType']}")
        print("  classes: " + ", ".join(f"{k} x{v}" for k, v in counts.items()))
        print("  geometry types: " + ", ".join(sorted(kinds)))
    return problems


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    ap.add_argument("--check", action="store_true", help="validate the written files afterwards")
    args = ap.parse_args(argv)
    out: Path = args.out

    for sub in ("images", "project"):
        shutil.rmtree(out / sub, ignore_errors=True)
    (out / "images").mkdir(parents=True, exist_ok=True)

    phantoms = [phantom_001(), phantom_002(), phantom_003()]
    phantoms += [cohort_phantom(index, side, view) for index, _, side, view in cohort_plan()]
    for p in phantoms:
        img = p.finish()
        if not cv2.imwrite(str(out / "images" / f"{p.stem}.png"), img, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise OSError(f"could not write {p.stem}.png")
        dump_json(out / "project" / "annotations" / f"{p.stem}.geojson", {"type": "FeatureCollection", "features": p.features})

    dump_json(out / "project" / "project.qpproj", project_json(phantoms))
    dump_json(
        out / "project" / "classifiers" / "classes.json",
        {"pathClasses": [{"name": n, "color": signed_argb(rgb)} for n, rgb in CLASSES]},
    )
    (out / "README.md").write_bytes(README.encode("utf-8"))
    print(f"wrote {len(phantoms)} phantoms to {out}")

    if args.check:
        problems = check(out)
        if problems:
            print(f"{problems} problem(s)")
            return 1
        print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

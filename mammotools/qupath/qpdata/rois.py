"""QuPath's ROIs as shapely geometries, made as QuPath makes them.

ROIs are written through serialization proxies, identical from QuPath 0.2 to 0.7:
``PolygonROI``, ``PolylineROI`` and ``PointsROI`` as ``float[] x, y``; ``RectangleROI``,
``EllipseROI`` and ``LineROI`` as ``double x, y, x2, y2`` (two corners / the two end points);
``AreaROI`` as ``float[][] x, y`` (closed sub-paths filled with Java's non-zero winding rule); any
other geometry as ``GeometryROI$WKBSerializationProxy{byte[] wkb}`` (2D big-endian JTS WKB). Each
proxy also has ``int c, z, t`` (the image plane, ignored here) and cached statistics (skipped).

How geometries are made (``precision=0.01``, the default, reproduces what QuPath itself shows
and exports as GeoJSON, so both routes into mammotools give the same shapes):

* every coordinate is rounded to QuPath's 0.01 px grid (JTS ``PrecisionModel``: ``floor(v * 100
  + 0.5) / 100``); ``precision=None`` keeps the stored float values;
* an ellipse becomes the same 100-vertex polygon QuPath's JTS ``GeometricShapeFactory`` makes
  (vertex i at angle ``2*pi*i/100``, inscribed). Its largest distance to the true ellipse is
  ``a * (1 - cos(pi/100)) ~= 4.9e-4 * a`` for the semi-major axis a (0.025 px for a = 50 px, 0.5
  px for a = 1000 px), plus the 0.005 px grid rounding. ``ellipse_tolerance=t`` instead picks
  n vertices so that ``a * (1 - cos(pi/n))`` stays below ``t`` px: exact for a circle and an
  upper bound for an ellipse (its polygon is the circle's under an affine map that shrinks
  distances), so the polygon is the true ellipse to within t (before grid rounding);
* a polygon that is not valid (self-intersecting) and every area ROI are filled with the
  non-zero winding rule, as QuPath's ``java.awt.geom.Area`` conversion does;
* points: a Point for one point, else a MultiPoint; lines and polylines: a LineString.

The problems a ROI can have (none, an unknown ROI class, non-finite coordinates...) are
returned with its geometry; malformed proxy data raises ``ValueError`` (a WKB geometry's
counts are checked against its bytes before shapely reads it). Filling self-intersecting
polygons costs what shapely's noding costs, with bounded memory.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import TypeGuard

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from mammotools.annotations import Annotation
from mammotools.qupath.qpdata.javaio import _JObj
from mammotools.qupath.qpdata.stream import _Stream

QUPATH_ELLIPSE_VERTICES = 100  # JTS GeometricShapeFactory's default, which QuPath uses
WINDING_CHUNK = 1 << 21  # elements per temporary when filling self-crossing areas
MAX_WINDING_WORK = 50_000_000  # faces x vertices beyond which an area is refused, not filled
MAX_ELLIPSE_VERTICES = 100_000  # with ellipse_tolerance

_ROI_KINDS = {
    "qupath.lib.roi.PolygonROI$SerializationProxy": "polygon",
    "qupath.lib.roi.RectangleROI$SerializationProxy": "rectangle",
    "qupath.lib.roi.EllipseROI$SerializationProxy": "ellipse",
    "qupath.lib.roi.LineROI$SerializationProxy": "line",
    "qupath.lib.roi.PolylineROI$SerializationProxy": "polyline",
    "qupath.lib.roi.PointsROI$SerializationProxy": "points",
    "qupath.lib.roi.AreaROI$SerializationProxy": "area",
    "qupath.lib.roi.GeometryROI$WKBSerializationProxy": "wkb",
}
_POLYGON_PROXY = "qupath.lib.roi.PolygonROI$SerializationProxy"


Rounder = Callable[[np.ndarray], np.ndarray] | None


def _rounder(precision: float | None) -> Rounder:
    """Coordinates onto QuPath's grid: JTS ``PrecisionModel.makePrecise`` is ``floor(v * s + 0.5) / s``."""
    if not precision:
        return None
    scale = 1.0 / precision

    def round_to_grid(a: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # huge values become inf: reported as non-finite
            return np.floor(a * scale + 0.5) / scale

    return round_to_grid


_EMPTY = shapely.GeometryCollection()
_NON_FINITE = "has non-finite coordinates (NaN or infinity); nothing drawn"


def _is_float_array(value: object) -> TypeGuard[np.ndarray]:
    return isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind == "f"


def _xy(x: object, y: object, rounder: Rounder) -> np.ndarray:
    """(n, 2) float64 coordinates from a proxy's ``float[] x, y``."""
    if not (_is_float_array(x) and _is_float_array(y)):
        raise ValueError("x and y are not float arrays")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} x but {len(y)} y coordinates")
    with np.errstate(invalid="ignore"):  # a signalling NaN (a damaged file) is no reason to warn
        xy = np.column_stack([x, y]).astype(np.float64)
    return rounder(xy) if rounder is not None else xy


def _double(fields: dict, name: str) -> float:
    v = fields.get(name)
    if not isinstance(v, float):
        raise ValueError(f"coordinate {name!r} is missing")
    return v


def _ellipse(x0: float, y0: float, x1: float, y1: float, n: int) -> np.ndarray:
    """The closed ring JTS's GeometricShapeFactory.createEllipse makes: vertex i at angle i * (2 pi / n)."""
    rx = (x1 - x0) / 2.0
    ry = (y1 - y0) / 2.0
    angles = np.arange(n) * (2 * math.pi / n)
    ring = np.column_stack([rx * np.cos(angles) + (x0 + rx), ry * np.sin(angles) + (y0 + ry)])
    return np.vstack([ring, ring[:1]])


def _ellipse_vertices(x0: float, y0: float, x1: float, y1: float, tolerance: float | None) -> int:
    if tolerance is None:
        return QUPATH_ELLIPSE_VERTICES
    a = max(abs(x1 - x0), abs(y1 - y0)) / 2.0
    if a <= tolerance:
        return 8
    # the chord error of n equal parametric steps is at most a * (1 - cos(pi / n))
    n = math.ceil(math.pi / math.acos(1.0 - tolerance / a))
    return int(min(max(n, 8), MAX_ELLIPSE_VERTICES))


def _winding_numbers(points: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Winding number of a closed ring around each point (the crossing rule with edge directions).

    Points are taken in chunks so that no temporary exceeds WINDING_CHUNK elements: memory stays
    bounded whatever the file claims (a crafted self-crossing polygon has many faces and edges).
    """
    x0 = ring[:-1, 0][None, :]
    y0 = ring[:-1, 1][None, :]
    x1 = ring[1:, 0][None, :]
    y1 = ring[1:, 1][None, :]
    out = np.empty(len(points), dtype=np.int64)
    step = max(1, WINDING_CHUNK // max(1, len(ring) - 1))
    for start in range(0, len(points), step):
        px = points[start : start + step, 0][:, None]
        py = points[start : start + step, 1][:, None]
        side = (x1 - x0) * (py - y0) - (px - x0) * (y1 - y0)
        up = (y0 <= py) & (y1 > py) & (side > 0)
        down = (y0 > py) & (y1 <= py) & (side < 0)
        out[start : start + step] = up.sum(axis=1) - down.sum(axis=1)
    return out


def _fill_nonzero(rings: list[np.ndarray]) -> BaseGeometry:
    """The region that closed paths enclose under the non-zero winding rule (Java's ``Area``).

    The paths' linework is noded and polygonized into faces; a face is kept where the sum of the
    paths' winding numbers around it is not zero. A hole is thus a contour running the other
    way round from its shell, as ``java.awt.geom.Area`` writes them.
    """
    closed = []
    for ring in rings:
        if len(ring) < 3:
            continue
        if not np.array_equal(ring[0], ring[-1]):
            ring = np.vstack([ring, ring[:1]])
        if len(np.unique(ring, axis=0)) >= 3:
            closed.append(ring)
    if not closed:
        return shapely.Polygon()
    if len(closed) == 1:
        poly = shapely.Polygon(closed[0])
        if poly.is_valid:
            return poly
    noded = shapely.union_all(shapely.linestrings(closed) if len(closed) > 1 else [shapely.LineString(closed[0])])
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))
    if len(faces) == 0:
        return shapely.Polygon()
    if len(faces) * sum(len(r) for r in closed) > MAX_WINDING_WORK:
        raise ValueError(
            f"a self-crossing area of {len(faces)} faces and {sum(len(r) for r in closed)} vertices is too complex to fill"
        )
    points = shapely.point_on_surface(faces)
    inside = shapely.get_coordinates(points)
    winding = np.zeros(len(faces), dtype=np.int64)
    lines = shapely.linestrings(closed) if len(closed) > 1 else np.array([shapely.LineString(closed[0])])
    # only rings whose bounding box holds a face's point can wind around it
    # the ignore: types-shapely's linestrings may return one LineString; for several rings it is an array
    point_idx, ring_idx = shapely.STRtree(lines).query(points)  # type: ignore[arg-type]
    order = np.argsort(ring_idx, kind="stable")
    point_idx, ring_idx = point_idx[order], ring_idx[order]
    bounds = np.flatnonzero(np.diff(ring_idx)) + 1
    for pts, rings_of in zip(np.split(point_idx, bounds), np.split(ring_idx, bounds), strict=True):
        if len(pts):
            winding[pts] += _winding_numbers(inside[pts], closed[rings_of[0]])
    kept = faces[winding != 0]
    if len(kept) == 0:
        return shapely.Polygon()
    return shapely.union_all(kept)


def _roi_geometry(roi: object, rounder: Rounder, ellipse_tolerance: float | None) -> tuple[BaseGeometry, str | None]:
    """Shapely geometry of a ROI proxy (polygons are made in ``_make_polygons``) and a problem, or None."""
    if roi is None:
        return _EMPTY, "has no ROI; nothing drawn"
    if not isinstance(roi, _JObj):
        raise ValueError("the ROI is not an object")
    kind = _ROI_KINDS.get(roi.desc.name)
    f = roi.fields
    if kind in ("rectangle", "ellipse", "line"):
        x0, y0, x1, y1 = (_double(f, k) for k in ("x", "y", "x2", "y2"))
        if not np.isfinite([x0, y0, x1, y1]).all():
            return (shapely.LineString() if kind == "line" else shapely.Polygon()), _NON_FINITE
        if kind == "line":
            c = np.array([[x0, y0], [x1, y1]])
        else:
            x0, x1 = min(x0, x1), max(x0, x1)
            y0, y1 = min(y0, y1), max(y0, y1)
            if x1 - x0 <= 0 or y1 - y0 <= 0:
                return shapely.Polygon(), f"{kind} with zero width or height; nothing drawn"
            if kind == "rectangle":
                c = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
            else:
                c = _ellipse(x0, y0, x1, y1, _ellipse_vertices(x0, y0, x1, y1, ellipse_tolerance))
        if rounder is not None:
            c = rounder(c)
        if not np.isfinite(c).all():
            return (shapely.LineString() if kind == "line" else shapely.Polygon()), _NON_FINITE
        return (shapely.LineString(c) if kind == "line" else shapely.Polygon(c)), None
    if kind in ("polyline", "points", "polygon"):
        xy = _xy(f.get("x"), f.get("y"), rounder)
        if not np.isfinite(xy).all():
            return _EMPTY, _NON_FINITE
        if kind == "polygon":
            geom = _fill_nonzero([xy])
            return geom, ("polygon with fewer than 3 distinct vertices; nothing drawn" if geom.is_empty else None)
        if len(xy) == 0:
            return (shapely.LineString() if kind == "polyline" else shapely.MultiPoint()), f"{kind} without points; nothing drawn"
        if len(xy) == 1:
            return shapely.Point(xy[0]), ("polyline with a single point, read as a point" if kind == "polyline" else None)
        return (shapely.LineString(xy) if kind == "polyline" else shapely.MultiPoint(xy)), None
    if kind == "area":
        xs, ys = f.get("x"), f.get("y")
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            raise ValueError("area ROI without matching x and y contour arrays")
        rings = [_xy(x, y, rounder) for x, y in zip(xs, ys, strict=True)]
        if not all(np.isfinite(r).all() for r in rings):
            return shapely.Polygon(), _NON_FINITE
        geom = _fill_nonzero(rings)
        return geom, ("area without any enclosed region; nothing drawn" if geom.is_empty else None)
    if kind == "wkb":
        wkb = f.get("wkb")
        if not isinstance(wkb, bytes):
            raise ValueError("geometry ROI without WKB bytes")
        _check_wkb(wkb)
        with np.errstate(invalid="ignore"):
            geom = shapely.from_wkb(wkb)
        if not np.isfinite(shapely.get_coordinates(geom)).all():
            return _EMPTY, _NON_FINITE
        if rounder is not None:
            geom = shapely.transform(geom, rounder)
        return geom, None
    return _EMPTY, f"unsupported ROI type {roi.desc.name}; nothing drawn"


def _check_wkb(wkb: bytes) -> None:
    """Walk a WKB geometry's headers, checking every count against the bytes left."""
    pos = _check_wkb_geometry(wkb, 0, 0)
    if pos != len(wkb):
        raise ValueError(f"{len(wkb) - pos} stray byte(s) after the WKB geometry")


def _check_wkb_geometry(wkb: bytes, pos: int, depth: int) -> int:
    if depth > 32:
        raise ValueError("WKB geometry collections nested too deeply")
    if pos + 5 > len(wkb):
        raise ValueError("WKB geometry cut short")
    order = wkb[pos]
    if order not in (0, 1):
        raise ValueError(f"invalid WKB byte order {order}")
    u4 = struct.Struct(">I" if order == 0 else "<I")
    (gtype,) = u4.unpack_from(wkb, pos + 1)
    pos += 5
    dims = 2
    if gtype & 0x80000000:  # EWKB Z
        dims += 1
    if gtype & 0x40000000:  # EWKB M
        dims += 1
    if gtype & 0x20000000:  # EWKB SRID
        if pos + 4 > len(wkb):
            raise ValueError("WKB geometry cut short")
        pos += 4
    base = gtype & 0x0FFFFFFF
    iso, base = divmod(base, 1000)
    if iso not in (0, 1, 2, 3):
        raise ValueError(f"unsupported WKB geometry type {gtype}")
    dims += {0: 0, 1: 1, 2: 1, 3: 2}[iso]
    point = 8 * dims

    def count(p: int) -> tuple[int, int]:
        if p + 4 > len(wkb):
            raise ValueError("WKB geometry cut short")
        return u4.unpack_from(wkb, p)[0], p + 4

    if base == 1:
        pos += point
    elif base == 2:
        n, pos = count(pos)
        pos += n * point
    elif base == 3:
        rings, pos = count(pos)
        if rings * 4 > len(wkb) - pos:
            raise ValueError("WKB geometry cut short")
        for _ in range(rings):
            n, pos = count(pos)
            pos += n * point
            if pos > len(wkb):
                break
    elif base in (4, 5, 6, 7):
        parts, pos = count(pos)
        if parts * 5 > len(wkb) - pos:
            raise ValueError("WKB geometry cut short")
        for _ in range(parts):
            pos = _check_wkb_geometry(wkb, pos, depth + 1)
    else:
        raise ValueError(f"unsupported WKB geometry type {gtype}")
    if pos > len(wkb):
        raise ValueError("WKB geometry cut short")
    return pos


def _make_polygons(stream: _Stream, polygons: list[tuple[Annotation, _JObj]], rounder: Rounder) -> None:
    """Geometries of all polygon ROIs at once (shapely's vectorized constructors)."""
    xs, ys = [], []
    for ann, roi in polygons:
        x, y = roi.fields.get("x"), roi.fields.get("y")
        if not (_is_float_array(x) and _is_float_array(y) and len(x) == len(y)):
            raise stream.fail(f"{ann.describe()} has a malformed polygon ROI (x and y are not matching float arrays)", roi.offset)
        xs.append(x)
        ys.append(y)
    lengths = np.fromiter((len(x) for x in xs), dtype=np.int64, count=len(xs))
    ring_of = np.repeat(np.arange(len(lengths)), lengths)
    with np.errstate(invalid="ignore"):
        coords = np.column_stack([np.concatenate(xs), np.concatenate(ys)]).astype(np.float64)
    if rounder is not None:
        coords = rounder(coords)
    ok = lengths >= 3
    finite = np.isfinite(coords).all(axis=1)
    if not finite.all():
        ok[np.unique(ring_of[~finite])] = False
    geoms = np.empty(len(polygons), dtype=object)
    rings = shapely.linearrings(coords[ok[ring_of]], indices=np.repeat(np.arange(int(ok.sum())), lengths[ok]))
    geoms[ok] = shapely.polygons(rings)
    valid = np.zeros(len(polygons), dtype=bool)
    valid[ok] = shapely.is_valid(geoms[ok])
    ends = np.cumsum(lengths)
    for i in np.flatnonzero(~valid):
        ann = polygons[i][0]
        ring = coords[ends[i] - lengths[i] : ends[i]]
        if not np.isfinite(ring).all():
            geoms[i] = shapely.Polygon()
            ann.problems.append(_NON_FINITE)
            continue
        geoms[i] = _fill_nonzero([ring])  # self-intersecting: filled as QuPath's Area does
        if geoms[i].is_empty:
            ann.problems.append("polygon with fewer than 3 distinct vertices; nothing drawn")
    for (ann, _), geom in zip(polygons, geoms, strict=True):
        ann.geometry = geom

"""ROIs to shapely geometries (``rois``): ellipses, the 0.01 px grid, edge cases, WKB, non-zero fill."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiPoint, MultiPolygon, Polygon, box

from mammotools.qupath.qpdata import read_qpdata
from mammotools.qupath.qpdata.javaio import _ClassDesc, _JObj
from mammotools.qupath.qpdata.rois import _fill_nonzero, _roi_geometry, _rounder

FIXTURES = Path(__file__).resolve().parents[1] / "data"  # written by tests/qupath/java (see test_reader.py)
QUPATH_03 = FIXTURES / "qupath-0.3.qpdata"
QUPATH_06 = FIXTURES / "qupath-0.6.qpdata"


def same_geometry(a: shapely.Geometry, b: shapely.Geometry, tolerance: float = 1e-9) -> bool:
    return a.geom_type == b.geom_type and bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance))


def test_ellipse_accuracy() -> None:
    """Default: QuPath's own 100-vertex polygon; ``ellipse_tolerance``: the true ellipse within it."""
    true = np.linspace(0, 2 * math.pi, 20001)
    for tolerance in (None, 0.01, 0.001):
        core = read_qpdata(QUPATH_06, precision=None, ellipse_tolerance=tolerance)[13].geometry  # circle r = 50
        dense = shapely.points(750 + 50 * np.cos(true), 750 + 50 * np.sin(true))
        error = shapely.distance(dense, core.exterior).max()
        if tolerance is None:
            assert len(core.exterior.coords) == 101
            assert error == pytest.approx(50 * (1 - math.cos(math.pi / 100)), rel=1e-3)  # 0.0247 px
        else:
            assert error < tolerance
            assert error > tolerance / 10  # not needlessly many vertices


def test_precision_none_keeps_the_stored_floats() -> None:
    rounded = read_qpdata(QUPATH_03)
    raw = read_qpdata(QUPATH_03, precision=None)
    assert same_geometry(raw[5].geometry, rounded[5].geometry)  # on the grid already
    ellipse = shapely.get_coordinates(raw[2].geometry)
    assert not np.allclose(ellipse, np.round(ellipse, 2), atol=1e-9, rtol=0)  # off the grid
    assert np.abs(ellipse - shapely.get_coordinates(rounded[2].geometry)).max() <= 0.005 + 1e-9


def proxy(kind: str, **fields: object) -> object:
    """A ROI proxy object as the stream parser makes it."""
    roi = _JObj(_ClassDesc(f"qupath.lib.roi.{kind}", 1), 0)
    roi.fields.update(fields)
    return roi


F32 = np.float32


@pytest.mark.parametrize(
    ("roi", "geometry", "problem"),
    [
        (None, shapely.GeometryCollection(), "has no ROI"),
        (proxy("RectangleROI$SerializationProxy", x=1.0, y=1.0, x2=1.0, y2=5.0), Polygon(), "zero width or height"),
        (proxy("LineROI$SerializationProxy", x=1.0, y=math.nan, x2=1.0, y2=5.0), LineString(), "non-finite"),
        (
            proxy("PolylineROI$SerializationProxy", x=np.array([2], F32), y=np.array([3], F32)),
            shapely.Point(2, 3),
            "single point",
        ),
        (proxy("PointsROI$SerializationProxy", x=np.array([], F32), y=np.array([], F32)), MultiPoint(), "without points"),
        (proxy("FancyROI$SerializationProxy"), shapely.GeometryCollection(), "unsupported ROI type"),
        # a bow tie: both lobes are filled, as QuPath's java.awt.geom.Area does
        (
            proxy("PolygonROI$SerializationProxy", x=np.array([0, 10, 10, 0], F32), y=np.array([0, 10, 0, 10], F32)),
            MultiPolygon([Polygon([(0, 0), (5, 5), (0, 10)]), Polygon([(10, 0), (10, 10), (5, 5)])]),
            None,
        ),
        # area contours: a hole runs the other way round; a same-direction inner contour fills
        (
            proxy(
                "AreaROI$SerializationProxy",
                x=[np.array([0, 10, 10, 0], F32), np.array([2, 2, 4, 4], F32), np.array([6, 8, 8, 6], F32)],
                y=[np.array([0, 0, 10, 10], F32), np.array([2, 4, 4, 2], F32), np.array([6, 6, 8, 8], F32)],
            ),
            Polygon(box(0, 0, 10, 10).exterior.coords, [box(2, 2, 4, 4).exterior.coords]),
            None,
        ),
    ],
    ids=["none", "flat-rectangle", "nan-line", "one-point-polyline", "no-points", "unknown", "bow-tie", "area-winding"],
)
def test_roi_edge_cases(roi: object, geometry: shapely.Geometry, problem: str | None) -> None:
    got, note = _roi_geometry(roi, _rounder(0.01), None)
    assert same_geometry(got, geometry), got.wkt
    assert (note is None) if problem is None else (problem in note)


def test_malformed_wkb_is_a_qpdata_error() -> None:
    good = shapely.to_wkb(Polygon([(0, 0), (1, 0), (1, 1)]), byte_order=0)
    assert same_geometry(
        _roi_geometry(proxy("GeometryROI$WKBSerializationProxy", wkb=good), None, None)[0],
        Polygon([(0, 0), (1, 0), (1, 1)]),
    )
    for bad in (good + b"\x00", good[:-3], good[:5] + b"\x7f\xff\xff\xff" + good[9:], b"\x02" + good[1:]):
        with pytest.raises(ValueError):
            _roi_geometry(proxy("GeometryROI$WKBSerializationProxy", wkb=bad), None, None)


def test_self_crossing_area_keeps_memory_bounded() -> None:
    """A crafted zigzag area crossing itself thousands of times: filled with bounded memory."""
    n = 3000
    zigzag = np.c_[np.arange(n, dtype=float), np.where(np.arange(n) % 2 == 0, 0.0, 100.0)]
    ring = np.vstack([zigzag, [[n, 50.0], [-1, 50.0]], zigzag[:1]])
    tracemalloc.start()
    try:
        area = _fill_nonzero([ring]).area
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert area > 0 and peak < 100 * 2**20

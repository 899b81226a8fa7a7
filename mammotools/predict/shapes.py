"""Predicted label maps -> QuPath annotations: per class, polygons with their holes, simplified,
specks dropped, marked as predictions.

Each connected region of a class (4-connected: the pixels a polygon traced along pixel edges
covers exactly) becomes one polygon, holes kept, simplified by ``tolerance`` px (shapely's
topology-preserving Douglas-Peucker). Regions under ``min_area`` px are dropped.

A predicted annotation is named ``"mammotools prediction <hash>"``, QuPath shows the name in the
hierarchy and on the image, and carries the mean predicted probability of its class over its
pixels as a measurement. The hash is of the shape as written; a reviewer who edits the shape in
QuPath keeps the name but changes the shape, so :func:`prediction_state` tells, after review,
which predicted shapes were left untouched and which were corrected.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from mammotools.annotations import prediction_name
from mammotools.defaults import PREDICT_MIN_AREA, PREDICT_TOLERANCE

DEFAULT_TOLERANCE = PREDICT_TOLERANCE  # px, see defaults.py
DEFAULT_MIN_AREA = PREDICT_MIN_AREA
PROBABILITY_MEASUREMENT = "Mean probability"
SUM_ROWS = 256  # rows per band when summing a class's probability per region


def class_polygons(
    mask: np.ndarray, probability: np.ndarray | None, tolerance: float, min_area: int
) -> list[tuple[BaseGeometry, float | None]]:
    """(polygon, mean probability over its pixels) for each 4-connected region of ``mask``.

    mask: (H, W) bool; probability: (H, W) float32 in [0, 1] of the class, or None. Polygons are
    in pixel coordinates (x right, y down; pixel (r, c) covers [c, c+1] x [r, r+1])."""
    import cv2
    from rasterio import Affine
    from rasterio.features import shapes
    from shapely.geometry import shape

    count, components, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=4)
    means: np.ndarray | None = None
    if probability is not None:  # summed a band of rows at a time: bincount's int64 and float64 copies stay small
        sums = np.zeros(count)
        for y in range(0, mask.shape[0], SUM_ROWS):
            rows = slice(y, y + SUM_ROWS)
            sums += np.bincount(components[rows].ravel(), weights=probability[rows].ravel(), minlength=count)
        means = sums / np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
    found = []
    for index in range(1, count):  # 0 is everything outside the class
        if stats[index, cv2.CC_STAT_AREA] < min_area:
            continue
        x, y, w, h = (int(v) for v in stats[index, :4])
        window = components[y : y + h, x : x + w] == index
        to_image = Affine(1.0, 0.0, float(x), 0.0, 1.0, float(y))  # window pixel -> image pixel
        for geom, _ in shapes(window.view(np.uint8), mask=window, connectivity=4, transform=to_image):
            polygon = shape(geom)
            if tolerance > 0:
                polygon = polygon.simplify(tolerance, preserve_topology=True)
            if not polygon.is_empty:
                found.append((polygon, None if means is None else float(means[index])))
    return found


def predicted_feature(
    geometry: BaseGeometry, class_name: str, color: tuple[int, int, int], probability: float | None, key: str
) -> dict[str, Any]:
    """A QuPath 0.4+ GeoJSON annotation, named as a prediction, with its mean probability."""
    properties: dict[str, Any] = {
        "objectType": "annotation",
        "name": prediction_name(geometry, class_name),
        "classification": {"name": class_name, "color": list(color)},
        "isLocked": False,
    }
    if probability is not None:
        properties["measurements"] = {PROBABILITY_MEASUREMENT: round(probability, 4)}
    return {
        "type": "Feature",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}/{properties['name']}")),
        "geometry": mapping(geometry),
        "properties": properties,
    }


def label_map_features(
    label: np.ndarray,
    classes: list[tuple[str, int, tuple[int, int, int]]],
    probabilities: np.ndarray | None,
    tolerance: float,
    min_area: int,
    key: str,
) -> list[dict[str, Any]]:
    """The predicted annotations of one label map.

    label: (H, W) uint8 class indices; classes: (name, index, colour) of each class to trace (the
    background class left out); probabilities: (C, H, W) float32, or (H, W) float32 holding each
    pixel's probability of its own class (what predict keeps: the same means, a C-th of the
    memory), or None."""
    features = []
    for name, index, color in classes:
        mask = label == index
        if not mask.any():
            continue
        probability = None if probabilities is None else probabilities if probabilities.ndim == 2 else probabilities[index]
        for n, (polygon, mean) in enumerate(class_polygons(mask, probability, tolerance, min_area)):
            features.append(predicted_feature(polygon, name, color, mean, f"{key}/{name}/{n}"))
    return features

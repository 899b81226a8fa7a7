"""Label maps -> predicted QuPath annotations: holes kept, specks dropped, mean probabilities, the
shapes read back by our own reader reproduce the label map, and predictions are told apart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from mammotools.annotations import prediction_state
from mammotools.classes import RegionClass
from mammotools.defaults import PREDICT_TOLERANCE
from mammotools.masks import rasterize_region
from mammotools.predict.shapes import class_polygons, label_map_features
from mammotools.qupath import open_source, read_annotations


def ring_map() -> np.ndarray:
    label = np.zeros((60, 80), np.uint8)
    label[10:50, 10:50] = 1  # a square of class 1 ...
    label[20:30, 20:30] = 0  # ... with a hole
    label[5:8, 70:73] = 1  # a 9 px speck
    label[40:58, 60:78] = 2  # class 2
    return label


def test_holes_kept_specks_dropped_and_mean_probability() -> None:
    label = ring_map()
    probability = np.where(label == 1, 0.8, 0.1).astype(np.float32)
    found = class_polygons(label == 1, probability, tolerance=0.0, min_area=10)
    assert len(found) == 1  # the speck (9 px) is gone
    polygon, mean = found[0]
    assert len(polygon.interiors) == 1 and polygon.area == 40 * 40 - 10 * 10
    assert mean == pytest.approx(0.8)
    assert len(class_polygons(label == 1, None, 0.0, min_area=9)) == 2


def test_shapes_read_back_reproduce_the_label_map(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # blobs: smoothed noise thresholded into three classes, with holes and ragged edges
    import cv2

    noise = cv2.GaussianBlur(rng.random((300, 400)).astype(np.float32), (0, 0), 12)
    label = np.digitize(noise, np.quantile(noise, [0.35, 0.7])).astype(np.uint8)
    classes = [("Gland", 1, (0, 200, 0)), ("Muscle", 2, (0, 0, 200))]
    probabilities = np.stack([(label == i).astype(np.float32) for i in range(3)])
    features = label_map_features(label, classes, probabilities, tolerance=PREDICT_TOLERANCE, min_area=25, key="img")
    path = tmp_path / "img.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    read = read_annotations(open_source(path).images[0])
    assert len(read) == len(features)
    for name, index, _ in classes:
        geometries = [a.geometry for a in read if a.class_name == name]
        region = rasterize_region(RegionClass(name, index, (0, 0, 0), 1, False), geometries, label.shape)
        assert region is not None
        drawn = region.full_size(label.shape) > 0
        truth = label == index
        iou = (drawn & truth).sum() / (drawn | truth).sum()
        assert iou >= 0.98, (name, iou)
    assert all(a.name and prediction_state(a.name, a.geometry, a.class_name) == "untouched" for a in read)
    assert all(f["properties"]["measurements"]["Mean probability"] == 1.0 for f in features)


def test_an_edited_prediction_is_told_from_an_untouched_one() -> None:
    features = label_map_features(ring_map(), [("Gland", 1, (0, 200, 0))], None, 0.0, 10, "k")
    geometry = shapely.geometry.shape(features[0]["geometry"])
    name = features[0]["properties"]["name"]
    assert prediction_state(name, geometry, "Gland") == "untouched"
    assert prediction_state(name, shapely.geometry.polygon.orient(geometry, -1), "Gland") == "untouched"  # ring direction
    assert prediction_state(name, shapely.affinity.translate(geometry, 0.001), "Gland") == "untouched"  # float round trip
    assert prediction_state(name, shapely.MultiPolygon([geometry]), "Gland") == "untouched"  # one part, other type
    assert prediction_state(name, geometry.buffer(2), "Gland") == "edited"
    assert prediction_state(name, geometry, "Tumor") == "edited"  # reclassified in review
    assert prediction_state("Tumor drawn by Dr A", geometry, "Gland") is None
    assert prediction_state(None, geometry, None) is None

"""Inference over whole images: sliding windows blended with Gaussian weights, and the
one-pass baseline.

Parts: ``sliding.py`` lays output tiles over the image, runs the model a batch of windows at a
time and blends the tiles' probabilities; :func:`predict_label_map` turns them into a label map.
``strips.py`` runs the same windows a band of rows at a time (predict: memory bounded by the window).
"""

from mammotools.inference.sliding import (
    gaussian_weights,
    predict_label_map,
    resize_scores,
    sliding_window_scores,
    tile_starts,
    whole_image_scores,
)
from mammotools.inference.strips import RowSource, label_map_by_strips, resized_strips, sliding_window_strips

__all__ = [
    "RowSource",
    "gaussian_weights",
    "label_map_by_strips",
    "predict_label_map",
    "resize_scores",
    "resized_strips",
    "sliding_window_scores",
    "sliding_window_strips",
    "tile_starts",
    "whole_image_scores",
]

"""Inference over whole images: sliding windows blended with Gaussian weights, and the
one-pass baseline.

Parts: ``sliding.py`` lays output tiles over the image, runs the model a batch of windows at a
time and blends the tiles' probabilities; :func:`predict_label_map` turns them into a label map.
"""

from mammotools.inference.sliding import (
    gaussian_weights,
    predict_label_map,
    resize_scores,
    sliding_window_scores,
    tile_starts,
    whole_image_scores,
)

__all__ = [
    "gaussian_weights",
    "predict_label_map",
    "resize_scores",
    "sliding_window_scores",
    "tile_starts",
    "whole_image_scores",
]

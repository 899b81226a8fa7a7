"""``predict``: pre-annotate new mammograms with a trained run and send the shapes to QuPath.

Parts: ``inputs.py`` (a folder of images, an image, or a QuPath project), ``shapes.py``
(label map -> predicted QuPath annotations, and telling untouched predictions from corrected
ones after review), ``run.py`` (the model over each image by sliding window; the outputs).
"""

from mammotools.annotations import PREDICTION_NAME, prediction_state
from mammotools.predict.run import PredictSettings, PredictSummary, predict_images
from mammotools.predict.shapes import DEFAULT_MIN_AREA, DEFAULT_TOLERANCE

__all__ = [
    "DEFAULT_MIN_AREA",
    "DEFAULT_TOLERANCE",
    "PREDICTION_NAME",
    "PredictSettings",
    "PredictSummary",
    "predict_images",
    "prediction_state",
]

"""Training data: torch Datasets over crop datasets, with the paper's online pipeline.

Parts: ``transforms.py`` (random window, flip, contrast, gray to 3 channels, scaling by bit
depth; brightness and saturation for RGB), ``crops.py`` (the Dataset over a crop or augmented
dataset's files; which classes a task trains on), ``folds.py`` (cross-validation by subject) and
``cityscapes.py`` (the Cityscapes layout, trained on as whole scenes). torch is imported here:
only training and inference import this package.
"""

from mammotools.data.cityscapes import is_cityscapes, open_cityscapes, open_training_data
from mammotools.data.crops import (
    CropSegmentationSet,
    TaskClasses,
    check_crop_size,
    crop_size_needed,
    task_classes,
    training_sets,
)
from mammotools.data.folds import fold_crops
from mammotools.data.transforms import OUTSIDE_IMAGE, Augment, Size, as_shape, resize_image, scale_image

__all__ = [
    "OUTSIDE_IMAGE",
    "Augment",
    "CropSegmentationSet",
    "Size",
    "TaskClasses",
    "as_shape",
    "check_crop_size",
    "crop_size_needed",
    "fold_crops",
    "is_cityscapes",
    "open_cityscapes",
    "open_training_data",
    "resize_image",
    "scale_image",
    "task_classes",
    "training_sets",
]

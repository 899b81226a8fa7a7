"""``make-crops``: class-balanced crops of an export dataset, and the crop dataset's layout.

Parts: ``centres.py`` chooses crop centres by the paper's balanced rule and cuts windows;
``image.py`` cuts one image's crops; ``layout.py`` is the crop dataset folder (its reader,
:func:`open_crop_dataset`, shared with augment, and its tables); ``run.py`` runs it all;
``balance.py`` measures how balanced a crop set is against uniform crops.
"""

from mammotools.crops.layout import (
    ClassWeight,
    CropDataset,
    CropFile,
    CropSettings,
    open_crop_dataset,
    read_class_weights,
)
from mammotools.crops.run import CropSummary, make_crops

__all__ = [
    "ClassWeight",
    "CropDataset",
    "CropFile",
    "CropSettings",
    "CropSummary",
    "make_crops",
    "open_crop_dataset",
    "read_class_weights",
]

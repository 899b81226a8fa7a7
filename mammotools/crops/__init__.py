"""``make-crops``: class-balanced crops of an export dataset, and the crop dataset's layout.

Parts: ``centres.py`` chooses crop centres by the paper's balanced rule and cuts windows;
``image.py`` cuts one image's crops; ``layout.py`` is the crop dataset folder (its reader,
:func:`open_crop_dataset`, and the tables augment writes in the same layout); ``run.py`` runs it
all; ``balance.py`` measures how balanced a crop set is against uniform crops.
"""

from mammotools.crops.layout import (
    AUGMENT_FIELDS,
    ORIGINAL,
    ClassWeight,
    CropDataset,
    CropFile,
    CropSettings,
    check_split_folder,
    checked_bits,
    mark_finished,
    mark_unfinished,
    missing_files,
    open_crop_dataset,
    prepare_split_folder,
    read_class_weights,
    split_files,
    write_class_weights,
    write_records_manifest,
)
from mammotools.crops.run import CropSummary, make_crops

__all__ = [
    "AUGMENT_FIELDS",
    "ORIGINAL",
    "ClassWeight",
    "CropDataset",
    "CropFile",
    "CropSettings",
    "CropSummary",
    "check_split_folder",
    "checked_bits",
    "make_crops",
    "mark_finished",
    "mark_unfinished",
    "missing_files",
    "open_crop_dataset",
    "prepare_split_folder",
    "read_class_weights",
    "split_files",
    "write_class_weights",
    "write_records_manifest",
]

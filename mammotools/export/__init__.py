"""``export-qupath``: QuPath annotations -> a binary map per region -> one label map per image.

Parts: ``plan.py`` checks the whole input before anything is written (classes, images, names,
earlier outputs); ``image.py`` exports one image (read, rasterize, smooth, merge, write: the
label map is merged by ``mammotools.masks``); ``layout.py`` is the dataset folder (its reader,
:func:`open_export_dataset`, and its writers); ``run.py`` runs the plan over a process pool.
"""

from mammotools.export.layout import ExportDataset, ExportedImage, open_export_dataset
from mammotools.export.plan import ExportSettings
from mammotools.export.run import ExportSummary, export_dataset

__all__ = [
    "ExportDataset",
    "ExportSettings",
    "ExportSummary",
    "ExportedImage",
    "export_dataset",
    "open_export_dataset",
]

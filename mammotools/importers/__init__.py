"""Bringing existing annotations into QuPath: label images (``import-masks``) and the mini-MIAS
lesion list (``import-mias``) become QuPath projects (written by ``mammotools.qupath.writer``)."""

from mammotools.importers.label_images import ImportSummary, import_masks, parse_values
from mammotools.importers.mias import MiasSummary, import_mias, parse_info, parse_mapping

__all__ = ["ImportSummary", "MiasSummary", "import_masks", "import_mias", "parse_info", "parse_mapping", "parse_values"]

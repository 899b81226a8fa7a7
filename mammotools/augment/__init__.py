"""``augment``: the paper's offline augmentation of the training crops.

Parts: ``variants.py`` holds the named variants (a plain dict, ``VARIANTS``) and applies one;
``crop.py`` writes one crop's variants; ``run.py`` runs it over a crop (or export) dataset and
writes a folder in the crop dataset's layout (read it with ``mammotools.crops.open_crop_dataset``).
"""

from mammotools.augment.run import AugmentSummary, augment_dataset, parse_variants, source_unit
from mammotools.augment.variants import VARIANTS, Variant, apply_variant

__all__ = ["VARIANTS", "AugmentSummary", "Variant", "apply_variant", "augment_dataset", "parse_variants", "source_unit"]

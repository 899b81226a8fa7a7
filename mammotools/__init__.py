"""mammotools: from QuPath annotations of mammograms to a fair segmentation benchmark."""

__version__ = "0.1.0"

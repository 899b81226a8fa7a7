"""Defaults and name lists shared by the library and the CLI, each written once and kept free of
heavy imports (``--help`` shows them)."""

DEFAULT_SIGMA = 5.0  # px: Gaussian sigma for smoothed regions (method.md: Gaussian, then threshold 0.5)
DEFAULT_POINT_RADIUS = 25.0  # px: radius of the disc a point annotation (e.g. a nipple) becomes
DEFAULT_PER_IMAGE = 10  # crops cut from each image by make-crops
DEFAULT_TOLERANCE = 0.5  # px: simplification of polygons traced from label images (import-masks)
# predict: shapes simplified by 0.7 px keep 43% of the traced vertices and IoU 0.984 with the label
# map on ragged 300 x 400 px blobs (0.5 px: 80% and exact; 1 px: 17% and 0.965); docs/predict.md
PREDICT_TOLERANCE = 0.7
PREDICT_MIN_AREA = 25  # px: predicted regions smaller than 5 x 5 px are dropped as specks
# px: smoothing one region filling a 4096 x 5120 mammogram takes 0.15 s at sigma 5, 0.6 s at 25,
# 7.6 s at 50 and 101 s at 100 (2-core machine; the kernel is 8 sigma + 1 wide and each boundary
# tile reads a 4-sigma margin): 50 px (5 mm at 0.1 mm/px) keeps every allowed value bounded.
MAX_SIGMA = 50.0
MAX_PER_IMAGE = 1000  # make-crops --per-image: 1000 crops of one mammogram overlap many times over
MAX_POINT_RADIUS = 2000.0  # px
DEFAULT_VAL_FRACTION = 0.3  # share of subjects held out for validation (the paper's 70/30)
DEFAULT_COMMON = ("Mammary gland",)  # never a crop's centre class (with the table's bottom class)
DEFAULT_KEEP_ORIGINALS = True  # augment keeps the unaugmented training crops beside the variants
CROP_SIZES = (256, 700, 900, 1500)  # the paper's crop sizes (px)
MIN_CROP_SIZE, MAX_CROP_SIZE = 16, 8192  # px: make-crops --size
TASKS = ("regions", "tumor")  # make-crops --task: the dataset's classes, or tumor vs non-tumor
IGNORE_LABEL = 255  # label-map value of pixels without a class (crop padding): never trained on, never scored
OPTIMIZERS = ("sgd", "adamw")  # train --optimizer
SCHEDULES = ("step", "cosine")  # train --schedule: x gamma every step_epochs; cosine to 0
CLASS_WEIGHTINGS = ("inverse-share", "median-frequency", "none")  # train --class-weights
DEVICES = ("auto", "cpu", "cuda")  # --device
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # train --precision
READERS_OFFERED = ("auto", "qpdata", "geojson", "paquo")  # --reader: auto, then each reader of qupath.source
DEFAULT_SEED = 0  # train's seed of the weights, windows, flips and order
DEFAULT_WIDTH = 1.0  # channel width factor of the paper models (1 = the paper's)

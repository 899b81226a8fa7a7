"""``benchmark``: the paper's comparison of segmentation models on a team's own mammograms.

Parts: ``protocol.py`` (which runs to train, on which crops, at what input), ``run.py`` (train,
score, reuse), ``results.py`` (the tables over seeds, the paper's figures, flags), ``stats.py``
(intervals and paired tests by subject), ``settings.py`` (the settings in words), ``figures.py``
(the pictures), ``html.py`` (report.html), ``report.py`` (writes it all).
torch and matplotlib are imported only when a benchmark runs.
"""

from mammotools.benchmark.protocol import PAPER_MODELS, parse_models
from mammotools.benchmark.results import flags
from mammotools.benchmark.run import BenchmarkResult, BenchmarkSettings, Entry, Events, run_benchmark
from mammotools.benchmark.settings import epochs_words

__all__ = [
    "PAPER_MODELS",
    "BenchmarkResult",
    "BenchmarkSettings",
    "Entry",
    "Events",
    "epochs_words",
    "flags",
    "parse_models",
    "run_benchmark",
]

"""The ``mammotools`` command line. Each command parses, calls one library function, reports.

``options.py`` holds what the commands share; each group of commands has its module
(``qupath.py``: inspect, export-qupath; ``datasets.py``: make-crops, augment; ``training.py``:
train, evaluate; ``benchmark.py``: benchmark; ``predict.py``: predict; ``importers.py``: import-masks, import-mias).
Heavy packages (numpy, OpenCV, rasterio, shapely, torch, matplotlib) are imported inside the
commands, so ``mammotools --help`` is instant and works when an optional part is missing.
"""

from __future__ import annotations

import click

from mammotools import __version__
from mammotools.cli.benchmark import benchmark_cmd
from mammotools.cli.datasets import augment_cmd, make_crops_cmd
from mammotools.cli.importers import import_masks_cmd, import_mias_cmd
from mammotools.cli.predict import predict_cmd
from mammotools.cli.qupath import export_qupath, inspect_cmd
from mammotools.cli.training import evaluate_cmd, train_cmd


class PipelineGroup(click.Group):
    """Lists its commands in the order they were added (the pipeline's), not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=PipelineGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="mammotools")
def main() -> None:
    """From QuPath annotations of mammograms to segmentation datasets and benchmarks.

    The commands are listed in pipeline order: existing labels into QuPath, audit and export
    the annotations, make training data, train and score models, pre-annotate new images for
    review in QuPath. `mammotools COMMAND --help` shows an example of each.
    """


PIPELINE = (
    import_masks_cmd,
    import_mias_cmd,
    inspect_cmd,
    export_qupath,
    make_crops_cmd,
    augment_cmd,
    train_cmd,
    evaluate_cmd,
    benchmark_cmd,
    predict_cmd,
)
for command in PIPELINE:
    main.add_command(command)

__all__ = ["main"]

"""``export-qupath``: QuPath annotations -> an export dataset folder (layout.py) every later command reads.

The work is in two steps. :func:`~mammotools.export.plan.plan_export` reads every annotation
file in this process and checks everything that can be checked before writing (unknown classes,
missing images, names, earlier outputs), so a mistake stops the run before any file is written.
:func:`~mammotools.export.image.export_image` then does one image (in a worker process with
``workers > 1``); an image that fails there (truncated file, size differing from the project's)
is reported and written nowhere. This module runs the two.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mammotools.classes import ClassTable, default_class_table
from mammotools.errors import MissingFileError
from mammotools.export.layout import (
    check_export_folder,
    export_files,
    mark_finished,
    mark_unfinished,
    prepare_export_folder,
    write_manifest,
)
from mammotools.export.plan import MAX_LISTED, ExportSettings, check_settings, plan_export
from mammotools.records import forget, leftovers
from mammotools.runner import Outcome, choose_workers, run_tracked

# Export work per image megapixel (decode, maps, writing; 2-core machine, one thread): sizes the pool.
SECONDS_PER_MEGAPIXEL = 0.03


@dataclass
class ExportSummary(Outcome):
    """What an export did."""

    not_annotated: list[str] = field(default_factory=list)  # images with no annotation file
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # summed per stage, exported images

    @property
    def exported(self) -> list[str]:
        """Names of the images exported by this run."""
        return self.done


def export_dataset(
    source_path: str | Path,
    out: str | Path,
    images_dir: str | Path | None = None,
    table: ClassTable | None = None,
    settings: ExportSettings | None = None,
    workers: int = 0,
    overwrite: bool = False,
    on_plan: Callable[[int, int], None] | None = None,
    on_image: Callable[[str], None] | None = None,
    reader: str = "auto",
) -> ExportSummary:
    """Export a QuPath project (or GeoJSON exports) to a dataset folder; see module docstring.

    ``workers``: processes (0 = as many as the work is worth, runner.choose_workers).
    ``on_plan(todo, done)`` is called once the work is known; ``on_image(name)`` after each
    image (for a progress bar).
    """
    from mammotools.export.image import export_image  # cv2 etc. only when working

    start = time.perf_counter()
    table = table or default_class_table()
    settings = settings or ExportSettings()
    check_settings(settings)
    out = Path(out)
    if images_dir is not None and not Path(images_dir).is_dir():  # not "N image file(s) not found"
        raise MissingFileError(f"--images {images_dir}: no such folder; give the folder that holds the image files")
    check_export_folder(out, table, overwrite)  # before planning: a wrong --out is refused before any progress
    plan = plan_export(Path(source_path), out, Path(images_dir) if images_dir else None, table, settings, overwrite, reader)
    todo, done = plan.todo, plan.done
    summary = ExportSummary(failed=plan.failed, not_annotated=plan.not_annotated, warnings=plan.warnings)
    if on_plan:  # images refused while planning count as processed: the bar covers every image of the input
        on_plan(len(todo) + len(plan.failed), len(done))
    if on_image:
        for name, _ in plan.failed:
            on_image(name)
    prepare_export_folder(out, table, overwrite)
    summary.skipped = [j.name for j in done]

    def add_result(record: dict) -> None:
        for k, v in record["timings"].items():
            summary.timings[k] = summary.timings.get(k, 0.0) + v
        summary.warnings.extend(f"{record['name']}: {w}" for w in record["image_warnings"])

    args = (out, table, settings)
    current = {j.name for j in todo} | {j.name for j in done} | {name for name, _ in summary.failed}
    if todo or summary.failed:  # until every image is exported: a stopped or partly failed export is refused by
        mark_unfinished(out, sorted(current))  # make-crops (a split drawn over part of it would not fit the rest)
    try:
        megapixels = sum(job.width * job.height for job in todo) / 1e6
        n = choose_workers(workers, len(todo), megapixels * SECONDS_PER_MEGAPIXEL)
        run_tracked(export_image, todo, args, n, summary, lambda job: job.name, on_image, add_result)
        summary.warnings.extend(_leftovers(out, current, overwrite))
    finally:  # also after Ctrl-C: the manifest lists what is complete
        write_manifest(out, table, current)
    if not summary.failed:
        mark_finished(out)
    summary.seconds = time.perf_counter() - start
    return summary


def _leftovers(out: Path, current: set[str], overwrite: bool) -> list[str]:
    """Outputs of images no longer in the input: removed with ``overwrite``, else reported."""
    old = leftovers(out, current)
    if not old:
        return []
    if overwrite:
        for name in old:
            forget(out, name, export_files, fallback={"name": name})
        return [f"removed the outputs of {len(old)} image(s) no longer in the input: {', '.join(old[:MAX_LISTED])}"]
    listed = ", ".join(old[:MAX_LISTED]) + (" ..." if len(old) > MAX_LISTED else "")
    return [
        f"{len(old)} image(s) exported earlier are no longer in the input ({listed}): left out of the manifest; "
        "their files stay until a run with --overwrite"
    ]

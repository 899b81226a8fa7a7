"""``predict``: a trained run pre-annotates new mammograms; the result opens in QuPath for review.

Layout of ``--out`` (always a QuPath project, whatever came in)::

    project.qpproj, classifiers/classes.json   the images as QuPath entries (QuPath's own server builders)
    annotations/<name>.geojson       predicted annotations, beside the input project's own (kept)
    labels/<name>.png                predicted label map: palette PNG, the run's label values
    probabilities/<name>/<class>.png class probability, 8-bit (0..255 = 0..1), with --probabilities
    records/<name>.json              per image: classes' pixels, shapes, seconds; marks it complete
    predictions.csv                  one line per image, written at the end
    prediction.json                  the run, the settings; a rerun with the same ones skips done images

The input project is only read. Each image is predicted by the run's sliding window (its window,
overlap and scale), windows batched on the GPU when there is one; memory is bounded by the
window batch plus the image's class scores.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mammotools.classes import ClassTable, RegionClass
from mammotools.errors import InputError, MammoError, ResourceError
from mammotools.files import atomic_write_bytes, atomic_write_text, remove_dead_temporaries
from mammotools.images import encode_png, image_bits, read_image
from mammotools.palette import encode_label_png
from mammotools.predict.inputs import PredictInput, find_inputs
from mammotools.predict.outputs import (
    PredictSummary,
    complete_record,
    finish,
    forget_prediction,
    kept_features,
    write_prediction_project,
)
from mammotools.predict.shapes import DEFAULT_MIN_AREA, DEFAULT_TOLERANCE, label_map_features
from mammotools.qupath import write_annotations

SETTINGS_FILE = "prediction.json"
PROJECT_SECONDS = 10.0  # project.qpproj is rewritten at most this often during a run, and at its end
STOPPING_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # a write failing so stops the run, not one image


@dataclass
class PredictSettings:
    """How to predict (None: the run's own setting)."""

    device: str = "auto"
    batch_size: int = 4  # windows per forward pass
    overlap: float | None = None
    probabilities: bool = False
    tolerance: float = DEFAULT_TOLERANCE
    min_area: int = DEFAULT_MIN_AREA
    dicom_voi: bool = True
    images_dir: str | None = None  # where a project's images are (as export-qupath --images)
    workers: int = 1  # threads decoding the next images while the model runs


def run_classes(run: Path, description: dict[str, Any]) -> list[RegionClass]:
    """The run's classes with the label values and colours its outputs use (run.json's table, or
    for runs trained before it was recorded, the classes.json of the crops it trained on)."""
    table = description.get("table")
    if table is None:
        from mammotools.classes import load_class_table

        crops = Path(description["dataset"]) / "classes.json"
        if not crops.is_file():
            raise InputError(f"{run}: the run records no class colours and its crops ({crops.parent}) are gone; train it again")
        known = load_class_table(crops)
        table = [
            {"name": n, "label": (known.find(n) or known.bottom).label, "color": list((known.find(n) or known.bottom).color)}
            for n in description["classes"]
        ]
    return [RegionClass(c["name"], int(c["label"]), tuple(c["color"]), i + 1, False) for i, c in enumerate(table)]


IDENTITY = ("overlap", "probabilities", "tolerance", "min_area", "dicom_voi")  # what changes the outputs


def _prepare(out: Path, record: dict[str, Any]) -> tuple[bool, bool]:
    """Make ``out``, or check it holds an earlier prediction of this model, source and settings.
    Returns (resume, created)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder; choose another --out")
    settings_file = out / SETTINGS_FILE
    if settings_file.is_file():
        try:
            earlier = json.loads(settings_file.read_text("utf-8"))
        except (ValueError, OSError):
            earlier = None
        if not isinstance(earlier, dict):
            raise InputError(
                f"{settings_file}: damaged (not the settings predict writes), so the predictions in {out} cannot be "
                "trusted; choose a new --out, or delete that folder and predict again"
            )
        differ = [k for k in record if earlier.get(k) != record[k]]
        if differ:
            raise InputError(
                f"--out {out}: holds predictions of another {' and '.join(differ)}; choose a new --out "
                "(or give the same run, images and settings to finish it)"
            )
        remove_dead_temporaries(out)  # files a killed run was writing
        return True, False
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"--out {out}: not empty; choose a new --out (the input is never written to)")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(settings_file, json.dumps(record, indent=1))
    except OSError as error:
        raise InputError(f"--out {out}: cannot write there ({error.strerror}); choose a folder you can write to") from None
    return False, created


def _file_digest(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(item: PredictInput, dicom_voi: bool, needs: Callable[[int, int], int] | None = None) -> np.ndarray:
    """The image's pixels; first, from its header, the refusal of one that cannot fit in memory
    (``needs``: bytes for a width and height, see predict/memory.py)."""
    if item.path is None:
        raise InputError(item.problem or f"{item.name}: image not found")
    if item.entry is not None and item.entry.rotation:
        raise InputError(
            f"QuPath shows this image turned {item.entry.rotation} degrees (a rotated image server); "
            "predict does not write rotated entries yet: remove the rotation in QuPath, or predict the image file"
        )
    if needs is not None:
        from mammotools.images import read_image_size
        from mammotools.predict import memory

        width, height = read_image_size(item.path)
        memory.check_fits(item.path, width, height, needs(width, height), memory.available_bytes())
    return read_image(item.path, voi=dicom_voi)


def predict_images(
    run: str | Path,
    source: str | Path,
    out: str | Path,
    settings: PredictSettings | None = None,
    on_image: Callable[[str], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> PredictSummary:
    """Predict every image of ``source`` with the run's final model into ``out`` (layout above).

    An image that cannot be read or written fails alone (``summary.failed``); a run in which
    every image fails raises, and leaves no ``out`` it created."""
    from mammotools.runner import scheduler_address
    from mammotools.train import final_model, run_normalization, stage_window

    start = time.perf_counter()
    settings = settings or PredictSettings()
    run, out = Path(run), Path(out)
    address = scheduler_address()
    if address:  # the workers run elsewhere: every path they see is absolute
        run, source, out = run.resolve(), Path(source).resolve(), out.resolve()
        if settings.images_dir:
            settings = replace(settings, images_dir=str(Path(settings.images_dir).resolve()))
    description, best, config = final_model(run)
    classes = run_classes(run, description)
    inputs = find_inputs(source, settings.images_dir, out.resolve())
    if inputs.project is not None:
        project_dir = inputs.project.resolve()
        if out.resolve() == project_dir or out.resolve().is_relative_to(project_dir):
            raise InputError(f"--out {out}: is in the input project; predictions go into a new folder, never into the input")
    spec = ModelSpec(
        run=run.resolve(),
        stage=description["stages"][-1],
        digest=_file_digest(run / "stages" / description["stages"][-1] / "best.pt"),  # sha1: the weights used
        classes=tuple(classes),
        width=config.width,
        encoder=config.encoder,
        precision=config.precision,
        scale=config.scale,
        window=stage_window(description)[0],
        out_size=stage_window(description)[1],
        normalization=run_normalization(description),
        overlap=settings.overlap if settings.overlap is not None else config.overlap,
        settings=settings,
        out=out.resolve(),
    )
    job = None if address else spec.job(best)  # on a cluster, each worker builds the model once
    record = {
        "run": str(run.resolve()),
        "model": spec.digest,
        "source": str(Path(source).resolve()),
        "settings": {k: v for k, v in asdict(settings).items() if k in IDENTITY},
    }
    resume, created = _prepare(out, record)
    summary = PredictSummary(out)
    todo = []
    slugs = [c.slug for c in classes] if settings.probabilities else None
    for item in inputs.images:
        if resume and complete_record(out, item.name, slugs) is not None:
            summary.skipped.append(item.name)  # its record, and its outputs checked whole
        else:
            if resume and item.path is not None:  # (an image not found now keeps what an earlier run made)
                forget_prediction(out, item.name)  # deleted, cut short or damaged since: redone
            todo.append(item)
    if on_plan:
        on_plan(len(todo), len(summary.skipped))

    written = [time.perf_counter()]

    def done(item: PredictInput, result: Any, error: str | None) -> None:
        if error is None:
            summary.done.append(item.name)
            if time.perf_counter() - written[0] >= PROJECT_SECONDS:  # the project opens at any point of a long run
                write_prediction_project(out, inputs.images, classes)
                written[0] = time.perf_counter()
        else:
            summary.failed[item.name] = " ".join(error.split())[:300]
        if on_image:
            on_image(item.name)

    try:
        if job is None:
            from mammotools.cluster import run_on_cluster
            from mammotools.runner import call_checked, init_worker

            run_on_cluster(str(address), predict_on_worker, todo, (spec,), done, call_checked, init_worker)
        else:
            _predict_here(job, todo, settings, done)
    except BaseException:  # stopped (out of GPU memory, a worker's fault, the cluster lost, Ctrl-C): keep what is complete
        if created and not any((out / "records").glob("*.json")):
            shutil.rmtree(out, ignore_errors=True)
        elif summary.done:
            write_prediction_project(out, inputs.images, classes)
        raise
    for item in inputs.images:
        if item.path is None and item.name not in summary.failed:
            summary.failed[item.name] = item.problem or "image not found"
    if not summary.done and not summary.skipped:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            (out / SETTINGS_FILE).unlink(missing_ok=True)
        name, why = next(iter(summary.failed.items()))
        more = f" (and {len(summary.failed) - 1} other image(s) failed too)" if len(summary.failed) > 1 else ""
        raise InputError(f"no image could be predicted; {name}: {why}{more}")
    finish(out, inputs.images, classes, summary)
    summary.seconds = time.perf_counter() - start
    return summary


def _predict_here(job: _Job, todo: list[PredictInput], settings: PredictSettings, done: Callable) -> None:
    """Each image in this process, the next ones decoded on threads meanwhile."""
    with ThreadPoolExecutor(max(1, settings.workers)) as pool:
        ahead: dict[int, Future[np.ndarray]] = {}
        for i, item in enumerate(todo):
            for j in range(i, min(i + 1 + max(1, settings.workers), len(todo))):  # decode the next images meanwhile
                if j not in ahead:
                    ahead[j] = pool.submit(_read, todo[j], settings.dicom_voi, job.bytes_needed)
            try:
                job.predict(item, ahead.pop(i).result())
                done(item, None, None)
            except (InputError, OSError, ValueError) as error:
                if isinstance(error, OSError) and error.errno in STOPPING_ERRNOS:
                    raise  # every image after it would fail the same way: the run stops, what is complete kept
                done(item, None, _failure(error))


def _failure(error: Exception) -> str:
    """One image's failure, as its line in the summary."""
    return str(error.strerror if isinstance(error, OSError) and error.strerror else error)


@dataclass(frozen=True)
class ModelSpec:
    """What a process needs to predict with the run: plain data, sent to each Dask worker, which
    builds the model from the run's files (storage every worker sees) once and keeps it."""

    run: Path
    stage: str
    digest: str  # sha1 of the stage's best.pt: a worker that sees other weights refuses
    classes: tuple[RegionClass, ...]
    width: float
    encoder: str
    precision: str
    scale: float
    window: int
    out_size: int
    overlap: float
    settings: PredictSettings
    out: Path
    normalization: str = "paper"  # how the run's model is fed (models.inputs)

    def job(self, best: dict[str, Any] | None = None) -> _Job:
        """The model on this process's device (``best``: the checkpoint, read already)."""
        from mammotools.models import build_model, with_input_normalization
        from mammotools.train import start_runtime

        if best is None:
            from mammotools.train import final_model

            weights = self.run / "stages" / self.stage / "best.pt"
            if not weights.is_file() or _file_digest(weights) != self.digest:
                raise InputError(
                    f"{weights}: {'missing' if not weights.is_file() else 'not the weights this prediction started with'} "
                    "here (changed since, or another file at that path on this machine); every worker must see the run "
                    "at the same path, unchanged, on shared storage (a run retrained since predicts into a new --out)"
                )
            best = final_model(self.run, self.stage)[1]
        runtime = start_runtime(self.settings.device, self.precision)
        model = build_model(self.stage, len(self.classes), width=self.width, encoder=self.encoder)
        model.load_state_dict(best["model"])
        model = with_input_normalization(model, self.normalization).to(runtime.device)
        model.eval()
        return _Job(
            model, runtime, list(self.classes), self.scale, self.window, self.out_size, self.overlap, self.settings, self.out
        )


_worker_jobs: dict[str, _Job] = {}  # a Dask worker's models, kept between images: the last WORKER_MODELS used
_worker_lock = threading.Lock()  # one image at a time per worker process, whatever its thread count
WORKER_MODELS = 2  # two predictions sharing a cluster do not rebuild their models image after image


def predict_on_worker(item: PredictInput, spec: ModelSpec) -> str:
    """One image's outputs, on a Dask worker (the model built on its first image).

    A worker that cannot build the model (the run missing or changed there, no GPU for
    ``--device cuda``) raises :class:`~mammotools.cluster.WorkerProblem`, which stops the run:
    otherwise it would fail image after image, quickly, while the others work."""
    import socket

    from mammotools.cluster import WorkerProblem

    key = repr(spec)  # every field, settings included: plain data
    with _worker_lock:  # the model is shared by the worker's threads: eval mode, one forward pass at a time
        job = _worker_jobs.pop(key, None)
        if job is None:
            while len(_worker_jobs) >= WORKER_MODELS:
                del _worker_jobs[next(iter(_worker_jobs))]  # the least recently used, freed before the next is built
            try:
                job = spec.job()
            except MammoError as exc:
                raise WorkerProblem(f"Dask worker on {socket.gethostname()}: {exc}") from None
        _worker_jobs[key] = job  # now the most recently used
        try:
            job.predict(item, _read(item, spec.settings.dicom_voi, job.bytes_needed))
        except (OSError, ValueError) as error:
            raise InputError(_failure(error)) from None
    return item.name


class _Job:
    """The model and the settings, applied to one image at a time."""

    def __init__(
        self, model: Any, runtime: Any, classes: list[RegionClass], scale: float, window: int, out_size: int,
        overlap: float, settings: PredictSettings, out: Path,
    ) -> None:  # fmt: skip
        self.model, self.runtime, self.classes, self.scale = model, runtime, classes, scale
        self.window, self.out_size, self.overlap, self.settings, self.out = window, out_size, overlap, settings, out
        self.palette = ClassTable(classes, source="run").palette()
        self.to_values = np.asarray([c.label for c in classes], np.uint8)
        self.traced = [(c.name, i, c.color) for i, c in enumerate(classes) if i > 0 or len(classes) == 1]  # 0: background

    def bytes_needed(self, width: int, height: int) -> int:
        """Memory to predict an image of that size (a 16-bit grey mammogram), see predict/memory.py."""
        from mammotools.predict.memory import bytes_needed

        return bytes_needed(width, height, 1, 2, len(self.classes), self.settings.probabilities, self.scale)

    def predict(self, item: PredictInput, pixels: np.ndarray) -> None:
        """Every output of one image; the record, written last, marks it complete."""
        import torch

        from mammotools.data import OUTSIDE_IMAGE, resize_image, scale_image
        from mammotools.inference import RowSource, label_map_by_strips, resized_strips, sliding_window_strips

        t = time.perf_counter()
        out, settings, classes = self.out, self.settings, self.classes
        kept, kept_classes, notes = kept_features(item)  # a damaged annotation file fails this image before anything is written
        size, bits = pixels.shape[:2], image_bits(pixels)
        small = resize_image(pixels, self.scale)
        small_size = small.shape[:2]
        del pixels

        def rows(a: int, b: int, image: np.ndarray = small) -> torch.Tensor:
            return torch.from_numpy(scale_image(image[a:b], bits))

        del small  # held by rows alone: freed with it once the label map is made
        # bounded memory: the image read, blended and reduced a band of rows at a time (inference/strips.py)
        source = RowSource((3, *small_size), rows)
        try:
            strips = sliding_window_strips(
                self.model, source, len(classes), self.window, self.out_size, self.overlap, settings.batch_size,
                self.runtime.device, self.runtime.amp_dtype, OUTSIDE_IMAGE,
            )  # fmt: skip
            bands = resized_strips(strips, small_size, size)
            kept_map = label_map_by_strips(bands, len(classes), size, settings.probabilities)
        except torch.OutOfMemoryError:
            raise ResourceError(
                f"the model ran out of GPU memory at {settings.batch_size} window(s) per pass on {item.name}; "
                f"lower --window-batch (e.g. --window-batch {max(1, settings.batch_size // 2)}) and rerun with the same --out, "
                "or use --device cpu"
            ) from None
        del source, strips, bands, rows
        label = kept_map.label
        atomic_write_bytes(out / "labels" / f"{item.name}.png", encode_label_png(self.to_values[label], self.palette))
        if kept_map.probabilities is not None:
            for c_index, c in enumerate(classes):
                eight = kept_map.probabilities[c_index]
                atomic_write_bytes(out / "probabilities" / item.name / f"{c.slug}.png", encode_png(eight))
            kept_map.probabilities = None
            del eight
        predicted = label_map_features(label, self.traced, kept_map.confidence, settings.tolerance, settings.min_area, item.name)
        write_annotations(out, f"{item.name}.png", kept + predicted)  # annotations/<name>.geojson
        shapes: dict[str, int] = {}
        for f in predicted:
            name = f["properties"]["classification"]["name"]
            shapes[name] = shapes.get(name, 0) + 1
        image_record = {
            "name": item.name,
            "image": str(Path(item.path).resolve()) if item.path else "",
            "width": size[1],
            "height": size[0],
            "pixels": {c.name: int((label == i).sum()) for i, c in enumerate(classes)},
            "shapes": shapes,
            "kept": len(kept),
            "kept_classes": kept_classes,  # the output's classes.json lists them too
            "notes": notes,
            "seconds": time.perf_counter() - t,
        }
        atomic_write_text(out / "records" / f"{item.name}.json", json.dumps(image_record, indent=1))

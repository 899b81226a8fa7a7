"""Planning an export: everything checked before a file is written.

:func:`plan_export` reads every annotation file in this process and checks what can be checked
(unknown classes, missing images, names, earlier outputs), so a mistake stops the run before any
file is written; an image whose own files are unreadable fails alone. The result is an
:class:`ExportPlan`: :class:`ImageJob` items, plain data a worker process turns into outputs
(image.py).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from shapely import to_wkb
from shapely.geometry.base import BaseGeometry

from mammotools.annotations import clip_to_image, repair_geometry
from mammotools.classes import ClassTable, normalize_name
from mammotools.defaults import DEFAULT_POINT_RADIUS, DEFAULT_SIGMA, MAX_POINT_RADIUS, MAX_SIGMA
from mammotools.errors import InputError, MammoError, MissingFileError, printable
from mammotools.files import image_stem, safe_file_name
from mammotools.images import name_problem
from mammotools.locate import ImageIndex, distinct_names
from mammotools.qupath import SourceImage, nothing_to_read, open_source, read_annotations
from mammotools.records import EXPORT_RECORD, pngs_complete, read_record

SUBJECT_KEYS = ("subject", "patient", "patient_id", "patientid", "subject_id")
MAX_LISTED = 8  # how many names an error message lists before "..."
MAX_NAME_BYTES = 200  # output names + ".png" + the temporary suffix must stay under 255 bytes


@dataclass(frozen=True)
class ExportSettings:
    """How annotations become maps; each default is the one documented in masks.py."""

    sigma: float = DEFAULT_SIGMA
    point_radius: float = DEFAULT_POINT_RADIUS
    class_map: tuple[tuple[str, str], ...] = ()  # (annotation class, table class) from --map
    ignore: tuple[str, ...] = ()  # annotation classes to leave out (--ignore)
    dicom_voi: bool = True  # apply a DICOM's VOI window/LUT (method: images.read_image)


@dataclass
class ImageJob:
    """One image to export: everything a worker needs, checked and picklable."""

    name: str  # output stem: the image file's stem
    source_image: SourceImage  # where it came from (the project entry or export file)
    image_path: Path
    subject: str
    width: int
    height: int
    geometries: dict[str, list[BaseGeometry]]  # table class name -> geometries
    fingerprint: str
    warnings: list[str] = field(default_factory=list)


def subject_of(image: SourceImage, name: str) -> str:
    """The image's subject (patient): a project metadata value if present, else the image name
    without view and laterality tokens (split.subject_from_name)."""
    from mammotools.split import subject_from_name

    lowered = {k.lower().replace(" ", "_"): v for k, v in image.metadata.items()}
    for key in SUBJECT_KEYS:
        if lowered.get(key):
            return lowered[key]
    return subject_from_name(name)


@dataclass
class ExportPlan:
    """What an export will do, decided before any file is written."""

    todo: list[ImageJob] = field(default_factory=list)  # images to (re)export
    done: list[ImageJob] = field(default_factory=list)  # outputs complete and current: skipped
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, why): an image whose file is unreadable
    not_annotated: list[str] = field(default_factory=list)  # images without any annotation file
    warnings: list[str] = field(default_factory=list)


def plan_export(
    source_path: Path,
    out: Path,
    images_dir: Path | None,
    table: ClassTable,
    settings: ExportSettings,
    overwrite: bool = False,
    reader: str = "auto",
) -> ExportPlan:
    """Check the whole input and decide what to do; raise :class:`InputError` for a mistake in it."""
    source = open_source(source_path, reader)
    nothing = nothing_to_read(source, reader)
    if nothing:
        raise InputError(nothing)
    exclude = out.resolve()  # a dataset inside the image folder must not be searched for images
    indexes: dict[Path | None, ImageIndex] = {images_dir: ImageIndex(images_dir, exclude)}
    plan = ExportPlan()
    targets = _class_targets(table, settings)
    unknown: dict[str, set[str]] = {}
    seen: dict[str, str] = {}  # normalized -> a class name of the annotations read
    missing: list[str] = []
    missing_in: set[Path | None] = set()  # the folders searched for them
    jobs: list[ImageJob] = []
    for image in source.images:
        if image.reader is None:
            plan.not_annotated.append(image.name)
            plan.warnings.extend(f"{image.name}: {p}; not exported" for p in image.problems)
            continue
        folder = images_dir
        if images_dir is None and source.kind != "project" and image.annotation_path is not None:
            folder = image.annotation_path.parent  # exports beside their images
        if folder not in indexes:
            indexes[folder] = ImageIndex(folder, exclude)
        image_path = indexes[folder].find(image.name, image.image_path_hint)
        if image_path is None:
            missing.append(image.name)
            missing_in.add(folder)
            continue
        problem = name_problem(image_path)  # its outputs, records and manifest are named after it
        if problem:
            plan.failed.append((printable(image_stem(image_path.name)), problem))
            continue
        try:
            jobs.append(_plan_image(image, image_path, table, targets, settings, unknown, seen))
        except MammoError as exc:  # this image's file is unreadable: it fails alone
            plan.failed.append((image_stem(image_path.name), str(exc)))
    if unknown:
        raise InputError(_unknown_message(unknown, table))
    if missing:
        if images_dir:
            where = f"in {images_dir}"
        elif source.kind == "project":
            where = "at the paths the project records (pass --images FOLDER)"
        else:
            folders = sorted({str(f) for f in missing_in if f is not None})
            where = f"beside the GeoJSON export(s) in {', '.join(folders)} (pass --images FOLDER: the folder holding the images)"
        listed = ", ".join(missing[:MAX_LISTED]) + (" ..." if len(missing) > MAX_LISTED else "")
        raise MissingFileError(f"{len(missing)} image file(s) not found {where}: {listed}")
    if not plan.failed:  # every annotation was read: a class no annotation has is a typo
        _check_named_classes(settings, table, seen)
    _disambiguate(jobs)
    _check_names(jobs)
    plan.todo, plan.done = _split_done(jobs, out, overwrite)
    for job in plan.todo:  # images already done had their warnings shown when they were exported
        plan.warnings.extend(f"{job.name}: {w}" for w in job.warnings)
    return plan


def check_settings(settings: ExportSettings) -> None:
    if not (math.isfinite(settings.sigma) and 0 <= settings.sigma <= MAX_SIGMA):
        raise InputError(f"sigma {settings.sigma}: give 0..{MAX_SIGMA:g} px (0 turns smoothing off)")
    if not (math.isfinite(settings.point_radius) and 0.5 <= settings.point_radius <= MAX_POINT_RADIUS):
        raise InputError(f"point radius {settings.point_radius}: give 0.5..{MAX_POINT_RADIUS:g} px")


def _class_targets(table: ClassTable, settings: ExportSettings) -> dict[str, str | None]:
    """Normalized annotation class name -> table class name (None = ignore), from --map/--ignore."""
    targets: dict[str, str | None] = {}
    for src, dst in settings.class_map:
        found = table.find(dst)
        if found is None:
            raise InputError(f"--map {src}={dst}: {dst!r} is not a class of the table ({', '.join(table.names)})")
        key = normalize_name(src)
        if targets.get(key, found.name) != found.name:
            raise InputError(f"--map {src}={dst}: {src!r} is already mapped to {targets[key]!r}; map each class once")
        targets[key] = found.name
    for name in settings.ignore:
        if targets.get(normalize_name(name)) is not None:
            raise InputError(f"--ignore {name!r}: the class is also given to --map; keep one of the two")
        targets[normalize_name(name)] = None
    return targets


def _plan_image(
    image: SourceImage,
    image_path: Path,
    table: ClassTable,
    targets: dict[str, str | None],
    settings: ExportSettings,
    unknown: dict[str, set[str]],
    seen: dict[str, str],
) -> ImageJob:
    from mammotools.images import read_image_size

    name = image_stem(image_path.name)
    if image.width is None or image.height is None:
        width, height = read_image_size(image_path)
    else:
        width, height = image.width, image.height
    job = ImageJob(
        name=name,
        source_image=image,
        image_path=image_path,
        subject=subject_of(image, name),
        width=width,
        height=height,
        geometries={},
        fingerprint="",
    )
    ignored = {found.name for found in map(table.find, settings.ignore) if found is not None}
    objects = read_annotations(image)
    others = sum(1 for a in objects if not a.is_annotation)
    if others:
        job.warnings.append(f"{others} detection/cell/other object(s) in {image.annotation_path} left out (annotations only)")
    unclassified = 0
    for ann in (a for a in objects if a.is_annotation):
        if ann.class_name is None:
            unclassified += 1
            continue
        key = normalize_name(ann.class_name)
        seen.setdefault(key, ann.class_name)
        if key in targets:
            target = targets[key]
        else:
            region = table.find(ann.class_name)
            target = region.name if region else None
            if region is None:
                unknown.setdefault(ann.class_name, set()).add(str(image.annotation_path))
                continue
        if target is None or target in ignored:  # --ignore names a table class by any of its names
            continue
        if ann.malformed:
            raise InputError(
                f"{ann.source}: {ann.describe()}: {ann.problems[0]}; this image is not exported "
                f"(or leave the class out with --ignore '{ann.class_name}')"
            )
        repair_geometry(ann)
        clip_to_image(ann, width, height)
        job.warnings.extend(f"{ann.source}: {ann.describe()}: {p}" for p in ann.problems)
        if not ann.geometry.is_empty:
            job.geometries.setdefault(target, []).append(ann.geometry)
    if unclassified:
        job.warnings.append(
            f"{unclassified} unclassified annotation(s) in {image.annotation_path} left out; "
            "give them a class in QuPath to include them"
        )
    job.fingerprint = _fingerprint(job, table, settings)
    return job


def _fingerprint(job: ImageJob, table: ClassTable, settings: ExportSettings) -> str:
    """Hash of everything an image's outputs depend on, to tell stale outputs from complete ones."""
    h = hashlib.sha256()
    stat = job.image_path.stat()
    # the image file's size and modification time stand for its content (as make does)
    inputs = [table.to_json(), settings.sigma, settings.point_radius, settings.dicom_voi]
    h.update(json.dumps([*inputs, job.image_path.name, stat.st_size, stat.st_mtime_ns]).encode())
    for cls in sorted(job.geometries):
        h.update(cls.encode())
        for g in job.geometries[cls]:
            h.update(to_wkb(g))
    return h.hexdigest()


def _check_named_classes(settings: ExportSettings, table: ClassTable, seen: dict[str, str]) -> None:
    """--ignore CLASS must name a class of the table or of the annotations, --map CLASS=... a class
    of the annotations: a typo is refused, not silently accepted."""
    found = ", ".join(sorted(seen.values())) or "none"
    for name in settings.ignore:
        if normalize_name(name) not in seen and table.find(name) is None:
            raise InputError(
                f"--ignore {name!r}: no annotation has this class and the class table has none of that name "
                f"(annotation classes: {found}); check the spelling"
            )
    for src, dst in settings.class_map:
        if normalize_name(src) not in seen:
            raise InputError(
                f"--map {src}={dst}: no annotation has class {src!r} (annotation classes: {found}); check the spelling"
            )


def _unknown_message(unknown: dict[str, set[str]], table: ClassTable) -> str:
    parts = []
    for cls, files in sorted(unknown.items()):
        listed = ", ".join(sorted(files)[:3]) + (" ..." if len(files) > 3 else "")
        parts.append(f"{cls!r} (in {listed})")
    first = sorted(unknown)[0]
    return (
        f"unknown annotation class(es): {'; '.join(parts)}. Known classes: {', '.join(table.names)}. "
        f"Map one with --map '{first}=<known class>', leave it out with --ignore '{first}', "
        "or pass --classes FILE with your own class table"
    )


def _disambiguate(jobs: list[ImageJob]) -> None:
    """Images whose stems collide (CBIS-DDSM's many ``1-1.dcm``) get a folder name in front."""
    names = distinct_names([j.image_path for j in jobs], {j.image_path: j.name for j in jobs})
    for job in jobs:
        new = safe_file_name(names[job.image_path])
        if new != job.name:
            job.warnings.append(f"named {new!r}: other images are also called {job.name!r}")
            if job.subject == subject_of(job.source_image, job.name):  # the subject came from the name
                job.subject = subject_of(job.source_image, new)
            job.name = new


def _check_names(jobs: list[ImageJob]) -> None:
    seen: dict[str, ImageJob] = {}
    for job in jobs:
        if not job.name or job.name in (".", "..") or "/" in job.name or "\\" in job.name:
            raise InputError(f"{job.image_path}: cannot use {job.name!r} as an output name; rename the file")
        if len(job.name.encode("utf-8")) > MAX_NAME_BYTES:
            raise InputError(
                f"{job.image_path}: the file name is longer than {MAX_NAME_BYTES} bytes, too long for the output "
                "file names (and their temporaries); rename the file"
            )
        other = seen.get(job.name)
        if other is not None:
            raise InputError(
                f"images {other.image_path} and {job.image_path} both give the output name {job.name!r}; "
                "rename one (outputs are named by the image file's stem)"
            )
        seen[job.name] = job


def _split_done(jobs: list[ImageJob], out: Path, overwrite: bool) -> tuple[list[ImageJob], list[ImageJob]]:
    """Separate images whose outputs are complete and current from those to (re)do.

    Outputs made from other annotations, images or settings are not replaced without
    ``overwrite``; outputs left incomplete by an interrupted run are simply redone.
    """
    todo, done, stale = [], [], []
    for job in jobs:
        record = read_record(out, job.name, EXPORT_RECORD)
        if record is None or overwrite:
            todo.append(job)
        elif record.get("fingerprint") != job.fingerprint:
            stale.append(job.name)
        elif _outputs_present(out, record):
            done.append(job)
        else:
            todo.append(job)
    if stale:
        listed = ", ".join(stale[:MAX_LISTED]) + (" ..." if len(stale) > MAX_LISTED else "")
        raise InputError(
            f"{out}: outputs of {len(stale)} image(s) were made from other annotations, images or settings "
            f"({listed}); pass --overwrite to replace them, or choose another --out"
        )
    return todo, done


def _outputs_present(out: Path, record: dict) -> bool:
    """Every output of the record there and whole (a PNG cut short by a crash is redone)."""
    name = record["name"]
    paths = [out / "images" / f"{name}.png", out / "labels" / f"{name}.png"]
    paths += [out / "masks" / name / f"{slug}.png" for slug in record.get("regions", [])]
    return pngs_complete(paths)

"""``import-mias``: the mini-MIAS ``Info.txt`` -> a QuPath project with lesion annotations.

Each ``Info.txt`` line: reference (``mdb001``), background tissue (F/G/D), class (CALC, CIRC,
SPIC, MISC, ARCH, ASYM, NORM), severity (B/M), centre x, y and radius in pixels. The mapping
(documented, changeable with ``--map CLASS=Region`` or ``--map CLASS=ignore``):

* CIRC, SPIC, MISC, ARCH, ASYM (masses, distortions, asymmetries) -> a Tumor disc;
* CALC -> a Calcifications disc (centre and radius of the cluster, as the database gives them);
* NORM -> nothing.

The database's origin is the **bottom-left** corner: a centre (x, y) is QuPath's
(x, height - y). Discs are polygons whose vertices lie on the circle, with enough of them that
the polygon is within 0.05 px of the circle. An image can have two lesions (two lines, two
annotations). A line without a centre (calcifications spread over the whole breast) is kept as an
image-level note (the entry's description and ``mias_notes`` metadata), not an invented shape.
Lines whose image is not in ``--images`` are counted and reported. Consecutive images are the
left and right breasts of one woman: ``mdb001`` and ``mdb002`` get the subject ``mias_p001``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import shapely

from mammotools.classes import ClassTable
from mammotools.errors import InputError, MissingFileError
from mammotools.files import atomic_path, remove_dead_siblings

DEFAULT_MAPPING = {
    "CIRC": "Tumor",
    "SPIC": "Tumor",
    "MISC": "Tumor",
    "ARCH": "Tumor",
    "ASYM": "Tumor",
    "CALC": "Calcifications",
    "NORM": None,
}
CLASS_NAMES = {
    "CALC": "calcification",
    "CIRC": "circumscribed mass",
    "SPIC": "spiculated mass",
    "MISC": "ill-defined mass",
    "ARCH": "architectural distortion",
    "ASYM": "asymmetry",
    "NORM": "normal",
}
SEVERITY = {"B": "benign", "M": "malignant"}
DISC_TOLERANCE = 0.05  # px: largest distance between a disc polygon and its circle
LINE = re.compile(r"(mdb\d{3})\s+([FGD])\s+([A-Z]{4})(?:\s+([BM]))?(?:\s+(\d+)\s+(\d+)\s+(\d+))?(?:\s+\*NOTE \d+\*)?")


MAX_RADIUS = 4096  # px: MIAS images are 1024 x 1024; anything past this is a typo, not a lesion


@dataclass
class MiasEntry:
    """One Info.txt line."""

    ref: str
    tissue: str
    abnormality: str
    severity: str | None
    x: int | None
    y: int | None
    radius: int | None
    line: int

    @property
    def label(self) -> str:
        """``"spiculated mass (malignant)"``."""
        sev = f" ({SEVERITY[self.severity]})" if self.severity else ""
        return CLASS_NAMES[self.abnormality] + sev


@dataclass
class MiasSummary:
    out: Path
    images: list[str] = field(default_factory=list)
    annotations: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # images with lesions kept as notes (no centre)
    missing_images: list[str] = field(default_factory=list)
    complete: bool = False  # --out held this very import already: nothing was written


def parse_info(path: Path) -> list[MiasEntry]:
    """The abnormality lines of ``Info.txt`` (header text and blank lines skipped)."""
    if path.is_dir():
        inside = next((p for p in sorted(path.iterdir()) if p.name.lower() == "info.txt"), None)
        hint = f": give {inside}" if inside else " holding no Info.txt; give the mini-MIAS Info.txt file"
        raise InputError(f"{path}: a folder{hint}")
    if not path.is_file():
        raise MissingFileError(f"{path}: not found; give the mini-MIAS Info.txt file")
    entries = []
    for number, text in enumerate(path.read_text("latin-1").splitlines(), start=1):
        if not text.startswith("mdb"):
            continue
        m = LINE.fullmatch(text.strip())  # the whole line: a lost radius or stray text is an error
        if m is None:
            raise InputError(
                f"{path}:{number}: cannot read {text.strip()!r}; expected 'mdbNNN TISSUE CLASS [B|M] [x y radius]' "
                "(x, y and radius together, or none of them)"
            )
        ref, tissue, abnormality, severity, x, y, radius = m.groups()
        if abnormality not in CLASS_NAMES:
            raise InputError(f"{path}:{number}: unknown class {abnormality!r}; known: {', '.join(CLASS_NAMES)}")
        as_int = lambda v: int(v) if v is not None else None  # noqa: E731
        if radius is not None and int(radius) == 0:
            raise InputError(f"{path}:{number}: radius 0 for {ref}; a lesion needs a radius of at least 1 pixel")
        if radius is not None and int(radius) > MAX_RADIUS:
            raise InputError(
                f"{path}:{number}: radius {int(radius):,} px for {ref}, larger than the image (MIAS images are 1024 px); "
                "fix the line"
            )
        entries.append(MiasEntry(ref, tissue, abnormality, severity, as_int(x), as_int(y), as_int(radius), number))
    if not entries:
        raise InputError(f"{path}: no 'mdbNNN ...' lines; is this the mini-MIAS Info.txt?")
    return entries


def parse_mapping(pairs: tuple[tuple[str, str], ...], table: ClassTable) -> dict[str, str | None]:
    """DEFAULT_MAPPING changed by ``--map CLASS=Region`` / ``CLASS=ignore``, checked against the table."""
    mapping: dict[str, str | None] = dict(DEFAULT_MAPPING)
    region: str | None  # a --map target below, then a mapping value (None: ignored)
    for abnormality, region in pairs:
        key = abnormality.upper()
        if key not in CLASS_NAMES:
            raise InputError(f"--map {abnormality}={region}: {abnormality!r} is not a MIAS class ({', '.join(CLASS_NAMES)})")
        mapping[key] = None if region.lower() == "ignore" else region
    for key, region in mapping.items():
        if region is not None:
            found = table.find(region)
            if found is None:
                raise InputError(f"--map {key}={region}: {region!r} is not a class of the table ({', '.join(table.names)})")
            mapping[key] = found.name
    return mapping


def disc(x: float, y: float, radius: float) -> shapely.Polygon:
    """A polygon inscribed in the circle, within DISC_TOLERANCE px of it."""
    if radius <= DISC_TOLERANCE:
        n = 8
    else:
        n = max(16, math.ceil(math.pi / math.acos(1 - DISC_TOLERANCE / radius)))
    angles = [2 * math.pi * i / n for i in range(n)]
    return shapely.Polygon([(x + radius * math.cos(a), y + radius * math.sin(a)) for a in angles])


def subject_of(ref: str) -> str:
    """Consecutive films are one woman's left and right breasts: mdb001, mdb002 -> mias_p001."""
    number = int(ref[3:])
    return f"mias_p{(number + 1) // 2:03d}"


def import_mias(
    info: str | Path,
    images_dir: str | Path,
    out: str | Path,
    table: ClassTable,
    mapping: dict[str, str | None],
    overwrite: bool = False,
) -> MiasSummary:
    """Write a QuPath project (layout of qupath/writer.py) from Info.txt and the images.

    A rerun into a project this import wrote from the same files and settings writes nothing
    (``summary.complete``); other inputs or settings are refused unless ``overwrite``."""
    import json

    from mammotools.qupath import check_new_project, file_stamps, write_import_record

    info, images_dir, out = Path(info), Path(images_dir), Path(out)
    if not images_dir.is_dir():
        raise MissingFileError(f"{images_dir}: not a folder; give --images the folder of mdbNNN.pgm files")
    entries = parse_info(info)
    by_ref: dict[str, list[MiasEntry]] = {}
    for e in entries:
        by_ref.setdefault(e.ref, []).append(e)
    present = [p for ref in by_ref for p in (images_dir / f"{ref}.pgm", images_dir / f"{ref}.png") if p.is_file()]
    recorded = {
        "command": "import-mias",
        "info": str(info.resolve()),
        "images": str(images_dir.resolve()),
        "classes": json.loads(table.to_json()),
        "map": dict(sorted(mapping.items())),
        "files": file_stamps([info, *present]),
    }
    summary = MiasSummary(out)
    earlier = check_new_project(out, recorded, overwrite)
    if earlier is not None:
        summary.complete, summary.images = True, list(earlier.get("images") or [])
        summary.annotations = dict(earlier.get("annotations") or {})
        return summary
    remove_dead_siblings(out)  # what a killed import left beside it
    with atomic_path(out) as tmp:  # the whole project appears at once, or not at all
        _write_mias(by_ref, images_dir, tmp, table, mapping, summary, out)
        write_import_record(tmp, recorded, summary.images, summary.annotations)
    return summary


def _write_mias(
    by_ref: dict[str, list[MiasEntry]],
    images_dir: Path,
    out: Path,
    table: ClassTable,
    mapping: dict[str, str | None],
    summary: MiasSummary,
    final: Path,
) -> None:
    from mammotools.images import read_image_size
    from mammotools.qupath import annotation_feature, project_entry, write_annotations, write_project

    project_entries: list[dict] = []
    for ref, lines in by_ref.items():
        image = next((p for p in (images_dir / f"{ref}.pgm", images_dir / f"{ref}.png") if p.is_file()), None)
        if image is None:
            summary.missing_images.append(ref)
            continue
        width, height = read_image_size(image)
        features, notes = [], []
        for e in lines:
            region = mapping.get(e.abnormality)
            if region is None:
                continue
            if e.x is None or e.y is None or e.radius is None:
                notes.append(f"{e.label}: no centre given (spread over the image), Info.txt line {e.line}")
                continue
            if not (0 <= e.x <= width and 0 <= e.y <= height):
                raise InputError(
                    f"{e.ref}: Info.txt line {e.line} puts the centre at ({e.x}, {e.y}), outside the "
                    f"{width}x{height} image; fix the line"
                )
            shape = disc(e.x, height - e.y, e.radius)
            features.append(annotation_feature(shape, region, table, f"{ref}/{e.line}", name=e.label))
            summary.annotations[region] = summary.annotations.get(region, 0) + 1
        if notes:
            summary.notes.append(ref)
        write_annotations(out, image.name, features)
        metadata = {"subject": subject_of(ref), "mias_tissue": lines[0].tissue}
        if notes:
            metadata["mias_notes"] = "; ".join(notes)
        project_entries.append(project_entry(len(project_entries) + 1, image, metadata, "; ".join(notes)))
        summary.images.append(image.name)
    if not project_entries:
        raise InputError(f"{images_dir}: none of the {len(by_ref)} images Info.txt lists is here (mdbNNN.pgm)")
    write_project(out, project_entries, table, final)

"""One object read from QuPath (:class:`Annotation`: class, shapely geometry) and its validation.

Geometry contract: shapely geometry in pixel coordinates of the full-resolution image, x to
the right, y down, pixel (row r, column c) covering [c, c+1) x [r, r+1) (QuPath's convention).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import shapely
from shapely.geometry.base import BaseGeometry

ANNOTATION = "annotation"
PREDICTION_NAME = "mammotools prediction"  # the name predict gives the shapes it writes, then a hash of the shape
_PREDICTION_PATTERN = re.compile(rf"^{PREDICTION_NAME} ([0-9a-f]{{12}})$")


@dataclass
class Annotation:
    """One object read from QuPath (GeoJSON export today; ``.qpdata`` or paquo later)."""

    geometry: BaseGeometry
    class_name: str | None  # QuPath classification, e.g. "Tumor" or "Tumor: Positive"; None = unclassified
    object_type: str = ANNOTATION  # annotation, detection, cell, tile, tmaCore
    name: str | None = None
    object_id: str | None = None
    color: tuple[int, int, int] | None = None
    locked: bool = False
    source: str = ""  # the file it was read from
    index: int = 0  # 1-based position in that file, for messages
    problems: list[str] = field(default_factory=list)
    malformed: bool = False  # the geometry could not be read at all (its problem says why)

    @property
    def is_annotation(self) -> bool:
        """True for annotation objects; detections, cells, tiles and TMA cores are not."""
        return self.object_type == ANNOTATION

    def describe(self) -> str:
        """``"annotation #3 'left mass' (Tumor)"`` for messages."""
        label = f"{self.object_type} #{self.index}"
        if self.name:
            label += f" {self.name!r}"
        if self.object_id:
            label += f" [id {self.object_id}]"
        return f"{label} ({self.class_name or 'Unclassified'})"


def repair_geometry(ann: Annotation) -> Annotation:
    """Make ``ann.geometry`` valid in place, recording what was done in ``ann.problems``.

    Invalid polygons (self-intersections, bad rings) are repaired with ``shapely.make_valid``;
    empty geometries are recorded as a problem (they rasterize to nothing).
    """
    geom = ann.geometry
    if ann.malformed:
        return ann  # its problem is already recorded
    if geom.is_empty:
        ann.problems.append("empty geometry (nothing to draw)")
        return ann
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        fixed = shapely.make_valid(geom)
        ann.geometry = _keep_dimension(fixed, geom.geom_type)
        ann.problems.append(f"invalid geometry ({reason}), repaired with make_valid")
    return ann


def clip_to_image(ann: Annotation, width: int, height: int) -> Annotation:
    """Clip ``ann.geometry`` to the image rectangle, recording a problem if anything was cut."""
    geom = ann.geometry
    if geom.is_empty or geom.geom_type in ("Point", "MultiPoint"):
        return ann  # a point's disc may reach into the image; rasterizing cuts it to the image
    minx, miny, maxx, maxy = geom.bounds
    if minx >= 0 and miny >= 0 and maxx <= width and maxy <= height:
        return ann
    box = shapely.box(0, 0, width, height)
    clipped = geom.intersection(box)
    ann.geometry = _keep_dimension(clipped, geom.geom_type)
    if ann.geometry.is_empty:
        ann.problems.append(f"lies entirely outside the {width}x{height} image (bounds {_fmt(geom.bounds)}); nothing drawn")
    else:
        ann.problems.append(f"extends outside the {width}x{height} image (bounds {_fmt(geom.bounds)}); clipped to the image")
    return ann


def _keep_dimension(geom: BaseGeometry, original_type: str) -> BaseGeometry:
    """Drop lower-dimensional debris (stray lines/points) that make_valid/clip can produce."""
    if not isinstance(geom, shapely.GeometryCollection):
        return geom
    dim = {"Polygon": 2, "MultiPolygon": 2, "LineString": 1, "MultiLineString": 1}.get(original_type, 0)
    parts = [g for g in geom.geoms if shapely.get_dimensions(g) == dim]
    if not parts:
        return shapely.GeometryCollection()
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]


def _fmt(bounds: tuple[float, float, float, float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in bounds) + ")"


def shape_hash(geometry: BaseGeometry, class_name: str | None) -> str:
    """12 hex digits identifying a shape and its class: its normalised rings (start vertex and
    orientation made canonical; a one-part multi-polygon as its part), coordinates rounded to
    1/100 px, so a reader's float round trip keeps it; a reclassified shape hashes otherwise."""
    if isinstance(geometry, shapely.MultiPolygon) and len(geometry.geoms) == 1:
        geometry = geometry.geoms[0]
    normal = shapely.normalize(geometry)
    try:
        rounded = shapely.set_precision(normal, 0.01)
    except shapely.errors.GEOSException:  # a shape too broken to snap: its own coordinates, rounded
        rounded = shapely.transform(normal, lambda xy: xy.round(2))
    digest = hashlib.sha1(shapely.to_wkb(rounded, hex=True).encode("ascii"))
    digest.update((class_name or "").encode("utf-8"))
    return digest.hexdigest()[:12]


def prediction_name(geometry: BaseGeometry, class_name: str) -> str:
    """The name predict gives a shape of ``class_name``: QuPath shows it; it marks the shape as predicted."""
    return f"{PREDICTION_NAME} {shape_hash(geometry, class_name)}"


def prediction_state(name: str | None, geometry: BaseGeometry, class_name: str | None) -> str | None:
    """``"untouched"`` or ``"edited"`` (reshaped or reclassified in review) for a predicted
    annotation (known by its name), None for a drawn one."""
    found = _PREDICTION_PATTERN.match(name or "")
    if found is None:
        return None
    return "untouched" if shape_hash(geometry, class_name) == found.group(1) else "edited"

"""QuPath ``data.qpdata`` read directly: a real QuPath 0.6 file, Java-written fixtures, fuzzing.

Fixtures: ``tests/qupath/java/QpdataFixture.java`` mirrors QuPath's serialization layout (class
names, serialVersionUIDs, fields, ``writeExternal`` order, ROI proxies) and writes one file per
layout QuPath has used. Its output is committed in ``tests/qupath/data/`` so the tests run without
Java; where ``javac`` is present the tests also compile and run it afresh. Regenerate with
``python tests/qupath/test_qpdata.py``.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, MultiPoint, MultiPolygon, Polygon, box

from mammotools.errors import InputError, MissingFileError
from mammotools.qupath import qpdata
from mammotools.qupath.geojson import read_geojson
from mammotools.qupath.qpdata import (
    QpdataError,
    QpdataHeader,
    read_qpdata,
    read_qpdata_header,
    read_qpdata_tree,
)

HERE = Path(__file__).resolve().parent
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
COSCIA = SHARED_DATA / "qupath" / "coscialab-0.6.0"
JAVA_SOURCES = HERE / "java"
FIXTURES = HERE / "data"
# fixture style -> (file, data version, QuPath version, server path, image type)
STYLES = {
    "0.2": ("qupath-0.2.qpdata", 2, None, "/images/slide 1.tif", "BRIGHTFIELD_H_E"),
    "0.3": ("qupath-0.3.qpdata", 3, "0.3.2", "file:/images/slide%201.tif", "FLUORESCENCE"),
    "0.6": ("qupath-0.6.qpdata", 3, "0.6.0", "file:/images/slide%201.tif", "FLUORESCENCE"),
    "4": ("data-version-4.qpdata", 4, "0.7.0", "file:/images/slide%201.tif", "FLUORESCENCE"),
}


def real(*parts: str) -> Path:
    """A path in ../shared/data, skipping the test (with the reason) where it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real QuPath data not available: {path} is absent (it sits beside the project in CI)")
    return path


def generate(out_dir: Path) -> dict[str, Path]:
    """Compile the Java fixture writer and run it for every style into ``out_dir``."""
    classes = out_dir / "classes"
    classes.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p) for p in JAVA_SOURCES.rglob("*.java"))
    subprocess.run(["javac", "-nowarn", "-d", str(classes), *sources], check=True, capture_output=True, timeout=300)
    files = {}
    for style, (name, *_) in STYLES.items():
        files[style] = out_dir / name
        subprocess.run(["java", "-cp", str(classes), "QpdataFixture", style, str(files[style])], check=True, timeout=120)
    return files


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("javac") is None or shutil.which("java") is None:
        pytest.skip("javac/java not installed: the committed fixtures in tests/qupath/data are tested instead")
    return generate(tmp_path_factory.mktemp("qpdata-java"))


def committed(style: str) -> Path:
    return FIXTURES / STYLES[style][0]


# ---------------------------------------------------------------------------------------------
# what the fixtures hold


def qupath_ellipse(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """QuPath's ellipse polygon restated: JTS createEllipse (100 vertices) on the 0.01 px grid."""
    t = np.arange(100) * (2 * math.pi / 100)
    rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
    xy = np.column_stack([x0 + rx + rx * np.cos(t), y0 + ry + ry * np.sin(t)])
    return Polygon(np.floor(xy * 100 + 0.5) / 100)


TUMOR, POSITIVE, STROMA = (200, 0, 0), (200, 50, 50), (150, 200, 150)
PENTAGON = Polygon([(100, 100), (200, 100), (220, 160), (150, 220), (80, 160)])
PLUGIN = "QuPath object class qupath.lib.objects.PluginDetection (from a plugin) read as a detection"
AREA = MultiPolygon(
    [
        Polygon(box(300, 300, 400, 400).exterior.coords, [box(330, 330, 370, 370).exterior.coords]),
        box(450, 300, 500, 350),
    ]
)
WKB = MultiPolygon(
    [
        Polygon(box(600, 100, 700, 200).exterior.coords, [box(620, 120, 640, 140).exterior.coords]),
        Polygon([(720, 100), (760, 100), (740, 130)]),
    ]
)
# (object_type, class_name, name, colour, locked, geometry, depth), in QuPath's (depth-first) order
EXPECTED = [
    ("annotation", "Tumor: Positive", None, POSITIVE, False, PENTAGON, 1),
    ("annotation", "Tumor", "inner rect", TUMOR, False, box(110, 120, 150, 150), 2),
    ("annotation", "Stroma", None, STROMA, False, qupath_ellipse(150, 130, 190, 150), 2),
    ("detection", "Tumor: Positive", None, POSITIVE, False, Polygon([(155, 135), (165, 135), (160, 142)]), 3),
    ("cell", "Tumor", None, TUMOR, False, box(170, 132, 180, 140), 3),
    ("cell", "Tumor", None, TUMOR, False, Polygon([(181.25, 131), (189.5, 131), (185, 139.75)]), 3),
    ("annotation", None, None, None, False, LineString([(5, 5), (50, 80)]), 1),
    ("annotation", None, None, None, False, LineString([(0, 0), (10, 5), (20, 0), (30, 5)]), 1),
    ("annotation", "Tumor", None, TUMOR, False, MultiPoint([(1, 2), (3, 4), (5.5, 6.25)]), 1),
    ("annotation", "Stroma", None, STROMA, False, AREA, 1),
    ("annotation", "Tumor: Positive", "wkb", POSITIVE, False, WKB, 1),
    ("annotation", "Tumor", "left mass", (10, 20, 30), True, box(10.5, 20.25, 40.5, 60.25), 1),
    ("tile", None, None, None, False, box(600, 600, 650, 650), 1),
    ("tmaCore", None, "A-1", None, False, qupath_ellipse(700, 700, 800, 800), 1),
    ("detection", None, None, None, False, Polygon([(800, 800), (810, 800), (805, 810)]), 1),
]


def same_geometry(a: shapely.Geometry, b: shapely.Geometry, tolerance: float = 1e-9) -> bool:
    return a.geom_type == b.geom_type and bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance))


def check_fixture(path: Path, style: str) -> None:
    objects = read_qpdata(path)
    assert len(objects) == len(EXPECTED)
    with_ids = style in ("0.6", "4")
    for i, (ann, (kind, cls, name, color, locked, geometry, _)) in enumerate(zip(objects, EXPECTED, strict=True), start=1):
        assert (ann.object_type, ann.class_name, ann.name, ann.color, ann.locked) == (kind, cls, name, color, locked), ann
        assert same_geometry(ann.geometry, geometry), (i, ann.geometry.wkt, geometry.wkt)
        assert ann.object_id == (f"00000000-0000-abcd-0000-{i:012x}" if with_ids else None)
        assert ann.index == i and ann.source == str(path)
        assert ann.problems == ([] if i < 15 else [PLUGIN])
    header = read_qpdata_header(path)
    got = (header.data_version, header.qupath_version, header.server_path, header.image_type)
    assert got == STYLES[style][1:]


# ---------------------------------------------------------------------------------------------
# fixtures: every ROI kind, nesting, classes, QuPath 0.2 to 0.7 layouts


@pytest.mark.parametrize("style", STYLES)
def test_committed_fixtures(style: str) -> None:
    check_fixture(committed(style), style)


@pytest.mark.parametrize("style", STYLES)
def test_fixtures_written_by_java_now(generated: dict[str, Path], style: str) -> None:
    check_fixture(generated[style], style)


def test_tree_keeps_the_nesting() -> None:
    tree = read_qpdata_tree(committed("0.6"))
    assert [n.annotation.index for n in tree] == [1, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert [n.annotation.index for n in tree[0].children] == [2, 3]
    assert [n.annotation.index for n in tree[0].children[1].children] == [4, 5, 6]

    def walk(nodes):
        for node in nodes:
            yield node
            yield from walk(node.children)

    assert [n.depth for n in walk(tree)] == [e[-1] for e in EXPECTED]
    assert [n.annotation for n in walk(tree)] == read_qpdata(committed("0.6"))


def test_ellipse_accuracy() -> None:
    """Default: QuPath's own 100-vertex polygon; ``ellipse_tolerance``: the true ellipse within it."""
    true = np.linspace(0, 2 * math.pi, 20001)
    for tolerance in (None, 0.01, 0.001):
        core = read_qpdata(committed("0.6"), precision=None, ellipse_tolerance=tolerance)[13].geometry  # circle r = 50
        dense = shapely.points(750 + 50 * np.cos(true), 750 + 50 * np.sin(true))
        error = shapely.distance(dense, core.exterior).max()
        if tolerance is None:
            assert len(core.exterior.coords) == 101
            assert error == pytest.approx(50 * (1 - math.cos(math.pi / 100)), rel=1e-3)  # 0.0247 px
        else:
            assert error < tolerance
            assert error > tolerance / 10  # not needlessly many vertices


def test_precision_none_keeps_the_stored_floats() -> None:
    rounded = read_qpdata(committed("0.3"))
    raw = read_qpdata(committed("0.3"), precision=None)
    assert same_geometry(raw[5].geometry, rounded[5].geometry)  # on the grid already
    ellipse = shapely.get_coordinates(raw[2].geometry)
    assert not np.allclose(ellipse, np.round(ellipse, 2), atol=1e-9, rtol=0)  # off the grid
    assert np.abs(ellipse - shapely.get_coordinates(rounded[2].geometry)).max() <= 0.005 + 1e-9


def proxy(kind: str, **fields: object) -> object:
    """A ROI proxy object as the stream parser makes it."""
    roi = qpdata._JObj(qpdata._ClassDesc(f"qupath.lib.roi.{kind}", 1), 0)
    roi.fields.update(fields)
    return roi


F32 = np.float32


@pytest.mark.parametrize(
    ("roi", "geometry", "problem"),
    [
        (None, shapely.GeometryCollection(), "has no ROI"),
        (proxy("RectangleROI$SerializationProxy", x=1.0, y=1.0, x2=1.0, y2=5.0), Polygon(), "zero width or height"),
        (proxy("LineROI$SerializationProxy", x=1.0, y=math.nan, x2=1.0, y2=5.0), LineString(), "non-finite"),
        (
            proxy("PolylineROI$SerializationProxy", x=np.array([2], F32), y=np.array([3], F32)),
            shapely.Point(2, 3),
            "single point",
        ),
        (proxy("PointsROI$SerializationProxy", x=np.array([], F32), y=np.array([], F32)), MultiPoint(), "without points"),
        (proxy("FancyROI$SerializationProxy"), shapely.GeometryCollection(), "unsupported ROI type"),
        # a bow tie: both lobes are filled, as QuPath's java.awt.geom.Area does
        (
            proxy("PolygonROI$SerializationProxy", x=np.array([0, 10, 10, 0], F32), y=np.array([0, 10, 0, 10], F32)),
            MultiPolygon([Polygon([(0, 0), (5, 5), (0, 10)]), Polygon([(10, 0), (10, 10), (5, 5)])]),
            None,
        ),
        # area contours: a hole runs the other way round; a same-direction inner contour fills
        (
            proxy(
                "AreaROI$SerializationProxy",
                x=[np.array([0, 10, 10, 0], F32), np.array([2, 2, 4, 4], F32), np.array([6, 8, 8, 6], F32)],
                y=[np.array([0, 0, 10, 10], F32), np.array([2, 4, 4, 2], F32), np.array([6, 6, 8, 8], F32)],
            ),
            Polygon(box(0, 0, 10, 10).exterior.coords, [box(2, 2, 4, 4).exterior.coords]),
            None,
        ),
    ],
    ids=["none", "flat-rectangle", "nan-line", "one-point-polyline", "no-points", "unknown", "bow-tie", "area-winding"],
)
def test_roi_edge_cases(roi: object, geometry: shapely.Geometry, problem: str | None) -> None:
    got, note = qpdata._roi_geometry(roi, qpdata._rounder(0.01), None)
    assert same_geometry(got, geometry), got.wkt
    assert (note is None) if problem is None else (problem in note)


def test_malformed_wkb_is_a_qpdata_error() -> None:
    good = shapely.to_wkb(Polygon([(0, 0), (1, 0), (1, 1)]), byte_order=0)
    assert same_geometry(
        qpdata._roi_geometry(proxy("GeometryROI$WKBSerializationProxy", wkb=good), None, None)[0],
        Polygon([(0, 0), (1, 0), (1, 1)]),
    )
    for bad in (good + b"\x00", good[:-3], good[:5] + b"\x7f\xff\xff\xff" + good[9:], b"\x02" + good[1:]):
        with pytest.raises(ValueError):
            qpdata._roi_geometry(proxy("GeometryROI$WKBSerializationProxy", wkb=bad), None, None)


def test_fixture_classes_match_qupath_06() -> None:
    """The fixture writer's class descriptors are QuPath 0.6's, wherever both files have the class."""
    ours = descriptors(committed("0.6"))
    theirs = descriptors(real("qupath", "coscialab-0.6.0", "data", "1", "data.qpdata"))
    shared = sorted(name for name in ours.keys() & theirs.keys() if name.startswith("qupath."))
    assert len(shared) >= 15, shared
    for name in shared:
        assert ours[name] == theirs[name], name


def descriptors(path: Path) -> dict[str, tuple]:
    stream = qpdata._Stream(path.read_bytes(), str(path))
    qpdata._read_root(stream)
    return {
        h.name: (h.suid, h.flags, tuple(h.fields), h.super.name if h.super else None)
        for h in stream.handles
        if isinstance(h, qpdata._ClassDesc)
    }


# ---------------------------------------------------------------------------------------------
# a real QuPath 0.6.0 project


def test_real_file_counts_match_summary() -> None:
    folder = real("qupath", "coscialab-0.6.0", "data", "1")
    summary = json.loads((folder / "summary.json").read_text())["hierarchy"]
    objects = read_qpdata(folder / "data.qpdata")
    annotations = Counter(a.class_name or "Unclassified" for a in objects if a.object_type == "annotation")
    assert annotations == summary["annotationClassificationCounts"]
    cells = [a for a in objects if a.object_type == "cell"]
    assert len(cells) == 121 == summary["objectTypeCounts"]["Cells"]
    assert {a.class_name for a in cells} == {"single_cells_demo"}
    assert len(objects) == summary["nObjects"] - 1  # all but the root


def test_real_file_matches_qupaths_geojson_export() -> None:
    """Every object as QuPath exported it (Single_cells.geojson), geometry within 1e-3 px."""
    objects = read_qpdata(real("qupath", "coscialab-0.6.0", "data", "1", "data.qpdata"))
    exported = read_geojson(real("qupath", "coscialab-0.6.0", "Single_cells.geojson"))
    assert len(objects) == len(exported) == 131
    for ours, theirs in zip(objects, exported, strict=True):  # QuPath exports in hierarchy order too
        assert ours.object_id == theirs.object_id
        fields = ("object_type", "class_name", "name", "locked", "color")
        assert [getattr(ours, f) for f in fields] == [getattr(theirs, f) for f in fields], ours.describe()
        a, b = ours.geometry, theirs.geometry
        assert a.geom_type == b.geom_type, ours.describe()
        ca = shapely.get_coordinates(shapely.normalize(a))
        cb = shapely.get_coordinates(shapely.normalize(b))
        assert ca.shape == cb.shape and np.abs(ca - cb).max() < 1e-3, ours.describe()
        assert shapely.hausdorff_distance(a, b) < 1e-3
        if a.area:
            assert shapely.symmetric_difference(a, b).area < 1e-6
    kinds = Counter(a.object_type for a in objects)
    assert kinds == {"annotation": 10, "cell": 121}
    assert sum(1 for a in objects if a.geometry.geom_type == "Point") == 3


def test_real_file_nesting() -> None:
    tree = read_qpdata_tree(real("qupath", "coscialab-0.6.0", "data", "1", "data.qpdata"))
    assert len(tree) == 10
    assert tree[0].annotation.class_name == "class_1"
    assert len(tree[0].children) == 121 and all(c.annotation.object_type == "cell" for c in tree[0].children)


def test_header() -> None:
    header = read_qpdata_header(real("qupath", "coscialab-0.6.0", "data", "1", "data.qpdata"))
    assert header == QpdataHeader(
        data_version=3,
        qupath_version="0.6.0",
        server_path="file:/Volumes/RD_Coscia/Jose/__TestDatasets/TD_01_verysmall_mIF.ome.tif",
        image_type="FLUORESCENCE",
        server=header.server,
    )
    assert header.server["builderType"] == "uri"  # type: ignore[index]


def test_header_is_cheap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the start of the file is read: a file cut right after the image type still has a header."""
    data = committed("0.6").read_bytes()
    cut = tmp_path / "cut.qpdata"
    cut.write_bytes(data[: data.index(b"FLUORESCENCE") + len("FLUORESCENCE")])
    assert read_qpdata_header(cut).image_type == "FLUORESCENCE"
    with pytest.raises(QpdataError, match="ends early"):
        read_qpdata(cut)
    monkeypatch.setattr(qpdata, "HEADER_READ_BYTES", 100)  # a header longer than what is read first
    assert read_qpdata_header(committed("0.6")) == read_qpdata_header(cut)


def test_java_modified_utf8() -> None:
    """Java writes NUL as C0 80 and characters beyond the BMP as two 3-byte surrogates."""
    assert qpdata._decode_modified_utf8("Läsion".encode()) == "Läsion"
    assert qpdata._decode_modified_utf8(b"a\xc0\x80b \xed\xa0\xbd\xed\xb8\x80") == "a\x00b \U0001f600"


# ---------------------------------------------------------------------------------------------
# bad files: one clear QpdataError, never another exception


def test_missing_and_not_qpdata(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="not found"):
        read_qpdata(tmp_path / "nope.qpdata")
    for content, what in [
        (b"", "not a Java serialization stream"),
        (b'{"type": "FeatureCollection"}', "not a Java serialization stream"),
        (b"\xac\xed\x00\x05w\x07\x00\x05hello", "instead of 'Data file version'"),
        (b"\xac\xed\x00\x05t\x00\x01x", "no 'Data file version' line"),
    ]:
        path = tmp_path / "bad.qpdata"
        path.write_bytes(content)
        with pytest.raises(QpdataError, match=what) as info:
            read_qpdata(path)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "at byte offset" in message and "\n" not in message
        assert isinstance(info.value, InputError)


def test_truncated_file_names_the_offset(tmp_path: Path) -> None:
    data = committed("0.6").read_bytes()
    path = tmp_path / "cut.qpdata"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(QpdataError, match="ends early") as info:
        read_qpdata(path)
    assert info.value.offset == len(data) // 2
    assert "save the image again" in str(info.value)


def stream(*body: bytes) -> bytes:
    """A stream that starts like a .qpdata file (version line, JSON header), then ``body``."""
    version = b"Data file version 3"
    header = b"{}"
    return (
        b"\xac\xed\x00\x05"
        + bytes([0x77, len(version) + 2])
        + struct.pack(">H", len(version))
        + version
        + b"t"
        + struct.pack(">H", len(header))
        + header
        + b"".join(body)
    )


OBJECT_ARRAY_DESC = b"ur\x00\x13[Ljava.lang.Object;" + struct.pack(">q", -8012369246846506644) + b"\x02\x00\x00xp"


@pytest.mark.parametrize(
    ("body", "what"),
    [
        # 100000 object arrays nested in each other
        (OBJECT_ARRAY_DESC + b"\x00\x00\x00\x01" + (b"uq\x00~\x00\x01\x00\x00\x00\x01" * 100000), "nested more than"),
        # an array claiming 2^31-1 floats
        (b"ur\x00\x02[F" + struct.pack(">q", 1) + b"\x02\x00\x00xp\x7f\xff\xff\xff", "ends early"),
        # a string claiming 2^63-1 bytes
        (b"|\x7f\xff\xff\xff\xff\xff\xff\xff", "ends early"),
        # block data claiming 2 GiB
        (b"z\x7f\xff\xff\xff", "ends early"),
        # a class claiming 65535 fields
        (b"sr\x00\x01A" + struct.pack(">q", 1) + b"\x02\xff\xff", "ends early"),
        # a reference to a handle that does not exist
        (b"q\x00\x7e\x10\x00", "unknown object handle"),
        # a class whose superclass is itself
        (b"sr\x00\x01A" + struct.pack(">q", 1) + b"\x02\x00\x00xq\x00~\x00\x01", "circular"),
        # a flood of stream resets, then the end
        (b"y" * 200000, "ends early"),
        (b"\x99", "invalid type code"),
    ],
    ids=["deep", "huge-array", "huge-string", "huge-block", "many-fields", "bad-reference", "class-cycle", "resets", "bad-code"],
)
def test_hostile_streams(tmp_path: Path, body: bytes, what: str) -> None:
    """Claims are checked against the bytes left: quick errors, no large allocations."""
    path = tmp_path / "hostile.qpdata"
    path.write_bytes(stream(body))
    start = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(QpdataError, match=what):
            read_qpdata(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 20 * len(path.read_bytes()) + 10_000_000


def mutants(data: bytes, count: int, rng: random.Random):
    """Truncations, byte flips, inserted and deleted bytes, and huge length fields."""
    for i in range(count):
        d = bytearray(data)
        kind = ("truncate", "flip", "insert", "delete", "huge")[i % 5]
        if kind == "truncate":
            d = d[: rng.randrange(len(d))]
        elif kind == "flip":
            for _ in range(rng.randint(1, 8)):
                d[rng.randrange(len(d))] = rng.randrange(256)
        elif kind == "insert":
            at = rng.randrange(len(d))
            d[at:at] = rng.randbytes(rng.randint(1, 16))
        elif kind == "delete":
            at = rng.randrange(len(d))
            del d[at : at + rng.randint(1, 64)]
        else:
            at = rng.randrange(len(d) - 4)
            d[at : at + 4] = rng.choice([b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff", b"\x80\x00\x00\x00", b"\x00\x7f\xff\xff"])
        yield kind, bytes(d)


def test_fuzz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """300 mutants of the real file and a fixture: each read succeeds or raises QpdataError, fast.

    The reader's safety net (which turns any unexpected exception into a QpdataError) is off, so
    every QpdataError here is one the parser raised on purpose, with the offset it found.
    """
    from mammotools.qupath import qpdata

    monkeypatch.setattr(qpdata, "SAFETY_NET", False)
    sources = [committed("0.6"), committed("0.2")]
    if (COSCIA / "data" / "1" / "data.qpdata").exists():
        sources.append(COSCIA / "data" / "1" / "data.qpdata")
    rng = random.Random(20240601)
    path = tmp_path / "mutant.qpdata"
    outcomes: Counter[tuple[str, str]] = Counter()
    slowest = 0.0
    tracemalloc.start()
    for source in sources:
        for kind, data in mutants(source.read_bytes(), 300 // len(sources), rng):
            path.write_bytes(data)
            for read in (read_qpdata_header, read_qpdata):
                start = time.perf_counter()
                try:
                    read(path)
                    outcome = "read"
                except QpdataError as err:
                    assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
                    outcome = "QpdataError"
                elapsed = time.perf_counter() - start
                slowest = max(slowest, elapsed)
                assert elapsed < 2, (kind, source, read.__name__)
            outcomes[(kind, outcome)] += 1  # of read_qpdata
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"fuzz: {dict(outcomes)}, slowest read {slowest:.3f} s, peak {peak / 2**20:.0f} MiB")
    assert peak < 200 * 2**20  # no mutant makes the reader allocate beyond its bounds
    assert sum(outcomes.values()) >= 300
    assert sum(n for (_, outcome), n in outcomes.items() if outcome == "QpdataError") > 100  # most mutants are caught


if __name__ == "__main__":  # regenerate the committed fixtures
    FIXTURES.mkdir(exist_ok=True)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for style, path in generate(Path(tmp)).items():
            shutil.copy(path, FIXTURES / STYLES[style][0])
            print(f"{style}: {FIXTURES / STYLES[style][0]} ({path.stat().st_size} bytes)")
    sys.exit(0)


def test_self_crossing_area_keeps_memory_bounded() -> None:
    """A crafted zigzag area crossing itself thousands of times: filled with bounded memory."""
    from mammotools.qupath.qpdata import _fill_nonzero

    n = 3000
    zigzag = np.c_[np.arange(n, dtype=float), np.where(np.arange(n) % 2 == 0, 0.0, 100.0)]
    ring = np.vstack([zigzag, [[n, 50.0], [-1, 50.0]], zigzag[:1]])
    tracemalloc.start()
    try:
        area = _fill_nonzero([ring]).area
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert area > 0 and peak < 100 * 2**20

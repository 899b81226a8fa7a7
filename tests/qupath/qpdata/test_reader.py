"""Reading whole ``.qpdata`` files (``reader``): every fixture layout, a real QuPath 0.6 file, bad files, fuzzing.

Fixtures: ``tests/qupath/java/QpdataFixture.java`` mirrors QuPath's serialization layout (class
names, serialVersionUIDs, fields, ``writeExternal`` order, ROI proxies) and writes one file per
layout QuPath has used. Its output is committed in ``tests/qupath/data/`` so the tests run without
Java; where ``javac`` is present the tests also compile and run it afresh. Regenerate with
``python tests/qupath/qpdata/test_reader.py``.
"""

from __future__ import annotations

import math
import random
import shutil
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
from mammotools.qupath.geojson import read_geojson
from mammotools.qupath.qpdata import QpdataError, read_qpdata, read_qpdata_header, read_qpdata_tree, reader

HERE = Path(__file__).resolve().parents[1]  # tests/qupath
SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
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


# ---------------------------------------------------------------------------------------------
# a real QuPath 0.6.0 project


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


def test_header_is_cheap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the start of the file is read: a file cut right after the image type still has a header."""
    data = committed("0.6").read_bytes()
    cut = tmp_path / "cut.qpdata"
    cut.write_bytes(data[: data.index(b"FLUORESCENCE") + len("FLUORESCENCE")])
    assert read_qpdata_header(cut).image_type == "FLUORESCENCE"
    with pytest.raises(QpdataError, match="ends early"):
        read_qpdata(cut)
    monkeypatch.setattr(reader, "HEADER_READ_BYTES", 100)  # a header longer than what is read first
    assert read_qpdata_header(committed("0.6")) == read_qpdata_header(cut)


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
    monkeypatch.setattr(reader, "SAFETY_NET", False)  # where the reader reads it
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

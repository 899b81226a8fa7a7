"""QuPath GeoJSON exports in every variant: versions, containers, compression, bad files."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pytest
from conftest import shared

from mammotools.errors import InputError
from mammotools.qupath.geojson import annotation_file_key, read_geojson

SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]]}

# the same annotation as QuPath 0.2, 0.3 and 0.4+ write it
V02 = {
    "type": "Feature",
    "id": "PathAnnotationObject",
    "geometry": SQUARE,
    "properties": {
        "classification": {"name": "Positive", "colorRGB": -3670016, "parentClass": {"name": "Tumor", "colorRGB": -65536}},
        "isLocked": False,
        "measurements": [{"name": "Area", "value": 16}],
    },
}
V03 = {
    "type": "Feature",
    "geometry": SQUARE,
    "properties": {
        "object_type": "annotation",
        "classification": {"name": "Tumor", "colorRGB": -65536},
        "isLocked": True,
        "measurements": [],
    },
}
V04 = {
    "type": "Feature",
    "id": "5f0e",
    "geometry": SQUARE,
    "properties": {
        "objectType": "annotation",
        "name": "mass",
        "classification": {"names": ["Tumor", "Positive"], "color": [200, 0, 0]},
    },
}
DETECTION_02 = {"type": "Feature", "id": "PathDetectionObject", "geometry": SQUARE, "properties": {}}
CELL_04 = {"type": "Feature", "geometry": SQUARE, "properties": {"objectType": "cell"}}


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_versions(tmp_path: Path) -> None:
    anns = read_geojson(write(tmp_path / "a.geojson", [V02, V03, V04, DETECTION_02, CELL_04]))
    assert [a.object_type for a in anns] == ["annotation", "annotation", "annotation", "detection", "cell"]
    assert [a.class_name for a in anns[:3]] == ["Tumor: Positive", "Tumor", "Tumor: Positive"]
    assert anns[0].color == (200, 0, 0) and anns[2].color == (200, 0, 0)
    assert anns[1].locked and not anns[0].locked
    assert anns[2].name == "mass" and anns[2].object_id == "5f0e"
    assert all(a.geometry.area == 16 for a in anns)


@pytest.mark.parametrize("container", ["collection", "feature", "array"])
def test_containers(tmp_path: Path, container: str) -> None:
    data = {"collection": {"type": "FeatureCollection", "features": [V04]}, "feature": V04, "array": [V04]}[container]
    [ann] = read_geojson(write(tmp_path / "x.json", data))
    assert ann.class_name == "Tumor: Positive"


def test_gzip_and_zip(tmp_path: Path) -> None:
    gz = tmp_path / "a.geojson.gz"
    with gzip.open(gz, "wt") as fh:
        json.dump({"type": "FeatureCollection", "features": [V04, V03]}, fh)
    assert len(read_geojson(gz)) == 2
    zpath = tmp_path / "b.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("b.geojson", json.dumps([V04]))
        zf.writestr("readme.txt", "not read")
    [ann] = read_geojson(zpath)
    assert "b.zip!b.geojson" in ann.source


def test_ellipse_plane_and_duplicate_keys(tmp_path: Path) -> None:
    text = (
        '{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0,0],[4,0],[4,4],[0,0]]],'
        ' "plane": {"c": -1, "z": 0, "t": 0}, "isEllipse": true},'
        ' "properties": {"objectType": "annotation", "metadata": {"a": 1}, "metadata": {"b": 2}}}'
    )
    (tmp_path / "e.geojson").write_text(text)
    [ann] = read_geojson(tmp_path / "e.geojson")
    assert ann.class_name is None and ann.geometry.area == 8


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ('{"type": "FeatureCollection", "features": [', "not valid JSON"),
        ('{"hello": 1}', "not a GeoJSON"),
    ],
)
def test_bad_files_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as err:
        read_geojson(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "geometry",
    ['{"type": "Polygon", "coordinates": "x"}', '{"type": "Polygon", "coordinates": [[[0, 0], [NaN, 1], [1, 1], [0, 0]]]}',
     '{"type": "Point", "coordinates": [Infinity, 3]}'],
)  # fmt: skip
def test_unreadable_geometry_is_kept_as_a_problem(tmp_path: Path, geometry: str) -> None:
    path = tmp_path / "g.geojson"
    path.write_text(f'[{{"type": "Feature", "geometry": {geometry}, "properties": {{"objectType": "annotation"}}}}, '
                    '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}}]')  # fmt: skip
    bad, good = read_geojson(path)
    assert bad.malformed and bad.geometry.is_empty and ("malformed" in bad.problems[0] or "NaN" in bad.problems[0])
    assert not good.malformed and good.geometry.x == 1


def test_deeply_nested_json(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(InputError, match="nested too deeply"):
        read_geojson(path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "c.geojson.gz"
    path.write_bytes(gzip.compress(b'{"type": "Feature"}')[:-6])
    with pytest.raises(InputError, match="corrupt"):
        read_geojson(path)


def test_file_keys() -> None:
    assert annotation_file_key(Path("img_01.geojson.gz")) == "img_01"
    assert annotation_file_key(Path("a.b.json")) == "a.b"
    assert annotation_file_key(Path("x.png")) is None


def test_real_exports() -> None:
    folder = shared("qupath", "coscialab-0.6.0")
    anns = read_geojson(folder / "TD_01_verysmall_mIF.geojson")
    assert len(anns) == 9 and all(a.is_annotation for a in anns)
    assert sorted({a.geometry.geom_type for a in anns}) == ["Point", "Polygon"]
    cells = [a for a in read_geojson(folder / "Single_cells.geojson") if a.object_type == "cell"]
    assert len(cells) == 121


@pytest.mark.parametrize(
    ("coordinates", "problem"),
    [('[[["100", 0], [5, 0], [5, 5], ["100", 0]]]', "not all numbers"),
     ("[[[-1e308, -1e308], [1e308, -1e308], [1e308, 1e308], [-1e308, -1e308]]]", "beyond"),
     ("[[[0, 0], [true, 0], [5, 5], [0, 0]]]", "not all numbers")],
)  # fmt: skip
def test_string_or_overflowing_coordinates_are_malformed(tmp_path: Path, coordinates: str, problem: str) -> None:
    path = tmp_path / "g.geojson"
    path.write_text(f'{{"type": "Feature", "geometry": {{"type": "Polygon", "coordinates": {coordinates}}}, '
                    '"properties": {"objectType": "annotation", "classification": {"name": "Tumor"}}}')  # fmt: skip
    (ann,) = read_geojson(path)
    assert ann.malformed and problem in ann.problems[0]


def test_a_gzip_bomb_is_refused_after_the_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mammotools.qupath.geojson as geojson

    monkeypatch.setattr(geojson, "MAX_TEXT_BYTES", 1024**2)
    path = tmp_path / "bomb.geojson.gz"
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(b"[" + b" " * (64 * 1024**2) + b"]")
    read = []
    real_read = gzip.GzipFile.read

    def counting(self: gzip.GzipFile, size: int = -1) -> bytes:
        data = real_read(self, size)
        read.append(len(data))
        return data

    monkeypatch.setattr(gzip.GzipFile, "read", counting)
    with pytest.raises(InputError, match="MiB unpacked"):
        read_geojson(path)
    assert sum(read) <= 10 * 1024**2  # stopped near the bound, not after all 64 MiB

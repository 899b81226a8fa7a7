"""QuPath's classes (``objects``): their class descriptors, classifications, nesting and the header."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mammotools.qupath.qpdata import QpdataHeader, read_qpdata, read_qpdata_header, read_qpdata_tree, reader
from mammotools.qupath.qpdata.javaio import _ClassDesc

SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
FIXTURES = Path(__file__).resolve().parents[1] / "data"  # written by tests/qupath/java (see test_reader.py)


def real(*parts: str) -> Path:
    """A path in ../shared/data, skipping the test (with the reason) where it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real QuPath data not available: {path} is absent (it sits beside the project in CI)")
    return path


def test_fixture_classes_match_qupath_06() -> None:
    """The fixture writer's class descriptors are QuPath 0.6's, wherever both files have the class."""
    ours = descriptors(FIXTURES / "qupath-0.6.qpdata")
    theirs = descriptors(real("qupath", "coscialab-0.6.0", "data", "1", "data.qpdata"))
    shared = sorted(name for name in ours.keys() & theirs.keys() if name.startswith("qupath."))
    assert len(shared) >= 15, shared
    for name in shared:
        assert ours[name] == theirs[name], name


def descriptors(path: Path) -> dict[str, tuple]:
    stream = reader._QpdataStream(path.read_bytes(), str(path))
    reader._read_root(stream)
    return {
        h.name: (h.suid, h.flags, tuple(h.fields), h.super.name if h.super else None)
        for h in stream.handles
        if isinstance(h, _ClassDesc)
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

"""The paquo route: stand-in objects shaped like paquo's, and a real run where QuPath is installed."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import shapely
from conftest import feature, rect, write_project

from mammotools.export import ExportSettings, export_dataset
from mammotools.qupath import open_source, paquo_reader, read_annotations
from mammotools.qupath.paquo_reader import PaquoUnavailableError


class Color:
    def __init__(self, rgb: tuple[int, int, int]) -> None:
        self.rgb = rgb

    def to_rgb(self) -> tuple[int, int, int]:
        return self.rgb


class PathClass:
    def __init__(self, name: str, full: str, rgb: tuple[int, int, int]) -> None:
        self.name, self.id, self.color = name, full, Color(rgb)


class PathObject:
    def __init__(self, roi, path_class=None, name=None, locked=False) -> None:  # type: ignore[no-untyped-def]
        self.roi, self.path_class, self.name, self.locked = roi, path_class, name, locked


class Entry:
    def __init__(self, entry_id: str, image_name: str, width: int, height: int, annotations, detections) -> None:  # type: ignore[no-untyped-def]
        self.entry_id, self.image_name, self.width, self.height = entry_id, image_name, width, height
        self.uri = f"file:/elsewhere/{image_name}"
        self.metadata = {"subject": "P7"}
        self.hierarchy = types.SimpleNamespace(annotations=annotations, detections=detections)


def fake_paquo(monkeypatch: pytest.MonkeyPatch, entries: list[Entry]) -> None:
    projects = types.ModuleType("paquo.projects")

    class QuPathProject:
        def __init__(self, path, mode="r") -> None:  # type: ignore[no-untyped-def]
            assert mode == "r"
            self.images, self.version = entries, "0.5.1"

    projects.QuPathProject = QuPathProject  # type: ignore[attr-defined]
    package = types.ModuleType("paquo")
    package.projects = projects  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "paquo", package)
    monkeypatch.setitem(sys.modules, "paquo.projects", projects)
    monkeypatch.setattr(paquo_reader, "_PROJECTS", {})


def test_reads_through_paquo_shaped_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = write_project(tmp_path, {"a.png": (np.zeros((40, 50), np.uint8), [])})
    tumor = PathClass("Positive", "Tumor: Positive", (200, 0, 0))
    entries = [
        Entry("1", "a.png", 50, 40,
              [PathObject(shapely.box(0, 0, 10, 10), tumor, "mass", True), PathObject(shapely.Point(30, 20))],
              [PathObject(shapely.box(1, 1, 2, 2), tumor)])
    ]  # fmt: skip
    fake_paquo(monkeypatch, entries)
    source = open_source(project, reader="paquo")
    [record] = source.images
    assert (source.qupath_version, record.name, record.width, record.height, record.metadata) == (
        "0.5.1", "a.png", 50, 40, {"subject": "P7"})  # fmt: skip
    objects = read_annotations(record)
    assert [(o.object_type, o.class_name) for o in objects] == [
        ("annotation", "Tumor: Positive"), ("annotation", None), ("detection", "Tumor: Positive")]  # fmt: skip
    assert objects[0].locked and objects[0].name == "mass" and objects[0].color == (200, 0, 0)
    summary = export_dataset(project, tmp_path / "ds", tmp_path / "images", settings=ExportSettings(sigma=0), reader="paquo")
    assert summary.exported == ["a"]


def test_missing_qupath_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = write_project(tmp_path, {"a.png": (np.zeros((4, 5), np.uint8), [])})

    class JVMStart(importlib.abc.Loader, importlib.abc.MetaPathFinder):
        """Imports of paquo.projects fail as paquo's do when it finds no QuPath."""

        def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
            return importlib.util.spec_from_loader(name, self) if name == "paquo.projects" else None

        def exec_module(self, module) -> None:  # type: ignore[no-untyped-def]
            raise ValueError("no valid qupath installation found")

    package = types.ModuleType("paquo")
    package.__path__ = []  # a package, so the submodule import goes to the finders
    monkeypatch.setitem(sys.modules, "paquo", package)
    monkeypatch.delitem(sys.modules, "paquo.projects", raising=False)
    monkeypatch.setattr(sys, "meta_path", [JVMStart(), *sys.meta_path])
    monkeypatch.setattr(paquo_reader, "_PROJECTS", {})
    with pytest.raises(PaquoUnavailableError) as err:
        open_source(project, reader="paquo")
    message = str(err.value)
    assert "PAQUO_QUPATH_DIR" in message and "--reader auto" in message and "\n" not in message


@pytest.mark.skipif(not os.environ.get("PAQUO_QUPATH_DIR"), reason="needs a QuPath install: set PAQUO_QUPATH_DIR")
def test_real_paquo(tmp_path: Path) -> None:
    project = write_project(tmp_path, {"a.png": (np.zeros((40, 50), np.uint8), [feature(rect(0, 0, 10, 10), "Tumor")])})
    source = open_source(project, reader="paquo")
    assert [r.name for r in source.images] == ["a.png"]

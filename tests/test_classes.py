"""The class table: the paper's default, aliases, user tables and their validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mammotools.classes import default_class_table, load_class_table
from mammotools.errors import InputError, MissingFileError


def test_default_is_the_papers_ranking() -> None:
    table = default_class_table()
    assert table.names == [
        "Tumor",
        "Nipple",
        "Areola",
        "Calcifications",
        "Skin",
        "Thick vessels",
        "Pectoral muscle",
        "Axillary lymph nodes",
        "Calcified vessels",
        "Text",
        "Submammary tissue",
        "Foreign object",
        "Mammary gland",
        "Background",
    ]
    assert [c.rank for c in table] == list(range(1, 15))
    assert table.bottom.name == "Background" and table.bottom.label == 0
    assert sorted(c.label for c in table) == list(range(14))
    not_smoothed = {c.name for c in table if not c.smooth}
    assert not_smoothed == {"Nipple", "Calcifications", "Axillary lymph nodes", "Text"}


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("Auxiliary lymph nodes", "Axillary lymph nodes"),  # the paper's misspellings
        ("Submammory tissue", "Submammary tissue"),
        ("  pectoral   MUSCLE ", "Pectoral muscle"),
        ("thick_vessels", "Thick vessels"),
        ("Tumor: Malignant", "Tumor"),  # QuPath derived class -> its base
        ("Tumour", "Tumor"),
    ],
)
def test_aliases_case_and_derived_classes(written: str, meant: str) -> None:
    assert default_class_table().find(written).name == meant


def test_unknown_name_is_none() -> None:
    assert default_class_table().find("Cyst") is None


def test_user_table_round_trip(tmp_path: Path) -> None:
    scheme = [
        {"name": "Pectoral", "label": 3, "color": [0, 0, 255], "rank": 1, "smooth": True},
        {"name": "Fibroglandular", "label": 2, "color": [255, 255, 255], "rank": 2, "smooth": True, "aliases": ["Dense tissue"]},
        {"name": "Adipose", "label": 1, "color": [128, 128, 128], "rank": 3, "smooth": False},
        {"name": "Background", "label": 0, "color": [0, 0, 0], "rank": 4, "smooth": False},
    ]
    path = tmp_path / "tissue.json"
    path.write_text(json.dumps(scheme))
    table = load_class_table(path)
    assert table.names == ["Pectoral", "Fibroglandular", "Adipose", "Background"]
    assert table.find("dense tissue").name == "Fibroglandular"
    assert table.palette()[3 * 3 : 3 * 3 + 3] == bytes([0, 0, 255])
    assert json.loads(table.to_json())[1]["aliases"] == ["Dense tissue"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": 300}, "label must be an integer 0..254"),
        ({"label": 255}, "255 marks pixels without a class"),
        ({"color": [1, 2]}, "color must be"),
        ({"rank": 0}, "rank must be"),
        ({"smooth": "yes"}, "smooth must be true or false"),
        ({"label": 0}, "share the label"),
        ({"name": "background"}, "share the name"),
        ({"colour": [1, 2, 3]}, "unknown key"),
    ],
)
def test_bad_user_tables_say_what_is_wrong(tmp_path: Path, change: dict, message: str) -> None:
    first = {"name": "Tumor", "label": 1, "color": [255, 0, 0], "rank": 1, "smooth": True, **change}
    rows = [first, {"name": "Background", "label": 0, "color": [0, 0, 0], "rank": 2, "smooth": True}]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(InputError, match=message) as err:
        load_class_table(path)
    assert str(path) in str(err.value)


def test_missing_and_corrupt_table_files(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"nope\.json"):
        load_class_table(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_class_table(tmp_path / "broken.json")

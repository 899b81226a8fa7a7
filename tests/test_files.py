"""Atomic writes and the stem rule shared with the Groovy export."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammotools.files import atomic_path, atomic_write_text, image_stem, remove_stale_temporaries, safe_file_name


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_folder_replaced_as_a_whole(tmp_path: Path) -> None:
    target = tmp_path / "masks"
    for names in (["tumor.png", "skin.png"], ["tumor.png"]):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            for n in names:
                (tmp / n).write_text(n)
    assert sorted(p.name for p in target.iterdir()) == ["tumor.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks"]


def test_stale_temporaries_are_removed(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".x.png.tmp-99").write_text("half")
    (tmp_path / "keep.png").write_text("whole")
    assert remove_stale_temporaries(tmp_path) == 1
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["keep.png"]


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("mammo_01.png", "mammo_01"),
        ("a.ome.tif", "a.ome"),
        ("noext", "noext"),
        (".hidden", ".hidden"),
        ("C:\\scans\\b.dcm", "b"),
        ("dir/c.tiff", "c"),
    ],
)
def test_image_stem(name: str, stem: str) -> None:
    assert image_stem(name) == stem


def test_safe_file_name() -> None:
    assert safe_file_name('a:b*c?"d<e>f|g') == "a_b_c__d_e_f_g"

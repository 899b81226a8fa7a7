"""Subjects and the subject-level split, drawn once and kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammotools.errors import InputError
from mammotools.split import draw_split, load_or_draw_split, read_subjects_csv, subject_from_name


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("P_00001_LEFT_CC", "P_00001"),
        ("A_0002_1.RIGHT_MLO", "A_0002_1"),
        ("case12-L-MLO", "case12"),
        ("phantom_001", "phantom_001"),
        ("CC", "CC"),
    ],
)
def test_subject_from_name(name: str, subject: str) -> None:
    assert subject_from_name(name) == subject


def test_split_by_subject_is_seeded_and_70_30() -> None:
    subjects = [f"s{i:02d}" for i in range(20)]
    split = draw_split(subjects * 4, 0.3, seed=1)  # each subject has 4 images: split once per subject
    assert sorted(split) == subjects
    assert sum(v == "val" for v in split.values()) == 6
    assert draw_split(subjects, 0.3, seed=1) == split
    assert draw_split(subjects, 0.3, seed=2) != split


def test_split_recorded_once_and_kept(tmp_path: Path) -> None:
    subjects = {"a_L_CC": "a", "a_R_CC": "a", "b_L_CC": "b", "c_L_CC": "c"}
    first = load_or_draw_split(tmp_path, subjects, 0.3, seed=0)
    assert first["a_L_CC"][1] == first["a_R_CC"][1]  # one subject, one side
    again = load_or_draw_split(tmp_path, subjects, 0.9, seed=99)  # recorded split wins
    assert again == first
    with pytest.raises(InputError, match="not in the recorded split"):
        load_or_draw_split(tmp_path, {**subjects, "d_L_CC": "d"})
    with pytest.raises(InputError, match="now it is"):
        load_or_draw_split(tmp_path, {**subjects, "a_L_CC": "z"})


def test_subjects_csv(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("name,subject\nmdb001,p1\nmdb002,p1\n")
    assert read_subjects_csv(path) == {"mdb001": "p1", "mdb002": "p1"}
    path.write_text("file,patient\nx,y\n")
    with pytest.raises(InputError, match="name,subject"):
        read_subjects_csv(path)


def test_cbis_patient_ids_make_one_subject() -> None:
    assert subject_from_name("Mass-Training_P_00001_LEFT_CC_1-1") == "P_00001"
    assert subject_from_name("Calc-Test_P_00001_RIGHT_MLO") == "P_00001"


def test_folds_deal_every_subject_to_one_fold_of_near_equal_size() -> None:
    from mammotools.split import draw_folds, fold_sides

    subjects = [f"p{i:02d}" for i in range(11)] * 2  # two views each
    folds = draw_folds(subjects, 3)
    assert sorted(folds) == sorted(set(subjects)) and set(folds.values()) == {1, 2, 3}
    sizes = sorted(list(folds.values()).count(k) for k in (1, 2, 3))
    assert sizes == [3, 4, 4]
    assert draw_folds(list(reversed(subjects)), 3) == folds  # seeded over the sorted subjects: order does not matter
    split = {f"{s}_{view}": (s, "train") for s in set(subjects) for view in ("CC", "MLO")}
    seen: dict[str, int] = {}
    for k in (1, 2, 3):
        sides = fold_sides(split, 3, k)
        val = {n for n, side in sides.items() if side == "val"}
        assert all(folds[split[n][0]] == k for n in val)  # a subject's views are validated together
        for n in val:
            seen[n] = seen.get(n, 0) + 1
    assert seen == {n: 1 for n in split}  # every image validated exactly once over the folds
    with pytest.raises(InputError, match="give 2 to 11"):
        draw_folds(subjects, 12)
    with pytest.raises(InputError, match="--fold 4: give 1 to 3"):
        fold_sides(split, 3, 4)


RANDOM_BYTES = b"\xff\xfe\x80\x81garbage\x00\xc3\x28\n"


def test_undecodable_or_folder_split_file_is_one_line_naming_it(tmp_path: Path) -> None:
    from mammotools.split import read_split

    path = tmp_path / "split.csv"
    path.write_bytes(b"name,subject,split\n" + RANDOM_BYTES)
    for read in (lambda: read_split(path), lambda: load_or_draw_split(tmp_path, {"a_L_CC": "a"})):
        with pytest.raises(InputError, match=r"split\.csv: not UTF-8 text .*delete it to redraw the split") as err:
            read()
        assert "\n" not in str(err.value)
    assert path.read_bytes().endswith(RANDOM_BYTES)  # the user's file is left as it is
    path.unlink()
    path.mkdir()
    with pytest.raises(InputError, match=r"split\.csv: is a folder, not the split file; remove it"):
        load_or_draw_split(tmp_path, {"a_L_CC": "a", "b_L_CC": "b"})
    with pytest.raises(InputError, match=r"split\.csv: is a folder"):
        read_split(path)
    assert path.is_dir()


def test_undecodable_or_folder_subjects_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "subjects.csv"
    path.write_bytes(b"name,subject\n" + RANDOM_BYTES)
    with pytest.raises(InputError, match=r"subjects\.csv: not UTF-8 text .*UTF-8 CSV file with columns name,subject"):
        read_subjects_csv(path)
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(InputError, match=r"folder\.csv: is a folder, not a CSV file"):
        read_subjects_csv(folder)


def test_an_image_given_two_subjects_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("name,subject\nmdb001,p1\nmdb002,p2\nmdb001,p1\n")  # the same row twice: harmless
    assert read_subjects_csv(path) == {"mdb001": "p1", "mdb002": "p2"}
    path.write_text("name,subject\nmdb001,p1\nmdb002,p2\nmdb001,p3\n")
    with pytest.raises(
        InputError, match=r"s\.csv:4: 'mdb001' is listed again with another subject \('p1' at line 2, 'p3' here\)"
    ):
        read_subjects_csv(path)

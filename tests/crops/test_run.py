"""make-crops: subject-level split, padding, two-class task, class weights, reproducibility."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset
from PIL import Image

from mammotools.crops import CropSettings, make_crops
from mammotools.errors import InputError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("crops"))


def rows(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((folder / "manifest.csv").open()))


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_validation_subjects_never_in_training(dataset: Path, tmp_path: Path) -> None:
    summary = make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=5))
    assert sorted(summary.done) == ["s0_L_CC", "s0_R_CC", "s1_L_CC", "s1_R_CC", "s2_L_CC", "s2_R_CC"]
    split = {r["name"]: (r["subject"], r["split"]) for r in csv.DictReader((dataset / "split.csv").open())}
    assert {subj for subj, _ in split.values()} == {"s0", "s1", "s2"}  # view tokens removed
    val_subjects = {subj for subj, side in split.values() if side == "val"}
    assert len(val_subjects) == 1
    manifest = rows(tmp_path / "c")
    assert len(manifest) == 30
    train = [r for r in manifest if r["split"] == "train"]
    assert train and not {r["subject"] for r in train} & val_subjects
    on_disk = {p.stem for p in (tmp_path / "c" / "train" / "images").iterdir()}
    assert on_disk == {r["crop"] for r in train}
    assert all(split[r["source"]][1] == r["split"] for r in manifest)


def test_windows_inside_or_padded(dataset: Path, tmp_path: Path) -> None:
    make_crops(dataset, tmp_path / "c", CropSettings(size=128, per_image=4))
    for r in rows(tmp_path / "c"):
        row0, col0 = int(r["row0"]), int(r["col0"])
        image = Image.open(tmp_path / "c" / r["split"] / "images" / f"{r['crop']}.png")
        assert image.size == (128, 128)
        if r["source"] == "s2_R_CC":  # 100 x 90: smaller than the crop
            assert r["padded"] == "True" and (row0, col0) == (-19, -14)
            label = np.array(Image.open(tmp_path / "c" / r["split"] / "labels" / f"{r['crop']}.png"))
            assert (label[:19] == 255).all() and (label[:, :14] == 255).all()  # padding: the ignore label, never background
        else:
            assert r["padded"] == "False" and 0 <= row0 <= 200 - 128 and 0 <= col0 <= 300 - 128
        assert r["centre_class"] in {"Tumor", "Pectoral muscle", "Nipple"}
        assert r["bits"] == "12"


def test_same_seed_same_bytes_other_seed_other_crops(dataset: Path, tmp_path: Path) -> None:
    make_crops(dataset, tmp_path / "a", CropSettings(size=64, per_image=3, seed=5), workers=1)
    make_crops(dataset, tmp_path / "b", CropSettings(size=64, per_image=3, seed=5), workers=2)
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=3, seed=6), workers=1)
    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert (tmp_path / "a" / "manifest.csv").read_bytes() == (tmp_path / "b" / "manifest.csv").read_bytes()
    assert files(tmp_path / "a") != files(tmp_path / "c")


def test_tumor_task_and_class_weights(dataset: Path, tmp_path: Path) -> None:
    make_crops(dataset, tmp_path / "t", CropSettings(size=64, per_image=4, task="tumor"))
    values = set()
    for p in (tmp_path / "t").rglob("labels/*.png"):
        values |= set(np.unique(np.array(Image.open(p))).tolist())
    assert values == {0, 1}
    weights = json.loads((tmp_path / "t" / "class_weights.json").read_text())["classes"]
    train = [r for r in rows(tmp_path / "t") if r["split"] == "train"]
    tumor_px = sum(int(r["pixels_tumor"]) for r in train)
    total = sum(int(r["pixels_tumor"]) + int(r["pixels_non_tumor"]) for r in train)
    assert [w["name"] for w in weights] == ["Tumor", "Non-tumor"]
    assert weights[0]["weight"] == pytest.approx(1 - tumor_px / total)
    assert weights[0]["percent"] == pytest.approx(100 * tumor_px / total)


def test_rerun_and_bad_input(dataset: Path, tmp_path: Path) -> None:
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=2))
    again = make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=2))
    assert again.done == [] and len(again.skipped) == 6
    with pytest.raises(InputError, match="--overwrite"):
        make_crops(dataset, tmp_path / "c", CropSettings(size=96, per_image=2))
    with pytest.raises(InputError, match=r"16\.\.8192"):
        make_crops(dataset, tmp_path / "d", CropSettings(size=10000))
    with pytest.raises(InputError, match="not a mammotools dataset"):
        make_crops(tmp_path / "c", tmp_path / "e", CropSettings(size=64))


def test_moving_a_subject_to_validation_leaves_nothing_in_training(tmp_path: Path) -> None:
    from mammotools.augment import augment_dataset, parse_variants

    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=2))
    augment_dataset(tmp_path / "c", tmp_path / "a", parse_variants("noise,flip_lr"))
    rows_ = list(csv.DictReader((dataset / "split.csv").open()))
    moved = next(r["subject"] for r in rows_ if r["split"] == "train")
    text = "name,subject,split\n" + "".join(
        f"{r['name']},{r['subject']},{'val' if r['subject'] == moved else r['split']}\n" for r in rows_
    )
    (dataset / "split.csv").write_text(text)
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=2))
    augment_dataset(tmp_path / "c", tmp_path / "a", parse_variants("noise,flip_lr"))
    for folder in (tmp_path / "c", tmp_path / "a"):
        train_files = [p.name for p in (folder / "train").rglob("*.png")]
        assert train_files and not [n for n in train_files if n.startswith(moved + "_")]
        manifest = list(csv.DictReader((folder / "manifest.csv").open()))
        assert {r["split"] for r in manifest if r["subject"] == moved} == {"val"}
        assert len(list(folder.rglob("*/images/*.png"))) == len(manifest)  # no file outlives its row


def test_fewer_crops_with_overwrite_leave_no_extra_files(dataset: Path, tmp_path: Path) -> None:
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=3))
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1), overwrite=True)
    assert len(list((tmp_path / "c").rglob("*/images/*.png"))) == len(rows(tmp_path / "c")) == 6


@pytest.mark.parametrize(("edit", "message"), [("Train", "must be train or val"), ("mixed", "on both sides")])
def test_edited_split_files_are_checked(tmp_path: Path, edit: str, message: str) -> None:
    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    lines = (dataset / "split.csv").read_text().splitlines()
    if edit == "Train":
        lines[1] = lines[1].rsplit(",", 1)[0] + ",Train"
    else:  # one image of a subject on the other side
        name, subject, side = lines[1].split(",")
        lines[1] = f"{name},{subject},{'train' if side == 'val' else 'val'}"
    (dataset / "split.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=message):
        make_crops(dataset, tmp_path / "d", CropSettings(size=64, per_image=1))
    assert not (tmp_path / "d" / "Train").exists()


def test_out_folders_keep_their_kind(dataset: Path, tmp_path: Path) -> None:
    import shutil

    from mammotools.augment import augment_dataset, parse_variants

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    before = (copy / "manifest.csv").read_bytes()
    with pytest.raises(InputError, match="input folder itself"):
        make_crops(copy, copy, CropSettings(size=64), overwrite=True)
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    with pytest.raises(InputError, match="not a folder of augmented"):
        augment_dataset(tmp_path / "c", copy, parse_variants("noise"), overwrite=True)
    assert (copy / "manifest.csv").read_bytes() == before  # the export dataset is untouched
    augment_dataset(tmp_path / "c", tmp_path / "a", parse_variants("noise"))
    with pytest.raises(InputError, match="an augmented dataset, not a crop dataset"):
        augment_dataset(tmp_path / "a", tmp_path / "a2", parse_variants("noise"))


def test_a_lost_crop_or_variant_is_remade(dataset: Path, tmp_path: Path) -> None:
    from mammotools.augment import augment_dataset, parse_variants

    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    augment_dataset(tmp_path / "c", tmp_path / "a", parse_variants("noise"))
    lost = next((tmp_path / "c" / "train" / "images").iterdir())
    lost.unlink()
    again = make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    assert len(again.done) == 1 and lost.exists()
    variant = next((tmp_path / "a" / "train" / "images").glob("*_noise.png"))
    variant.unlink()
    redo = augment_dataset(tmp_path / "c", tmp_path / "a", parse_variants("noise"))
    assert variant.exists() and not redo.failed


def test_a_split_with_no_training_subject_is_refused(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    text = (dataset / "split.csv").read_text()
    (dataset / "split.csv").write_text(text.replace(",train\n", ",val\n"))  # every subject moved to validation
    with pytest.raises(InputError, match=r"split\.csv: puts every subject in validation .*delete the file to redraw"):
        make_crops(dataset, tmp_path / "d", CropSettings(size=64, per_image=1))
    assert not (tmp_path / "d").exists()
    with pytest.raises(InputError, match="puts every subject in validation"):  # nor is a made folder emptied of training
        make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    assert list((tmp_path / "c" / "train" / "images").iterdir())


@pytest.mark.parametrize("damage", ["split bytes", "split folder", "subjects bytes", "subjects twice"])
def test_damaged_split_or_subjects_file_is_one_cli_line(tmp_path: Path, damage: str) -> None:
    from click.testing import CliRunner

    from mammotools.cli import main

    dataset = make_dataset(tmp_path)
    subjects = tmp_path / "subjects.csv"
    subjects.write_text("name,subject\ns0_L_CC,s0\ns1_L_CC,s1\n")
    if damage == "split bytes":
        (dataset / "split.csv").write_bytes(b"name,subject,split\n\xff\xfe\x80,\x81\n")
    elif damage == "split folder":
        (dataset / "split.csv").mkdir()
    elif damage == "subjects bytes":
        subjects.write_bytes(b"name,subject\n\xff\xfe\x80,s0\n")
    else:
        subjects.write_text("name,subject\ns0_L_CC,s0\ns0_L_CC,s9\n")
    args = ["make-crops", str(dataset), "--size", "64", "--per-image", "1", "--out", str(tmp_path / "c")]
    result = CliRunner().invoke(main, [*args, "--subjects", str(subjects)])
    assert result.exit_code == 1 and result.output.startswith("Error: "), result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    named, fix = {
        "split bytes": ("split.csv: not UTF-8 text", "delete it to redraw the split"),
        "split folder": ("split.csv: is a folder", "remove it"),  # not a temporary file and "check the disk"
        "subjects bytes": ("subjects.csv: not UTF-8 text", "save it as a UTF-8 CSV file"),
        "subjects twice": ("subjects.csv:3: 's0_L_CC' is listed again", "keep one row per image"),
    }[damage]
    assert f"{tmp_path}/{'dataset/' if damage.startswith('split') else ''}{named}" in result.output and fix in result.output


def test_a_crop_file_cut_short_is_remade_by_a_rerun(dataset: Path, tmp_path: Path) -> None:
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    damaged = next((tmp_path / "c" / "train" / "images").iterdir())
    whole = damaged.read_bytes()
    damaged.write_bytes(whole[: len(whole) // 2])
    again = make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    assert len(again.done) == 1 and damaged.read_bytes() == whole

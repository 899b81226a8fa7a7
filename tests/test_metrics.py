"""Confusion matrix and scores: hand-computed matrices, exact fractions, CSV round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from mammotools.errors import InputError, MissingFileError
from mammotools.metrics import ConfusionMatrix, read_confusion_csv, scores, write_confusion_csv

NAMES = ["background", "tumor", "nipple", "text"]
# background and tumor are true somewhere; nipple is predicted but never true; text is neither
# (its only prediction falls on an ignored pixel).
TARGET = [[0, 0, 0, 0, 1], [1, 1, 255, 255, 0]]
PRED = [[0, 0, 1, 2, 1], [1, 0, 3, 1, 0]]
MATRIX = [
    [3, 1, 1, 0],  # truth background: 3 right, 1 tumor, 1 nipple
    [1, 2, 0, 0],  # truth tumor: 2 right, 1 background
    [0, 0, 0, 0],
    [0, 0, 0, 0],
]


def exact(x: Fraction) -> float:
    return float(x)


def test_hand_computed_matrix_with_ignore_label_and_absent_classes() -> None:
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor(PRED), torch.tensor(TARGET))
    assert cm.matrix.dtype == torch.int64 and cm.matrix.tolist() == MATRIX
    assert cm.to_numpy().dtype == np.int64 and cm.to_numpy().tolist() == MATRIX


def test_scores_are_the_exact_fractions() -> None:
    s = scores(np.array(MATRIX), NAMES)
    c = s["classes"]
    assert s["pixels"] == 8
    assert s["pixel_accuracy"] == exact(Fraction(5, 8))
    # IoU = tp / (truth + predicted - tp); Dice = 2 tp / (truth + predicted); accuracy = tp / truth
    assert c["background"] == {
        "iou": exact(Fraction(3, 5 + 4 - 3)),
        "dice": exact(Fraction(6, 9)),
        "accuracy": exact(Fraction(3, 5)),
        "present": True,
        "true_pixels": 5,
        "predicted_pixels": 4,
    }
    assert (c["tumor"]["iou"], c["tumor"]["dice"], c["tumor"]["accuracy"]) == (
        exact(Fraction(2, 3 + 3 - 2)),
        exact(Fraction(4, 6)),
        exact(Fraction(2, 3)),
    )
    # predicted, never true: IoU and Dice 0 and counted; accuracy undefined
    assert c["nipple"] == {"iou": 0.0, "dice": 0.0, "accuracy": None, "present": True, "true_pixels": 0, "predicted_pixels": 1}
    # neither true nor predicted: nothing defined, left out of every mean (smp would say 1.0)
    assert c["text"] == {"iou": None, "dice": None, "accuracy": None, "present": False, "true_pixels": 0, "predicted_pixels": 0}
    assert s["mean_iou"] == pytest.approx(exact((Fraction(1, 2) + Fraction(1, 2) + 0) / 3), rel=1e-15)
    assert s["mean_dice"] == pytest.approx(exact((Fraction(2, 3) + Fraction(2, 3) + 0) / 3), rel=1e-15)
    assert s["mean_accuracy"] == pytest.approx(exact((Fraction(3, 5) + Fraction(2, 3)) / 2), rel=1e-15)
    json.dumps(s, allow_nan=False)  # plain, JSON-ready values


def test_paper_three_figures_on_a_three_class_matrix() -> None:
    m = np.array([[50, 3, 2], [4, 30, 6], [1, 5, 9]])
    s = scores(m, ["a", "b", "c"])
    assert s["pixel_accuracy"] == exact(Fraction(89, 110))
    ious = [Fraction(50, 55 + 55 - 50), Fraction(30, 40 + 38 - 30), Fraction(9, 15 + 17 - 9)]
    accs = [Fraction(50, 55), Fraction(30, 40), Fraction(9, 15)]
    assert [s["classes"][k]["iou"] for k in "abc"] == [exact(f) for f in ious]
    assert s["mean_iou"] == pytest.approx(exact(sum(ious, Fraction(0)) / 3), rel=1e-15)
    assert s["mean_accuracy"] == pytest.approx(exact(sum(accs, Fraction(0)) / 3), rel=1e-15)


def test_empty_matrix_scores_nothing() -> None:
    s = scores(np.zeros((2, 2), dtype=np.int64), ["a", "b"])
    assert s["pixels"] == 0 and s["pixel_accuracy"] is None and s["mean_iou"] is None
    assert not s["classes"]["a"]["present"]


def test_scores_refuses_a_wrong_matrix_or_names() -> None:
    with pytest.raises(ValueError, match="2 class name"):
        scores(np.eye(3, dtype=np.int64), ["a", "b"])
    with pytest.raises(ValueError, match="square"):
        scores(np.zeros((2, 3), dtype=np.int64), ["a", "b"])
    with pytest.raises(ValueError, match="non-negative integers"):
        scores(np.eye(2), ["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        scores(np.eye(2, dtype=np.int64), ["a", "a"])


def test_updates_over_batches_equal_one_update_over_their_concatenation() -> None:
    gen = torch.Generator().manual_seed(0)
    batches = []
    for n in (2, 3, 1):
        target = torch.randint(0, 6, (n, 9, 11), generator=gen)
        target[target == 5] = 255
        batches.append((torch.randint(0, 5, (n, 9, 11), generator=gen), target))
    parts, whole = ConfusionMatrix(5), ConfusionMatrix(5)
    for pred, target in batches:
        parts.update(pred, target)
    whole.update(torch.cat([p for p, _ in batches]), torch.cat([t for _, t in batches]))
    assert torch.equal(parts.matrix, whole.matrix)
    kept = torch.cat([t for _, t in batches]) != 255
    assert int(parts.matrix.sum()) == int(kept.sum()) and int(parts.matrix.sum()) < 6 * 9 * 11
    # any batch shape: flat pixels count the same
    flat = ConfusionMatrix(5)
    flat.update(torch.cat([p.flatten() for p, _ in batches]), torch.cat([t.flatten() for _, t in batches]))
    assert torch.equal(flat.matrix, whole.matrix)
    parts.reset()
    assert int(parts.matrix.sum()) == 0


def test_uint8_label_maps_do_not_overflow() -> None:
    cm = ConfusionMatrix(20)
    cm.update(torch.tensor([19, 3], dtype=torch.uint8), torch.tensor([19, 19], dtype=torch.uint8))
    assert cm.matrix[19, 19] == 1 and cm.matrix[19, 3] == 1 and int(cm.matrix.sum()) == 2


def test_update_refuses_bad_labels_and_shapes() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"\[3\] outside \[0, 3\)"):
        cm.update(torch.tensor([0, 3]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\[7\] outside"):
        cm.update(torch.tensor([0, 1]), torch.tensor([7, 1]))
    with pytest.raises(ValueError, match="one shape"):
        cm.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        cm.update(torch.zeros(2), torch.zeros(2, dtype=torch.long))
    cm.update(torch.tensor([9]), torch.tensor([255]))  # ignored pixels are never checked
    assert int(cm.matrix.sum()) == 0


def test_all_reduce_is_a_no_op_without_torch_distributed() -> None:
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor(PRED), torch.tensor(TARGET))
    cm.all_reduce()
    assert cm.matrix.tolist() == MATRIX


def test_all_reduce_sums_over_a_process_group(tmp_path: Path) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        cm = ConfusionMatrix(4)
        cm.update(torch.tensor(PRED), torch.tensor(TARGET))
        cm.all_reduce()
        assert cm.matrix.tolist() == MATRIX
        empty = ConfusionMatrix(4)  # a rank that saw no batch still takes part
        empty.all_reduce()
        assert empty.matrix.tolist() == [[0] * 4] * 4
    finally:
        dist.destroy_process_group()


def test_confusion_csv_round_trip(tmp_path: Path) -> None:
    names = ["background", "tumor, malignant", "mamelon \u00e9", "text"]
    path = tmp_path / "out" / "confusion.csv"
    write_confusion_csv(path, np.array(MATRIX, dtype=np.int64), names)
    assert path.read_text(encoding="utf-8").splitlines()[:2] == [
        'truth\\prediction,background,"tumor, malignant",mamelon \u00e9,text',
        "background,3,1,1,0",
    ]
    matrix, read_names = read_confusion_csv(path)
    assert read_names == names and matrix.dtype == np.int64 and matrix.tolist() == MATRIX
    assert scores(matrix, read_names) == scores(np.array(MATRIX), names)
    assert [p.name for p in path.parent.iterdir()] == ["confusion.csv"]  # no temporary left


def test_confusion_csv_saved_by_a_spreadsheet_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(b"\xef\xbb\xbftruth\\prediction,a,b\r\na,1,2\r\nb,3,4\r\n")
    matrix, names = read_confusion_csv(path)
    assert names == ["a", "b"] and matrix.tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "no header"),
        ("truth\\prediction,a,b\nb,1,2\na,3,4\n", "row names"),
        ("truth\\prediction,a,b\na,1,2\n", "row names"),
        ("truth\\prediction,a,b\na,1\nb,3,4\n", "has 1 count"),
        ("truth\\prediction,a,b\na,1,x\nb,3,4\n", "not an integer"),
        ("truth\\prediction,a,b\na,1,-2\nb,3,4\n", "negative"),
    ],
)
def test_damaged_confusion_csv_is_one_clear_error(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "c.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=problem):
        read_confusion_csv(path)


def test_missing_confusion_csv(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="not found"):
        read_confusion_csv(tmp_path / "nope.csv")


def test_scores_and_csv_need_no_torch(tmp_path: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from mammotools.metrics import scores, write_confusion_csv, read_confusion_csv\n"
        f"write_confusion_csv({str(tmp_path / 'c.csv')!r}, np.eye(2, dtype=np.int64), ['a', 'b'])\n"
        f"m, names = read_confusion_csv({str(tmp_path / 'c.csv')!r})\n"
        "assert scores(m, names)['mean_iou'] == 1.0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def _reduce_on_rank(rank: int, store: str, results: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        cm = ConfusionMatrix(4)
        if rank == 0:  # rank 1 sees no batch
            cm.update(torch.tensor(PRED), torch.tensor(TARGET))
        cm.update(torch.tensor([rank]), torch.tensor([1]))
        cm.all_reduce()
        np.save(f"{results}{rank}.npy", cm.to_numpy())
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_all_reduce_sums_two_ranks(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_reduce_on_rank, args=(str(tmp_path / "store"), str(tmp_path / "rank")), nprocs=2)
    expected = np.array(MATRIX)
    expected[1, 0] += 1
    expected[1, 1] += 1
    for rank in (0, 1):
        assert np.load(tmp_path / f"rank{rank}.npy").tolist() == expected.tolist()

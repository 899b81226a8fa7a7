"""predict end to end on a tiny trained run: label maps of each image's size, a QuPath project out
whose entries name only builders QuPath registers, the input project's annotations kept and the
input untouched, resuming, one bad image failing alone."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset
from PIL import Image

from mammotools.crops import CropSettings, make_crops
from mammotools.errors import InputError
from mammotools.predict import PREDICTION_NAME, PredictSettings, predict_images
from mammotools.qupath import open_source, read_annotations
from mammotools.train import make_config, start_runtime, train_run

# The builders QuPath registers in every release 0.3.2 - 0.6.0 (see mammotools/qupath/writer.py).
REGISTERED = {
    "qupath.imagej.images.servers.ImageJServerBuilder",
    "qupath.lib.images.servers.bioformats.BioFormatsServerBuilder",
}
SETTINGS = PredictSettings(device="cpu", min_area=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    dataset = make_dataset(root)
    make_crops(dataset, root / "c", CropSettings(size=64, per_image=2))
    config = make_config("fast", None, epochs=1, width=0.0625, input_size=64, batch_size=4, workers=0)
    train_run(root / "c", "fcn32", root / "run", config, start_runtime("cpu", "fp32"))
    return root


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_a_folder_of_images_gives_maps_of_their_size_and_a_project(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = predict_images(trained / "run", trained / "images", out, SETTINGS)
    names = sorted(p.stem for p in (trained / "images").iterdir())
    assert sorted(summary.done) == names and not summary.failed
    run_labels = {c["label"] for c in json.loads((trained / "run" / "run.json").read_text())["table"]}
    for name in names:
        image = np.asarray(Image.open(trained / "images" / f"{name}.png"))
        label = np.asarray(Image.open(out / "labels" / f"{name}.png"))
        assert label.shape == image.shape[:2]
        assert set(np.unique(label)) <= run_labels
    project = json.loads((out / "project.qpproj").read_text())
    assert len(project["images"]) == len(names)
    assert {e["serverBuilder"]["providerClassName"] for e in project["images"]} <= REGISTERED
    source = open_source(out)  # our own reader opens the project written
    assert sorted(i.name for i in source.images) == sorted(f"{n}.png" for n in names)
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["status"] for r in rows] == ["done"] * len(names)
    for image in source.images:
        predicted = [a for a in read_annotations(image) if (a.name or "").startswith(PREDICTION_NAME)]
        row = next(r for r in rows if r["name"] == image.stem)
        assert len(predicted) == sum(int(v) for k, v in row.items() if k.startswith("shapes_"))


def test_a_project_in_gives_a_project_out_with_its_annotations_kept(trained: Path, tmp_path: Path) -> None:
    before = digest(trained / "project")
    out = tmp_path / "reviewed"
    summary = predict_images(
        trained / "run", trained / "project", out, PredictSettings(device="cpu", images_dir=str(trained / "images"))
    )
    assert digest(trained / "project") == before  # the input project is never written to
    assert len(summary.done) == 6
    source_in, source_out = open_source(trained / "project"), open_source(out)
    assert [i.name for i in source_out.images] == [i.name for i in source_in.images]
    for image_in, image_out in zip(source_in.images, source_out.images, strict=True):
        drawn = [a for a in read_annotations(image_in) if a.is_annotation]
        kept = [a for a in read_annotations(image_out) if not (a.name or "").startswith(PREDICTION_NAME)]
        assert sorted((a.class_name, round(a.geometry.area, 3)) for a in kept) == sorted(
            (a.class_name, round(a.geometry.area, 3)) for a in drawn
        )
    assert summary.kept == sum(len([a for a in read_annotations(i) if a.is_annotation]) for i in source_in.images)
    project = json.loads((out / "project.qpproj").read_text())
    assert {e["serverBuilder"]["providerClassName"] for e in project["images"]} <= REGISTERED
    assert all(Path(e["serverBuilder"]["uri"].removeprefix("file://")).is_file() for e in project["images"])


def test_a_rerun_skips_what_is_done_and_other_settings_are_refused(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    predict_images(trained / "run", trained / "images", out, SETTINGS)
    again = predict_images(trained / "run", trained / "images", out, SETTINGS)
    assert again.done == [] and len(again.skipped) == 6
    with pytest.raises(InputError, match="holds predictions of another settings"):
        predict_images(trained / "run", trained / "images", out, PredictSettings(device="cpu", min_area=50))
    # how the work is done (window batch, threads) is not what it computes: the run goes on
    assert len(predict_images(trained / "run", trained / "images", out, PredictSettings(device="cpu", min_area=4, batch_size=1,
                                                                                    workers=2)).skipped) == 6  # fmt: skip
    other = tmp_path / "other-run"
    shutil.copytree(trained / "run", other)
    best = other / "stages" / "fcn32" / "best.pt"
    import torch

    state = torch.load(best, weights_only=False)
    state["model"] = {k: v + 1 for k, v in state["model"].items()}
    torch.save(state, best)
    with pytest.raises(InputError, match="holds predictions of another run and model"):
        predict_images(other, trained / "images", out, SETTINGS)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        predict_images(trained / "run", trained / "images", tmp_path / "busy", SETTINGS)
    with pytest.raises(InputError, match="not a training run"):
        predict_images(trained / "images", trained / "images", tmp_path / "x", SETTINGS)
    for inside in (trained / "project", trained / "project" / "predictions"):
        with pytest.raises(InputError, match="is in the input project"):
            predict_images(trained / "run", trained / "project", inside, SETTINGS)
    assert not (trained / "project" / "predictions").exists()
    with pytest.raises(InputError, match="applies to a QuPath project"):
        predict_images(trained / "run", trained / "images", tmp_path / "y", PredictSettings(images_dir=str(trained)))


def test_one_unreadable_image_fails_alone(trained: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    shutil.copytree(trained / "images", images)
    (images / "s0_L_CC.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # truncated
    summary = predict_images(trained / "run", images, tmp_path / "out", SETTINGS)
    assert list(summary.failed) == ["s0_L_CC"] and len(summary.done) == 5
    project = json.loads((tmp_path / "out" / "project.qpproj").read_text())
    assert len(project["images"]) == 5
    rows = {r["name"]: r for r in csv.DictReader((tmp_path / "out" / "predictions.csv").open())}
    assert rows["s0_L_CC"]["status"] == "failed" and rows["s0_L_CC"]["problem"]


def test_when_every_image_fails_nothing_is_left(trained: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(InputError, match="no image could be predicted; bad: "):
        predict_images(trained / "run", images, tmp_path / "out", SETTINGS)
    assert not (tmp_path / "out").exists()


def test_duplicate_entry_names_are_refused_and_old_predictions_replaced(trained: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(trained / "project", project)
    qpproj = json.loads((project / "project.qpproj").read_text())
    qpproj["images"][1]["imageName"] = qpproj["images"][0]["imageName"]
    (project / "project.qpproj").write_text(json.dumps(qpproj))
    with pytest.raises(InputError, match=r"entries 1 and 2 are both named 's0_L_CC.png'; rename one in QuPath"):
        predict_images(trained / "run", project, tmp_path / "out", PredictSettings(images_dir=str(trained / "images")))
    first = tmp_path / "first"
    predict_images(trained / "run", trained / "project", first, PredictSettings(images_dir=str(trained / "images")))
    second = tmp_path / "second"  # the predicted project predicted again: its untouched predictions are replaced
    predict_images(trained / "run", first, second, PredictSettings(images_dir=str(trained / "images")))
    for name in ("s0_L_CC", "s1_R_CC"):
        a = json.loads((first / "annotations" / f"{name}.geojson").read_text())["features"]
        b = json.loads((second / "annotations" / f"{name}.geojson").read_text())["features"]

        def shapes(features: list[dict]) -> list[str]:
            return sorted(json.dumps([f["properties"].get("name"), f["geometry"]], sort_keys=True) for f in features)

        assert shapes(a) == shapes(b)  # the same shapes, none twice


def test_probabilities_are_written_as_8_bit_maps(trained: Path, tmp_path: Path) -> None:
    images = tmp_path / "one"
    images.mkdir()
    shutil.copy(trained / "images" / "s1_R_CC.png", images)
    out = tmp_path / "out"
    predict_images(trained / "run", images, out, PredictSettings(device="cpu", probabilities=True))
    maps = sorted((out / "probabilities" / "s1_R_CC").iterdir())
    table = json.loads((trained / "run" / "run.json").read_text())["table"]
    assert len(maps) == len(table)
    total = sum(np.asarray(Image.open(p), dtype=np.int64) for p in maps)
    assert np.abs(total - 255).max() <= len(maps)  # probabilities sum to 1 (rounding per map)


def test_on_a_dask_cluster_each_worker_predicts_the_same_outputs(trained: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed", reason="the cluster test needs dask's distributed package")
    from mammotools.runner import use_scheduler

    images = tmp_path / "images"
    shutil.copytree(trained / "images", images)
    (images / "s0_L_CC.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # truncated: fails alone on its worker
    predict_images(trained / "run", images, tmp_path / "local", SETTINGS)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with use_scheduler(cluster.scheduler_address):
            summary = predict_images(trained / "run", images, tmp_path / "cluster", SETTINGS)
        assert list(summary.failed) == ["s0_L_CC"] and len(summary.done) == 5
        local, remote = digest(tmp_path / "local"), digest(tmp_path / "cluster")
        same = [k for k in local if k.startswith(("labels/", "annotations/"))]
        assert len(same) == 10 and {k: remote.get(k) for k in same} == {k: local[k] for k in same}

        def entries(out: Path) -> list[dict]:  # the project's own uri names its folder
            return json.loads((out / "project.qpproj").read_text())["images"]

        assert len(entries(tmp_path / "cluster")) == 5 and entries(tmp_path / "cluster") == entries(tmp_path / "local")
        rows = {r["name"]: r["status"] for r in csv.DictReader((tmp_path / "cluster" / "predictions.csv").open())}
        assert rows == {name: "failed" if name == "s0_L_CC" else "done" for name in rows} and len(rows) == 6


def test_a_worker_that_sees_other_weights_stops_the_run(trained: Path, tmp_path: Path) -> None:
    import dataclasses

    from mammotools.cluster import WorkerProblem
    from mammotools.predict.inputs import PredictInput
    from mammotools.predict.run import ModelSpec, predict_on_worker

    spec = ModelSpec(
        run=trained / "run", stage="fcn32", digest="0" * 40, classes=(), width=0.0625, encoder="resnet34", precision="fp32",
        scale=1.0, window=64, out_size=64, overlap=0.5, settings=SETTINGS, out=tmp_path / "out",
    )  # fmt: skip
    item = PredictInput("s1_R_CC", trained / "images" / "s1_R_CC.png")
    with pytest.raises(WorkerProblem, match=r"Dask worker on .*best.pt: not the weights this prediction started with"):
        predict_on_worker(item, spec)
    assert not (tmp_path / "out").exists()
    with pytest.raises(WorkerProblem, match=r"best\.pt: missing here"):
        predict_on_worker(item, dataclasses.replace(spec, run=tmp_path / "gone"))


def test_workers_with_several_threads_predict_what_one_thread_does(trained: Path, tmp_path: Path) -> None:
    """A worker's threads share its model: one image at a time, in eval mode (a model left in
    train mode by one thread's image changed another's prediction)."""
    distributed = pytest.importorskip("distributed", reason="the cluster test needs dask's distributed package")
    from mammotools.runner import use_scheduler

    images = tmp_path / "images"
    images.mkdir()
    for i in range(12):
        shutil.copy(trained / "images" / "s1_L_CC.png", images / f"a{i:02d}.png")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=4, processes=True, dashboard_address=None) as cluster:
        with use_scheduler(cluster.scheduler_address):
            predict_images(trained / "run", images, tmp_path / "out", SETTINGS)
    local = tmp_path / "local"
    predict_images(trained / "run", images, local, SETTINGS)
    for name in ("labels", "annotations"):
        out = {p.name: p.read_bytes() for p in (tmp_path / "out" / name).iterdir()}
        assert len(out) == 12 and out == {p.name: p.read_bytes() for p in (local / name).iterdir()}


def test_a_rerun_redoes_outputs_deleted_cut_short_or_damaged(trained: Path, tmp_path: Path) -> None:
    """Issue 20, item 3: a rerun trusted its records ("6 skipped (complete)") with outputs gone."""
    out = tmp_path / "out"
    settings = PredictSettings(device="cpu", min_area=4, probabilities=True)
    predict_images(trained / "run", trained / "images", out, settings)
    clean = digest(out)
    (out / "labels" / "s0_L_CC.png").unlink()
    geojson = out / "annotations" / "s0_R_CC.geojson"
    geojson.write_bytes(geojson.read_bytes()[: geojson.stat().st_size // 2])
    label = out / "labels" / "s1_L_CC.png"
    label.write_bytes(label.read_bytes()[:-20])
    (out / "records" / "s1_R_CC.json").write_text("[]")
    next(iter((out / "probabilities" / "s2_L_CC").iterdir())).unlink()
    again = predict_images(trained / "run", trained / "images", out, settings)
    assert sorted(again.done) == ["s0_L_CC", "s0_R_CC", "s1_L_CC", "s1_R_CC", "s2_L_CC"] and again.skipped == ["s2_R_CC"]
    redone = digest(out)
    timed = ("records/", "predictions.csv")  # they hold timings
    assert {k: v for k, v in redone.items() if not k.startswith(timed)} == {
        k: v for k, v in clean.items() if not k.startswith(timed)
    }  # the same bytes as the run without damage
    assert sorted(redone) == sorted(clean)


def test_a_damaged_prediction_json_is_one_line_and_its_advice_works(trained: Path, tmp_path: Path) -> None:
    """Issue 20, item 10: prediction.json of ``[]`` was a traceback (``earlier.get`` on a list)."""
    out = tmp_path / "out"
    settings = PredictSettings(device="cpu", min_area=4)
    predict_images(trained / "run", trained / "images", out, settings)
    clean = digest(out)
    for damage in ("[]", "{not json", ""):
        (out / "prediction.json").write_text(damage)
        with pytest.raises(InputError, match=r"prediction\.json: damaged .* delete that folder and predict again"):
            predict_images(trained / "run", trained / "images", out, settings)
    shutil.rmtree(out)  # the advice
    predict_images(trained / "run", trained / "images", out, settings)
    timed = ("records/", "predictions.csv")
    assert {k: v for k, v in digest(out).items() if not k.startswith(timed)} == {
        k: v for k, v in clean.items() if not k.startswith(timed)
    }


def test_a_rerun_redoes_a_label_map_of_another_image_or_overwritten_inside(trained: Path, tmp_path: Path) -> None:
    """Review of issue 20: a label map copied from another image (another size), one with bytes
    overwritten inside (signature and IEND kept), or a GeoJSON edited to other features were
    skipped as complete."""
    out = tmp_path / "out"
    settings = PredictSettings(device="cpu", min_area=4)
    predict_images(trained / "run", trained / "images", out, settings)
    clean = digest(out)
    labels = out / "labels"
    sizes = {p.name: Image.open(p).size for p in labels.iterdir()}
    (labels / "s0_L_CC.png").write_bytes(b"")  # emptied
    other = next(n for n in sizes if sizes[n] != sizes.get("s1_L_CC.png"))
    (labels / "s1_L_CC.png").write_bytes((labels / other).read_bytes())  # another image's map
    data = bytearray((labels / "s1_R_CC.png").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])  # overwritten inside
    (labels / "s1_R_CC.png").write_bytes(bytes(data))
    geojson = out / "annotations" / "s2_L_CC.geojson"
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": [1]}))
    again = predict_images(trained / "run", trained / "images", out, settings)
    assert {"s0_L_CC", "s1_L_CC", "s1_R_CC", "s2_L_CC"} <= set(again.done)
    timed = ("records/", "predictions.csv")
    assert {k: v for k, v in digest(out).items() if not k.startswith(timed)} == {
        k: v for k, v in clean.items() if not k.startswith(timed)
    }


def test_a_file_name_that_is_not_utf8_fails_alone_with_one_line(trained: Path, tmp_path: Path) -> None:
    """Issue 20, item 6: cv2.imread of such a name crashed predict (a segmentation fault)."""
    import os

    images = tmp_path / "images"
    shutil.copytree(trained / "images", images)
    Path(os.fsdecode(bytes(images) + b"/caf\xe9.png")).write_bytes((images / "s1_R_CC.png").read_bytes())
    out = tmp_path / "out"
    summary = predict_images(trained / "run", images, out, SETTINGS)
    assert len(summary.done) == 6 and list(summary.failed) == ["caf\\xe9"]
    assert "not valid UTF-8" in summary.failed["caf\\xe9"] and "rename the file" in summary.failed["caf\\xe9"]
    rows = {r["name"]: r for r in csv.DictReader((out / "predictions.csv").open(encoding="utf-8"))}
    assert rows["caf\\xe9"]["status"] == "failed" and len(rows) == 7
    assert sorted(p.name for p in (out / "labels").iterdir()) == sorted(f"{n}.png" for n in summary.done)
    json.loads((out / "project.qpproj").read_text("utf-8"))


def test_a_file_name_too_long_for_its_outputs_fails_alone(trained: Path, tmp_path: Path) -> None:
    """Review of issue 20: a 251-byte name stopped the whole run (its record's temporary name passed
    the file system's 255 bytes) with advice to check the disk; only the first images were done."""
    images = tmp_path / "images"
    shutil.copytree(trained / "images", images)
    long = "L" * 251
    (images / f"{long}.png").write_bytes((images / "s1_R_CC.png").read_bytes())
    summary = predict_images(trained / "run", images, tmp_path / "out", SETTINGS)
    assert len(summary.done) == 6 and list(summary.failed) == [long]
    assert "251 bytes long" in summary.failed[long] and "rename it to at most 200 bytes" in summary.failed[long]


def test_a_rerun_removes_the_temporaries_of_a_killed_run(trained: Path, tmp_path: Path) -> None:
    """Review of issue 20: predict never removed the `.NAME.tmp-PID` files a killed run left."""
    out = tmp_path / "out"
    predict_images(trained / "run", trained / "images", out, SETTINGS)
    stale = [out / "labels" / ".s0_L_CC.png.tmp-999999", out / ".project.qpproj.tmp-999998"]
    for path in stale:
        path.write_bytes(b"x" * 1000)
    predict_images(trained / "run", trained / "images", out, SETTINGS)
    assert not any(path.exists() for path in stale)


def test_invalid_annotations_of_the_input_are_repaired_and_their_classes_listed(trained: Path, tmp_path: Path) -> None:
    """Issue 20, item 16: a self-intersecting annotation was copied as it was, its class missing
    from the output's classes.json."""
    from shapely.geometry import shape

    project = tmp_path / "project"
    shutil.copytree(trained / "project", project)
    annotations = project / "annotations" / "s0_L_CC.geojson"
    collection = json.loads(annotations.read_text())
    bowtie = {"type": "Polygon", "coordinates": [[[10, 10], [50, 50], [50, 10], [10, 50], [10, 10]]]}
    collection["features"].append({"type": "Feature", "geometry": bowtie, "properties": {
        "objectType": "annotation", "classification": {"name": "Calcification cluster", "color": [0, 200, 200]}}})  # fmt: skip
    annotations.write_text(json.dumps(collection))
    out = tmp_path / "out"
    summary = predict_images(trained / "run", project, out, PredictSettings(device="cpu", images_dir=str(trained / "images")))
    assert len(summary.done) == 6
    assert [w for w in summary.warnings if "s0_L_CC" in w and "repaired with make_valid" in w and "Self-intersection" in w]
    features = json.loads((out / "annotations" / "s0_L_CC.geojson").read_text())["features"]
    repaired = [f for f in features if f["properties"].get("classification", {}).get("name") == "Calcification cluster"]
    assert len(repaired) == 1 and shape(repaired[0]["geometry"]).is_valid
    assert shape(repaired[0]["geometry"]).area == pytest.approx(800)  # the two triangles of the bow tie
    listed = {c["name"] for c in json.loads((out / "classifiers" / "classes.json").read_text())["pathClasses"]}
    for name in ("s0_L_CC", "s1_R_CC"):
        used = {f["properties"]["classification"]["name"]
                for f in json.loads((out / "annotations" / f"{name}.geojson").read_text())["features"]
                if "classification" in f["properties"]}  # fmt: skip
        assert used <= listed, used - listed
    rerun = predict_images(trained / "run", project, out, PredictSettings(device="cpu", images_dir=str(trained / "images")))
    assert len(rerun.skipped) == 6 and not rerun.warnings  # shown once, by the run that made them


def test_label_maps_equal_the_whole_image_method_and_what_cannot_fit_is_refused(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20, item 13: predict held the whole (classes, H, W) float32 scores and their int64
    argmax (71 bytes per pixel); it now reads, blends and reduces a band of rows at a time."""
    import torch

    from mammotools.data import OUTSIDE_IMAGE, scale_image
    from mammotools.images import image_bits, read_image
    from mammotools.inference import resize_scores, sliding_window_scores
    from mammotools.predict import memory
    from mammotools.predict.run import ModelSpec, _file_digest, run_classes
    from mammotools.train import final_model, run_normalization, stage_window

    out = tmp_path / "out"
    predict_images(trained / "run", trained / "images", out, SETTINGS)
    description, best, config = final_model(trained / "run")
    stage = description["stages"][-1]
    spec = ModelSpec(
        run=trained / "run", stage=stage, digest=_file_digest(trained / "run" / "stages" / stage / "best.pt"),
        classes=tuple(run_classes(trained / "run", description)), width=config.width, encoder=config.encoder,
        precision=config.precision, scale=config.scale, window=stage_window(description)[0],
        out_size=stage_window(description)[1], normalization=run_normalization(description), overlap=config.overlap,
        settings=SETTINGS, out=out,
    )  # fmt: skip
    job = spec.job(best)
    for path in sorted((trained / "images").iterdir()):
        pixels = read_image(path)
        x = torch.from_numpy(scale_image(pixels, image_bits(pixels)))
        scores = sliding_window_scores(job.model, x, len(spec.classes), spec.window, spec.out_size, spec.overlap, 4,
                                       "cpu", None, OUTSIDE_IMAGE)  # fmt: skip
        whole = resize_scores(scores, pixels.shape[:2]).numpy()  # the old method: the whole array, then its argmax
        label = job.to_values[whole.argmax(0)]
        written = np.asarray(Image.open(out / "labels" / f"{path.stem}.png"))
        top2 = np.sort(whole, 0)[-2:]
        clear = top2[1] - top2[0] > 1e-5  # ties aside
        assert (written[clear] == label[clear]).all() and clear.mean() > 0.99, path.name
    monkeypatch.setattr(memory, "available_bytes", lambda: 200 * 1024**2)  # less than the model's fixed share
    with pytest.raises(InputError, match=r"no image could be predicted; s0_L_CC: .*s0_L_CC.png: 300 x 200 px \(0 Mpx\) "
                                         r"needs about 0\.3 GB to predict, 0\.2 GB of memory is available; free memory"):
        predict_images(trained / "run", trained / "images", tmp_path / "small", SETTINGS)
    assert not (tmp_path / "small").exists()

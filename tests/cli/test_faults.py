"""The machine failing under a command: a full disk, a read-only folder, a second run into the
same --out, a killed run. Each gives one line (no traceback), a non-zero exit, no half-written
file, and a rerun that completes the same outputs.

The disk and read-only tests mount a small tmpfs or a read-only bind (root only; skipped, saying
why, elsewhere). Each also has a variant that makes the write fail by patching, which runs anywhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import feature, rect, write_project

from mammotools.cli import main

TISSUE = Path(__file__).resolve().parents[2] / "docs" / "classes" / "breast_tissue.json"


def _mount(*args: str) -> bool:
    return os.geteuid() == 0 and subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)):
        pytest.skip("needs root and mount (a small tmpfs to fill)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    if not (_mount("--bind", str(path), str(path)) and _mount("-o", "remount,bind,ro", str(path))):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
        pytest.skip("needs root and mount (a read-only bind mount)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def project(root: Path, n: int = 4) -> Path:
    rng = np.random.default_rng(0)
    images = {}
    for i in range(n):
        pixels = rng.integers(0, 4096, (300, 400)).astype(np.uint16)
        images[f"case{i}_L_CC.png"] = (
            pixels,
            [feature(rect(0, 0, 280, 300), "Mammary gland"), feature(rect(20, 20, 60, 60), "Tumor")],
        )
    return write_project(root, images)


def files_of(folder: Path) -> dict[str, bytes]:
    """Every output file's bytes (the per-item records hold timings, so only their names)."""
    return {
        str(p.relative_to(folder)): b"" if p.parent.name == "records" else p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def cli(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def assert_one_line(code: int, output: str, *needles: str) -> None:
    assert code == 1 and "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_full_disk_export_then_rerun_completes_identically(tmp_path: Path) -> None:
    proj = project(tmp_path / "p")
    code, out = cli("export-qupath", proj, "--images", tmp_path / "p" / "images", "--out", tmp_path / "ok", "--workers", "1")
    assert code == 0, out
    with tmpfs(tmp_path / "small", "96k") as disk:
        code, out = cli("export-qupath", proj, "--images", tmp_path / "p" / "images", "--out", disk / "ds", "--workers", "1")
        assert_one_line(
            code, out, f"--out {disk / 'ds'}: No space left on device", "are complete in", "run the same command again"
        )
        for path in (disk / "ds").rglob("*.png"):  # what is there decodes
            assert ".tmp-" not in path.name
        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
        code, out = cli("export-qupath", proj, "--images", tmp_path / "p" / "images", "--out", disk / "ds", "--workers", "1")
        assert code == 0, out
        assert files_of(disk / "ds") == files_of(tmp_path / "ok")


def test_read_only_dataset_make_crops_says_where(tmp_path: Path) -> None:
    proj = project(tmp_path / "p")
    assert cli("export-qupath", proj, "--images", tmp_path / "p" / "images", "--out", tmp_path / "ds")[0] == 0
    with read_only(tmp_path / "ds"):
        code, out = cli("make-crops", tmp_path / "ds", "--size", "64", "--out", tmp_path / "crops")
        assert_one_line(code, out, f"{tmp_path / 'ds' / 'split.csv'}: Read-only file system", "writable")
    assert not (tmp_path / "crops").exists() or not any((tmp_path / "crops").rglob("*.png"))


def test_write_failures_anywhere_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = project(tmp_path / "p", n=2)
    assert cli("export-qupath", proj, "--images", tmp_path / "p" / "images", "--out", tmp_path / "ds")[0] == 0
    assert cli("make-crops", tmp_path / "ds", "--size", "64", "--out", tmp_path / "crops")[0] == 0
    import mammotools.augment.crop
    import mammotools.augment.run
    import mammotools.files as files
    import mammotools.importers.label_images  # noqa: F401 (imported before the patch, so the patch is undone whole)

    # every module that binds atomic_path by name is imported before the patch: one imported
    # during it would keep the failing function after the test (augment, in a run of tests/cli alone)

    real = files.atomic_path

    @contextlib.contextmanager
    def failing(path: object) -> Iterator[Path]:
        with real(path) as tmp:  # type: ignore[arg-type]
            raise OSError(errno.EROFS, "Read-only file system", str(path))
            yield tmp

    for module in ("mammotools.files", "mammotools.importers.label_images"):
        monkeypatch.setattr(f"{module}.atomic_path", failing)
    code, out = cli("augment", tmp_path / "crops", "--out", tmp_path / "aug")
    assert_one_line(code, out, "Read-only file system", "writable")
    labels = tmp_path / "labels"
    labels.mkdir()
    import cv2

    cv2.imwrite(str(labels / "case0_L_CC.png"), np.full((300, 400), 64, np.uint8))
    code, out = cli("import-masks", labels, "--images", tmp_path / "p" / "images", "--values", "64=Background",
                    "--classes", TISSUE, "--out", tmp_path / "proj2")  # fmt: skip
    assert_one_line(code, out, "Read-only file system")
    assert not (tmp_path / "proj2").exists()


def test_a_long_value_is_cut_in_the_message(tmp_path: Path) -> None:
    code, out = cli("make-crops", tmp_path / ("x" * 300), "--size", "64", "--out", tmp_path / "c", "--per-image", "1")
    assert code != 0
    bad = tmp_path / "classes.json"
    bad.write_text('[{"name": "' + "A" * 10_000_000 + '", "label": 1, "color": [1, 2, 3]}]')
    code, out = cli("inspect", tmp_path, "--classes", bad)
    assert code != 0 and len(out) < 5000 and "characters cut" in out


def test_a_second_run_into_the_same_out_is_refused_naming_the_first(tmp_path: Path) -> None:
    from mammotools.files import output_lock

    out = tmp_path / "crops"
    with output_lock(out):
        probe = subprocess.run(
            [sys.executable, "-m", "mammotools", "make-crops", str(tmp_path / "nothing"), "--size", "64", "--out", str(out)],
            capture_output=True, text=True,
        )  # fmt: skip
    assert probe.returncode == 1 and f"another mammotools run (process {os.getpid()})" in probe.stderr
    assert not out.exists()  # nothing written by the refused run, nor by the lock


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").is_file() else ""
        found += [int(c) for c in text.split()]
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the worker processes")
def test_workers_end_when_the_main_process_is_killed(tmp_path: Path) -> None:
    proj = project(tmp_path / "p", n=8)
    run = subprocess.Popen(
        [sys.executable, "-m", "mammotools", "export-qupath", str(proj), "--images", str(tmp_path / "p" / "images"),
         "--out", str(tmp_path / "ds"), "--workers", "2", "--sigma", "30"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    workers: list[int] = []
    deadline = time.time() + 60
    while time.time() < deadline and len(workers) < 2:
        workers = [c for c in _children(run.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text(errors="replace")]
        time.sleep(0.2)
    if len(workers) < 2:
        run.kill()
        pytest.skip("the run ended before its workers could be seen")
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() and "Z" not in _state(w) for w in workers):
        time.sleep(0.2)
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and "Z" not in _state(w)]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


def test_a_killed_import_leaves_nothing_a_rerun_does_not_remove(tmp_path: Path) -> None:
    stale = tmp_path / f".proj{'.tmp-'}999999"  # a process id that does not run
    (stale / "annotations").mkdir(parents=True)
    (stale / "annotations" / "x.geojson").write_text("{}")
    alive = tmp_path / f".proj.tmp-{os.getppid()}"  # a live process's temporary is not touched
    alive.mkdir()
    labels, images = tmp_path / "labels", tmp_path / "images"
    labels.mkdir()
    images.mkdir()
    import cv2

    cv2.imwrite(str(images / "a.png"), np.zeros((40, 50), np.uint16))
    cv2.imwrite(str(labels / "a.png"), np.full((40, 50), 64, np.uint8))
    code, out = cli("import-masks", labels, "--images", images, "--values", "64=Background", "--classes", TISSUE,
                    "--out", tmp_path / "proj")  # fmt: skip
    assert code == 0, out
    assert not stale.exists() and alive.exists() and (tmp_path / "proj" / "project.qpproj").is_file()


def test_values_without_sense_are_refused(tmp_path: Path) -> None:
    from mammotools.errors import InputError
    from mammotools.importers.mias import parse_info

    masks = ["import-masks", tmp_path, "--images", tmp_path, "--values", "1=Background", "--out", tmp_path / "o"]
    for args in (
        [*masks, "--tolerance", "nan"],
        [*masks, "--tolerance", "1e9"],
        ["make-crops", tmp_path, "--size", "64", "--per-image", "100000000", "--out", tmp_path / "c"],
        ["export-qupath", tmp_path, "--sigma", "200", "--out", tmp_path / "d"],
    ):
        code, out = cli(*args)
        assert code == 2 and "Invalid value" in out and "Traceback" not in out, (args, out)
    info = tmp_path / "Info.txt"
    info.write_text("mdb001 G CIRC B 535 425 99999999\n")
    with pytest.raises(InputError, match="radius 99,999,999 px"):
        parse_info(info)


def test_the_progress_counts_every_image_of_the_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    bad = {"type": "Polygon", "coordinates": [[["1", 0], [5, 0], [5, 5], ["1", 0]]]}
    images = {
        "good.png": (rng.integers(0, 4096, (40, 50)).astype(np.uint16), [feature(rect(0, 0, 20, 20), "Tumor")]),
        "bad.png": (rng.integers(0, 4096, (40, 50)).astype(np.uint16), [feature(bad, "Tumor")]),
    }
    proj = write_project(tmp_path, images)
    code, out = cli("export-qupath", proj, "--images", tmp_path / "images", "--out", tmp_path / "ds")
    assert code == 1 and "Exporting 2 image(s)" in out and "1 exported" in out and "1 failed" in out
    assert "failed: bad" in out and "not all numbers" in out


# --- found by a hostile review ------------------------------------------------------------------


def test_an_edited_export_manifest_cannot_send_outputs_elsewhere(tmp_path: Path) -> None:
    proj = project(tmp_path / "p", n=2)
    assert cli("export-qupath", proj, "--images", tmp_path / "p" / "images", "--out", tmp_path / "ds")[0] == 0
    manifest = tmp_path / "ds" / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("\ncase0_L_CC,", "\n../../ds/labels/case0_L_CC,", 1))
    code, out = cli("make-crops", tmp_path / "ds", "--size", "64", "--out", tmp_path / "crops")
    assert_one_line(code, out, "manifest.csv:2", "not a file name export-qupath writes")
    assert not (tmp_path / "ds" / "labels" / "case0_L_CC.json").exists() and not (tmp_path / "crops").exists()


def test_the_lock_does_not_depend_on_tmpdir(tmp_path: Path) -> None:
    from mammotools.files import output_lock

    out = tmp_path / "crops"
    with output_lock(out):
        probe = subprocess.run(
            [sys.executable, "-m", "mammotools", "make-crops", str(tmp_path / "nothing"), "--size", "64", "--out", str(out)],
            capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmp_path)},
        )  # fmt: skip
    assert probe.returncode == 1 and "another mammotools run" in probe.stderr


def test_a_killed_worker_is_one_line(tmp_path: Path) -> None:
    from mammotools.errors import ResourceError
    from mammotools.runner import run_all

    with pytest.raises(ResourceError, match="a worker process was killed"):
        run_all(os._exit, [3, 4, 5], (), 2, lambda *a: None)


def test_damaged_records_and_cut_outputs_are_redone(tmp_path: Path) -> None:
    import json

    proj = project(tmp_path / "p", n=2)
    args = ("export-qupath", proj, "--images", tmp_path / "p" / "images", "--out", tmp_path / "ds")
    assert cli(*args)[0] == 0
    clean = files_of(tmp_path / "ds")
    record = tmp_path / "ds" / "records" / "case0_L_CC.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "regions": 5}))
    image = tmp_path / "ds" / "images" / "case1_L_CC.png"
    image.write_bytes(image.read_bytes()[:5000])
    code, out = cli(*args)
    assert code == 0 and "2 exported" in out, out
    assert files_of(tmp_path / "ds") == clean
    assert cli("make-crops", tmp_path / "ds", "--size", "64", "--out", tmp_path / "c")[0] == 0
    clean = files_of(tmp_path / "c")
    (tmp_path / "c" / "records" / "case0_L_CC.json").write_text('{"name": "case0_L_CC", "crops": 5}')
    code, out = cli("make-crops", tmp_path / "ds", "--size", "64", "--out", tmp_path / "c")
    assert code == 0 and "1 image(s) cropped" in out, out
    assert files_of(tmp_path / "c") == clean


def test_a_complete_export_reruns_on_a_read_only_copy(tmp_path: Path) -> None:
    proj = project(tmp_path / "p", n=2)
    args = ("export-qupath", proj, "--images", tmp_path / "p" / "images", "--out", tmp_path / "ds")
    assert cli(*args)[0] == 0
    with read_only(tmp_path / "ds"):
        code, out = cli(*args)
    assert code == 0 and "0 exported, 2 skipped" in out, out


def test_warning_and_failure_lines_are_cut(capsys: pytest.CaptureFixture[str]) -> None:
    from mammotools.cli.options import report_failures, report_warnings

    report_warnings(["x" * 10_000_000], Path("out"))
    with pytest.raises(SystemExit):
        report_failures([("img", "y" * 10_000_000)])
    err = capsys.readouterr().err
    assert len(err) < 5000 and err.count("characters cut") == 2


def test_negative_seeds_are_refused_up_front(tmp_path: Path) -> None:
    for args in (["make-crops", tmp_path, "--size", "64", "--seed", "-1", "--out", tmp_path / "c"],
                 ["make-crops", tmp_path, "--size", "64", "--split-seed", "-1", "--out", tmp_path / "c"],
                 ["augment", tmp_path, "--seed", "-1", "--out", tmp_path / "a"]):  # fmt: skip
        code, out = cli(*args)
        assert code == 2 and "Invalid value" in out, out
    assert not (tmp_path / "c").exists() and not (tmp_path / "a").exists()

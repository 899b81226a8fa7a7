"""export-qupath, make-crops and augment on a local Dask cluster of 2 worker processes (started
here, nothing beyond this machine): the same bytes as a local run; a worker killed mid-run costs
at most its item, and a rerun completes the same outputs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import feature, make_dataset, rect, write_project

from mammotools.augment import augment_dataset
from mammotools.crops import CropSettings, make_crops
from mammotools.errors import InputError
from mammotools.export import ExportSettings, export_dataset
from mammotools.runner import use_scheduler

distributed = pytest.importorskip("distributed", reason="the cluster tests need dask's distributed package")


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file's bytes (records hold timings: only their names)."""
    return {
        str(p.relative_to(folder)): b"" if p.parent.name == "records" else p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def cluster() -> object:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def test_a_cluster_run_writes_the_bytes_of_a_local_run(tmp_path: Path, cluster: object) -> None:
    dataset = make_dataset(tmp_path)  # exported locally
    project, images = tmp_path / "project", tmp_path / "images"
    settings = ExportSettings(sigma=2, point_radius=4)
    address = cluster.scheduler_address  # type: ignore[attr-defined]
    with use_scheduler(address):
        export_dataset(project, tmp_path / "ds-cluster", images, settings=settings)
    export_dataset(project, tmp_path / "ds-local", images, settings=settings, workers=1)
    assert outputs(tmp_path / "ds-cluster") == outputs(tmp_path / "ds-local")
    crop_settings = CropSettings(size=64, per_image=3)
    make_crops(dataset, tmp_path / "c-local", crop_settings, workers=1)
    with use_scheduler(address):
        make_crops(dataset, tmp_path / "c-cluster", crop_settings)
    local = outputs(tmp_path / "c-local")
    assert local and outputs(tmp_path / "c-cluster") == local
    augment_dataset(tmp_path / "c-local", tmp_path / "a-local", ("flip_lr", "noise"), workers=1)
    with use_scheduler(address):
        augment_dataset(tmp_path / "c-local", tmp_path / "a-cluster", ("flip_lr", "noise"))
    assert outputs(tmp_path / "a-cluster") == outputs(tmp_path / "a-local")


def test_a_worker_killed_mid_run_costs_only_its_image(tmp_path: Path, cluster: object) -> None:
    rng = np.random.default_rng(0)
    project = write_project(
        tmp_path,
        {f"case{i:02d}_L_CC.png": (rng.integers(0, 4096, (600, 800)).astype(np.uint16),
                                   [feature(rect(0, 0, 500, 600), "Mammary gland"), feature(rect(50, 50, 200, 200), "Tumor")])
         for i in range(16)},
    )  # fmt: skip
    settings = ExportSettings(sigma=12)
    export_dataset(project, tmp_path / "local", tmp_path / "images", settings=settings, workers=1)
    client = distributed.Client(cluster.scheduler_address)  # type: ignore[attr-defined]
    pids = list(client.run(os.getpid).values())
    out = tmp_path / "cluster"
    killed: list[int] = []

    def kill_one_when_started() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not any((out / "records").glob("*.json")):
            time.sleep(0.05)
        os.kill(pids[0], signal.SIGKILL)
        killed.append(len(list((out / "records").glob("*.json"))))

    killer = threading.Thread(target=kill_one_when_started)
    killer.start()
    with use_scheduler(cluster.scheduler_address):  # type: ignore[attr-defined]
        first = export_dataset(project, out, tmp_path / "images", settings=settings)
    killer.join()
    assert killed and killed[0] < 16  # the worker died while images were still to do
    assert len(first.exported) + len(first.failed) == 16 and len(first.failed) <= 1
    with use_scheduler(cluster.scheduler_address):  # type: ignore[attr-defined]
        export_dataset(project, out, tmp_path / "images", settings=settings)
    assert outputs(out) == outputs(tmp_path / "local")
    client.close()


def test_an_unreachable_scheduler_is_one_line() -> None:
    from mammotools.cluster import run_on_cluster

    with pytest.raises(InputError, match="no Dask scheduler answers there"):
        run_on_cluster("tcp://127.0.0.1:9", print, [1], (), lambda *a: None, lambda *a: (None, None), lambda n: None)


def test_the_scheduler_option_and_variable(tmp_path: Path, cluster: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from mammotools.cli import main

    make_dataset(tmp_path)
    address = cluster.scheduler_address  # type: ignore[attr-defined]
    base = ["export-qupath", str(tmp_path / "project"), "--images", str(tmp_path / "images"), "--sigma", "2"]
    result = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "a"), "--scheduler", address])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("MAMMOTOOLS_SCHEDULER", address)
    result = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    monkeypatch.delenv("MAMMOTOOLS_SCHEDULER")
    result = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "c"), "--workers", "1"])
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b") == outputs(tmp_path / "c")


@pytest.mark.parametrize("command", ["export-qupath", "make-crops", "augment", "predict"])
def test_an_unreachable_scheduler_writes_nothing(tmp_path: Path, command: str) -> None:
    from click.testing import CliRunner

    from mammotools.cli import main

    make_dataset(tmp_path)
    args = {
        "export-qupath": [str(tmp_path / "project"), "--images", str(tmp_path / "images")],
        "make-crops": [str(tmp_path / "dataset"), "--size", "64"],
        "augment": [str(tmp_path / "dataset")],
        "predict": [str(tmp_path / "run"), str(tmp_path / "images")],
    }[command]
    result = CliRunner().invoke(main, [command, *args, "--out", str(tmp_path / "x"), "--scheduler", "tcp://127.0.0.1:9"])
    assert result.exit_code == 1 and "no Dask scheduler answers there" in result.output and not (tmp_path / "x").exists()


@pytest.mark.parametrize("greeting", [b"", b"SSH-2.0-OpenSSH_9.2\r\n" + bytes(range(256)) * 4])
def test_a_server_that_is_not_a_scheduler_is_one_line_soon(greeting: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """A port that answers but is not Dask (an HTTP or SSH server) neither hangs nor crashes."""
    import socket

    from mammotools import cluster

    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 2)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(greeting)  # then says nothing more, as an HTTP server waiting for a request line
            held.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(InputError, match="no Dask scheduler answers there"):
        cluster.connect(f"tcp://127.0.0.1:{port}")
    assert time.monotonic() - start < 10
    server.close()


def test_a_cluster_left_without_workers_stops_the_run_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from mammotools import cluster
    from mammotools.errors import ResourceError
    from mammotools.runner import call_checked

    monkeypatch.setattr(cluster, "NO_WORKERS_SECONDS", 2)
    monkeypatch.setattr(cluster, "POLL_SECONDS", 0.5)
    finished: list[float] = []
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as c:

        def done(item: float, result: object, error: str | None) -> None:
            finished.append(item)
            if len(finished) == 1:
                c.scale(0)  # the worker's job ends (a queue's walltime)

        with pytest.raises(ResourceError, match=r"no Dask worker for 2 s \(\d item\(s\) not done\).*start workers and run"):
            cluster.run_on_cluster(c.scheduler_address, time.sleep, [0.5] * 8, (), done, call_checked, lambda n: None)
    assert 1 <= len(finished) < 8


@contextlib.contextmanager
def scheduler_and_worker(tmp_path: Path, *worker_args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """A `dask scheduler` and one `dask worker` process, as a user starts them: (address, scheduler)."""
    dask = str(Path(sys.executable).parent / "dask")
    info = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([dask, "scheduler", "--scheduler-file", str(info), "--port", "0", "--no-dashboard",
                                  "--host", "127.0.0.1"], **quiet)  # fmt: skip
    worker = None
    try:
        deadline = time.time() + 60
        while not info.is_file() and time.time() < deadline:
            time.sleep(0.2)
        worker = subprocess.Popen([dask, "worker", "--scheduler-file", str(info), "--no-dashboard", *worker_args], **quiet)
        yield json.loads(info.read_text())["address"], scheduler
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.kill()
                process.wait()


def test_a_scheduler_lost_mid_run_is_one_line(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Also with several threads a worker, whose results come back together: never taken for a disk error."""
    from mammotools import cluster
    from mammotools.errors import ResourceError
    from mammotools.runner import call_checked

    with scheduler_and_worker(tmp_path, "--nthreads", "4") as (address, scheduler):
        finished: list[float] = []

        def done(item: float, result: object, error: str | None) -> None:
            finished.append(item)
            if len(finished) == 8:
                scheduler.kill()

        start = time.monotonic()
        capfd.readouterr()
        with pytest.raises(ResourceError, match=r"the Dask scheduler was lost mid-run.*run the same command again"):
            cluster.run_on_cluster(address, time.sleep, [0.05] * 400, (), done, call_checked, lambda n: None)
        assert time.monotonic() - start < 120 and len(finished) < 400
        assert "Traceback" not in capfd.readouterr().err  # dask's own log lines kept from the terminal


def test_a_worker_without_mammotools_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from mammotools import cluster

    preload = tmp_path / "no_mammotools.py"
    preload.write_text("import sys\nsys.modules['mammotools'] = None  # as on a machine where it is not installed\n")
    with scheduler_and_worker(tmp_path, "--nthreads", "1", "--preload", str(preload)) as (address, _):
        with pytest.raises(InputError, match=r"a Dask worker cannot run mammotools .*install mammotools \S+ on every worker"):
            cluster.check_scheduler(address)

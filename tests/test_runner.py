"""The process pool: as many workers as the work is worth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import mammotools.runner as runner
from mammotools.export import export_dataset

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture
def ctrl_c_default() -> Iterator[None]:
    """Ctrl-C as a terminal's process has it: an earlier test of the session (a Dask cluster's
    start, say) may leave SIGINT ignored in this process, and a child started from it would
    inherit that and never stop."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def test_choose_workers() -> None:
    cores = runner.usable_cores()
    assert runner.choose_workers(0, 3, 0.05) == 1  # a few small images: no pool
    assert runner.choose_workers(0, 100, 1e6) == cores  # a cohort: one per core
    assert runner.choose_workers(0, 2, 1e6) == min(cores, 2)  # never more than the items
    assert runner.choose_workers(0, 10, 2 * runner.MIN_SECONDS_PER_WORKER) == min(cores, 2)
    assert runner.choose_workers(8, 3, 0.0) == 3  # asked for: at most one per item
    assert runner.choose_workers(1, 50, 1e6) == 1


def test_sample_export_runs_in_this_process_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[int] = []
    real = runner.run_all

    def spy(fn, items, args, workers, done):  # type: ignore[no-untyped-def]
        used.append(workers)
        return real(fn, items, args, workers, done)

    monkeypatch.setattr(runner, "run_all", spy)
    summary = export_dataset(SAMPLE / "project", tmp_path / "ds", SAMPLE / "images")
    assert summary.exported and used == [1]


def test_ctrl_c_while_workers_start_is_one_line(tmp_path: Path, ctrl_c_default: None) -> None:
    """Issue 19: Ctrl-C while the pool's workers were starting printed a KeyboardInterrupt traceback
    per worker (SpawnProcess) before click's "Aborted!". The workers now ignore it; the main
    process stops the queue and says how far the run got, exit status 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import make_dataset

    dataset = make_dataset(tmp_path)
    command = [sys.executable, "-m", "mammotools", "augment", str(dataset), "--out", str(tmp_path / "a"), "--workers", "2"]
    command += ["--variants", "flip_lr,rotate_cw"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    seen = ""
    while "Augmenting" not in seen:  # the plan is made: the workers are being started now
        line = proc.stderr.readline()
        assert line, seen
        seen += line
    time.sleep(0.2)  # inside the workers' start-up (importing numpy and OpenCV takes about a second)
    os.killpg(proc.pid, signal.SIGINT)  # as the terminal does: every process of the command
    _, err = proc.communicate(timeout=60)
    err = seen + err
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "Aborted!" not in err, err
    stopped = [line for line in err.splitlines() if line.startswith("Stopped:")]
    assert len(stopped) == 1 and "image(s) are complete" in stopped[0] and "run the same command again" in stopped[0]
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)  # the same command finishes the rest
    assert rerun.returncode == 0 and "0 failed" in rerun.stdout, rerun.stderr


def _write_after_a_while(item: str, folder: Path) -> str:
    import time

    time.sleep(0.3)
    (folder / item).write_text("done")
    return item


def test_items_finished_while_the_pool_winds_down_are_counted(tmp_path: Path) -> None:
    """Review of issue 19: after Ctrl-C the "N of M complete" line left out the items the workers
    finished while the pool shut down (0 said, 3 records on disk)."""
    reported: list[str] = []

    def done(item: str, result: object, error: str | None) -> None:
        reported.append(item)
        if len(reported) == 1:
            raise KeyboardInterrupt  # Ctrl-C as the first result comes in: the others are in flight

    with pytest.raises(KeyboardInterrupt):
        runner.run_all(_write_after_a_while, [f"i{n}" for n in range(6)], (tmp_path,), 2, done)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert len(written) >= 2 and sorted(reported) == written  # every item written is reported, none twice


def test_ctrl_c_while_the_workers_start_is_not_lost(ctrl_c_default: None) -> None:
    """The full suite under load: a Ctrl-C that came while the workers were being started (SIGINT
    ignored in the main process then) was dropped, and the command ran to its end (exit 0)."""
    import signal
    import threading
    import time

    with pytest.raises(KeyboardInterrupt):
        with runner._ctrl_c_to_main_only():
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)  # arrives during the start
            time.sleep(0.1)
        time.sleep(1.0)  # delivered once the start is over

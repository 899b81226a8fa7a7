"""The process pool: as many workers as the work is worth."""

from __future__ import annotations

from pathlib import Path

import pytest

import mammotools.runner as runner
from mammotools.export import export_dataset

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


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

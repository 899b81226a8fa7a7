"""How many processes the default ``--workers`` starts, against one per core and one process.

Times ``mammotools export-qupath`` on the bundled 3-image sample (and ``make-crops`` on its
export) as whole commands, each run in a fresh process into a fresh folder, medians of N runs:

* default (``--workers 0``): as many processes as the work is worth (runner.choose_workers);
* one per core (``--workers <cores>``): the default before, the named baseline;
* one process (``--workers 1``): the floor.

    python benchmarks/workers.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mammotools", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    cores = os.cpu_count() or 1
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}; medians of {runs} runs")
    settings = {"default (--workers 0)": "0", f"one per core (--workers {cores}), baseline": str(cores), "one process": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        dataset = base / "dataset"
        timed(["export-qupath", str(SAMPLE / "project"), "--images", str(SAMPLE / "images"), "--out", str(dataset)])
        for command in ("export-qupath", "make-crops"):
            times: dict[str, list[float]] = {k: [] for k in settings}
            for i in range(runs):
                for label, workers in settings.items():  # interleaved: the machine's noise hits all alike
                    out = base / f"out-{i}-{workers}"
                    if command == "export-qupath":
                        args = ["export-qupath", str(SAMPLE / "project"), "--images", str(SAMPLE / "images")]
                    else:
                        args = ["make-crops", str(dataset), "--size", "256"]
                    times[label].append(timed([*args, "--out", str(out), "--workers", workers]))
                    shutil.rmtree(out)
            baseline = statistics.median(times[f"one per core (--workers {cores}), baseline"])
            print(f"\n{command} on the 3-image sample (whole command, seconds)")
            for label, values in times.items():
                median = statistics.median(values)
                print(f"  {label:42s} {median:6.2f}   {baseline / median:5.2f}x the baseline's speed")


if __name__ == "__main__":
    main()

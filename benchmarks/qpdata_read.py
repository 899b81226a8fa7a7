"""Reading a QuPath project's objects: ``data.qpdata`` directly against QuPath's GeoJSON export.

The same 131 objects (10 annotations, 121 cells with 126 measurements each) of the coscialab
QuPath 0.6.0 project (../shared/data/qupath/coscialab-0.6.0): ``read_qpdata`` on
``data/1/data.qpdata`` against ``read_geojson`` on ``Single_cells.geojson``, QuPath's own export
of that hierarchy. Both return every object (annotations and cells) as shapely geometries.
Prints the median of repeated runs of each, objects per second, and the ratio.

    python benchmarks/qpdata_read.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from mammotools.qupath.geojson import read_geojson
from mammotools.qupath.qpdata import read_qpdata

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT.parent / "shared" / "data" / "qupath" / "coscialab-0.6.0"
QPDATA = PROJECT / "data" / "1" / "data.qpdata"
GEOJSON = PROJECT / "Single_cells.geojson"


def median_seconds(read, path: Path, repeats: int) -> tuple[float, int]:
    count = len(read(path))  # warm up (imports, file cache)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        read(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    if not QPDATA.exists() or not GEOJSON.exists():
        raise SystemExit(f"the coscialab project is not at {PROJECT}")
    results = {}
    # interleave the two readers so that machine noise hits both alike
    for _ in range(3):
        for name, read, path in (("read_qpdata", read_qpdata, QPDATA), ("read_geojson", read_geojson, GEOJSON)):
            seconds, count = median_seconds(read, path, max(1, args.repeats // 3))
            results.setdefault(name, []).append((seconds, count))
    print(f"{'reader':<14}{'file':<34}{'objects':>8}{'annotations':>12}{'median ms':>11}{'objects/s':>12}{'annotations/s':>15}")
    rates = {}
    for name, read, path in (("read_qpdata", read_qpdata, QPDATA), ("read_geojson", read_geojson, GEOJSON)):
        seconds = statistics.median(s for s, _ in results[name])
        count = results[name][0][1]
        annotations = sum(1 for a in read(path) if a.is_annotation)
        rates[name] = count / seconds
        size = f"{path.name} ({path.stat().st_size // 1024} KiB)"
        print(
            f"{name:<14}{size:<34}{count:>8}{annotations:>12}{seconds * 1000:>11.2f}{rates[name]:>12,.0f}"
            f"{annotations / seconds:>15,.0f}"
        )
    # both readers parse every object to find the annotations, so the two rates have the same ratio
    ratio = rates["read_qpdata"] / rates["read_geojson"]
    print(f"read_qpdata / read_geojson: {ratio:.2f}x the annotations (and objects) per second")


if __name__ == "__main__":
    main()

"""Data preparation end to end, as a user runs it: export-qupath, make-crops --size 900 and
augment on N synthetic full-field mammograms (4096x5120, 12-bit in 16-bit PNG, 14 classes,
about 17,600 vertices each), each command a separate process. Prints, per step and in total:
wall seconds per image, CPU seconds per image (the steadier figure on a loaded machine), peak
memory of the command, disk written per image, and export-qupath's share of time spent decoding
and encoding images (from its per-image records), and each step's share of time spent decoding
and encoding images (profiled in one process on two of the images), next to the 2.5 s per image
target.

Beside it, in the same run, the baseline: the same commands from mammotools as it was before
the cohort-scale work (``--baseline REV``, default the commit the issue measured; taken from
this repository's git history into a temporary folder; ``--baseline none`` skips it). The runs
alternate, so both see the same load.

    python benchmarks/end_to_end.py [--images 10] [--runs 3] [--workers 0] [--baseline REV|none]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

H, W = 5120, 4096  # as benchmarks/export_masks.py
TARGET = 2.5  # s per full-field image, the three steps together
BASELINE = "6b09945"  # main before the cohort-scale work: OpenCV's PNG encoder, 8-bit masks, PNGs decoded twice
REPO = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, n: int) -> None:
    """N images with their GeoJSON exports (the same annotations, other pixels). Run in a child
    process: a command's peak memory (ru_maxrss) starts from its parent's at fork, so the
    process that starts the commands must stay small."""
    import cv2
    import numpy as np
    from shapely.geometry import mapping

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from export_masks import workload

    features = [
        {"type": "Feature", "geometry": mapping(g), "properties": {"objectType": "annotation", "classification": {"name": c}}}
        for c, geoms in workload().items()
        for g in geoms
    ]
    yy, xx = np.mgrid[0:H, 0:W]
    base = 1500 + 1200 * np.sin(xx / 700) * np.cos(yy / 900)
    folder.mkdir(parents=True)
    for i in range(n):
        rng = np.random.default_rng(i)
        image = (base + rng.normal(0, 40, (H, W))).clip(0, 4095).astype(np.uint16)
        cv2.imwrite(str(folder / f"mammo{i:03d}.png"), image)
        (folder / f"mammo{i:03d}.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))


# Runs the command and prints the largest resident size of it and of its worker processes.
PEAK = (
    "import atexit, resource, sys\n"
    "def peak():\n"
    "    own, kids = (resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))\n"
    "    sys.stderr.write(f'\\nPEAK_KB {max(own, kids)}\\n')\n"
    "atexit.register(peak)\n"
    "from mammotools.cli import main\n"
    "sys.argv = ['mammotools', *sys.argv[1:]]\n"
    "main()\n"
)


def run_step(args: list[str], package: Path | None = None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB of the command or its largest worker) of one command in a child
    process; ``package``: a folder holding another mammotools to run instead of this one."""
    env = dict(os.environ, PYTHONPATH=str(package)) if package else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd: not this checkout, whose mammotools/ would come first on the path of `python -c`
    done = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"mammotools {' '.join(args)} failed ({package or 'this checkout'}):\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_kb = int(done.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return wall, cpu, peak_kb / 1024


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def baseline_package(rev: str, folder: Path) -> Path:
    """The mammotools package of commit ``rev``, unpacked into ``folder``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "mammotools"], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"--baseline {rev}: not in this repository's history ({archive.stderr.decode().strip()}); "
                         "give a commit, or --baseline none")  # fmt: skip
    folder.mkdir()
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def one_run(inputs: Path, root: Path, n: int, workers: list[str], package: Path | None, rows: dict, shares: list[float]) -> None:
    """The three commands once, into fresh folders under ``root``; per-step figures appended to ``rows``."""
    for name in ("ds", "c900", "aug"):
        shutil.rmtree(root / name, ignore_errors=True)
    steps = (
        ("export-qupath", ["export-qupath", str(inputs), "--out", str(root / "ds"), *workers], root / "ds"),
        ("make-crops --size 900",
         ["make-crops", str(root / "ds"), "--size", "900", "--out", str(root / "c900"), *workers], root / "c900"),
        ("augment", ["augment", str(root / "c900"), "--out", str(root / "aug"), *workers], root / "aug"),
    )  # fmt: skip
    for label, command, out in steps:
        wall, cpu, peak = run_step(command, package)
        rows.setdefault(label, []).append((wall / n, cpu / n, peak, disk_mb(out) / n))
    records = [json.loads(p.read_text()) for p in (root / "ds" / "records").glob("*.json")]
    coding = sum(r["timings"]["decode"] + r["timings"]["encode_image"] + r["timings"]["encode_maps"] for r in records)
    shares.append(coding / sum(sum(r["timings"].values()) for r in records))


CODING = {"encode_png", "encode_mask_png", "encode_label_png", "read_image", "read_label_png", "png_checked"}


def coding_shares(inputs: Path, root: Path) -> None:
    """In this process, one thread: the three steps on ``inputs`` under cProfile; print as JSON
    each step's share of time in mammotools' PNG/image encoders and decoders (CODING, which do
    not call one another). Run in a child per package, like the commands."""
    import cProfile
    import pstats

    import cv2

    from mammotools.augment import augment_dataset
    from mammotools.augment.run import parse_variants
    from mammotools.crops import CropSettings, make_crops
    from mammotools.export import export_dataset

    cv2.setNumThreads(1)  # so that every encode runs on the profiled thread
    steps = {
        "export-qupath": lambda: export_dataset(inputs, root / "ds", workers=1),
        "make-crops --size 900": lambda: make_crops(root / "ds", root / "c900", CropSettings(size=900), workers=1),
        "augment": lambda: augment_dataset(root / "c900", root / "aug", parse_variants(None), workers=1),
    }
    shares = {}
    for label, step in steps.items():
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.runcall(step)
        total = time.perf_counter() - start
        stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
        coding = sum(v[3] for (file, _, name), v in stats.items() if name in CODING and "mammotools" in file)
        shares[label] = coding / total
    print(json.dumps(shares))


def same_pixels(ours: Path, base: Path) -> str:
    """Whether both runs wrote the same PNG files with the same pixels (and the same other files,
    but records and timings), in words."""
    import cv2
    import numpy as np
    from PIL import Image

    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "records" not in p.parts}

    names = files(ours)
    if names != files(base):
        return f"DIFFERENT file lists ({len(names ^ files(base))} names differ)"
    differ = []
    for name in sorted(names):
        a, b = ours / name, base / name
        if name.endswith(".png"):
            with Image.open(a) as ia, Image.open(b) as ib:
                palette = ia.mode == "P" or ib.mode == "P"
                same = not palette or (ia.mode == ib.mode and ia.getpalette() == ib.getpalette())
            if palette:  # label maps: the same values and colours
                same = same and np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
            else:  # as OpenCV reads them (a 1-bit mask and an 8-bit one are both 0/255)
                same = same and np.array_equal(cv2.imread(str(a), cv2.IMREAD_UNCHANGED), cv2.imread(str(b), cv2.IMREAD_UNCHANGED))
        elif name.endswith((".json", ".csv")):  # settings and manifests name their own folder
            same = a.read_text().replace(str(ours), "OUT") == b.read_text().replace(str(base), "OUT")
        else:
            same = a.read_bytes() == b.read_bytes()
        if not same:
            differ.append(name)
    pngs = sum(n.endswith(".png") for n in names)
    if differ:
        return f"{len(differ)} of {len(names)} files DIFFER, e.g. {differ[:3]}"
    return f"the same {len(names)} files; all {pngs} PNGs decode to the same pixels (and palettes)"


def report(title: str, rows: dict, shares: list[float], coding: dict[str, float]) -> tuple[float, float]:
    """Print the per-step medians; return the total (wall, CPU) seconds per image."""
    print(title)
    print(f"  {'step':<24}{'wall s/image':>14}{'CPU s/image':>13}{'peak MB':>9}{'disk MB/image':>15}{'coding %':>10}")
    total_wall = total_cpu = total_disk = 0.0
    for label, values in rows.items():
        wall, cpu, peak, disk = (statistics.median(v[k] for v in values) for k in range(4))
        total_wall, total_cpu, total_disk = total_wall + wall, total_cpu + cpu, total_disk + disk
        print(f"  {label:<24}{wall:>14.2f}{cpu:>13.2f}{peak:>9.0f}{disk:>15.1f}{100 * coding[label]:>10.0f}")
    print(f"  {'total':<24}{total_wall:>14.2f}{total_cpu:>13.2f}{'':>9}{total_disk:>15.1f}")
    print(f"  export-qupath's own records: decoding and encoding images is {100 * statistics.median(shares):.0f}% of its "
          "per-image time")  # fmt: skip
    return total_wall, total_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--baseline", default=BASELINE, help="a commit of this repository to compare with, or none")
    ap.add_argument("--make-inputs", help=argparse.SUPPRESS)
    ap.add_argument("--coding-shares", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make_inputs:
        make_inputs(Path(args.make_inputs), args.images)
        return
    if args.coding_shares:
        coding_shares(*map(Path, args.coding_shares))
        return
    n = args.images
    load_before = os.getloadavg()[0]  # other work on the machine; the commands' own load comes on top
    workers = ["--workers", str(args.workers)]
    ours: tuple[dict, list[float]] = ({}, [])
    base: tuple[dict, list[float]] = ({}, [])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        package = baseline_package(args.baseline, root / "baseline") if args.baseline != "none" else None
        subprocess.run([sys.executable, __file__, "--make-inputs", str(root / "in"), "--images", str(n)], check=True)
        for _ in range(args.runs):
            one_run(root / "in", root / "ours", n, workers, None, *ours)
            if package is not None:
                one_run(root / "in", root / "base", n, workers, package, *base)
        same = same_pixels(root / "ours", root / "base") if package is not None else ""
        two = root / "in2"  # the coding shares: two images, in one profiled process
        two.mkdir()
        for f in sorted((root / "in").iterdir())[:4]:
            os.link(f, two / f.name)
        shares_of = {}
        for tag, pkg in (("ours", None), ("base", package)):
            if tag == "base" and package is None:
                continue
            env = dict(os.environ, PYTHONPATH=str(pkg)) if pkg else None
            (root / f"profile-{tag}").mkdir()
            done = subprocess.run([sys.executable, __file__, "--coding-shares", str(two), str(root / f"profile-{tag}")],
                                  capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"profiling failed ({pkg or 'this checkout'}):\n{done.stderr[-2000:]}")
            shares_of[tag] = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"{n} images of {W}x{H} px, 16-bit, 14 classes; {args.runs} run(s), medians; machine: {os.cpu_count()} cores, "
        f"load average {load_before:.1f} before the runs ({os.getloadavg()[0]:.1f} after); --workers {args.workers}"
    )
    import mammotools

    print("  coding %: share of the step's time in decoding and encoding images (PNG and other formats), profiled "
          "in one process on 2 of the images")  # fmt: skip
    wall, cpu = report(f"mammotools (this checkout, {Path(mammotools.__file__).parent})", *ours, shares_of["ours"])
    if package is not None:
        title = f"baseline: mammotools at {args.baseline}, before the cohort-scale work"
        base_wall, base_cpu = report(title, *base, shares_of["base"])
        print(f"speed-up end to end: {base_wall / wall:.2f}x wall, {base_cpu / cpu:.2f}x CPU")
        print(f"outputs against the baseline's: {same}")
    verdict = "met" if wall <= TARGET else "MISSED"
    print(f"target <= {TARGET} s per image, end to end: {verdict} ({wall:.2f} s)")


if __name__ == "__main__":
    main()

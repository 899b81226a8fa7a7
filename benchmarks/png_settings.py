"""PNG encoding settings: size against encode/decode time, for every kind of image data preparation writes.

Kinds (synthetic, deterministic): a full-size 4096x5120 0/255 region mask (1-bit PNG, encode_mask_png);
a full-size 8-bit label map with 6 values (palette PNG, encode_label_png); the full-size 12-bit-in-16-bit
mammogram of benchmarks/end_to_end.py (encode_png); a 900x900 crop of it (make-crops); that crop after
the noise, rotate_cw and clahe variants (augment); a 900x900 label crop. The reference for each kind is
OpenCV's PNG encoder at its default settings (1-bit for masks, PLTE added for labels: how the project
wrote them with OpenCV); also timed: the project's own function as it is now (mammotools.png), its
ISA-L deflate at levels 0-3 with no row filter and with Up, its zlib fallback, cv2.imencode over
compression levels x zlib strategies, then filter choices at the 2-3 best points. Every output is
decoded (cv2.imdecode, IMREAD_UNCHANGED; palette PNGs with PIL, as read_label_png does) and checked
equal to its input. One thread (cv2.setNumThreads(1)), as in a worker process. Medians of N encodes
and decodes; a setting whose first encode takes over 3x the reference's is timed 3 times at most; a
setting whose output is byte-identical to an earlier row's is shown as such and not timed again.

    python benchmarks/png_settings.py [--full-runs 5] [--crop-runs 15] [--kinds mask,label,...]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from mammotools import png
from mammotools.augment.variants import apply_variant
from mammotools.classes import default_class_table
from mammotools.images import encode_mask_png, encode_png
from mammotools.palette import encode_label_png

H, W = 5120, 4096
Y0, X0, SIDE = 2150, 1550, 900  # the crop window: a lesion (label 1) inside the breast (13)
C, S, F, BILEVEL = cv2.IMWRITE_PNG_COMPRESSION, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_BILEVEL
STRATEGIES = {"DEFAULT": 0, "FILTERED": 1, "HUFFMAN": 2, "RLE": 3}
FILTERS = {"NONE": 8, "SUB": 16, "UP": 32, "PAETH": 128, "FAST": 56}  # FAST = NONE|SUB|UP, adaptive
# (level, strategy) grid; the filter is left to libpng (adaptive over all 5 for 8/16-bit, NONE for 1-bit)
GRID = [(lv, "DEFAULT") for lv in (0, 1, 2, 3, 6, 9)] + [(1, "FILTERED"), (6, "FILTERED"), (9, "FILTERED")]
GRID += [(1, "RLE"), (6, "RLE"), (1, "HUFFMAN"), (6, "HUFFMAN")]
SLOW = 3.0  # a setting slower than this many times the reference is timed min(N, 3) times


def outline(rng: np.random.Generator) -> np.ndarray:
    """The breast outline of benchmarks/export_masks.py: a wobbly half ellipse on the left edge."""
    t = np.linspace(-np.pi / 2, np.pi / 2, 5000)
    wobble = 1 + 0.01 * np.sin(t * 40) + 0.004 * rng.standard_normal(t.size)
    return np.c_[3300 * np.cos(t) * wobble, 2500 + 2300 * np.sin(t) * wobble].round().astype(np.int32)


def blob(x: float, y: float, r: float) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    rr = r * (1 + 0.2 * np.sin(3 * a + x))
    return np.c_[x + rr * np.cos(a), y + rr * np.sin(a)].round().astype(np.int32)


def make_images() -> dict[str, tuple[np.ndarray, str]]:
    """kind -> (array, what the project writes it with)."""
    edge = outline(np.random.default_rng(7))
    mask = np.zeros((H, W), np.uint8)
    cv2.fillPoly(mask, [edge, blob(3700, 400, 60), blob(3800, 4800, 90)], 255)
    label = np.zeros((H, W), np.uint8)
    cv2.fillPoly(label, [edge], 13)  # mammary gland
    pect = np.zeros((H, W), np.uint8)
    cv2.fillPoly(pect, [np.array([(0, 0), (1600, 0), (0, 3000)], np.int32)], 1)
    label[(pect == 1) & (label == 13)] = 7  # pectoral muscle
    cv2.polylines(label, [edge], False, 5, thickness=80)  # skin
    cv2.fillPoly(label, [blob(2000, 2600, 120), blob(2400, 3300, 60)], 1)  # tumours
    cv2.fillPoly(label, [blob(3220, 2500, 90)], 3)  # areola
    yy, xx = np.mgrid[0:H, 0:W]
    base = 1500 + 1200 * np.sin(xx / 700) * np.cos(yy / 900)
    image = (base + np.random.default_rng(0).normal(0, 40, (H, W))).clip(0, 4095).astype(np.uint16)
    crop = np.ascontiguousarray(image[Y0 : Y0 + SIDE, X0 : X0 + SIDE])
    lcrop = np.ascontiguousarray(label[Y0 : Y0 + SIDE, X0 : X0 + SIDE])
    kinds = {"mask": (mask, "encode_mask_png"), "label": (label, "encode_label_png"), "mammogram": (image, "encode_png")}
    kinds["crop"] = (crop, "encode_png")
    for i, name in enumerate(("noise", "rotate_cw", "clahe")):
        kinds[f"crop-{name}"] = (apply_variant(name, crop, lcrop, np.random.default_rng(i), 12, 0)[0], "encode_png")
    kinds["label-crop"] = (lcrop, "encode_label_png")
    return kinds


@dataclass
class Row:
    name: str
    enc: float = 0.0  # s, median
    size: int = 0
    dec: float = 0.0
    same_as: str = ""  # the earlier row with identical bytes, if any
    point: tuple[int, str] = (-1, "")  # (level, strategy) of a grid row


def params_for(level: int | None, strategy: str | None, filt: str | None, bilevel: bool) -> list[int]:
    """COMPRESSION before STRATEGY: OpenCV resets the strategy to DEFAULT when it reads COMPRESSION."""
    p = [BILEVEL, 1] if bilevel else []
    p += [C, level] if level is not None else []
    p += [S, STRATEGIES[strategy]] if strategy else []
    return p + ([F, FILTERS[filt]] if filt else [])


def imencode(array: np.ndarray, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(".png", array, params)
    assert ok
    return buf.tobytes()


def as_palette(gray: bytes, palette: bytes) -> bytes:
    """OpenCV's 8-bit gray PNG as a palette PNG (colour type 3 in IHDR, then PLTE), as encode_label_png did it."""
    ihdr = bytearray(gray[16:29])
    ihdr[9] = 3

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return gray[:8] + chunk(b"IHDR", bytes(ihdr)) + chunk(b"PLTE", palette) + gray[33:]


def measure(encode: Callable[[], bytes], decode: Callable[[bytes], np.ndarray], array: np.ndarray, runs: int,
            seen: dict[bytes, str], name: str, slow_after: float | None = None) -> Row:  # fmt: skip
    """Time encode() (runs times; min(runs, 3) if slow), then decode(); check the round trip."""
    start = time.perf_counter()
    data = encode()
    first = time.perf_counter() - start
    if data in seen:
        return Row(name, size=len(data), same_as=seen[data])
    seen[data] = name
    n = min(runs, 3) if slow_after is not None and first > SLOW * slow_after else runs
    enc = [first]
    for _ in range(n - 1):
        start = time.perf_counter()
        encode()
        enc.append(time.perf_counter() - start)
    dec = []
    for _ in range(n):
        start = time.perf_counter()
        back = decode(data)
        dec.append(time.perf_counter() - start)
        assert back.dtype == array.dtype and np.array_equal(back, array), f"{name}: not lossless"
    return Row(name, statistics.median(enc), len(data), statistics.median(dec))


def cv_decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)  # type: ignore[return-value]


def pil_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def bench_kind(kind: str, array: np.ndarray, how: str, runs: int) -> list[Row]:
    """The reference (OpenCV's default, as the project wrote this kind with OpenCV), the project's function as
    it is now, the level x strategy grid, then filters at the best points. Label maps: every setting is
    written as a palette PNG (OpenCV's gray PNG, IHDR patched, PLTE added) and read with PIL."""
    bilevel, labels, seen = kind == "mask", kind.startswith("label"), dict[bytes, str]()
    palette = default_class_table().palette()
    decode = pil_decode if labels else cv_decode
    if labels:
        ref, now = (lambda: as_palette(imencode(array, []), palette)), (lambda: encode_label_png(array, palette))
    elif bilevel:
        ref, now = (lambda: imencode(array, [BILEVEL, 1])), (lambda: encode_mask_png(array))
    else:
        ref, now = (lambda: imencode(array, [])), (lambda: encode_png(array))
    cur = measure(ref, decode, array, runs, seen, "OpenCV default" + (" 1-bit" if bilevel else " + PLTE" if labels else ""))
    rows = [cur, measure(now, decode, array, runs, seen, f"mammotools {how}, now")]
    # mammotools.png's own choices: ISA-L's levels (0-3) by row filter, and the zlib fallback at level 1
    ours = png.encode_palette if labels else png.encode_bilevel if bilevel else png.encode_image
    extra = (palette,) if labels else ()
    for filt, filt_name in ((png.NONE, "NONE"), (png.UP, "UP")):
        for level in (0, 1, 2, 3):
            rows.append(measure(lambda f=filt, lv=level: ours(array, *extra, row_filter=f, level=lv), decode, array, runs, seen,
                                f"ISA-L L{level} filter={filt_name}"))  # fmt: skip
    deflate, png._deflate = png._deflate, zlib
    try:
        for filt, filt_name in ((png.NONE, "NONE"), (png.UP, "UP")):
            rows.append(measure(lambda f=filt: ours(array, *extra, row_filter=f, level=1), decode, array, runs, seen,
                                f"zlib L1 filter={filt_name} (no isal)"))  # fmt: skip
    finally:
        png._deflate = deflate
    if bilevel:
        rows.append(measure(lambda: imencode(array, []), cv_decode, array, runs, seen, "OpenCV default 8-bit"))

    def run(level: int, strategy: str, filt: str | None) -> Row:
        p = params_for(level, strategy, filt, bilevel)
        name = ("1-bit " if bilevel else "") + f"L{level} {strategy}" + (f" filter={filt}" if filt else "")
        enc = (lambda: as_palette(imencode(array, p), palette)) if labels else (lambda: imencode(array, p))
        row = measure(enc, decode, array, runs, seen, name, cur.enc)
        row.point = (level, strategy)
        return row

    grid = [run(lv, st, None) for lv, st in GRID]
    rows += grid
    points = {(1, "RLE")}  # the default's level and strategy, with each filter
    timed = [r for r in grid if not r.same_as]
    small_enough = [r for r in timed if r.size <= 1.1 * cur.size]  # + the fastest of these and the smallest of the next
    points |= {min(small_enough, key=lambda r: r.enc).point} if small_enough else set()
    points |= {min((r for r in timed if r.enc <= SLOW * cur.enc), key=lambda r: r.size, default=cur).point} - {(-1, "")}
    for lv, st in sorted(points):
        rows += [run(lv, st, f) for f in FILTERS]
    return rows


def fastest_within(rows: list[Row], cur: Row) -> Row:  # size at most +10%
    return min((r for r in rows if not r.same_as and r.size <= 1.1 * cur.size), key=lambda r: r.enc)


def smallest_within(rows: list[Row], cur: Row) -> Row:  # encode time at most +5% (timing noise)
    return min((r for r in rows if not r.same_as and r.enc <= 1.05 * cur.enc), key=lambda r: r.size)


def print_table(kind: str, array: np.ndarray, rows: list[Row], runs: int) -> None:
    cur = rows[0]
    print(f"\n{kind}: {array.shape[1]}x{array.shape[0]} {array.dtype}, raw {array.nbytes / 1e3:,.0f} KB (medians of {runs})")
    print(f"  {'#':>2}  {'setting':<36}{'encode ms':>10}{'size KB':>11}{'decode ms':>10}{'enc speed-up':>13}{'size ratio':>11}")
    for i, r in enumerate(rows, 1):
        if r.same_as:
            print(f"  {i:>2}  {r.name:<36}{'':>10}{r.size / 1e3:>11,.1f}   = '{r.same_as}' (byte-identical output; not timed)")
        else:
            mark = "  <- reference" if r is cur else ""
            print(f"  {i:>2}  {r.name:<36}{r.enc * 1e3:>10.1f}{r.size / 1e3:>11,.1f}{r.dec * 1e3:>10.1f}"
                  f"{cur.enc / r.enc:>12.2f}x{r.size / cur.size:>10.3f}x{mark}")  # fmt: skip


def flag_checks(crop: np.ndarray, mask: np.ndarray) -> None:
    """Which explicit settings equal OpenCV's defaults, and whether each flag changes the bytes."""

    def same(a: np.ndarray, p: list[int], q: list[int]) -> str:
        return "yes" if imencode(a, p) == imencode(a, q) else "NO"

    m, one = np.ascontiguousarray(mask[2000:2900, :900]), [BILEVEL, 1]
    print("flag checks (900x900 16-bit crop; 1-bit mask crop):")
    print(f"  default == L1 + RLE + SUB filter:                           {same(crop, [], [C, 1, S, 3, F, 16])}")
    print(f"  L1 alone == L1 + DEFAULT strategy + all filters (adaptive): {same(crop, [C, 1], [C, 1, S, 0, F, 248])}")
    print(f"  STRATEGY given before COMPRESSION is reset to DEFAULT:      {same(crop, [S, 3, C, 1], [C, 1])}")
    print(f"  1-bit: default == L1 + RLE + SUB; L1 alone == NONE filter:  {same(m, one, [*one, C, 1, S, 3, F, 16])}"
          f"; {same(m, [*one, C, 1], [*one, C, 1, F, 8])}")  # fmt: skip
    ref = imencode(crop, [C, 6])
    for flag, variants in (("COMPRESSION", [[C, lv] for lv in (0, 1, 9)]), ("STRATEGY", [[C, 6, S, s] for s in (1, 2, 3, 4)]),
                           ("FILTER", [[C, 6, F, f] for f in (8, 16, 32, 64, 128, 56)])):  # fmt: skip
        honoured = all(imencode(crop, v) != ref for v in variants)
        print(f"  IMWRITE_PNG_{flag} changes the output for every value tried: {'yes' if honoured else 'NO: partly ignored'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full-runs", type=int, default=5, help="repeats for full-size images")
    ap.add_argument("--crop-runs", type=int, default=15, help="repeats for 900x900 crops")
    ap.add_argument("--kinds", default="", help="comma-separated subset of: mask,label,mammogram,crop,crop-noise,"
                    "crop-rotate_cw,crop-clahe,label-crop (default: all; all take about 4 min)")  # fmt: skip
    args = ap.parse_args()
    cv2.setNumThreads(1)
    libs = [" ".join(ln.split()) for ln in cv2.getBuildInformation().splitlines() if ln.strip().startswith(("PNG:", "ZLib:"))]
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; OpenCV {cv2.__version__} "
          f"({'; '.join(libs)}); cv2.setNumThreads(1) -> {cv2.getNumThreads()} thread")  # fmt: skip
    print("rows: Ln STRATEGY = IMWRITE_PNG_COMPRESSION n then IMWRITE_PNG_STRATEGY; without filter=, libpng picks the\n"
          "row filter (adaptive over all five for 8/16-bit, NONE for 1-bit); KB = 1000 bytes")  # fmt: skip
    pil_decode(imencode(np.zeros((8, 8), np.uint8), []))  # PIL's PNG plugin loads on first use: not in the timings
    kinds = make_images()
    flag_checks(kinds["crop"][0], kinds["mask"][0])
    chosen = args.kinds.split(",") if args.kinds else list(kinds)
    summary = []
    for kind in chosen:
        array, how = kinds[kind]
        runs = args.full_runs if array.shape[0] == H else args.crop_runs
        start = time.perf_counter()
        rows = bench_kind(kind, array, how, runs)
        print_table(kind, array, rows, runs)
        print(f"  ({time.perf_counter() - start:.0f} s)")
        cur, fast, small = rows[0], fastest_within(rows, rows[0]), smallest_within(rows, rows[0])
        summary.append(f"  {kind:<15}fastest within +10% size: {fast.name} ({cur.enc / fast.enc:.2f}x speed, "
                       f"{fast.size / cur.size:.3f}x size); smallest within reference time (+5%): {small.name} "
                       f"({small.size / cur.size:.3f}x size, {cur.enc / small.enc:.2f}x speed)")  # fmt: skip
    print(f"\nsummary (vs the reference, OpenCV's default; load average {os.getloadavg()[0]:.1f} at end)")
    print("\n".join(summary))


if __name__ == "__main__":
    main()

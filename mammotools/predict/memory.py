"""Whether an image can be predicted in the memory this machine has, decided from its header.

``predict`` keeps per pixel the decoded image, its class index, the probability of that class,
and with ``--probabilities`` one byte per class (mammotools/inference/strips.py); tracing the
shapes adds the class mask and its region numbers, writing adds the label values and the PNG
encoder's buffers. BYTES_PER_PIXEL is that, measured (benchmarks/predict_memory.py: peak
resident memory per further pixel, 2000 x 2000 to 4000 x 4000), with a margin. An image that would need more
than the memory available is refused before it is decoded, with one line, instead of failing
minutes later (a 12000 x 12000 image ran 7.5 minutes, then ran out at the argmax).
"""

from __future__ import annotations

import os
from pathlib import Path

from mammotools.errors import InputError

BYTES_PER_PIXEL = 20  # beyond the decoded image: measured 15.9 with 4 classes (benchmarks/predict_memory.py), + the file's bytes
FIXED_BYTES = 256 * 1024**2  # the model's windows and activations, bands of rows: bounded by the window


def bytes_needed(width: int, height: int, channels: int, sample_bytes: int, num_classes: int, probabilities: bool,
                 scale: float = 1.0) -> int:  # fmt: skip
    """Bytes ``predict`` needs for one image of ``width`` x ``height`` px (see the module doc)."""
    pixels = width * height
    image = pixels * channels * sample_bytes * (1 + (scale * scale if scale != 1 else 0))  # and its resized copy
    return int(image + pixels * (BYTES_PER_PIXEL + (num_classes if probabilities else 0)) + FIXED_BYTES)


def available_bytes() -> int | None:
    """Memory this process may still take: the system's available memory (MemAvailable), or its
    control group's limit less its use when that is lower; None when neither is known."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    if not found and hasattr(os, "sysconf"):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return min(found) if found else None


def check_fits(path: Path, width: int, height: int, needed: int, available: int | None) -> None:
    """Refuse, with one line, an image that needs more memory than is available."""
    if available is None or needed <= available:
        return
    raise InputError(
        f"{path}: {width} x {height} px ({width * height / 1e6:.0f} Mpx) needs about {needed / 1e9:.1f} GB to predict, "
        f"{max(available, 0) / 1e9:.1f} GB of memory is available; free memory (fewer --decode-threads decode fewer images at "
        "once), or predict it on a machine with more"
    )

"""Seeds of single items, so that any crop or variant can be remade on its own."""

from __future__ import annotations

import zlib


def crop_seed(seed: int, name: str, index: int) -> int:
    """The seed of item ``index`` of ``name`` under the run's ``seed`` (a crop of an image, a
    variant of a crop): independent of the order items are made in, or by which process."""
    import numpy as np

    state = np.random.SeedSequence([seed, zlib.crc32(name.encode("utf-8")), index]).generate_state(1)
    return int(state[0])

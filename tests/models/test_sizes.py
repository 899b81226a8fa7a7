"""Input-size rules: validity, nearest sizes, messages."""

from __future__ import annotations

import pytest

from mammotools.errors import InputError
from mammotools.models.sizes import InputSizes, multiples_of


def test_multiples_of_32() -> None:
    sizes = multiples_of(32)
    assert [s for s in range(1, 100) if sizes.is_valid(s)] == [32, 64, 96]
    assert sizes.below(900) == 896 and sizes.above(900) == 928
    assert sizes.below(31) is None and sizes.above(5) == 32
    assert sizes.output(256) == 256


def test_offset_rule_like_unet() -> None:
    sizes = InputSizes(start=188, step=16, border=184, rule="16k + 124")
    assert sizes.is_valid(572) and not sizes.is_valid(570) and not sizes.is_valid(172)
    assert (sizes.below(570), sizes.above(570)) == (556, 572)
    assert sizes.output(572) == 388
    assert "556 or 572" in sizes.explain("unet", 570)


def test_check_names_the_side_and_the_fix() -> None:
    with pytest.raises(InputError, match=r"100 is not one; nearest valid sizes: 96 or 128 \(input 96x100\)"):
        multiples_of(32).check("fcn8", 96, 100)
    multiples_of(32).check("fcn8", 96, 128)  # both valid: no error

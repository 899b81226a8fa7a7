"""Which input sizes a model takes, and what size comes out.

Pure arithmetic, no torch: each model states its rule as :class:`InputSizes`; the registry uses
them for :func:`~mammotools.models.output_size` and :func:`~mammotools.models.valid_input_size`,
and the models check their input against them before running.
"""

from __future__ import annotations

from dataclasses import dataclass

from mammotools.errors import InputError


@dataclass(frozen=True)
class InputSizes:
    """Valid input sides ``start + k * step`` (k >= 0); the output side is ``input - border``.

    ``rule`` says it in words for error messages ("a multiple of 32").
    """

    start: int
    step: int
    border: int = 0
    rule: str = ""

    def is_valid(self, side: int) -> bool:
        return side >= self.start and (side - self.start) % self.step == 0

    def below(self, side: int) -> int | None:
        """The largest valid side not above ``side``; None when ``side`` is under the smallest."""
        if side < self.start:
            return None
        return self.start + (side - self.start) // self.step * self.step

    def above(self, side: int) -> int:
        """The smallest valid side not below ``side``."""
        if side <= self.start:
            return self.start
        return self.start + -(-(side - self.start) // self.step) * self.step

    def output(self, side: int) -> int:
        return side - self.border

    def explain(self, name: str, side: int) -> str:
        """One sentence: why ``side`` is refused and the nearest valid sides."""
        lower, upper = self.below(side), self.above(side)
        nearest = f"{lower} or {upper}" if lower is not None and lower != upper else str(upper)
        return f"{name} takes input sides that are {self.rule}: {side} is not one; nearest valid sizes: {nearest}"

    def check(self, name: str, height: int, width: int) -> None:
        """Raise :class:`InputError` unless both sides are valid."""
        for side in (height, width):
            if not self.is_valid(side):
                raise InputError(f"{self.explain(name, side)} (input {height}x{width}); crop or pad the input")


def multiples_of(step: int) -> InputSizes:
    """Sides that are positive multiples of ``step``, output the same size."""
    return InputSizes(start=step, step=step, rule=f"a multiple of {step}" if step > 1 else "at least 1 px")

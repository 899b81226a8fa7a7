"""The report's pictures: a validation image with any number of models stays readable."""

from __future__ import annotations

import numpy as np
import pytest

from mammotools.benchmark.figures import PANELS_PER_ROW, panel_grid
from mammotools.classes import default_class_table


@pytest.mark.parametrize("models", [1, 3, 8, 12])
def test_every_panel_keeps_its_own_title_on_a_grid(models: int) -> None:
    """Image, truth and N predictions: no panel (title included) overlaps another, each title sits
    right above its own picture, and rows follow each other top to bottom."""
    table = default_class_table()
    portrait = np.zeros((800, 640, 3), np.uint8)
    names = ["image", "truth", *[f"model-{i}" for i in range(models)]]
    fig = panel_grid([(n, portrait) for n in names], table, "phantom_005")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = []
    used = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in used] == names
    for ax in used:
        picture = ax.get_window_extent(renderer)
        title = ax.title.get_window_extent(renderer)
        assert title.y0 >= picture.y1 - 1 and picture.x0 - 1 <= (title.x0 + title.x1) / 2 <= picture.x1 + 1
        boxes.append(picture.union([picture, title]))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    rows = -(-len(names) // PANELS_PER_ROW)
    tops = sorted(b.y1 for b in boxes)
    row_tops = [t for i, t in enumerate(tops) if i == 0 or t - tops[i - 1] > 5]
    assert len(row_tops) == rows  # one height per row: the grid, not panels drawn over each other
    legend = fig.legends[0].get_window_extent(renderer)
    assert legend.y1 <= min(b.y0 for b in boxes) + 1  # the legend below every panel

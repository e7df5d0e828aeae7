"""The pictures a test draws: the matplotlib figures recorded as they are made, and a PNG checked to be of a
sane size for a report."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from tests.support.files import png_size

MAX_SIDE = 4000  # pixels: a sane picture for a report


def capture_figures(monkeypatch) -> list:
    """Record the figures that plt.subplots makes (they are closed, but their axes can still be read)."""
    made = []
    real_subplots = plt.subplots

    def subplots(*args, **kwargs):
        figure, axes = real_subplots(*args, **kwargs)
        made.append((figure, axes))
        return figure, axes

    monkeypatch.setattr(plt, "subplots", subplots)
    return made


def picture_size(path: Path) -> tuple[int, int]:
    """Width and height of a valid PNG of sane size: 200 to MAX_SIDE pixels a side."""
    assert path.is_file() and path.stat().st_size > 0
    width, height = png_size(path)
    assert 200 <= width <= MAX_SIDE and 200 <= height <= MAX_SIDE, (width, height)
    return width, height

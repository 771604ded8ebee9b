"""The portfolio's scatter as SVG geometry: share of wallet across (0–100 %), upcoming
volume up on a log scale, the two thresholds, one dot per customer, or a grid of
cells shaded by how many customers fall in each once there are too many dots to draw."""
import math
from collections import namedtuple

from flask_babel import ngettext

WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 68, 14, 10, 48
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
# Beyond this many customers the chart draws cells, not dots: a browser (and a printer)
# slows down on tens of thousands of SVG elements, and the dots would hide each other.
DENSITY_FROM = 2000
GRID_COLUMNS, GRID_ROWS = 25, 16
# The bottom of the volume axis never goes below 1,000 元 (0.1 万元); smaller volumes
# (and none) sit on the axis.
LOWEST_DECADE = 3
NO_TIER_COLOUR = "#94a3b8"

Dot = namedtuple("Dot", "x y colour customer")
Cell = namedtuple("Cell", "x y width height count opacity title")
Tick = namedtuple("Tick", "position label")


def _wan_label(decade):
    """10^decade 元 in 万元, as an axis reads it: 0.1, 1, 10, 1,000…"""
    value = 10 ** (decade - 4)
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


class ScatterChart:
    """The chart's geometry under `setting` for customers whose upcoming volumes lie
    between `lowest` (above zero) and `highest` (either None: none). `tiers` is
    {tier id: tier}, for the dots' colours. Draw it with dots() or cells()."""

    def __init__(self, setting, tiers, lowest, highest):
        self.width, self.height = WIDTH, HEIGHT
        self.left, self.top = LEFT, TOP
        self.right, self.bottom = LEFT + PLOT_WIDTH, TOP + PLOT_HEIGHT
        self.tiers = tiers
        threshold = max(float(setting.volume_threshold), 10.0 ** LOWEST_DECADE)
        volumes = [float(v) for v in (lowest, highest) if v] + [threshold]
        self.low = max(LOWEST_DECADE, math.floor(math.log10(min(volumes))))
        self.high = max(self.low + 1, math.ceil(math.log10(max(volumes))))
        self.share_line = self.x(setting.share_threshold)
        self.volume_line = self.y(setting.volume_threshold)
        self.x_ticks = [Tick(self.x(s), f"{s}%") for s in (0, 25, 50, 75, 100)]
        self.y_ticks = [Tick(self.y(10 ** d), _wan_label(d))
                        for d in range(self.low, self.high + 1)]
        self.density, self.dots, self.cells = False, [], []

    def x(self, share):
        return round(LEFT + float(share) / 100 * PLOT_WIDTH, 1)

    def y(self, volume):
        exponent = math.log10(max(float(volume), 10.0 ** self.low))
        return round(TOP + PLOT_HEIGHT * (1 - (exponent - self.low) / (self.high - self.low)), 1)

    @staticmethod
    def shades_cells(count):
        """Whether `count` customers are too many to draw one by one."""
        return count > DENSITY_FROM

    def draw_dots(self, placed):
        """A dot per placed customer (models.portfolio.Placed), in its tier's colour."""
        self.dots = [Dot(self.x(p.share), self.y(p.volume),
                         self.tiers[p.tier].colour if p.tier in self.tiers else NO_TIER_COLOUR, p)
                     for p in placed]

    def share_edges(self):
        """The shares (%) at which the grid's next column starts, ascending."""
        return [100 * column / GRID_COLUMNS for column in range(1, GRID_COLUMNS)]

    def volume_edges(self):
        """The volumes (元) at which the grid's next row down starts, descending."""
        step = (self.high - self.low) / GRID_ROWS
        return [10 ** (self.high - row * step) for row in range(1, GRID_ROWS)]

    def draw_cells(self, found):
        """Grid cells shaded by how many customers each holds: `found` is
        {(column, row): count}, counted against share_edges() and volume_edges()."""
        self.density = True
        width, height = PLOT_WIDTH / GRID_COLUMNS, PLOT_HEIGHT / GRID_ROWS
        most = max(found.values(), default=1)
        # "12 customers", translated once per count: many cells hold the same number.
        titles = {count: ngettext("%(num)s customer", "%(num)s customers", count)
                  for count in set(found.values())}
        self.cells = [Cell(round(LEFT + column * width, 1), round(TOP + row * height, 1),
                           round(width, 1), round(height, 1), count,
                           round(0.15 + 0.85 * count / most, 2), titles[count])
                      for (column, row), count in sorted(found.items())]

"""The portfolio's scatter as SVG geometry: share of wallet across (0–100 %), upcoming
volume up on a log scale, the two thresholds, one dot per customer, or a grid of
cells shaded by how many customers fall in each once there are too many dots to draw."""
import math
from collections import namedtuple

from flask_babel import ngettext
from markupsafe import Markup, escape

from models.kept_counts import PORTFOLIO, kept
from models.portfolio import chart_points, query_key
from services.formatting import is_chinese, percent, wan

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

Tick = namedtuple("Tick", "position label")


def _wan_label(decade):
    """10^decade 元 in 万元, as an axis reads it: 0.1, 1, 10, 1,000…"""
    value = 10 ** (decade - 4)
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


class ScatterChart:
    """The chart's geometry under `setting` for customers whose upcoming volumes lie
    between `lowest` (above zero) and `highest` (either None: none). `tiers` is
    {tier id: tier}, for the dots' colours. Draw it with draw_dots() or draw_cells()."""

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
        self.density, self.dots, self.cells = False, Markup(), Markup()

    def x(self, share):
        return round(LEFT + float(share) / 100 * PLOT_WIDTH, 1)

    def y(self, volume):
        exponent = math.log10(max(float(volume), 10.0 ** self.low))
        return round(TOP + PLOT_HEIGHT * (1 - (exponent - self.low) / (self.high - self.low)), 1)

    @staticmethod
    def shades_cells(count):
        """Whether `count` customers are too many to draw one by one."""
        return count > DENSITY_FROM

    def draw_dots(self, customers, customer_url):
        """A dot per placed customer of the query `customers`, in its tier's colour,
        linked to `customer_url` + its id and titled with its code, name, share and
        volume. Written here as one piece of SVG, every text escaped (through the
        template, 1,300 dots took three times the rest of the page), and kept between
        requests as the counts are, while no customer's place, tier, code or name
        changes (models/kept_counts.py)."""
        chinese = is_chinese()
        colours = {tier_id: tier.colour for tier_id, tier in self.tiers.items()}

        def draw():
            fills = {tier_id: escape(colour) for tier_id, colour in colours.items()}
            url = escape(customer_url)
            return "".join(
                f'<a href="{url}{id_}"><circle cx="{self.x(share)}" cy="{self.y(volume)}" '
                f'r="4.5" fill="{fills.get(tier_id, NO_TIER_COLOUR)}"><title>{escape(code)} '
                f"{escape(name)} · {percent(share)} · {wan(volume, chinese)}</title>"
                "</circle></a>"
                for id_, code, name, tier_id, share, volume in chart_points(customers))

        key = ["portfolio dots", query_key(customers), self.low, self.high,
               sorted(colours.items()), chinese, customer_url]
        self.dots = Markup(kept(key, draw, PORTFOLIO))  # noqa: S704 - escaped in draw()

    def share_edges(self):
        """The shares (%) at which the grid's next column starts, ascending."""
        return [100 * column / GRID_COLUMNS for column in range(1, GRID_COLUMNS)]

    def volume_edges(self):
        """The volumes (元) at which the grid's next row down starts, descending."""
        step = (self.high - self.low) / GRID_ROWS
        return [10 ** (self.high - row * step) for row in range(1, GRID_ROWS)]

    def draw_cells(self, found):
        """Grid cells shaded by how many customers each holds: `found` is
        {(column, row): count}, counted against share_edges() and volume_edges().
        Written as one piece of SVG, as the dots are."""
        self.density = True
        width, height = PLOT_WIDTH / GRID_COLUMNS, PLOT_HEIGHT / GRID_ROWS
        most = max(found.values(), default=1)
        # "12 customers", translated once per count: many cells hold the same number.
        titles = {count: escape(ngettext("%(num)s customer", "%(num)s customers", count))
                  for count in set(found.values())}
        self.cells = Markup("".join(  # noqa: S704 - numbers, and titles escaped above
            f'<rect x="{round(LEFT + column * width, 1)}" y="{round(TOP + row * height, 1)}"'
            f' width="{round(width, 1)}" height="{round(height, 1)}"'
            f' fill-opacity="{round(0.15 + 0.85 * count / most, 2)}">'
            f"<title>{titles[count]}</title></rect>"
            for (column, row), count in sorted(found.items())))

"""Small SVG charts for reports: curves over epochs, one metric against another.

Plain SVG text, no plotting library: a report is one self-contained HTML file.
"""

import html
import math

WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 30, 44
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _ticks(low: float, high: float, count: int = 5, whole: bool = False) -> list[float]:
    """Round tick values covering [low, high] (whole numbers only, with `whole`)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if step * m >= raw)
    if whole:
        step = max(1, round(step))
    first = math.floor(low / step) * step
    return [first + i * step for i in range(int(math.ceil((high - first) / step)) + 1)]


def _label(value: float) -> str:
    return f"{value:.4g}"


class _Axes:
    """Maps data to pixels and draws the frame, ticks and axis titles."""

    def __init__(self, xs, ys, title, xlabel, ylabel, log_x=False):
        self.log_x = log_x
        whole = not log_x and all(float(x).is_integer() for x in xs)
        xs = [self._x(x) for x in xs]
        self.xticks = _ticks(min(xs), max(xs), whole=whole)
        self.yticks = _ticks(min(ys), max(ys))
        self.x0, self.x1 = self.xticks[0], self.xticks[-1]
        self.y0, self.y1 = self.yticks[0], self.yticks[-1]
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel

    def _x(self, x):
        return math.log10(x) if self.log_x else x

    def px(self, x: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return LEFT + (self._x(x) - self.x0) / span * (WIDTH - LEFT - RIGHT)

    def py(self, y: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return HEIGHT - BOTTOM - (y - self.y0) / span * (HEIGHT - TOP - BOTTOM)

    def frame(self) -> list[str]:
        parts = [
            f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-weight="bold">'
            f"{html.escape(self.title)}</text>",
            f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
            f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="#999"/>',
        ]
        for t in self.xticks:
            x = LEFT + (t - self.x0) / ((self.x1 - self.x0) or 1) * (WIDTH - LEFT - RIGHT)
            shown = 10**t if self.log_x else t
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                f"{_label(shown)}</text>"
            )
        for t in self.yticks:
            y = self.py(t)
            grid = f'x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"'
            parts.append(f'<line {grid} stroke="#eee"/>')
            parts.append(
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(t)}</text>'
            )
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{html.escape(self.xlabel)}</text>"
        )
        parts.append(
            f'<text transform="translate(14 {HEIGHT / 2}) rotate(-90)" text-anchor="middle">'
            f"{html.escape(self.ylabel)}</text>"
        )
        return parts


def _svg(parts: list[str]) -> str:
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">\n{body}\n</svg>'
    )


def line_chart(series: dict[str, list[tuple[float, float]]], title, xlabel, ylabel) -> str:
    """Curves (name -> [(x, y), ...]) in one SVG, with a legend."""
    points = [p for values in series.values() for p in values if math.isfinite(p[1])]
    if not points:
        return _svg([f'<text x="20" y="40">{html.escape(title)}: no values</text>'])
    axes = _Axes([p[0] for p in points], [p[1] for p in points], title, xlabel, ylabel)
    parts = axes.frame()
    for k, (name, values) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        finite = [(x, y) for x, y in values if math.isfinite(y)]
        path = " ".join(f"{axes.px(x):.1f},{axes.py(y):.1f}" for x, y in finite)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in finite:
            at = f'cx="{axes.px(x):.1f}" cy="{axes.py(y):.1f}"'
            parts.append(f'<circle {at} r="2.5" fill="{color}"/>')
        parts.append(
            f'<text x="{LEFT + 8}" y="{TOP + 16 + 15 * k}" fill="{color}">'
            f"{html.escape(name)}</text>"
        )
    return _svg(parts)


def scatter_chart(points: list[tuple[float, float, str]], title, xlabel, ylabel, log_x=False):
    """Labelled points (x, y, label) in one SVG."""
    usable = [p for p in points if math.isfinite(p[0]) and math.isfinite(p[1])]
    if log_x:
        usable = [p for p in usable if p[0] > 0]
    if not usable:
        return _svg([f'<text x="20" y="40">{html.escape(title)}: no values</text>'])
    axes = _Axes([p[0] for p in usable], [p[1] for p in usable], title, xlabel, ylabel, log_x)
    parts = axes.frame()
    labels = sorted({p[2] for p in usable})
    for x, y, label in usable:
        color = COLORS[labels.index(label) % len(COLORS)]
        at = f'cx="{axes.px(x):.1f}" cy="{axes.py(y):.1f}"'
        parts.append(
            f'<circle {at} r="5" fill="{color}" fill-opacity="0.8">'
            f"<title>{html.escape(label)}</title></circle>"
        )
    for k, label in enumerate(labels[:8]):
        parts.append(
            f'<text x="{LEFT + 8}" y="{TOP + 16 + 15 * k}" fill="{COLORS[k % len(COLORS)]}">'
            f"{html.escape(label)}</text>"
        )
    return _svg(parts)

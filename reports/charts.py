"""Inline SVG charts for the report: grouped bars (with error bars), scatter (with fitted lines), lines.

Hand-written rather than matplotlib/plotly because the report must be one self-contained file with no
script and no network: a few hundred bytes of SVG per chart, styled by the page's CSS, printable, and
with every label escaped (labels come from datasets and user config).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#6b7280", "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")
WIDTH, HEIGHT = 640, 280
MARGIN = {"left": 64, "right": 16, "top": 46, "bottom": 72}


@dataclass
class Series:
    name: str
    values: Sequence[float | None]  # bars: one per category; lines/scatter: y values
    x: Sequence[float] | None = None  # lines/scatter
    errors: Sequence[tuple[float, float] | None] | None = None  # bars: absolute (low, high) per category
    labels: Sequence[str] | None = None  # scatter: a tooltip (and, if ``label_points``, a caption) per point
    color: str | None = None


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1-2-5 steps), so axes read like hand-drawn ones."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high == low:
        high, low = high + (abs(high) or 1.0) * 0.5, low - (abs(low) or 1.0) * 0.5
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:.3g}"


def _color(series: Series, index: int) -> str:
    return series.color or PALETTE[index % len(PALETTE)]


class _Frame:
    """Plot area with linear x/y scales, axes, grid and labels."""

    def __init__(self, x_range, y_range, x_label: str, y_label: str, title: str, width=WIDTH, height=HEIGHT):
        self.width, self.height = width, height
        self.x0, self.x1 = MARGIN["left"], width - MARGIN["right"]
        self.y0, self.y1 = height - MARGIN["bottom"], MARGIN["top"]
        self.xt = nice_ticks(*x_range) if x_range else None
        self.yt = nice_ticks(*y_range)
        self.x_label, self.y_label, self.title = x_label, y_label, title

    def sx(self, x: float) -> float:
        lo, hi = self.xt[0], self.xt[-1]
        return self.x0 + (x - lo) / (hi - lo) * (self.x1 - self.x0)

    def sy(self, y: float) -> float:
        lo, hi = self.yt[0], self.yt[-1]
        return self.y0 - (y - lo) / (hi - lo) * (self.y0 - self.y1)

    def open(self) -> list[str]:
        parts = [
            f'<svg class="chart" viewBox="0 0 {self.width} {self.height}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(self.title)}</title>',
            f'<text class="chart-title" x="{self.x0}" y="16">{escape(self.title)}</text>',
        ]
        for tick in self.yt:
            y = self.sy(tick)
            parts.append(f'<line class="grid" x1="{self.x0}" x2="{self.x1}" y1="{y:.1f}" y2="{y:.1f}"/>')
            parts.append(
                f'<text class="tick" x="{self.x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>'
            )
        if self.xt:
            for tick in self.xt:
                x = self.sx(tick)
                parts.append(
                    f'<text class="tick" x="{x:.1f}" y="{self.y0 + 16}" '
                    f'text-anchor="middle">{_fmt(tick)}</text>'
                )
        parts.append(f'<line class="axis" x1="{self.x0}" x2="{self.x1}" y1="{self.y0}" y2="{self.y0}"/>')
        parts.append(f'<line class="axis" x1="{self.x0}" x2="{self.x0}" y1="{self.y0}" y2="{self.y1}"/>')
        mid_y = (self.y0 + self.y1) / 2
        parts.append(
            f'<text class="axis-label" transform="translate(14 {mid_y:.1f}) rotate(-90)" '
            f'text-anchor="middle">{escape(self.y_label)}</text>'
        )
        if self.x_label:
            parts.append(
                f'<text class="axis-label" x="{(self.x0 + self.x1) / 2:.1f}" y="{self.height - 8}" '
                f'text-anchor="middle">{escape(self.x_label)}</text>'
            )
        return parts

    def reference(self, y_value: float, label: str = "") -> list[str]:
        """A dashed horizontal line at ``y_value`` (the unbiased value), optionally labelled at the right."""
        y = self.sy(y_value)
        parts = [f'<line class="reference" x1="{self.x0}" x2="{self.x1}" y1="{y:.1f}" y2="{y:.1f}"/>']
        if label:
            parts.append(
                f'<text class="tick" x="{self.x1}" y="{y - 4:.1f}" text-anchor="end">{escape(label)}</text>'
            )
        return parts

    def close(self, parts: list[str], series: Sequence[Series]) -> Markup:
        return Markup("".join([*parts, *self.legend(series), "</svg>"]))

    def legend(self, series: Sequence[Series]) -> list[str]:
        """A row under the title (clear of rotated category labels at the bottom)."""
        parts, x, y = [], self.x0, 34
        for i, s in enumerate(series):
            parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{_color(s, i)}"/>')
            parts.append(f'<text class="legend" x="{x + 14}" y="{y}">{escape(s.name)}</text>')
            x += 24 + 7 * len(s.name)
        return parts


def _finite(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def bars(
    categories: Sequence[str],
    series: Sequence[Series],
    title: str,
    y_label: str,
    reference: float | None = None,
    reference_label: str = "",
) -> Markup:
    """Grouped bars, one group per category and one bar per series; optional error bars and reference line."""
    values = [v for s in series for v in _finite(s.values)]
    for s in series:
        for err in s.errors or []:
            if err:
                values += _finite(err)
    if reference is not None:
        values.append(reference)
    low = min([0.0, *values]) if values else 0.0
    high = max([0.0, *values]) if values else 1.0
    frame = _Frame(None, (low, high), "", y_label, title)
    parts = frame.open()
    n_cat = max(len(categories), 1)
    group = (frame.x1 - frame.x0) / n_cat
    bar_w = max(min(group * 0.8 / max(len(series), 1), 28), 2)
    for c, category in enumerate(categories):
        start = frame.x0 + c * group + (group - bar_w * len(series)) / 2
        for i, s in enumerate(series):
            value = s.values[c] if c < len(s.values) else None
            if value is None or not math.isfinite(value):
                continue
            x = start + i * bar_w
            top, zero = frame.sy(max(value, 0)), frame.sy(min(value, 0))
            tip = f"{s.name} · {category}: {_fmt(value)}"
            parts.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar_w - 1:.1f}" '
                f'height="{max(zero - top, 0.5):.1f}" '
                f'fill="{_color(s, i)}"><title>{escape(tip)}</title></rect>'
            )
            err = s.errors[c] if s.errors and c < len(s.errors) else None
            if err and all(math.isfinite(e) for e in err):
                cx = x + (bar_w - 1) / 2
                y_lo, y_hi = frame.sy(err[0]), frame.sy(err[1])
                parts.append(
                    f'<line class="err" x1="{cx:.1f}" x2="{cx:.1f}" y1="{y_lo:.1f}" y2="{y_hi:.1f}"/>'
                )
        label_x = frame.x0 + (c + 0.5) * group
        parts.append(
            f'<text class="tick" x="{label_x:.1f}" y="{frame.y0 + 14}" text-anchor="end" '
            f'transform="rotate(-30 {label_x:.1f} {frame.y0 + 14})">{escape(category)}</text>'
        )
    if reference is not None:
        parts += frame.reference(reference, reference_label)
    return frame.close(parts, series)


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares (slope, intercept); None for fewer than two distinct x."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


def scatter(
    series: Sequence[Series],
    title: str,
    x_label: str,
    y_label: str,
    fit: bool = False,
    label_points: bool = False,
    reference_y: float | None = None,
) -> Markup:
    """Points per series (tooltip = label), optional least-squares line per series and a y reference."""
    xs, ys = _all_points(series)
    if reference_y is not None:
        ys.append(reference_y)
    frame = _Frame(
        _padded(xs, 0.12 if label_points else 0.0),
        _padded(ys, 0.08),
        x_label,
        y_label,
        title,
        height=HEIGHT + 20,
    )
    parts = frame.open()
    if reference_y is not None:
        parts += frame.reference(reference_y)
    for i, s in enumerate(series):
        color = _color(s, i)
        points = [
            (x, y, (s.labels or [""] * len(s.values))[j])
            for j, (x, y) in enumerate(zip(s.x or [], s.values, strict=True))
            if _ok(x, y)
        ]
        for x, y, label in points:
            px, py = frame.sx(x), frame.sy(y)
            tip = f"{s.name}: {label} ({_fmt(x)}, {_fmt(y)})" if label else f"{s.name} ({_fmt(x)}, {_fmt(y)})"
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{5 if label_points else 3}" fill="{color}" '
                f'fill-opacity="0.75"><title>{escape(tip)}</title></circle>'
            )
            if label_points and label:
                parts.append(
                    f'<text class="point-label" x="{px + 7:.1f}" y="{py - 6:.1f}">{escape(label)}</text>'
                )
        line = fit_line([p[0] for p in points], [p[1] for p in points]) if fit else None
        if line:
            slope, intercept = line
            lo, hi = frame.xt[0], frame.xt[-1]
            y_lo, y_hi = slope * lo + intercept, slope * hi + intercept
            parts.append(
                f'<line class="fit" stroke="{color}" x1="{frame.sx(lo):.1f}" x2="{frame.sx(hi):.1f}" '
                f'y1="{_clamp(frame, y_lo):.1f}" y2="{_clamp(frame, y_hi):.1f}"/>'
            )
    return frame.close(parts, series)


def _padded(values: list[float], fraction: float) -> tuple[float, float]:
    """(low, high) of ``values`` widened by ``fraction`` of the span, so edge points and labels fit."""
    low, high = min(values, default=0.0), max(values, default=1.0)
    pad = (high - low) * fraction if high > low else abs(high) * fraction
    return low - pad, high + pad


def _all_points(series: Sequence[Series]) -> tuple[list[float], list[float]]:
    """x and y of every plottable point of every series (for the axis ranges)."""
    points = [(x, y) for s in series for x, y in zip(s.x or [], s.values, strict=True) if _ok(x, y)]
    return [x for x, _ in points], [y for _, y in points]


def _ok(x, y) -> bool:
    return x is not None and y is not None and math.isfinite(x) and math.isfinite(y)


def _clamp(frame: _Frame, y: float) -> float:
    return min(max(frame.sy(y), frame.y1), frame.y0)


def lines(series: Sequence[Series], title: str, x_label: str, y_label: str) -> Markup:
    """One polyline per series (e.g. a training curve per run)."""
    xs, ys = _all_points(series)
    frame = _Frame(
        (min(xs, default=0), max(xs, default=1)),
        (min(ys, default=0), max(ys, default=1)),
        x_label,
        y_label,
        title,
    )
    parts = frame.open()
    for i, s in enumerate(series):
        pts = [(frame.sx(x), frame.sy(y)) for x, y in zip(s.x or [], s.values, strict=True) if _ok(x, y)]
        if not pts:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        parts.append(f'<polyline class="curve" stroke="{_color(s, i)}" points="{path}"/>')
        if len(pts) == 1:
            parts.append(f'<circle cx="{pts[0][0]:.1f}" cy="{pts[0][1]:.1f}" r="3" fill="{_color(s, i)}"/>')
    return frame.close(parts, series)

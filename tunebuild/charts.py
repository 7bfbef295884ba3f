"""Inline SVG charts for the HTML pages: bars, grouped bars, histograms, lines, intervals and a
flow.

Each chart is one `<svg role="img">` string with a `<title>` (its accessible name), its numbers
written on it, and a `<title>` on every mark (shown on hover, read by screen readers). No script,
no fonts, no request: it prints and reads without JavaScript. Labels from data are escaped.
"""

from __future__ import annotations

from tunebuild.htmlpage import esc, num

COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C8C8C", "#F0E442")
SPLIT_COLORS = {
    "train": COLORS[0],
    "validation": COLORS[1],
    "test": COLORS[2],
    "base": COLORS[6],
    "head": COLORS[0],
}
CHAR = 7.2  # width of one character at 12px, about
ROW = 18  # height of one bar row
LABEL_MAX = 30  # characters of a label shown before it is cut


def color(name: str, i: int) -> str:
    return SPLIT_COLORS.get(name, COLORS[i % len(COLORS)])


def short(label: str, limit: int = LABEL_MAX) -> str:
    label = " ".join(str(label).split())
    return label if len(label) <= limit else label[: limit - 1] + "…"


def label_width(labels: list[str]) -> int:
    return int(min(max((len(short(x)) for x in labels), default=4), LABEL_MAX) * CHAR) + 16


def svg(width: int, height: int, title: str, body: str) -> str:
    return (
        '<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{esc(title)}</title>{body}</svg>'
    )


def rect(x: float, y: float, w: float, h: float, fill: str, tip: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
        f'fill="{fill}">'
        f"<title>{esc(tip)}</title></rect>"
    )


def text(x: float, y: float, value: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{esc(value)}</text>'


def legend(names: list[str], x: float, y: float) -> str:
    parts, at = [], x
    for i, name in enumerate(names):
        parts.append(
            f'<rect x="{at:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{color(name, i)}"/>'
        )
        parts.append(text(at + 14, y, name))
        at += 24 + len(name) * CHAR
    return "".join(parts)


def share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def hbars(
    title: str, rows: list[tuple[str, float]], width: int = 560, fill: str = COLORS[0]
) -> str:
    """One horizontal bar per (label, value), the value written after the bar."""
    left = label_width([r[0] for r in rows])
    room = width - left - 90
    top = max((v for _, v in rows), default=0) or 1
    parts = []
    for i, (label, value) in enumerate(rows):
        y = 6 + i * ROW
        parts.append(text(left - 6, y + 12, short(label), "end"))
        parts.append(rect(left, y + 2, room * value / top, ROW - 5, fill, f"{label}: {num(value)}"))
        parts.append(text(left + room * value / top + 4, y + 12, num(value)))
    return svg(width, 12 + len(rows) * ROW, title, "".join(parts))


def grouped_hbars(
    title: str, categories: list[str], series: dict[str, list[int]], width: int = 560
) -> str:
    """Per category one bar per series, as a share of that series' total (so splits of different
    sizes compare); each bar says its count and share."""
    names = list(series)
    totals = {n: sum(v) for n, v in series.items()}
    shares = {n: [v / totals[n] if totals[n] else 0 for v in vals] for n, vals in series.items()}
    top = max((s for vals in shares.values() for s in vals), default=0) or 1
    left, bar = label_width(categories), 11
    room = width - left - 110
    group = bar * len(names) + 8
    parts = [legend(names, left, 14)]
    for i, cat in enumerate(categories):
        y0 = 26 + i * group
        parts.append(text(left - 6, y0 + group / 2, short(cat), "end"))
        for j, n in enumerate(names):
            count, s = series[n][i], shares[n][i]
            y = y0 + j * bar
            tip = f"{cat}, {n}: {num(count)} of {num(totals[n])} ({share(count, totals[n])})"
            parts.append(rect(left, y, room * s / top, bar - 2, color(n, j), tip))
            parts.append(
                text(
                    left + room * s / top + 4,
                    y + bar - 3,
                    f"{num(count)} ({share(count, totals[n])})",
                    extra=' font-size="10"',
                )
            )
    return svg(width, 30 + len(categories) * group, title, "".join(parts))


def columns(
    title: str,
    buckets: list[str],
    series: dict[str, list[int]],
    width: int = 560,
    unit: str = "rows",
    of: str = "split",
) -> str:
    """A histogram: per bucket one column per series, height = share of the series' rows; counts on
    hover and in the table beside it."""
    names = list(series)
    totals = {n: sum(v) for n, v in series.items()}
    top = max((v / totals[n] for n in names if totals[n] for v in series[n]), default=0) or 1
    left, bottom, plot_h = 44, 56, 150
    slot = (width - left - 10) / max(len(buckets), 1)
    bar = max(min((slot - 4) / max(len(names), 1), 18), 1)
    parts = [legend(names, left, 14)]
    for tick in (0, 0.5, 1):
        y = 24 + plot_h * (1 - tick)
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d6dbe1"/>'
        )
        parts.append(text(left - 4, y + 4, f"{100 * top * tick:.0f}%", "end"))
    for i, b in enumerate(buckets):
        x0 = left + i * slot + 2
        for j, n in enumerate(names):
            v, s = series[n][i], series[n][i] / totals[n] if totals[n] else 0
            h = plot_h * s / top
            tip = f"{n}, {b} {unit}: {num(v)} of {num(totals[n])} ({share(v, totals[n])})"
            parts.append(rect(x0 + j * bar, 24 + plot_h - h, bar - 1, h, color(n, j), tip))
        parts.append(text(x0 + slot / 2, 24 + plot_h + 14, b, "middle", ' font-size="10"'))
    parts.append(
        text(
            left + (width - left) / 2,
            24 + plot_h + 34,
            f"{unit} (share of each {of}'s rows)",
            "middle",
        )
    )
    return svg(width, 24 + plot_h + bottom - 10, title, "".join(parts))


def thin(points: list[tuple[float, float]], limit: int = 400) -> list[tuple[float, float]]:
    """At most `limit` points, evenly spaced, the last kept (a curve of 30k steps stays small)."""
    if len(points) <= limit:
        return points
    step = len(points) / (limit - 1)
    return [points[int(i * step)] for i in range(limit - 1)] + [points[-1]]


def lines(
    title: str,
    series: dict[str, list[tuple[float, float]]],
    width: int = 560,
    x_label: str = "step",
) -> str:
    """One polyline per series over a shared x axis; the last value of each written at its end."""
    shown = {n: thin(sorted(p)) for n, p in series.items() if p}
    xs = [x for p in shown.values() for x, _ in p] or [0]
    ys = [y for p in shown.values() for _, y in p] or [0]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    left, right, top, plot_h = 56, 130, 24, 150
    plot_w = width - left - right
    sx = lambda x: left + plot_w * (x - x0) / (x1 - x0)  # noqa: E731
    sy = lambda y: top + plot_h * (1 - (y - y0) / (y1 - y0))  # noqa: E731
    parts = [legend(list(shown), left, 14)]
    for v in (y0, (y0 + y1) / 2, y1):
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" '
            'stroke="#d6dbe1"/>'
        )
        parts.append(text(left - 4, sy(v) + 4, f"{v:.4g}", "end"))
    for i, (n, p) in enumerate(shown.items()):
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in p)
        last = p[-1]
        tip = f"{n}: {len(series[n])} points, last at {x_label} {num(last[0])}: {num(last[1])}"
        parts.append(
            f'<polyline points="{pts}" fill="none" stroke="{color(n, i)}" stroke-width="2">'
            f"<title>{esc(tip)}</title></polyline>"
        )
        if len(p) <= 40:
            parts += [
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color(n, i)}">'
                f"<title>{esc(f'{n}, {x_label} {num(x)}: {num(y)}')}</title></circle>"
                for x, y in p
            ]
        parts.append(text(sx(last[0]) + 6, sy(last[1]) + 4 + 12 * i, f"{n} {num(last[1])}"))
    parts.append(text(left, top + plot_h + 16, num(x0)))
    parts.append(text(left + plot_w, top + plot_h + 16, num(x1), "end"))
    parts.append(text(left + plot_w / 2, top + plot_h + 16, x_label, "middle"))
    return svg(width, top + plot_h + 26, title, "".join(parts))


def intervals(title: str, rows: list[tuple[str, float, float, float]], width: int = 640) -> str:
    """A dot and its 95% interval per row on a 0..1 axis (plus the rows' own range when it leaves
    it)."""
    left = label_width([r[0] for r in rows])
    lo = min([0.0] + [r[2] for r in rows])
    hi = max([1.0] + [r[3] for r in rows])
    plot_w = width - left - 190
    sx = lambda v: left + plot_w * (v - lo) / (hi - lo)  # noqa: E731
    parts = []
    for tick in (lo, (lo + hi) / 2, hi):
        parts.append(
            f'<line x1="{sx(tick):.1f}" x2="{sx(tick):.1f}" y1="4" y2="{8 + len(rows) * 22}" '
            'stroke="#d6dbe1"/>'
        )
        parts.append(text(sx(tick), 20 + len(rows) * 22, f"{tick:g}", "middle"))
    for i, (label, v, a, b) in enumerate(rows):
        y = 14 + i * 22
        tip = f"{label}: {v:.4f}, 95% interval [{a:.4f}, {b:.4f}]"
        parts.append(text(left - 6, y + 4, short(label), "end"))
        parts.append(
            f'<line x1="{sx(a):.1f}" x2="{sx(b):.1f}" y1="{y}" y2="{y}" stroke="{color(label, i)}" '
            f'stroke-width="3"><title>{esc(tip)}</title></line>'
        )
        parts.append(
            f'<circle cx="{sx(v):.1f}" cy="{y}" r="5" fill="{color(label, i)}">'
            f"<title>{esc(tip)}</title></circle>"
        )
        parts.append(text(left + plot_w + 10, y + 4, f"{v:.4f} [{a:.4f}, {b:.4f}]"))
    return svg(width, 28 + len(rows) * 22, title, "".join(parts))


def flow(
    title: str,
    stages: list[list[tuple[str, int]]],
    links: list[tuple[str, str, int]],
    colors: dict[str, str],
    width: int = 900,
    scale_h: int = 300,
) -> str:
    """A flow (Sankey) diagram: columns of nodes (name, count), ribbons between them (from, to,
    count), each ribbon in its target's colour (`colors`, grey otherwise). Node heights are
    proportional to counts; every node is labelled with its count."""
    gap, node_w = 14, 14
    biggest = max((sum(v for _, v in col) for col in stages), default=0) or 1
    k = scale_h / biggest
    xs = [10 + i * (width - 200) / max(len(stages) - 1, 1) for i in range(len(stages))]
    place: dict[str, list[float]] = {}  # name -> [x, y, height, next out y, next in y]
    height = 0
    for x, col in zip(xs, stages):
        y = 10
        for name, value in col:
            h = max(value * k, 1)
            place[name] = [x, y, h, y, y]
            y += max(h, 14) + gap
        height = max(height, y)
    parts = []
    for a, b, value in links:
        if value <= 0 or a not in place or b not in place:
            continue
        h = value * k
        xa, ya = place[a][0] + node_w, place[a][3]
        xb, yb = place[b][0], place[b][4]
        place[a][3] += h
        place[b][4] += h
        mid = (xa + xb) / 2
        d = (
            f"M{xa:.1f},{ya:.1f} C{mid:.1f},{ya:.1f} {mid:.1f},{yb:.1f} {xb:.1f},{yb:.1f} "
            f"L{xb:.1f},{yb + h:.1f} C{mid:.1f},{yb + h:.1f} {mid:.1f},{ya + h:.1f} "
            f"{xa:.1f},{ya + h:.1f} Z"
        )
        parts.append(
            f'<path d="{d}" fill="{colors.get(b, COLORS[6])}" fill-opacity="0.35">'
            f"<title>{esc(f'{a} → {b}: {num(value)}')}</title></path>"
        )
    for col in stages:
        for name, value in col:
            x, y, h = place[name][:3]
            parts.append(
                rect(x, y, node_w, h, colors.get(name, "#5b6470"), f"{name}: {num(value)}")
            )
            parts.append(
                text(x + node_w + 4, y + min(h, 14) / 2 + 4, f"{short(name, 22)} {num(value)}")
            )
    return svg(width, int(height), title, "".join(parts))

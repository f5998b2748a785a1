"""Small SVG charts rendered on the server (no JavaScript, no CDN); they scale to a phone's width."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

BAR = "#2f6f4f"
BAR_ALT = "#c0392b"
GRID = "#dddddd"
TEXT = "#333333"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000):
        if value <= step * 4:
            return float(step * 4)
    return float(value)


def column_chart(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    second: Sequence[float] | None = None,
    legend: tuple[str, str] = ("", ""),
    height: int = 220,
) -> Markup:
    """Vertical columns (e.g. messages per day); `second` draws a red overlay (e.g. unanswered)."""
    width = max(320, 36 * len(labels) + 60)
    left, bottom, top = 40, 36, 28
    plot_h = height - bottom - top
    top_value = _nice_max(max(values, default=0))
    slot = (width - left - 10) / max(1, len(labels))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" font-size="14" fill="{TEXT}" font-weight="bold">{escape(title)}</text>',
    ]
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="{TEXT}">'
            f"{int(top_value * i / 4)}</text>"
        )
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = left + slot * index + slot * 0.15
        w = slot * 0.7
        h = plot_h * (value / top_value)
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{BAR}">'
            f"<title>{escape(label)}：{value:g}</title></rect>"
        )
        if second is not None:
            h2 = plot_h * (second[index] / top_value)
            parts.append(
                f'<rect x="{x + w * 0.25:.1f}" y="{top + plot_h - h2:.1f}" width="{w * 0.5:.1f}" height="{h2:.1f}" '
                f'fill="{BAR_ALT}"><title>{escape(label)}：{second[index]:g}</title></rect>'
            )
        if value:
            parts.append(
                f'<text x="{x + w / 2:.1f}" y="{top + plot_h - h - 3:.1f}" font-size="10" text-anchor="middle" '
                f'fill="{TEXT}">{value:g}</text>'
            )
        parts.append(
            f'<text x="{x + w / 2:.1f}" y="{height - bottom + 16}" font-size="11" text-anchor="middle" '
            f'fill="{TEXT}">{escape(label)}</text>'
        )
    if second is not None and legend[0]:
        y = height - 6
        parts.append(f'<rect x="{left}" y="{y - 9}" width="10" height="10" fill="{BAR}"/>')
        parts.append(f'<text x="{left + 14}" y="{y}" font-size="11" fill="{TEXT}">{escape(legend[0])}</text>')
        parts.append(f'<rect x="{left + 110}" y="{y - 9}" width="10" height="10" fill="{BAR_ALT}"/>')
        parts.append(
            f'<text x="{left + 124}" y="{y}" font-size="11" fill="{TEXT}">{escape(legend[1])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, suffix: str = "") -> Markup:
    """Horizontal bars with labels on the left (e.g. the top intents)."""
    row_h = 26
    left = 130
    width = 520
    height = 30 + row_h * max(1, len(labels))
    top_value = max(values, default=0) or 1
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="16" font-size="14" fill="{TEXT}" font-weight="bold">{escape(title)}</text>',
    ]
    if not labels:
        parts.append(f'<text x="4" y="44" font-size="12" fill="{TEXT}">暂无数据</text>')
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 28 + index * row_h
        w = (width - left - 60) * (value / top_value)
        parts.append(
            f'<text x="{left - 6}" y="{y + 15}" font-size="12" text-anchor="end" fill="{TEXT}">{escape(label)}</text>'
        )
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{BAR}"/>')
        parts.append(
            f'<text x="{left + w + 4:.1f}" y="{y + 15}" font-size="12" fill="{TEXT}">{value:g}{escape(suffix)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))

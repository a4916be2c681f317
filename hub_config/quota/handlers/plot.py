"""The usage plot as inline SVG: drawn on the server, so the page needs no JavaScript library."""

from __future__ import annotations

import datetime as dt
from html import escape


def usage_svg(
    points: list[dict], width: int = 640, height: int = 220, field: str = "cumulative_core_hours"
) -> str:
    """Cumulative core-hours over the period as a step line, with axis labels."""
    pad_l, pad_r, pad_t, pad_b = 60, 10, 10, 30
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    head = (
        f'<svg id="usage-plot" role="img" aria-label="usage over time" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<rect x="{pad_l}" y="{pad_t}" width="{w}" height="{h}" fill="#f7f7fb" stroke="#999"/>'
    )
    if not points:
        return head + (
            f'<text x="{pad_l + w / 2}" y="{pad_t + h / 2}" text-anchor="middle" '
            'class="empty">no usage yet this period</text></svg>'
        )
    ts = [dt.datetime.fromisoformat(p["t"].rstrip("Z")) for p in points]
    t0, t1 = ts[0], ts[-1] + dt.timedelta(hours=1)
    span = max((t1 - t0).total_seconds(), 1.0)
    ymax = max(p[field] for p in points) or 1.0
    x = lambda t: pad_l + w * (t - t0).total_seconds() / span  # noqa: E731
    y = lambda v: pad_t + h - h * v / ymax  # noqa: E731
    pts, prev = [f"{x(t0):.1f},{y(0):.1f}"], 0.0
    for t, p in zip(ts, points):
        pts.append(f"{x(t):.1f},{y(prev):.1f}")
        prev = p[field]
        pts.append(f"{x(t + dt.timedelta(hours=1)):.1f},{y(prev):.1f}")
    body = (
        f'<polyline class="usage-line" fill="none" stroke="#2a5db0" stroke-width="2" points="{" ".join(pts)}"/>'
        f'<text x="{pad_l - 5}" y="{pad_t + 10}" text-anchor="end" font-size="11">{ymax:.3g}</text>'
        f'<text x="{pad_l - 5}" y="{pad_t + h}" text-anchor="end" font-size="11">0</text>'
        f'<text x="{pad_l}" y="{height - 8}" font-size="11">{escape(t0.strftime("%Y-%m-%d %H:%M"))}</text>'
        f'<text x="{pad_l + w}" y="{height - 8}" text-anchor="end" font-size="11">'
        f"{escape(t1.strftime('%Y-%m-%d %H:%M'))} UTC</text>"
        f'<text x="12" y="{pad_t + h / 2}" font-size="11" transform="rotate(-90 12 {pad_t + h / 2})" '
        'text-anchor="middle">core-hours</text>'
    )
    return head + body + "</svg>"

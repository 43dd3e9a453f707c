"""Charts drawn on the server as inline SVG (no script: the pages' Content-Security-Policy allows none,
and library intranets are often offline). Only geometry lives here; the template draws it."""

from __future__ import annotations

from acquisition.burndown import BurnDown

#: The burn-down's drawing box and margins, px.
WIDTH, HEIGHT, LEFT, BOTTOM, TOP, RIGHT = 720, 260, 70, 30, 12, 12


def burn_chart(bd: BurnDown) -> dict:
    """Polylines (plan, use), month ticks, yuan ticks and the exhaustion marker of a burn-down."""
    top = max([bd.planned_fen, *(m.used_fen or 0 for m in bd.months), 1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: float) -> float:  # i = months since 1 January (0..12)
        return round(LEFT + plot_w * i / 12, 1)

    def y(fen: float) -> float:
        return round(TOP + plot_h * (1 - fen / top), 1)

    plan = [(x(0), y(0))] + [(x(i + 1), y(m.planned_fen)) for i, m in enumerate(bd.months)]
    now = f"{bd.as_of:%Y-%m}"

    def at(i: int, month: str) -> float:  # the month's end, or today within the current month
        return x(i + bd.as_of.day / 31) if month == now else x(i + 1)

    used = [(x(0), y(0))] + [(at(i, m.month), y(m.used_fen)) for i, m in enumerate(bd.months) if m.used_fen is not None]
    marker = None
    if bd.projected_exhaustion is not None:
        day = bd.projected_exhaustion
        marker = x(day.month - 1 + (day.day - 1) / 31)
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "bottom": HEIGHT - BOTTOM,
        "top": TOP,
        "right": WIDTH - RIGHT,
        "plan": " ".join(f"{a},{b}" for a, b in plan),
        "used": " ".join(f"{a},{b}" for a, b in used),
        "months": [(x(i + 0.5), i + 1) for i in range(12)],
        "yticks": [(y(top * k / 4), top * k / 4 / 100) for k in range(5)],
        "marker": marker,
    }

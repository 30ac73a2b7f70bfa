"""The dashboard's charts (issue 21): accepted and delivered per minute, queue depth, and
accept→deliver latency (p50, p99) over the last hours, drawn on the server as SVG — no
chart library, nothing fetched, works offline.

Where the figures come from, chosen by what they cost with 1,000,000 filings:

- **Accepted per minute**: ``COUNT(*) … GROUP BY minute`` over a range of the
  ``filings_received`` index: it reads the window's index entries only, whatever the
  table's size, and survives a restart because it *is* the store.
- **Delivered per minute and latency**: each delivery of a filing accepted in the window
  or ``LOOKBACK`` before it (``filings_received``, then ``deliveries_filing``), with its
  ``delivered_at``. ``deliveries.delivered_at`` has no index, and a scan of a million
  deliveries once a minute is what we avoid; the price is that a delivery of a filing
  accepted more than ``SPAN + LOOKBACK`` ago (15 h) is not drawn. The percentiles are
  computed here from those rows (nearest rank), one minute at a time.
- **Queue depth** is not in any timestamp: a sampler in this process reads the monitor's
  queue snapshot every ``SAMPLE_S`` into a ring of ``SPAN`` (a few kB). It starts empty
  after a restart, and the chart says since when it has samples.

A per-minute table written by a sampler would survive restarts for all four, at the
cost of a write a minute and a migration; the reads above need neither. Charts are
read at most once every ``FRESH_S`` per process, so a dozen open dashboards cost one
read every half minute.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiohttp import web
from markupsafe import Markup, escape

from gateway.api import handlers, ops

log = structlog.get_logger("gateway.api.charts")

#: how far back the charts reach at most …
SPAN = timedelta(hours=3)
#: … and at least (a young gateway's charts start at its first figure, not 3 hours back)
MIN_SPAN_MIN = 15
#: deliveries of filings accepted this long before the window still count
LOOKBACK = timedelta(hours=12)
#: queue depth sampling period
SAMPLE_S = 15.0
#: charts are read again at most this often (every open dashboard shares one render)
FRESH_S = 30.0
#: the delivery states that make the queue
WAITING = ("pending", "in_flight", "waiting_retry", "deferred", "blocked")
WIDTH, HEIGHT, PAD_L, PAD_B, PAD_T = 640, 150, 44, 20, 14
COLOURS = {"accepted": "#0b5cad", "delivered": "#1a7f37", "queue": "#9a6700",
           "p50": "#0b5cad", "p99": "#c62828"}  # fmt: skip


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil
    return float(sorted_values[int(rank) - 1])


@dataclass
class Series:
    """One line of a chart: (minute since the epoch, value) points, gaps allowed."""

    name: str
    points: list[tuple[int, float]]


def _ticks(start: int, end: int) -> list[int]:
    span = end - start
    step = 10 if span <= 60 else 30 if span <= 240 else 60
    first = -(-start // step) * step
    return list(range(first, end + 1, step))


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.1f}s" if value < 100 else f"{value / 60:.0f}m"
    return f"{value:.0f}"


def svg(title: str, lines: list[Series], start: int, end: int, *, unit: str = "") -> Markup:
    """A line chart of ``lines`` over minutes ``start``..``end`` (UTC), as inline SVG."""
    top = max((v for s in lines for _, v in s.points), default=0.0) or 1.0
    plot_w, plot_h = WIDTH - PAD_L - 8, HEIGHT - PAD_B - PAD_T

    def x(minute: int) -> float:
        return PAD_L + plot_w * (minute - start) / max(end - start, 1)

    def y(value: float) -> float:
        return PAD_T + plot_h * (1 - value / top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{PAD_L}" y1="{y(0):.1f}" x2="{WIDTH - 8}" y2="{y(0):.1f}" class="axis"/>',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{WIDTH - 8}" y2="{PAD_T}" class="grid"/>',
        f'<text x="{PAD_L - 4}" y="{PAD_T + 4}" class="lbl" text-anchor="end">'
        f"{_fmt(top, unit)}</text>",
        f'<text x="{PAD_L - 4}" y="{y(0) + 4:.1f}" class="lbl" text-anchor="end">0</text>',
    ]
    for t in _ticks(start, end):
        label = datetime.fromtimestamp(t * 60, UTC).strftime("%H:%M")
        anchor = "end" if x(t) > WIDTH - 30 else "middle"  # the last label stays inside
        parts.append(
            f'<line x1="{x(t):.1f}" y1="{PAD_T}" x2="{x(t):.1f}" y2="{y(0):.1f}" class="grid"/>'
            f'<text x="{x(t):.1f}" y="{HEIGHT - 5}" class="lbl" text-anchor="{anchor}">'
            f"{label}</text>"
        )
    for s in lines:
        segments: list[list[str]] = [[]]
        last: int | None = None
        for minute, value in sorted(s.points):
            if last is not None and minute - last > 1 and s.name in ("p50", "p99"):
                segments.append([])  # no latency between: a gap, not a slope
            segments[-1].append(f"{x(minute):.1f},{y(value):.1f}")
            last = minute
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                parts.append(
                    f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{COLOURS[s.name]}" '
                    f'data-series="{s.name}"/>'
                )
            elif seg:
                parts.append(
                    f'<polyline fill="none" stroke="{COLOURS[s.name]}" stroke-width="1.6" '
                    f'points="{" ".join(seg)}" data-series="{s.name}"/>'
                )
    parts.append("</svg>")
    return Markup("".join(parts))


def _filled(counts: dict[int, int], start: int, end: int) -> list[tuple[int, float]]:
    """A count per minute, zeros included (a quiet minute is a zero, not a gap)."""
    return [(m, float(counts.get(m, 0))) for m in range(start, end + 1)]


class Charts:
    """Renders the charts (cached for the minute) and samples the queue depth."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.depth: deque[tuple[int, float]] = deque(maxlen=int(SPAN.total_seconds() // SAMPLE_S))
        self.cached: tuple[datetime, dict[str, Any]] | None = None

    async def sample(self) -> None:
        snap = await self.app[ops.MONITOR].snapshot()
        now = self.app[handlers.SERVICE].clock.now()
        depth = sum(c.get(s, 0) for c in snap.stats.counts.values() for s in WAITING)
        self.depth.append((int(now.timestamp() // 60), float(depth)))

    async def sampler(self, _app: web.Application) -> AsyncIterator[None]:
        """``cleanup_ctx``: sample the queue depth while the application runs."""

        async def loop() -> None:
            while True:
                try:
                    await self.sample()
                except Exception as exc:  # a failed read: a gap in the chart, no crash
                    log.warning("dashboard.sample_failed", error=repr(exc))
                await asyncio.sleep(SAMPLE_S)

        task = asyncio.create_task(loop(), name="dashboard-depth-sampler")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def render(self) -> dict[str, Any]:
        now = self.app[handlers.SERVICE].clock.now()
        end = int(now.timestamp() // 60)
        if self.cached is not None and 0 <= (now - self.cached[0]).total_seconds() < FRESH_S:
            return self.cached[1]
        since = now - SPAN
        start = int(since.timestamp() // 60)
        store = self.app[handlers.SERVICE].store
        accepted = await store.series_accepted(since)
        done = await store.series_delivered(since, since - LOOKBACK)
        delivered: dict[int, int] = {}
        latency: dict[int, list[float]] = {}
        for minute, micros in done:
            delivered[minute] = delivered.get(minute, 0) + 1
            latency.setdefault(minute, []).append(micros / 1e6)
        p50, p99 = [], []
        for minute in sorted(latency):
            values = sorted(latency[minute])
            p50.append((minute, percentile(values, 50)))
            p99.append((minute, percentile(values, 99)))
        # the depth per minute: the highest sample of each minute
        depth: dict[int, float] = {}
        for minute, value in self.depth:
            if minute >= start:
                depth[minute] = max(depth.get(minute, 0.0), value)
        first = min([*accepted, *delivered, *depth], default=end)
        start = max(start, min(first - 1, end - MIN_SPAN_MIN))
        out: dict[str, Any] = {
            "throughput": svg(
                "Accepted and delivered per minute",
                [
                    # up to the last whole minute: the current one would look like a fall
                    Series("accepted", _filled(accepted, start, end - 1)),
                    Series("delivered", _filled(delivered, start, end - 1)),
                ],
                start,
                end,
            ),
            "depth": svg("Queue depth", [Series("queue", sorted(depth.items()))], start, end),
            "latency": svg(
                "Accept to deliver latency, p50 and p99",
                [Series("p50", p50), Series("p99", p99)],
                start,
                end,
                unit="s",
            ),
            "accepted": sum(accepted.values()),
            "delivered": sum(delivered.values()),
            "depth_since": datetime.fromtimestamp(min(depth) * 60, UTC) if depth else None,
        }
        self.cached = (now, out)
        return out


CHARTS = web.AppKey("dashboard_charts", Charts)


def setup(app: web.Application) -> None:
    charts = Charts(app)
    app[CHARTS] = charts
    app.cleanup_ctx.append(charts.sampler)


async def render(app: web.Application) -> dict[str, Any]:
    return await app[CHARTS].render()

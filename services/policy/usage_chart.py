"""A PNG chart of jobs and spend per day, drawn with matplotlib's Agg backend.

Drawing takes tens of milliseconds, so callers run ``render_png`` in a thread. It builds a
``Figure`` directly rather than through pyplot: no global state, safe off the main thread.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence

from services.policy.usage import DayUsage


def render_png(days: Sequence[DayUsage], title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # imported here: slow, and only moderators need it
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    jobs_axis = figure.add_subplot()
    labels = [day.day[5:] for day in days]  # MM-DD
    positions = list(range(len(days)))
    jobs_axis.bar(positions, [day.jobs for day in days], color="#5865F2", label="jobs")
    jobs_axis.set_ylabel("jobs")
    jobs_axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    spend_axis = jobs_axis.twinx()
    spend_axis.plot(positions, [day.usd for day in days], color="#ED4245", marker="o", markersize=3, label="spend")
    spend_axis.set_ylabel("spend (USD)")
    spend_axis.set_ylim(bottom=0)
    step = max(1, len(days) // 10)
    jobs_axis.set_xticks(positions[::step], labels[::step])
    jobs_axis.set_title(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


async def render_png_in_thread(days: Sequence[DayUsage], title: str) -> bytes:
    return await asyncio.to_thread(render_png, list(days), title)

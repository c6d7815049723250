"""Forecast charts for a web page: a JSON structure for a client-side chart, and a server-rendered PNG.

The gateway draws them from the forecasting service's ``ForecastResponse`` (gateway/routes/forecasting.py);
matplotlib is imported with this module, on the first chart request.

Both take the same arguments: the history (dates, values), the forecast (dates, expected value, lower
and upper bound of the prediction interval), a title and the interval's coverage ``level`` (0.8 or
80 = an 80% interval). Dates may be ``date``/``datetime`` (pandas ``Timestamp`` included),
``numpy.datetime64`` or ISO strings. The PNG is drawn on a bare ``matplotlib.figure.Figure`` with the
Agg canvas (no pyplot, no global state), so it is safe to call from several threads at once.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

WIDTH_PX, HEIGHT_PX, DPI = 800, 400, 100
HISTORY_COLOUR, FORECAST_COLOUR = "#4a4a4a", "#1f77b4"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

Dates = Sequence[date | datetime | str | np.datetime64] | np.ndarray
Values = Sequence[float] | np.ndarray


def _to_date(value: date | datetime | str | np.datetime64) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, np.datetime64):
        return date.fromisoformat(str(value.astype("datetime64[D]")))
    return date.fromisoformat(str(value)[:10])


def _dates(values: Dates) -> list[date]:
    return [_to_date(v) for v in (values.tolist() if isinstance(values, np.ndarray) and values.dtype.kind != "M"
                                  else values)]


def _floats(values: Values) -> list[float | None]:
    """Plain floats, NaN/inf as None (JSON has no NaN)."""
    out: list[float | None] = []
    for v in np.asarray(values, dtype=np.float64).tolist():
        out.append(v if math.isfinite(v) else None)
    return out


def _level_pct(level: float) -> float:
    return level * 100.0 if level <= 1.0 else float(level)


def _checked(history_dates: Dates, history_y: Values, dates: Dates, yhat: Values, lower: Values,
             upper: Values) -> tuple[list[date], list[float | None], list[date], list[list[float | None]]]:
    hd, hy = _dates(history_dates), _floats(history_y)
    fd = _dates(dates)
    series = [_floats(yhat), _floats(lower), _floats(upper)]
    if len(hd) != len(hy):
        raise ValueError(f"history_dates and history_y differ in length: {len(hd)} != {len(hy)}")
    if any(len(s) != len(fd) for s in series):
        raise ValueError("dates, yhat, lower and upper must have the same length")
    return hd, hy, fd, series


def forecast_chart_json(history_dates: Dates, history_y: Values, dates: Dates, yhat: Values, lower: Values,
                        upper: Values, title: str = "", level: float = 0.8) -> dict[str, Any]:
    """A JSON-serialisable chart description::

        {"title", "level" (0..1), "interval_label" ("80% interval"), "x": "date", "y": "units per day",
         "history": {"dates": [...], "y": [...]},
         "forecast": {"dates": [...], "yhat": [...], "lower": [...], "upper": [...]},
         "forecast_start": first forecast date or None}

    Dates are "YYYY-MM-DD" strings; missing or non-finite values are ``null``."""
    hd, hy, fd, (fy, lo, up) = _checked(history_dates, history_y, dates, yhat, lower, upper)
    pct = _level_pct(level)
    return {
        "title": title,
        "level": pct / 100.0,
        "interval_label": f"{pct:g}% interval",
        "x": "date",
        "y": "units per day",
        "history": {"dates": [d.isoformat() for d in hd], "y": hy},
        "forecast": {"dates": [d.isoformat() for d in fd], "yhat": fy, "lower": lo, "upper": up},
        "forecast_start": fd[0].isoformat() if fd else None,
    }


def _nan(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def forecast_chart_png(history_dates: Dates, history_y: Values, dates: Dates, yhat: Values, lower: Values,
                       upper: Values, title: str = "", level: float = 0.8) -> bytes:
    """An 800 x 400 PNG: history line, dashed forecast line, shaded interval, a marker at the forecast
    start. Thread safe (a private Figure and Agg canvas per call)."""
    hd, hy, fd, (fy, lo, up) = _checked(history_dates, history_y, dates, yhat, lower, upper)
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if hd:
        ax.plot(hd, _nan(hy), color=HISTORY_COLOUR, linewidth=1.2, label="history")
    if fd:
        ax.fill_between(fd, _nan(lo), _nan(up), color=FORECAST_COLOUR, alpha=0.2, linewidth=0,
                        label=f"{_level_pct(level):g}% interval")
        ax.plot(fd, _nan(fy), color=FORECAST_COLOUR, linewidth=1.6, linestyle="--", label="forecast")
        if hd:
            ax.axvline(fd[0], color="#999999", linewidth=0.8, linestyle=":")
    if hd or fd:
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="#999999")
    # The title holds the caller's product id or category: text, never matplotlib's $math$ ("$5 $off" is an id).
    ax.set_title(title, fontsize=11, parse_math=False)
    ax.set_ylabel("units per day")
    finite = [v for v in (*hy, *fy, *lo, *up) if v is not None]
    if finite and min(finite) >= 0:
        ax.set_ylim(bottom=0)
    ax.grid(True, linewidth=0.4, alpha=0.5)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.12)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()

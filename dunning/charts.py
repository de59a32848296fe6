"""Portfolio charts as PNG bytes (matplotlib, Agg backend, no pyplot global state).

Each function draws one chart from a frame of `dunning.reports` and returns the PNG file's
bytes, ready for an email's inline image, a Prefect image artifact (as a `data:` URL) or a
file. Figures are built with `matplotlib.figure.Figure`, so charts can be drawn from several
threads at once. One panel per currency: amounts in different currencies never share an axis.

Example:
    >>> from dunning.charts import aging_chart
    >>> Path("aging.png").write_bytes(aging_chart(report.aging, locale="es_ES"))
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pandas as pd
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_compact_decimal, format_decimal
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

#: Chart texts per language (English when the report's language has none).
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "aging": "Receivables by days past due",
        "dso_trend": "Days sales outstanding",
        "collections": "Collected per week",
        "countback": "countback",
        "simple": "simple",
        "days": "days",
        "current": "current",
        "no_data": "no data",
        "week_of": "week of",
    },
    "es": {
        "aging": "Saldo pendiente por días de retraso",
        "dso_trend": "Periodo medio de cobro (DSO)",
        "collections": "Cobrado por semana",
        "countback": "método countback",
        "simple": "método simple",
        "days": "días",
        "current": "no vencido",
        "no_data": "sin datos",
        "week_of": "semana del",
    },
}
_BLUE, _ORANGE, _RED = "#2f6690", "#d9822b", "#b23a48"
_BUCKET_COLORS = ["#3a7d44", "#f2c14e", "#f78154", "#d1495b", "#7a1f3d"]


def _labels(locale: str) -> dict[str, str]:
    return LABELS.get(Locale.parse(locale).language, LABELS["en"])


def _figure(panels: int) -> tuple[Figure, list]:
    fig = Figure(figsize=(8, 2.6 + 2.2 * max(panels, 1)), dpi=100, layout="constrained")
    axes = fig.subplots(max(panels, 1), 1, squeeze=False)[:, 0]
    return fig, list(axes)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def _money_axis(locale: str) -> FuncFormatter:
    loc = Locale.parse(locale)
    return FuncFormatter(lambda v, _pos: _compact(v, loc))


def _compact(value: float, loc: Locale) -> str:
    """1234.5 -> "1,2 mil" (es) / "1.2K" (en); small amounts without decimals."""
    return format_compact_decimal(round(float(value)), locale=loc, fraction_digits=1)


def _empty(fig: Figure, ax, text: str) -> None:  # noqa: ANN001
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_axis_off()


def aging_chart(aging: pd.DataFrame, *, locale: str = "en") -> bytes:
    """Bars of receivables per aging bucket, one panel per currency, amounts labelled.

    `aging` is the frame of `dunning.reports.aging` (currency, bucket, count, amount).
    """
    words = _labels(locale)
    loc = Locale.parse(locale)
    currencies = list(dict.fromkeys(aging["currency"]))
    fig, axes = _figure(len(currencies))
    fig.suptitle(words["aging"], fontsize=13)
    if not currencies:
        _empty(fig, axes[0], words["no_data"])
    for ax, currency in zip(axes, currencies, strict=False):
        rows = aging[aging["currency"] == currency]
        names = [words["current"] if b == "current" else b for b in rows["bucket"]]
        bars = ax.bar(names, rows["amount"], color=_BUCKET_COLORS[: len(rows)])
        ax.bar_label(
            bars,
            labels=[
                f"{_compact(a, loc)} ({c})"
                for a, c in zip(rows["amount"], rows["count"], strict=True)
            ],
            fontsize=8,
            padding=2,
        )
        ax.set_title(currency, fontsize=10, loc="left")
        ax.yaxis.set_major_formatter(_money_axis(locale))
        ax.margins(y=0.15)
        ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def dso_trend_chart(trend: pd.DataFrame, *, locale: str = "en") -> bytes:
    """Lines of countback and simple DSO over the month ends, one panel per currency.

    `trend` is the frame of `dunning.reports.dso_trend` (date, currency, dso_countback,
    dso_simple).
    """
    words = _labels(locale)
    loc = Locale.parse(locale)
    currencies = list(dict.fromkeys(trend["currency"]))
    fig, axes = _figure(len(currencies))
    fig.suptitle(words["dso_trend"], fontsize=13)
    if not currencies:
        _empty(fig, axes[0], words["no_data"])
    for ax, currency in zip(axes, currencies, strict=False):
        rows = trend[trend["currency"] == currency].sort_values("date")
        x = pd.to_datetime(rows["date"])
        ax.plot(x, rows["dso_countback"], marker="o", color=_BLUE, label=words["countback"])
        ax.plot(x, rows["dso_simple"], marker="s", ls="--", color=_ORANGE, label=words["simple"])
        ax.set_title(currency, fontsize=10, loc="left")
        ax.set_ylabel(words["days"])
        ax.set_ylim(bottom=0)
        ax.set_xticks(list(x))
        ax.set_xticklabels(_dates(x, loc, "MMM yy"), rotation=45, ha="right", fontsize=8)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: format_decimal(v, locale=loc)))
        ax.legend(fontsize=8, frameon=False)
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def collections_chart(weekly: pd.DataFrame, *, locale: str = "en") -> bytes:
    """Bars of the amount collected per week, one panel per currency.

    `weekly` is the frame of `dunning.reports.collections_by_week` (week_start, currency,
    invoices, amount).
    """
    words = _labels(locale)
    loc = Locale.parse(locale)
    currencies = list(dict.fromkeys(weekly["currency"]))
    fig, axes = _figure(len(currencies))
    fig.suptitle(words["collections"], fontsize=13)
    if not currencies:
        _empty(fig, axes[0], words["no_data"])
    for ax, currency in zip(axes, currencies, strict=False):
        rows = weekly[weekly["currency"] == currency].sort_values("week_start")
        names = _dates(pd.to_datetime(rows["week_start"]), loc, "d MMM")
        ax.bar(names, rows["amount"], color=_BLUE)
        ax.set_title(f"{currency} ({words['week_of']})", fontsize=10, loc="left")
        ax.yaxis.set_major_formatter(_money_axis(locale))
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _dates(values: pd.Series, loc: Locale, pattern: str) -> list[str]:
    return [format_date(v.date(), format=pattern, locale=loc) for v in values]


#: The report's charts, in the order they appear: name -> (function, report attribute).
CHARTS: dict[str, tuple[Callable[..., bytes], str]] = {
    "aging": (aging_chart, "aging"),
    "dso_trend": (dso_trend_chart, "dso_trend"),
    "collections": (collections_chart, "collections"),
}


def portfolio_charts(report: object, *, locale: str = "en") -> dict[str, bytes]:
    """Every chart of a `PortfolioReport`, as PNG bytes by name (aging, dso_trend, collections)."""
    return {
        name: draw(getattr(report, attr), locale=locale) for name, (draw, attr) in CHARTS.items()
    }


def chart_title(name: str, locale: str = "en") -> str:
    """The chart's title in the locale's language (alt text of the email's images)."""
    return _labels(locale)[name]

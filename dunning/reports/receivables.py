"""Receivables at a date: aging, DSO (countback and simple), CEI, days late, collections.

All functions take the report's invoice frame (`dunning.reports.frame`) and a day `as_of`,
and return one row per currency (or per currency and bucket, week, customer): amounts in
different currencies are never added together. Convert first (`convert_currency`) for one
total.

What an invoice owed on a day D (`balances_at`):

- nothing if it was issued after D, is cancelled (a cancelled invoice is neither a sale nor
  a receivable), or was closed on or before D (or is closed with no known closing day);
- its whole `amount_total` if it was closed after D (part payments carry no date here);
- its current `amount_due` if it is still open.

Days are calendar days; an invoice is *current* on D while D is on or before its due day.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

#: Aging buckets by days past due: not yet due, 1-30, 31-60, 61-90, over 90.
AGING_BUCKETS: tuple[str, ...] = ("current", "1-30", "31-60", "61-90", "90+")
_BUCKET_EDGES = [-np.inf, 0, 30, 60, 90, np.inf]


def as_day(value: date | datetime | str | pd.Timestamp) -> pd.Timestamp:
    """A day as a naive midnight timestamp (a tz-aware moment keeps its own calendar day)."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_localize(None)
    return stamp.normalize()


def currencies(invoices: pd.DataFrame) -> list[str]:
    """The frame's currencies, sorted."""
    return sorted(str(c) for c in invoices["currency"].unique())


def balances_at(invoices: pd.DataFrame, day: date | pd.Timestamp) -> pd.Series:
    """What each invoice owed at the end of `day` (see the module docstring), as floats."""
    d = as_day(day)
    closed = invoices["closed_date"]
    live = (invoices["status"] != "cancelled") & (invoices["issue_date"] <= d)
    closed_by_then = closed.notna() & (closed <= d)
    closed_unknown = closed.isna() & invoices["status"].isin(["paid", "cancelled"])
    owed = np.where(closed.notna() & (closed > d), invoices["amount_total"], invoices["amount_due"])
    keep = live & ~closed_by_then & ~closed_unknown
    return pd.Series(np.where(keep, owed, 0.0), index=invoices.index, dtype="float64")


def receivables(invoices: pd.DataFrame, day: date | pd.Timestamp) -> pd.Series:
    """Total receivables at the end of `day`, per currency (every currency of the frame)."""
    return balances_at(invoices, day).groupby(invoices["currency"]).sum().rename("receivables")


def credit_sales(
    invoices: pd.DataFrame, start: date | pd.Timestamp, end: date | pd.Timestamp
) -> pd.Series:
    """`amount_total` of invoices issued after `start` up to and including `end`, per currency.

    Cancelled invoices are not sales.
    """
    s, e = as_day(start), as_day(end)
    mask = (
        (invoices["status"] != "cancelled")
        & (invoices["issue_date"] > s)
        & (invoices["issue_date"] <= e)
    )
    amounts = invoices["amount_total"].where(mask, 0.0)
    return amounts.groupby(invoices["currency"]).sum().rename("credit_sales")


def open_items(invoices: pd.DataFrame, as_of: date | pd.Timestamp) -> pd.DataFrame:
    """Invoices that owed something at the end of `as_of`, most overdue first.

    Adds `balance` (what it owed then), `days_past_due` (negative: days until due) and
    `bucket` (one of `AGING_BUCKETS`).
    """
    d = as_day(as_of)
    balance = balances_at(invoices, d)
    items = invoices[balance > 0.005].copy()
    items["balance"] = balance[balance > 0.005]
    items["days_past_due"] = (d - items["due_date"]).dt.days.astype("int64")
    items["bucket"] = _bucket(items["days_past_due"])
    return items.sort_values(
        ["days_past_due", "balance"], ascending=[False, False], kind="stable"
    ).reset_index(drop=True)


def aging(invoices: pd.DataFrame, as_of: date | pd.Timestamp) -> pd.DataFrame:
    """Receivables by days past due: count and amount per currency and bucket.

    Buckets: `current` (not yet due: due day on or after `as_of`), `1-30`, `31-60`, `61-90`
    and `90+` days past due. Every bucket appears for every currency (zeros included);
    `share` is the bucket's part of the currency's receivables (0-1).

    Example:
        >>> aging(frame, date(2026, 12, 7))
          currency   bucket  count   amount  share
        0      EUR  current      3   1200.0   0.40
        ...
    """
    items = open_items(invoices, as_of)
    grid = pd.MultiIndex.from_product(
        [currencies(invoices), AGING_BUCKETS], names=["currency", "bucket"]
    )
    grouped = items.groupby(["currency", "bucket"], observed=True)["balance"].agg(["count", "sum"])
    table = grouped.reindex(grid, fill_value=0).rename(columns={"sum": "amount"}).reset_index()
    table["count"] = table["count"].astype("int64")
    table["amount"] = table["amount"].astype("float64")
    totals = table.groupby("currency")["amount"].transform("sum")
    table["share"] = (table["amount"] / totals.where(totals > 0)).fillna(0.0)
    return table


def dso_simple(
    invoices: pd.DataFrame, as_of: date | pd.Timestamp, period_days: int = 90
) -> pd.DataFrame:
    """Days sales outstanding, simple method, per currency.

    DSO = receivables at `as_of` / credit sales over the period × days in the period,
    where the period is the `period_days` days ending with `as_of` (issued after
    `as_of − period_days`, up to `as_of`). Empty (NaN) when there were no sales.

    Example: receivables 3,000, sales of the last 90 days 9,000 → 3,000 / 9,000 × 90 = 30.
    """
    d = as_day(as_of)
    ar = receivables(invoices, d)
    sales = credit_sales(invoices, d - pd.Timedelta(days=period_days), d).reindex(ar.index)
    out = pd.DataFrame({"receivables": ar, "credit_sales": sales})
    out["period_days"] = period_days
    out["dso"] = (
        out["receivables"] / out["credit_sales"].where(out["credit_sales"] > 0) * (period_days)
    )
    return out.reset_index()


def dso_countback(invoices: pd.DataFrame, as_of: date | pd.Timestamp) -> pd.DataFrame:
    """Days sales outstanding, countback method, per currency.

    Start with the receivables at `as_of` and walk back month by month, subtracting each
    month's credit sales, until the receivables are exhausted: every month fully used adds
    its days; the month that exhausts them adds its days × (receivables left / its sales).
    Months are calendar months; the first is the part of `as_of`'s month up to `as_of`
    (`as_of.day` days), so at a month end it is the whole month.

        DSO = Σ days(fully covered months) + days(last month) × remaining / sales(last month)

    Example (as of 30 June): receivables 1,500; June sales 1,000 (30 days) are used up,
    500 remain; May sales 1,000 (31 days) → 30 + 31 × 500 / 1,000 = 45.5.

    `exhausted` is True when the receivables exceed all the sales in the frame: the DSO
    is then the whole history's length, a lower bound.
    """
    d = as_day(as_of)
    ar = receivables(invoices, d)
    sold = invoices[(invoices["status"] != "cancelled") & (invoices["issue_date"] <= d)]
    month = sold["issue_date"].dt.to_period("M")
    monthly = sold["amount_total"].groupby([sold["currency"], month]).sum()
    rows = []
    for currency, owed in ar.items():
        sales = monthly.get(currency, pd.Series(dtype="float64"))
        dso, months, exhausted = _countback(float(owed), sales, d)
        rows.append(
            {
                "currency": currency,
                "receivables": float(owed),
                "dso": dso,
                "months": months,
                "exhausted": exhausted,
            }
        )
    columns = ["currency", "receivables", "dso", "months", "exhausted"]
    return pd.DataFrame(rows, columns=columns).astype({"currency": str})


def _countback(owed: float, sales: pd.Series, day: pd.Timestamp) -> tuple[float, int, bool]:
    """DSO, months walked and whether the history ran out (see `dso_countback`)."""
    if owed <= 0.005:
        return 0.0, 0, False
    last = day.to_period("M")
    first = sales.index.min() if len(sales) else last
    periods = pd.period_range(first, last, freq="M")[::-1]
    amounts = sales.reindex(periods, fill_value=0.0).to_numpy(dtype="float64")
    days = np.array([p.days_in_month for p in periods], dtype="float64")
    days[0] = day.day  # the month of as_of counts only up to as_of
    covered = np.cumsum(amounts)
    k = int(np.searchsorted(covered, owed - 1e-9, side="left"))
    if k >= len(periods):
        return float(days.sum()), len(periods), True
    before = covered[k - 1] if k else 0.0
    return float(days[:k].sum() + days[k] * (owed - before) / amounts[k]), k + 1, False


def cei(invoices: pd.DataFrame, as_of: date | pd.Timestamp, period_days: int = 30) -> pd.DataFrame:
    """Collection effectiveness index over the `period_days` days ending with `as_of`.

    CEI = (beginning receivables + credit sales − ending total receivables)
          / (beginning receivables + credit sales − ending current receivables) × 100

    Beginning receivables are those at the end of `as_of − period_days`; credit sales are
    invoices issued in the period; ending current receivables are those not yet due at
    `as_of`. 100 means everything collectible was collected. NaN when the denominator is 0.
    """
    d = as_day(as_of)
    start = d - pd.Timedelta(days=period_days)
    begin = receivables(invoices, start)
    end_total = receivables(invoices, d)
    balance = balances_at(invoices, d)
    current = balance.where(invoices["due_date"] >= d, 0.0).groupby(invoices["currency"]).sum()
    sales = credit_sales(invoices, start, d)
    out = pd.DataFrame(
        {
            "beginning_receivables": begin,
            "credit_sales": sales,
            "ending_receivables": end_total,
            "ending_current": current,
        }
    ).fillna(0.0)
    collectible = out["beginning_receivables"] + out["credit_sales"] - out["ending_current"]
    collected = out["beginning_receivables"] + out["credit_sales"] - out["ending_receivables"]
    out["cei"] = collected / collectible.where(collectible.abs() > 0.005) * 100
    out["period_days"] = period_days
    return out.rename_axis("currency").reset_index()


def dso_trend(
    invoices: pd.DataFrame,
    as_of: date | pd.Timestamp,
    months: int = 12,
    period_days: int = 90,
) -> pd.DataFrame:
    """Countback and simple DSO at the last `months` month ends before `as_of`, and `as_of`.

    One row per date and currency: `date`, `currency`, `receivables`, `dso_countback`,
    `dso_simple`. Months before the frame's first invoice are left out.
    """
    d = as_day(as_of)
    ends = list(pd.date_range(end=d, periods=months + 1, freq="ME"))
    ends = [e for e in ends if e < d] + [d]
    ends = ends[-(months + 1) :]
    first = invoices["issue_date"].min()
    frames = []
    for end in ends:
        if pd.isna(first) or end < first:
            continue
        cb = dso_countback(invoices, end)[["currency", "receivables", "dso"]]
        simple = dso_simple(invoices, end, period_days)[["currency", "dso"]]
        merged = cb.merge(simple, on="currency", suffixes=("_countback", "_simple"))
        frames.append(merged.assign(date=end))
    columns = ["date", "currency", "receivables", "dso_countback", "dso_simple"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def average_days_late(
    invoices: pd.DataFrame,
    as_of: date | pd.Timestamp,
    since: date | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """How late invoices were paid, per currency, for those paid after `since` up to `as_of`.

    Days late = max(0, paid day − due day). Columns: `paid` (invoices), `paid_late`,
    `share_late` (0-1), `avg_days_late` (mean over all paid, on-time ones count 0),
    `avg_days_late_of_late` (mean over the late ones only), `weighted_days_late`
    (Σ days late × amount / Σ amount). All paid invoices up to `as_of` when `since` is None.
    """
    d = as_day(as_of)
    paid = (invoices["status"] == "paid") & invoices["closed_date"].notna()
    paid &= invoices["closed_date"] <= d
    if since is not None:
        paid &= invoices["closed_date"] > as_day(since)
    rows = invoices[paid]
    late = (rows["closed_date"] - rows["due_date"]).dt.days.clip(lower=0).astype("float64")
    frame = pd.DataFrame(
        {
            "currency": rows["currency"],
            "late": late,
            "is_late": late > 0,
            "weight": late * rows["amount_total"],
            "amount": rows["amount_total"],
        }
    )
    g = frame.groupby("currency")
    out = pd.DataFrame(
        {
            "paid": g.size(),
            "paid_late": g["is_late"].sum(),
            "avg_days_late": g["late"].mean(),
            "avg_days_late_of_late": frame[frame["is_late"]].groupby("currency")["late"].mean(),
            "weighted_days_late": g["weight"].sum() / g["amount"].sum().where(lambda s: s > 0),
        }
    )
    out = out.reindex(currencies(invoices))
    out["paid"] = out["paid"].fillna(0).astype("int64")
    out["paid_late"] = out["paid_late"].fillna(0).astype("int64")
    out["share_late"] = out["paid_late"] / out["paid"].where(out["paid"] > 0)
    columns = [
        "paid",
        "paid_late",
        "share_late",
        "avg_days_late",
        "avg_days_late_of_late",
        "weighted_days_late",
    ]
    return out[columns].rename_axis("currency").reset_index()


def collections_by_week(
    invoices: pd.DataFrame, as_of: date | pd.Timestamp, weeks: int = 12
) -> pd.DataFrame:
    """Amount collected per week (Monday to Sunday) and currency, the last `weeks` weeks.

    An invoice counts in the week of its paid day, for its `amount_total` (part payments
    carry no date in the frame). Weeks with nothing collected appear with zeros; the last
    week is the one containing `as_of`, up to `as_of`.
    """
    d = as_day(as_of)
    this_monday = d - pd.Timedelta(days=d.weekday())
    starts = pd.date_range(end=this_monday, periods=weeks, freq="7D")
    paid = (invoices["status"] == "paid") & invoices["closed_date"].notna()
    paid &= (invoices["closed_date"] >= starts[0]) & (invoices["closed_date"] <= d)
    rows = invoices[paid]
    week = rows["closed_date"] - pd.to_timedelta(rows["closed_date"].dt.day_of_week, unit="D")
    grouped = rows["amount_total"].groupby([rows["currency"], week]).agg(["count", "sum"])
    grid = pd.MultiIndex.from_product(
        [currencies(invoices), starts], names=["currency", "week_start"]
    )
    grouped.index.names = ["currency", "week_start"]
    out = grouped.reindex(grid, fill_value=0).reset_index()
    out = out.rename(columns={"count": "invoices", "sum": "amount"})
    out["invoices"] = out["invoices"].astype("int64")
    out["amount"] = out["amount"].astype("float64")
    return out[["week_start", "currency", "invoices", "amount"]]


def top_overdue_customers(
    invoices: pd.DataFrame, as_of: date | pd.Timestamp, n: int = 10
) -> pd.DataFrame:
    """The `n` customers owing most past due at `as_of`, per currency.

    Columns: `currency`, `customer_id`, `customer_name`, `overdue` (amount past due),
    `invoices` (past-due invoices), `oldest_days` (days past due of the oldest one),
    `receivables` (everything they owe, due or not).
    """
    items = open_items(invoices, as_of)
    owed = items.groupby(["currency", "customer_id"])["balance"].sum().rename("receivables")
    late = items[items["days_past_due"] > 0]
    g = late.groupby(["currency", "customer_id"])
    out = pd.DataFrame(
        {
            "customer_name": g["customer_name"].first(),
            "overdue": g["balance"].sum(),
            "invoices": g.size(),
            "oldest_days": g["days_past_due"].max(),
        }
    ).join(owed)
    columns = [
        "currency",
        "customer_id",
        "customer_name",
        "overdue",
        "invoices",
        "oldest_days",
        "receivables",
    ]
    if out.empty:
        return pd.DataFrame(columns=columns)
    out = out.reset_index().sort_values(
        ["currency", "overdue", "customer_id"], ascending=[True, False, True], kind="stable"
    )
    return out.groupby("currency").head(n).reset_index(drop=True)[columns]


def _bucket(days_past_due: pd.Series) -> pd.Series:
    return pd.cut(days_past_due, _BUCKET_EDGES, labels=list(AGING_BUCKETS), right=True)

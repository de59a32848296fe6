"""Features of an invoice from what was known the day it was issued, and nothing later.

The rule that keeps the future out: an invoice issued on day *t* may only learn from

* its own fields known at issue (amount, terms, country, channel, terms key, ...);
* the customer's invoices **settled** before *t* — issued before *t* and paid before *t*
  (an invoice issued after *t* does not exist yet, even if the source says it was paid
  earlier) — for its past lateness, delays and disputes;
* the customer's invoices issued before *t* and still open on *t*, and of those the ones
  already past due on *t* (an invoice unpaid after its due date is known to be late).

Each of these is a per-customer prefix sum over events sorted by (customer, day), looked up
with `np.searchsorted` for strictly earlier days: no loop over invoices, so the SAP file's
200k rows take well under a second. The invoice's own payment date is never read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Numeric features, in model order; categoricals (see `sources.CATEGORICAL_COLUMNS`) follow.
NUMERIC_FEATURES: tuple[str, ...] = (
    "log_amount",
    "terms_days",
    "issue_weekday",
    "due_day_of_month",
    "due_weekday",
    "hist_settled_n",
    "hist_late_share",
    "hist_late_share_last5",
    "hist_days_late_mean",
    "hist_days_late_max",
    "hist_delay_mean",
    "hist_last_delay",
    "days_since_last_settled",
    "hist_dispute_share",
    "hist_paid_day_of_month",
    "issued_n",
    "tenure_days",
    "amount_vs_mean",
    "open_n",
    "open_amount_log",
    "overdue_open_n",
    "overdue_open_amount_log",
)

_OFFSET = 1 << 20  # days added so that any date since 1 BC is a positive key
_SPAN = 1 << 22  # key = customer * _SPAN + day + _OFFSET


def day_numbers(dates: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 as int64 (NaT must have been removed or masked by the caller)."""
    return dates.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)


def late_labels(frame: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """1 paid after its due date, 0 paid by it, NaN not known yet on `as_of`.

    An unpaid invoice whose due date is before `as_of` is already known to be late.
    """
    paid, due = frame["paid_date"], frame["due_date"]
    label = pd.Series(np.nan, index=frame.index)
    label[paid.notna()] = (paid > due)[paid.notna()].astype(float)
    label[paid.isna() & (due < as_of)] = 1.0
    return label


class _Prefix:
    """Per-customer running sums of event values, ordered by (customer, day).

    Values must be whole numbers (counts, days, cents) so that the sums are exact.
    """

    def __init__(self, customer: np.ndarray, day: np.ndarray, values: dict[str, np.ndarray]):
        order = np.lexsort((day, customer))
        self.customer = customer[order]
        self.day = day[order]
        self.key = self.customer * _SPAN + self.day + _OFFSET
        self.sorted = {k: np.asarray(v, dtype=float)[order] for k, v in values.items()}
        self.cum = {k: np.concatenate(([0.0], np.cumsum(v))) for k, v in self.sorted.items()}

    def bounds(self, customer: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi): the customer's events on days strictly before `day`."""
        lo = np.searchsorted(self.key, customer * _SPAN, side="left")
        hi = np.searchsorted(self.key, customer * _SPAN + day + _OFFSET, side="left")
        return lo, hi

    def total(self, name: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        cum = self.cum[name]
        return cum[hi] - cum[lo]

    def last_k(self, name: str, lo: np.ndarray, hi: np.ndarray, k: int) -> np.ndarray:
        """Mean of the customer's last `k` events before the day (NaN when none)."""
        start = np.maximum(lo, hi - k)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.cum[name][hi] - self.cum[name][start]) / (hi - start)

    def last_day_mean(self, name: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Mean of `name` over the customer's latest day with events before the day.

        Averaged over that day so the result does not depend on the order of the rows.
        """
        values = self.sorted[name]
        if len(values) == 0:
            return np.full(len(lo), np.nan)
        new_day = np.r_[True, self.key[1:] != self.key[:-1]]
        starts = np.flatnonzero(new_day)
        means = np.add.reduceat(values, starts) / np.diff(np.r_[starts, len(values)])
        return self.last(means[np.cumsum(new_day) - 1], lo, hi)

    def first(self, values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """`values` (aligned with the sorted events) of the customer's earliest event."""
        if len(values) == 0:
            return np.full(len(lo), np.nan)
        return np.where(hi > lo, values[np.minimum(lo, len(values) - 1)], np.nan)

    def last(self, values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """`values` (aligned with the sorted events) of the latest event before the day."""
        if len(values) == 0:
            return np.full(len(lo), np.nan)
        return np.where(hi > lo, values[np.maximum(hi - 1, 0)], np.nan)


def build_features(
    targets: pd.DataFrame, history: pd.DataFrame, categorical: Sequence[str] = ()
) -> pd.DataFrame:
    """The feature frame (index of `targets`) for invoices, learning from `history`.

    Args:
        targets: risk-frame rows to describe; they need customer_id, issue_date, due_date
            and amount (missing values give NaN features, not errors).
        history: risk-frame rows the customers' past is read from (may include the targets
            themselves: an invoice never sees itself, its day is not before its own day).
            Invalid and duplicate rows are ignored.
        categorical: categorical columns to copy from the targets (as text, NaN if absent).
    """
    hist = history
    if "valid" in hist:
        hist = hist[hist["valid"].astype(bool) & ~hist["duplicate"].astype(bool)]
    hist = hist[hist["issue_date"].notna()]
    codes, _ = pd.factorize(
        pd.concat([targets["customer_id"], hist["customer_id"]], ignore_index=True).astype(str)
    )
    t_cust = codes[: len(targets)].astype(np.int64)
    h_cust = codes[len(targets) :].astype(np.int64)

    t_issue = targets["issue_date"]
    t_day = day_numbers(t_issue.fillna(pd.Timestamp("1970-01-01")))
    t_day = np.where(t_issue.isna(), -_OFFSET + 1, t_day)  # no history before an unknown day
    amount = pd.to_numeric(targets["amount"], errors="coerce").to_numpy(dtype=float)
    out = pd.DataFrame(index=targets.index)
    out["log_amount"] = np.log1p(np.clip(amount, 0, None))
    out["terms_days"] = (targets["due_date"] - t_issue).dt.days.astype(float)
    out["issue_weekday"] = t_issue.dt.day_of_week.astype(float)
    # Where the due date falls in the month and week, against the customer's usual payment
    # day below: customers that pay in month-end or weekly runs are late by the calendar.
    out["due_day_of_month"] = targets["due_date"].dt.day.astype(float)
    out["due_weekday"] = targets["due_date"].dt.day_of_week.astype(float)

    h_issue = day_numbers(hist["issue_date"])
    # In cents, so every summed value is a whole number: float sums of whole numbers are
    # exact, and a customer's features then do not depend on the order of the file's rows.
    h_money = pd.to_numeric(hist["amount"], errors="coerce").fillna(0).to_numpy(dtype=float)
    h_amount = np.round(h_money * 100)
    due_known = hist["due_date"].notna().to_numpy()
    h_due = np.where(due_known, day_numbers(hist["due_date"].fillna(hist["issue_date"])), 0)
    paid_known = hist["paid_date"].notna().to_numpy()
    h_paid = np.where(paid_known, day_numbers(hist["paid_date"].fillna(hist["issue_date"])), 0)

    # Settled invoices: known from the later of issue and payment.
    s = paid_known & due_known
    delay = (h_paid - h_due)[s].astype(float)
    disputed = pd.to_numeric(hist["disputed"], errors="coerce").to_numpy(dtype=float)[s]
    settled = _Prefix(
        h_cust[s],
        np.maximum(h_issue, h_paid)[s],
        {
            "n": np.ones(s.sum()),
            "late": (delay > 0).astype(float),
            "days_late": np.clip(delay, 0, None),
            # Clipped so that one invoice paid a year late does not drown the mean.
            "delay": np.clip(delay, -60, 120),
            "amount": h_amount[s],
            "disputed": np.nan_to_num(disputed),
            "disputed_known": (~np.isnan(disputed)).astype(float),
            "paid_day": hist["paid_date"].dt.day.to_numpy(dtype=float)[s],
        },
    )
    lo, hi = settled.bounds(t_cust, t_day)
    n = settled.total("n", lo, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["hist_settled_n"] = n
        out["hist_late_share"] = settled.total("late", lo, hi) / n
        out["hist_late_share_last5"] = settled.last_k("late", lo, hi, 5)
        out["hist_days_late_mean"] = settled.total("days_late", lo, hi) / n
        running_max = (
            pd.Series(settled.sorted["days_late"]).groupby(settled.customer).cummax().to_numpy()
        )
        out["hist_days_late_max"] = settled.last(running_max, lo, hi)
        out["hist_delay_mean"] = settled.total("delay", lo, hi) / n
        out["hist_last_delay"] = settled.last_day_mean("delay", lo, hi)
        out["days_since_last_settled"] = t_day - settled.last(settled.day.astype(float), lo, hi)
        out["hist_dispute_share"] = settled.total("disputed", lo, hi) / settled.total(
            "disputed_known", lo, hi
        )
        out["hist_paid_day_of_month"] = settled.total("paid_day", lo, hi) / n
    settled_amount = settled.total("amount", lo, hi) / 100

    # Invoices issued before the day: how many, how big, how long a customer.
    issued = _Prefix(h_cust, h_issue, {"n": np.ones(len(h_cust)), "amount": h_amount})
    lo, hi = issued.bounds(t_cust, t_day)
    issued_n = issued.total("n", lo, hi)
    issued_amount = issued.total("amount", lo, hi) / 100
    first_day = issued.first(issued.day.astype(float), lo, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["issued_n"] = issued_n
        out["tenure_days"] = t_day - first_day
        out["amount_vs_mean"] = amount / (issued_amount / issued_n)
    out["open_n"] = issued_n - n
    out["open_amount_log"] = np.log1p(np.clip(issued_amount - settled_amount, 0, None))

    # Of those still open on the day, the ones already past due: due < t, not paid before t.
    overdue = _Prefix(
        h_cust[due_known],
        np.maximum(h_issue, h_due)[due_known],
        {"n": np.ones(due_known.sum()), "amount": h_amount[due_known]},
    )
    cleared = _Prefix(
        h_cust[s],
        np.maximum(np.maximum(h_issue, h_due), h_paid)[s],
        {"n": np.ones(s.sum()), "amount": h_amount[s]},
    )
    lo, hi = overdue.bounds(t_cust, t_day)
    clo, chi = cleared.bounds(t_cust, t_day)
    out["overdue_open_n"] = overdue.total("n", lo, hi) - cleared.total("n", clo, chi)
    overdue_amount = (overdue.total("amount", lo, hi) - cleared.total("amount", clo, chi)) / 100
    out["overdue_open_amount_log"] = np.log1p(np.clip(overdue_amount, 0, None))

    for name in categorical:
        out[name] = targets[name] if name in targets else np.nan
    return out[[*NUMERIC_FEATURES, *categorical]]

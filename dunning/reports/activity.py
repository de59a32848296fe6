"""What dunning did and what customers answered: messages, replies, conversions, promises,
disputes and open human tasks, from the ledger's tables as frames.

Periods are UTC days: `start` and `end` are days, and a moment counts when it falls on or
after `start` 00:00 and before the day after `end` (the ledger stores UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from dunning.ledger.reader import read_tables
from dunning.reports.receivables import as_day

#: Days after a reminder within which a payment counts as its conversion.
CONVERSION_DAYS = 7


def _empty(*columns: str) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


@dataclass
class LedgerFrames:
    """The ledger's tables the reports use, as frames (timestamps as naive UTC).

    Only the columns the reports need are read (`LEDGER_COLUMNS`): message texts, headers
    and the event log stay in the database. Frames built by hand need the same columns.
    """

    invoices: pd.DataFrame = field(default_factory=pd.DataFrame)
    actions: pd.DataFrame = field(default_factory=pd.DataFrame)
    pauses: pd.DataFrame = field(default_factory=pd.DataFrame)
    human_tasks: pd.DataFrame = field(default_factory=pd.DataFrame)
    inbound: pd.DataFrame = field(default_factory=pd.DataFrame)
    promises: pd.DataFrame = field(default_factory=pd.DataFrame)


#: Columns read from each ledger table (table name in the ledger, columns).
LEDGER_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "invoices": (
        "invoices",
        (
            "invoice_number",
            "customer_id",
            "customer_name",
            "currency",
            "amount_total",
            "amount_due",
            "due_date",
            "status",
            "first_seen",
            "closed_at",
        ),
    ),
    "actions": (
        "actions",
        (
            "key",
            "invoice_number",
            "customer_id",
            "stage",
            "channel",
            "state",
            "updated_at",
            "sent_at",
            "delivery_status",
            "delivered_at",
            "read_at",
        ),
    ),
    "pauses": (
        "pauses",
        (
            "kind",
            "invoice_number",
            "customer_id",
            "until",
            "reason",
            "active",
            "created_at",
            "ended_at",
        ),
    ),  # fmt: skip
    "human_tasks": ("human_tasks", ("key", "status", "created_at", "closed_at")),
    "inbound": (
        "inbound_messages",
        ("action_key", "invoice_numbers", "customer_id", "intent", "received_at"),
    ),
    "promises": (
        "promises",
        ("invoice_number", "customer_id", "promised_on", "state", "made_at", "resolved_at"),
    ),
}


def read_ledger(url: str) -> LedgerFrames:
    """Read the tables the reports use from the ledger at `url` (SQLAlchemy URL or path).

    Raises:
        FileNotFoundError: a SQLite ledger file that does not exist (it is not created).

    Example:
        >>> frames = read_ledger("sqlite:///var/ledger.db")
        >>> frames.actions[["key", "state", "sent_at"]]
    """
    tables = read_tables(url, dict(LEDGER_COLUMNS.values()))
    return LedgerFrames(**{name: tables[table] for name, (table, _) in LEDGER_COLUMNS.items()})


def _text(values: pd.Series) -> pd.Series:
    """Text with missing values as "" (a lookup in an empty frame gives float NaN)."""
    return values.astype(object).where(values.notna(), "").astype(str)


def _window(start: date | pd.Timestamp | None, end: date | pd.Timestamp):
    """[start 00:00, day after end 00:00) as timestamps; start None means the beginning."""
    lo = as_day(start) if start is not None else pd.Timestamp.min
    return lo, as_day(end) + pd.Timedelta(days=1)


def _in(values: pd.Series, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.Series:
    return values.notna() & (values >= lo) & (values < hi)


def message_stats(
    actions: pd.DataFrame,
    inbound: pd.DataFrame,
    start: date | pd.Timestamp | None,
    end: date | pd.Timestamp,
    invoices: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Reminders sent in the period, per channel (email, WhatsApp, SMS, automated calls),
    and what became of them.

    Columns: `channel`, `sent` (state sent, `sent_at` in the period), `delivered` and `read`
    (as the provider reported them; NaN for a channel that reports no delivery, such as
    plain SMTP email; a call is delivered when a person or a voicemail took it),
    `answered` (calls a person answered: outcome `completed`, not `machine`; NaN for
    messages), `replied` (at least one inbound message answers it: its `action_key`,
    or, for a message matched only by invoice number, received within
    `CONVERSION_DAYS` days after the reminder), `reply_rate` (0-1), `paid_within` (followed
    by payment within `CONVERSION_DAYS` days, credited as `reminder_conversion` does; NaN
    without `invoices`, the report frame with `closed_date`), `failed` (failed or rejected,
    last tried in the period). Human tasks opened instead of a message (channel `task`)
    are not messages and are left out.
    """
    columns = ["channel", "sent", "delivered", "read", "answered", "replied", "reply_rate",
               "paid_within", "failed"]  # fmt: skip
    if actions.empty:
        return _empty(*columns)
    lo, hi = _window(start, end)
    messages = actions[actions["channel"] != "task"]
    sent = messages[(messages["state"] == "sent") & _in(messages["sent_at"], lo, hi)].copy()
    failed = messages[
        messages["state"].isin(["failed", "rejected"]) & _in(messages["updated_at"], lo, hi)
    ]
    status = sent["delivery_status"].fillna("").astype(str)
    sent["delivered"] = status.isin(["delivered", "read"]) | sent["delivered_at"].notna()
    sent["read"] = (status == "read") | sent["read_at"].notna()
    sent["replied"] = sent["key"].isin(_answered_keys(sent, inbound))
    sent["answered"] = status == "completed"
    tracked = (status != "") | sent["delivered_at"].notna() | sent["read_at"].notna()
    g = sent.groupby("channel")
    out = pd.DataFrame(
        {
            "sent": g.size(),
            "delivered": g["delivered"].sum(),
            "read": g["read"].sum(),
            "answered": g["answered"].sum(),
            "replied": g["replied"].sum(),
        }
    )
    out = out.reindex(sorted(set(out.index) | set(failed["channel"])), fill_value=0)
    untracked = ~out.index.isin(sent.loc[tracked, "channel"].unique())
    out.loc[untracked, ["delivered", "read"]] = np.nan
    out["answered"] = out["answered"].where(out.index == "voice")  # only a call is answered
    out["reply_rate"] = out["replied"] / out["sent"].where(out["sent"] > 0)
    out["paid_within"] = np.nan
    if invoices is not None:
        rows = _credited_reminders(actions, invoices, start, end, CONVERSION_DAYS)
        paid = rows.groupby("channel")["converted"].sum()
        out["paid_within"] = paid.reindex(out.index, fill_value=0).astype("float64")
    out["failed"] = failed.groupby("channel").size().reindex(out.index, fill_value=0)
    out = out.rename_axis("channel").reset_index()
    for column in ("sent", "replied", "failed"):
        out[column] = out[column].astype("int64")
    return out[columns]


def _answered_keys(sent: pd.DataFrame, inbound: pd.DataFrame) -> set[str]:
    """Keys of the sent reminders that at least one inbound message answers."""
    if inbound.empty or sent.empty:
        return set()
    keyed = inbound["action_key"].fillna("").astype(str)
    answered = set(keyed[keyed != ""])
    loose = inbound[keyed == ""][["invoice_numbers", "received_at"]].explode("invoice_numbers")
    loose = loose.dropna(subset=["invoice_numbers"])
    if len(loose):
        pairs = sent[["key", "invoice_number", "sent_at"]].merge(
            loose.rename(columns={"invoice_numbers": "invoice_number"}), on="invoice_number"
        )
        delay = pairs["received_at"] - pairs["sent_at"]
        near = (delay >= pd.Timedelta(0)) & (delay <= pd.Timedelta(days=CONVERSION_DAYS))
        answered |= set(pairs.loc[near, "key"])
    return answered


def reminder_conversion(
    actions: pd.DataFrame,
    invoices: pd.DataFrame,
    start: date | pd.Timestamp | None,
    end: date | pd.Timestamp,
    days: int = CONVERSION_DAYS,
) -> pd.DataFrame:
    """Reminders sent in the period that were followed by payment within `days` days, by stage.

    A reminder converts when its invoice's paid day (the report frame's `closed_date` with
    status paid) is on or after the reminder's day and at most `days` days later, and no
    later reminder of the same invoice was sent before that payment (the last reminder
    before a payment gets the credit). Columns: `stage`, `sent`, `paid_within` (converted),
    `awaiting` (not paid yet and the `days` window still open at `end`), `rate` =
    paid_within / (sent − awaiting). Stages are ordered by their typical day relative to the
    due date (pre-due reminders first).
    """
    columns = ["stage", "sent", "paid_within", "awaiting", "rate"]
    if actions.empty:
        return _empty(*columns)
    rows = _credited_reminders(actions, invoices, start, end, days)
    g = rows.groupby("stage")
    out = pd.DataFrame(
        {
            "sent": g.size(),
            "paid_within": g["converted"].sum(),
            "awaiting": g["awaiting"].sum(),
            "order": g["offset"].median(),
        }
    )
    decided = out["sent"] - out["awaiting"]
    out["rate"] = out["paid_within"] / decided.where(decided > 0)
    out = out.sort_values(["order"], kind="stable").rename_axis("stage").reset_index()
    for column in ("sent", "paid_within", "awaiting"):
        out[column] = out[column].astype("int64")
    return out[columns]


def _credited_reminders(
    actions: pd.DataFrame,
    invoices: pd.DataFrame,
    start: date | pd.Timestamp | None,
    end: date | pd.Timestamp,
    days: int,
) -> pd.DataFrame:
    """The reminders sent in the period (stage, channel), each with `converted` (the last
    reminder before a payment within `days` days), `awaiting` and `offset` (days from due)."""
    lo, hi = _window(start, end)
    ok = (actions["state"] == "sent") & (actions["channel"] != "task")
    all_sent = actions[ok & actions["sent_at"].notna()][
        ["key", "invoice_number", "stage", "channel", "sent_at"]
    ].sort_values(["invoice_number", "sent_at"], kind="stable")
    all_sent["next_sent_at"] = all_sent.groupby("invoice_number")["sent_at"].shift(-1)
    rows = all_sent[_in(all_sent["sent_at"], lo, hi)]
    info = invoices.set_index("invoice_number")
    paid_day = info["closed_date"].where(info["status"] == "paid")
    # reindex, not map: a lookup with no match must stay datetime (NaT), whatever matched
    rows = rows.assign(
        paid=paid_day.reindex(rows["invoice_number"]).to_numpy(),
        due=info["due_date"].reindex(rows["invoice_number"]).to_numpy(),
        sent_day=rows["sent_at"].dt.normalize(),
    )
    after = rows["paid"] >= rows["sent_day"]
    within = after & (rows["paid"] <= rows["sent_day"] + pd.Timedelta(days=days))
    not_superseded = rows["next_sent_at"].isna() | (
        rows["paid"] < rows["next_sent_at"].dt.normalize()
    )
    rows["converted"] = within & not_superseded & (rows["paid"] < hi)
    window_open = rows["sent_day"] + pd.Timedelta(days=days) >= as_day(end)
    rows["awaiting"] = window_open & ~(rows["paid"].notna() & (rows["paid"] < hi))
    rows["offset"] = (rows["sent_day"] - rows["due"]).dt.days
    return rows


def promise_stats(
    promises: pd.DataFrame, start: date | pd.Timestamp | None, end: date | pd.Timestamp
) -> dict[str, float | int | None]:
    """Promises to pay: made in the period, and kept, broken or cancelled in it.

    `made` counts promises whose `made_at` is in the period; `kept`, `broken`, `cancelled`
    those resolved (`resolved_at`) in the period in that state; `open` those open at the end
    of the period (made by then and not resolved by then); `kept_rate` = kept / (kept +
    broken), None when neither happened.
    """
    out: dict[str, float | int | None] = dict.fromkeys(
        ("made", "kept", "broken", "cancelled", "open"), 0
    )
    out["kept_rate"] = None
    if promises.empty:
        return out
    lo, hi = _window(start, end)
    out["made"] = int(_in(promises["made_at"], lo, hi).sum())
    resolved = _in(promises["resolved_at"], lo, hi)
    for state in ("kept", "broken", "cancelled"):
        out[state] = int((resolved & (promises["state"] == state)).sum())
    made_by_end = promises["made_at"] < hi
    unresolved = promises["resolved_at"].isna() | (promises["resolved_at"] >= hi)
    out["open"] = int((made_by_end & unresolved & (promises["state"] != "cancelled")).sum())
    decided = out["kept"] + out["broken"]
    out["kept_rate"] = out["kept"] / decided if decided else None
    return out


def open_disputes(
    pauses: pd.DataFrame, invoices: pd.DataFrame, as_of: date | pd.Timestamp
) -> pd.DataFrame:
    """Disputes open at the end of `as_of`, oldest first, with their age in days.

    A dispute is a `dispute` pause created by then and not ended by then (for an invoice, or
    for a whole customer), or an invoice the source marks `disputed` without such a pause
    (its age is then unknown, NaN). Columns: `invoice_number` (empty for a customer-wide
    dispute), `customer_id`, `customer_name`, `currency`, `amount` (the invoice's amount due;
    NaN for a customer-wide dispute), `opened` (day), `age_days`, `reason`.
    """
    columns = [
        "invoice_number",
        "customer_id",
        "customer_name",
        "currency",
        "amount",
        "opened",
        "age_days",
        "reason",
    ]
    _, hi = _window(None, as_of)
    day = as_day(as_of)
    info = invoices.drop_duplicates("invoice_number").set_index("invoice_number")
    frames = []
    if not pauses.empty:
        p = pauses[pauses["kind"] == "dispute"]
        ended = p["ended_at"].notna() & (p["ended_at"] < hi)
        still = p["active"].astype(bool) | (p["ended_at"].notna() & ~ended)
        lapsed = p["until"].notna() & (pd.to_datetime(p["until"]) < day)
        p = p[(p["created_at"] < hi) & still & ~ended & ~lapsed]
        number = p["invoice_number"].fillna("").astype(str)
        customer = p["customer_id"].fillna("").astype(str)
        customer = customer.mask(customer == "", _text(number.map(info["customer_id"])))
        frames.append(
            pd.DataFrame(
                {
                    "invoice_number": number,
                    "customer_id": customer,
                    "opened": p["created_at"].dt.normalize(),
                    "reason": p["reason"].fillna("").astype(str),
                }
            )
        )
    if "status" in invoices.columns:
        flagged = invoices[invoices["status"] == "disputed"]
        covered = set(frames[0]["invoice_number"]) if frames else set()
        flagged = flagged[~flagged["invoice_number"].isin(covered)]
        frames.append(
            pd.DataFrame(
                {
                    "invoice_number": flagged["invoice_number"],
                    "customer_id": flagged["customer_id"],
                    "opened": pd.Series(pd.NaT, index=flagged.index, dtype="datetime64[ns]"),
                    "reason": "disputed at the source",
                }
            )
        )
    frames = [f for f in frames if len(f)]
    if not frames:
        return _empty(*columns)
    out = pd.concat(frames, ignore_index=True)
    known = out["invoice_number"].isin(info.index)
    names = invoices.drop_duplicates("customer_id").set_index("customer_id")["customer_name"]
    by_invoice = out["invoice_number"].map(info["customer_name"])
    out["customer_name"] = _text(
        by_invoice.where(by_invoice.notna(), out["customer_id"].map(names))
    )
    out["currency"] = _text(out["invoice_number"].map(info["currency"]))
    out["amount"] = out["invoice_number"].map(info["amount_due"]).where(known)
    out["age_days"] = (day - out["opened"]).dt.days
    return out.sort_values("age_days", ascending=False, kind="stable", na_position="last")[
        columns
    ].reset_index(drop=True)


def open_task_stats(human_tasks: pd.DataFrame, as_of: date | pd.Timestamp) -> dict[str, int]:
    """Human tasks open at the end of `as_of`: how many and the oldest one's age in days."""
    if human_tasks.empty:
        return {"open": 0, "oldest_days": 0}
    _, hi = _window(None, as_of)
    created = human_tasks["created_at"] < hi
    still = (human_tasks["status"] == "open") | (human_tasks["closed_at"] >= hi)
    open_ = human_tasks[created & still & ~(human_tasks["closed_at"] < hi)]
    if open_.empty:
        return {"open": 0, "oldest_days": 0}
    oldest = (as_day(as_of) - open_["created_at"].min().normalize()).days
    return {"open": len(open_), "oldest_days": int(oldest)}

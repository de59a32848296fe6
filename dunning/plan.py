"""Evaluate the ladder for all invoices at once: which stage, which channel, when, or why not.

The plan is a pure function of the invoices, the policy, the ledger's state and `now`, so a
run is reproducible and can be shown before anything is sent (`dunning plan`). It is
vectorized (numpy business-day arithmetic, pandas masks): a million invoices plan in seconds.

Rules, in order:
1. An invoice that is paid, cancelled, has nothing due, is disputed, opted out, on hold or
   under an active promise to pay gets nothing, with a `skip_reason`.
2. Each stage's date is the due date plus its offset, moved to the next business day of the
   customer's country when it falls on a weekend or public holiday.
3. Catch-up: of all stages whose date has come, only the latest is planned (never a burst
   after an outage); if the ledger already has it, the invoice is skipped (`already_sent`).
4. The channel: the customer's preferred one, then the policy's fallback order, among the
   channels configured for the run (`dunning.channels`; email only unless a WhatsApp block
   is given); `channel_note` says why it fell back.
5. The message goes out on the customer's business day inside the sending window, in the
   customer's timezone: `send_at` is now when the window is open, else when it next opens.
6. Statements (`grouping: statement`): a customer's email rows of a statement segment share
   the `statement` key, and `planned_actions` makes them one action (`dunning.statement`).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pandas as pd
from babel.languages import get_official_languages

from dunning.action import (
    STATEMENT,
    ActionKey,
    PlannedAction,
    key_column,
    stage_column,
    stage_keys,
    statement_key_column,
    with_channels,
)
from dunning.calendar import (
    add_business_days,
    business_calendar,
    next_business_day_after,
    roll_forward,
)
from dunning.channels import (
    EMAIL_ONLY,
    TwilioFacts,
    WhatsAppFacts,
    choose_channels,
    stage_channels,
)
from dunning.ledger.models import TAKEN_REASONS
from dunning.ledger.store import LedgerState
from dunning.policy import Policy, Window

#: Why an invoice gets nothing now. Order matters: the first that applies is reported.
SKIP_REASONS = (
    "paid",
    "cancelled",
    "nothing_due",
    "disputed",
    "opted_out",
    "on_hold",
    "promise_to_pay",
    "not_due_yet",
    "already_sent",
    "in_progress",
    "in_doubt",
    "rejected",
)

PLAN_COLUMNS = [
    "invoice",
    "customer",
    "customer_name",
    "p_late",
    "segment",
    "stage",
    "channel",
    "channels",
    "channel_note",
    "send_at",
    "skip_reason",
    "note",
    "key",
    "statement",
    "tone",
    "timezone",
    "language",
    "country",
    "email",
    "currency",
    "amount_due",
    "amount_total",
    "due_date",
    "days_overdue",
    "next_stage",
    "next_date",
    "payment_link",
    "pdf_path",
    "issue_date",
    "row",
]


def plan(
    invoices: pd.DataFrame,
    policy: Policy,
    now: datetime,
    state: LedgerState | None = None,
    *,
    window: Window | None = None,
    channels_available: frozenset[str] = EMAIL_ONLY,
    whatsapp: WhatsAppFacts | None = None,
    twilio: TwilioFacts | None = None,
) -> pd.DataFrame:
    """Plan the next action of every invoice (one row each, in input order).

    Args:
        invoices: the normalized invoice frame (see `dunning.importers`).
        policy: the ladder and its rules.
        now: the moment of planning; must carry a timezone.
        state: what the ledger already holds (sent actions, pauses); empty if None.
        window: a sending window overriding the policy's (e.g. the channel's).
        channels_available: the channels configured for the run: `{"email"}` (the default)
            or `{"email", "whatsapp"}` when a WhatsApp block is given.
        whatsapp: the ledger's WhatsApp opt-ins and invalid numbers
            (`WhatsAppFacts.from_ledger`); none known if None.
        twilio: the ledger's SMS opt-ins and numbers unusable for SMS or calls
            (`TwilioFacts.from_ledger`), for runs with "sms" or "voice" available.

    Returns:
        A frame with `PLAN_COLUMNS`: `stage`, `channel` and `send_at` (UTC) for an action,
        or `skip_reason` when the invoice gets nothing now. `channels` lists every channel
        of the action (comma-separated; more than one for a stage on `all`), `channel_note`
        why the preferred channel was passed over. The `key` is the primary channel's.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry a timezone (e.g. 2026-12-09T10:00:00+01:00)")
    now = now.astimezone(UTC)
    state = state or LedgerState()
    window = window or policy.window
    n = len(invoices)
    df = _with_defaults(invoices, policy)

    today, minutes = _local_clock(df["timezone"], now)
    segment = _segments(df, policy)
    stage, stage_date, next_stage, next_date, tone = _evaluate_ladders(df, policy, segment, today)
    promise = _owed_broken_promise(df["invoice_number"], state, policy.replies.broken_promise.name)
    broken = ~np.isnan(promise)
    stage[broken] = policy.replies.broken_promise.name
    stage_date[broken] = today[broken]
    tone[broken] = policy.replies.broken_promise.tone

    pauses = _active_pauses(
        state.pauses, now.astimezone(zoneinfo.ZoneInfo(policy.timezone)), policy.promise_grace_days
    )
    choice = choose_channels(
        df,
        policy,
        stage,
        stage_channels(policy, segment, stage),
        pauses,
        channels_available,
        whatsapp,
        twilio,
    )
    channel = choice.channel
    note = np.where(channel == "task", "no usable email: a human task instead", "")
    # One "promise broken" message per promise, so the key names the promise.
    key_stage = stage.copy()
    key_stage[broken] = [f"{stage[i]}-{int(promise[i])}" for i in np.flatnonzero(broken)]
    key = _keys(df["invoice_number"], key_stage, channel)

    stale_before = pd.Timestamp(now) - pd.Timedelta(minutes=policy.stale_claim_minutes)
    skip = _skip_reasons(
        df, stage, key, state, pauses, choice.opted_out, stale_before, policy.dispute_scope
    )
    send_at = _send_times(df, policy, window, stage_date, today, minutes, now)
    acting = skip == ""
    statement = _statements(df, policy, segment, stage, broken, choice.channels, key, skip)
    due_date = df["due_date"].to_numpy().astype("datetime64[D]")

    out = pd.DataFrame(
        {
            "invoice": _column(df["invoice_number"]),
            "customer": _column(df["customer_id"]),
            "customer_name": _column(df["customer_name"]),
            "p_late": df["p_late"].to_numpy(dtype=float),
            "segment": segment,
            "stage": np.where(acting, stage, None),
            "channel": np.where(acting, channel, None),
            "channels": np.where(acting, choice.channels, None),
            "channel_note": np.where(acting, choice.note, ""),
            "send_at": send_at.where(acting),
            "skip_reason": np.where(acting, None, skip),
            "note": np.where(acting, note, ""),
            "key": np.where(acting, key, None),
            "statement": np.where(acting, statement, None),
            "tone": np.where(acting, tone, None),
            "timezone": _column(df["timezone"]),
            "language": _column(df["language"]),
            "country": _column(df["country"]),
            "email": _column(df["email"]),
            "currency": _column(df["currency"]),
            "amount_due": df["amount_due"].to_numpy(),
            "amount_total": df["amount_total"].to_numpy(),
            "due_date": df["due_date"].to_numpy(),
            "days_overdue": (today - due_date).astype("int64"),
            "next_stage": np.where(next_stage == "", None, next_stage),
            "next_date": pd.to_datetime(next_date),
            "payment_link": _column(df["payment_link"]),
            "pdf_path": _column(df["pdf_path"]),
            "issue_date": df["issue_date"].to_numpy(),
            "row": df["row"].to_numpy() if "row" in df else np.arange(1, n + 1),
        }
    )
    return out


def due_now(planned: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The planned actions whose time has come."""
    now_ts = pd.Timestamp(now).tz_convert(UTC)
    return planned[planned["skip_reason"].isna() & (planned["send_at"] <= now_ts)]


def deferred(planned: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Planned actions waiting for their customer's window to open."""
    now_ts = pd.Timestamp(now).tz_convert(UTC)
    return planned[planned["skip_reason"].isna() & (planned["send_at"] > now_ts)]


#: What the act step needs of a plan row (`channel` is one of the row's `channels`).
ACTION_FIELDS = ["key", "customer", "stage", "segment", "timezone", "language", "country"]


def planned_actions(planned: pd.DataFrame) -> list[PlannedAction]:
    """The plan's actions, where they leave the frame: one `PlannedAction` per task run.

    Pass only the rows to act on (e.g. `due_now(planned, now)`). A row on several channels
    (a stage on `all`) becomes one action per channel, each with its own key
    `invoice:stage:channel`; the ledger's claim keeps every key to one send. The rows that
    share a `statement` key become one statement action, at the place of its first row, with
    the rows' own actions as its `items`.
    """
    rows = planned
    if "channels" in planned:
        multi = planned["channels"].fillna("").str.contains(",", regex=False)
        if multi.any():
            rows = planned.assign(channel=planned["channels"].where(multi, planned["channel"]))
            rows = rows.assign(channel=rows["channel"].str.split(",")).explode("channel")
            rows = rows.assign(key=with_channels(rows["key"], rows["channel"]))
    fields = [*ACTION_FIELDS, "statement"] if "statement" in rows else ACTION_FIELDS
    actions: list[PlannedAction] = []
    statements: dict[str, list[PlannedAction]] = {}
    for record in rows[fields].to_dict("records"):
        action = PlannedAction.from_dict(record)
        group = record.get("statement")
        if not isinstance(group, str) or not group:
            actions.append(action)
        elif group in statements:
            statements[group].append(action)
        else:
            statements[group] = [action]
            actions.append(PlannedAction(ActionKey.parse(group), action.customer, STATEMENT))
    grouped = [statements.get(str(a.key)) for a in actions]
    return [
        a if items is None else _statement_action(a, items)
        for a, items in zip(actions, grouped, strict=True)
    ]


def _statement_action(placeholder: PlannedAction, items: list[PlannedAction]) -> PlannedAction:
    """A statement's action: its customer's clock and language (the first item's), its items."""
    first = items[0]
    return PlannedAction(
        key=placeholder.key,
        customer=first.customer,
        stage=STATEMENT,
        timezone=first.timezone,
        language=first.language,
        country=first.country,
        items=tuple(items),
    )


def action_dicts(planned: pd.DataFrame) -> list[dict]:
    """`planned_actions` in their JSON form (`PlannedAction.to_dict`)."""
    return [a.to_dict() for a in planned_actions(planned)]


def plan_records(planned: pd.DataFrame) -> list[dict]:
    """The plan as JSON-ready dicts: `send_at` in the customer's own offset, dates ISO."""
    records = []
    for r in planned.itertuples(index=False):
        rec = {"invoice": r.invoice, "customer": r.customer}
        if pd.isna(r.skip_reason):
            local = r.send_at.tz_convert(zoneinfo.ZoneInfo(r.timezone))
            rec |= {"stage": r.stage, "channel": r.channel, "send_at": local.isoformat()}
            if isinstance(r.channels, str) and "," in r.channels:
                rec["channels"] = r.channels.split(",")
            if r.channel_note:
                rec["channel_note"] = r.channel_note
            if r.note:
                rec["note"] = r.note
            if isinstance(getattr(r, "statement", None), str):
                rec["statement"] = r.statement
        else:
            rec |= {"stage": None, "channel": None, "send_at": None, "skip_reason": r.skip_reason}
            if r.skip_reason == "not_due_yet" and not pd.isna(r.next_stage):
                rec |= {"next_stage": r.next_stage, "next_date": r.next_date.date().isoformat()}
        rec |= {
            "segment": r.segment or "default",
            "amount_due": round(float(r.amount_due), 2),
            "currency": r.currency,
            "due_date": r.due_date.date().isoformat(),
            "days_overdue": int(r.days_overdue),
        }
        if not pd.isna(r.p_late):  # only with a risk model
            rec["p_late"] = round(float(r.p_late), 3)
        records.append(rec)
    return records


# -- steps ---------------------------------------------------------------------------------


#: The dtype pandas gives a column of Python strings (its default string dtype).
_STR_DTYPE = pd.DataFrame({"x": np.array(["x"], dtype=object)})["x"].dtype


def _column(column: pd.Series) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """A column for the plan frame: as a numpy array (the frame infers its dtype), or as it is
    when it already has the dtype the frame would infer (strings, at least one present), which
    saves a round trip of a million strings through Python objects."""
    if column.dtype == _STR_DTYPE and column.dtype != object and column.count():
        return column.array
    return column.to_numpy()


def _codes(values: np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of the distinct values, numbered in sorted order like `np.unique`, and
    the values: hashing instead of sorting a million Python strings."""
    codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=False)
    return codes, np.asarray(uniques, dtype=object)


@lru_cache(maxsize=512)
def _language_of(country: str, fallback: str) -> str:
    official = get_official_languages(country) if country else ()
    return official[0] if official else fallback


def _with_defaults(invoices: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    df = invoices.reset_index(drop=True)
    if "p_late" not in df:  # no risk model: nothing is scored
        df = df.assign(p_late=np.nan)
    df = df.assign(
        country=df["country"].mask(df["country"] == "", policy.country),
        timezone=df["timezone"].mask(df["timezone"] == "", policy.timezone),
    )
    missing_lang = df["language"] == ""
    if missing_lang.any():
        guessed = df.loc[missing_lang, "country"].map(lambda c: _language_of(c, policy.language))
        df.loc[missing_lang, "language"] = guessed
    return df


def _local_clock(timezones: pd.Series, now: datetime) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's local date and minutes since local midnight at `now`."""
    codes, zones = _codes(timezones)
    days = np.empty(len(zones), dtype="datetime64[D]")
    mins = np.empty(len(zones), dtype="float64")
    for i, tz in enumerate(zones):
        local = now.astimezone(zoneinfo.ZoneInfo(tz))
        days[i] = np.datetime64(local.date(), "D")
        mins[i] = local.hour * 60 + local.minute + local.second / 60
    return days[codes], mins[codes]


def segments_of(invoices: pd.DataFrame, policy: Policy) -> np.ndarray:
    """Each invoice's segment ("" for the default ladder), as the planner picks it (used
    after the fact too, e.g. for what a segment's customers get on payment)."""
    return _segments(_with_defaults(invoices, policy), policy)


def _segments(df: pd.DataFrame, policy: Policy) -> np.ndarray:
    segment = np.full(len(df), "", dtype=object)
    for seg in policy.segments:
        mask = segment == ""
        if seg.customer_ids:
            mask &= df["customer_id"].isin(seg.customer_ids).to_numpy()
        if seg.countries:
            mask &= df["country"].isin([c.upper() for c in seg.countries]).to_numpy()
        if seg.min_amount_due is not None:
            mask &= (df["amount_due"] >= seg.min_amount_due).to_numpy()
        if seg.min_p_late is not None:
            mask &= (df["p_late"] >= seg.min_p_late).fillna(False).to_numpy(dtype=bool)
        segment[mask] = seg.name
    return segment


def _holiday_years(today: np.ndarray) -> tuple[int, int]:
    # Stage dates far in the past only matter through "today", so a bounded range is enough.
    year = int(str(today.max())[:4]) if len(today) else datetime.now().year
    return year - 3, year + 2


def _evaluate_ladders(
    df: pd.DataFrame, policy: Policy, segment: np.ndarray, today: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Latest due stage per invoice, its (business-day) date, and the next stage."""
    n = len(df)
    stage = np.full(n, "", dtype=object)
    tone = np.full(n, "", dtype=object)
    stage_date = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    next_stage = np.full(n, "", dtype=object)
    next_date = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    due = df["due_date"].to_numpy().astype("datetime64[D]")
    country_code, countries = _codes(df["country"])
    years = _holiday_years(today)

    segment_code, segments = _codes(segment)
    for seg_i, seg_name in enumerate(segments):
        in_seg = segment_code == seg_i
        ladder = policy.ladder(seg_name or None)
        names = np.array([s.name for s in ladder] + [""], dtype=object)
        tones = np.array([s.tone for s in ladder] + [""], dtype=object)
        for c in np.unique(country_code[in_seg]):
            rows = np.flatnonzero(in_seg & (country_code == c))
            cal = business_calendar(countries[c], *years)
            dates = np.empty((len(rows), len(ladder) + 1), dtype="datetime64[D]")
            for j, s in enumerate(ladder):
                d = (
                    add_business_days(due[rows], s.offset_days, cal)
                    if policy.business_day_offsets
                    else due[rows] + np.timedelta64(s.offset_days, "D")
                )
                dates[:, j] = roll_forward(d, cal) if policy.roll_to_business_day else d
            dates[:, -1] = np.datetime64("NaT")
            # Offsets are sorted and rolling keeps order, so the due stages are a prefix.
            count = (dates[:, :-1] <= today[rows, None]).sum(axis=1)
            latest = count - 1
            has = latest >= 0
            stage[rows[has]] = names[latest[has]]
            tone[rows[has]] = tones[latest[has]]
            stage_date[rows[has]] = dates[has, latest[has]]
            next_stage[rows] = names[count]
            next_date[rows] = dates[np.arange(len(rows)), count]
    return stage, stage_date, next_stage, next_date, tone


def _keys(invoice: pd.Series, stage: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """Idempotency key of each action: invoice:stage:channel."""
    keys = np.full(len(stage), "", dtype=object)
    has = np.flatnonzero(stage != "")
    keys[has] = key_column(invoice.iloc[has], stage[has], channel[has])
    return keys


#: The channels a statement goes on (`dunning.statement`); the others stay per invoice.
STATEMENT_CHANNELS = ("email", "whatsapp")

#: The ledger's states that keep a key from being sent again: their rows still belong to the
#: statement (its key stays the same whoever sent, is sending or refused them).
_TAKEN = ("already_sent", "in_progress", "in_doubt", "rejected")


def _statements(
    df: pd.DataFrame,
    policy: Policy,
    segment: np.ndarray,
    stage: np.ndarray,
    broken: np.ndarray,
    channels: np.ndarray,
    key: np.ndarray,
    skip: np.ndarray,
) -> np.ndarray:
    """The statement key of each row a statement carries (None for the others).

    A row belongs to its customer's statement on its channel when its segment groups by
    statement, its stage is due (not a broken promise's message, which stays its own) and it
    goes by email or WhatsApp alone. The key is named by all such rows of the customer on
    that channel, those taken already included (sent, in progress, in doubt, refused):
    sweeps that run at once, one of them part-way through its claims, still name the same
    statement and claim the same key.
    """
    grouped = [name for name in np.unique(segment) if policy.grouping_of(name or None) == STATEMENT]
    if not grouped:
        return np.full(len(df), None, dtype=object)
    channels = np.asarray(channels, dtype=object)
    member = (
        np.isin(segment, grouped)
        & (stage != "")
        & ~broken
        & np.isin(channels, STATEMENT_CHANNELS)
        & np.isin(skip, ["", *_TAKEN])
    )
    return statement_key_column(df["customer_id"], key, channels, member)


def _owed_broken_promise(invoice: pd.Series, state: LedgerState, stage: str) -> np.ndarray:
    """Per invoice, the id of its latest broken promise, if that one is still owed a message
    (NaN otherwise). Older broken promises are superseded: one message, about the latest.

    Once that message is sent (or refused for good) the ladder takes over again.
    """
    broken = state.broken_promises
    if broken.empty:
        return np.full(len(invoice), np.nan)
    latest = broken.groupby("invoice_number")["id"].max()
    finished = state.actions.loc[state.actions["state"].isin(["sent", "rejected"]), "key"]
    finished_stages = set(stage_column(finished))
    owed_key = stage_keys(latest.index.to_series(), f"{stage}-" + latest.astype(str))
    owed = latest[~pd.Index(owed_key).isin(finished_stages)]
    return invoice.map(owed).to_numpy(dtype=float)


def _active_pauses(pauses: pd.DataFrame, day: datetime, grace_days: int) -> pd.DataFrame:
    if pauses.empty:
        return pauses
    until = pd.to_datetime(pauses["until"])
    grace = np.where(pauses["kind"] == "promise", grace_days, 0)
    last_day = until + pd.to_timedelta(grace, unit="D")
    return pauses[until.isna() | (last_day >= pd.Timestamp(day.date()))]


def _skip_reasons(
    df: pd.DataFrame,
    stage: np.ndarray,
    key: np.ndarray,
    state: LedgerState,
    pauses: pd.DataFrame,
    opted_out: np.ndarray,
    stale_before: pd.Timestamp,
    dispute_scope: str = "customer",
) -> np.ndarray:
    status = df["status"].to_numpy()
    invoice = df["invoice_number"]
    customer = df["customer_id"]

    def paused(kind: str) -> np.ndarray:
        # Holds, disputes and promises on the WhatsApp channel alone do not stop email (nor
        # WhatsApp: they are recorded for every channel); opt-outs are per channel, in
        # `opted_out` from the channel choice.
        channel = pauses.get("channel", pd.Series("", index=pauses.index)).fillna("")
        p = pauses[(pauses["kind"] == kind) & channel.isin(["", "email"])]
        if p.empty:
            return np.zeros(len(df), dtype=bool)
        # A pause names an invoice (it stops that invoice only, even though it also records
        # the customer) or, with no invoice, the whole customer.
        whole_customer = p["invoice_number"].isna() | (p["invoice_number"] == "")
        stopped = invoice.isin(p.loc[~whole_customer, "invoice_number"])
        if kind == "dispute" and dispute_scope == "customer":
            # `dispute_scope: customer`: a dispute about one invoice stops all the customer's
            # (the pause's own customer, or the customer of its invoice in this frame).
            named = p.loc[p["customer_id"].fillna("") != "", "customer_id"]
            stopped |= customer.isin(named) | customer.isin(customer[stopped])
            return stopped.to_numpy()
        return (stopped | customer.isin(p.loc[whole_customer, "customer_id"].dropna())).to_numpy()

    taken = _taken_reason(key, state.actions, stale_before)
    conditions = [
        (status == "paid"),
        (status == "cancelled"),
        (df["amount_due"].to_numpy() <= 0.004),
        (status == "disputed") | paused("dispute"),
        opted_out,
        paused("hold") | paused("verify_payment"),
        paused("promise"),
        (stage == ""),
        taken == "already_sent",
        taken == "in_progress",
        taken == "in_doubt",
        taken == "rejected",
    ]
    return np.select(conditions, list(SKIP_REASONS), default="").astype(object)


def _taken_reason(key: np.ndarray, actions: pd.DataFrame, stale_before: pd.Timestamp) -> np.ndarray:
    if actions.empty:
        return np.full(len(key), "", dtype=object)
    reason = actions["state"].map(TAKEN_REASONS).fillna("")
    # A claim never handed to the mail server (its run died before `sending`) is retaken
    # once stale, as `Ledger.claim` allows; a `sending` one stays in doubt for good.
    updated = pd.to_datetime(actions["updated_at"], utc=True)
    reason = reason.mask((actions["state"] == "claimed") & (updated < stale_before), "")
    lookup = pd.Series(reason.to_numpy(), index=actions["key"].to_numpy())
    return pd.Series(key).map(lookup).fillna("").to_numpy(dtype=object)


def _send_times(
    df: pd.DataFrame,
    policy: Policy,
    window: Window,
    stage_date: np.ndarray,
    today: np.ndarray,
    minutes: np.ndarray,
    now: datetime,
) -> pd.Series:
    """When each planned stage may go out, in UTC (NaT where there is no stage)."""
    start = window.start.hour * 60 + window.start.minute
    end = window.end.hour * 60 + window.end.minute
    country_code, countries = _codes(df["country"])
    day = np.maximum(stage_date, today)  # NaT stays NaT
    years = _holiday_years(today)
    for c, country in enumerate(countries):
        rows = np.flatnonzero((country_code == c) & ~np.isnat(day))
        if not len(rows):
            continue
        cal = business_calendar(country, *years)
        d = roll_forward(day[rows], cal) if policy.roll_to_business_day else day[rows]
        too_late = (d == today[rows]) & (minutes[rows] >= end)
        d[too_late] = next_business_day_after(today[rows][too_late], cal)
        day[rows] = d
    open_now = (day == today) & (minutes >= start) & (minutes < end)

    send_at = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
    opening = pd.to_datetime(day) + pd.Timedelta(
        hours=window.start.hour, minutes=window.start.minute
    )
    tz_code, zones = _codes(df["timezone"])
    for z, tz in enumerate(zones):
        rows = (tz_code == z) & ~np.isnat(day)
        local = pd.DatetimeIndex(opening[rows]).tz_localize(
            tz, ambiguous="NaT", nonexistent="shift_forward"
        )
        send_at.iloc[np.flatnonzero(rows)] = local.tz_convert(UTC)
    send_at[open_now] = pd.Timestamp(now)
    return send_at

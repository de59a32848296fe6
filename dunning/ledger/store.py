"""The ledger: one SQL database (SQLite file by default, PostgreSQL by URL).

All writes that decide whether a message goes out are single atomic statements (an INSERT
against the unique idempotency key, or a conditional UPDATE), so any number of sweeps,
threads or machines can share one ledger and each message is still sent once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

from dunning.ledger.models import (
    Action,
    ActionState,
    CustomerStatus,
    Event,
    HumanTask,
    InvoiceRecord,
    Pause,
    utcnow,
)

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (we ship psycopg 3, not psycopg2) and bare paths."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{url}"
    return url


def _sqlite_engine(url: str) -> Engine:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        # We issue BEGIN ourselves (below); WAL lets readers run beside the one writer.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes can fail with "database is locked" without waiting when another process wrote.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _create_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Workers starting together would race on CREATE TABLE; one at a time.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(74190201)"))
        SQLModel.metadata.create_all(conn)


def get_engine(url: str) -> Engine:
    """One engine (and connection pool) per URL per process."""
    url = normalize_url(url)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                engine = _sqlite_engine(url)
            else:
                engine = sa.create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
            _create_schema(engine)
            _engines[url] = engine
        return engine


@dataclass
class SyncReport:
    """What changed at the source since the last sweep."""

    new: int = 0
    part_paid: int = 0
    paid: int = 0
    cancelled: int = 0
    reopened: int = 0
    unchanged: int = 0


@dataclass
class LedgerState:
    """What the planner needs from the ledger, as frames."""

    actions: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["key", "state", "updated_at"])
    )
    pauses: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            columns=["kind", "invoice_number", "customer_id", "until"]
        )
    )


@dataclass(frozen=True)
class Claim:
    """Outcome of trying to take an action: `claimed` True means this caller must send it."""

    claimed: bool
    state: str
    message_id: str = ""


class Ledger:
    """Read and write the ledger.

    Example:
        >>> ledger = Ledger("sqlite:///var/ledger.db")
        >>> ledger.planning_state().actions
    """

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = get_engine(self.url)

    # -- invoices ------------------------------------------------------------------------
    def sync_invoices(self, invoices: pd.DataFrame) -> SyncReport:
        """Record the given invoices and what changed in them since the last sweep.

        Invoices not in the frame are left as they are (a one-invoice run syncs just that
        one). Paid or cancelled invoices close their case (an event each).
        """
        now = utcnow()
        cols = [
            "invoice_number",
            "customer_id",
            "customer_name",
            "email",
            "currency",
            "amount_total",
            "amount_due",
            "due_date",
            "status",
        ]
        incoming = invoices[cols].copy()
        incoming["due_date"] = pd.to_datetime(incoming["due_date"]).dt.date
        with self.engine.connect() as conn:
            known = pd.read_sql(
                sa.select(
                    InvoiceRecord.invoice_number, InvoiceRecord.amount_due, InvoiceRecord.status
                ),
                conn,
            )
        merged = incoming.merge(known, on="invoice_number", how="left", suffixes=("", "_old"))
        is_new = merged["status_old"].isna()
        closed_now = merged["status"].isin(["paid", "cancelled"]) | (merged["amount_due"] <= 0)
        was_closed = merged["status_old"].isin(["paid", "cancelled"])
        changed = ~is_new & (
            (merged["status"] != merged["status_old"])
            | ((merged["amount_due"] - merged["amount_due_old"].fillna(0)).abs() > 0.005)
        )
        kinds = _change_kinds(merged[changed], closed_now[changed], was_closed[changed])
        counts = kinds.value_counts()
        report = SyncReport(
            new=int(is_new.sum()),
            paid=int(counts.get("invoice_paid", 0)),
            cancelled=int(counts.get("invoice_cancelled", 0)),
            part_paid=int(counts.get("invoice_part_paid", 0)),
            reopened=int(counts.get("invoice_reopened", 0)),
            unchanged=int((~is_new & ~changed).sum()),
        )
        events = [
            {
                "kind": kind,
                "invoice_number": r.invoice_number,
                "customer_id": r.customer_id,
                "detail": {
                    "amount_due": r.amount_due,
                    "amount_due_before": r.amount_due_old,
                    "status": r.status,
                    "status_before": r.status_old,
                },
                "at": now,
                "action_key": "",
                "actor": "source",
            }
            for r, kind in zip(merged[changed].itertuples(), kinds, strict=True)
        ]
        rows_new = merged.loc[is_new, cols].assign(first_seen=now, last_seen=now)
        rows_new["closed_at"] = [now if c else None for c in closed_now[is_new]]
        with Session(self.engine) as session:
            if len(rows_new):
                session.execute(_insert_new(self.engine), _records(rows_new))
            if changed.any():
                upd = merged.loc[changed, cols].rename(columns={"invoice_number": "b_number"})
                upd["closed_at"] = [now if c else None for c in closed_now[changed]]
                upd["last_seen"] = now
                stmt = (
                    sa.update(InvoiceRecord.__table__)
                    .where(InvoiceRecord.__table__.c.invoice_number == sa.bindparam("b_number"))
                    .values({c: sa.bindparam(c) for c in upd.columns if c != "b_number"})
                )
                session.connection().execute(stmt, _records(upd))
            if events:
                session.execute(sa.insert(Event), events)
            session.commit()
        return report

    # -- planning ------------------------------------------------------------------------
    def planning_state(self) -> LedgerState:
        """The outbox keys and active pauses, as frames for the planner."""
        with self.engine.connect() as conn:
            actions = pd.read_sql(sa.select(Action.key, Action.state, Action.updated_at), conn)
            pauses = pd.read_sql(
                sa.select(Pause.kind, Pause.invoice_number, Pause.customer_id, Pause.until).where(
                    Pause.active
                ),
                conn,
            )
        return LedgerState(actions=actions, pauses=pauses)

    # -- the outbox ----------------------------------------------------------------------
    def claim(
        self,
        *,
        key: str,
        invoice_number: str,
        customer_id: str,
        stage: str,
        channel: str,
        recipient: str = "",
        amount_due: float | None = None,
        currency: str = "",
        flow_run_id: str = "",
        stale_after: timedelta = timedelta(minutes=15),
    ) -> Claim:
        """Take the action for sending, or say who has it.

        Exactly one caller gets `claimed=True` for a key, until it reports `failed`, or
        until a claim that never reached the mail server is older than `stale_after`.
        """
        now = utcnow()
        row = {
            "key": key,
            "invoice_number": invoice_number,
            "customer_id": customer_id,
            "stage": stage,
            "channel": channel,
            "state": ActionState.claimed.value,
            "recipient": recipient,
            "amount_due": amount_due,
            "currency": currency,
            "flow_run_id": flow_run_id,
            "attempts": 1,
            "created_at": now,
            "updated_at": now,
            "message_id": "",
            "provider_response": "",
            "error": "",
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(Action), row)
            return Claim(True, ActionState.claimed.value)
        except IntegrityError:
            pass
        table = Action.__table__
        retake = (table.c.state == ActionState.failed.value) | (
            (table.c.state == ActionState.claimed.value) & (table.c.updated_at < now - stale_after)
        )
        with self.engine.begin() as conn:
            taken = conn.execute(
                sa.update(table)
                .where(table.c.key == key, retake)
                .values(
                    state=ActionState.claimed.value,
                    attempts=table.c.attempts + 1,
                    updated_at=now,
                    recipient=recipient,
                    amount_due=amount_due,
                    flow_run_id=flow_run_id,
                )
            )
            if taken.rowcount == 1:
                return Claim(True, ActionState.claimed.value)
            current = conn.execute(
                sa.select(table.c.state, table.c.message_id).where(table.c.key == key)
            ).one()
        return Claim(False, current.state, current.message_id)

    def _set_state(self, key: str, state: ActionState, **values: Any) -> None:
        table = Action.__table__
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(table)
                .where(table.c.key == key)
                .values(state=state.value, updated_at=utcnow(), **values)
            )

    def mark_sending(self, key: str, message_id: str) -> None:
        """Written just before handing the message to the provider."""
        self._set_state(key, ActionState.sending, message_id=message_id)

    def mark_sent(self, key: str, provider_response: str = "") -> None:
        self._set_state(
            key, ActionState.sent, provider_response=provider_response[:500], sent_at=utcnow()
        )

    def mark_failed(self, key: str, error: str, *, permanent: bool = False) -> None:
        state = ActionState.rejected if permanent else ActionState.failed
        self._set_state(key, state, error=error[:1000])

    def in_doubt(self, older_than: timedelta = timedelta(0)) -> pd.DataFrame:
        """Actions that may have reached the provider without the ledger knowing (a crash)."""
        cutoff = utcnow() - older_than
        with self.engine.connect() as conn:
            return pd.read_sql(
                sa.select(Action).where(
                    Action.state == ActionState.sending.value, Action.updated_at <= cutoff
                ),
                conn,
            )

    # -- events, tasks, statuses, pauses ---------------------------------------------------
    def record_event(
        self,
        kind: str,
        *,
        invoice_number: str = "",
        customer_id: str = "",
        action_key: str = "",
        actor: str = "dunning",
        **detail: Any,
    ) -> None:
        with Session(self.engine) as session:
            session.add(
                Event(
                    kind=kind,
                    invoice_number=invoice_number,
                    customer_id=customer_id,
                    action_key=action_key,
                    actor=actor,
                    detail=_jsonable(detail),
                )
            )
            session.commit()

    def open_task(
        self,
        *,
        key: str,
        title: str,
        invoice_number: str = "",
        customer_id: str = "",
        assignee: str = "",
        due_on: date | None = None,
        note: str = "",
    ) -> bool:
        """Open a human task once per key; returns False if it already existed."""
        try:
            with Session(self.engine) as session:
                session.add(
                    HumanTask(
                        key=key,
                        title=title,
                        invoice_number=invoice_number,
                        customer_id=customer_id,
                        assignee=assignee,
                        due_on=due_on,
                        note=note,
                    )
                )
                session.commit()
        except IntegrityError:
            return False
        self.record_event(
            "task_opened",
            invoice_number=invoice_number,
            customer_id=customer_id,
            action_key=key,
            title=title,
            assignee=assignee,
        )
        return True

    def set_customer_status(self, customer_id: str, status: str, reason: str = "") -> None:
        with Session(self.engine) as session:
            row = session.get(CustomerStatus, customer_id)
            if row is None:
                row = CustomerStatus(customer_id=customer_id, status=status, reason=reason)
            else:
                row.status, row.reason, row.updated_at = status, reason, utcnow()
            session.add(row)
            session.commit()
        self.record_event("customer_status", customer_id=customer_id, status=status, reason=reason)

    def add_pause(
        self,
        kind: str,
        *,
        invoice_number: str | None = None,
        customer_id: str | None = None,
        until: date | None = None,
        reason: str = "",
        actor: str = "dunning",
    ) -> None:
        """Stop reminders for an invoice (or all of a customer's) until a date or for good."""
        if not (invoice_number or customer_id):
            raise ValueError("a pause needs an invoice_number or a customer_id")
        with Session(self.engine) as session:
            session.add(
                Pause(
                    kind=kind,
                    invoice_number=invoice_number,
                    customer_id=customer_id,
                    until=until,
                    reason=reason,
                )
            )
            session.commit()
        self.record_event(
            f"pause_{kind}",
            invoice_number=invoice_number or "",
            customer_id=customer_id or "",
            actor=actor,
            until=until,
            reason=reason,
        )

    # -- reading back ------------------------------------------------------------------------
    def frame(self, model: type[SQLModel], **where: Any) -> pd.DataFrame:
        """A whole table (optionally filtered by equality) as a frame, for reports and tests."""
        stmt = select(model)
        for column, value in where.items():
            stmt = stmt.where(getattr(model, column) == value)
        with self.engine.connect() as conn:
            return pd.read_sql(stmt, conn)


def _change_kinds(rows: pd.DataFrame, closed: pd.Series, was_closed: pd.Series) -> pd.Series:
    """What happened to each changed invoice: paid, cancelled, reopened, part-paid, changed."""
    kinds = np.select(
        [
            closed & ~was_closed & (rows["status"] == "cancelled"),
            closed & ~was_closed,
            was_closed & ~closed,
            ~closed & (rows["amount_due"] < rows["amount_due_old"] - 0.005),
        ],
        ["invoice_cancelled", "invoice_paid", "invoice_reopened", "invoice_part_paid"],
        default="invoice_changed",
    )
    return pd.Series(kinds, index=rows.index, dtype=object)


def _insert_new(engine: Engine) -> sa.Insert:
    """INSERT of invoice rows that skips ones a concurrent sweep has just inserted."""
    table = InvoiceRecord.__table__
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        return sa.insert(table)
    return insert(table).on_conflict_do_nothing(index_elements=["invoice_number"])


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with plain Python values (no NaN/NaT, which drivers reject)."""
    return [
        {k: (None if _is_missing(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict("records")
    ]


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date | datetime) else v for k, v in detail.items()}

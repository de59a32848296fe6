"""The ledger: one SQL database (SQLite file by default, PostgreSQL by URL).

All writes that decide whether a message goes out are single atomic statements (an INSERT
against the unique idempotency key, or a conditional UPDATE), so any number of sweeps,
threads or machines can share one ledger and each message is still sent once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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

from dunning.ledger.batch import (
    Claim,
    ClaimRequest,
    NewEvent,
    NewTask,
    PresendCheck,
    PresendRequest,
    StatusChange,
    Writes,
    _active_pauses,
    apply_writes,
    claim_many,
    pause_reason,
    presend_checks,
)
from dunning.ledger.cases import customer_contact
from dunning.ledger.crm_outbox import QueuedEntry, entry_row
from dunning.ledger.models import (
    Action,
    ActionState,
    CrmEntry,
    Event,
    InboundMessage,
    InvoiceRecord,
    Pause,
    Promise,
    PromiseState,
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


def with_password(url: str, password: str | None) -> str:
    """The ledger URL (normalized) with `password` put in, for connecting; unchanged if None."""
    parsed = sa.engine.make_url(normalize_url(url))
    if password is not None:
        parsed = parsed.set(password=password)
    return parsed.render_as_string(hide_password=False)


def shown_url(url: str) -> str:
    """The ledger URL (normalized) with any password masked, for logs and metadata."""
    return sa.engine.make_url(normalize_url(url)).render_as_string(hide_password=True)


#: Execution option naming a read-only transaction (see `reading`).
_READ_ONLY = "dunning_read_only"


@contextmanager
def reading(engine: Engine) -> Iterator[sa.Connection]:
    """A read-only transaction: one consistent snapshot for several reads, and on SQLite
    without the write lock (a deferred BEGIN; every other transaction is IMMEDIATE). Never
    write through it: a deferred SQLite transaction that writes can fail at once instead of
    waiting for the lock.

    Example:
        >>> with reading(ledger.engine) as conn:
        ...     conn.execute(sa.select(Pause.kind)).all()
    """
    with engine.connect() as conn:
        conn.execution_options(**{_READ_ONLY: True})
        yield conn


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
        # A transaction opened by `reading` only reads: a deferred BEGIN takes no write lock,
        # and under WAL it reads one snapshot beside the writer instead of queueing behind it.
        if conn.get_execution_options().get(_READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class LedgerUnavailable(RuntimeError):
    """The ledger database cannot be opened (server down, wrong host or port, no such
    database, login refused); the message names it (without the password) and what to check.
    """


def _unavailable(url: str, exc: sa.exc.OperationalError) -> LedgerUnavailable:
    where = shown_url(url)
    reason = str(exc.orig or exc).strip().splitlines()[0]
    return LedgerUnavailable(
        f"cannot open the ledger database {where}: {reason}; check the ledger's URL and "
        "password (Ledger Database block or --ledger) and that the database server is "
        "running and the database exists"
    )


def _create_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Workers starting together would race on CREATE TABLE; one at a time.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(74190201)"))
        SQLModel.metadata.create_all(conn)
        _add_new_columns(conn)


def _add_new_columns(conn: sa.Connection) -> None:
    """Add the columns a newer version gave an existing table (create_all makes only missing
    tables), so a ledger written by an older version still opens. A new column must be
    nullable or have a scalar default, which fills the rows already there."""
    inspector = sa.inspect(conn)
    existing_tables = set(inspector.get_table_names())
    for table in SQLModel.metadata.sorted_tables:
        if table.name not in existing_tables:
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        added = [c for c in table.columns if c.name not in have]
        for column in added:
            kind = column.type.compile(dialect=conn.dialect)
            clause = f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"
            default = column.default.arg if column.default is not None else None
            if isinstance(default, str | int | float | bool) and not callable(default):
                literal = sa.literal(default).compile(
                    dialect=conn.dialect, compile_kwargs={"literal_binds": True}
                )
                clause += f" DEFAULT {literal}"
                if not column.nullable:
                    clause += " NOT NULL"
            conn.execute(sa.text(clause))
        for index in table.indexes:
            if any(c.name in {a.name for a in added} for c in index.columns):
                index.create(conn, checkfirst=True)


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
            try:
                _create_schema(engine)
            except sa.exc.OperationalError as exc:
                engine.dispose()
                raise _unavailable(url, exc) from exc
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
    promises_kept: int = 0
    promises_broken: int = 0


@dataclass
class LedgerState:
    """What the planner needs from the ledger, as frames."""

    actions: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["key", "state", "updated_at"])
    )
    pauses: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            columns=["kind", "channel", "invoice_number", "customer_id", "until"]
        )
    )
    #: Broken promises, each owed one "promise broken" message.
    broken_promises: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["id", "invoice_number"])
    )


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
    def sync_invoices(self, invoices: pd.DataFrame, now: datetime | None = None) -> SyncReport:
        """Record the given invoices and what changed in them since the last sweep.

        Invoices not in the frame are left as they are (a one-invoice run syncs just that
        one). Paid or cancelled invoices close their case (an event each), stamped `now`
        (default: the current time).
        """
        now = now or utcnow()
        cols = [
            "invoice_number",
            "customer_id",
            "customer_name",
            "email",
            "phone",
            "currency",
            "amount_total",
            "amount_due",
            "due_date",
            "status",
            "owner_email",
            "manager_email",
        ]
        incoming = invoices.reindex(columns=cols)
        # Older frames have no phone or people columns: reindex gives all-NaN floats.
        for name in ("phone", "owner_email", "manager_email"):
            incoming[name] = incoming[name].astype(object).where(incoming[name].notna(), "")
        incoming["due_date"] = pd.to_datetime(incoming["due_date"]).dt.date
        with self.engine.connect() as conn:
            known = pd.read_sql(
                sa.select(
                    InvoiceRecord.invoice_number,
                    InvoiceRecord.amount_due,
                    InvoiceRecord.status,
                    InvoiceRecord.owner_email,
                    InvoiceRecord.manager_email,
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
        # A customer handed to another salesperson: the people columns follow, no event.
        reassigned = ~is_new & ~changed
        reassigned &= (merged["owner_email"] != merged["owner_email_old"].fillna("")) | (
            merged["manager_email"] != merged["manager_email_old"].fillna("")
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
            # In chunks of plain values built a column at a time: per-cell NaN checks and one
            # dict list for a million new invoices took seconds and hundreds of MB.
            for chunk in _record_chunks(rows_new):
                session.execute(_insert_new(self.engine), chunk)
            if changed.any():
                upd = merged.loc[changed, cols].rename(columns={"invoice_number": "b_number"})
                upd["closed_at"] = [now if c else None for c in closed_now[changed]]
                upd["last_seen"] = now
                stmt = (
                    sa.update(InvoiceRecord.__table__)
                    .where(InvoiceRecord.__table__.c.invoice_number == sa.bindparam("b_number"))
                    .values({c: sa.bindparam(c) for c in upd.columns if c != "b_number"})
                )
                for chunk in _record_chunks(upd):
                    session.connection().execute(stmt, chunk)
            if reassigned.any():
                people = merged.loc[reassigned, ["invoice_number", "owner_email", "manager_email"]]
                stmt = (
                    sa.update(InvoiceRecord.__table__)
                    .where(InvoiceRecord.__table__.c.invoice_number == sa.bindparam("b_number"))
                    .values(
                        owner_email=sa.bindparam("owner_email"),
                        manager_email=sa.bindparam("manager_email"),
                    )
                )
                for chunk in _record_chunks(people.rename(columns={"invoice_number": "b_number"})):
                    session.connection().execute(stmt, chunk)
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
                sa.select(
                    Pause.kind, Pause.channel, Pause.invoice_number, Pause.customer_id, Pause.until
                ).where(Pause.active),
                conn,
            )
            broken = pd.read_sql(
                sa.select(Promise.id, Promise.invoice_number).where(
                    Promise.state == PromiseState.broken
                ),
                conn,
            )
        return LedgerState(actions=actions, pauses=pauses, broken_promises=broken)

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
        request = ClaimRequest(
            key=key,
            invoice_number=invoice_number,
            customer_id=customer_id,
            stage=stage,
            channel=channel,
            recipient=recipient,
            amount_due=amount_due,
            currency=currency,
            flow_run_id=flow_run_id,
        )
        return self.claim_many([request], stale_after=stale_after)[0]

    def claim_many(
        self, requests: Sequence[ClaimRequest], *, stale_after: timedelta = timedelta(minutes=15)
    ) -> list[Claim]:
        """`claim` for many actions in one transaction (a batch of a sweep), in order."""
        with self.engine.begin() as conn:
            return claim_many(
                conn, requests, stale_after=stale_after, insert=_dialect_insert(self.engine, Action)
            )

    def apply(self, writes: Writes) -> tuple[str, ...]:
        """Record `writes` (events, human tasks, customer statuses, CRM entries) in one
        transaction; returns the keys of the tasks it opened (an existing key is left)."""
        if not writes:
            return ()
        with self.engine.begin() as conn:
            return self._apply(conn, writes)

    def _apply(
        self, conn: sa.Connection, writes: Writes, now: datetime | None = None
    ) -> tuple[str, ...]:
        return apply_writes(
            conn, writes, insert_of=lambda m: _dialect_insert(self.engine, m), now=now
        )

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

    def record_sent(
        self,
        key: str,
        provider_response: str = "",
        *,
        event: dict[str, Any] | None = None,
        note: QueuedEntry | None = None,
        also_sent: Sequence[str] = (),
        also_sent_response: str = "",
        then: Writes | None = None,
    ) -> None:
        """The provider accepted the message: in ONE transaction, mark `key` sent (and the
        keys in `also_sent`, e.g. a statement's invoices, with `also_sent_response`), record
        the `sent` event (`event`: invoice_number, customer_id, actor and detail), queue
        the message's CRM note (`note`; kept as it is if one is queued under its key) and
        record what follows from sending it (`then`: the stage's escalation task and
        customer status, an attachment left out).

        Either all of it is recorded or none: a crash before the commit leaves the action
        `sending`, in doubt, as a crash between the provider's answer and `mark_sent` did.
        """
        table = Action.__table__
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(table)
                .where(table.c.key == key)
                .values(
                    state=ActionState.sent.value,
                    updated_at=now,
                    provider_response=provider_response[:500],
                    sent_at=now,
                )
            )
            if also_sent:
                conn.execute(
                    sa.update(table)
                    .where(table.c.key.in_(list(also_sent)))
                    .values(
                        state=ActionState.sent.value,
                        updated_at=now,
                        provider_response=also_sent_response[:500],
                        sent_at=now,
                    )
                )
            sent = ()
            if event is not None:
                detail = {
                    k: v
                    for k, v in event.items()
                    if k not in ("invoice_number", "customer_id", "actor", "action_key")
                }
                sent = (
                    NewEvent(
                        "sent",
                        invoice_number=event.get("invoice_number", ""),
                        customer_id=event.get("customer_id", ""),
                        action_key=key,
                        actor=event.get("actor", "dunning"),
                        detail=detail,
                    ),
                )
            # The `sent` event first, then what followed from it, in one INSERT.
            follows = then or Writes()
            writes = Writes(events=sent, entries=(note,) if note else ()) + follows
            self._apply(conn, writes, now=now)

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
        event = NewEvent(kind, invoice_number, customer_id, action_key, actor, detail)
        self.apply(Writes(events=(event,)))

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
        crm_key: str = "",
        crm: dict[str, Any] | None = None,
    ) -> bool:
        """Open a human task once per key and queue it for the CRM, in one transaction;
        returns False if the task already existed (then nothing is written).

        This is the only way a task is opened, whoever opens it (sweep, replies, desk,
        WhatsApp), so every task reaches the CRM. The CRM entry (`kind` task, key `crm_key`,
        default `key`) carries the title, assignee, due date and note; `crm` adds to or
        overrides its payload (`priority`, `task_type`, `email`, `customer_name`, ...).

        Example:
            >>> ledger.open_task(key="F-1:final:email:escalation", title="Call Ebro",
            ...                  invoice_number="F-1", customer_id="C1", assignee="manager",
            ...                  crm={"priority": "HIGH", "task_type": "CALL"})
        """
        task = NewTask(
            key=key,
            title=title,
            invoice_number=invoice_number,
            customer_id=customer_id,
            assignee=assignee,
            due_on=due_on,
            note=note,
            crm_key=crm_key,
            crm=crm,
        )
        return key in self.apply(Writes(tasks=(task,)))

    def set_customer_status(self, customer_id: str, status: str, reason: str = "") -> None:
        """Set (insert or update, in one statement: sweeps escalate in parallel), with its
        `customer_status` event, in one transaction."""
        self.apply(Writes(statuses=(StatusChange(customer_id, status, reason),)))

    def add_pause(
        self,
        kind: str,
        *,
        invoice_number: str | None = None,
        customer_id: str | None = None,
        until: date | None = None,
        reason: str = "",
        channel: str = "",
        actor: str = "dunning",
    ) -> None:
        """Stop reminders for an invoice (or all of a customer's) until a date or for good.

        `channel` limits the pause to one channel (an opt-out from WhatsApp still allows
        email); empty means every channel. An opt-out, by whatever path (a reply, an SMS
        STOP, a provider's refusal), is also queued as a CRM note in the same transaction:
        a person must know the customer stopped a channel.
        """
        if not (invoice_number or customer_id):
            raise ValueError("a pause needs an invoice_number or a customer_id")
        contact = customer_contact(self, customer_id) if kind == "opt_out" and customer_id else {}
        with Session(self.engine) as session:
            pause = Pause(
                kind=kind,
                channel=channel,
                invoice_number=invoice_number,
                customer_id=customer_id,
                until=until,
                reason=reason,
            )
            session.add(pause)
            if kind == "opt_out":
                session.flush()  # the pause's id names its note
                what = channel or "every channel"
                session.execute(
                    sa.insert(CrmEntry),
                    entry_row(
                        key=f"pause:{pause.id}:note",
                        kind="note",
                        payload={
                            "text": f"Customer {customer_id or invoice_number} opted out of "
                            f"{what}: {reason or 'no reason given'}",
                            "at": utcnow().isoformat(),
                            "channel": channel,
                            "direction": "in",
                            **contact,
                        },
                        invoice_number=invoice_number or "",
                        customer_id=customer_id or "",
                    ),
                )
            session.commit()
        self.record_event(
            f"pause_{kind}",
            invoice_number=invoice_number or "",
            customer_id=customer_id or "",
            actor=actor,
            until=until,
            reason=reason,
            channel=channel,
        )

    def pause_reason(
        self,
        invoice_number: str,
        customer_id: str,
        channel: str,
        today: date,
        promise_grace_days: int = 0,
        dispute_scope: str = "customer",
    ) -> str:
        """Why this invoice must get nothing on this channel today ("" if nothing stops it):
        the send-time twin of the planner's pause check, for pauses recorded after the plan
        was made (a dispute read from a reply at 09:05 stops the 10:30 reminder).

        A pause naming an invoice stops that invoice; one without an invoice stops all the
        customer's. With `dispute_scope` "customer" (the policy's default) a dispute about
        any of the customer's invoices stops them all, as in the planner. Pauses on another
        channel do not count.
        """
        request = PresendRequest(invoice_number, customer_id, channel, today)
        with reading(self.engine) as conn:
            pauses = _active_pauses(conn, [invoice_number], [customer_id], dispute_scope)
        return pause_reason(pauses, request, promise_grace_days, dispute_scope)

    def presend_check(
        self,
        invoice_number: str,
        customer_id: str,
        channel: str,
        today: date,
        *,
        promise_grace_days: int = 0,
        dispute_scope: str = "customer",
        promise_id: int | None = None,
        now: datetime | None = None,
    ) -> PresendCheck:
        """What the act step reads before claiming, in ONE read transaction (no write lock
        on SQLite): closed in the ledger (`closed_in_ledger`), then (if still open) the
        pause that stops it (`pause_reason`), and the date of promise `promise_id` (a
        "promise broken" message names it)."""
        request = PresendRequest(invoice_number, customer_id, channel, today, promise_id)
        return self.presend_checks(
            [request],
            promise_grace_days=promise_grace_days,
            dispute_scope=dispute_scope,
            now=now,
        )[0]

    def presend_checks(
        self,
        requests: Sequence[PresendRequest],
        *,
        promise_grace_days: int = 0,
        dispute_scope: str = "customer",
        now: datetime | None = None,
    ) -> list[PresendCheck]:
        """`presend_check` of a batch of actions, in order, in ONE read transaction of a
        few queries (however many actions)."""
        with reading(self.engine) as conn:
            return presend_checks(
                conn,
                requests,
                promise_grace_days=promise_grace_days,
                dispute_scope=dispute_scope,
                now=now,
            )

    def end_pauses(
        self,
        kind: str,
        *,
        invoice_number: str | None = None,
        customer_id: str | None = None,
        actor: str = "dunning",
        reason: str = "",
    ) -> int:
        """End the active pauses of a kind on an invoice or customer; returns how many."""
        stmt = sa.update(Pause).where(Pause.active, Pause.kind == kind)
        if invoice_number:
            stmt = stmt.where(Pause.invoice_number == invoice_number)
        if customer_id:
            stmt = stmt.where(Pause.customer_id == customer_id)
        with Session(self.engine) as session:
            ended = session.execute(stmt.values(active=False, ended_at=utcnow())).rowcount
            session.commit()
        if ended:
            self.record_event(
                f"pause_{kind}_ended",
                invoice_number=invoice_number or "",
                customer_id=customer_id or "",
                actor=actor,
                reason=reason,
            )
        return ended

    # -- promises to pay -------------------------------------------------------------------
    def add_promise(
        self,
        *,
        invoice_number: str,
        customer_id: str,
        promised_on: date,
        amount: float | None = None,
        source: str = "",
        actor: str = "dunning",
    ) -> int:
        """Record a promise to pay and pause the invoice's reminders until the promised date.

        A newer promise replaces an open older one (cancelled). The planner adds the
        policy's grace days to the pause; `resolve_promises` later marks it kept or broken.
        The CRM gets a note of it, whoever recorded it (a reply, the desk).
        """
        contact = customer_contact(self, customer_id)
        with Session(self.engine) as session:
            session.execute(
                sa.update(Promise)
                .where(Promise.invoice_number == invoice_number, Promise.state == PromiseState.open)
                .values(state=PromiseState.cancelled, resolved_at=utcnow())
            )
            promise = Promise(
                invoice_number=invoice_number,
                customer_id=customer_id,
                promised_on=promised_on,
                amount=amount,
                source=source,
            )
            session.add(promise)
            session.flush()  # its id names the CRM note, queued in the same transaction
            session.execute(
                sa.insert(CrmEntry),
                entry_row(
                    key=f"promise:{promise.id}:note",
                    kind="note",
                    payload={
                        "text": f"Promise to pay invoice {invoice_number} on "
                        f"{promised_on.isoformat()} recorded ({source or actor}).",
                        "at": utcnow().isoformat(),
                        "direction": "in",
                        "promised_on": promised_on.isoformat(),
                        **contact,
                    },
                    invoice_number=invoice_number,
                    customer_id=customer_id,
                ),
            )
            session.commit()
            promise_id = int(promise.id)
        self.end_pauses("promise", invoice_number=invoice_number, actor=actor)
        self.add_pause(
            "promise",
            invoice_number=invoice_number,
            customer_id=customer_id,
            until=promised_on,
            reason=f"promise #{promise_id}",
            actor=actor,
        )
        self.record_event(
            "promise_made",
            invoice_number=invoice_number,
            customer_id=customer_id,
            actor=actor,
            promise_id=promise_id,
            promised_on=promised_on,
            amount=amount,
            source=source,
        )
        return promise_id

    def promise(self, promise_id: int) -> Promise | None:
        """One promise to pay by its id (None if there is no such promise)."""
        with Session(self.engine) as session:
            return session.get(Promise, promise_id)

    def resolve_promises(self, today: date, grace_days: int) -> tuple[int, int]:
        """Settle open promises: kept if the invoice was paid by the promised date plus
        grace, broken once that day has passed unpaid. Returns (kept, broken).

        A broken promise ends its pause and is owed one "promise broken" message (the
        planner reads it from `planning_state`).
        """
        with self.engine.connect() as conn:
            rows = pd.read_sql(
                sa.select(
                    Promise.id,
                    Promise.invoice_number,
                    Promise.customer_id,
                    Promise.promised_on,
                    InvoiceRecord.status,
                    InvoiceRecord.closed_at,
                )
                .join(
                    InvoiceRecord,
                    InvoiceRecord.invoice_number == Promise.invoice_number,
                    isouter=True,
                )
                .where(Promise.state == PromiseState.open),
                conn,
            )
        if rows.empty:
            return 0, 0
        deadline = pd.to_datetime(rows["promised_on"]) + pd.Timedelta(days=grace_days)
        # A payment is seen by the next sweep, and sweeps run on business days: a promise
        # paid by a weekend deadline shows up on Monday and is still kept.
        seen_by = np.busday_offset(
            deadline.to_numpy().astype("datetime64[D]"), 0, roll="forward"
        ).astype("datetime64[ns]")
        closed_on = pd.to_datetime(rows["closed_at"], utc=True).dt.tz_localize(None).dt.normalize()
        paid = rows["status"] == "paid"
        state = np.select(
            [
                paid & (closed_on <= seen_by),
                rows["status"] == "cancelled",
                paid | (deadline < pd.Timestamp(today)),
            ],
            [PromiseState.kept, PromiseState.cancelled, PromiseState.broken],
            default="",
        )
        settled = rows.assign(state=state)[state != ""]
        now = utcnow()
        with Session(self.engine) as session:
            for r in settled.itertuples():
                session.execute(
                    sa.update(Promise)
                    .where(Promise.id == int(r.id), Promise.state == PromiseState.open)
                    .values(state=r.state, resolved_at=now)
                )
            session.commit()
        for r in settled.itertuples():
            self.record_event(
                f"promise_{r.state}",
                invoice_number=r.invoice_number,
                customer_id=r.customer_id,
                promise_id=int(r.id),
                promised_on=r.promised_on,
            )
            if r.state == PromiseState.broken:
                self.end_pauses("promise", invoice_number=r.invoice_number)
        kept = int((settled["state"] == PromiseState.kept).sum())
        return kept, int((settled["state"] == PromiseState.broken).sum())

    # -- the inbox -------------------------------------------------------------------------
    def store_inbound(self, messages: list[InboundMessage]) -> list[int]:
        """Store received messages once each (by provider id); returns the new rows' ids."""
        ids = []
        for message in messages:
            try:
                with Session(self.engine) as session:
                    session.add(message)
                    session.commit()
                    ids.append(int(message.id))
            except IntegrityError:
                continue  # fetched before: the first copy is the one that counts
        return ids

    def inbound(self, *, state: str | None = None) -> list[InboundMessage]:
        """Inbox messages (oldest first), optionally only those in one state."""
        stmt = select(InboundMessage).order_by(InboundMessage.id)
        if state:
            stmt = stmt.where(InboundMessage.state == state)
        with Session(self.engine) as session:
            return list(session.exec(stmt).all())

    def inbound_message(self, message_id: int) -> InboundMessage:
        with Session(self.engine) as session:
            message = session.get(InboundMessage, message_id)
        if message is None:
            raise KeyError(f"no inbox message {message_id}")
        return message

    def claim_inbound(self, lease: timedelta = timedelta(minutes=30)) -> list[int]:
        """Take the inbox messages waiting to be handled; returns their ids.

        Waiting means new, or taken by a run that has not finished them within `lease` (it
        died): nothing stays stuck. Each claim is a conditional update, so two runs never
        take the same message.
        """
        now = utcnow()
        waiting = sa.or_(
            InboundMessage.state == "new",
            sa.and_(
                InboundMessage.state == "processing", InboundMessage.processed_at < now - lease
            ),
        )
        with Session(self.engine) as session:
            candidates = session.execute(
                sa.select(InboundMessage.id).where(waiting).order_by(InboundMessage.id)
            ).scalars()
            taken = [
                int(message_id)
                for message_id in list(candidates)
                if session.execute(
                    sa.update(InboundMessage)
                    .where(InboundMessage.id == message_id, waiting)
                    .values(state="processing", processed_at=now)
                ).rowcount
            ]
            session.commit()
        return taken

    def update_inbound(self, message_id: int, **values: Any) -> None:
        """Record what matching, classification and acting found for one inbox message."""
        with Session(self.engine) as session:
            session.execute(
                sa.update(InboundMessage).where(InboundMessage.id == message_id).values(**values)
            )
            session.commit()

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


def _dialect_insert(engine: Engine, model: type[SQLModel]):  # noqa: ANN202
    """The dialect's INSERT (with ON CONFLICT) for PostgreSQL and SQLite."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"ledger on {engine.dialect.name}: use PostgreSQL or SQLite")
    return insert(model.__table__)


def _insert_new(engine: Engine) -> sa.Insert:
    """INSERT of invoice rows that skips ones a concurrent sweep has just inserted."""
    return _dialect_insert(engine, InvoiceRecord).on_conflict_do_nothing(
        index_elements=["invoice_number"]
    )


def _upsert(engine: Engine, model: type[SQLModel], keys: list[str], values: dict) -> sa.Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET values: safe under concurrent writers."""
    insert = _dialect_insert(engine, model)
    return insert.on_conflict_do_update(
        index_elements=keys, set_={k: insert.excluded[k] for k in values}
    )


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with plain Python values (no NaN/NaT, which drivers reject)."""
    return [
        {k: (None if _is_missing(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict("records")
    ]


def _record_chunks(frame: pd.DataFrame, size: int = 20_000) -> Iterator[list[dict]]:
    """`_records(frame)` in chunks of `size` rows, converted a column at a time (the same
    plain values: NaN, NaT and NA become None; timestamps as `datetime`, which the driver
    binds as it binds a pandas Timestamp, several times faster) for
    `Ledger.sync_invoices`' executemany."""
    names = list(frame.columns)
    for start in range(0, len(frame), size):
        part = frame.iloc[start : start + size]
        columns = []
        for name in names:
            column = part[name]
            if isinstance(column.dtype, pd.DatetimeTZDtype):
                values = column.dt.to_pydatetime()
            else:
                values = column.astype(object)
            columns.append(values.where(values.notna(), None).tolist())
        yield [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False

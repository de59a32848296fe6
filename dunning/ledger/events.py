"""Questions asked of the event log (`events`) by kind: was it recorded, for whom, when.

Some facts live in the event log rather than in a table of their own (a WhatsApp opt-in, a
contact reported unreachable, when a source was last read in full); these are their reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dunning.ledger.models import Event

if TYPE_CHECKING:
    from dunning.ledger.store import Ledger


def has_event(ledger: Ledger, kind: str, *, customer_id: str) -> bool:
    """True if an event of this kind was recorded for the customer."""
    with ledger.engine.connect() as conn:
        row = conn.execute(
            sa.select(Event.id).where(Event.kind == kind, Event.customer_id == customer_id).limit(1)
        ).first()
    return row is not None


def customers_with_event(ledger: Ledger, kind: str) -> set[str]:
    """Every customer with at least one event of this kind."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(Event.customer_id).where(Event.kind == kind).distinct())
        return set(rows.scalars())


def event_details(
    ledger: Ledger, kind: str, *, customer_id: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(customer id, detail) of every event of this kind, optionally of one customer."""
    stmt = sa.select(Event.customer_id, Event.detail).where(Event.kind == kind)
    if customer_id is not None:
        stmt = stmt.where(Event.customer_id == customer_id)
    with ledger.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [(r.customer_id, r.detail or {}) for r in rows]


def last_event_at(ledger: Ledger, kind: str, *, actor: str) -> datetime | None:
    """When the latest event of this kind by this actor happened (UTC), or None."""
    with ledger.engine.connect() as conn:
        at = conn.execute(
            sa.select(sa.func.max(Event.at)).where(Event.kind == kind, Event.actor == actor)
        ).scalar()
    if at is None:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def record_event_at(ledger: Ledger, kind: str, at: datetime, *, actor: str, **detail: Any) -> None:
    """Record an event that happened at `at` (not now), e.g. a read that started earlier."""
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.insert(Event),
            {
                "at": at.astimezone(UTC),
                "kind": kind,
                "invoice_number": "",
                "customer_id": "",
                "action_key": "",
                "actor": actor,
                "detail": detail,
            },
        )

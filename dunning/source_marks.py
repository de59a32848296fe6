"""When each invoice source was last read in full, so the next sweep can ask it what changed.

Kept in the ledger's event log (kind `source_read`, actor `source:<key>`), so it lives with
the rest of the durable state and needs no table of its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from dunning.importers import ImportResult
from dunning.ledger import Ledger
from dunning.ledger.events import last_event_at, record_event_at

KIND = "source_read"
#: Changes are asked for from a little before the last read: the source's clock and ours
#: differ, and an invoice written while we read must not fall between two sweeps.
OVERLAP = timedelta(minutes=10)


def last_read(ledger: Ledger, source_key: str) -> datetime | None:
    """When the source was last read in full (UTC), or None if never."""
    return last_event_at(ledger, KIND, actor=f"source:{source_key}")


def changes_since(ledger: Ledger, source_key: str) -> datetime | None:
    """The moment to ask the source for changes from (the last read minus OVERLAP)."""
    at = last_read(ledger, source_key)
    return at - OVERLAP if at is not None else None


def record_read(ledger: Ledger, source_key: str, at: datetime, invoices: int) -> None:
    """Note that the source was read in full starting at `at`."""
    record_event_at(ledger, KIND, at, actor=f"source:{source_key}", invoices=invoices)


def with_changes(current: ImportResult, changed: ImportResult) -> ImportResult:
    """The full read plus the changed invoices it does not list (paid, cancelled since).

    Those are appended so the ledger learns they closed; the plan skips them.
    """
    known = set(current.invoices["invoice_number"]) | set(current.quarantine["invoice_number"])
    extra = changed.invoices[~changed.invoices["invoice_number"].isin(known)]
    if extra.empty:
        return current
    invoices = pd.concat([current.invoices, extra], ignore_index=True)
    return ImportResult(invoices=invoices, quarantine=current.quarantine)

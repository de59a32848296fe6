"""The ledger: durable record of invoices, outbox actions, events, tasks and pauses."""

from dunning.ledger.models import (
    Action,
    ActionState,
    CustomerStatus,
    Event,
    HumanTask,
    InvoiceRecord,
    Pause,
)
from dunning.ledger.store import Claim, Ledger, LedgerState, SyncReport

__all__ = [
    "Action",
    "ActionState",
    "Claim",
    "CustomerStatus",
    "Event",
    "HumanTask",
    "InvoiceRecord",
    "Ledger",
    "LedgerState",
    "Pause",
    "SyncReport",
]

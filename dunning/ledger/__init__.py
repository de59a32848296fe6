"""The ledger: durable record of invoices, outbox actions, events, tasks and pauses."""

from dunning.ledger.models import (
    Action,
    ActionState,
    CrmEntry,
    CustomerStatus,
    DeskUser,
    Event,
    HumanTask,
    InboundMessage,
    InvoiceRecord,
    Pause,
    Promise,
    PromiseState,
    WebhookEvent,
)
from dunning.ledger.store import Claim, Ledger, LedgerState, SyncReport

__all__ = [
    "Action",
    "ActionState",
    "Claim",
    "CrmEntry",
    "CustomerStatus",
    "DeskUser",
    "Event",
    "HumanTask",
    "InboundMessage",
    "InvoiceRecord",
    "Ledger",
    "LedgerState",
    "Pause",
    "Promise",
    "PromiseState",
    "SyncReport",
    "WebhookEvent",
]

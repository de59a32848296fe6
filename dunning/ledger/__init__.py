"""The ledger: durable record of invoices, outbox actions, events, tasks and pauses.

The only door to the ledger's database: every query and statement lives in this package
(`Ledger` in `store`, and small modules by subject: `crm_outbox`, `inbound`, `desk`,
`consent`, `contacts`, `delivery`, `events`, `reader`). Other code calls these and imports
the typed rows from `models`; it runs no SQL of its own (`tests/test_layers.py` checks).
"""

from dunning.ledger.inbound import closed_in_ledger, is_closed_in_ledger
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
    "closed_in_ledger",
    "is_closed_in_ledger",
]

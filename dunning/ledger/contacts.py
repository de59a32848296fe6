"""Who is who in the ledger: the lookups that tie a customer's message to our records
(invoices by number, the customers behind an address or a phone; the message a reply
answers is `dunning.ledger.inbound.replied_to`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from dunning.ledger.models import InvoiceRecord

if TYPE_CHECKING:
    from dunning.ledger.store import Ledger

_CONTACT_COLUMNS = (
    InvoiceRecord.invoice_number,
    InvoiceRecord.customer_id,
    InvoiceRecord.email,
    InvoiceRecord.phone,
    InvoiceRecord.status,
)


def invoice_customers(ledger: Ledger, numbers: list[str]) -> dict[str, str]:
    """Invoice number -> customer id, for those of `numbers` the ledger knows."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(InvoiceRecord.invoice_number, InvoiceRecord.customer_id).where(
                InvoiceRecord.invoice_number.in_(sorted(numbers))
            )
        ).all()
    return {r.invoice_number: r.customer_id for r in rows}


def contacts_with_email(ledger: Ledger, text: str) -> pd.DataFrame:
    """Invoices whose email field contains `text` (lower-cased): invoice_number,
    customer_id, email, phone, status. The field may hold several addresses."""
    query = sa.select(*_CONTACT_COLUMNS).where(sa.func.lower(InvoiceRecord.email).contains(text))
    with ledger.engine.connect() as conn:
        return pd.read_sql(query, conn)


def contacts_with_phone(ledger: Ledger) -> pd.DataFrame:
    """Invoices with a phone number (as the source wrote it), same columns as above."""
    query = sa.select(*_CONTACT_COLUMNS).where(InvoiceRecord.phone != "")
    with ledger.engine.connect() as conn:
        return pd.read_sql(query, conn)


def customer_emails(ledger: Ledger, customer_id: str) -> list[str]:
    """The email fields of the customer's invoices (each may hold several addresses)."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(InvoiceRecord.email).where(InvoiceRecord.customer_id == customer_id)
        ).scalars()
        return [value or "" for value in rows]

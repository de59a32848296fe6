"""The normalized invoice schema every invoice source produces, and its vocabulary.

One row per invoice, one column per field below. Sources map their own columns onto these
names; the planner, the ledger and the reports only ever see these, and the risk readers map
their sources onto them too (the risk frame renames three: `dunning.risk.sources`). The one
validator of invoice frames (`dunning.importers.validate_invoices`) applies the rules
written here: the statuses and their aliases, the currencies, the row numbering.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from babel.numbers import list_currencies
from pydantic import BaseModel, field_validator

#: Columns of the normalized invoice frame, in the order of the default CSV layout.
INVOICE_COLUMNS: tuple[str, ...] = (
    "invoice_number",
    "customer_id",
    "customer_name",
    "email",
    "phone",
    "country",
    "language",
    "timezone",
    "currency",
    "amount_total",
    "amount_due",
    "issue_date",
    "due_date",
    "status",
    "payment_link",
    "pdf_path",
)

#: Columns a source may have besides those: read when present, empty (unknown) otherwise.
#: `preferred_channel` is email or whatsapp; `whatsapp_opt_in` the customer's recorded
#: consent to WhatsApp messages ("true"/"false" once normalized, "" when unknown).
OPTIONAL_COLUMNS: tuple[str, ...] = ("preferred_channel", "whatsapp_opt_in")
REQUIRED_COLUMNS: tuple[str, ...] = ("invoice_number", "due_date")
CHANNELS: tuple[str, ...] = ("email", "whatsapp")
#: Source spellings of a yes/no opt-in (lower case), mapped to "true"/"false".
OPT_IN_VALUES: dict[str, str] = {
    **dict.fromkeys(("true", "yes", "y", "1", "si", "sí", "s", "x"), "true"),
    **dict.fromkeys(("false", "no", "n", "0"), "false"),
}
STATUSES: tuple[str, ...] = ("open", "paid", "cancelled", "disputed")
#: Source spellings accepted for a status, all mapped to one of STATUSES.
STATUS_ALIASES: dict[str, str] = {
    "": "open",
    "canceled": "cancelled",
    "void": "cancelled",
    "unpaid": "open",
    "overdue": "open",
    "partial": "open",
    "part_paid": "open",
}
#: The day an invoice was paid or cancelled, when the source knows it (the reports use it;
#: the sweep learns it from the ledger instead). Empty while the invoice is open.
CLOSED_DATE = "closed_date"
#: Other names of our columns that sources use: source name -> our name.
COLUMN_SYNONYMS: dict[str, str] = {"paid_date": CLOSED_DATE}
#: The public IBM Watson "Accounts Receivable" sample's columns in our vocabulary (the reports
#: and the risk model both read it). Its dates are `IBM_DATE_FORMAT`; it names no currency.
IBM_SAMPLE_COLUMNS: dict[str, str] = {
    "invoiceNumber": "invoice_number",
    "customerID": "customer_id",
    "InvoiceDate": "issue_date",
    "DueDate": "due_date",
    "SettledDate": CLOSED_DATE,
    "InvoiceAmount": "amount_total",
    "Disputed": "disputed",
    "PaperlessBill": "channel",
    "countryCode": "country",
}
IBM_DATE_FORMAT = "%m/%d/%Y"
#: ISO 4217 currency codes (Babel's list), and the currency of a row that names none.
CURRENCIES: frozenset[str] = frozenset(list_currencies())
DEFAULT_CURRENCY = "EUR"
#: Columns of the quarantine frame: one row per problem found in the source.
QUARANTINE_COLUMNS: tuple[str, ...] = ("row", "line", "invoice_number", "field", "value", "reason")


def row_numbers(positions: int) -> range:
    """The `row` of each data row of a source: counted from 1, in the source's order."""
    return range(1, positions + 1)


def file_line(row: int | pd.Series) -> int | pd.Series:
    """The line of a file that holds data row `row` (from `row_numbers`): the header is line
    1, so the first row is on line 2."""
    return row + 1


class Invoice(BaseModel):
    """One invoice in the normalized schema (a row of the invoice frame)."""

    invoice_number: str
    customer_id: str = ""
    customer_name: str = ""
    email: str = ""
    phone: str = ""
    country: str = ""
    language: str = ""
    timezone: str = ""
    currency: str = "EUR"
    amount_total: float = 0.0
    amount_due: float = 0.0
    issue_date: date | None = None
    due_date: date
    status: str = "open"
    payment_link: str = ""
    pdf_path: str = ""
    preferred_channel: str = ""
    whatsapp_opt_in: bool | None = None

    @field_validator("whatsapp_opt_in", mode="before")
    @classmethod
    def _opt_in(cls, value: object) -> object:
        """The frame's "true"/"false"/"" (and a source's yes/no/sí) as True/False/None."""
        if isinstance(value, str):
            return {"true": True, "false": False}.get(OPT_IN_VALUES.get(value.strip().lower()))
        if isinstance(value, float) and value != value:  # NaN: unknown
            return None
        return value

    @property
    def is_payable(self) -> bool:
        """True while the customer still owes money on it."""
        return self.status in ("open", "disputed") and self.amount_due > 0

"""Holded: sales invoices and their contacts.

See developers.holded.com/reference. `GET /api/invoicing/v1/documents/invoice?page=N`
with the header `key: <API key>`; every list is paginated with `page`, and an empty page
ends it. What the API really sends, and is handled here:

- dates are Unix seconds of midnight in the company's timezone (Madrid for most), so
  they are read in the block's timezone;
- `dueDate` can be null: the first date of `multipledueDate` (a list, or one object) is
  used, else the invoice date (due on receipt);
- `paymentsPending` carries float residue (4.5e-13 on a paid invoice): amounts are rounded
  to the currency's digits, and an invoice with nothing left pending is paid;
- `currency` is lower case.

Contact details (email, phone, country) come from `GET /api/invoicing/v1/contacts`.
Holded has no filter on modification time, so there is no incremental read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from dunning.connectors.frame import (
    amount_text,
    column,
    decimals_of,
    first_of,
    records_frame,
    text,
    to_result,
    unix_dates,
)
from dunning.connectors.http import ConnectorError, HttpClient, stale
from dunning.importers import ImportResult, to_invoice
from dunning.schema import Invoice

DOCUMENTS = "/api/invoicing/v1/documents"
CONTACTS = "/api/invoicing/v1/contacts"
MAX_PAGES = 100_000


class HoldedInvoices:
    """Holded sales invoices of the last `lookback_days`, in the normalized schema.

    Args:
        http: client with the `key` header.
        doc_type: Holded document type to read (`invoice`).
        lookback_days: only documents dated within this many days (`starttmp`): Holded has
            no "unpaid" filter we can rely on, and old paid invoices need not be read daily.
        timezone: the company's timezone in Holded (dates are midnight there).
        payment_link_template: link put in reminders, formatted with the document's `id`
            and `docNumber`; empty for none.
        source: how quarantine messages name the source.
    """

    supports_changes = False

    def __init__(
        self,
        http: HttpClient,
        *,
        doc_type: str = "invoice",
        lookback_days: int = 730,
        timezone: str = "Europe/Madrid",
        payment_link_template: str = "",
        source: str = "Holded",
        now: datetime | None = None,
    ) -> None:
        self.http = http
        self.doc_type = doc_type
        self.lookback_days = lookback_days
        self.timezone = timezone
        self.payment_link_template = payment_link_template
        self.source = source
        self._now = now
        self._ids: dict[str, str] = {}
        self._read_at: float | None = None
        self._contacts: pd.DataFrame | None = None

    def read(self) -> ImportResult:
        """Every sales invoice dated within `lookback_days`, paid ones marked paid."""
        now = self._now or datetime.now(UTC)
        params = {
            "starttmp": int((now - timedelta(days=self.lookback_days)).timestamp()),
            "endtmp": int((now + timedelta(days=1)).timestamp()),
        }
        self._contacts = None  # contact details may have changed since the last read
        docs = [d for page in self.pages(f"{DOCUMENTS}/{self.doc_type}", params) for d in page]
        self._read_at = time.monotonic()
        return self._result(docs)

    def read_changed_since(self, since: datetime) -> ImportResult:
        """Not available: Holded cannot filter documents by modification time."""
        raise ConnectorError(
            f"{self.http.name}: Holded has no filter on modification time; read() instead"
        )

    def get_invoice(self, invoice_number: str) -> Invoice | None:
        """The invoice as Holded has it now, or None."""
        doc_id = self._ids.get(invoice_number)
        if doc_id is None:
            if not stale(self._read_at):
                return None  # not in a read moments ago
            self.read()
            doc_id = self._ids.get(invoice_number)
            if doc_id is None:
                return None
        try:
            body = self.http.get_json(f"{DOCUMENTS}/{self.doc_type}/{doc_id}")
        except ConnectorError as exc:
            if exc.status == 404:
                return None
            raise
        docs = body if isinstance(body, list) else [body]
        result = self._result([d for d in docs if isinstance(d, dict)])
        if result.invoices.empty:
            return None
        return to_invoice(result.invoices.iloc[0].to_dict())

    def pages(self, path: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Pages 1, 2, ... of a Holded list until an empty one."""
        previous_first = None
        for page in range(1, MAX_PAGES + 1):
            body = self.http.get_json(path, params={**params, "page": page})
            if not isinstance(body, list):
                raise ConnectorError(
                    f"{self.http.name}: GET {path} did not answer a list "
                    f"({type(body).__name__}); check the block's base_url"
                )
            if not body:
                return
            first = body[0].get("id") if isinstance(body[0], dict) else None
            if first is not None and first == previous_first:
                raise ConnectorError(
                    f"{self.http.name}: GET {path} answered page {page} with the same records "
                    "as the page before; the API ignored the page parameter"
                )
            previous_first = first
            yield body
        raise ConnectorError(f"{self.http.name}: GET {path} has more than {MAX_PAGES} pages")

    def contacts(self) -> pd.DataFrame:
        """Contact details by Holded contact id: email, phone, country, name."""
        if self._contacts is None:
            records = [c for page in self.pages(CONTACTS, {}) for c in page]
            f = records_frame(records)
            out = pd.DataFrame(
                {
                    "name": text(column(f, "name")),
                    "email": text(column(f, "email")),
                    "phone": first_of([column(f, "phone"), column(f, "mobile")]),
                    "country": first_of(
                        [column(f, "billAddress.countryCode"), column(f, "countryCode")]
                    ),
                },
                index=f.index,
            )
            out.index = text(column(f, "id")) if len(f) else pd.Index([], dtype="str")
            self._contacts = out[~out.index.duplicated()]
        return self._contacts

    def _result(self, docs: list[dict[str, Any]]) -> ImportResult:
        f = records_frame(docs)
        if f.empty:
            return to_result(pd.DataFrame(), self.source)
        contact_ids = text(column(f, "contact"))
        who = self.contacts().reindex(contact_ids.to_numpy()).set_axis(f.index)
        currency = text(column(f, "currency")).str.upper()
        digits = decimals_of(currency.mask(currency == "", "EUR"))
        pending = amount_text(column(f, "paymentsPending"), digits)
        owed = pd.to_numeric(pending, errors="coerce")
        numbers = first_of([column(f, "docNumber"), column(f, "id")])
        ids = text(column(f, "id"))
        self._ids.update((n, i) for n, i in zip(numbers, ids, strict=True) if n and i)
        raw = pd.DataFrame(
            {
                "invoice_number": numbers,
                "customer_id": contact_ids,
                "customer_name": first_of([column(f, "contactName"), who["name"]]),
                "email": text(who["email"]),
                "phone": text(who["phone"]),
                "country": text(who["country"]),
                "language": text(column(f, "language")),
                "currency": currency,
                "amount_total": amount_text(column(f, "total"), digits),
                "amount_due": pending,
                "issue_date": unix_dates(column(f, "date"), self.timezone),
                "due_date": unix_dates(
                    first_of(
                        [
                            column(f, "dueDate"),
                            _first_due(column(f, "multipledueDate", None)),
                            column(f, "multipledueDate.date"),  # one object, flattened
                            column(f, "date"),
                        ]
                    ),
                    self.timezone,
                ),
                # Nothing (after rounding) pending means paid; unknown pending stays open.
                "status": pd.Series("open", index=f.index, dtype="str").mask(owed <= 0, "paid"),
                "payment_link": self._links(ids, numbers),
            },
            index=f.index,
        )
        return to_result(raw, self.source)

    def _links(self, ids: pd.Series, numbers: pd.Series) -> pd.Series:
        if not self.payment_link_template:
            return pd.Series("", index=ids.index, dtype="str")
        return pd.Series(
            [
                self.payment_link_template.format(id=i, docNumber=n)
                for i, n in zip(ids, numbers, strict=True)
            ],
            index=ids.index,
            dtype="str",
        )


def _first_due(values: pd.Series) -> pd.Series:
    """The earliest date of `multipledueDate`, which is a list of {date, amount} or one."""

    def earliest(value: Any) -> Any:
        items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        dates = [i.get("date") for i in items if isinstance(i, dict) and i.get("date")]
        numeric = [d for d in dates if isinstance(d, int | float)]
        return min(numeric) if numeric else None

    return values.astype(object).map(earliest)

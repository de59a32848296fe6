"""Stripe: open invoices, their hosted payment page, and what changed (events).

See docs.stripe.com/api/invoices. `GET /v1/invoices?status=open&limit=100` pages
with `starting_after=<last id>` while `has_more`; amounts are integers in the currency's
minor unit (cents; yen have none), so 123456 JPY is 123456 and 123456 EUR is 1234.56.
Changes since the last sweep come from `GET /v1/events` (invoice events, kept by Stripe for
30 days): an invoice paid, voided or written off since then is reported closed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd

from dunning.connectors.frame import (
    amount_text,
    column,
    first_of,
    records_frame,
    text,
    to_result,
    unix_dates,
)
from dunning.connectors.http import ConnectorError, HttpClient, stale
from dunning.importers import ImportResult, to_invoice
from dunning.schema import Invoice

#: Stripe's zero- and three-decimal currencies (its own list: ISK, HUF, TWD and UGX are
#: sent with two decimals for backwards compatibility although ISO gives them fewer).
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())
#: Invoice events that change whether (or how much) an invoice is owed.
CHANGE_EVENTS: tuple[str, ...] = (
    "invoice.finalized",
    "invoice.updated",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.voided",
    "invoice.marked_uncollectible",
)
EVENTS_KEPT = timedelta(days=30)
_STATUS = {
    "open": "open",
    "paid": "paid",
    "void": "cancelled",
    "uncollectible": "cancelled",  # written off in Stripe: the business stopped collecting
    "draft": "cancelled",  # not finalized: nothing is owed yet
}


class ChangesUnavailable(ConnectorError):
    """The system cannot tell what changed since then (Stripe keeps events for 30 days)."""


def is_rate_limited(response: httpx.Response) -> bool:
    """Stripe's older rate-limit answer: 400 with error code `rate_limit`."""
    if response.status_code != 400:
        return False
    try:
        return response.json().get("error", {}).get("code") == "rate_limit"
    except (ValueError, AttributeError):
        return False


def exponent(currency: str) -> int:
    """Digits after the decimal point of Stripe amounts in `currency`."""
    code = currency.upper()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


class StripeInvoices:
    """Open Stripe invoices in the normalized schema.

    Args:
        http: client with `Authorization: Bearer <secret key>`.
        page_size: 1-100 invoices per request.
        collection_method: only invoices collected this way (`send_invoice`: the customer
            pays a sent invoice; `charge_automatically` ones are retried by Stripe itself);
            empty for all.
        timezone: the calendar the due dates are read in.
        expand_customer: expand `customer` to read its country and preferred language.
        source: how quarantine messages name the source.
    """

    supports_changes = True

    def __init__(
        self,
        http: HttpClient,
        *,
        page_size: int = 100,
        collection_method: str = "send_invoice",
        timezone: str = "UTC",
        expand_customer: bool = True,
        source: str = "Stripe",
    ) -> None:
        self.http = http
        self.page_size = max(1, min(page_size, 100))
        self.collection_method = collection_method
        self.timezone = timezone
        self.expand_customer = expand_customer
        self.source = source
        self._ids: dict[str, str] = {}
        self._read_at: float | None = None

    def read(self) -> ImportResult:
        """Every open invoice (status `open`), following `has_more` to the end."""
        params: list[tuple[str, Any]] = [("status", "open")]
        if self.collection_method:
            params.append(("collection_method", self.collection_method))
        if self.expand_customer:
            params.append(("expand[]", "data.customer"))
        records = [r for page in self.pages("/v1/invoices", params) for r in page]
        self._read_at = time.monotonic()
        return self._result(records)

    def read_changed_since(self, since: datetime) -> ImportResult:
        """Invoices with an invoice event since `since`, in their latest state.

        Raises:
            ChangesUnavailable: `since` is older than the 30 days Stripe keeps events.
        """
        if since < datetime.now(UTC) - EVENTS_KEPT:
            raise ChangesUnavailable(
                f"{self.http.name}: Stripe keeps events for 30 days; changes since "
                f"{since.isoformat()} cannot be listed"
            )
        params: list[tuple[str, Any]] = [("created[gte]", int(since.timestamp()))]
        params += [("types[]", t) for t in CHANGE_EVENTS]
        latest: dict[str, dict[str, Any]] = {}
        for page in self.pages("/v1/events", params):
            for event in page:  # newest first: the first event of an invoice is its state now
                invoice = (event.get("data") or {}).get("object") or {}
                if isinstance(invoice, dict) and invoice.get("id"):
                    latest.setdefault(invoice["id"], invoice)
        return self._result(list(latest.values()))

    def get_invoice(self, invoice_number: str) -> Invoice | None:
        """The invoice as Stripe has it now, or None if Stripe does not know it."""
        stripe_id = self._ids.get(invoice_number)
        if stripe_id is None and invoice_number.startswith("in_"):
            stripe_id = invoice_number
        if stripe_id is None:
            if not stale(self._read_at):
                return None  # not in a list read moments ago: not open
            self.read()  # numbers are not searchable in the list API: refresh the map
            stripe_id = self._ids.get(invoice_number)
            if stripe_id is None:
                return None
        params = [("expand[]", "customer")] if self.expand_customer else None
        try:
            record = self.http.get_json(f"/v1/invoices/{stripe_id}", params=params)
        except ConnectorError as exc:
            if exc.status == 404:
                return None
            raise
        result = self._result([record])
        if result.invoices.empty:
            return None
        return to_invoice(result.invoices.iloc[0].to_dict())

    def pages(self, path: str, params: list[tuple[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        """Pages of a Stripe list endpoint, `starting_after` the last id while `has_more`."""
        after: str | None = None
        while True:
            query = [*params, ("limit", self.page_size)]
            if after:
                query.append(("starting_after", after))
            body = self.http.get_json(path, params=query)
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise ConnectorError(
                    f"{self.http.name}: GET {path} did not answer a list object "
                    "(no `data` array); check the block's base_url"
                )
            if data:
                yield data
            last = data[-1].get("id") if data else None
            if not body.get("has_more") or not last or last == after:
                return
            after = last

    def _result(self, records: list[dict[str, Any]]) -> ImportResult:
        f = records_frame(records)
        if f.empty:
            return to_result(pd.DataFrame(), self.source)
        currency = text(column(f, "currency")).str.upper()
        digits = pd.Series([exponent(c) for c in currency], index=f.index, dtype="int64")
        scale = np.power(10.0, digits.to_numpy())
        total = first_of([column(f, "total"), column(f, "amount_due")])
        # A customer is an id, or the object when expanded: json_normalize makes `customer.*`.
        customer = first_of([column(f, "customer.id"), column(f, "customer")])
        numbers = first_of([column(f, "number"), column(f, "id")])
        self._ids.update((n, i) for n, i in zip(numbers, text(column(f, "id")), strict=True) if n)
        locales = column(f, "customer.preferred_locales", None).astype(object)
        raw = pd.DataFrame(
            {
                "invoice_number": numbers,
                "customer_id": customer,
                "customer_name": first_of([column(f, "customer_name"), column(f, "customer.name")]),
                "email": first_of([column(f, "customer_email"), column(f, "customer.email")]),
                "phone": first_of([column(f, "customer_phone"), column(f, "customer.phone")]),
                "country": first_of(
                    [
                        column(f, "customer.address.country"),
                        column(f, "customer_address.country"),
                    ]
                ),
                "language": text(locales.map(lambda v: v[0] if isinstance(v, list) and v else "")),
                "currency": currency,
                "amount_total": amount_text(_major(total, scale), digits),
                "amount_due": amount_text(_major(column(f, "amount_remaining"), scale), digits),
                "issue_date": unix_dates(
                    first_of([column(f, "effective_at"), column(f, "created")]), self.timezone
                ),
                "due_date": unix_dates(column(f, "due_date"), self.timezone),
                "status": text(column(f, "status")).map(lambda s: _STATUS.get(s, s)),
                "payment_link": text(column(f, "hosted_invoice_url")),
            },
            index=f.index,
        )
        return to_result(raw, self.source)


def _major(minor: pd.Series, scale: np.ndarray) -> pd.Series:
    """Minor units to major; what is not a number is kept as written (and quarantined)."""
    number = pd.to_numeric(minor, errors="coerce")
    return (number / scale).astype(object).where(number.notna(), text(minor))

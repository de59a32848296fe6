"""Invoice sources that read an ERP or billing system over its API: Odoo, Stripe, Holded and
any JSON API. Credentials are secrets (never shown in the UI, logs or errors); the clients
themselves live in `dunning/connectors/`.

Where to find every value in each system: docs/connectors.md.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import pandas as pd
from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr, SecretStr

from blocks.sources import CsvInvoiceSource, InvoiceSource
from dunning.connectors.frame import to_result
from dunning.connectors.holded import HoldedInvoices
from dunning.connectors.http import HttpClient, RetryPolicy
from dunning.connectors.odoo import OPEN_PAYMENT_STATES, OdooClient, OdooInvoices
from dunning.connectors.rest import RestInvoices, RestSettings
from dunning.connectors.stripe import StripeInvoices, is_rate_limited
from dunning.importers import ImportResult
from dunning.schema import Invoice


class ApiInvoiceSource(InvoiceSource, ABC):
    """What every API source shares: network timeouts, retries and a request rate."""

    timeout_seconds: float = Field(30.0, gt=0, description="Connect and read timeout.")
    retries: int = Field(4, ge=0, le=10, description="Retries on 5xx, 429 and network errors.")
    max_retry_wait_seconds: float = Field(
        60.0, gt=0, description="Longest wait before a retry, whatever Retry-After says."
    )
    requests_per_second: float = Field(
        5.0,
        ge=0,
        description="Prefect rate limit for all requests to this system (0: none).",
    )

    _connector: Any = PrivateAttr(default=None)
    _connector_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @abstractmethod
    def _build(self) -> Any:
        """The connector of `dunning.connectors` for this block's settings."""

    @property
    @abstractmethod
    def api_root(self) -> str:
        """The system's root URL."""

    def connector(self) -> Any:
        """The connector (built once per block instance: caches and connections are reused)."""
        with self._connector_lock:
            if self._connector is None:
                self._connector = self._build()
            return self._connector

    def http(self, headers: dict[str, str], auth_hint: str, **kw: Any) -> HttpClient:
        """An HTTP client to this system with the block's timeouts and retries."""
        return api_client(self, self.api_root, headers, auth_hint, **kw)

    def read(self) -> ImportResult:
        """Every invoice to consider, validated; bad records quarantined."""
        return self.connector().read()

    def get_invoice(self, invoice_number: str) -> Invoice | None:
        """The invoice as the system has it now, or None."""
        return self.connector().get_invoice(invoice_number)

    def read_changed_since(self, since: datetime) -> ImportResult:
        """Invoices changed since `since`, paid and cancelled ones included."""
        return self.connector().read_changed_since(since)

    def read_one(self, invoice_number: str) -> ImportResult:
        """Just this invoice, asked for by number (no full read)."""
        found = self.get_invoice(invoice_number)
        records = [found.model_dump()] if found is not None else []
        return to_result(pd.DataFrame(records), self.label)

    @property
    def supports_changes(self) -> bool:
        """True when the system can list what changed since a moment."""
        return bool(self.connector().supports_changes)

    def rate_limit_name(self) -> str | None:
        """`dunning-source-<type>-<saved name or host>`: one Prefect rate limit per system."""
        if not self.requests_per_second:
            return None
        who = self._block_document_name or urlsplit(self.api_root).hostname or "default"
        return f"dunning-source-{self.get_block_type_slug()}-{who}"


class OdooInvoiceSource(ApiInvoiceSource):
    """Open customer invoices from Odoo (`account.move`, posted, not fully paid).

    Reads over the JSON-2 API of Odoo 19+ (an API key as Bearer token) or the older
    `/jsonrpc` endpoint (database, login and API key or password). Partner email, phone,
    language, country and timezone come from the invoice's partner; the amount due is
    `amount_residual`. With `portal_url_template`, each reminder links to the invoice in the
    customer portal (pay online, download the PDF).

    Example:
        ```python
        from blocks import OdooInvoiceSource

        OdooInvoiceSource(
            url="https://acme.odoo.com", database="acme", api_key="...",
            portal_url_template="{base_url}/my/invoices/{id}?access_token={access_token}",
        ).save("odoo", overwrite=True)
        ```
    """

    _block_type_name = "Odoo Invoice Source"
    _description = "Open customer invoices from Odoo over JSON-2 or JSON-RPC."

    url: str = Field(description="Odoo address, e.g. https://acme.odoo.com")
    database: str = Field("", description="Database name (needed for jsonrpc; optional json2).")
    protocol: Literal["json2", "jsonrpc"] = Field(
        "json2", description="json2 (Odoo 19+, API key) or jsonrpc (older, removed in Odoo 20+)."
    )
    login: str = Field("", description="User login, for jsonrpc only.")
    api_key: SecretStr = Field(description="API key of the user the sweep reads as.")
    page_size: int = Field(500, ge=1, le=5000, description="Invoices per request.")
    payment_states: list[str] = Field(
        default_factory=lambda: list(OPEN_PAYMENT_STATES),
        description="payment_state values a full read asks for.",
    )
    portal_url_template: str = Field(
        "",
        description="Payment/PDF link per invoice: {base_url}, {id}, {name}, {access_token}.",
    )

    @property
    def api_root(self) -> str:
        return self.url

    def _build(self) -> OdooInvoices:
        return OdooInvoices(
            odoo_client(self),
            base_url=self.url,
            page_size=self.page_size,
            payment_states=tuple(self.payment_states),
            portal_url_template=self.portal_url_template,
            source=self.label,
        )


class StripeInvoiceSource(ApiInvoiceSource):
    """Open Stripe invoices, with the hosted invoice page as the payment link.

    Amounts are converted from Stripe's minor units with each currency's exponent (JPY has
    none). What changed since the last sweep (payments, voids) comes from Stripe's events,
    which it keeps for 30 days. A restricted key with read access to Invoices, Customers and
    Events is enough.

    Example:
        ```python
        from blocks import StripeInvoiceSource

        StripeInvoiceSource(secret_key="rk_live_...").save("stripe", overwrite=True)
        ```
    """

    _block_type_name = "Stripe Invoice Source"
    _description = "Open Stripe invoices; hosted invoice page as the payment link."

    secret_key: SecretStr = Field(description="Secret or restricted API key (sk_/rk_...).")
    base_url: str = Field("https://api.stripe.com", description="Stripe API address.")
    collection_method: str = Field(
        "send_invoice",
        description="Only invoices collected this way (send_invoice); empty for all.",
    )
    timezone: str = Field("UTC", description="Calendar the due dates are read in.")
    requests_per_second: float = Field(20.0, ge=0, description="Prefect rate limit (0: none).")

    @property
    def api_root(self) -> str:
        return self.base_url

    def _build(self) -> StripeInvoices:
        http = self.http(
            {"Authorization": f"Bearer {self.secret_key.get_secret_value()}"},
            "check secret_key (Stripe Dashboard > Developers > API keys)",
            is_rate_limited=is_rate_limited,
        )
        return StripeInvoices(
            http,
            collection_method=self.collection_method,
            timezone=self.timezone,
            source=self.label,
        )


class HoldedInvoiceSource(ApiInvoiceSource):
    """Sales invoices from Holded, with the contact's email, phone and country.

    Tolerates what Holded really sends: `dueDate: null` (the first instalment date, else
    the invoice date, is used), float residue in `paymentsPending`, dates as midnight in
    the company's timezone.

    Example:
        ```python
        from blocks import HoldedInvoiceSource

        HoldedInvoiceSource(api_key="...").save("holded", overwrite=True)
        ```
    """

    _block_type_name = "Holded Invoice Source"
    _description = "Sales invoices from Holded (documents API) with contact details."

    api_key: SecretStr = Field(description="Holded API key.")
    base_url: str = Field("https://api.holded.com", description="Holded API address.")
    lookback_days: int = Field(730, ge=1, description="Read invoices dated this far back.")
    timezone: str = Field("Europe/Madrid", description="The company's timezone in Holded.")
    payment_link_template: str = Field(
        "", description="Link in reminders, with {id} and {docNumber}; empty for none."
    )
    requests_per_second: float = Field(2.0, ge=0, description="Prefect rate limit (0: none).")

    @property
    def api_root(self) -> str:
        return self.base_url

    def _build(self) -> HoldedInvoices:
        http = self.http(
            {"key": self.api_key.get_secret_value()},
            "check api_key (Holded: Settings > Developers > API)",
        )
        return HoldedInvoices(
            http,
            lookback_days=self.lookback_days,
            timezone=self.timezone,
            payment_link_template=self.payment_link_template,
            source=self.label,
        )


class RestInvoiceSource(ApiInvoiceSource):
    """Invoices from any JSON API, mapped to our fields by dotted paths.

    For an in-house ERP or billing system: its list URL, an auth header, how it pages
    (page number, offset, cursor, or a `Link` header) and where each of our fields is in a
    record.

    Example:
        ```python
        from blocks import RestInvoiceSource

        RestInvoiceSource(
            url="https://erp.acme.internal/api/v2/invoices",
            auth_header="Authorization", auth_value="Bearer ...",
            records_path="data", pagination="cursor", cursor_param="after",
            next_cursor_path="meta.next",
            field_mapping={"invoice_number": "number", "email": "customer.email",
                           "amount_due": "balance", "due_date": "due_on"},
            status_mapping={"unpaid": "open", "settled": "paid"},
        ).save("erp", overwrite=True)
        ```
    """

    _block_type_name = "REST Invoice Source"
    _description = "Invoices from any JSON API: URL, auth header, pagination, field mapping."

    url: str = Field(description="URL of the invoice list.")
    auth_header: str = Field("Authorization", description="Header that carries the credential.")
    auth_value: SecretStr | None = Field(None, description="Its value, e.g. 'Bearer abc...'.")
    headers: dict[str, str] = Field(default_factory=dict, description="Other headers (no secrets).")
    query: dict[str, str] = Field(default_factory=dict, description="Fixed query parameters.")
    records_path: str = Field("", description="Dotted path of the record list in the answer.")
    pagination: Literal["none", "page", "offset", "cursor", "link"] = "page"
    page_param: str = "page"
    first_page: int = 1
    page_size_param: str = "per_page"
    page_size: int = Field(100, ge=1)
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    next_cursor_path: str = Field("next_cursor", description="Dotted path of the next cursor.")
    cursor_record_field: str = Field(
        "", description="Or: the field of the last record to pass as cursor (e.g. id)."
    )
    has_more_path: str = Field("", description="Dotted path of a 'more pages' flag, if any.")
    field_mapping: dict[str, str] = Field(
        default_factory=dict, description="Our field -> dotted path in a record."
    )
    status_mapping: dict[str, str] = Field(
        default_factory=dict, description="Their status -> open, paid, cancelled or disputed."
    )
    date_format: str = Field("iso", description="iso, unix, unix_ms or a strftime format.")
    timezone: str = Field("UTC", description="Calendar that Unix timestamps are read in.")
    amounts_in_minor_units: bool = Field(False, description="Amounts in cents.")
    changed_since_param: str = Field(
        "", description="Query parameter for 'changed since' (enables incremental reads)."
    )
    changed_since_format: Literal["iso", "unix"] = "iso"
    item_url: str = Field("", description="URL of one invoice, with {invoice_number}.")
    item_path: str = Field("", description="Dotted path of the record in that answer.")

    @property
    def api_root(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def _build(self) -> RestInvoices:
        headers = dict(self.headers)
        if self.auth_value is not None:
            headers[self.auth_header] = self.auth_value.get_secret_value()
        http = self.http(headers, f"check auth_value (sent as the {self.auth_header} header)")
        settings = RestSettings(
            **{
                name: getattr(self, name)
                for name in RestSettings.__dataclass_fields__
                if hasattr(self, name)
            }
        )
        return RestInvoices(http, settings, source=self.label)


def api_client(
    block: Any, base_url: str, headers: dict[str, str], auth_hint: str, **kw: Any
) -> HttpClient:
    """An HTTP client with the block's `timeout_seconds`, `retries` and
    `max_retry_wait_seconds`, whose errors name the block."""
    return HttpClient(
        base_url,
        name=block.label,
        headers=headers,
        timeout=block.timeout_seconds,
        retry=RetryPolicy(retries=block.retries, max_wait=block.max_retry_wait_seconds),
        auth_hint=auth_hint,
        **kw,
    )


def odoo_client(block: Any) -> OdooClient:
    """An Odoo client from a block's `url`, `database`, `protocol`, `login` and `api_key`."""
    headers = {}
    key = block.api_key.get_secret_value()
    if block.protocol == "json2":
        headers["Authorization"] = f"bearer {key}"
        if block.database:
            headers["X-Odoo-Database"] = block.database
    hint = "check api_key (Odoo: avatar > My Profile/Preferences > Account Security > New API Key)"
    if block.protocol == "jsonrpc":
        hint += ", login and database"
    return OdooClient(
        api_client(block, block.url, headers, hint),
        protocol=block.protocol,
        database=block.database,
        login=block.login,
        api_key=key,
    )


#: Every concrete source type, in the order a bare saved name is looked up.
SOURCE_TYPES: tuple[type[InvoiceSource], ...] = (
    CsvInvoiceSource,
    OdooInvoiceSource,
    StripeInvoiceSource,
    HoldedInvoiceSource,
    RestInvoiceSource,
)


def resolve_source(value: str | InvoiceSource) -> InvoiceSource:
    """An invoice source given as a block, as `<block-type-slug>/<name>`, or as a bare saved
    name (looked up as a CSV source first, then each API source type).

    Example:
        >>> resolve_source("odoo-invoice-source/prod")
    """
    return load_block(SOURCE_TYPES, value, "invoice source")


def load_block(types: tuple[type[Block], ...], value: Any, what: str) -> Any:
    """A block of one of `types`: the instance itself, `slug/name`, or a bare name."""
    if isinstance(value, types):
        return value
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected an {what} block or the name of a saved one, got {value!r}")
    if "/" in value:
        block = Block.load(value)
        if not isinstance(block, types):
            raise TypeError(f"{value} is a {type(block).__name__}, not an {what}")
        return block
    for block_type in types:
        try:
            return block_type.load(value)
        except ValueError:
            continue
    slugs = ", ".join(f"{t.get_block_type_slug()}/{value}" for t in types)
    raise ValueError(f"no {what} block is saved as {value!r}; looked for {slugs}")

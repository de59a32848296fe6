"""Invoice sources that read an ERP or billing system over its API: Odoo, Stripe, Holded and
any JSON API. Credentials are secrets (never shown in the UI, logs or errors); the clients
themselves live in `dunning/connectors/`.

Where to find every value in each system: docs/connectors.md.
"""

from __future__ import annotations

import tempfile
from abc import ABC
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pandas as pd
from pydantic import Field, PrivateAttr, SecretStr, model_validator

from blocks.catalog import API_LOGO, docs_url
from blocks.http import HttpApiBlock
from blocks.odoo import OdooCredentials
from blocks.sources import CsvInvoiceSource, InvoiceSource
from dunning.connectors.documents import with_downloaded_document
from dunning.connectors.frame import to_result
from dunning.connectors.holded import HoldedInvoices
from dunning.connectors.odoo import OPEN_PAYMENT_STATES, OdooInvoices
from dunning.connectors.rest import RestInvoices, RestSettings
from dunning.connectors.stripe import StripeInvoices, is_rate_limited
from dunning.importers import ImportResult
from dunning.schema import Invoice


class ApiInvoiceSource(HttpApiBlock, InvoiceSource, ABC):
    """An invoice source read over a system's HTTP API (an interface: save one of its
    concrete blocks). Its client is the connector of `dunning.connectors` for the system.

    A record's `pdf_path` is attached only from `attachments_dir`, or downloaded when it is
    a URL on the API's own host (`dunning.connectors.documents`): never any other local file.

    Attributes:
        attachments_dir: Folder that pdf_path values may name (else only PDFs at the API's
            own URL are attached, downloaded with limits).
        timeout_seconds, retries, max_retry_wait_seconds, requests_per_second: As for every
            HTTP API block (`blocks.http.HttpApiBlock`).
    """

    _rate_limit_kind = "source"

    attachments_dir: str | None = Field(
        None,
        description="Folder that pdf_path values may name (none: no local files; PDFs at a "
        "URL of the API's own host are downloaded either way).",
    )
    _download_dir: str | None = PrivateAttr(default=None)

    def read(self) -> ImportResult:
        """Every invoice to consider, validated; bad records quarantined."""
        return self.client().read()

    def get_invoice(self, invoice_number: str) -> Invoice | None:
        """The invoice as the system has it now, or None; a `pdf_path` URL on the API's
        host is downloaded into the attachments folder first."""
        found = self.client().get_invoice(invoice_number)
        if found is None:
            return None
        folder = Path(self.attachments_root)
        folder = folder / "downloaded" if self.attachments_dir else folder
        return with_downloaded_document(found, getattr(self.client(), "http", None), folder)

    @property
    def attachments_root(self) -> str:
        """`attachments_dir`, else a private folder that holds only downloaded documents."""
        if self.attachments_dir:
            return self.attachments_dir
        if self._download_dir is None:
            self._download_dir = tempfile.mkdtemp(prefix="dunning-documents-")
        return self._download_dir

    def read_changed_since(self, since: datetime) -> ImportResult:
        """Invoices changed since `since`, paid and cancelled ones included."""
        return self.client().read_changed_since(since)

    def read_one(self, invoice_number: str) -> ImportResult:
        """Just this invoice, asked for by number (no full read)."""
        found = self.get_invoice(invoice_number)
        records = [found.model_dump()] if found is not None else []
        return to_result(pd.DataFrame(records), self.label)

    @property
    def supports_changes(self) -> bool:
        """True when the system can list what changed since a moment."""
        return bool(self.client().supports_changes)


class OdooInvoiceSource(ApiInvoiceSource):
    """Open customer invoices from Odoo (`account.move`, posted, not fully paid).

    Reads with an `OdooCredentials` login (JSON-2 on Odoo 19+, `/jsonrpc` before). Partner
    email, phone, language, country and timezone come from the invoice's partner; the amount
    due is `amount_residual`. With `portal_url_template`, each reminder links to the invoice in
    the customer portal (pay online, download the PDF). The login may also be given inline
    (`url=..., api_key=...`), as blocks saved before `OdooCredentials` have it.

    Attributes:
        credentials: The Odoo address and login (an `OdooCredentials` block).
        page_size: Invoices per request.
        payment_states: `payment_state` values a full read asks for.
        portal_url_template: Payment/PDF link per invoice, from `{base_url}`, `{id}`,
            `{name}` and `{access_token}`.
        attachments_dir, timeout_seconds, retries, max_retry_wait_seconds,
            requests_per_second: As for every API source (`ApiInvoiceSource`).

    Examples:
        Save the source once:
        ```python
        from blocks import OdooCredentials, OdooInvoiceSource

        OdooInvoiceSource(
            credentials=OdooCredentials(url="https://acme.odoo.com", database="acme",
                                        api_key="3c1f..."),
            portal_url_template="{base_url}/my/invoices/{id}?access_token={access_token}",
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. in a flow) and read the open invoices:
        ```python
        from blocks import OdooInvoiceSource

        odoo_invoice_source = OdooInvoiceSource.load("BLOCK_NAME")
        print(odoo_invoice_source.label, odoo_invoice_source.rate_limit_name())
        # result = odoo_invoice_source.read()
        ```
    """

    _block_type_name = "Odoo Invoice Source"
    _description = "Open customer invoices from Odoo over JSON-2 or JSON-RPC."
    _logo_url = API_LOGO
    _documentation_url = docs_url(_block_type_name)

    credentials: OdooCredentials = Field(description="Odoo address and login.")
    page_size: int = Field(500, ge=1, le=5000, description="Invoices per request.")
    payment_states: list[str] = Field(
        default_factory=lambda: list(OPEN_PAYMENT_STATES),
        description="The payment_state values a full read asks for.",
    )
    portal_url_template: str = Field(
        "",
        description="Payment/PDF link per invoice: {base_url}, {id}, {name}, {access_token}.",
    )

    @model_validator(mode="before")
    @classmethod
    def _inline_login(cls, data: Any) -> Any:
        return OdooCredentials.nest(data)

    @property
    def url(self) -> str:
        """The Odoo address (of `credentials`)."""
        return self.credentials.url

    @property
    def api_key(self) -> SecretStr:
        """The API key (of `credentials`)."""
        return self.credentials.api_key

    @property
    def api_root(self) -> str:
        return self.credentials.url

    def _build(self) -> OdooInvoices:
        return OdooInvoices(
            self.credentials.get_client(self),
            base_url=self.credentials.url,
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

    Attributes:
        secret_key: Secret or restricted API key (`sk_...`/`rk_...`).
        base_url: Stripe API address.
        collection_method: Only invoices collected this way (`send_invoice`); empty for all.
        timezone: Calendar the due dates are read in.
        attachments_dir, timeout_seconds, retries, max_retry_wait_seconds,
            requests_per_second: As for every API source (`ApiInvoiceSource`).

    Examples:
        Save the source once:
        ```python
        from blocks import StripeInvoiceSource

        StripeInvoiceSource(secret_key="rk_live_...").save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. in a flow):
        ```python
        from blocks import StripeInvoiceSource

        stripe_invoice_source = StripeInvoiceSource.load("BLOCK_NAME")
        print(stripe_invoice_source.label, stripe_invoice_source.rate_limit_name())
        # result = stripe_invoice_source.read()
        ```
    """

    _block_type_name = "Stripe Invoice Source"
    _description = "Open Stripe invoices; hosted invoice page as the payment link."
    _logo_url = API_LOGO
    _documentation_url = docs_url(_block_type_name)

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

    Attributes:
        api_key: Holded API key.
        base_url: Holded API address.
        lookback_days: Read invoices dated this far back.
        timezone: The company's timezone in Holded.
        payment_link_template: Link in reminders, with `{id}` and `{docNumber}`.
        attachments_dir, timeout_seconds, retries, max_retry_wait_seconds,
            requests_per_second: As for every API source (`ApiInvoiceSource`).

    Examples:
        Save the source once:
        ```python
        from blocks import HoldedInvoiceSource

        HoldedInvoiceSource(api_key="...").save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. in a flow):
        ```python
        from blocks import HoldedInvoiceSource

        holded_invoice_source = HoldedInvoiceSource.load("BLOCK_NAME")
        print(holded_invoice_source.label, holded_invoice_source.rate_limit_name())
        # result = holded_invoice_source.read()
        ```
    """

    _block_type_name = "Holded Invoice Source"
    _description = "Sales invoices from Holded (documents API) with contact details."
    _logo_url = API_LOGO
    _documentation_url = docs_url(_block_type_name)

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
    record. Every setting is described in docs/connectors.md.

    Attributes:
        url: URL of the invoice list.
        auth_header, auth_value: The header that carries the credential, and its value.
        records_path: Dotted path of the record list in an answer.
        pagination: none, page, offset, cursor or link, with the `page_*`, `offset_param`,
            `cursor_*`, `next_cursor_path` and `has_more_path` settings.
        field_mapping, status_mapping: Where our fields are in a record; their statuses as
            ours.
        changed_since_param: Query parameter for "changed since" (incremental reads).
        item_url, item_path: One invoice's URL and where its record is in the answer.
        attachments_dir, timeout_seconds, retries, max_retry_wait_seconds,
            requests_per_second: As for every API source (`ApiInvoiceSource`).

    Examples:
        Save the source once:
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
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. in a flow):
        ```python
        from blocks import RestInvoiceSource

        rest_invoice_source = RestInvoiceSource.load("BLOCK_NAME")
        print(rest_invoice_source.label, rest_invoice_source.rate_limit_name())
        # result = rest_invoice_source.read()
        ```
    """

    _block_type_name = "REST Invoice Source"
    _description = "Invoices from any JSON API: URL, auth header, pagination, field mapping."
    _logo_url = API_LOGO
    _documentation_url = docs_url(_block_type_name)

    url: str = Field(description="URL of the invoice list.")
    auth_header: str = Field("Authorization", description="Header that carries the credential.")
    auth_value: SecretStr | None = Field(None, description="Its value, e.g. 'Bearer abc...'.")
    headers: dict[str, str] = Field(default_factory=dict, description="Other headers (no secrets).")
    query: dict[str, str] = Field(default_factory=dict, description="Fixed query parameters.")
    records_path: str = Field("", description="Dotted path of the record list in the answer.")
    pagination: Literal["none", "page", "offset", "cursor", "link"] = Field(
        "page", description="How the API pages: none, page, offset, cursor or a Link header."
    )
    page_param: str = Field("page", description="Query parameter of the page number.")
    first_page: int = Field(1, description="Number of the first page (0 or 1).")
    page_size_param: str = Field("per_page", description="Query parameter of the page size.")
    page_size: int = Field(100, ge=1, description="Records asked for per page.")
    offset_param: str = Field("offset", description="Query parameter of the offset.")
    cursor_param: str = Field("cursor", description="Query parameter of the cursor.")
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
    changed_since_format: Literal["iso", "unix"] = Field(
        "iso", description="How the 'changed since' moment is written: iso or unix."
    )
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


#: Every concrete source type, in the order `resolve_block` looks up a bare saved name.
SOURCE_TYPES: tuple[type[InvoiceSource], ...] = (
    CsvInvoiceSource,
    OdooInvoiceSource,
    StripeInvoiceSource,
    HoldedInvoiceSource,
    RestInvoiceSource,
)

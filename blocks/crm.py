"""CRM blocks: where notes, human tasks and customer statuses are logged.

The act step writes every entry to the ledger's CRM outbox first; the sweep then delivers
the pending entries to the CRM block it was given (`crm` parameter). `LedgerCrm`, the
default, keeps everything in the ledger (the collections desk shows it); `HubSpotCrm` and
`OdooCrm` send it on. A CRM that is down leaves the entries pending for the next run.
Where to find every value: docs/connectors.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from blocks.catalog import API_LOGO, DATABASE_LOGO, docs_url
from blocks.http import HttpApiBlock
from blocks.odoo import OdooCredentials
from dunning.connectors.hubspot import HubSpotSink
from dunning.connectors.odoo import OdooChatter, OdooInvoices
from dunning.crm import CrmSink, LedgerSink


class CrmBlock(Block, ABC):
    """Where CRM entries go (an interface: save one of its concrete blocks)."""

    batch_size: int = Field(200, ge=1, le=5000, description="Entries per delivery task run.")
    delivery_retries: int = Field(
        2, ge=0, le=10, description="Retries of a delivery batch while the CRM is unavailable."
    )
    retry_delay_seconds: float = Field(30.0, ge=0, description="Wait between those retries.")

    @abstractmethod
    def sink(self) -> CrmSink:
        """The object that delivers entries (see `dunning.crm.CrmSink`)."""

    @property
    def label(self) -> str:
        """How messages name this CRM: its type and saved name."""
        return f"{self.get_block_type_name()} '{self._block_document_name or 'unsaved'}'"

    def rate_limit_name(self) -> str | None:
        """Name of the Prefect rate limit for requests to this CRM, if any."""
        return None


class LedgerCrm(CrmBlock):
    """The built-in CRM: tasks, statuses and the history stay in the ledger, where the
    collections desk shows them. The sweep uses it when no other CRM is given.

    Attributes:
        batch_size: Entries per delivery task run.
        delivery_retries: Retries of a delivery batch while the CRM is unavailable.
        retry_delay_seconds: Wait between those retries.

    Examples:
        Save it once:
        ```python
        from blocks import LedgerCrm

        LedgerCrm().save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. for a sweep's `crm` parameter):
        ```python
        from blocks import LedgerCrm

        ledger_crm = LedgerCrm.load("BLOCK_NAME")
        print(ledger_crm.label)
        ```
    """

    _block_type_name = "Ledger CRM"
    _description = "Keep human tasks, statuses and notes in the dunning ledger (the default)."
    _logo_url = DATABASE_LOGO
    _documentation_url = docs_url(_block_type_name)

    @property
    def label(self) -> str:
        """What it is, for the sweep's summary: no CRM beyond the ledger itself."""
        return "the ledger (no external CRM)"

    def sink(self) -> CrmSink:
        """Delivers trivially: the ledger already has everything."""
        return LedgerSink()


class ApiCrm(HttpApiBlock, CrmBlock, ABC):
    """A CRM reached over its HTTP API (an interface: save one of its concrete blocks)."""

    _rate_limit_kind = "crm"

    def sink(self) -> CrmSink:
        """The sink (built once per block instance, so lookups are cached)."""
        return self.client()


class HubSpotCrm(ApiCrm):
    """Log to HubSpot: a note per message sent or reply received, a task per escalation, and
    the customer's status as a property.

    Notes and tasks are attached to the contact with the invoice's email and, when
    `company_id_property` is set, to the company whose property holds our customer id.
    `account_owner` tasks go to that company's (else the contact's) owner; other roles by
    `owner_ids`.

    Attributes:
        access_token: Private app access token (`pat-...`).
        base_url: HubSpot API address.
        company_id_property: Company property holding our customer id (empty: contacts only).
        status_property: Company/contact property set to the customer's status.
        owner_ids: HubSpot owner id per assignee role, e.g. `manager`.
        default_owner_id: Owner of tasks no other rule assigns.
        batch_size, delivery_retries, retry_delay_seconds: As for every CRM (`CrmBlock`).
        timeout_seconds, retries, max_retry_wait_seconds, requests_per_second: As for every
            HTTP API block (`blocks.http.HttpApiBlock`).

    Examples:
        Save the CRM once:
        ```python
        from blocks import HubSpotCrm

        HubSpotCrm(
            access_token="pat-eu1-...", company_id_property="erp_customer_id",
            status_property="dunning_status", owner_ids={"manager": "64492917"},
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. for a sweep's `crm` parameter):
        ```python
        from blocks import HubSpotCrm

        hubspot_crm = HubSpotCrm.load("BLOCK_NAME")
        print(hubspot_crm.label, hubspot_crm.rate_limit_name())
        ```
    """

    _block_type_name = "HubSpot CRM"
    _description = "Notes, tasks and customer status in HubSpot (CRM v3 API)."
    _logo_url = API_LOGO
    _documentation_url = docs_url(_block_type_name)

    access_token: SecretStr = Field(description="Private app access token (pat-...).")
    base_url: str = Field("https://api.hubapi.com", description="HubSpot API address.")
    company_id_property: str = Field(
        "", description="Company property holding our customer id (empty: contacts only)."
    )
    status_property: str = Field(
        "dunning_status", description="Company/contact property set to the customer's status."
    )
    owner_ids: dict[str, str] = Field(
        default_factory=dict, description="HubSpot owner id per assignee role, e.g. manager."
    )
    default_owner_id: str = Field("", description="Owner of tasks no other rule assigns.")
    requests_per_second: float = Field(9.0, ge=0, description="Prefect rate limit (0: none).")

    @property
    def api_root(self) -> str:
        return self.base_url

    def _build(self) -> CrmSink:
        http = self.http(
            {"Authorization": f"Bearer {self.access_token.get_secret_value()}"},
            "check access_token (HubSpot: Settings > Integrations > Private Apps > your app > "
            "Auth) and its scopes",
        )
        return HubSpotSink(
            http,
            company_id_property=self.company_id_property,
            status_property=self.status_property,
            owner_ids=self.owner_ids,
            default_owner_id=self.default_owner_id,
        )


class OdooCrm(ApiCrm):
    """Log to Odoo: an internal note on the invoice's chatter for every action, and an
    activity (`mail.activity`) for every human task, assigned to the invoice's salesperson
    (account owner) or to `manager_user_id` (manager).

    The login is an `OdooCredentials` block, the same one the `OdooInvoiceSource` reads with;
    it may also be given inline (`url=..., api_key=...`), as blocks saved before
    `OdooCredentials` have it.

    Attributes:
        credentials: The Odoo address and login (an `OdooCredentials` block).
        manager_user_id: Odoo user id of the manager.
        default_user_id: User for tasks with no salesperson (empty: the API key's user).
        activity_type_id: Activity type id (empty: Odoo's default, To-Do).
        batch_size, delivery_retries, retry_delay_seconds: As for every CRM (`CrmBlock`).
        timeout_seconds, retries, max_retry_wait_seconds, requests_per_second: As for every
            HTTP API block (`blocks.http.HttpApiBlock`).

    Examples:
        Save the CRM once, with the login the Odoo source uses:
        ```python
        from blocks import OdooCredentials, OdooCrm

        OdooCrm(
            credentials=OdooCredentials(url="https://acme.odoo.com", database="acme",
                                        api_key="3c1f..."),
            manager_user_id=6,
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. for a sweep's `crm` parameter):
        ```python
        from blocks import OdooCrm

        odoo_crm = OdooCrm.load("BLOCK_NAME")
        print(odoo_crm.label, odoo_crm.rate_limit_name())
        ```
    """

    _block_type_name = "Odoo CRM"
    _description = "Chatter notes and activities on the invoice in Odoo."
    _logo_url = API_LOGO
    _documentation_url = docs_url(_block_type_name)

    credentials: OdooCredentials = Field(description="Odoo address and login.")
    manager_user_id: int | None = Field(None, description="Odoo user id of the manager.")
    default_user_id: int | None = Field(
        None, description="User for tasks with no salesperson (empty: the API key's user)."
    )
    activity_type_id: int | None = Field(
        None, description="Activity type id (empty: Odoo's default, To-Do)."
    )

    @model_validator(mode="before")
    @classmethod
    def _inline_login(cls, data: Any) -> Any:
        return OdooCredentials.nest(data)

    @property
    def api_root(self) -> str:
        return self.credentials.url

    def _build(self) -> CrmSink:
        return OdooChatter(
            OdooInvoices(
                self.credentials.get_client(self), base_url=self.credentials.url, source=self.label
            ),
            manager_user_id=self.manager_user_id,
            default_user_id=self.default_user_id,
            activity_type_id=self.activity_type_id,
        )


#: Every concrete CRM type, in the order `resolve_block` looks up a bare saved name.
CRM_TYPES: tuple[type[CrmBlock], ...] = (LedgerCrm, HubSpotCrm, OdooCrm)

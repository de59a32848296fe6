"""CRM blocks: where notes, human tasks and customer statuses are logged.

The act step writes every entry to the ledger's CRM outbox first; the sweep then delivers
the pending entries to the CRM block it was given (`crm` parameter). `LedgerCrm`, the
default, keeps everything in the ledger (the collections desk shows it); `HubSpotCrm` and
`OdooCrm` send it on. A CRM that is down leaves the entries pending for the next run.
Where to find every value: docs/connectors.md.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any, Literal
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr, SecretStr

from blocks.erp import api_client, load_block, odoo_client
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
    """The built-in CRM: tasks, statuses and the history stay in the ledger.

    Example:
        ```python
        from blocks import LedgerCrm

        LedgerCrm().save("default", overwrite=True)
        ```
    """

    _block_type_name = "Ledger CRM"
    _description = "Keep human tasks, statuses and notes in the dunning ledger (the default)."

    def sink(self) -> CrmSink:
        """Delivers trivially: the ledger already has everything."""
        return LedgerSink()


class ApiCrm(CrmBlock, ABC):
    """What the CRMs reached over HTTP share: timeouts, retries, a request rate."""

    timeout_seconds: float = Field(30.0, gt=0, description="Connect and read timeout.")
    retries: int = Field(4, ge=0, le=10, description="Retries on 5xx, 429 and network errors.")
    max_retry_wait_seconds: float = Field(
        60.0, gt=0, description="Longest wait before a retry, whatever Retry-After says."
    )
    requests_per_second: float = Field(
        5.0, ge=0, description="Prefect rate limit for all requests to this CRM (0: none)."
    )

    _sink: Any = PrivateAttr(default=None)
    _sink_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @abstractmethod
    def _build(self) -> CrmSink:
        """The sink for this block's settings."""

    @property
    @abstractmethod
    def api_root(self) -> str:
        """The CRM's root URL."""

    def sink(self) -> CrmSink:
        """The sink (built once per block instance, so lookups are cached)."""
        with self._sink_lock:
            if self._sink is None:
                self._sink = self._build()
            return self._sink

    def rate_limit_name(self) -> str | None:
        """`dunning-crm-<type>-<saved name or host>`."""
        if not self.requests_per_second:
            return None
        who = self._block_document_name or urlsplit(self.api_root).hostname or "default"
        return f"dunning-crm-{self.get_block_type_slug()}-{who}"


class HubSpotCrm(ApiCrm):
    """Log to HubSpot: a note per message sent or reply received, a task per escalation, and
    the customer's status as a property.

    Notes and tasks are attached to the contact with the invoice's email and, when
    `company_id_property` is set, to the company whose property holds our customer id.
    `account_owner` tasks go to that company's (else the contact's) owner; other roles by
    `owner_ids`.

    Example:
        ```python
        from blocks import HubSpotCrm

        HubSpotCrm(
            access_token="pat-eu1-...", company_id_property="erp_customer_id",
            status_property="dunning_status", owner_ids={"manager": "64492917"},
        ).save("hubspot", overwrite=True)
        ```
    """

    _block_type_name = "HubSpot CRM"
    _description = "Notes, tasks and customer status in HubSpot (CRM v3 API)."

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
        http = api_client(
            self,
            self.base_url,
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

    Example:
        ```python
        from blocks import OdooCrm

        OdooCrm(url="https://acme.odoo.com", database="acme", api_key="...",
                manager_user_id=6).save("odoo", overwrite=True)
        ```
    """

    _block_type_name = "Odoo CRM"
    _description = "Chatter notes and activities on the invoice in Odoo."

    url: str = Field(description="Odoo address, e.g. https://acme.odoo.com")
    database: str = Field("", description="Database name (needed for jsonrpc; optional json2).")
    protocol: Literal["json2", "jsonrpc"] = Field("json2", description="json2 or jsonrpc.")
    login: str = Field("", description="User login, for jsonrpc only.")
    api_key: SecretStr = Field(description="API key of the user notes are posted as.")
    manager_user_id: int | None = Field(None, description="Odoo user id of the manager.")
    default_user_id: int | None = Field(
        None, description="User for tasks with no salesperson (empty: the API key's user)."
    )
    activity_type_id: int | None = Field(
        None, description="Activity type id (empty: Odoo's default, To-Do)."
    )

    @property
    def api_root(self) -> str:
        return self.url

    def _build(self) -> CrmSink:
        return OdooChatter(
            OdooInvoices(odoo_client(self), base_url=self.url, source=self.label),
            manager_user_id=self.manager_user_id,
            default_user_id=self.default_user_id,
            activity_type_id=self.activity_type_id,
        )


#: Every concrete CRM type, in the order a bare saved name is looked up.
CRM_TYPES: tuple[type[CrmBlock], ...] = (LedgerCrm, HubSpotCrm, OdooCrm)


def resolve_crm(value: str | CrmBlock | None) -> CrmBlock:
    """The CRM block: given, `<block-type-slug>/<name>`, a bare saved name, or the built-in
    `LedgerCrm` when empty."""
    if value is None or value == "":
        return LedgerCrm()
    return load_block(CRM_TYPES, value, "CRM")

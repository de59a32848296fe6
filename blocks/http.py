"""What every block that talks to a system over HTTP shares: timeouts, retries, a request rate,
and one client object built per block instance.

The invoice sources of `blocks/erp.py` and the CRMs of `blocks/crm.py` derive from
`HttpApiBlock`; the HTTP clients themselves live in `dunning/connectors/`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any, ClassVar
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr

from dunning.connectors.http import HttpClient, RetryPolicy


class HttpApiBlock(Block, ABC):
    """A connection to a system's HTTP API (an interface: the concrete blocks derive from it).

    Attributes:
        timeout_seconds: Connect and read timeout of every request.
        retries: Retries on 5xx, 429 and network errors.
        max_retry_wait_seconds: Longest wait before a retry, whatever Retry-After says.
        requests_per_second: Prefect rate limit shared by every request to this system.
    """

    #: What the Prefect rate limit names the system as: `dunning-<kind>-<type>-<name>`.
    _rate_limit_kind: ClassVar[str] = "api"

    timeout_seconds: float = Field(30.0, gt=0, description="Connect and read timeout.")
    retries: int = Field(4, ge=0, le=10, description="Retries on 5xx, 429 and network errors.")
    max_retry_wait_seconds: float = Field(
        60.0, gt=0, description="Longest wait before a retry, whatever Retry-After says."
    )
    requests_per_second: float = Field(
        5.0, ge=0, description="Prefect rate limit for all requests to this system (0: none)."
    )

    _client: Any = PrivateAttr(default=None)
    _client_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @abstractmethod
    def _build(self) -> Any:
        """The client object of `dunning.connectors` for this block's settings."""

    @property
    @abstractmethod
    def api_root(self) -> str:
        """The system's root URL."""

    def client(self) -> Any:
        """The client (built once per block instance: caches and connections are reused)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._build()
            return self._client

    def http(self, headers: dict[str, str], auth_hint: str, **kw: Any) -> HttpClient:
        """An HTTP client to `api_root` with this block's timeouts and retries, whose errors
        name the block (`label`, from its family: `InvoiceSource` or `CrmBlock`) and say which
        credential to check (`auth_hint`)."""
        return HttpClient(
            self.api_root,
            name=self.label,  # type: ignore[attr-defined]
            headers=headers,
            timeout=self.timeout_seconds,
            retry=RetryPolicy(retries=self.retries, max_wait=self.max_retry_wait_seconds),
            auth_hint=auth_hint,
            **kw,
        )

    def rate_limit_name(self) -> str | None:
        """`dunning-<kind>-<block-type-slug>-<saved name or host>`: one Prefect rate limit per
        system; None when `requests_per_second` is 0."""
        if not self.requests_per_second:
            return None
        who = self._block_document_name or urlsplit(self.api_root).hostname or "default"
        return f"dunning-{self._rate_limit_kind}-{self.get_block_type_slug()}-{who}"

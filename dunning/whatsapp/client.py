"""A small client of the WhatsApp Business Cloud API (Graph API `/{phone-number-id}/messages`).

It sends template and text messages and turns every refusal into an exception by Meta's error
`code` (Meta advises against relying on titles), in the same families as the email side:

- `RateLimited` (130429 throughput, 131056 pair rate, 4, 80007, 131048) and `TemporaryError`
  (131000, 131016, HTTP 5xx, connection refused): retried here with exponential backoff,
  then raised with `permanent=False`, so the send task's retries and the next sweep go on;
- `AuthError` (190 expired token, 0/3/10/200-299 permissions, HTTP 401): fails fast, says
  which block to fix, and every later send of this client fails at once without a call;
- `OutsideWindow` (131047), `InvalidRecipient` (131026), `TemplateRejected` (132xxx,
  131008/131009), `MarketingOptOut` (131050) and `Refused` (everything else): permanent
  for this message; the caller falls back or marks the contact.
- `WhatsAppOutcomeUnknown`: the connection broke after the request was sent; Meta may have
  the message, so it is never resent automatically.

The access token is only ever in the Authorization header: never in an error or a log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from dunning.provider_api import ProviderError, backoff_delay, retry_after_seconds, with_retries
from dunning.smtp import OutcomeUnknown
from dunning.whatsapp.phones import wa_id

RATE_LIMIT_CODES = frozenset({4, 80007, 130429, 131048, 131056})
TEMPORARY_CODES = frozenset({1, 2, 131000, 131016})
OUTSIDE_WINDOW_CODES = frozenset({131047})
INVALID_RECIPIENT_CODES = frozenset({131026})
MARKETING_OPT_OUT_CODES = frozenset({131050})
TEMPLATE_CODES = frozenset({131008, 131009, 132000, 132001, 132005, 132007, 132012, 132015, 132016})
AUTH_CODES = frozenset({0, 3, 10, 190, *range(200, 300)})

#: Called before each backoff: (the error, the attempt that failed, the delay in seconds).
RetryHook = Callable[["WhatsAppError", int, float], None]


class WhatsAppError(ProviderError):
    """The Cloud API did not take the message. `code` is Meta's error code, if it gave one;
    `details` Meta's `error_data.details`."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        permanent: bool = True,
        http_status: int | None = None,
        details: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code,
            permanent=permanent,
            http_status=http_status,
            retry_after=retry_after,
        )
        self.details = details


class RateLimited(WhatsAppError):
    """A rate limit (130429, 131056, ...): try again later; nothing is wrong with the message."""


class TemporaryError(WhatsAppError):
    """Meta or the network failed before taking the message (131000, 131016, 5xx, refused)."""


class AuthError(WhatsAppError):
    """The access token is expired, invalid or lacks permission: a person must fix the block."""


class OutsideWindow(WhatsAppError):
    """131047: free text outside the 24-hour customer-service window; send a template."""


class InvalidRecipient(WhatsAppError):
    """131026: not a WhatsApp number (or it cannot receive): use email and fix the contact."""


class TemplateRejected(WhatsAppError):
    """The template or its parameters were refused (missing, paused, wrong count or format)."""


class MarketingOptOut(WhatsAppError):
    """131050: the customer stopped this business's messages on WhatsApp."""


class Refused(WhatsAppError):
    """Any other refusal for this message (Meta's code and text are in the message)."""


class WhatsAppOutcomeUnknown(OutcomeUnknown):
    """The request was sent and the answer lost: the customer may have the message."""


@dataclass(frozen=True)
class CloudApiSettings:
    """Where and as whom to call the Cloud API. Built from the `WhatsAppCloudChannel` block."""

    phone_number_id: str
    access_token: str = field(repr=False)
    api_version: str = "21.0"
    base_url: str = "https://graph.facebook.com"
    timeout: float = 30.0
    max_attempts: int = 4
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 60.0
    #: Named in an authorisation error, so the person knows what to fix.
    owner: str = "the WhatsAppCloudChannel block"

    @property
    def messages_url(self) -> str:
        version = self.api_version.lstrip("vV")
        return f"{self.base_url.rstrip('/')}/v{version}/{self.phone_number_id}/messages"


@dataclass(frozen=True)
class SentMessage:
    """What the API answered: the message id (`wamid...`) and the recipient's WhatsApp id."""

    message_id: str
    wa_id: str
    response: dict[str, Any]


class WhatsAppClient:
    """Send WhatsApp messages through the Cloud API (thread-safe; one per process and block).

    Example:
        >>> client = WhatsAppClient(CloudApiSettings("1065...", access_token="EAAG..."))
        >>> client.send_template("+34600123456", book.message("due", "es", ctx).payload)
    """

    def __init__(
        self,
        settings: CloudApiSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=settings.timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {settings.access_token}"},
        )
        self._auth_failure: AuthError | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def send_template(
        self,
        to: str,
        template: dict[str, Any],
        *,
        reply_to: str | None = None,
        on_retry: RetryHook | None = None,
    ) -> SentMessage:
        """Send a template message (`template` as built by `TemplateMessage.payload`).

        `on_retry(error, attempt, delay)` is called before each backoff (to record it).
        """
        return self._send(to, "template", template, reply_to, on_retry)

    def send_text(
        self,
        to: str,
        body: str,
        *,
        reply_to: str | None = None,
        on_retry: RetryHook | None = None,
    ) -> SentMessage:
        """Send free text: only allowed inside the 24-hour window (else `OutsideWindow`)."""
        return self._send(to, "text", {"preview_url": False, "body": body}, reply_to, on_retry)

    def _send(
        self,
        to: str,
        kind: str,
        content: dict[str, Any],
        reply_to: str | None,
        on_retry: RetryHook | None,
    ) -> SentMessage:
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": wa_id(to),
            "type": kind,
            kind: content,
        }
        if reply_to:
            body["context"] = {"message_id": reply_to}
        s = self.settings
        return with_retries(
            lambda: self._post(body),
            attempts=s.max_attempts,
            retryable=(RateLimited, TemporaryError),
            delay=lambda attempt, retry_after: backoff_delay(
                attempt, retry_after, backoff=s.backoff_seconds, max_backoff=s.max_backoff_seconds
            ),
            sleep=self._sleep,
            on_retry=on_retry,
        )

    def _post(self, body: dict[str, Any]) -> SentMessage:
        with self._lock:
            failure = self._auth_failure
        if failure is not None:
            raise AuthError(str(failure), code=failure.code, http_status=failure.http_status)
        try:
            response = self._http.post(self.settings.messages_url, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TemporaryError(
                f"WhatsApp Cloud API unreachable at {self.settings.base_url} "
                f"({type(exc).__name__}): not sent",
                permanent=False,
            ) from None
        except httpx.TransportError as exc:
            raise WhatsAppOutcomeUnknown(
                f"connection to the WhatsApp Cloud API lost after sending ({type(exc).__name__}): "
                "the customer may have the message; check before resending"
            ) from None
        if response.is_success:
            return _sent(response)
        error = classify(response, owner=self.settings.owner)
        if isinstance(error, AuthError):
            with self._lock:
                self._auth_failure = error
        raise error


def _sent(response: httpx.Response) -> SentMessage:
    try:
        data = response.json()
        message_id = str(data["messages"][0]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise WhatsAppOutcomeUnknown(
            f"WhatsApp Cloud API answered {response.status_code} without a message id: "
            "the customer may have the message; check before resending"
        ) from None
    contacts = data.get("contacts") or [{}]
    return SentMessage(message_id, str(contacts[0].get("wa_id", "")), data)


def classify(
    response: httpx.Response, *, owner: str = "the WhatsAppCloudChannel block"
) -> WhatsAppError:
    """The exception for a non-2xx Cloud API answer, chosen by Meta's error code."""
    status = response.status_code
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    try:
        code: int | None = int(error["code"])  # some relays send the code as a string
    except (KeyError, TypeError, ValueError):
        code = None
    details = str((error.get("error_data") or {}).get("details") or "")
    text = str(error.get("message") or response.reason_phrase or "error")
    what = f"WhatsApp Cloud API refused the message: {text}" + (
        f" (code {code}{': ' + details if details else ''})"
        if code is not None
        else f" (HTTP {status})"
    )
    common = {"code": code, "http_status": status, "details": details}
    if code in RATE_LIMIT_CODES or (code is None and status == 429):
        return RateLimited(what, permanent=False, retry_after=_retry_after(response), **common)
    if code in TEMPORARY_CODES or (code is None and status >= 500):
        return TemporaryError(what, permanent=False, retry_after=_retry_after(response), **common)
    if code in AUTH_CODES or (code is None and status in (401, 403)):
        return AuthError(
            f"{what}. The access token is expired, invalid or lacks permission: put a valid "
            f"token in the `access_token` field of {owner}",
            **common,
        )
    if code in OUTSIDE_WINDOW_CODES:
        return OutsideWindow(what, **common)
    if code in INVALID_RECIPIENT_CODES:
        return InvalidRecipient(what, **common)
    if code in TEMPLATE_CODES:
        return TemplateRejected(what, **common)
    if code in MARKETING_OPT_OUT_CODES:
        return MarketingOptOut(what, **common)
    return Refused(what, **common)


def _retry_after(response: httpx.Response) -> float | None:
    seconds = retry_after_seconds(response.headers.get("Retry-After"))
    return None if seconds is None else max(0.0, seconds)

"""A small client of Twilio's 2010 REST API: send an SMS (`Messages.json`), place a call
(`Calls.json`), with refusals classified by Twilio's error `code`.

Why httpx and not the official `twilio` package: we use two endpoints and one signature rule;
httpx is the HTTP client of every other channel and connector here, so the same in-process
fake server style, the same timeouts and the same error families apply, and the package
gains no dependency (twilio-python also pulls aiohttp and PyJWT).

The contract (`docs/sms_voice.md`): HTTP Basic auth with an API key (`SK...` + secret) or
the Account SID + Auth Token; the URL always carries the `AC...` Account SID; bodies are
`application/x-www-form-urlencoded`; create answers 201 with the resource as JSON; errors are
`{"code", "message", "more_info", "status"}`. Families, like the WhatsApp client's:

- `RateLimited` (20429, HTTP 429: "never processed, always safe to retry") and
  `TemporaryError` (21611 queue full, HTTP 5xx, connection refused): retried here with
  exponential backoff, then raised with `permanent=False`;
- `AuthError` (20003, HTTP 401/403): fails fast naming the block; later sends fail at once;
- `Unsubscribed` (21610: the recipient replied STOP), `InvalidNumber` (21211 invalid 'To',
  21614 not a mobile number, 21612 route not possible), `Refused` (anything else):
  permanent for this message; the caller records it and falls back.
- `TwilioOutcomeUnknown`: the connection broke after the request was sent; Twilio may have
  the message or be ringing the customer, so it is never repeated automatically.

Credentials are only ever in the Authorization header: never in an error or a log.
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

RATE_LIMIT_CODES = frozenset({20429})
TEMPORARY_CODES = frozenset({21611, 30001, 30003, 30008})
AUTH_CODES = frozenset({20003})
UNSUBSCRIBED_CODES = frozenset({21610})
#: Numbers that cannot get this kind of message (21614: a landline; a call may still work).
INVALID_NUMBER_CODES = frozenset({21211, 21612, 21614})
#: Delivery failures (status callbacks) that mean the number will not get SMS.
UNDELIVERABLE_CODES = frozenset({30005, 30006})

#: Called before each backoff: (the error, the attempt that failed, the delay in seconds).
RetryHook = Callable[["TwilioError", int, float], None]


class TwilioError(ProviderError):
    """Twilio did not take the request. `code` is Twilio's error code, if it gave one."""


class RateLimited(TwilioError):
    """20429 / HTTP 429: too many requests; nothing was processed."""


class TemporaryError(TwilioError):
    """Twilio or the network failed before taking the request (5xx, refused, 21611)."""


class AuthError(TwilioError):
    """Wrong Account SID, API key or token, or a suspended account: fix the block."""


class Unsubscribed(TwilioError):
    """21610: the recipient replied STOP to this sender; blocked until they send START."""


class InvalidNumber(TwilioError):
    """21211 / 21612 / 21614: the number cannot get this message (invalid, landline)."""


class Refused(TwilioError):
    """Any other refusal for this message (Twilio's code and text are in the message)."""


class TwilioOutcomeUnknown(OutcomeUnknown):
    """The request was sent and the answer lost: the message or call may exist."""


@dataclass(frozen=True)
class TwilioSettings:
    """Where and as whom to call the API. Built from the `TwilioCredentials` block.

    `username`/`password` are an API key SID and secret (Twilio's recommendation) or the
    Account SID and Auth Token; `account_sid` is always the `AC...` SID in the URL.
    """

    account_sid: str
    username: str
    password: str = field(repr=False)
    base_url: str = "https://api.twilio.com"
    timeout: float = 30.0
    max_attempts: int = 4
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    #: Named in an authorisation error, so the person knows what to fix.
    owner: str = "the TwilioCredentials block"

    def url(self, resource: str) -> str:
        """`…/2010-04-01/Accounts/{AccountSid}/{resource}.json`."""
        root = self.base_url.rstrip("/")
        return f"{root}/2010-04-01/Accounts/{self.account_sid}/{resource}.json"


@dataclass(frozen=True)
class Created:
    """What Twilio answered to a create: the resource's `sid` (SM…/CA…), status and body."""

    sid: str
    status: str
    response: dict[str, Any]


class TwilioClient:
    """Send SMS and place calls through Twilio's REST API (thread-safe; one per block).

    Example:
        >>> client = TwilioClient(TwilioSettings("AC…", username="SK…", password="…"))
        >>> client.send_sms(to="+34600123456", body="…", sender={"From": "+34910000000"})
    """

    def __init__(
        self,
        settings: TwilioSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=settings.timeout,
            transport=transport,
            auth=(settings.username, settings.password),
            headers={"Accept": "application/json", "Accept-Charset": "utf-8"},
        )
        self._auth_failure: AuthError | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def send_sms(
        self,
        *,
        to: str,
        body: str,
        sender: dict[str, str],
        status_callback: str = "",
        on_retry: RetryHook | None = None,
    ) -> Created:
        """Create a Message. `sender` is `{"From": "+…"}` or `{"MessagingServiceSid": "MG…"}`."""
        form = {"To": to, "Body": body, **sender}
        if status_callback:
            form["StatusCallback"] = status_callback
        return self._create("Messages", form, on_retry)

    def create_call(
        self,
        *,
        to: str,
        caller: str,
        twiml: str,
        status_callback: str = "",
        machine_detection: str = "",
        ring_seconds: int = 30,
        on_retry: RetryHook | None = None,
        url: str = "",
    ) -> Created:
        """Create a Call that speaks `twiml` (≤ 4000 characters), or, with `url`, the TwiML
        Twilio fetches from there once the call is answered (with `AnsweredBy` when machine
        detection is on); the final status goes to `status_callback` (one request per
        event: initiated, ringing, answered, completed)."""
        form: dict[str, Any] = {"To": to, "From": caller, "Timeout": str(ring_seconds)}
        if url:
            form["Url"] = url
        else:
            if len(twiml) > 4000:
                raise Refused(f"the call's TwiML is {len(twiml)} characters; Twilio allows 4000")
            form["Twiml"] = twiml
        if status_callback:
            form["StatusCallback"] = status_callback
            form["StatusCallbackEvent"] = ["answered", "completed"]
        if machine_detection:
            form["MachineDetection"] = machine_detection
        return self._create("Calls", form, on_retry)

    def _create(self, resource: str, form: dict[str, Any], on_retry: RetryHook | None) -> Created:
        s = self.settings
        return with_retries(
            lambda: self._post(resource, form),
            attempts=s.max_attempts,
            retryable=(RateLimited, TemporaryError),
            delay=lambda attempt, retry_after: backoff_delay(
                attempt, retry_after, backoff=s.backoff_seconds, max_backoff=s.max_backoff_seconds
            ),
            sleep=self._sleep,
            on_retry=on_retry,
        )

    def _post(self, resource: str, form: dict[str, Any]) -> Created:
        with self._lock:
            failure = self._auth_failure
        if failure is not None:
            raise AuthError(str(failure), code=failure.code, http_status=failure.http_status)
        try:
            response = self._http.post(self.settings.url(resource), data=form)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TemporaryError(
                f"Twilio API unreachable at {self.settings.base_url} ({type(exc).__name__}): "
                "not sent",
                permanent=False,
            ) from None
        except httpx.TransportError as exc:
            raise TwilioOutcomeUnknown(
                f"connection to Twilio lost after sending ({type(exc).__name__}): the message "
                "or call may exist; check the Twilio console before repeating it"
            ) from None
        if response.is_success:
            return _created(response)
        error = classify(response, owner=self.settings.owner)
        if isinstance(error, AuthError):
            with self._lock:
                self._auth_failure = error
        raise error


def _created(response: httpx.Response) -> Created:
    try:
        data = response.json()
        sid = str(data["sid"])
    except (ValueError, KeyError, TypeError):
        raise TwilioOutcomeUnknown(
            f"Twilio answered {response.status_code} without a sid: the message or call may "
            "exist; check the Twilio console before repeating it"
        ) from None
    return Created(sid, str(data.get("status") or ""), data)


def classify(
    response: httpx.Response, *, owner: str = "the TwilioCredentials block"
) -> TwilioError:
    """The exception for a non-2xx answer, chosen by Twilio's `code` (else the HTTP status).

    Twilio warns that codes' causes change over time: an unknown code on a 5xx is temporary,
    any other unknown code a permanent refusal of this one message (never of the channel).
    """
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    try:
        code: int | None = int(body["code"])
    except (KeyError, TypeError, ValueError):
        code = None
    text = str(body.get("message") or response.reason_phrase or "error")
    what = f"Twilio refused the request: {text}" + (
        f" (code {code})" if code is not None else f" (HTTP {status})"
    )
    common = {"code": code, "http_status": status}
    if code in RATE_LIMIT_CODES or status == 429:
        return RateLimited(what, permanent=False, retry_after=_retry_after(response), **common)
    if code in TEMPORARY_CODES or status >= 500:
        return TemporaryError(what, permanent=False, retry_after=_retry_after(response), **common)
    if code in AUTH_CODES or status in (401, 403):
        return AuthError(
            f"{what}. The account SID, API key or token is wrong or the account is suspended: "
            f"fix {owner}",
            **common,
        )
    if code in UNSUBSCRIBED_CODES:
        return Unsubscribed(what, **common)
    if code in INVALID_NUMBER_CODES:
        return InvalidNumber(what, **common)
    return Refused(what, **common)


def _retry_after(response: httpx.Response) -> float | None:
    seconds = retry_after_seconds(response.headers.get("Retry-After"))
    return None if seconds is None else max(0.0, seconds)

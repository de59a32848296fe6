"""One HTTP client for every connector: timeouts, retries with backoff, clear errors.

- 5xx answers, 429 (and any answer the connector calls "rate limited") and network errors
  are retried with exponential backoff; a `Retry-After` header (seconds or an HTTP date) is
  honoured, capped at `RetryPolicy.max_wait` so a misbehaving server cannot stall a sweep.
- 401/403 raise `AuthError` naming the block and what to check; other 4xx raise
  `ConnectorError` at once (a retry cannot fix them).
- Errors never carry credentials: only the method, the path (no query string) and the
  server's own error message.
- A throttle set with `throttled()` (the Prefect rate limit of the source, set by the task)
  is called before every request, in this thread only.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from dunning.importers import SourceError
from dunning.provider_api import retry_after_seconds

_THROTTLE: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "dunning_http_throttle", default=None
)


#: A full read answers "which id has this number?" for this long before it is read again.
REFRESH_SECONDS = 60.0


def stale(read_at: float | None) -> bool:
    """True when a full read is older than REFRESH_SECONDS (or there was none)."""
    return read_at is None or time.monotonic() - read_at > REFRESH_SECONDS


class ConnectorError(SourceError):
    """A remote system answered with an error a retry cannot fix; the message says what to do."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(ConnectorError):
    """The system refused the block's credentials (401) or their rights (403)."""


class Unavailable(ConnectorError):
    """The system could not be reached or kept failing after every retry (temporary)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before giving up on a request.

    `retries` extra attempts after the first; waits of `backoff`, 2x, 4x ... seconds (plus up
    to 10 % jitter), or the server's `Retry-After`, never longer than `max_wait`.
    """

    retries: int = 4
    backoff: float = 0.5
    max_wait: float = 30.0

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_wait)
        base = self.backoff * 2 ** (attempt - 1)
        return min(base * (1 + random.random() / 10), self.max_wait)


@contextlib.contextmanager
def throttled(throttle: Callable[[], None] | None) -> Iterator[None]:
    """Call `throttle()` before every request made in this block of code (this thread).

    Example:
        >>> with throttled(lambda: rate_limit("erp-odoo-prod", strict=True)):
        ...     source.read()
    """
    token = _THROTTLE.set(throttle)
    try:
        yield
    finally:
        _THROTTLE.reset(token)


class HttpClient:
    """A JSON-over-HTTP client for one remote system, used by one block.

    Args:
        base_url: the system's root URL; request paths are relative to it.
        name: how errors name the configuration, e.g. "Odoo Invoice Source 'prod'".
        headers: sent with every request (credentials go here, never in URLs).
        timeout: seconds for connecting and for each read.
        retry: when and how long to retry.
        sleep: the sleep function (tests pass one that records instead of sleeping).
        auth_hint: appended to authentication errors: which field to check, where to find it.
        is_rate_limited: extra test for a rate-limit answer that is not a 429 (Stripe's old
            400 with code `rate_limit`).
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        auth_hint: str = "",
        is_rate_limited: Callable[[httpx.Response], bool] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.auth_hint = auth_hint
        self.is_rate_limited = is_rate_limited
        self.requests = 0
        self.waited = 0.0
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Accept": "application/json", **(headers or {})},
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=True,
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request, retrying what a retry can fix; the successful response.

        Raises:
            AuthError: 401 or 403.
            ConnectorError: any other 4xx (what the server said is in the message).
            Unavailable: network errors, 5xx or 429 after every retry.
        """
        attempt = 0
        while True:
            throttle = _THROTTLE.get()
            if throttle is not None:
                throttle()
            self.requests += 1
            where = f"{method} {httpx.URL(url).path or url}"
            try:
                response = self._client.request(
                    method, url, params=params, json=json, headers=headers
                )
            except httpx.TransportError as exc:
                problem, retry_after = f"{type(exc).__name__}: {exc}", None
            else:
                if response.is_success:
                    return response
                status = response.status_code
                if status in (401, 403):
                    raise AuthError(
                        f"{self.name}: {where} was refused ({status} {_server_message(response)})"
                        f"; {self.auth_hint or 'check the credentials saved in the block'}",
                        status=status,
                    )
                limited = status == 429 or (
                    self.is_rate_limited is not None and self.is_rate_limited(response)
                )
                if not (limited or status >= 500):
                    raise ConnectorError(
                        f"{self.name}: {where} answered {status}: {_server_message(response)}",
                        status=status,
                    )
                problem = f"{status} {_server_message(response)}"
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            attempt += 1
            if attempt > self.retry.retries:
                raise Unavailable(
                    f"{self.name}: {where} still failing after {attempt} attempts ({problem}); "
                    "the system may be down or rate limiting us, the next run tries again"
                )
            wait = self.retry.wait(attempt, retry_after)
            self.waited += wait
            self.sleep(wait)

    def download(self, url: str, *, max_bytes: int, content_types: Collection[str]) -> bytes:
        """GET a document from this client's own host (scheme, host and port of `base_url`;
        redirects are not followed), refusing it when it is not one of `content_types`, is
        larger than `max_bytes` or takes longer than the client's timeout in all.

        Not retried: a document that cannot be fetched goes out as a link or not at all.
        Raises `ConnectorError` saying which limit was hit.
        """
        base, target = self._client.base_url, self._client.build_request("GET", url).url
        where = f"GET {target.path}"
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            raise ConnectorError(
                f"{self.name}: {target.host or url!r} is not the API's host {base.host}: "
                "documents are only downloaded from the API itself"
            )
        throttle = _THROTTLE.get()
        if throttle is not None:
            throttle()
        self.requests += 1
        deadline = time.monotonic() + self._client.timeout.read
        headers = {"Accept": ", ".join(content_types)}
        try:
            with self._client.stream("GET", url, headers=headers, follow_redirects=False) as got:
                kind = got.headers.get("content-type", "").split(";")[0].strip().lower()
                declared = int(got.headers.get("content-length") or 0)
                if got.status_code != 200:
                    problem = f"answered {got.status_code}"
                elif kind not in content_types:
                    problem = f"is {kind or 'untyped'}, not {' or '.join(sorted(content_types))}"
                elif declared > max_bytes:
                    problem = f"is {declared:,} bytes, over the {max_bytes:,} limit"
                else:
                    body = bytearray()
                    for chunk in got.iter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            problem = f"is over the {max_bytes:,} bytes limit"
                            break
                        if time.monotonic() > deadline:
                            problem = f"took over {self._client.timeout.read:g} s"
                            break
                    else:
                        return bytes(body)
        except httpx.HTTPError as exc:
            problem = f"failed ({type(exc).__name__})"
        raise ConnectorError(f"{self.name}: {where} {problem}: document not downloaded")

    def get_json(self, url: str, *, params: Any = None) -> Any:
        """GET and decode the JSON body."""
        return _decode(self.request("GET", url, params=params), self.name)

    def post_json(self, url: str, payload: Any, *, params: Any = None) -> Any:
        """POST a JSON body and decode the JSON answer."""
        return _decode(self.request("POST", url, json=payload, params=params), self.name)

    def patch_json(self, url: str, payload: Any) -> Any:
        """PATCH a JSON body and decode the JSON answer."""
        return _decode(self.request("PATCH", url, json=payload), self.name)


def _decode(response: httpx.Response, name: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ConnectorError(
            f"{name}: {response.request.method} {response.request.url.path} answered "
            f"{response.status_code} with a body that is not JSON ({response.text[:80]!r}); "
            "check the block's URL points at the API, not a web page"
        ) from exc


def _server_message(response: httpx.Response) -> str:
    """The server's own short explanation of an error, from the usual JSON error shapes."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or response.text[:120]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error.get("type") or error)[:300]
        for key in ("message", "error", "detail", "info"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:200]

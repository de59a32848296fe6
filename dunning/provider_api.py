"""What the messaging providers' HTTP clients share (WhatsApp Cloud API, Twilio).

Each provider classifies its own error codes; the shape of a refusal, the backoff before a
retry, reading `Retry-After` and the retry loop itself are the same for all of them.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from dunning.smtp import NotSent

T = TypeVar("T")


class ProviderError(NotSent):
    """A provider did not take the request. `code` is the provider's error code, if any."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        permanent: bool = True,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, permanent=permanent)
        self.code = code
        self.http_status = http_status
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def backoff_delay(
    attempt: int, retry_after: float | None, *, backoff: float, max_backoff: float
) -> float:
    """Seconds before retry number `attempt` (1-based): `backoff` doubling, at least the
    server's `Retry-After`, never more than `max_backoff`."""
    delay = backoff * 2 ** (attempt - 1)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, max_backoff)


def with_retries(
    call: Callable[[], T],
    *,
    attempts: int,
    retryable: tuple[type[ProviderError], ...],
    delay: Callable[[int, float | None], float],
    sleep: Callable[[float], None],
    on_retry: Callable[[ProviderError, int, float], None] | None = None,
) -> T:
    """`call()`, retried up to `attempts` times in all while it raises a `retryable` error;
    `on_retry(error, attempt, delay)` is told before each wait (to record it)."""
    attempts = max(1, attempts)
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except retryable as exc:
            if attempt == attempts:
                raise
            wait = delay(attempt, exc.retry_after)
            if on_retry is not None:
                on_retry(exc, attempt, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover

"""Helpers for the connector tests: an HTTP client whose waits are recorded, not slept."""

from __future__ import annotations

import pytest

from dunning.connectors.http import HttpClient, RetryPolicy


class Waits(list):
    """The `sleep` of a client under test: records each wait instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def make_client(waits: Waits):
    """`make_client(base_url, headers=..., retries=..., max_wait=...)` for one fake API."""
    clients: list[HttpClient] = []

    def make(
        base_url: str,
        *,
        headers=None,
        retries: int = 4,
        max_wait: float = 30.0,
        name: str = "Test Source 'prod'",
        auth_hint: str = "",
        **kw,
    ) -> HttpClient:
        client = HttpClient(
            base_url,
            name=name,
            headers=headers,
            timeout=5,
            retry=RetryPolicy(retries=retries, backoff=0.25, max_wait=max_wait),
            sleep=waits,
            auth_hint=auth_hint,
            **kw,
        )
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()

"""Shared pytest fixtures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

# -- core: the machine's PostgreSQL (ledger tests) -------------------------------------------
# A fresh, uniquely named database per test, dropped afterwards. PostgreSQL is part of the
# supported set-up, so when it is unreachable the test fails (it is never skipped).

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """`postgresql+psycopg://postgres@127.0.0.1:5432/<fresh database>`."""
    name = f"dunning_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is unreachable at 127.0.0.1:5432 as user postgres ({exc}); "
            "start the service (e.g. `service postgresql start`) - these tests need it",
            pytrace=False,
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            # FORCE closes the connections the ledger's pooled engine still holds.
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- flows: a real Prefect server ---------------------------------------------------------------


@pytest.fixture(scope="session")
def prefect_api():
    """A real Prefect server for the whole session (~15 s to start; minutes when loaded).

    Its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from deployments.server import SERVER_SETTINGS

    # The harness's server is a subprocess that inherits this environment: it runs with
    # the settings we tell users to run theirs with.
    with pytest.MonkeyPatch.context() as env:
        for name, value in SERVER_SETTINGS.items():
            env.setenv(name, value)
        with prefect_test_harness(server_startup_timeout=240):
            yield PREFECT_API_URL.value()


# -- replies: a real IMAP server -----------------------------------------------------------------


@pytest.fixture(scope="session")
def imap_server():
    """Debian's dovecot on loopback (plain IMAP and IMAPS) for the whole session."""
    from tests.imapserver import start_dovecot

    server = start_dovecot()
    yield server
    server.stop()

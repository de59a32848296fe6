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


# -- parallel runs: the longest tests first, one per worker ---------------------------------------
# `make test` runs pytest-xdist with `--dist worksteal`, which hands each worker a contiguous
# slice of the collection and lets an idle worker take the tail of a busy one's queue. A test
# that takes minutes and sits late in its slice finishes last, minutes after every other worker
# is idle. These took 50 s to 5 min each (`--durations`, -n 4 on the shared 2-core machine):
# they go to the head of the slices, dealt round-robin, so each starts at once on its own
# worker. A renamed test only loses its place; it still runs.
LONGEST = (
    "tests/faults/test_sigkill.py::test_killed_twenty_times_then_each_due_reminder_once_or_reported",
    "tests/test_demo.py::test_demo_oneshot_exits_zero_and_fills_the_outbox",
    "tests/test_shards.py::test_two_process_workers_share_a_sharded_sweep",
    "tests/test_demo_lifecycle.py::test_sigterm_stops_every_process_and_frees_every_port",
    "tests/test_shards.py::test_two_shard_workers_send_what_one_worker_sends_each_once",
    "tests/test_bounded_runs.py::test_killed_mid_batch_ten_times_nothing_lost_nothing_twice_in_doubt_reported",
    "tests/test_flows.py::test_three_concurrent_sweeps_send_each_message_once",
    "tests/test_deployments.py::test_served_deployments_are_what_prefect_deploy_makes_of_prefect_yaml",
    "tests/faults/test_ledger_faults.py::test_two_sweeps_and_per_invoice_runs_at_once_on_postgres_send_each_once",
    "tests/test_risk.py::test_scoring_newer_invoices_alone_with_the_older_file_as_history",
    "tests/test_risk.py::test_sap_time_split_meets_the_targets",
    "tests/test_risk.py::test_sap_sample_round_trip_rows_match_the_file",
    "tests/test_spreadsheets.py::test_sweep_sends_from_a_spanish_ods_through_the_mapping_file",
    "tests/test_demo_lifecycle.py::test_a_signal_while_starting_stops_what_was_started",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workers = getattr(config, "workerinput", {}).get("workercount")
    if not workers or workers < 2:
        return  # one process: the order does not change the wall time
    rank = {name: i for i, name in enumerate(LONGEST)}
    longest = sorted(
        (item for item in items if item.nodeid.split("[")[0] in rank),
        key=lambda item: rank[item.nodeid.split("[")[0]],
    )
    rest = [item for item in items if item.nodeid.split("[")[0] not in rank]
    # The slices worksteal cuts: each worker in turn gets len(pending) // workers_left.
    sizes, left = [], len(items)
    for k in range(workers, 0, -1):
        sizes.append(left // k)
        left -= sizes[-1]
    heads: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for i, item in enumerate(longest):
        heads[i % workers].append(item)
    ordered: list[pytest.Item] = []
    for head, size in zip(heads, sizes, strict=True):
        take = max(0, size - len(head))
        ordered += head + rest[:take]
        del rest[:take]
    items[:] = ordered + rest

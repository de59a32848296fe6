"""The Prefect server settings dunning runs with, and `make server` to start one.

Prefect's task-run recorder writes each task-run event in its own transaction by default
(`batch_size` 1). A sweep runs one task run per reminder, three events each, so at tens
of reminders a second the server spent ~60 ms of CPU per task run on our 2-core machine
and fell a minute behind (on PostgreSQL its in-memory event queue overflowed and the UI
under-counted task runs). Batching the recorder's writes cut that to ~15 ms; on Prefect
3.9.1, whose recorder has the same defaults, from ~51 ms to ~10 ms (BENCHMARKS.md, "Prefect
server settings"); the UI shows a task run within seconds instead of a minute.

Run `make server` (or `python -m deployments.server`), or set these variables wherever
you start `prefect server start`.
"""

from __future__ import annotations

import os
import sys

#: Environment of a Prefect server that keeps up with a sweep's task runs.
SERVER_SETTINGS: dict[str, str] = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


def server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with `SERVER_SETTINGS`, unless the
    caller already set one of them."""
    return SERVER_SETTINGS | dict(os.environ if base is None else base)


def main() -> None:
    """`prefect server start` with `SERVER_SETTINGS`; other arguments are passed on."""
    args = [sys.executable, "-m", "prefect", "server", "start", *sys.argv[1:]]
    os.execve(sys.executable, args, server_env())


if __name__ == "__main__":
    main()

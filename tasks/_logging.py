"""The logger of our tasks, inside a Prefect run or outside one.

Prefect's `get_run_logger()` raises `MissingContextError` when no flow or task run is active,
which is exactly the case of `some_task.fn(...)`, Prefect's recommended way to unit-test a
task or call it from a notebook. Every task logs through `task_logger()` instead, so it runs
the same both ways.
"""

from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

#: Where the tasks log when no Prefect run is active (plain Python logging).
FALLBACK_LOGGER = "dunning.tasks"


def task_logger() -> logging.Logger | logging.LoggerAdapter:
    """The run's logger (shown in the Prefect UI) inside a flow or task run; outside one,
    the standard logger `dunning.tasks`.

    Example:
        ```python
        from tasks._logging import task_logger

        task_logger().info("read %d invoices", 12)  # works in a task, a flow or a notebook
        ```
    """
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(FALLBACK_LOGGER)

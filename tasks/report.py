"""Publish the sweep's report as Prefect artifacts, and count what the sweep costs Prefect."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.settings import get_current_settings

from dunning.summary import SweepSummary, table_chunks, to_markdown

#: Rows per table artifact: a table the UI still shows at once.
MAX_TABLE_ROWS = 2000
#: Bytes of rows per table artifact, well under the 5 MiB Prefect accepts in one request.
MAX_TABLE_BYTES = 4 * 1024 * 1024
#: Events of the flow run's own states (Pending, Running, Completed).
FLOW_RUN_EVENTS = 3
#: Prefect's shortest interval between two flow-run heartbeat events.
MIN_HEARTBEAT_SECONDS = 30
#: Events of one task run: Pending, Running, then Completed or Failed.
TASK_RUN_EVENTS = 3
#: Events of one retry: AwaitingRetry, then Retrying.
RETRY_EVENTS = 2
#: Events of creating an artifact: its own, and with a key its collection's (the history
#: the Artifacts page shows).
ARTIFACT_EVENTS, KEYED_ARTIFACT_EVENTS = 1, 2
#: The progress artifact moves in steps of this many percent (each step is one event).
PROGRESS_STEP = 5.0


@dataclass
class EventTally:
    """The Prefect events a sweep emits, counted as it makes them (Prefect Cloud meters
    events per minute; the summary artifact shows the total).

    Logs are not events (Prefect Cloud meters them apart); the task runs of the sweep's
    actions log only warnings (`flows.sweep`).
    """

    task_runs: int = 0
    retries: int = 0
    artifact_events: int = 0
    artifact_updates: int = 0
    started: float = field(default_factory=time.monotonic)

    def artifact(self, *, keyed: bool) -> None:
        """One more artifact created (`keyed`: with a key)."""
        self.artifact_events += KEYED_ARTIFACT_EVENTS if keyed else ARTIFACT_EVENTS

    def heartbeats(self) -> int:
        """The flow run's heartbeat events so far (one at start, then one per interval)."""
        every = get_current_settings().flows.heartbeat_frequency
        if every is None:
            return 0
        return 1 + int((time.monotonic() - self.started) // max(every, MIN_HEARTBEAT_SECONDS))

    def total(self) -> int:
        """Flow run states and heartbeats, task run states and retries, artifacts created
        and updated."""
        return (
            FLOW_RUN_EVENTS
            + self.heartbeats()
            + TASK_RUN_EVENTS * self.task_runs
            + RETRY_EVENTS * self.retries
            + self.artifact_events
            + self.artifact_updates
        )


class SweepProgress:
    """The sweep's progress artifact (`dunning-sweep-progress`): created at 0 % when the
    actions start, moved as they finish, in steps of `PROGRESS_STEP` percent so a sweep of
    10,000 actions updates it about 20 times, not 10,000."""

    def __init__(self, total: int, tally: EventTally) -> None:
        self.total, self.done, self._tally = total, 0, tally
        self._shown = 0.0
        self._id = create_progress_artifact(
            progress=0.0,
            key="dunning-sweep-progress",
            description=f"Actions of this sweep done, of {total:,}",
        )
        tally.artifact(keyed=True)

    def advance(self, n: int) -> None:
        """`n` more actions are done (sent, task, skipped or failed for good)."""
        self.done += n
        percent = 100.0 * self.done / self.total if self.total else 100.0
        step = math.floor(percent / PROGRESS_STEP) * PROGRESS_STEP
        if step > self._shown or (self.done >= self.total and self._shown < 100.0):
            self._shown = 100.0 if self.done >= self.total else step
            update_progress_artifact(self._id, progress=self._shown)
            self._tally.artifact_updates += 1


@task(name="publish-summary", cache_policy=NO_CACHE)
def publish_summary(
    summary: SweepSummary,
    tally: EventTally | None = None,
    max_table_rows: int | None = None,
) -> None:
    """Markdown summary (sent, skipped by reason, failed, quarantined, Prefect events) and
    the outcome of every action, in as many table artifacts as it takes.

    All appear in the flow run's Artifacts tab; the keyed ones (`dunning-sweep-summary`, and
    `dunning-sweep-actions`: the first table) also keep a history across runs in the
    Artifacts page. With `tally`, the summary shows the events the sweep emitted, this
    task's own included. `max_table_rows`: rows per table (`MAX_TABLE_ROWS` if empty).
    """
    rows = [
        {k: a[k] for k in ("invoice", "stage", "channel", "status", "reason", "recipient")}
        for a in summary.actions
    ]
    max_rows = max_table_rows or MAX_TABLE_ROWS
    chunks = table_chunks(rows, max_rows=max_rows, max_bytes=MAX_TABLE_BYTES)
    if tally is not None:
        tally.task_runs += 1  # this task
        tally.artifact(keyed=True)  # the summary
        for part in range(1, len(chunks) + 1):
            tally.artifact(keyed=part == 1)
        summary.prefect_events = tally.total()
    create_markdown_artifact(
        key="dunning-sweep-summary",
        markdown=to_markdown(summary),
        description="Dunning sweep: sent, skipped with reason, failed, quarantined rows",
    )
    first = 1
    for part, chunk in enumerate(chunks, start=1):
        last = first + len(chunk) - 1
        create_table_artifact(
            key="dunning-sweep-actions" if part == 1 else None,
            table=chunk,
            description=(
                f"Actions of this sweep, {first:,}–{last:,} of {len(rows):,}"
                + (f" (table {part} of {len(chunks)})" if len(chunks) > 1 else "")
            ),
        )
        first = last + 1

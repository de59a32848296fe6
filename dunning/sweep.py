"""One sweep without Prefect: fetch -> sync the ledger -> plan -> act on each action -> summary.

`run_sweep` holds the order of the steps and what each hands to the next; the caller
supplies the steps. The `dunning-sweep` flow (`flows/sweep.py`) supplies its Prefect tasks
(one task run per step, one `send-reminder` run per action); the fault tests supply plain
functions, with `act_in_threads` standing in for the task runner and the task's retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pandas as pd

from dunning.action import Outcome, PlannedAction
from dunning.batches import Batch, BatchProgress, act_on_batch, batch_actions
from dunning.importers import ImportResult, release_freed_memory
from dunning.ledger import SyncReport
from dunning.plan import deferred, due_now, planned_actions
from dunning.smtp import DEFAULT_POOL_SIZE, NotSent
from dunning.summary import SweepSummary, summarize

#: Actions carried out at once. Each holds at most one connection of the email channel's
#: pool while it sends, so more threads than the pool's default size would only wait.
SEND_WORKERS = DEFAULT_POOL_SIZE

_log = logging.getLogger(__name__)


def run_sweep(
    *,
    fetch: Callable[[], ImportResult],
    sync: Callable[[pd.DataFrame], SyncReport | None],
    plan: Callable[[pd.DataFrame], pd.DataFrame],
    act: Callable[[list[PlannedAction]], list[Outcome]],
    now: datetime,
    log: logging.Logger | logging.LoggerAdapter = _log,
) -> SweepSummary:
    """Run one sweep through the given steps and summarize it.

    Args:
        fetch: the invoices to sweep, and the rows quarantined on the way.
        sync: records the invoices in the ledger (what changed at the source).
        plan: the plan of the invoices (`dunning.plan.plan` for the ledger's state).
        act: carries out the actions due now; one outcome per action, in order (an action
            that raised is a `Outcome.failed`, the others go on).
        now: the moment of the sweep: actions whose `send_at` is later wait (`deferred`).
        log: where the sweep says how many actions are due and waiting.

    Returns:
        The summary: sent, human tasks, failed, deferred, skipped by reason, quarantined.
    """
    loaded = fetch()
    report = sync(loaded.invoices)
    planned = plan(loaded.invoices)
    quarantine = loaded.quarantine
    todo, waiting = due_now(planned, now), deferred(planned, now)
    log.info("%d actions due now, %d waiting for their window", len(todo), len(waiting))
    actions = planned_actions(todo)
    # The summary needs only the plan's skip reasons: the invoice and plan frames (~770 MB
    # at 1M invoices) are let go before the act step, which is the long one.
    skips = planned[["skip_reason"]]
    del loaded, planned, todo
    release_freed_memory()
    outcomes = act(actions)
    return summarize(skips, waiting, outcomes, quarantine, report, now)


def act_in_threads(
    actions: Sequence[PlannedAction],
    act_one: Callable[[PlannedAction], Outcome],
    *,
    workers: int = SEND_WORKERS,
    retry_delays: Sequence[float] = (),
) -> list[Outcome]:
    """Carry out the actions in `workers` threads, as the flow's task runner does.

    A temporary `NotSent` (the mail server did not take the message now) is tried again
    after each of `retry_delays` seconds, like the `send-reminder` task's retries; a
    permanent one, the last temporary one, or any other error is the action's
    `Outcome.failed`, and the other actions go on.
    """

    def attempt(action: PlannedAction) -> Outcome:
        for delay in [*retry_delays, None]:
            try:
                return act_one(action)
            except NotSent as exc:
                if exc.permanent or delay is None:
                    return Outcome.failed(action, exc)
                time.sleep(delay)
            except Exception as exc:  # this action failed: record it, the rest go on
                return Outcome.failed(action, exc)
        raise AssertionError("unreachable: the last delay is None")

    with ThreadPoolExecutor(max_workers=workers) as threads:
        return list(threads.map(attempt, actions))


def act_in_batches(
    actions: Sequence[PlannedAction],
    act_one: Callable[..., Outcome],
    *,
    max_task_runs: int,
    prepare: Callable[[Sequence[PlannedAction]], Sequence[Any]] | None = None,
    workers: int = SEND_WORKERS,
    retry_delays: Sequence[float] = (),
) -> list[Outcome]:
    """Carry out the actions in batches of whole customers, `workers` batches at a time,
    as the flow does beyond `max_task_runs` actions (`dunning.batches`): each batch
    prepared together (`prepare`), and retried after each of `retry_delays` seconds for
    only its temporary failures, like the `send-batch` task's retries."""
    batches = batch_actions(actions, max_task_runs)

    def run(batch: Batch) -> list[Outcome]:
        progress = BatchProgress(len(batch.actions))
        for delay in [*retry_delays, None]:
            try:
                return act_on_batch(batch, act_one, progress, prepare=prepare)
            except NotSent:
                if delay is None:
                    break
                time.sleep(delay)
            except Exception as exc:  # the batch's set-up failed: every action with it
                return progress.outcomes(batch, exc)
        return progress.outcomes(batch)

    outcomes: list[Outcome] = [Outcome.failed(a, "not attempted") for a in actions]
    with ThreadPoolExecutor(max_workers=workers) as threads:
        for batch, done in zip(batches, threads.map(run, batches), strict=True):
            for position, outcome in zip(batch.positions, done, strict=True):
                outcomes[position] = outcome
    return outcomes

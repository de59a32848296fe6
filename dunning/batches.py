"""Group a sweep's actions into a bounded number of batches, and carry one batch out.

Prefect shows one task run per batch. A person can read a few hundred task runs per flow
run, and every task run costs ~3 Prefect events (Prefect Cloud meters them per minute), so
a sweep never makes more than `max_task_runs` of them: up to that many actions, each action
is its own batch (named `<invoice>-<stage>` by the per-action task); beyond it, actions are
grouped by customer into at most `max_task_runs` batches named by their range
(`send 401–450 of 10,000`). A customer's actions always share one batch, so the customer's
messages of one sweep go out together and a retry never splits them; a customer's statement
(`dunning.statement`) is one action, so it is never split either.

`act_on_batch` carries a batch out so that a retry of the whole batch (the Prefect task's
retries) only tries again what failed for a temporary reason: what was sent, opened as a
task, skipped or failed for good is kept in the batch's `BatchProgress` and not touched
again. (The ledger's outbox claim would refuse a second message anyway; keeping the first
outcome is what keeps the summary saying `sent` rather than `already_sent`.)
"""

from __future__ import annotations

import bisect
import contextvars
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dunning.action import Outcome, PlannedAction
from dunning.smtp import NotSent

#: The default most task runs a sweep makes for its actions (a deployment parameter).
DEFAULT_MAX_TASK_RUNS = 200


@dataclass(frozen=True)
class Batch:
    """Consecutive actions (positions `first`..`last` of `total`, 1-based) run as one unit.

    `positions` are the actions' indexes in the list given to `batch_actions`, so outcomes
    can be put back in the plan's order.
    """

    actions: tuple[PlannedAction, ...]
    positions: tuple[int, ...]
    first: int
    total: int

    @property
    def last(self) -> int:
        return self.first + len(self.actions) - 1

    @property
    def name(self) -> str:
        """`send 401–450 of 10,000` (a one-action batch: `send 7 of 10,000`)."""
        if len(self.actions) == 1:
            return f"send {self.first:,} of {self.total:,}"
        return f"send {self.first:,}–{self.last:,} of {self.total:,}"


def batch_actions(actions: Sequence[PlannedAction], max_task_runs: int) -> list[Batch]:
    """Split `actions` into at most `max_task_runs` batches, never splitting a customer.

    Actions are taken customer by customer, in the order each customer first appears, and
    cut into batches of about equal size at the customer boundary nearest after each ideal
    cut. With `max_task_runs` actions or fewer, every action is a batch of its own.

    Raises:
        ValueError: `max_task_runs` is less than 1.
    """
    if max_task_runs < 1:
        raise ValueError(f"max_task_runs must be at least 1, not {max_task_runs}")
    by_customer: dict[str, list[int]] = {}
    for i, action in enumerate(actions):
        by_customer.setdefault(action.customer, []).append(i)
    order = [i for positions in by_customer.values() for i in positions]
    total = len(order)
    if total <= max_task_runs:
        cuts = list(range(1, total))
    else:
        # Where a customer's actions start, in `order`: the only places a batch may end.
        starts, at = [], 0
        for positions in by_customer.values():
            starts.append(at)
            at += len(positions)
        # Each ideal cut (k * total / max_task_runs) moves on to the next customer's start.
        cuts = sorted(
            {
                starts[j]
                for k in range(1, max_task_runs)
                if (j := bisect.bisect_left(starts, k * total / max_task_runs)) < len(starts)
            }
        )
    bounds = [0, *cuts, total]
    return [
        Batch(
            actions=tuple(actions[i] for i in order[lo:hi]),
            positions=tuple(order[lo:hi]),
            first=lo + 1,
            total=total,
        )
        for lo, hi in zip(bounds, bounds[1:], strict=False)
        if hi > lo
    ]


class BatchIncomplete(NotSent):
    """Some actions of a batch failed for a temporary reason; a retry tries them again."""


@dataclass
class BatchProgress:
    """What happened so far to a batch's actions, kept across the batch's retries.

    `done` holds final outcomes by position in the batch; `temporary` the last temporary
    failure of an action a retry should try again. Thread-safe: the batch's threads record
    into it.
    """

    size: int
    done: dict[int, Outcome] = field(default_factory=dict)
    temporary: dict[int, Outcome] = field(default_factory=dict)
    attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, index: int, outcome: Outcome, *, final: bool) -> None:
        with self._lock:
            if final:
                self.done[index] = outcome
                self.temporary.pop(index, None)
            else:
                self.temporary[index] = outcome

    def outcomes(self, batch: Batch, error: BaseException | None = None) -> list[Outcome]:
        """One outcome per action, in the batch's order: the final one, else the last
        temporary failure (retries ran out), else `failed` with `error` (never attempted)."""
        with self._lock:
            return [
                self.done.get(i)
                or self.temporary.get(i)
                or Outcome.failed(action, error or "not attempted")
                for i, action in enumerate(batch.actions)
            ]


def act_on_batch(
    batch: Batch,
    act_one: Callable[..., Outcome],
    progress: BatchProgress,
    *,
    workers: int = 1,
    prepare: Callable[[Sequence[PlannedAction]], Sequence[Any]] | None = None,
) -> list[Outcome]:
    """Carry out the batch's actions not yet done, in `workers` threads.

    Each action's outcome is recorded in `progress`; an action already final there (sent,
    task, skipped, failed for good on an earlier attempt) is not run again. A temporary
    `NotSent` (the mail server did not take the message now) is left for the next attempt.

    With `prepare` (`dunning.act.prepare_batch`: the re-checks and claims of all the
    actions to try, in a few statements), `act_one(action, prepared)` gets each action's
    part of it; without, `act_one(action)` does its own.

    Returns:
        The outcome of every action, in the batch's order, when none failed temporarily.

    Raises:
        BatchIncomplete: some actions failed temporarily (a temporary `NotSent`, so the
            task's `retry_if_temporary` retries the batch); the others are recorded.
    """
    progress.attempts += 1
    todo = [i for i in range(len(batch.actions)) if i not in progress.done]
    prepared: dict[int, Any] = {}
    if prepare is not None and todo:
        prepared = dict(zip(todo, prepare([batch.actions[i] for i in todo]), strict=True))

    def attempt(i: int) -> None:
        action = batch.actions[i]
        try:
            outcome = act_one(action, prepared[i]) if prepare is not None else act_one(action)
            progress.record(i, outcome, final=True)
        except NotSent as exc:
            progress.record(i, Outcome.failed(action, exc), final=exc.permanent)
        except Exception as exc:  # this action failed for good: record it, the rest go on
            progress.record(i, Outcome.failed(action, exc), final=True)

    if workers <= 1 or len(todo) <= 1:
        for i in todo:
            attempt(i)
    else:
        # Each thread runs in a copy of the caller's context variables: the orchestrator's
        # settings (its API address, for rate limits) live there, and new threads start
        # without them.
        context = contextvars.copy_context()
        with ThreadPoolExecutor(max_workers=workers) as threads:
            list(threads.map(lambda i: context.copy().run(attempt, i), todo))
    if progress.temporary:
        raise BatchIncomplete(
            f"{len(progress.temporary)} of {len(batch.actions)} actions of {batch.name} "
            f"failed for a temporary reason; the next attempt tries only those"
        )
    return progress.outcomes(batch)

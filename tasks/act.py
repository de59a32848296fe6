"""Act on one planned action: the per-invoice task run the Prefect UI shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import flow_run
from prefect.states import State

from blocks.email import EmailChannel
from blocks.ledger import LedgerDatabase
from blocks.sources import CsvInvoiceSource
from dunning.act import execute_action
from dunning.policy import Policy
from dunning.smtp import NotSent


def _retry_if_temporary(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry only what a retry can fix: a mail server that did not take the message now."""
    try:
        state.result()
    except NotSent as exc:
        return not exc.permanent
    except Exception:
        return False
    return False


@task(
    name="send-reminder",
    task_run_name="{action[invoice]}-{action[stage]}",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=_retry_if_temporary,
    cache_policy=NO_CACHE,
)
def send_reminder(
    action: dict[str, Any],
    source: CsvInvoiceSource,
    policy: Policy,
    channel: EmailChannel | None,
    ledger: LedgerDatabase,
    now: datetime,
) -> dict[str, Any]:
    """Send one planned reminder (or open its human task), exactly once.

    Re-checks the invoice at the source, claims the action in the ledger's outbox, renders
    and sends the message, records it, and opens the stage's escalation task. A temporary
    SMTP failure is retried (visible as retries in the UI) and still sends one message.

    Returns the outcome: `status` sent, task, skipped (with `reason`) or failed.
    """
    outcome = execute_action(
        action,
        ledger=ledger.get_ledger(),
        policy=policy,
        lookup=source.get_invoice,
        pool=channel.pool() if channel else None,
        identity=channel.identity() if channel else None,
        now=now,
        flow_run_id=str(flow_run.get_id() or ""),
        attachments_root=source.attachments_root,
    )
    return outcome.to_dict()

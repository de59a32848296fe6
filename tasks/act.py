"""Act on one planned action: the per-invoice task run the Prefect UI shows."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import rate_limit
from prefect.runtime import flow_run

from blocks.email import EmailChannel
from blocks.ledger import LedgerDatabase
from blocks.sources import InvoiceSource
from blocks.whatsapp import WhatsAppCloudChannel
from dunning.act import WhatsAppSender, execute_action
from dunning.action import Outcome, PlannedAction
from dunning.policy import Policy
from tasks.erp import ensure_rate_limit, rate_limited
from tasks.retry import retry_if_temporary


@task(
    name="send-reminder",
    task_run_name="{action.invoice}-{action.stage}",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_if_temporary,
    cache_policy=NO_CACHE,
)
def send_reminder(
    action: PlannedAction,
    source: InvoiceSource,
    policy: Policy,
    channel: EmailChannel | None,
    ledger: LedgerDatabase,
    now: datetime,
    whatsapp: WhatsAppCloudChannel | None = None,
) -> Outcome:
    """Send one planned reminder (or open its human task), exactly once.

    Re-checks the invoice at the source (under the source's rate limit), claims the action
    in the ledger's outbox, renders and sends the message, records it, opens the stage's
    escalation task and queues the CRM entries (note, task, status). A temporary SMTP
    failure is retried (visible as retries in the UI) and still sends one message.

    A WhatsApp action sends the stage's approved template through `whatsapp`; when
    WhatsApp cannot take it (consent, a number not on WhatsApp, a refused template) the
    same stage goes by email in this run, and the outcome says so (`fallback_from`,
    `fallback_reason`).

    With `messages_per_second` set on the channel block, each message first takes a slot
    of that channel's Prefect rate limit (created if missing), so the provider's quota holds
    across all workers.

    Returns the `Outcome`: `status` sent, task, skipped (with `reason`) or failed; `channel`
    the channel that carried it.
    """
    ensure_rate_limit(source)
    # The provider's quota (messages per second), shared by every worker of the sweep.
    sender = whatsapp if action.channel == "whatsapp" else channel
    if sender is not None and ensure_rate_limit(sender):
        rate_limit(sender.rate_limit_name(), strict=True)
    with rate_limited(source):
        return execute_action(
            action,
            ledger=ledger.get_ledger(),
            policy=policy,
            lookup=source.get_invoice,
            pool=channel.pool() if channel else None,
            identity=channel.identity() if channel else None,
            now=now,
            flow_run_id=str(flow_run.get_id() or ""),
            attachments_root=source.attachments_root,
            whatsapp=WhatsAppSender(whatsapp.client(), whatsapp.templates()) if whatsapp else None,
        )

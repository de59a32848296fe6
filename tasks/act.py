"""Act on planned actions: one task run per action (`<invoice>-<stage>`), or per batch of
customers (`send 401–450 of 10,000`) when a sweep has more actions than task runs to show."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import rate_limit
from prefect.runtime import flow_run

from blocks.email import EmailChannel
from blocks.ledger import LedgerDatabase
from blocks.sources import InvoiceSource
from blocks.twilio import SmsChannel, VoiceChannel
from blocks.whatsapp import WhatsAppCloudChannel
from dunning.act import SmsSender, VoiceSender, WhatsAppSender, execute_action
from dunning.action import Outcome, PlannedAction
from dunning.batches import Batch, BatchProgress, act_on_batch
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
    sms: SmsChannel | None = None,
    voice: VoiceChannel | None = None,
) -> Outcome:
    """Send one planned reminder (or open its human task), exactly once.

    Re-checks the invoice at the source (under the source's rate limit), claims the action
    in the ledger's outbox, renders and sends the message, records it, opens the stage's
    escalation task and queues the CRM entries (note, task, status). A temporary SMTP
    failure is retried (visible as retries in the UI) and still sends one message.

    A WhatsApp action sends the stage's approved template through `whatsapp`; when
    WhatsApp cannot take it (consent, a number not on WhatsApp, a refused template) the
    same stage goes by email in this run, and the outcome says so (`fallback_from`,
    `fallback_reason`). SMS (`sms`) and automated calls (`voice`) go through Twilio the
    same way, falling back to email or a human task when the number cannot take them.

    With `messages_per_second` set on the channel block, each message first takes a slot
    of that channel's Prefect rate limit (created if missing), so the provider's quota holds
    across all workers.

    Returns the `Outcome`: `status` sent, task, skipped (with `reason`) or failed; `channel`
    the channel that carried it.
    """
    act_one = _actor(source, policy, channel, ledger, now, whatsapp, sms, voice)
    return act_one(action)


@task(
    name="send-batch",
    task_run_name="{batch.name}",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_if_temporary,
    cache_policy=NO_CACHE,
)
def send_batch(
    batch: Batch,
    progress: BatchProgress,
    source: InvoiceSource,
    policy: Policy,
    channel: EmailChannel | None,
    ledger: LedgerDatabase,
    now: datetime,
    whatsapp: WhatsAppCloudChannel | None = None,
    sms: SmsChannel | None = None,
    voice: VoiceChannel | None = None,
    workers: int = 1,
) -> list[Outcome]:
    """Carry out a batch of consecutive customers' actions (`send 401–450 of 10,000`).

    Each action goes exactly as in `send-reminder` (same re-check, claim, rate limits and
    fallbacks), `workers` at a time. When some fail for a temporary reason the task run
    fails and is retried (visible as retries in the UI), and the retry tries only those:
    what was sent, opened as a task or skipped is kept in `progress` (which the flow reads
    when the retries run out) and never sent again.

    Returns one `Outcome` per action of the batch, in the batch's order.
    """
    act_one = _actor(source, policy, channel, ledger, now, whatsapp, sms, voice)
    return act_on_batch(batch, act_one, progress, workers=workers)


def _actor(
    source: InvoiceSource,
    policy: Policy,
    channel: EmailChannel | None,
    ledger: LedgerDatabase,
    now: datetime,
    whatsapp: WhatsAppCloudChannel | None,
    sms: SmsChannel | None,
    voice: VoiceChannel | None,
) -> Callable[[PlannedAction], Outcome]:
    """`execute_action` of one action under the source's and the channel's rate limits.

    What is read from the task run's context (the flow run id) is read here, in the task's
    own thread: a batch's worker threads do not carry Prefect's context."""
    ensure_rate_limit(source)
    flow_run_id = str(flow_run.get_id() or "")
    common = dict(
        ledger=ledger.get_ledger(),
        policy=policy,
        lookup=source.get_invoice,
        pool=channel.pool() if channel else None,
        identity=channel.identity() if channel else None,
        now=now,
        flow_run_id=flow_run_id,
        attachments_root=source.attachments_root,
        whatsapp=WhatsAppSender(whatsapp.client(), whatsapp.templates()) if whatsapp else None,
        sms=SmsSender(sms.client(), sms.settings()) if sms else None,
        voice=VoiceSender(voice.client(), voice.settings()) if voice else None,
    )
    senders = {"whatsapp": whatsapp, "sms": sms, "voice": voice}

    def act_one(action: PlannedAction) -> Outcome:
        # The provider's quota (messages per second), shared by every worker of the sweep.
        sender = senders.get(action.channel, channel)
        if sender is not None and ensure_rate_limit(sender):
            rate_limit(sender.rate_limit_name(), strict=True)
        with rate_limited(source):
            return execute_action(action, **common)

    return act_one


@task(name="retry-unanswered-calls", cache_policy=NO_CACHE)
def retry_unanswered_calls(
    voice: VoiceChannel,
    source: InvoiceSource,
    policy: Policy,
    ledger: LedgerDatabase,
    now: datetime,
    company_name: str = "",
) -> list[str]:
    """Call again the customers whose reminder call was busy, not answered or failed, once
    the voice channel's `retry_after_minutes` have passed and while it has attempts left
    (the last unanswered attempt already opened a task for a person). Returns their keys."""
    from dunning.policy import today as policy_today
    from dunning.twilio.voice import retry_unanswered_calls as retry

    return retry(
        ledger.get_ledger(),
        voice.client(),
        voice.settings(),
        now=now,
        lookup=source.get_invoice,
        language=lambda inv: inv.language or policy.language,
        today=policy_today(policy, now),
        company_name=company_name,
        window=policy.window,
        timezone=policy.timezone,
    )

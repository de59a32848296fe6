"""Act on planned actions: one task run per action (`<invoice>-<stage>`), or per batch of
customers (`send 401–450 of 10,000`) when a sweep has more actions than task runs to show."""

from __future__ import annotations

from collections.abc import Sequence
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
from dunning.act import (
    Prepared,
    SmsSender,
    VoiceSender,
    WhatsAppSender,
    execute_action,
    prepare_batch,
)
from dunning.action import Outcome, PlannedAction
from dunning.batches import Batch, BatchProgress, act_on_batch
from dunning.policy import Policy
from dunning.schema import Invoice
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
    return _Actor(source, policy, channel, ledger, now, whatsapp, sms, voice)(action)


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

    Each action goes as in `send-reminder` (same re-check, claim, rate limits and
    fallbacks), `workers` at a time, except that the batch's re-checks and claims are made
    together before the first message goes (`dunning.act.prepare_batch`: a few SQL
    statements for the batch instead of several per action). When some fail for a
    temporary reason the task run fails and is retried (visible as retries in the UI), and
    the retry tries only those: what was sent, opened as a task or skipped is kept in
    `progress` (which the flow reads when the retries run out) and never sent again.

    Returns one `Outcome` per action of the batch, in the batch's order.
    """
    actor = _Actor(source, policy, channel, ledger, now, whatsapp, sms, voice)
    return act_on_batch(batch, actor, progress, workers=workers, prepare=actor.prepare)


class _Actor:
    """`execute_action` of one action under the source's and the channel's rate limits,
    and `prepare` of a batch's actions (their re-checks and claims, together).

    What is read from the task run's context (the flow run id) is read here, in the task's
    own thread: a batch's worker threads do not carry Prefect's context."""

    def __init__(
        self,
        source: InvoiceSource,
        policy: Policy,
        channel: EmailChannel | None,
        ledger: LedgerDatabase,
        now: datetime,
        whatsapp: WhatsAppCloudChannel | None,
        sms: SmsChannel | None,
        voice: VoiceChannel | None,
    ) -> None:
        ensure_rate_limit(source)
        self.source = source
        self.common = dict(
            ledger=ledger.get_ledger(),
            policy=policy,
            lookup=self.lookup,
            pool=channel.pool() if channel else None,
            identity=channel.identity() if channel else None,
            now=now,
            flow_run_id=str(flow_run.get_id() or ""),
            attachments_root=source.attachments_root,
            whatsapp=WhatsAppSender(whatsapp.client(), whatsapp.templates()) if whatsapp else None,
            sms=SmsSender(sms.client(), sms.settings()) if sms else None,
            voice=VoiceSender(voice.client(), voice.settings()) if voice else None,
        )
        self.senders = {"whatsapp": whatsapp, "sms": sms, "voice": voice}
        self.channel = channel

    def lookup(self, invoice: str) -> Invoice | None:
        """The invoice at the source now, under the source's rate limit."""
        with rate_limited(self.source):
            return self.source.get_invoice(invoice)

    def prepare(self, actions: Sequence[PlannedAction]) -> list[Prepared | None]:
        c = self.common
        return prepare_batch(
            actions,
            ledger=c["ledger"],
            policy=c["policy"],
            lookup=self.lookup,
            now=c["now"],
            flow_run_id=c["flow_run_id"],
        )

    def __call__(self, action: PlannedAction, prepared: Prepared | None = None) -> Outcome:
        # The provider's quota (messages per second), shared by every worker of the sweep.
        sender = self.senders.get(action.channel, self.channel)
        if sender is not None and ensure_rate_limit(sender):
            rate_limit(sender.rate_limit_name(), strict=True)
        return execute_action(action, prepared=prepared, **self.common)


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

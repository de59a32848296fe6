"""The daily dunning loop: fetch, sync, plan, act, report."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import deployment as current_deployment
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from blocks import (
    CRM_TYPES,
    SOURCE_TYPES,
    CrmBlock,
    DunningPolicy,
    EmailChannel,
    InvoiceSource,
    LedgerCrm,
    LedgerDatabase,
    SmsChannel,
    VoiceChannel,
    WhatsAppCloudChannel,
    resolve_block,
)
from dunning.action import Outcome, PlannedAction
from dunning.batches import DEFAULT_MAX_TASK_RUNS, Batch, BatchProgress, batch_actions
from dunning.crm import count_by_state
from dunning.importers import ImportResult
from dunning.ledger import SyncReport
from dunning.settings import settings
from dunning.shards import in_shard
from dunning.source_marks import changes_since, record_read
from dunning.summary import SweepSummary
from dunning.sweep import SEND_WORKERS, run_sweep
from tasks.act import retry_unanswered_calls, send_batch, send_reminder
from tasks.crm import deliver_crm_entries
from tasks.erp import fetch_one_invoice, fetch_open_invoices
from tasks.ledger import sync_ledger
from tasks.plan import plan_actions
from tasks.report import EventTally, SweepProgress, publish_summary
from tasks.thanks import thank_and_confirm

#: Most CRM delivery batches per run (a backlog larger than this waits for the next run).
MAX_CRM_BATCHES = 50


@flow(name="dunning-sweep", task_runner=ThreadPoolTaskRunner(max_workers=SEND_WORKERS))
def dunning_sweep(
    source: str | InvoiceSource = "default",
    channel: str | EmailChannel = "default",
    ledger: str | LedgerDatabase = "default",
    policy: str | DunningPolicy | None = None,
    now: datetime | None = None,
    crm: str | CrmBlock | None = None,
    whatsapp: str | WhatsAppCloudChannel | None = None,
    shards: int = 1,
    sms: str | SmsChannel | None = None,
    voice: str | VoiceChannel | None = None,
    shard: int = 0,
    max_task_runs: int = DEFAULT_MAX_TASK_RUNS,
) -> dict[str, Any]:
    """Remind every customer whose invoice has reached a stage of the ladder.

    Fetches the invoices, records what changed in the ledger, plans the next stage of every
    invoice, and runs one `send-reminder` task per action whose time has come (named
    `<invoice>-<stage>`); with more than `max_task_runs` such actions, one `send-batch` task
    per batch of consecutive customers instead (named `send 401–450 of 10,000`), at most
    `max_task_runs` of them, so the run stays readable in the UI and cheap in Prefect events.
    A progress artifact moves as the actions finish, and a table artifact lists every
    action's outcome. Actions waiting for the customer's sending window are left for a
    follow-up run, scheduled automatically when this run comes from a deployment. Then
    delivers the CRM entries the actions queued (notes, human tasks, statuses) to the CRM;
    a CRM that is down leaves them pending for the next run. Publishes a summary artifact
    (sent, skipped with reason, failed, quarantined rows, CRM delivery).

    Args:
        source: the invoice-source block (CSV file, Odoo, Stripe, Holded, REST API), or its
            saved name: `odoo-invoice-source/prod`, or a bare name (a CSV source first).
        channel: the email-channel block, or its name.
        ledger: the ledger-database block, or its name.
        policy: the dunning-policy block or its name; if empty, the `DUNNING_POLICY` setting
            (a YAML file or a block's name), else the built-in default ladder.
        now: the moment to plan for (ISO 8601 with offset); the current time if empty.
        crm: the CRM block (`hubspot-crm/prod`, `odoo-crm/prod`) or its saved name; if
            empty, the `DUNNING_CRM` setting, else the ledger (no external CRM).
        whatsapp: the WhatsApp Cloud channel block or its saved name; email only if empty.
            With it, each customer gets their preferred channel, then the policy's
            `channel_order` (WhatsApp only with an opt-in); a WhatsApp message Meta refuses
            goes by email in the same run.
        shards: split the portfolio by customer into this many shards (several workers).
        shard: which shard this run handles (0 to shards-1); see `dunning-sweep-sharded`.
        sms: the SMS channel block (Twilio) or its saved name: `sms` joins the channels
            (a customer's preferred channel, `channel_order`, a stage's `channel`); a number
            that cannot take it (STOP, invalid, landline) falls back in the same run.
        voice: the voice channel block (Twilio) or its saved name, for stages with
            `channel: voice`; unanswered calls are retried by the block's policy, then a
            person gets a task.
        max_task_runs: the most task runs this sweep makes for its actions (at least 1).

    Returns:
        The counts of the summary: sent, tasks, failed, deferred, skipped by reason, crm, ...
    """
    return _sweep(
        source,
        channel,
        ledger,
        policy,
        now,
        crm,
        whatsapp,
        invoice=None,
        shard=(shards, shard),
        sms_ref=sms,
        voice_ref=voice,
        max_task_runs=max_task_runs,
    ).counts()


@flow(name="dunning-invoice", task_runner=ThreadPoolTaskRunner(max_workers=2))
def dunning_invoice(
    invoice: str,
    source: str | InvoiceSource = "default",
    channel: str | EmailChannel = "default",
    ledger: str | LedgerDatabase = "default",
    policy: str | DunningPolicy | None = None,
    now: datetime | None = None,
    crm: str | CrmBlock | None = None,
    whatsapp: str | WhatsAppCloudChannel | None = None,
    sms: str | SmsChannel | None = None,
    voice: str | VoiceChannel | None = None,
) -> dict[str, Any]:
    """Run the dunning loop for one invoice, on demand (e.g. after a payment webhook).

    Same rules as the sweep: it sends the invoice's due stage only if the ladder, the
    window and the ledger allow it, so running it twice sends nothing more. An API source
    is asked for this invoice alone. `whatsapp`, `sms`, `voice`: as for `dunning-sweep`.
    """
    return _sweep(
        source, channel, ledger, policy, now, crm, whatsapp, invoice=invoice, sms_ref=sms,
        voice_ref=voice,
    ).counts()  # fmt: skip


def _sweep(
    source_ref: str | InvoiceSource,
    channel_ref: str | EmailChannel,
    ledger_ref: str | LedgerDatabase,
    policy_ref: str | DunningPolicy | None,
    now: datetime | None,
    crm_ref: str | CrmBlock | None,
    whatsapp_ref: str | WhatsAppCloudChannel | None,
    *,
    invoice: str | None,
    shard: tuple[int, int] = (1, 0),
    sms_ref: str | SmsChannel | None = None,
    voice_ref: str | VoiceChannel | None = None,
    max_task_runs: int = DEFAULT_MAX_TASK_RUNS,
) -> SweepSummary:
    logger = get_run_logger()
    if max_task_runs < 1:
        raise ValueError(f"max_task_runs must be at least 1, not {max_task_runs}")
    tally = EventTally()
    live = now is None  # an explicit `now` replays a moment: no follow-up runs for it
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must carry a timezone offset, e.g. 2026-12-09T10:00:00+01:00")
    now = now.astimezone(UTC)
    source = resolve_block(source_ref, SOURCE_TYPES)
    channel = resolve_block(channel_ref, EmailChannel)
    ledger = resolve_block(ledger_ref, LedgerDatabase)
    crm = resolve_block(crm_ref or settings().crm, CRM_TYPES, default=LedgerCrm)
    whatsapp = resolve_block(whatsapp_ref, WhatsAppCloudChannel) if whatsapp_ref else None
    sms = resolve_block(sms_ref, SmsChannel) if sms_ref else None
    voice = resolve_block(voice_ref, VoiceChannel) if voice_ref else None
    configured = {"whatsapp": whatsapp, "sms": sms, "voice": voice}
    channels = ("email", *(name for name, block in configured.items() if block))
    policy_block = resolve_block(policy_ref, DunningPolicy, default=DunningPolicy.from_settings)
    policy = policy_block.to_policy()

    # The core's sweep (`dunning.sweep.run_sweep`), each step one task run of this flow.
    tracked = invoice is None and source.supports_changes
    since = changes_since(ledger.get_ledger(), source.source_key) if tracked else None
    started = datetime.now(UTC)

    def fetch() -> ImportResult:
        tally.task_runs += 1
        if invoice is None:
            loaded = fetch_open_invoices(source, since)
        else:
            loaded = fetch_one_invoice(source, invoice)
            if loaded.invoices.empty:
                where = getattr(source, "path", None) or source.label
                raise ValueError(
                    f"invoice {invoice} is not in {where} (or was quarantined: see the logs)"
                )
        invoices = in_shard(loaded.invoices, *shard)
        if shard[0] > 1:
            logger.info("shard %d of %d: %d invoices", shard[1], shard[0], len(invoices))
        return replace(loaded, invoices=invoices)

    def sync(invoices: pd.DataFrame) -> SyncReport:
        tally.task_runs += 1
        report = sync_ledger(ledger, invoices, policy, now)
        if tracked:
            record_read(ledger.get_ledger(), source.source_key, started, len(invoices))
        return report

    def plan(invoices: pd.DataFrame) -> pd.DataFrame:
        countries = tuple(sms.opt_in_countries) if sms else ()
        window = channel.window(policy.window)
        tally.task_runs += 1
        return plan_actions(invoices, policy, ledger, now, window, channels, countries)

    action_runs = 0  # task runs made for the actions (the summary shows them)

    def act(actions: list[PlannedAction]) -> list[Outcome]:
        nonlocal action_runs
        if not actions:
            return []
        # quote(): Prefect would otherwise walk the blocks and the policy, field by field,
        # for every task run (~10 % of this process's CPU); they carry no upstream results.
        shared = [quote(x) for x in (source, policy, channel, ledger)]
        senders = {"whatsapp": quote(whatsapp), "sms": quote(sms), "voice": quote(voice)}
        progress = SweepProgress(len(actions), tally)
        with _task_runs_log_warnings_only():
            if len(actions) <= max_task_runs:  # one task run per action, named by invoice
                futures = [send_reminder.submit(a, *shared, now, **senders) for a in actions]
                action_runs = len(futures)
                tally.task_runs += len(futures)
                for _ in as_completed(futures):
                    progress.advance(1)
                return [_outcome(f, a) for f, a in zip(futures, actions, strict=True)]
            batches = batch_actions(actions, max_task_runs)
            # The task runner runs SEND_WORKERS batches at once; with fewer batches than
            # that, each batch uses the threads left over.
            workers = max(1, SEND_WORKERS // min(len(batches), SEND_WORKERS))
            records = [BatchProgress(len(b.actions)) for b in batches]
            futures = [
                send_batch.submit(quote(b), quote(r), *shared, now, **senders, workers=workers)
                for b, r in zip(batches, records, strict=True)
            ]
            sizes = {f.task_run_id: len(b.actions) for f, b in zip(futures, batches, strict=True)}
            for future in as_completed(futures):
                progress.advance(sizes[future.task_run_id])
            outcomes: list[Outcome] = [Outcome.failed(a, "not attempted") for a in actions]
            for future, batch, record in zip(futures, batches, records, strict=True):
                for position, outcome in zip(
                    batch.positions, _batch_outcomes(future, batch, record), strict=True
                ):
                    outcomes[position] = outcome
            action_runs = len(batches)
            tally.task_runs += len(batches)
            tally.retries += sum(max(0, r.attempts - 1) for r in records)
            return outcomes

    summary = run_sweep(fetch=fetch, sync=sync, plan=plan, act=act, now=now, log=logger)
    if voice is not None and invoice is None:
        # Calls not answered earlier are tried again by policy (the last one opened a task).
        company = channel.identity().from_name
        retried = retry_unanswered_calls(voice, source, policy, ledger, now, company)
        tally.task_runs += 1
        if retried:
            logger.info("%d unanswered call(s) placed again", len(retried))
    # Thanks for payments seen by this run (or a webhook's), confirmations of new promises;
    # their CRM entries go out with the rest just below.
    # quote() as for the actions: the blocks, the policy and a summary of every action are
    # walked field by field otherwise (~2 s of this process's CPU at 5,000 reminders).
    thank_and_confirm(
        *(quote(x) for x in (source, policy, channel, ledger)),
        now,
        [invoice] if invoice else None,
    )
    tally.task_runs += 1
    summary.crm = _deliver_crm(crm, ledger, tally)
    summary.task_runs = action_runs
    publish_summary(quote(summary), quote(tally))
    if live and summary.next_send_at:
        _schedule_follow_up(pd.Timestamp(summary.next_send_at).to_pydatetime(), now)
    logger.info("sweep done: %s", summary.counts())
    return summary


@contextmanager
def _task_runs_log_warnings_only() -> Iterator[None]:
    """While the reminders go out, task runs log only warnings and errors (retries,
    failures): a "Finished in state Completed()" line per reminder repeats what the task
    run list shows, and cost ~6 ms of CPU per reminder between this process and the
    server (BENCHMARKS.md, "Prefect server settings")."""
    logger = logging.getLogger("prefect.task_runs")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _deliver_crm(crm: CrmBlock, ledger: LedgerDatabase, tally: EventTally) -> dict[str, Any]:
    """Deliver the pending CRM entries in batches (one task run each); what a CRM that is
    down leaves pending is reported, and the run goes on."""
    led = ledger.get_ledger()
    before = count_by_state(led)
    error = ""
    if before.get("pending", 0):
        deliver = deliver_crm_entries.with_options(
            retries=crm.delivery_retries, retry_delay_seconds=crm.retry_delay_seconds
        )
        for _ in range(MAX_CRM_BATCHES):
            tally.task_runs += 1
            try:
                batch = deliver(crm, ledger, crm.batch_size)
            except Exception as exc:  # the CRM is unavailable: entries stay pending
                error = str(exc)[:300]
                get_run_logger().warning("CRM delivery stopped: %s", error)
                break
            if batch["pending"] == 0 or batch["delivered"] + batch["failed"] == 0:
                break
    after = count_by_state(led)
    return {
        "crm": crm.label,
        "delivered": max(0, after.get("done", 0) - before.get("done", 0)),
        "failed": max(0, after.get("failed", 0) - before.get("failed", 0)),
        "pending": after.get("pending", 0),
        "error": error,
    }


def _outcome(future: PrefectFuture[Outcome], action: PlannedAction) -> Outcome:
    """The task's outcome, or a failed one carrying the error once retries ran out."""
    try:
        return future.result()
    except Exception as exc:  # the task failed for good: record it, keep the other actions
        return Outcome.failed(action, exc)


def _batch_outcomes(
    future: PrefectFuture[list[Outcome]], batch: Batch, record: BatchProgress
) -> list[Outcome]:
    """The batch's outcomes; once its retries ran out, what each action reached (sent,
    skipped, ...) and, for the ones still failing, their last error."""
    try:
        return future.result()
    except Exception as exc:  # retries ran out: keep what was done, the rest failed
        return record.outcomes(batch, exc)


def _schedule_follow_up(when: datetime, now: datetime) -> None:
    """Run this deployment again when the next customer's window opens (same day only)."""
    deployment = current_deployment.id
    if not deployment or (when - now).total_seconds() > 24 * 3600:
        return
    from prefect.deployments import run_deployment

    params = dict(flow_run.get_parameters())
    params["now"] = None
    run_deployment(
        name=deployment,
        parameters=params,
        scheduled_time=when,
        timeout=0,
        # Per invoice for the one-invoice flow: two invoices waiting for the same window
        # each need their own follow-up run.
        idempotency_key=f"follow-up-{deployment}-{params.get('invoice', 'all')}-{when.isoformat()}",
        as_subflow=False,
    )
    get_run_logger().info("follow-up run scheduled at %s", when.isoformat())


@flow(name="dunning-sweep-sharded")
async def dunning_sweep_sharded(
    shards: int = 2,
    deployment: str = "dunning-sweep/dunning-sweep",
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the sweep as `shards` deployment runs, one per shard, at once, and wait for all.

    Each run gets `shards` and its `shard`, and goes to whichever worker of the deployment's
    work pool takes it, so N workers on N machines share a large portfolio: customers are
    split by a stable hash, so no invoice is in two shards and none in no shard, and the
    ledger's outbox keeps every message single even if a shard is run twice.

    Args:
        shards: how many shards (usually the number of workers).
        deployment: the `dunning-sweep` deployment to run (`flow name/deployment name`).
        parameters: the sweep's other parameters (source, channel, ledger, policy, ...).

    Returns:
        Each shard's flow run name and final state, by shard number (its counts are in
        that run's return value and summary artifact).
    """
    import asyncio

    from prefect.deployments.flow_runs import arun_deployment

    runs = await asyncio.gather(
        *(
            arun_deployment(
                name=deployment,
                parameters={**(parameters or {}), "shards": shards, "shard": i},
                as_subflow=True,
            )
            for i in range(shards)
        )
    )
    results = {str(i): {"flow_run": r.name, "state": r.state_name} for i, r in enumerate(runs)}
    failed = [
        f"shard {i} ({r['flow_run']}): {r['state']}"
        for i, r in results.items()
        if r["state"] != "Completed"
    ]
    if failed:
        raise RuntimeError("shards did not complete: " + "; ".join(failed))
    return results

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
from prefect.futures import PrefectFuture
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
    WhatsAppCloudChannel,
    resolve_block,
)
from dunning.action import Outcome, PlannedAction
from dunning.crm import count_by_state
from dunning.importers import ImportResult
from dunning.ledger import SyncReport
from dunning.settings import settings
from dunning.shards import in_shard
from dunning.source_marks import changes_since, record_read
from dunning.summary import SweepSummary
from dunning.sweep import SEND_WORKERS, run_sweep
from tasks.act import send_reminder
from tasks.crm import deliver_crm_entries
from tasks.erp import fetch_one_invoice, fetch_open_invoices
from tasks.ledger import sync_ledger
from tasks.plan import plan_actions
from tasks.report import publish_summary

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
    shard: int = 0,
) -> dict[str, Any]:
    """Remind every customer whose invoice has reached a stage of the ladder.

    Fetches the invoices, records what changed in the ledger, plans the next stage of every
    invoice, and runs one `send-reminder` task per action whose time has come (named
    `<invoice>-<stage>`). Actions waiting for the customer's sending window are left for a
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

    Returns:
        The counts of the summary: sent, tasks, failed, deferred, skipped by reason, crm, ...
    """
    return _sweep(
        source, channel, ledger, policy, now, crm, whatsapp, invoice=None, shard=(shards, shard)
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
) -> dict[str, Any]:
    """Run the dunning loop for one invoice, on demand (e.g. after a payment webhook).

    Same rules as the sweep: it sends the invoice's due stage only if the ladder, the
    window and the ledger allow it, so running it twice sends nothing more. An API source
    is asked for this invoice alone. `whatsapp`: as for `dunning-sweep` (email only if empty).
    """
    return _sweep(source, channel, ledger, policy, now, crm, whatsapp, invoice=invoice).counts()


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
) -> SweepSummary:
    logger = get_run_logger()
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
    channels = ("email", "whatsapp") if whatsapp else ("email",)
    policy_block = resolve_block(policy_ref, DunningPolicy, default=DunningPolicy.from_settings)
    policy = policy_block.to_policy()

    # The core's sweep (`dunning.sweep.run_sweep`), each step one task run of this flow.
    tracked = invoice is None and source.supports_changes
    since = changes_since(ledger.get_ledger(), source.source_key) if tracked else None
    started = datetime.now(UTC)

    def fetch() -> ImportResult:
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
        report = sync_ledger(ledger, invoices, policy, now)
        if tracked:
            record_read(ledger.get_ledger(), source.source_key, started, len(invoices))
        return report

    def plan(invoices: pd.DataFrame) -> pd.DataFrame:
        return plan_actions(invoices, policy, ledger, now, channel.window(policy.window), channels)

    def act(actions: list[PlannedAction]) -> list[Outcome]:
        # quote(): Prefect would otherwise walk the blocks and the policy, field by field,
        # for every task run (~10 % of this process's CPU); they carry no upstream results.
        shared = [quote(x) for x in (source, policy, channel, ledger)]
        with _task_runs_log_warnings_only():
            futures = [send_reminder.submit(a, *shared, now, quote(whatsapp)) for a in actions]
            return [_outcome(f, a) for f, a in zip(futures, actions, strict=True)]

    summary = run_sweep(fetch=fetch, sync=sync, plan=plan, act=act, now=now, log=logger)
    summary.crm = _deliver_crm(crm, ledger)
    publish_summary(summary)
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


def _deliver_crm(crm: CrmBlock, ledger: LedgerDatabase) -> dict[str, Any]:
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

"""The daily dunning loop: fetch, sync, plan, act, report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.runtime import deployment as current_deployment
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import CsvInvoiceSource, DunningPolicy, EmailChannel, LedgerDatabase, resolve
from dunning.importers import ImportResult
from dunning.plan import action_dicts, deferred, due_now
from dunning.policy import Policy
from dunning.summary import SweepSummary, summarize
from tasks.act import send_reminder
from tasks.erp import fetch_open_invoices
from tasks.ledger import sync_ledger
from tasks.plan import plan_actions
from tasks.report import publish_summary

#: Threads sending at once; each holds at most one SMTP connection from the channel's pool.
SEND_WORKERS = 8


@flow(name="dunning-sweep", task_runner=ThreadPoolTaskRunner(max_workers=SEND_WORKERS))
def dunning_sweep(
    source: str | CsvInvoiceSource = "default",
    channel: str | EmailChannel = "default",
    ledger: str | LedgerDatabase = "default",
    policy: str | DunningPolicy | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Remind every customer whose invoice has reached a stage of the ladder.

    Fetches the invoices, records what changed in the ledger, plans the next stage of every
    invoice, and runs one `send-reminder` task per action whose time has come (named
    `<invoice>-<stage>`). Actions waiting for the customer's sending window are left for a
    follow-up run, scheduled automatically when this run comes from a deployment. Publishes
    a summary artifact (sent, skipped with reason, failed, quarantined rows).

    Args:
        source: the invoice-source block, or the name it was saved under.
        channel: the email-channel block, or its name.
        ledger: the ledger-database block, or its name.
        policy: the dunning-policy block or its name; the built-in default ladder if empty.
        now: the moment to plan for (ISO 8601 with offset); the current time if empty.

    Returns:
        The counts of the summary: sent, tasks, failed, deferred, skipped by reason, ...
    """
    return _sweep(source, channel, ledger, policy, now, invoice=None).counts()


@flow(name="dunning-invoice", task_runner=ThreadPoolTaskRunner(max_workers=2))
def dunning_invoice(
    invoice: str,
    source: str | CsvInvoiceSource = "default",
    channel: str | EmailChannel = "default",
    ledger: str | LedgerDatabase = "default",
    policy: str | DunningPolicy | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Run the dunning loop for one invoice, on demand (e.g. after a payment webhook).

    Same rules as the sweep: it sends the invoice's due stage only if the ladder, the
    window and the ledger allow it, so running it twice sends nothing more.
    """
    return _sweep(source, channel, ledger, policy, now, invoice=invoice).counts()


def _sweep(
    source_ref: str | CsvInvoiceSource,
    channel_ref: str | EmailChannel,
    ledger_ref: str | LedgerDatabase,
    policy_ref: str | DunningPolicy | None,
    now: datetime | None,
    *,
    invoice: str | None,
) -> SweepSummary:
    logger = get_run_logger()
    live = now is None  # an explicit `now` replays a moment: no follow-up runs for it
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must carry a timezone offset, e.g. 2026-12-09T10:00:00+01:00")
    now = now.astimezone(UTC)
    source = resolve(CsvInvoiceSource, source_ref)
    channel = resolve(EmailChannel, channel_ref)
    ledger = resolve(LedgerDatabase, ledger_ref)
    policy = _policy(policy_ref)

    loaded: ImportResult = fetch_open_invoices(source)
    invoices = loaded.invoices
    if invoice is not None:
        invoices = invoices[invoices["invoice_number"] == invoice]
        if invoices.empty:
            raise ValueError(
                f"invoice {invoice} is not in {source.path} (or was quarantined: see the logs)"
            )
    report = sync_ledger(ledger, invoices)
    planned = plan_actions(invoices, policy, ledger, now, channel.window(policy.window))
    todo = due_now(planned, now)
    waiting = deferred(planned, now)
    logger.info("%d actions due now, %d waiting for their window", len(todo), len(waiting))

    actions = action_dicts(todo)
    futures = [send_reminder.submit(a, source, policy, channel, ledger, now) for a in actions]
    outcomes = [_outcome(f, a) for f, a in zip(futures, actions, strict=True)]
    summary = summarize(planned, waiting, outcomes, loaded.quarantine, report, now)
    publish_summary(summary)
    if live and len(waiting):
        _schedule_follow_up(waiting["send_at"].min().to_pydatetime(), now)
    logger.info("sweep done: %s", summary.counts())
    return summary


def _policy(ref: str | DunningPolicy | None) -> Policy:
    if ref is None or ref == "":
        return DunningPolicy.default().to_policy()
    return resolve(DunningPolicy, ref).to_policy()


def _outcome(future: PrefectFuture, action: dict[str, Any]) -> dict[str, Any]:
    """The task's outcome, or a failed one carrying the error once retries ran out."""
    try:
        return future.result()
    except Exception as exc:  # the task failed for good: record it, keep the other actions
        return {
            "key": action["key"],
            "invoice": action["invoice"],
            "stage": action["stage"],
            "channel": action["channel"],
            "status": "failed",
            "reason": str(exc)[:300],
            "recipient": "",
            "message_id": "",
            "escalations": [],
        }


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
        idempotency_key=f"follow-up-{deployment}-{when.isoformat()}",
        as_subflow=False,
    )
    get_run_logger().info("follow-up run scheduled at %s", when.isoformat())

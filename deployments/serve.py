"""Serve the dunning deployments from one process (local running, the demo).

`python -m deployments.serve` creates/updates the deployments on the Prefect server in
`PREFECT_API_URL` and runs their flow runs here until stopped (SIGTERM pauses them cleanly).

- `dunning-sweep`: cron 09:00 on business days (Monday-Friday) in `DUNNING_TIMEZONE`
  (default Europe/Madrid); public holidays are handled by the ladder, per customer country.
- `dunning-invoice`: no schedule; run it for one invoice from the UI or `run_deployment`.
- `portfolio-report`: Monday 08:00: aging, DSO, promises, conversions, charts; emailed to
  `DUNNING_REPORT_TO` (comma-separated) and published as artifacts.
- `process-replies`: every 5 minutes (`DUNNING_REPLIES_EVERY` seconds): read the mailbox,
  understand each reply and act on it (needs an `ImapMailbox` block named `default`;
  `DUNNING_REPLIES_MAILBOX=` empty processes only the inbox the webhook receiver fills;
  `DUNNING_REPLIES=0` leaves the deployment out).
"""

from __future__ import annotations

import os

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron

from flows.portfolio import portfolio_report
from flows.replies import process_replies
from flows.sweep import dunning_invoice, dunning_sweep

SWEEP_CRON = os.environ.get("DUNNING_SWEEP_CRON", "0 9 * * 1-5")
REPLIES_EVERY = int(os.environ.get("DUNNING_REPLIES_EVERY", "300"))

#: Emitted by the webhook receiver (`dunning webhooks serve`): run the loop for that invoice.
INVOICE_CHANGED = DeploymentEventTrigger(
    expect={
        "dunning.invoice.paid",
        "dunning.invoice.updated",
        "dunning.invoice.created",
        "dunning.invoice.cancelled",
    },
    match={"prefect.resource.id": "dunning.invoice.*"},
    parameters={"invoice": "{{ event.payload.invoice_number }}"},
)
#: A WhatsApp reply stored by the receiver: process replies now, not in 5 minutes.
REPLY_RECEIVED = DeploymentEventTrigger(
    expect={"dunning.reply.received"},
    match={"prefect.resource.id": "dunning.reply.*"},
    parameters={"mailbox": None},  # the reply is already in the ledger's inbox
)


def deployments(timezone: str | None = None) -> list[RunnerDeployment]:
    """The deployments, with the sweep's schedule in `timezone`."""
    tz = timezone or os.environ.get("DUNNING_TIMEZONE", "Europe/Madrid")
    return [
        dunning_sweep.to_deployment(
            name="dunning-sweep",
            schedule=Cron(SWEEP_CRON, timezone=tz),
            description=f"Daily dunning sweep, {SWEEP_CRON} ({tz}).",
            tags=["dunning"],
        ),
        dunning_invoice.to_deployment(
            name="dunning-invoice",
            description="The dunning loop for one invoice, on demand or on a webhook.",
            tags=["dunning"],
            triggers=[INVOICE_CHANGED],
        ),
        portfolio_report.to_deployment(
            name="portfolio-report",
            schedule=Cron("0 8 * * 1", timezone=tz),
            parameters={"recipients": os.environ.get("DUNNING_REPORT_TO", ""), "locale": "es_ES"},
            description=f"Weekly portfolio report to management, Monday 08:00 ({tz}).",
            tags=["dunning"],
        ),
        *([_replies()] if os.environ.get("DUNNING_REPLIES", "1") != "0" else []),
    ]


def _replies() -> RunnerDeployment:
    return process_replies.to_deployment(
        name="process-replies",
        interval=REPLIES_EVERY,
        parameters={"mailbox": os.environ.get("DUNNING_REPLIES_MAILBOX", "default") or None},
        triggers=[REPLY_RECEIVED],
        description=f"Read and act on customers' replies every {REPLIES_EVERY // 60} minutes.",
        tags=["dunning"],
    )


def main() -> None:
    serve(*deployments(), limit=4)


if __name__ == "__main__":
    main()

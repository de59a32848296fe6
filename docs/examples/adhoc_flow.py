"""An analyst's ad-hoc flow built from the pack's tasks: what would a sweep send, and what
does the portfolio look like, without sending anything.

Explained in docs/adhoc_flow.md; tests/test_tasks_reuse.py runs this very file.

Run it (with a Prefect server, or Prefect's ephemeral one):

    python docs/examples/adhoc_flow.py invoices.csv sqlite:///var/whatif.db

Point it at a copy of the ledger: `sync_ledger` records the file's invoices there.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from prefect import flow

from blocks import CsvInvoiceSource, LedgerDatabase
from dunning.plan import due_now
from dunning.policy import Policy, default_policy, today
from dunning.reports import report_numbers
from tasks.erp import fetch_open_invoices
from tasks.ledger import sync_ledger
from tasks.plan import plan_actions
from tasks.portfolio import compute_report, load_portfolio


@flow(name="what-would-go-out")
def what_would_go_out(
    invoices_csv: str,
    ledger_url: str,
    now: datetime | None = None,
    policy: Policy | None = None,
) -> dict[str, Any]:
    """The reminders a sweep would send at `now`, and the portfolio's headline numbers.

    Reads the invoice file (bad rows are quarantined and counted), records it in the
    ledger at `ledger_url` (use a copy: this writes), plans every invoice and reports the
    portfolio as of today in the policy's timezone. Nothing is sent.
    """
    policy = policy or default_policy()
    now = now or datetime.now(UTC)
    source = CsvInvoiceSource(path=invoices_csv)
    ledger = LedgerDatabase(url=ledger_url)

    fetched = fetch_open_invoices(source)
    sync_ledger(ledger, fetched.invoices, policy, now)
    planned = plan_actions(fetched.invoices, policy, ledger, now)
    report = compute_report(load_portfolio(ledger), today(policy, now))

    due = due_now(planned, now)
    return {
        "quarantined_rows": fetched.quarantined_rows,
        "would_send": due[["invoice", "stage", "channel"]].to_dict("records"),
        "skipped": planned["skip_reason"].value_counts().to_dict(),
        "portfolio": report_numbers(report),
    }


if __name__ == "__main__":
    print(what_would_go_out(sys.argv[1], sys.argv[2]))

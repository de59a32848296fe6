"""The core's sweep without Prefect (`dunning.sweep.run_sweep`), on a CSV file and SMTP.

The fault tests drive this directly (and as a subprocess, to be killed) where the fault is
not about Prefect: the same pipeline the `dunning-sweep` flow maps onto its tasks, with
plain functions as the steps, minus the server round trips. `retry_delays` stands in for
the send task's retries (temporary `NotSent`).

Run one sweep in a process of its own (prints `acting <n>` before the first send, then the
counts as JSON):

    python -m tests.faults.core --invoices inv.csv --ledger sqlite:///l.db --smtp-port 1025
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from dunning.act import EmailIdentity, Prepared, execute_action, prepare_batch
from dunning.action import Outcome, PlannedAction
from dunning.importers import ImportResult, read_invoice_file, to_invoice
from dunning.ledger import Ledger, SyncReport
from dunning.plan import plan
from dunning.policy import Policy, default_policy
from dunning.schema import Invoice
from dunning.smtp import SmtpPool, SmtpSettings
from dunning.sweep import act_in_batches, act_in_threads, run_sweep

NOW = datetime.fromisoformat("2026-12-09T10:00:00+01:00")  # a Wednesday, inside the window
IDENTITY = EmailIdentity(from_address="cobros@acme.example", from_name="Acme S.L.")


def csv_source(path: str) -> tuple[Callable[[], ImportResult], Callable[[str], Invoice | None]]:
    """`read` and `lookup` of a CSV file, as `CsvInvoiceSource` reads it (re-read per lookup
    batch: the file is the source's truth at send time)."""

    def read() -> ImportResult:
        return read_invoice_file(path)

    cache: dict[str, Any] = {}

    def lookup(number: str) -> Invoice | None:
        if "frame" not in cache:
            cache["frame"] = read().invoices.set_index("invoice_number", drop=False)
        frame = cache["frame"]
        return to_invoice(frame.loc[number].to_dict()) if number in frame.index else None

    return read, lookup


def sweep(
    read: Callable[[], ImportResult],
    lookup: Callable[[str], Invoice | None],
    ledger: Ledger,
    pool: SmtpPool,
    *,
    now: datetime = NOW,
    policy: Policy | None = None,
    identity: EmailIdentity = IDENTITY,
    workers: int = 8,
    retry_delays: Sequence[float] = (),
    attachments_root: str | None = None,
    on_acting: Callable[[int], None] | None = None,
    max_task_runs: int | None = 3,
) -> list[dict[str, Any]]:
    """One sweep; the outcome of every action as a dict (a failed one carries the error).

    As the flow acts beyond `max_task_runs` actions: in batches of whole customers, each
    re-checked and claimed together (`prepare_batch`), at most `max_task_runs` of them
    (the default, 3, makes every sweep here batch); None acts one action at a time, as the
    flow's `send-reminder` runs do up to `max_task_runs`."""
    policy = policy or default_policy()

    def sync(invoices: pd.DataFrame) -> SyncReport:
        return ledger.sync_invoices(invoices, now=now)

    def plan_all(invoices: pd.DataFrame) -> pd.DataFrame:
        return plan(invoices, policy, now, ledger.planning_state())

    def act_one(action: PlannedAction, prepared: Prepared | None = None) -> Outcome:
        return execute_action(
            action,
            ledger=ledger,
            policy=policy,
            lookup=lookup,
            pool=pool,
            identity=identity,
            now=now,
            attachments_root=attachments_root,
            prepared=prepared,
        )

    def prepare(actions: Sequence[PlannedAction]) -> list[Prepared | None]:
        return prepare_batch(actions, ledger=ledger, policy=policy, lookup=lookup, now=now)

    def act(actions: list[PlannedAction]) -> list[Outcome]:
        if on_acting:
            on_acting(len(actions))
        if max_task_runs is None:
            return act_in_threads(actions, act_one, workers=workers, retry_delays=retry_delays)
        return act_in_batches(
            actions,
            act_one,
            max_task_runs=max_task_runs,
            prepare=prepare,
            workers=workers,
            retry_delays=retry_delays,
        )

    summary = run_sweep(fetch=read, sync=sync, plan=plan_all, act=act, now=now)
    return summary.actions


def counts(outcomes: list[dict[str, Any]]) -> dict[str, int]:
    """`{"sent": n, "skipped:already_sent": m, "failed": k, ...}`."""
    return dict(
        Counter(
            o["status"] + (f":{o['reason']}" if o["status"] == "skipped" else "") for o in outcomes
        )
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one sweep of the core, no Prefect")
    parser.add_argument("--invoices", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--smtp-host", default="127.0.0.1")
    parser.add_argument("--invoice", action="append", default=[], help="per-invoice runs")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    ledger = Ledger(args.ledger)
    pool = SmtpPool(SmtpSettings(args.smtp_host, args.smtp_port, timeout=10), size=args.workers)
    read, lookup = csv_source(args.invoices)

    def acting(n: int) -> None:
        print(f"acting {n}", flush=True)

    outcomes: list[dict[str, Any]] = []
    if args.invoice:  # like dunning-invoice: one invoice per run, the others left alone
        for number in args.invoice:

            def read_one(number: str = number) -> ImportResult:
                full = read()
                inv = full.invoices
                return ImportResult(inv[inv["invoice_number"] == number])

            outcomes += sweep(read_one, lookup, ledger, pool, workers=1, on_acting=acting)
    else:
        outcomes = sweep(read, lookup, ledger, pool, workers=args.workers, on_acting=acting)
    pool.close()
    print(json.dumps({"counts": counts(outcomes), "outcomes": outcomes}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

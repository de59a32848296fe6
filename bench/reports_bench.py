"""Portfolio report throughput: compute, charts and email on 10k / 100k / 1M invoices.

The invoices are the IBM sample resampled (amounts, terms, days to settle, unchanged
distributions), spread over 24 months before the report day and over three currencies;
a quarter of them get a sent reminder in the ledger frames. The sample is read from
`DUNNING_DATA_DIR` (see `bench/realdata.py`). Run:
`python -m bench.reports_bench [N ...]` (default 10000 100000 1000000).
"""

from __future__ import annotations

import sys
import time
from datetime import date

import numpy as np
import pandas as pd

from bench.realdata import real_data_path
from dunning.reports import LedgerFrames, build_portfolio_report, load_ibm_sample

AS_OF = date(2026, 6, 30)


def portfolio(n: int, seed: int = 7) -> tuple[pd.DataFrame, LedgerFrames]:
    """`n` invoices shaped like the IBM sample, and a reminder for a quarter of them."""
    rng = np.random.default_rng(seed)
    ibm = load_ibm_sample(real_data_path("ibm_accounts_receivable.csv")).invoices
    pick = ibm.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    day = pd.Timestamp(AS_OF)
    issue = day - pd.to_timedelta(rng.integers(0, 730, n), unit="D")
    to_settle = (pick["closed_date"] - pick["issue_date"]).to_numpy()
    closed = issue + to_settle
    still_open = closed > day
    frame = pd.DataFrame(
        {
            "invoice_number": [f"B{i:07d}" for i in range(n)],
            "customer_id": pick["customer_id"],
            "customer_name": pick["customer_name"],
            "currency": rng.choice(["EUR", "USD", "MXN"], n, p=[0.7, 0.2, 0.1]),
            "amount_total": pick["amount_total"],
            "amount_due": np.where(still_open, pick["amount_total"], 0.0),
            "issue_date": issue,
            "due_date": issue + pd.Timedelta(days=30),
            "closed_date": pd.Series(closed).where(~still_open),
            "status": np.where(still_open, "open", "paid"),
        }
    )
    reminded = frame.sample(frac=0.25, random_state=seed)
    sent = reminded["due_date"] + pd.Timedelta(days=1, hours=9)
    actions = pd.DataFrame(
        {
            "key": reminded["invoice_number"] + ":overdue_1:email",
            "invoice_number": reminded["invoice_number"],
            "stage": "overdue_1",
            "channel": "email",
            "state": "sent",
            "sent_at": sent,
            "updated_at": sent,
            "delivery_status": "",
            "delivered_at": pd.NaT,
            "read_at": pd.NaT,
        }
    )
    return frame, LedgerFrames(actions=actions)


def main(sizes: list[int]) -> None:
    from dunning.charts import portfolio_charts
    from dunning.report_mail import build_report_email

    print("| invoices | compute | charts | email (HTML + XLSX) | email size |")
    print("|---:|---:|---:|---:|---:|")
    for n in sizes:
        frame, ledger = portfolio(n)
        t0 = time.perf_counter()
        report = build_portfolio_report(frame, AS_OF, ledger=ledger)
        t1 = time.perf_counter()
        charts = portfolio_charts(report, locale="es_ES")
        t2 = time.perf_counter()
        msg = build_report_email(report, charts, from_address="a@acme.es", to="b@acme.es")
        size = len(msg.as_bytes())
        t3 = time.perf_counter()
        print(
            f"| {n:,} | {t1 - t0:.2f} s | {t2 - t1:.2f} s | {t3 - t2:.2f} s "
            f"({len(report.open_items):,} open items) | {size / 1e6:.1f} MB |"
        )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000])

"""Portfolio reports in pure pandas: aging, DSO, CEI, days late, collections, reminders,
promises and disputes, per currency.

Every function takes frames, so it runs in a notebook on any data:

    >>> from datetime import date
    >>> from dunning.reports import aging, dso_countback, load_ibm_sample
    >>> ibm = load_ibm_sample("ibm_accounts_receivable.csv").invoices
    >>> aging(ibm, date(2013, 6, 30))
    >>> dso_countback(ibm, date(2013, 6, 30))

The invoice frame is described in `dunning.reports.frame`; the ledger's tables are read with
`read_ledger` and turned into an invoice frame with `from_ledger`. Formulas are in each
function's docstring.
"""

from dunning.reports.activity import (
    CONVERSION_DAYS,
    LedgerFrames,
    message_stats,
    open_disputes,
    open_task_stats,
    promise_stats,
    read_ledger,
    reminder_conversion,
)
from dunning.reports.frame import (
    REPORT_COLUMNS,
    InvoiceFrame,
    convert_currency,
    from_ledger,
    load_ibm_sample,
    normalize_invoices,
    read_invoice_table,
)
from dunning.reports.portfolio import (
    PortfolioInput,
    PortfolioReport,
    build_portfolio_report,
    portfolio_input,
    records,
    report_frames,
    report_markdown,
    report_numbers,
    report_tables,
)
from dunning.reports.receivables import (
    AGING_BUCKETS,
    aging,
    average_days_late,
    balances_at,
    cei,
    collections_by_week,
    credit_sales,
    dso_countback,
    dso_simple,
    dso_trend,
    open_items,
    receivables,
    top_overdue_customers,
)

__all__ = [
    "AGING_BUCKETS",
    "CONVERSION_DAYS",
    "REPORT_COLUMNS",
    "InvoiceFrame",
    "LedgerFrames",
    "PortfolioInput",
    "PortfolioReport",
    "aging",
    "average_days_late",
    "balances_at",
    "build_portfolio_report",
    "cei",
    "collections_by_week",
    "convert_currency",
    "credit_sales",
    "dso_countback",
    "dso_simple",
    "dso_trend",
    "from_ledger",
    "load_ibm_sample",
    "message_stats",
    "normalize_invoices",
    "open_disputes",
    "open_items",
    "open_task_stats",
    "portfolio_input",
    "promise_stats",
    "read_invoice_table",
    "read_ledger",
    "receivables",
    "records",
    "reminder_conversion",
    "report_frames",
    "report_markdown",
    "report_numbers",
    "report_tables",
    "top_overdue_customers",
]

"""The report's invoice frame: one row per invoice with issue, due and closing dates.

Every report function takes this frame, so analysts can run them on any data: the ledger
(`from_ledger`), an ERP export (`read_invoice_table`), or the IBM sample (`load_ibm_sample`).

Columns (`REPORT_COLUMNS`):

| column | meaning |
|---|---|
| invoice_number, customer_id, customer_name | identity (text) |
| currency | ISO 4217 code; amounts are only ever summed within one currency |
| amount_total | the invoice's amount: what it added to credit sales |
| amount_due | what is still owed now (0 when paid) |
| issue_date, due_date | days (datetime64, no time of day) |
| closed_date | the day it was paid or cancelled; empty while open |
| status | open, paid, cancelled or disputed |

Extra columns are kept (the IBM adapter adds `disputed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dunning.importers import require_columns, validate_invoices
from dunning.schema import (
    CLOSED_DATE,
    COLUMN_SYNONYMS,
    IBM_DATE_FORMAT,
    IBM_SAMPLE_COLUMNS,
    QUARANTINE_COLUMNS,
    file_line,
)

REPORT_COLUMNS: tuple[str, ...] = (
    "invoice_number",
    "customer_id",
    "customer_name",
    "currency",
    "amount_total",
    "amount_due",
    "issue_date",
    "due_date",
    "closed_date",
    "status",
)
_DATE_COLUMNS = ("issue_date", "due_date", "closed_date")


@dataclass
class InvoiceFrame:
    """Valid invoices for the reports, and one row per problem found in the input.

    `problems` has the quarantine layout (row, line, invoice_number, field, value, reason):
    `dunning.importers.describe_quarantine` turns it into lines. Rows with a problem that
    makes their numbers meaningless are left out of `invoices`; rows with a lesser problem
    (a paid invoice without its closing day) stay in, and the problem says how they count.
    """

    invoices: pd.DataFrame
    problems: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    )


def normalize_invoices(
    raw: pd.DataFrame,
    *,
    date_format: str | None = None,
    default_currency: str | None = None,
) -> InvoiceFrame:
    """Check and convert a frame of invoices (strings or typed values) for the reports.

    The cells are checked by the one invoice validator, `dunning.importers.validate_invoices`
    (the same statuses, currencies and row numbers as an invoice source); the reports
    require more columns and keep the source's other columns.

    Args:
        raw: one row per invoice with the columns of `REPORT_COLUMNS`; `paid_date` is read
            as `closed_date`; `amount_due` defaults to `amount_total` for open invoices and
            0 for closed ones; `customer_name` to `customer_id`; `status` to paid when a
            closing day is given, else open.
        date_format: `strftime` format of date cells (default: ISO 8601, `2026-12-01`).
        default_currency: currency of rows without one; without it the column is required,
            because amounts in different currencies are never summed together.

    Raises:
        ValueError: a required column is missing (the message lists the file's columns).

    Example:
        >>> frame = normalize_invoices(pd.read_csv("ar.csv", dtype=str))
        >>> frame.invoices, frame.problems
    """
    frame = raw.rename(columns=lambda c: str(c).strip())
    synonyms = {k: v for k, v in COLUMN_SYNONYMS.items() if v not in frame.columns}
    frame = frame.rename(columns=synonyms)
    required: list[str | tuple[str, ...]] = ["invoice_number", "issue_date", "due_date"]
    if default_currency is None:
        required.append("currency")
    require_columns(
        frame.columns,
        [*required, ("amount_total", "amount_due")],
        source="the invoice table",
        hint=f"Expected columns: {', '.join(REPORT_COLUMNS)}",
    )
    frame = frame.reset_index(drop=True)
    checked = validate_invoices(
        frame,
        date_format=date_format,
        default_currency=default_currency,
        required_dates=("issue_date", "due_date"),
    )
    out = checked.invoices
    out["customer_name"] = out["customer_name"].mask(out["customer_name"] == "", out["customer_id"])
    # A lesser problem: the row is kept, and the problem says how it counts.
    no_close_day = out["status"].isin(["paid", "cancelled"]) & out[CLOSED_DATE].isna()
    notes = pd.DataFrame(
        {
            "row": out.loc[no_close_day, "row"],
            "line": file_line(out.loc[no_close_day, "row"]),
            "invoice_number": out.loc[no_close_day, "invoice_number"],
            "field": CLOSED_DATE,
            "value": out.loc[no_close_day, "status"],
            "reason": "closed without a closing day: counted as closed before the report's "
            "dates (not in receivables, collections or days late); give closed_date",
        }
    )
    parts = [p for p in (checked.quarantine, notes) if len(p)]
    problems = (
        pd.concat(parts, ignore_index=True)
        .sort_values(["row", "field"], kind="stable")
        .reset_index(drop=True)
        if parts
        else checked.quarantine
    )
    extra = [c for c in frame.columns if c not in REPORT_COLUMNS and c != "paid_date"]
    return InvoiceFrame(invoices=out[[*REPORT_COLUMNS, *extra]], problems=problems)


def read_invoice_table(
    path: str | Path, *, date_format: str | None = None, default_currency: str | None = None
) -> InvoiceFrame:
    """Read a CSV or XLSX invoice table for the reports (the IBM sample is recognised).

    The table has the columns of `REPORT_COLUMNS` (see `normalize_invoices`); a file with the
    IBM sample's header (`invoiceNumber, InvoiceDate, DueDate, SettledDate, ...`) goes
    through `load_ibm_sample` instead.

    Raises:
        FileNotFoundError: the file is not there.
        ValueError: it lacks a required column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"invoice table {path} does not exist")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        raw = pd.read_excel(path, dtype=object, keep_default_na=False)
    else:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    if {"invoiceNumber", "InvoiceDate", "SettledDate"} <= set(raw.columns):
        return load_ibm_sample(raw, currency=default_currency or "USD")
    return normalize_invoices(raw, date_format=date_format, default_currency=default_currency)


def load_ibm_sample(source: str | Path | pd.DataFrame, *, currency: str = "USD") -> InvoiceFrame:
    """The IBM Watson "Accounts Receivable" sample as a report frame.

    Columns used: `invoiceNumber` (kept as text, leading zeros and all), `customerID` (id and
    name), `InvoiceAmount`, `InvoiceDate`, `DueDate`, `SettledDate` (the closing day; every
    row of the sample is settled, so at an earlier as-of date an invoice settled later is
    open), `Disputed` (kept as a boolean column `disputed`). Dates are `M/D/YYYY`. The
    sample names no currency: all rows get `currency`.

    Example:
        >>> ibm = load_ibm_sample("ibm_accounts_receivable.csv").invoices
        >>> aging(ibm, date(2013, 6, 30))
    """
    raw = (
        source
        if isinstance(source, pd.DataFrame)
        else pd.read_csv(source, dtype=str, keep_default_na=False)
    )
    ibm = raw.rename(columns=IBM_SAMPLE_COLUMNS)
    settled = ibm[CLOSED_DATE].astype(str).str.strip()
    frame = pd.DataFrame(
        {
            "invoice_number": ibm["invoice_number"],
            "customer_id": ibm["customer_id"],
            "customer_name": ibm["customer_id"],
            "currency": currency,
            "amount_total": ibm["amount_total"],
            "amount_due": np.where(settled == "", ibm["amount_total"], "0"),
            "issue_date": ibm["issue_date"],
            "due_date": ibm["due_date"],
            CLOSED_DATE: settled,
            "status": np.where(settled == "", "open", "paid"),
            "disputed": ibm["disputed"].astype(str).str.strip().str.lower() == "yes",
        }
    )
    return normalize_invoices(frame, date_format=IBM_DATE_FORMAT)


def from_ledger(ledger_invoices: pd.DataFrame, source: pd.DataFrame | None = None) -> pd.DataFrame:
    """The report frame of the ledger's `invoices` table, with issue dates from the source.

    The ledger does not store issue dates: `first_seen` (the first sweep that saw the
    invoice) stands in for them, so a ledger started on an existing portfolio shows all of
    it as sold that day and DSO is low until history builds up. Pass the source's invoice
    frame (`issue_date` column, from the importer) to use the real issue dates of the
    invoices it still lists. `closed_date` is the day the ledger recorded the invoice as paid
    or cancelled (`closed_at`: the first sweep after the payment, so up to a sweep late).
    Invoices the ledger has not seen yet are left out: the next sweep records them.
    """
    inv = ledger_invoices
    out = pd.DataFrame(
        {
            "invoice_number": inv["invoice_number"].astype(str),
            "customer_id": inv["customer_id"].astype(str),
            "customer_name": inv["customer_name"].astype(str),
            "currency": inv["currency"].astype(str),
            "amount_total": inv["amount_total"].astype("float64"),
            "amount_due": inv["amount_due"].astype("float64"),
            "issue_date": utc_day(inv["first_seen"]),
            "due_date": pd.to_datetime(inv["due_date"]).astype("datetime64[ns]"),
            "closed_date": utc_day(inv["closed_at"]),
            "status": inv["status"].astype(str),
        }
    )
    # The sync closes an invoice whose amount due reached 0 whatever the source's status.
    settled = (out["status"] == "open") & (out["amount_due"] <= 0.005) & out["closed_date"].notna()
    out.loc[settled, "status"] = "paid"
    if source is not None and len(source) and "issue_date" in source.columns:
        issued = (
            source.dropna(subset=["issue_date"])
            .drop_duplicates("invoice_number")
            .set_index("invoice_number")["issue_date"]
        )
        real = out["invoice_number"].map(pd.to_datetime(issued).dt.normalize())
        out["issue_date"] = real.fillna(out["issue_date"]).astype("datetime64[ns]")
    out["customer_name"] = out["customer_name"].mask(out["customer_name"] == "", out["customer_id"])
    return out


def convert_currency(
    invoices: pd.DataFrame, rates: dict[str, float], base_currency: str
) -> pd.DataFrame:
    """Every amount in `base_currency`, at fixed `rates` (units of base per unit of currency).

    Raises:
        ValueError: a currency of the frame has no rate (names it and how many invoices).

    Example:
        >>> convert_currency(frame, {"USD": 0.92, "MXN": 0.051}, "EUR")
    """
    base = base_currency.upper()
    table = {k.upper(): float(v) for k, v in rates.items()} | {base: 1.0}
    rate = invoices["currency"].map(table)
    if rate.isna().any():
        missing = invoices.loc[rate.isna(), "currency"].value_counts()
        detail = ", ".join(f"{c} ({n} invoices)" for c, n in missing.items())
        raise ValueError(
            f"no exchange rate to {base} for {detail}; add them to the rates, "
            "or report per currency (no rates)"
        )
    out = invoices.copy()
    out["amount_total"] = out["amount_total"] * rate
    out["amount_due"] = out["amount_due"] * rate
    out["currency"] = base
    return out


def utc_day(values: pd.Series) -> pd.Series:
    """Date-times (naive ones are UTC, as the ledger stores them) as UTC days."""
    stamps = pd.to_datetime(values, utc=True, errors="coerce")
    return stamps.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")

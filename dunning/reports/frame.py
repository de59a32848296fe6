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

from dunning.schema import QUARANTINE_COLUMNS

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
REPORT_STATUSES: tuple[str, ...] = ("open", "paid", "cancelled", "disputed")
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
    if "closed_date" not in frame.columns and "paid_date" in frame.columns:
        frame = frame.rename(columns={"paid_date": "closed_date"})
    required = ["invoice_number", "issue_date", "due_date"]
    if default_currency is None:
        required.append("currency")
    missing = [c for c in required if c not in frame.columns]
    if not ({"amount_total", "amount_due"} & set(frame.columns)):
        missing.append("amount_total or amount_due")
    if missing:
        raise ValueError(
            f"the invoice table has no column {', '.join(missing)}; it has "
            f"{list(frame.columns)}. Expected columns: {', '.join(REPORT_COLUMNS)}"
        )
    frame = frame.reset_index(drop=True)
    problems: list[pd.DataFrame] = []

    def flag(mask: pd.Series, column: str, reason: str, source: pd.Series) -> None:
        if mask.any():
            problems.append(
                pd.DataFrame(
                    {
                        "row": frame.index[mask] + 1,
                        "field": column,
                        "value": source[mask].astype(str).str.slice(0, 80),
                        "reason": reason,
                    }
                )
            )

    out = pd.DataFrame(index=frame.index)
    out["invoice_number"] = _text(frame["invoice_number"])
    flag(
        out["invoice_number"] == "",
        "invoice_number",
        "missing invoice number",
        out["invoice_number"],
    )
    out["customer_id"] = _text(frame.get("customer_id", pd.Series("", index=frame.index)))
    name = _text(frame.get("customer_name", pd.Series("", index=frame.index)))
    out["customer_name"] = name.mask(name == "", out["customer_id"])
    currency = _text(frame.get("currency", pd.Series("", index=frame.index))).str.upper()
    if default_currency:
        currency = currency.mask(currency == "", default_currency.upper())
    flag(
        ~currency.str.fullmatch(r"[A-Z]{3}"),
        "currency",
        "missing or invalid currency; use an ISO 4217 code such as EUR, USD, MXN",
        currency,
    )
    out["currency"] = currency

    for column in _DATE_COLUMNS:
        cells = frame.get(column, pd.Series(pd.NaT, index=frame.index))
        parsed = _to_day(cells, date_format)
        blank = _blank(cells)
        flag(
            ~blank & parsed.isna(),
            column,
            f"cannot read the date; expected {date_format or 'YYYY-MM-DD'}",
            cells,
        )
        if column != "closed_date":
            flag(blank, column, "missing date", cells)
        out[column] = parsed

    status_in = frame.get("status", pd.Series("", index=frame.index))
    status = _text(status_in).str.lower().replace({"canceled": "cancelled", "void": "cancelled"})
    status = status.mask(status == "", np.where(out["closed_date"].notna(), "paid", "open"))
    flag(
        ~status.isin(REPORT_STATUSES),
        "status",
        f"unknown status; use one of {', '.join(REPORT_STATUSES)} (empty: open, or paid when "
        "closed_date is given)",
        status_in,
    )
    out["status"] = status

    amounts = {}
    for column in ("amount_total", "amount_due"):
        cells = frame.get(column, pd.Series("", index=frame.index))
        number = pd.to_numeric(cells.where(~_blank(cells)), errors="coerce").astype("float64")
        flag(~_blank(cells) & number.isna(), column, "not a number", cells)
        flag(number < 0, column, "negative amount; credit notes are not invoices", cells)
        amounts[column] = number
    closed = out["status"].isin(["paid", "cancelled"])
    due = amounts["amount_due"].fillna(amounts["amount_total"].where(~closed, 0.0))
    out["amount_total"] = amounts["amount_total"].fillna(due)
    out["amount_due"] = due
    flag(
        out["amount_total"].isna(),
        "amount_total",
        "missing amount; give amount_total or amount_due",
        out["amount_total"],
    )

    dup = (out["invoice_number"] != "") & out["invoice_number"].duplicated(keep=False)
    flag(
        dup,
        "invoice_number",
        "duplicate invoice number; keep one row per invoice",
        out["invoice_number"],
    )

    bad_rows = (
        set(pd.concat(problems)["row"]) if problems else set()
    )  # every problem so far makes the row's numbers meaningless: left out
    no_close_day = out["status"].isin(["paid", "cancelled"]) & out["closed_date"].isna()
    flag(
        no_close_day,
        "closed_date",
        "closed without a closing day: counted as closed before the report's dates (not in "
        "receivables, collections or days late); give closed_date",
        out["status"],
    )
    for column in frame.columns:
        if column not in out.columns and column != "paid_date":
            out[column] = frame[column]
    keep = ~(out.index + 1).isin(bad_rows)
    return InvoiceFrame(
        invoices=out[keep].reset_index(drop=True),
        problems=_problem_frame(problems, out["invoice_number"]),
    )


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
        >>> ibm = load_ibm_sample("/work/shared/data/ibm_accounts_receivable.csv").invoices
        >>> aging(ibm, date(2013, 6, 30))
    """
    raw = (
        source
        if isinstance(source, pd.DataFrame)
        else pd.read_csv(source, dtype=str, keep_default_na=False)
    )
    settled = raw["SettledDate"].astype(str).str.strip()
    frame = pd.DataFrame(
        {
            "invoice_number": raw["invoiceNumber"],
            "customer_id": raw["customerID"],
            "customer_name": raw["customerID"],
            "currency": currency,
            "amount_total": raw["InvoiceAmount"],
            "amount_due": np.where(settled == "", raw["InvoiceAmount"], "0"),
            "issue_date": raw["InvoiceDate"],
            "due_date": raw["DueDate"],
            "closed_date": settled,
            "status": np.where(settled == "", "open", "paid"),
            "disputed": raw["Disputed"].astype(str).str.strip().str.lower() == "yes",
        }
    )
    return normalize_invoices(frame, date_format="%m/%d/%Y")


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


def _text(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), "").astype(str).str.strip()


def _blank(values: pd.Series) -> pd.Series:
    return values.isna() | (values.astype(object).astype(str).str.strip().isin(["", "NaT", "nan"]))


def _to_day(values: pd.Series, date_format: str | None) -> pd.Series:
    cells = values.where(~_blank(values))
    if pd.api.types.is_datetime64_any_dtype(cells):
        parsed = cells.dt.tz_convert(None) if cells.dt.tz is not None else cells
        return parsed.astype("datetime64[ns]").dt.normalize()
    cells = cells.astype(object)
    typed = cells.map(lambda v: hasattr(v, "year") or isinstance(v, np.datetime64))
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    if typed.any():  # date/datetime objects, e.g. from a spreadsheet or the ledger
        parsed[typed] = [_naive(pd.Timestamp(v)) for v in cells[typed]]
    text = ~typed & cells.notna()
    if text.any():
        parsed[text] = pd.to_datetime(
            cells[text].astype(str).str.strip(), format=date_format or "ISO8601", errors="coerce"
        )
    return parsed.dt.normalize()


def _naive(stamp: pd.Timestamp) -> pd.Timestamp:
    return stamp.tz_convert(None) if stamp.tzinfo is not None else stamp


def _problem_frame(problems: list[pd.DataFrame], numbers: pd.Series) -> pd.DataFrame:
    if not problems:
        return pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    q = pd.concat(problems, ignore_index=True)
    q["line"] = q["row"] + 1  # the header is line 1
    q["invoice_number"] = numbers.iloc[q["row"] - 1].to_numpy()
    return q.sort_values(["row", "field"], kind="stable").reset_index(drop=True)[
        list(QUARANTINE_COLUMNS)
    ]

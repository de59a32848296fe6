"""Payment history in one shape, read from the SAP line items, the IBM sample or the ledger.

Every reader returns a :class:`RiskData`: a *risk frame* with one row per invoice (the columns
of :data:`RISK_COLUMNS`, plus the categorical columns that source has) and a problems frame
(the columns of `dunning.schema.QUARANTINE_COLUMNS`) naming each bad row, the field and what
to do. A bad row never stops the others. `row` is the 0-based index of the data row in the
input file (for the ledger, the position in the query), so scores can be joined back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dunning.schema import (
    CLOSED_DATE,
    IBM_DATE_FORMAT,
    IBM_SAMPLE_COLUMNS,
    QUARANTINE_COLUMNS,
    file_line,
)

#: Columns every risk frame has: named as in the invoice schema (`dunning.schema`), except
#: three that the model's feature code reads under its own names: `invoice_id` (the schema's
#: `invoice_number`), `amount` (`amount_total`) and `paid_date` (the `closed_date` of a paid
#: invoice; a cancelled one is not paid). `paid_date` is NaT while unpaid; `disputed` is
#: 1/0/NaN and is only ever used through the customer's *past* invoices (a dispute is raised
#: after issue).
#: `valid` is False for rows that cannot be scored (their problems are reported);
#: `duplicate` marks exact copies of an earlier row, left out of training and history.
RISK_COLUMNS: tuple[str, ...] = (
    "row",
    "invoice_id",
    "customer_id",
    "issue_date",
    "due_date",
    "paid_date",
    "amount",
    "disputed",
    "valid",
    "duplicate",
)
#: Optional categorical columns a source may carry; all are known when the invoice is issued.
CATEGORICAL_COLUMNS: tuple[str, ...] = (
    "country",
    "currency",
    "channel",
    "terms_key",
    "company",
    "gl_account",
    "due_rule",
    "doc_type",
)
FORMATS: tuple[str, ...] = ("sap", "ibm", "ledger")

#: SAP FI line-item columns read, and what they are in the invoice schema's vocabulary.
_SAP_COLUMNS = {
    "KUNNR": "customer_id",
    "DOCUMENT_DATE": "issue_date",
    "DUE_DATE": "due_date",
    "PAYMENT_DATE": CLOSED_DATE,
    "VALUE_EUR": "amount_total",
    "TBSLT_LTEXT": "row type",
}
_SAP_CATEGORIES = {
    "KNA1_LAND1": "country",
    "ZTERM": "terms_key",
    "BUKRS": "company",
    "HKONT": "gl_account",
    "DUE_DATE_SOURCE": "due_rule",
    "BLART": "doc_type",
}


class RiskSourceError(Exception):
    """The history or invoice source as a whole cannot be read; the message says what to fix."""


@dataclass
class RiskData:
    """Invoices in the risk frame, the rows left out and why, and what was not an invoice.

    Attributes:
        frame: one row per invoice row of the source (`RISK_COLUMNS` + categoricals).
        problems: one line per problem (row, line, invoice_number, field, value, reason).
        not_invoices: count of data rows of each other row type (SAP credit memos, ...).
        rows_read: data rows in the source.
        notes: facts about the source worth printing (quirks handled, proxies used).
    """

    frame: pd.DataFrame
    problems: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    )
    not_invoices: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def categorical(self) -> list[str]:
        """The categorical columns this source carries."""
        return [c for c in CATEGORICAL_COLUMNS if c in self.frame.columns]


def read_source(source: str | Path, fmt: str) -> RiskData:
    """Read history or invoices in format `fmt` ('sap', 'ibm' or 'ledger' with a URL).

    Example:
        >>> data = read_source("sap_ar_2017_2018.csv.gz", "sap")
        >>> data.frame[["row", "customer_id", "issue_date", "due_date", "paid_date"]]
    """
    if fmt == "sap":
        return read_sap(source)
    if fmt == "ibm":
        return read_ibm(source)
    if fmt == "ledger":
        return read_ledger(str(source))
    raise RiskSourceError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def read_sap(path: str | Path) -> RiskData:
    """SAP FI customer line items (the `sap_ar_*.csv[.gz]` layout).

    Only rows whose type (`TBSLT_LTEXT`) is 'Invoice' are invoices; the other row types are
    counted in `not_invoices`. The issue date is `DOCUMENT_DATE` (epoch microseconds stored
    as a float), falling back to `DATUM` (YYYY-MM-DD) when that is empty; `PAYMENT_DATE` is
    YYYYMMDD. A due date before the document date (about a fifth of the rows) is kept: it
    is known at issue and the negative terms are a signal. Exact duplicate rows are marked.
    """
    raw = _read_csv(path, required=[*_SAP_COLUMNS, "DATUM"])
    kind = raw["TBSLT_LTEXT"].str.strip()
    is_invoice = kind.str.casefold() == "invoice"
    other = kind[~is_invoice].replace("", "(blank)").value_counts()
    inv = raw[is_invoice]
    out = pd.DataFrame({"row": inv.index.to_numpy()}, index=inv.index)
    out["invoice_id"] = ""
    out["customer_id"] = inv["KUNNR"].str.strip()
    micros = pd.to_numeric(inv["DOCUMENT_DATE"].str.strip(), errors="coerce")
    issue = pd.to_datetime(micros, unit="us", errors="coerce").dt.normalize()
    datum = pd.to_datetime(inv["DATUM"].str.strip(), format="%Y-%m-%d", errors="coerce")
    out["issue_date"] = issue.fillna(datum).astype("datetime64[ns]")
    out["due_date"] = pd.to_datetime(
        inv["DUE_DATE"].str.strip(), format="%Y-%m-%d", errors="coerce"
    )
    out["paid_date"] = pd.to_datetime(
        # Open items carry an empty or all-zero payment date.
        inv["PAYMENT_DATE"]
        .str.strip()
        .str.replace(r"\.0$", "", regex=True)
        .replace(r"^0*$", "", regex=True),
        format="%Y%m%d",
        errors="coerce",
    )
    out["amount"] = pd.to_numeric(inv["VALUE_EUR"].str.strip(), errors="coerce")
    mansp = inv["MANSP"].str.strip() if "MANSP" in inv else pd.Series("", index=inv.index)
    # The dunning block is the SAP line item's nearest thing to a dispute flag.
    out["disputed"] = (mansp != "").astype(float)
    for column, name in _SAP_CATEGORIES.items():
        if column in inv:
            out[name] = inv[column].str.strip().replace("", np.nan)
    problems = _check(
        out,
        inv,
        {
            "customer_id": ("KUNNR", "empty customer number; fill KUNNR"),
            "issue_date": (
                "DOCUMENT_DATE",
                "not epoch microseconds, and DATUM is not YYYY-MM-DD either",
            ),
            "due_date": ("DUE_DATE", "not a date in YYYY-MM-DD"),
            "amount": ("VALUE_EUR", "not a number (euros)"),
        },
        payment=("PAYMENT_DATE", "%Y%m%d"),
    )
    out["duplicate"] = inv.duplicated(keep="first").to_numpy()
    early_due = int((out["due_date"] < out["issue_date"]).sum())
    notes = [
        f"{int(out['duplicate'].sum())} invoice rows are exact duplicates of an earlier row: "
        "scored, but left out of training and of customers' history",
        f"{early_due} invoice rows have a due date before the document date: kept (negative "
        "terms, known at issue)",
    ]
    return RiskData(out, problems, other.to_dict(), rows_read=len(raw), notes=notes)


def read_ibm(path: str | Path) -> RiskData:
    """The IBM accounts-receivable sample (dates M/D/YYYY, every row an invoice).

    `PaperlessBill` is the invoice's channel when it was issued (it follows `PaperlessDate`),
    so it is a feature; `Disputed` happens after issue and is used only through the
    customer's past invoices. `DaysToSettle` and `DaysLate` are outcomes and never read.
    """
    raw = _read_csv(path, required=list(IBM_SAMPLE_COLUMNS))
    ibm = raw.rename(columns=IBM_SAMPLE_COLUMNS)  # the same reading as the reports'
    out = pd.DataFrame({"row": raw.index.to_numpy()}, index=raw.index)
    out["invoice_id"] = ibm["invoice_number"].str.strip()
    out["customer_id"] = ibm["customer_id"].str.strip()
    dates = {"issue_date": "issue_date", "due_date": "due_date", "paid_date": CLOSED_DATE}
    for name, column in dates.items():
        out[name] = pd.to_datetime(ibm[column].str.strip(), format=IBM_DATE_FORMAT, errors="coerce")
    out["amount"] = pd.to_numeric(ibm["amount_total"].str.strip(), errors="coerce")
    disputed = ibm["disputed"].str.strip().str.casefold()
    out["disputed"] = disputed.map({"yes": 1.0, "no": 0.0})
    out["channel"] = ibm["channel"].str.strip().replace("", np.nan)
    out["country"] = ibm["country"].str.strip().replace("", np.nan)
    problems = _check(
        out,
        raw,
        {
            "customer_id": ("customerID", "empty customer id; fill customerID"),
            "issue_date": ("InvoiceDate", "not a date in M/D/YYYY"),
            "due_date": ("DueDate", "not a date in M/D/YYYY"),
            "amount": ("InvoiceAmount", "not a number"),
        },
        payment=("SettledDate", "%m/%d/%Y"),
    )
    out["duplicate"] = raw.duplicated(keep="first").to_numpy()
    return RiskData(out, problems, {}, rows_read=len(raw))


def read_ledger(url: str) -> RiskData:
    """Every invoice the ledger has seen (`dunning.ledger`, e.g. sqlite:///var/ledger.db).

    The ledger does not store an invoice's issue date: `first_seen` (when a sweep first saw
    it) is used as the issue-date proxy, and `closed_at` of a paid invoice as its payment
    date (when a sweep saw it paid, so up to one sweep interval late). Cancelled invoices
    are neither paid nor late: they are marked invalid and left out. An invoice with an
    active or past dispute pause counts as disputed (used only through past invoices).
    """
    from dunning.ledger.reader import read_tables

    # As before the reader was shared: a ledger file that does not exist is created, empty.
    tables = read_tables(
        url, {"invoices": None, "pauses": ("kind", "invoice_number")}, must_exist=False
    )
    records = tables["invoices"].sort_values("invoice_number", kind="stable")
    records = records.reset_index(drop=True)
    disputes = tables["pauses"][tables["pauses"]["kind"] == "dispute"]
    out = pd.DataFrame({"row": records.index.to_numpy()})
    out["invoice_id"] = records["invoice_number"].astype(str)
    out["customer_id"] = records["customer_id"].fillna("").astype(str)
    out["issue_date"] = _naive_day(records["first_seen"])
    out["due_date"] = pd.to_datetime(records["due_date"], errors="coerce")
    paid = records["status"].eq("paid")
    out["paid_date"] = _naive_day(records["closed_at"]).where(paid)
    out["amount"] = pd.to_numeric(records["amount_total"], errors="coerce")
    out["disputed"] = out["invoice_id"].isin(set(disputes["invoice_number"].dropna())).astype(float)
    out["currency"] = records["currency"].fillna("").astype(str).replace("", np.nan)
    out["status"] = records["status"].astype(str)
    out["amount_due"] = pd.to_numeric(records["amount_due"], errors="coerce")
    problems = _check(
        out,
        records,
        {
            "customer_id": ("customer_id", "invoice has no customer id in the ledger"),
            "due_date": ("due_date", "invoice has no due date in the ledger"),
            "amount": ("amount_total", "invoice has no amount in the ledger"),
        },
    )
    cancelled = out["status"].eq("cancelled")
    out.loc[cancelled, "valid"] = False
    out["duplicate"] = False
    notes = [
        "ledger: issue date = first_seen (the ledger does not store the issue date); "
        "payment date = closed_at of paid invoices",
        f"{int(cancelled.sum())} cancelled invoices left out",
    ]
    return RiskData(out, problems, {}, rows_read=len(out), notes=notes)


def from_invoices(invoices: pd.DataFrame) -> pd.DataFrame:
    """The normalized invoice frame (`dunning.schema.INVOICE_COLUMNS`) as a risk frame.

    `amount_total` is the amount (or `amount_due` when the total is missing); the index is
    kept, so scores align with the caller's rows. Rows without a customer, issue date or due
    date are marked invalid (they get no score).
    """
    out = pd.DataFrame(index=invoices.index)
    out["row"] = np.arange(len(invoices))
    out["invoice_id"] = _text(invoices, "invoice_number")
    out["customer_id"] = _text(invoices, "customer_id")
    for name in ("issue_date", "due_date"):
        values = invoices[name] if name in invoices else pd.Series(pd.NaT, index=invoices.index)
        out[name] = pd.to_datetime(values, errors="coerce").dt.normalize()
        if getattr(out[name].dt, "tz", None) is not None:
            out[name] = out[name].dt.tz_localize(None)
    out["paid_date"] = pd.NaT
    total = _number(invoices, "amount_total")
    out["amount"] = total.where(total > 0, _number(invoices, "amount_due"))
    out["disputed"] = np.nan
    for name in ("country", "currency"):
        out[name] = _text(invoices, name).replace("", np.nan)
    out["valid"] = out["customer_id"].ne("") & out["issue_date"].notna() & out["due_date"].notna()
    out["duplicate"] = False
    return out


def empty_frame() -> pd.DataFrame:
    """A risk frame with no rows (and the right column types): history for a new ledger."""
    return pd.DataFrame(
        {
            "row": pd.Series(dtype="int64"),
            "invoice_id": pd.Series(dtype=object),
            "customer_id": pd.Series(dtype=object),
            "issue_date": pd.Series(dtype="datetime64[ns]"),
            "due_date": pd.Series(dtype="datetime64[ns]"),
            "paid_date": pd.Series(dtype="datetime64[ns]"),
            "amount": pd.Series(dtype=float),
            "disputed": pd.Series(dtype=float),
            "valid": pd.Series(dtype=bool),
            "duplicate": pd.Series(dtype=bool),
        }
    )


def combine_history(*frames: pd.DataFrame) -> pd.DataFrame:
    """Several risk frames as one history; a row found in an earlier frame (same customer,
    invoice id, dates, amount and categoricals) is marked a duplicate, so overlapping
    files do not count an invoice twice."""
    both = pd.concat(frames, ignore_index=True)
    key = [c for c in (*RISK_COLUMNS[1:8], *CATEGORICAL_COLUMNS) if c in both.columns]
    both["duplicate"] = both["duplicate"].astype(bool) | both.duplicated(subset=key)
    return both


# -- helpers ----------------------------------------------------------------------------------


def _read_csv(path: str | Path, required: list[str]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise RiskSourceError(f"{path} does not exist (resolved from {Path.cwd()})")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise RiskSourceError(f"{path} is empty; expected a header row and data rows") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise RiskSourceError(f"cannot read {path} as CSV: {exc}") from exc
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise RiskSourceError(
            f"{path} lacks the column(s) {', '.join(missing)}; is --format right? "
            f"(found: {', '.join(raw.columns[:12])})"
        )
    return raw.reset_index(drop=True)


def _check(
    out: pd.DataFrame,
    raw: pd.DataFrame,
    fields: dict[str, tuple[str, str]],
    payment: tuple[str, str] | None = None,
) -> pd.DataFrame:
    """Set `out['valid']` and return one problem line per bad required field."""
    parts = []
    bad_any = pd.Series(False, index=out.index)
    for name, (column, reason) in fields.items():
        bad = _missing(out[name])
        bad_any |= bad
        parts.append(_problems(out, raw, bad, column, reason + "; the row gets no score"))
    out["valid"] = ~bad_any
    if payment is not None:
        column, fmt = payment
        text = raw[column].astype(str).str.strip().str.replace(r"^0+(\.0)?$", "", regex=True)
        bad = out["paid_date"].isna() & text.ne("")
        reason = f"payment date is not {fmt}; the row is treated as unpaid (not in history)"
        parts.append(_problems(out, raw, bad, column, reason))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    found = pd.concat(parts, ignore_index=True).sort_values(["row", "field"], kind="stable")
    return found.reset_index(drop=True)


def _problems(
    out: pd.DataFrame, raw: pd.DataFrame, bad: pd.Series, column: str, reason: str
) -> pd.DataFrame:
    rows = out.loc[bad, "row"].to_numpy()
    return pd.DataFrame(
        {
            # A risk frame's `row` counts from 0 (it is the scores' join key): its file line
            # is that of the importers' row `row + 1`.
            "row": rows,
            "line": file_line(rows + 1),
            "invoice_number": out.loc[bad, "invoice_id"].to_numpy(),
            "field": column,
            "value": raw.loc[bad, column].astype(str).to_numpy() if column in raw else "",
            "reason": reason,
        }
    )


def _missing(values: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(values) or values.dtype == object:
        return values.isna() | values.astype(str).str.strip().eq("")
    return values.isna()


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series("", index=frame.index, dtype=object)
    return frame[column].fillna("").astype(str).str.strip()


def _number(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce")


def _naive_day(values: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(values, errors="coerce", utc=True)
    return stamps.dt.tz_localize(None).dt.normalize()

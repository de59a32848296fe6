"""Read invoice files (CSV, XLSX) into the normalized schema, quarantining bad rows.

Validation is vectorized: a 1M-row file is checked in a few seconds. A row with any problem
goes to the quarantine frame (one line per problem, with the row number, the field and what
to do) and is left out of the invoice frame; the rest of the file is processed. Problems with
the file itself (missing, undecodable, a mapped column that is not there) raise
:class:`SourceError` at once, because no row can be trusted then.
"""

from __future__ import annotations

import numbers
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from babel import Locale

from dunning.schema import (
    CHANNELS,
    CLOSED_DATE,
    CURRENCIES,
    DEFAULT_CURRENCY,
    INVOICE_COLUMNS,
    OPT_IN_VALUES,
    OPTIONAL_COLUMNS,
    QUARANTINE_COLUMNS,
    REQUIRED_COLUMNS,
    STATUS_ALIASES,
    STATUSES,
    Invoice,
    file_line,
    row_numbers,
)

_EMAIL = r"[^@\s,;<>]+@[^@\s,;<>]+\.[A-Za-z]{2,}"
_EMAIL_LIST = re.compile(rf"^\s*{_EMAIL}(\s*[;,]\s*{_EMAIL})*\s*$")
_COUNTRIES = frozenset(k for k in Locale("en").territories if len(k) == 2 and k.isalpha())
_TIMEZONES = frozenset(zoneinfo.available_timezones())


class SourceError(ValueError):
    """The invoice source as a whole cannot be read; the message says what to fix."""


@dataclass
class ImportResult:
    """Valid invoices in the normalized schema, and the rows that were quarantined."""

    invoices: pd.DataFrame
    quarantine: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    )

    @property
    def quarantined_rows(self) -> int:
        return int(self.quarantine["row"].nunique()) if len(self.quarantine) else 0


def read_invoice_file(
    path: str | Path,
    *,
    column_mapping: Mapping[str, str] | None = None,
    date_format: str = "%Y-%m-%d",
    decimal_separator: str = ".",
    delimiter: str = ",",
    encoding: str = "utf-8",
    sheet: str | int | None = None,
) -> ImportResult:
    """Read a CSV or XLSX file of invoices and validate it.

    Args:
        path: the file; `.xlsx`/`.xlsm` are read as spreadsheets, anything else as CSV.
        column_mapping: our field name -> the file's column name, for files whose headers
            differ from the default layout (see `dunning.schema.INVOICE_COLUMNS`).
        date_format: `strftime` format of `issue_date` and `due_date` cells.
        decimal_separator: "." or ","; with "," a "." is read as a thousands separator.
        delimiter: CSV field separator.
        encoding: CSV text encoding.
        sheet: worksheet name or index for spreadsheets (default: the first).

    Example:
        >>> result = read_invoice_file("invoices.csv", date_format="%d/%m/%Y")
        >>> result.invoices[["invoice_number", "amount_due"]]
        >>> result.quarantine  # row, line, invoice_number, field, value, reason
    """
    raw = _read_raw(
        Path(path),
        delimiter=delimiter,
        encoding=encoding,
        sheet=sheet,
        decimal_separator=decimal_separator,
    )
    return normalize(
        raw,
        column_mapping=column_mapping,
        date_format=date_format,
        decimal_separator=decimal_separator,
        source=str(path),
    )


def _read_raw(
    path: Path,
    *,
    delimiter: str,
    encoding: str,
    sheet: str | int | None,
    decimal_separator: str = ".",
) -> pd.DataFrame:
    if not path.is_file():
        raise SourceError(
            f"invoice file {path} does not exist; check the source's path "
            f"(it is resolved from {Path.cwd()})"
        )
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            raw = pd.read_excel(path, sheet_name=sheet or 0, dtype=object, keep_default_na=False)
            return raw.map(lambda cell: _cell_text(cell, decimal_separator))
        return pd.read_csv(
            path,
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding,
            skipinitialspace=True,
        )
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"cannot decode {path} as {encoding} (byte {exc.start}); "
            "set the source's encoding, for example latin-1 or cp1252"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise SourceError(f"{path} is empty; expected a header row and invoices") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise SourceError(f"cannot parse {path}: {exc}") from exc


def _cell_text(cell: object, decimal_separator: str) -> str:
    """A spreadsheet cell as text. Number cells are numbers whatever the declared decimal
    separator (which is for text cells), so they are written with it: 1234.56 -> "1234,56"."""
    if isinstance(cell, float):
        return repr(cell).replace(".", decimal_separator)
    return str(cell)


def normalize(
    raw: pd.DataFrame,
    *,
    column_mapping: Mapping[str, str] | None = None,
    date_format: str = "%Y-%m-%d",
    decimal_separator: str = ".",
    source: str = "the source",
) -> ImportResult:
    """Map, convert and validate a frame of raw string cells into the invoice schema.

    The source's `column_mapping` is applied (a missing required column raises
    :class:`SourceError`), then `validate_invoices` checks every cell; an empty currency is
    `dunning.schema.DEFAULT_CURRENCY`.
    """
    frame = _apply_mapping(raw, column_mapping or {}, source)
    checked = validate_invoices(
        frame,
        date_format=date_format,
        decimal_separator=decimal_separator,
        default_currency=DEFAULT_CURRENCY,
    )
    return ImportResult(
        invoices=checked.invoices.drop(columns=CLOSED_DATE), quarantine=checked.quarantine
    )


def require_columns(
    columns: Iterable[str],
    required: Iterable[str | tuple[str, ...]],
    *,
    source: str = "the source",
    hint: str = "",
) -> None:
    """Raise :class:`SourceError` naming every required column `columns` lacks.

    A tuple in `required` is a choice: one of its columns is enough.
    """
    columns = [str(c) for c in columns]
    present = set(columns)
    missing = [
        " or ".join(choice)
        for choice in ((r,) if isinstance(r, str) else r for r in required)
        if not present & set(choice)
    ]
    if missing:
        raise SourceError(
            f"{source} has no column {', '.join(missing)}; it has {columns}. {hint}".strip()
        )


def validate_invoices(
    frame: pd.DataFrame,
    *,
    date_format: str | None = "%Y-%m-%d",
    decimal_separator: str = ".",
    default_currency: str | None = DEFAULT_CURRENCY,
    required_dates: tuple[str, ...] = ("due_date",),
) -> ImportResult:
    """Check and convert a frame of invoices in our column names: the one invoice validator.

    The importers (CSV/XLSX and the ERP connectors) and the reports both go through it, so
    a cell means the same everywhere: one table of status aliases, one list of currencies,
    one row numbering (`dunning.schema.row_numbers`), one parser per kind of cell.

    Args:
        frame: one row per invoice; columns named as `dunning.schema.INVOICE_COLUMNS`,
            `OPTIONAL_COLUMNS` and `CLOSED_DATE` (an absent column is empty). Cells are
            text (from a file) or typed values (numbers, dates, from a spreadsheet or a
            database); empty cells, None and NaN are empty.
        date_format: `strftime` format of date cells given as text; None: ISO 8601.
        decimal_separator: "." or "," for amounts given as text.
        default_currency: currency of a row with an empty `currency`; None: an empty
            currency is a problem (amounts in different currencies are never summed).
        required_dates: date columns whose empty cell is a problem.

    Returns:
        The valid rows (column `row` first, then the schema's columns, then the frame's
        other columns as they were; rows with any problem left out; exact duplicate rows
        kept once) and one quarantine line per problem (row, line, invoice number, field,
        value, what to do).
    """
    frame = frame.reset_index(drop=True)
    blank_column = pd.Series("", index=frame.index, dtype=object)

    def cells(name: str) -> pd.Series:
        return frame[name] if name in frame.columns else blank_column

    def text(name: str) -> pd.Series:
        return _text(cells(name))

    problems: list[pd.DataFrame] = []

    def flag(mask: pd.Series, field_name: str, reason: str, value: pd.Series) -> None:
        if mask.any():
            problems.append(
                pd.DataFrame(
                    {
                        "idx": frame.index[mask],
                        "field": field_name,
                        "value": _text(value[mask]).str.slice(0, 80),
                        "reason": reason,
                    }
                )
            )

    out = pd.DataFrame(index=frame.index)
    for name in (
        "invoice_number",
        "customer_id",
        "customer_name",
        "phone",
        "payment_link",
        "pdf_path",
    ):
        out[name] = text(name)
    flag(
        out["invoice_number"] == "",
        "invoice_number",
        "missing invoice number",
        out["invoice_number"],
    )
    for name in ("invoice_number", "customer_id"):
        # Identifiers end up in keys and mail headers, where a line break cannot go.
        flag(
            out[name].str.contains(r"[\x00-\x1f\x7f]", regex=True),
            name,
            "contains a line break or control character; an identifier must be one line",
            out[name],
        )
    out["customer_id"] = out["customer_id"].mask(out["customer_id"] == "", out["customer_name"])

    out["email"] = text("email")
    flag(
        (out["email"] != "") & ~out["email"].str.match(_EMAIL_LIST),
        "email",
        "invalid email address; fix it or leave the cell empty (the customer then gets a "
        "human task instead of an email)",
        out["email"],
    )
    out["country"] = text("country").str.upper()
    flag(
        (out["country"] != "") & ~out["country"].isin(_COUNTRIES),
        "country",
        "unknown country; use an ISO 3166 alpha-2 code such as ES, MX, US",
        out["country"],
    )
    lang = text("language").str.replace("_", "-").str.lower()
    out["language"] = lang.str.split("-").str[0].fillna("")
    out["timezone"] = text("timezone")
    flag(
        (out["timezone"] != "") & ~out["timezone"].isin(_TIMEZONES),
        "timezone",
        "unknown timezone; use an IANA name such as Europe/Madrid or America/Mexico_City",
        out["timezone"],
    )
    currency = text("currency").str.upper()
    flag(
        (currency != "") & ~currency.isin(CURRENCIES),
        "currency",
        "unknown currency code; use ISO 4217 such as EUR, USD, MXN",
        currency,
    )
    if default_currency:
        currency = currency.mask(currency == "", default_currency.upper())
    flag(
        currency == "",
        "currency",
        "missing currency; give an ISO 4217 code such as EUR, USD, MXN",
        currency,
    )
    out["currency"] = currency

    dates = {}
    for name in ("issue_date", "due_date", CLOSED_DATE):
        raw_cells = cells(name)
        parsed = _to_date(raw_cells, date_format)
        blank = _text(raw_cells) == ""
        expected = (date_format or "%Y-%m-%d").replace("%Y", "YYYY")
        expected = expected.replace("%m", "MM").replace("%d", "DD")
        flag(
            ~blank & parsed.isna(),
            name,
            f"cannot read the date; expected {expected} (set the source's date_format)",
            raw_cells,
        )
        if name in required_dates:
            flag(blank, name, f"missing {name.replace('_', ' ')}", raw_cells)
        dates[name] = parsed

    status_text = text("status").str.lower()
    # An empty status is open, or paid when the source gives the day it was closed.
    status = status_text.mask(
        status_text == "", np.where(dates[CLOSED_DATE].notna(), "paid", "open")
    )
    status = status.map(lambda s: STATUS_ALIASES.get(s, s))
    flag(
        ~status.isin(STATUSES),
        "status",
        f"unknown status; use one of {', '.join(STATUSES)} (empty means open, or paid when "
        f"{CLOSED_DATE} is given)",
        status_text,
    )
    out["status"] = status

    for name in ("amount_total", "amount_due"):
        raw_cells = cells(name)
        number = _to_number(raw_cells, decimal_separator)
        flag(
            (_text(raw_cells) != "") & number.isna(),
            name,
            f"not a number (decimal separator is '{decimal_separator}')",
            raw_cells,
        )
        flag(
            number < 0,
            name,
            "negative amount; credit notes are not dunned, remove the row",
            raw_cells,
        )
        out[name] = number
    flag(
        (text("amount_total") == "") & (text("amount_due") == ""),
        "amount_due",
        "missing amount; give amount_due or amount_total",
        text("amount_due"),
    )
    # An unknown amount due on an open invoice means nothing has been paid yet.
    unknown_due = out["amount_due"].isna()
    out.loc[unknown_due, "amount_due"] = out.loc[unknown_due, "amount_total"].where(
        out.loc[unknown_due, "status"].isin(["open", "disputed"]), 0.0
    )
    out["amount_total"] = out["amount_total"].fillna(out["amount_due"])
    for name, parsed in dates.items():
        out[name] = parsed

    out["preferred_channel"] = text("preferred_channel").str.lower()
    flag(
        (out["preferred_channel"] != "") & ~out["preferred_channel"].isin(CHANNELS),
        "preferred_channel",
        f"unknown channel; use one of {', '.join(CHANNELS)} (empty: the policy's order)",
        out["preferred_channel"],
    )
    opt_in = text("whatsapp_opt_in").str.lower()
    out["whatsapp_opt_in"] = opt_in.map(OPT_IN_VALUES).fillna("")
    flag(
        (opt_in != "") & (out["whatsapp_opt_in"] == ""),
        "whatsapp_opt_in",
        "not a yes/no value; write true/false, yes/no, sí/no or 1/0 (empty: unknown)",
        opt_in,
    )

    for name in frame.columns:
        if name not in out.columns:  # not ours: kept as the source gave it
            out[name] = frame[name]
    out.insert(0, "row", row_numbers(len(out)))
    out = out.astype({"row": "int64"})
    problems.extend(_duplicate_problems(out))
    quarantine = _quarantine_frame(problems, out)
    good = out[~out["row"].isin(set(quarantine["row"]))]
    good = good.drop_duplicates(subset=[c for c in good.columns if c != "row"])
    return ImportResult(invoices=good.reset_index(drop=True), quarantine=quarantine)


def _apply_mapping(raw: pd.DataFrame, mapping: Mapping[str, str], source: str) -> pd.DataFrame:
    raw = raw.rename(columns=lambda c: str(c).strip())
    unknown_fields = sorted(set(mapping) - set(INVOICE_COLUMNS) - set(OPTIONAL_COLUMNS))
    if unknown_fields:
        raise SourceError(
            f"column mapping of {source} names unknown fields {unknown_fields}; "
            f"fields are {', '.join((*INVOICE_COLUMNS, *OPTIONAL_COLUMNS))}"
        )
    missing = {f: c for f, c in mapping.items() if c not in raw.columns}
    if missing:
        raise SourceError(
            f"column mapping of {source} refers to columns not in the file: "
            + ", ".join(f"{f} -> '{c}'" for f, c in missing.items())
            + f"; the file has {list(raw.columns)}"
        )
    columns = {f: mapping.get(f, f) for f in (*INVOICE_COLUMNS, *OPTIONAL_COLUMNS)}
    require_columns(
        raw.columns,
        [columns[f] for f in REQUIRED_COLUMNS],
        source=source,
        hint="Rename the headers or set the source's column_mapping (field -> column)",
    )
    frame = pd.DataFrame(index=raw.index)
    for f, c in columns.items():
        frame[f] = raw[c].astype(str) if c in raw.columns else ""
    return frame


def _text(values: pd.Series) -> pd.Series:
    """Cells as stripped text; None, NaN and NaT are empty."""
    if pd.api.types.infer_dtype(values, skipna=True) == "string":
        return values.fillna("").str.strip()
    return values.astype(object).where(values.notna(), "").astype(str).str.strip()


def _typed(cells: pd.Series, kinds: tuple[type, ...]) -> pd.Series:
    """Which cells hold a value of `kinds` (a number, a date) rather than text."""
    if pd.api.types.infer_dtype(cells, skipna=True) in ("string", "empty"):
        return pd.Series(False, index=cells.index)
    return cells.map(lambda v: isinstance(v, kinds) and not isinstance(v, bool))


def _to_number(cells: pd.Series, decimal_separator: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(cells) and not pd.api.types.is_bool_dtype(cells):
        return cells.astype("float64")
    typed = _typed(cells, (numbers.Number,))
    text = _text(cells).mask(typed, "")
    cleaned = text.str.replace(r"[\s\u00a0'€$£]", "", regex=True)
    thousands = "." if decimal_separator == "," else ","
    # A thousands separator only between groups of three digits (1.234.567,89): a cell in
    # the other convention ("1,234.5" with decimal ",") is not a number, not 1.2345.
    t, d = re.escape(thousands), re.escape(decimal_separator)
    wellformed = cleaned.str.fullmatch(rf"[-+]?(\d{{1,3}}(?:{t}\d{{3}})+|\d*)(?:{d}\d*)?")
    cleaned = cleaned.str.replace(thousands, "", regex=False)
    if decimal_separator == ",":
        cleaned = cleaned.str.replace(",", ".", regex=False)
    cleaned = cleaned.mask((cleaned == "") | ~wellformed.astype(bool))
    number = pd.to_numeric(cleaned, errors="coerce").astype("float64")
    if typed.any():  # numbers from a spreadsheet or a database
        number[typed] = pd.to_numeric(cells[typed], errors="coerce").astype("float64")
    return number


def _to_date(cells: pd.Series, date_format: str | None) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(cells):
        naive = cells.dt.tz_convert(None) if cells.dt.tz is not None else cells
        return naive.astype("datetime64[ns]").dt.normalize()
    typed = _typed(cells, (date, np.datetime64))
    text = _text(cells)
    parsed = pd.to_datetime(
        text.mask(typed | (text == "")), format=date_format or "ISO8601", errors="coerce"
    )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(None)
    parsed = parsed.astype("datetime64[ns]")
    # Spreadsheets hand dates over as timestamps whatever the declared format.
    looks_iso = parsed.isna() & ~typed & text.str.match(r"^\d{4}-\d{2}-\d{2} 00:00:00$")
    if looks_iso.any():
        parsed[looks_iso] = pd.to_datetime(text[looks_iso].str.slice(0, 10), format="%Y-%m-%d")
    if typed.any():  # date objects, e.g. from a spreadsheet or a database
        stamps = [pd.Timestamp(v) for v in cells[typed]]
        parsed[typed] = [s.tz_convert(None) if s.tzinfo is not None else s for s in stamps]
    return parsed.dt.normalize()


def _duplicate_problems(out: pd.DataFrame) -> list[pd.DataFrame]:
    numbered = out[out["invoice_number"] != ""]
    dup = numbered["invoice_number"].duplicated(keep=False)
    if not dup.any():
        return []
    copies = numbered[dup]
    variants = copies.drop(columns="row").astype(str).drop_duplicates()
    conflicting = variants["invoice_number"][variants["invoice_number"].duplicated()].unique()
    bad = copies[copies["invoice_number"].isin(conflicting)]
    if bad.empty:
        return []
    rows_of = bad.groupby("invoice_number")["row"].apply(lambda r: ", ".join(map(str, r)))
    return [
        pd.DataFrame(
            {
                "idx": bad.index,
                "field": "invoice_number",
                "value": bad["invoice_number"],
                "reason": "duplicate invoice number with different data (rows "
                + bad["invoice_number"].map(rows_of)
                + "); keep one row per invoice",
            }
        )
    ]


def _quarantine_frame(problems: list[pd.DataFrame], out: pd.DataFrame) -> pd.DataFrame:
    if not problems:
        return pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    q = pd.concat(problems, ignore_index=True)
    q["row"] = out.loc[q["idx"], "row"].to_numpy()
    q["line"] = file_line(q["row"])
    q["invoice_number"] = out.loc[q["idx"], "invoice_number"].to_numpy()
    q = q.sort_values(["row", "field"], kind="stable").reset_index(drop=True)
    return q[list(QUARANTINE_COLUMNS)]


def describe_quarantine(quarantine: pd.DataFrame) -> list[str]:
    """One human-readable line per quarantined problem, for stderr and the run artifact."""
    return [
        f"quarantined row {r.row} (line {r.line}) invoice {r.invoice_number or '?'}: "
        f"{r.field} = {r.value!r}: {r.reason}"
        for r in quarantine.itertuples()
    ]


def _is_missing(value: object) -> bool:
    return value is None or (not isinstance(value, str | bool) and bool(pd.isna(value)))


def to_invoice(row: Mapping[str, object]) -> Invoice:
    """One row of the invoice frame as an `Invoice` (missing dates become None)."""
    values = {k: row[k] for k in (*INVOICE_COLUMNS, *OPTIONAL_COLUMNS) if k in row}
    for name in OPTIONAL_COLUMNS:
        if _is_missing(values.get(name)):
            values.pop(name, None)
    for name in ("issue_date", "due_date"):
        value = values.get(name)
        values[name] = None if value is None or pd.isna(value) else pd.Timestamp(value).date()
    return Invoice.model_validate(values)

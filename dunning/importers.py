"""Read invoice files (CSV, XLSX, XLS, ODS) into the normalized schema, quarantining bad rows.

Validation is vectorized: a 1M-row file is checked in a few seconds. A row with any problem
goes to the quarantine frame (one line per problem, with the row number, the field and what
to do) and is left out of the invoice frame; the rest of the file is processed. Problems with
the file itself (missing, undecodable, a mapped column that is not there) raise
:class:`SourceError` at once, because no row can be trusted then.
"""

from __future__ import annotations

import codecs
import difflib
import numbers
import re
import warnings
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow
import yaml
from babel import Locale
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dunning.schema import (
    CHANNELS,
    CLOSED_DATE,
    CURRENCIES,
    DEFAULT_CURRENCY,
    HEADER_SYNONYMS,
    INVOICE_COLUMNS,
    OPT_IN_VALUES,
    OPTIONAL_COLUMNS,
    PEOPLE_COLUMNS,
    PEOPLE_HEADER_ALIASES,
    QUARANTINE_COLUMNS,
    REQUIRED_COLUMNS,
    STATUS_ALIASES,
    STATUSES,
    Invoice,
    file_line,
    header_key,
    row_numbers,
    status_word_key,
)

_EMAIL = r"[^@\s,;<>]+@[^@\s,;<>]+\.[A-Za-z]{2,}"
_EMAIL_LIST = re.compile(rf"^\s*{_EMAIL}(\s*[;,]\s*{_EMAIL})*\s*$")
_ONE_EMAIL = re.compile(rf"^{_EMAIL}$")
_COUNTRIES = frozenset(k for k in Locale("en").territories if len(k) == 2 and k.isalpha())
_TIMEZONES = frozenset(zoneinfo.available_timezones())


class SourceError(ValueError):
    """The invoice source as a whole cannot be read; the message says what to fix."""


#: Spreadsheet file suffixes, each read by pandas with its engine (openpyxl, xlrd, odfpy);
#: anything else is read as CSV.
SPREADSHEET_SUFFIXES: tuple[str, ...] = (".xlsx", ".xlsm", ".xls", ".ods")
#: What a mapping file holds, for `dunning init` to write and users to copy.
MAPPING_FILE_EXAMPLE = """\
# How to read your invoice file (dunning plan/sweep --mapping FILE; dunning import check).
# Our field -> your column header. Fields: invoice_number and due_date are required;
# customer_id, customer_name, email, phone, country, language, timezone, currency,
# amount_total, amount_due, issue_date, status, payment_link, pdf_path, preferred_channel,
# whatsapp_opt_in, owner_email and manager_email are read when mapped or when a header has
# that name (owner_email also from a "Vendedor"/"Comercial"/"Salesperson" column,
# manager_email from a "Jefe"/"Supervisor"/"Sales manager" column).
column_mapping:
  invoice_number: "Nº factura"
  customer_name: "Cliente"
  email: "Correo"
  amount_due: "Importe pendiente"
  due_date: "Vencimiento"
  status: "Estado"
date_format: "%d/%m/%Y"      # quote it: YAML reads a leading % as a directive
decimal_separator: ","       # "." or ","
thousands_separator: "."     # ".", ",", " ", "'" or "" (default: the other of . and ,)
delimiter: ";"               # CSV only
encoding: "utf-8"            # CSV only; latin-1 or cp1252 for older exports
sheet: 0                     # spreadsheets only: the sheet's name or its position from 0
# Your status words -> open, paid, cancelled or disputed (English, Spanish and Portuguese
# words such as pendiente, vencida, pagada, cobrada, anulada, em aberto are known already).
status_mapping:
  en revisión: disputed
"""


class ReadOptions(BaseModel):
    """How to read an invoice file laid out by someone else: the one model of these options.

    `blocks.CsvInvoiceSource` has a field of the same name for each, the command line reads
    them from a mapping file (`load_mapping_file`), `read_invoice_file` applies them. Unknown
    names are errors: a misspelt option must not be silently ignored.
    """

    model_config = ConfigDict(extra="forbid")

    column_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Our field -> the file's column header, for headers that differ.",
    )
    date_format: str = Field("%Y-%m-%d", description="strftime format of date cells.")
    decimal_separator: Literal[".", ","] = Field(".", description='"." or ",".')
    thousands_separator: Literal[".", ",", " ", "'", ""] | None = Field(
        None,
        description='Digit group separator: ".", ",", " ", "\'" or "" (none); '
        'default: "," with a decimal point and "." with a decimal comma.',
    )
    delimiter: str = Field(",", min_length=1, description="CSV field separator.")
    encoding: str = Field("utf-8", description="CSV text encoding.")
    sheet: str | int | None = Field(
        None, description="Spreadsheet sheet: its name or position from 0 (default: first)."
    )
    status_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="The file's status words -> open, paid, cancelled or disputed, besides "
        "the English, Spanish and Portuguese words known already.",
    )

    @field_validator("column_mapping", mode="before")
    @classmethod
    def _headers_as_text(cls, value: object) -> object:
        # YAML reads a header such as 2026 or yes as a number or a boolean.
        if isinstance(value, Mapping):
            return {str(k).strip(): str(v).strip() for k, v in value.items()}
        return value

    @field_validator("column_mapping")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        fields = (*INVOICE_COLUMNS, *OPTIONAL_COLUMNS)
        unknown = [f for f in value if f not in fields]
        if unknown:
            raise ValueError(
                f"unknown field {', '.join(map(repr, unknown))}; the fields are "
                f"{', '.join(fields)} (our field -> your header)"
            )
        return value

    @field_validator("status_mapping", mode="before")
    @classmethod
    def _statuses(cls, value: object) -> object:
        if not isinstance(value, Mapping):
            return value
        mapping = {status_word_key(str(k)): str(v).strip().lower() for k, v in value.items()}
        wrong = {k: v for k, v in mapping.items() if v not in STATUSES}
        if wrong:
            raise ValueError(
                "maps "
                + ", ".join(f"{k!r} to {v!r}" for k, v in wrong.items())
                + f"; a status is one of {', '.join(STATUSES)}"
            )
        return mapping

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"unknown encoding {value!r}; use for example utf-8, latin-1 or cp1252"
            ) from None
        return value

    @model_validator(mode="after")
    def _separators_differ(self) -> ReadOptions:
        if self.thousands_separator == self.decimal_separator:
            raise ValueError(
                f"decimal_separator and thousands_separator are both "
                f"{self.decimal_separator!r}; they must differ"
            )
        return self

    @classmethod
    def build(
        cls, options: ReadOptions | Mapping[str, Any] | None = None, *, source: str = "", **fields
    ) -> ReadOptions:
        """`options` (a model or a plain mapping) with `fields` on top, checked; raises
        :class:`SourceError` naming each bad or unknown key and the allowed keys."""
        base = options.model_dump() if isinstance(options, ReadOptions) else dict(options or {})
        try:
            return cls.model_validate({**base, **fields})
        except ValidationError as exc:
            raise SourceError(_options_error(exc, source or "the reading options")) from None


def _options_error(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key {key!r}; the keys are {', '.join(ReadOptions.model_fields)}")
        else:
            lines.append(f"{key}: {message}" if key else message)
    return f"{where}: " + "; ".join(lines)


def load_mapping_file(path: str | Path) -> ReadOptions:
    """Read a mapping file: YAML with `ReadOptions`' keys (see `MAPPING_FILE_EXAMPLE`).

    Raises:
        SourceError: the file is missing, is not YAML, is not a mapping, or has an unknown
            key or a bad value (the message names the key and the allowed keys).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"mapping file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise SourceError(
            f"mapping file {path} is not valid YAML ({exc}); quote values that start with % "
            'or contain ": ", for example date_format: "%d/%m/%Y"'
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SourceError(
            f"mapping file {path} must be a mapping of keys "
            f"({', '.join(ReadOptions.model_fields)}), not a {type(data).__name__}"
        )
    return ReadOptions.build(data, source=f"mapping file {path}")


def release_freed_memory() -> None:
    """Hand back to the system the memory pyarrow's allocator kept after frames were freed
    (it keeps it for reuse: ~600 MB after reading a 1M-invoice CSV, which a long sweep
    would otherwise carry to its end)."""
    pyarrow.default_memory_pool().release_unused()


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
    path: str | Path, options: ReadOptions | Mapping[str, Any] | None = None, **fields: Any
) -> ImportResult:
    """Read a CSV or spreadsheet file of invoices and validate it.

    Args:
        path: the file; `.xlsx`, `.xlsm`, `.xls` and `.ods` are read as spreadsheets,
            anything else as CSV.
        options: how to read it (`ReadOptions`, or a mapping of its fields).
        **fields: `ReadOptions` fields on top of `options`: `column_mapping` (our field ->
            the file's header), `date_format`, `decimal_separator`, `thousands_separator`,
            `delimiter`, `encoding`, `sheet`, `status_mapping`.

    Raises:
        SourceError: the file cannot be read, or a required column is not found (the
            message suggests the closest headers).

    Example:
        >>> result = read_invoice_file("invoices.csv", date_format="%d/%m/%Y")
        >>> result = read_invoice_file("facturas.ods", load_mapping_file("mapping.yaml"))
        >>> result.invoices[["invoice_number", "amount_due"]]
        >>> result.quarantine  # row, line, invoice_number, field, value, reason
    """
    opts = ReadOptions.build(options, **fields)
    return normalize(_read_raw(Path(path), opts), opts, source=str(path))


@dataclass
class FileCheck:
    """What `check_invoice_file` understood of a file, for a person to confirm."""

    rows: int
    #: Our field -> the file's header it is read from.
    columns: dict[str, str]
    #: Our optional fields the file has no column for -> close headers (did you mean).
    not_found: dict[str, list[str]]
    #: The file's headers no field reads.
    unused: list[str]
    #: Each status word as written (stripped) -> the status understood, or "" (unknown).
    statuses: dict[str, str]
    result: ImportResult


def check_invoice_file(
    path: str | Path, options: ReadOptions | Mapping[str, Any] | None = None, **fields: Any
) -> FileCheck:
    """Read a file as `read_invoice_file` does and say how: which header feeds which field,
    what is not found, how each status word is read, and the result.

    Raises:
        SourceError: as `read_invoice_file`.
    """
    opts = ReadOptions.build(options, **fields)
    raw = _read_raw(Path(path), opts).rename(columns=lambda c: str(c).strip())
    columns = match_columns(list(raw.columns), opts.column_mapping, str(path))
    result = normalize(raw, opts, source=str(path))
    used = set(columns.values())
    words = raw[columns["status"]] if "status" in columns else pd.Series([], dtype=str)
    aliases = status_aliases(opts.status_mapping)
    return FileCheck(
        rows=len(raw),
        columns=columns,
        not_found={
            f: suggest_headers(f, [h for h in raw.columns if h not in used])
            for f in (*INVOICE_COLUMNS, *OPTIONAL_COLUMNS)
            if f not in columns
        },
        unused=[h for h in raw.columns if h not in used],
        statuses={
            w: aliases.get(status_word_key(w), "")
            for w in _text(words).unique()
            if w  # an empty status is open, or paid with a closed_date
        },
        result=result,
    )


def _read_raw(path: Path, options: ReadOptions) -> pd.DataFrame:
    if not path.is_file():
        raise SourceError(
            f"invoice file {path} does not exist; check the source's path "
            f"(it is resolved from {Path.cwd()})"
        )
    try:
        if path.suffix.lower() in SPREADSHEET_SUFFIXES:
            return _read_spreadsheet(path, options)
        encoding = options.encoding
        return pd.read_csv(
            path,
            sep=options.delimiter,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding,
            skipinitialspace=True,
        )
    except SourceError:
        raise
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"cannot decode {path} as {options.encoding} (byte {exc.start}); "
            "set the source's encoding, for example latin-1 or cp1252"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise SourceError(f"{path} is empty; expected a header row and invoices") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise SourceError(f"cannot parse {path}: {exc}") from exc


def _read_spreadsheet(path: Path, options: ReadOptions) -> pd.DataFrame:
    with warnings.catch_warnings():
        # pandas 3 deprecates its xlrd engine in favour of calamine; xlrd is pinned, and
        # tests/test_spreadsheets.py reads a real .xls, so its removal cannot go unnoticed.
        warnings.filterwarnings("ignore", message="The xlrd engine is deprecated")
        return _read_book(path, options)


def _read_book(path: Path, options: ReadOptions) -> pd.DataFrame:
    try:
        book = pd.ExcelFile(path)
    except Exception as exc:  # each engine (openpyxl, xlrd, odfpy) raises its own errors
        raise SourceError(
            f"cannot read {path} as a {path.suffix} spreadsheet ({exc}); if it is a CSV or "
            "HTML export named like a spreadsheet, rename it to .csv or save it as .xlsx"
        ) from exc
    with book:
        sheets = [str(name) for name in book.sheet_names]
        sheet = options.sheet if options.sheet is not None else 0
        if (isinstance(sheet, str) and sheet not in sheets) or (
            isinstance(sheet, int) and not 0 <= sheet < len(sheets)
        ):
            raise SourceError(
                f"{path} has no sheet {sheet!r}; its sheets are {sheets} "
                "(set sheet to a name, or a position counted from 0)"
            )
        try:
            raw = pd.read_excel(book, sheet_name=sheet, dtype=object, keep_default_na=False)
        except Exception as exc:  # each engine (openpyxl, xlrd, odfpy) raises its own errors
            raise SourceError(f"cannot read sheet {sheet!r} of {path}: {exc}") from exc
    return raw.map(lambda cell: _cell_text(cell, options.decimal_separator))


def _cell_text(cell: object, decimal_separator: str) -> str:
    """A spreadsheet cell as text. Number cells are numbers whatever the declared decimal
    separator (which is for text cells), so they are written with it: 1234.56 -> "1234,56"."""
    if isinstance(cell, float):
        return repr(cell).replace(".", decimal_separator)
    return str(cell)


def normalize(
    raw: pd.DataFrame,
    options: ReadOptions | Mapping[str, Any] | None = None,
    *,
    source: str = "the source",
    **fields: Any,
) -> ImportResult:
    """Map, convert and validate a frame of raw cells into the invoice schema.

    The options' `column_mapping` is applied (a missing required column raises
    :class:`SourceError` with the closest headers), then `validate_invoices` checks every
    cell with the options' formats and status words; an empty currency is
    `dunning.schema.DEFAULT_CURRENCY`. `options` and `fields` are as in `read_invoice_file`.
    """
    opts = ReadOptions.build(options, **fields)
    frame = _apply_mapping(raw, opts.column_mapping, source)
    checked = validate_invoices(
        frame,
        date_format=opts.date_format,
        decimal_separator=opts.decimal_separator,
        thousands_separator=opts.thousands_separator,
        default_currency=DEFAULT_CURRENCY,
        status_mapping=opts.status_mapping,
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
    thousands_separator: str | None = None,
    status_mapping: Mapping[str, str] | None = None,
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
        thousands_separator: digit group separator of amounts given as text; None: "," with
            a decimal point, "." with a decimal comma.
        status_mapping: a source's own status words (in `status_word_key` form) -> status,
            on top of `dunning.schema.STATUS_ALIASES`.

    Returns:
        The valid rows (column `row` first, then the schema's columns, then the frame's
        other columns as they were; rows with any problem left out; exact duplicate rows
        kept once) and one quarantine line per problem (row, line, invoice number, field,
        value, what to do).
    """
    frame = frame.reset_index(drop=True)
    blank_column = pd.Series("", index=frame.index, dtype=object)
    # Each column is stripped once, however many checks read it (a million rows each).
    texts: dict[str, pd.Series] = {}

    def cells(name: str) -> pd.Series:
        return frame[name] if name in frame.columns else blank_column

    def text(name: str) -> pd.Series:
        if name not in texts:
            texts[name] = _text(cells(name))
        return texts[name]

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
    # A customer's address repeats on each of its invoices: each distinct cell is matched
    # once (the regex in Python, per row, took seconds on a million rows).
    bad_emails = [v for v in out["email"].unique() if v and not _EMAIL_LIST.match(v)]
    flag(
        out["email"].isin(bad_emails),
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
    # A handful of distinct language cells: each is split once, not each row.
    lang = text("language")
    distinct = pd.Series(lang.unique(), dtype=lang.dtype)
    first = distinct.str.replace("_", "-").str.lower().str.split("-").str[0].fillna("")
    out["language"] = lang.map(dict(zip(distinct, first, strict=True))).astype(first.dtype)
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
        parsed = _to_date(raw_cells, date_format, text(name))
        blank = text(name) == ""
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

    status_text = text("status")
    aliases = status_aliases(status_mapping)
    # Each distinct word is keyed once: a million rows hold a handful of status words.
    status = status_text.map({w: aliases.get(status_word_key(w), "") for w in status_text.unique()})
    # An empty status is open, or paid when the source gives the day it was closed.
    status = status.mask(status_text == "", np.where(dates[CLOSED_DATE].notna(), "paid", "open"))
    flag(
        status == "",
        "status",
        f"unknown status; {accepted_status_words(status_mapping)} (empty means open, or paid "
        f"when {CLOSED_DATE} is given), or map the word in the mapping file's status_mapping",
        status_text,
    )
    out["status"] = status

    for name in ("amount_total", "amount_due"):
        raw_cells = cells(name)
        number = _to_number(raw_cells, decimal_separator, thousands_separator, text(name))
        flag(
            (text(name) != "") & number.isna(),
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
    for name in PEOPLE_COLUMNS:
        # One address each: it is who gets the task and the internal email. A bad one
        # quarantines the row (like a bad customer email) rather than silently sending the
        # task to the policy's default owner. A portfolio has few salespeople: each distinct
        # cell is checked and lower-cased once (a million rows in milliseconds).
        given = text(name)
        distinct = given.unique()
        lowered = {v: v.lower() for v in distinct}
        out[name] = given if lowered == {"": ""} else given.map(lowered)
        bad = [v for v in distinct if v and not _ONE_EMAIL.match(v)]
        flag(
            given.isin(bad),
            name,
            "not one email address; write the person's email (empty: the policy's owners "
            "default), or map another column to it in the mapping file's column_mapping",
            given,
        )

    for name in frame.columns:
        if name not in out.columns:  # not ours: kept as the source gave it
            out[name] = frame[name]
    out.insert(0, "row", row_numbers(len(out)))
    out = out.astype({"row": "int64"})
    problems.extend(_duplicate_problems(out))
    quarantine = _quarantine_frame(problems, out)
    good = out
    if len(quarantine):  # a copy of every column only when some row is left out
        good = out[~out["row"].isin(set(quarantine["row"]))]
    good = _drop_duplicate_rows(good)
    return ImportResult(invoices=good.reset_index(drop=True), quarantine=quarantine)


def _drop_duplicate_rows(good: pd.DataFrame) -> pd.DataFrame:
    """`good` with each exact duplicate row (all columns but `row`) kept once, the first.

    Rows equal in every column share their invoice number (an empty one is quarantined), so
    only the rows whose number repeats are compared column by column; hashing all sixteen
    columns of a million rows took seconds for the usual answer, no duplicates.
    """
    repeated = good["invoice_number"].duplicated(keep=False)
    if not repeated.any():
        return good
    candidates = good[repeated]
    again = candidates.duplicated(subset=[c for c in good.columns if c != "row"])
    if not again.any():
        return good
    return good.drop(index=candidates.index[again])


def _apply_mapping(raw: pd.DataFrame, mapping: Mapping[str, str], source: str) -> pd.DataFrame:
    raw = raw.rename(columns=lambda c: str(c).strip())
    columns = match_columns(list(raw.columns), mapping, source)
    frame = pd.DataFrame(index=raw.index)
    for f in (*INVOICE_COLUMNS, *OPTIONAL_COLUMNS):
        frame[f] = raw[columns[f]].astype(str) if f in columns else ""
    return frame


def match_columns(headers: list[str], mapping: Mapping[str, str], source: str) -> dict[str, str]:
    """Our field -> the header it is read from: the mapped header, else the header named
    like the field. Raises :class:`SourceError` when a mapped header is not in the file or a
    required field has no column, suggesting the closest headers ("did you mean")."""
    unknown_fields = sorted(set(mapping) - set(INVOICE_COLUMNS) - set(OPTIONAL_COLUMNS))
    if unknown_fields:
        raise SourceError(
            f"column mapping of {source} names unknown fields {unknown_fields}; "
            f"fields are {', '.join((*INVOICE_COLUMNS, *OPTIONAL_COLUMNS))}"
        )
    present = set(headers)
    unmapped = [h for h in headers if h not in set(mapping.values())]
    missing = {f: h for f, h in mapping.items() if h not in present}
    if missing:
        lines = [
            f"column mapping of {source} refers to columns not in the file: "
            + ", ".join(f"{f} -> '{h}'" for f, h in missing.items())
            + f"; the file has {headers}"
        ]
        for f, h in missing.items():
            close = suggest_headers(f, unmapped, also=h)
            if close:
                lines.append(
                    f"no column '{h}' for {f}: did you mean '{close[0]}'? "
                    "fix it in the mapping file's column_mapping"
                )
        raise SourceError("\n".join(lines))
    columns = {
        f: mapping.get(f, f)
        for f in (*INVOICE_COLUMNS, *OPTIONAL_COLUMNS)
        if mapping.get(f, f) in present
    }
    taken = set(columns.values())
    for f in PEOPLE_COLUMNS:
        if f not in columns:
            known = PEOPLE_HEADER_ALIASES[f]
            found = [h for h in headers if h not in taken and header_key(h) in known]
            if len(found) == 1:  # two candidates: ambiguous, the user maps one
                columns[f] = found[0]
    absent = [f for f in REQUIRED_COLUMNS if f not in columns]
    if absent:
        lines = []
        for f in absent:
            close = suggest_headers(f, unmapped)
            if close:
                lines.append(
                    f"no column '{f}': did you mean '{close[0]}'? map it in the mapping file "
                    f'(column_mapping: {{{f}: "{close[0]}"}})'
                )
            else:
                lines.append(
                    f"no column '{f}'; map the file's column for it in the mapping file "
                    f'(column_mapping: {{{f}: "<your header>"}})'
                )
        lines.append(
            f"{source} has the columns {headers}; rename the headers or set the source's "
            "column_mapping (field -> column)"
        )
        raise SourceError("\n".join(lines))
    return columns


def suggest_headers(field_name: str, headers: Iterable[str], *, also: str = "") -> list[str]:
    """The headers closest to our field `field_name` (best first, at most three): compared
    without case or accents against the field's name, its well-known Spanish, Portuguese and
    English headers (`dunning.schema.HEADER_SYNONYMS`) and `also` (a misspelt header)."""
    names = {header_key(field_name), *HEADER_SYNONYMS.get(field_name, ())}
    if also:
        names.add(header_key(also))
    scores: dict[str, float] = {}
    for header in headers:
        key = header_key(str(header))
        best = max(difflib.SequenceMatcher(None, key, name).ratio() for name in names)
        if best >= 0.75:
            scores[str(header)] = best
    return sorted(scores, key=lambda h: -scores[h])[:3]


def status_aliases(status_mapping: Mapping[str, str] | None = None) -> dict[str, str]:
    """The status words understood (`status_word_key` form) -> status: the schema's
    `STATUS_ALIASES` with a source's own `status_mapping` on top."""
    own = {status_word_key(k): v for k, v in (status_mapping or {}).items()}
    return {**STATUS_ALIASES, **own}


def accepted_status_words(status_mapping: Mapping[str, str] | None = None) -> str:
    """ "open: unpaid, pendiente, ...; paid: ..." - every word understood, by status, for the
    quarantine reason of an unknown status."""
    by_status: dict[str, list[str]] = {s: [] for s in STATUSES}
    for word, status in status_aliases(status_mapping).items():
        by_status[status].append(word)
    return "accepted words: " + "; ".join(
        f"{status}: {', '.join(words)}" for status, words in by_status.items()
    )


def _text(values: pd.Series) -> pd.Series:
    """Cells as stripped text; None, NaN and NaT are empty."""
    if pd.api.types.infer_dtype(values, skipna=True) == "string":
        filled = values.fillna("")
        if filled.dtype == object:
            # Python strings (an ERP's records, the blank column of an absent field):
            # `.str.strip()` would run per row in Python; each distinct cell is stripped once.
            codes, uniques = pd.factorize(filled)
            stripped = np.array([u.strip() for u in uniques], dtype=object)
            return pd.Series(stripped[codes], index=filled.index, name=filled.name, dtype=object)
        return filled.str.strip()
    return values.astype(object).where(values.notna(), "").astype(str).str.strip()


def _typed(cells: pd.Series, kinds: tuple[type, ...]) -> pd.Series:
    """Which cells hold a value of `kinds` (a number, a date) rather than text."""
    if pd.api.types.infer_dtype(cells, skipna=True) in ("string", "empty"):
        return pd.Series(False, index=cells.index)
    return cells.map(lambda v: isinstance(v, kinds) and not isinstance(v, bool))


def _to_number(
    cells: pd.Series,
    decimal_separator: str,
    thousands_separator: str | None = None,
    text: pd.Series | None = None,
) -> pd.Series:
    """`cells` as float64 (NaN: empty or not a number); `text` is `_text(cells)` if known."""
    if pd.api.types.is_numeric_dtype(cells) and not pd.api.types.is_bool_dtype(cells):
        return cells.astype("float64")
    typed = _typed(cells, (numbers.Number,))
    text = (_text(cells) if text is None else text).mask(typed, "")
    # Spaces and apostrophes (1 234,56; 1'234.56) and currency signs are always dropped.
    # Most cells are bare digits and separators: only the others go through the regex,
    # which runs in Python (per row) because of its Unicode classes.
    cleaned = text
    other = ~text.str.fullmatch(r"[-+0-9.,]*").astype(bool)
    if other.any():
        cleaned = text.mask(other, text[other].str.replace(r"[\s\u00a0'€$£]", "", regex=True))
    if thousands_separator is None:
        thousands_separator = "." if decimal_separator == "," else ","
    # A thousands separator only between groups of three digits (1.234.567,89): a cell in
    # the other convention ("1,234.5" with decimal ",") is not a number, not 1.2345.
    d = re.escape(decimal_separator)
    if thousands_separator in (".", ","):
        t = re.escape(thousands_separator)
        wellformed = cleaned.str.fullmatch(rf"[-+]?(\d{{1,3}}(?:{t}\d{{3}})+|\d*)(?:{d}\d*)?")
        cleaned = cleaned.str.replace(thousands_separator, "", regex=False)
    else:
        wellformed = cleaned.str.fullmatch(rf"[-+]?\d*(?:{d}\d*)?")
    if decimal_separator == ",":
        cleaned = cleaned.str.replace(",", ".", regex=False)
    cleaned = cleaned.mask((cleaned == "") | ~wellformed.astype(bool))
    number = pd.to_numeric(cleaned, errors="coerce").astype("float64")
    if typed.any():  # numbers from a spreadsheet or a database
        number[typed] = pd.to_numeric(cells[typed], errors="coerce").astype("float64")
    return number


def _to_date(cells: pd.Series, date_format: str | None, text: pd.Series | None = None) -> pd.Series:
    """`cells` as midnight datetime64[ns] (NaT: empty or not a date in `date_format`);
    `text` is `_text(cells)` if known."""
    if pd.api.types.is_datetime64_any_dtype(cells):
        naive = cells.dt.tz_convert(None) if cells.dt.tz is not None else cells
        return naive.astype("datetime64[ns]").dt.normalize()
    typed = _typed(cells, (date, np.datetime64))
    text = _text(cells) if text is None else text
    parsed = pd.to_datetime(
        text.mask(typed | (text == "")), format=date_format or "ISO8601", errors="coerce"
    )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(None)
    parsed = parsed.astype("datetime64[ns]")
    # Spreadsheets hand dates over as timestamps whatever the declared format.
    # Only the unread, non-empty cells are matched: the regex runs per row in Python.
    unread = parsed.isna() & ~typed & (text != "")
    looks_iso = pd.Series(False, index=text.index)
    if unread.any():
        looks_iso[unread] = text[unread].str.match(r"^\d{4}-\d{2}-\d{2} 00:00:00$").astype(bool)
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

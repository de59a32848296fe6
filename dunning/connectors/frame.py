"""From API records to the normalized invoice frame, vectorized, with the CSV quarantine.

Each connector turns a list of records (one page or the whole read) into a frame of raw
cells with our column names; `to_result` then runs the same validation as a CSV import
(`dunning.importers.normalize`), so a bad record is quarantined with its row number, the
field and what is wrong, exactly as a bad CSV row is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from babel.numbers import get_currency_precision

from dunning.importers import ImportResult, normalize
from dunning.schema import INVOICE_COLUMNS, OPTIONAL_COLUMNS, QUARANTINE_COLUMNS


def to_result(raw: pd.DataFrame, source: str) -> ImportResult:
    """Validate raw cells (INVOICE_COLUMNS, OPTIONAL_COLUMNS; any dtype) like a CSV import.

    Missing values (None, NaN, Odoo's `False`) become empty cells; numbers must already be
    plain decimal text (see `amount_text`), dates `YYYY-MM-DD` (see `unix_dates`).
    """
    frame = pd.DataFrame(index=raw.index)
    for column in INVOICE_COLUMNS:
        frame[column] = text(raw[column]) if column in raw else ""
    for column in OPTIONAL_COLUMNS:  # channel preference and consent, when the API has them
        if column in raw:
            frame[column] = text(raw[column])
    if frame.empty:
        return ImportResult(
            invoices=normalize(_empty_frame(), source=source).invoices,
            quarantine=pd.DataFrame(columns=list(QUARANTINE_COLUMNS)),
        )
    return normalize(frame.reset_index(drop=True), source=source)


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="str") for c in INVOICE_COLUMNS})


def text(values: pd.Series) -> pd.Series:
    """Cells as text; None, NaN and `False` (Odoo's "no value") become ''."""
    obj = values.astype(object)
    missing = obj.isna() | obj.map(lambda v: v is False)
    return obj.where(~missing, "").astype(str).astype("str")


def decimals_of(currencies: pd.Series) -> pd.Series:
    """ISO 4217 minor-unit digits of each currency code (2 when unknown)."""
    codes = currencies.fillna("").astype(str).str.upper()
    table = {c: _precision(c) for c in codes.unique()}
    return codes.map(table).astype("int64")


def _precision(code: str) -> int:
    try:
        return int(get_currency_precision(code)) if code else 2
    except Exception:  # an unknown code is quarantined by the currency check
        return 2


def amount_text(amounts: pd.Series, decimals: pd.Series | int = 2) -> pd.Series:
    """Numbers as plain decimal text rounded to the currency's digits; non-numbers kept as is.

    Rounding first removes float residue such as Holded's 4.547e-13 still "pending" on a paid
    invoice, and never writes exponents the importer would reject.
    """
    number = pd.to_numeric(amounts, errors="coerce")
    digits = (
        pd.Series(decimals, index=amounts.index)
        if not isinstance(decimals, pd.Series)
        else decimals
    )
    out = text(amounts)
    ok = number.notna()
    if ok.any():
        scaled = number[ok].to_numpy(dtype="float64")
        d = digits[ok].to_numpy(dtype="int64")
        rounded = np.round(scaled * 10.0**d) / 10.0**d
        rounded = np.where(np.abs(rounded) < 0.5 * 10.0**-d, 0.0, rounded)  # no "-0.00"
        formatted = [f"{v:.{n}f}" for v, n in zip(rounded, d, strict=True)]
        out.loc[ok] = formatted
    return out


def unix_dates(values: pd.Series, timezone: str = "UTC", *, unit: str = "s") -> pd.Series:
    """Unix timestamps as `YYYY-MM-DD` in `timezone`; empty stays empty, other text as is.

    The date of a timestamp depends on where it is read: Holded stores midnight in Madrid
    (23:00 UTC the day before), so the block's timezone decides the calendar day.
    """
    out = text(values)
    number = pd.to_numeric(values, errors="coerce")
    ok = number.notna()
    if ok.any():
        stamps = pd.to_datetime(number[ok], unit=unit, utc=True).dt.tz_convert(timezone)
        out.loc[ok] = stamps.dt.strftime("%Y-%m-%d")
    return out


def iso_dates(values: pd.Series) -> pd.Series:
    """ISO 8601 dates or date-times as `YYYY-MM-DD` (the date as written); other text as is."""
    out = text(values)
    dated = out.str.match(r"^\d{4}-\d{2}-\d{2}([T ].*)?$")
    out.loc[dated] = out[dated].str.slice(0, 10)
    return out


def records_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Records as a frame with dotted column names for nested objects (`customer.address`)."""
    if not records:
        return pd.DataFrame()
    return pd.json_normalize(list(records), sep=".")


def column(frame: pd.DataFrame, name: str, default: Any = "") -> pd.Series:
    """A column, or a column of `default` when no record had the field."""
    if name in frame:
        return frame[name]
    return pd.Series([default] * len(frame), index=frame.index, dtype=object)


def first_of(frames: Iterable[pd.Series]) -> pd.Series:
    """Element-wise first non-empty value of several text series."""
    series = list(frames)
    out = text(series[0])
    for more in series[1:]:
        out = out.mask(out == "", text(more))
    return out


def many2one_id(values: pd.Series) -> pd.Series:
    """Odoo many2one cells (`[id, "name"]` or False) as the id, or <NA>."""
    first = values.map(lambda v: v[0] if isinstance(v, list | tuple) and v else None)
    return pd.to_numeric(first, errors="coerce").astype("Int64")


def many2one_name(values: pd.Series) -> pd.Series:
    """Odoo many2one cells as the display name ('' when empty)."""
    return text(values.map(lambda v: v[1] if isinstance(v, list | tuple) and len(v) > 1 else None))

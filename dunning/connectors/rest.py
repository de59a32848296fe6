"""Any JSON API: an in-house ERP or billing system, described by settings instead of code.

The settings say where the list of invoices is (`url`, `records_path`), how to page through
it (`page`, `offset`, `cursor` or the `Link` header), and where each of our fields is in a
record (`field_mapping`, dotted paths such as `customer.email` or `lines.0.amount`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import pandas as pd

from dunning.connectors.frame import (
    amount_text,
    decimals_of,
    iso_dates,
    records_frame,
    text,
    to_result,
    unix_dates,
)
from dunning.connectors.http import ConnectorError, HttpClient, stale
from dunning.importers import ImportResult, SourceError, to_invoice
from dunning.schema import INVOICE_COLUMNS, OPTIONAL_COLUMNS, REQUIRED_COLUMNS, Invoice

Pagination = Literal["none", "page", "offset", "cursor", "link"]
MAX_PAGES = 100_000


@dataclass
class RestSettings:
    """How to read invoices from one JSON API (the fields of the REST source block).

    Example (an API answering `{"data": [...], "next": "abc"}` at /v2/invoices):
        >>> RestSettings(url="https://erp.example/v2/invoices", records_path="data",
        ...              pagination="cursor", cursor_param="after", next_cursor_path="next",
        ...              field_mapping={"invoice_number": "number",
        ...                             "email": "customer.email", "amount_due": "balance"})
    """

    url: str
    records_path: str = ""
    pagination: Pagination = "page"
    page_param: str = "page"
    first_page: int = 1
    page_size_param: str = "per_page"
    page_size: int = 100
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    next_cursor_path: str = "next_cursor"
    cursor_record_field: str = ""
    has_more_path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    field_mapping: dict[str, str] = field(default_factory=dict)
    status_mapping: dict[str, str] = field(default_factory=dict)
    date_format: str = "iso"
    timezone: str = "UTC"
    amounts_in_minor_units: bool = False
    changed_since_param: str = ""
    changed_since_format: Literal["iso", "unix"] = "iso"
    item_url: str = ""
    item_path: str = ""


class RestInvoices:
    """Invoices from a JSON API described by `RestSettings`, in the normalized schema."""

    def __init__(self, http: HttpClient, settings: RestSettings, *, source: str = "") -> None:
        self.http = http
        self.s = settings
        self.source = source or settings.url
        unknown = sorted(set(settings.field_mapping) - set(INVOICE_COLUMNS + OPTIONAL_COLUMNS))
        if unknown:
            raise SourceError(
                f"{http.name}: field_mapping names unknown fields {unknown}; "
                f"our fields are {', '.join(INVOICE_COLUMNS + OPTIONAL_COLUMNS)}"
            )
        self._cache: ImportResult | None = None
        self._read_at: float | None = None

    @property
    def supports_changes(self) -> bool:
        """True when the API can filter by modification time (`changed_since_param`)."""
        return bool(self.s.changed_since_param)

    def read(self) -> ImportResult:
        """Every record of every page."""
        self._cache = self._result([r for page in self.pages(dict(self.s.query)) for r in page])
        self._read_at = time.monotonic()
        return self._cache

    def read_changed_since(self, since: datetime) -> ImportResult:
        """The records the API reports changed since `since` (needs `changed_since_param`)."""
        if not self.s.changed_since_param:
            raise ConnectorError(
                f"{self.http.name}: set changed_since_param to read only what changed"
            )
        value: Any = (
            int(since.timestamp())
            if self.s.changed_since_format == "unix"
            else since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        params = {**self.s.query, self.s.changed_since_param: value}
        return self._result([r for page in self.pages(params) for r in page])

    def get_invoice(self, invoice_number: str) -> Invoice | None:
        """The invoice now: from `item_url` when set, else from the list (read again when the
        last read is older than a minute: set `item_url` for a true re-check)."""
        if self.s.item_url:
            url = self.s.item_url.format(invoice_number=quote(invoice_number, safe=""))
            try:
                body = self.http.get_json(url)
            except ConnectorError as exc:
                if exc.status == 404:
                    return None
                raise
            record = dig(body, self.s.item_path) if self.s.item_path else body
            if not isinstance(record, dict):
                return None
            result = self._result([record])
        elif self._cache is not None and not stale(self._read_at):
            result = self._cache
        else:
            result = self.read()
        found = result.invoices[result.invoices["invoice_number"] == invoice_number]
        return None if found.empty else to_invoice(found.iloc[0].to_dict())

    # -- paging ---------------------------------------------------------------------------
    def pages(self, params: Mapping[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Pages of records in the configured pagination style."""
        s = self.s
        url: str = s.url
        query: dict[str, Any] | None = dict(params)
        page, offset, cursor = s.first_page, 0, None
        previous: list[Any] | None = None
        for _ in range(MAX_PAGES):
            if query is not None and s.pagination != "none":
                query[s.page_size_param] = s.page_size
                if s.pagination == "page":
                    query[s.page_param] = page
                elif s.pagination == "offset":
                    query[s.offset_param] = offset
                elif cursor is not None:
                    query[s.cursor_param] = cursor
            response = self.http.request("GET", url, params=query)
            try:
                body = response.json()
            except ValueError as exc:
                raise ConnectorError(
                    f"{self.http.name}: GET {url} did not answer JSON; check the url"
                ) from exc
            records = dig(body, s.records_path) if s.records_path else body
            if not isinstance(records, list):
                raise ConnectorError(
                    f"{self.http.name}: records_path {s.records_path!r} of the answer from "
                    f"{url} is {type(records).__name__}, not a list of records; set records_path"
                    + (
                        f" (the answer has keys {sorted(body)[:10]})"
                        if isinstance(body, dict)
                        else ""
                    )
                )
            records = [r for r in records if isinstance(r, dict)]
            if records:
                if previous is not None and records[:1] == previous[:1] and s.pagination != "none":
                    raise ConnectorError(
                        f"{self.http.name}: two pages of {url} start with the same record; "
                        "the API ignored the paging parameter, check the pagination settings"
                    )
                previous = records
                yield records
            if s.pagination == "none" or not records:
                return
            if s.has_more_path and not dig(body, s.has_more_path):
                return
            if s.pagination == "page":
                page += 1
            elif s.pagination == "offset":
                offset += len(records)
            elif s.pagination == "cursor":
                cursor = (
                    dig(records[-1], s.cursor_record_field)
                    if s.cursor_record_field
                    else dig(body, s.next_cursor_path)
                )
                if cursor in (None, "", False):
                    return
            else:  # link: RFC 8288 `Link: <...>; rel="next"`, the URL carries the query
                following = response.links.get("next", {}).get("url")
                if not following:
                    return
                next_url = response.url.join(following)
                # Our credentials go with every request: never to another host.
                if (next_url.scheme, next_url.host, next_url.port) != (
                    response.url.scheme,
                    response.url.host,
                    response.url.port,
                ):
                    raise ConnectorError(
                        f"{self.http.name}: the next page is on another host ({next_url.host}); "
                        "refusing to send our credentials there"
                    )
                url, query = str(next_url), None
        raise ConnectorError(f"{self.http.name}: {s.url} has more than {MAX_PAGES} pages")

    # -- mapping --------------------------------------------------------------------------
    def _result(self, records: list[dict[str, Any]]) -> ImportResult:
        f = records_frame(records)
        if f.empty:
            return to_result(pd.DataFrame(), self.source)
        raw = pd.DataFrame(index=f.index)
        for name in INVOICE_COLUMNS + OPTIONAL_COLUMNS:
            path = self.s.field_mapping.get(name, name)
            values = _values(f, records, path)
            if values is None:
                if name in REQUIRED_COLUMNS:
                    raise SourceError(
                        f"{self.http.name}: no record has {path!r} for our field {name!r}; "
                        f"set field_mapping (a record has {sorted(f.columns)[:20]})"
                    )
                continue
            raw[name] = values
        currency = text(raw["currency"]).str.upper() if "currency" in raw else None
        digits = decimals_of(currency) if currency is not None else 2
        for name in ("amount_total", "amount_due"):
            if name in raw:
                amounts = raw[name]
                if self.s.amounts_in_minor_units:
                    number = pd.to_numeric(amounts, errors="coerce")
                    scale = 10.0 ** (digits if isinstance(digits, int) else digits.to_numpy())
                    amounts = (number / scale).astype(object).where(number.notna(), text(amounts))
                raw[name] = amount_text(amounts, digits)
        for name in ("issue_date", "due_date"):
            if name in raw:
                raw[name] = self._dates(raw[name])
        for name in ("customer_id", "invoice_number"):
            if name in raw:
                raw[name] = _identifier_text(raw[name])
        if "status" in raw and self.s.status_mapping:
            status = text(raw["status"])
            raw["status"] = status.map(lambda v: self.s.status_mapping.get(v, v))
        return to_result(raw, self.source)

    def _dates(self, values: pd.Series) -> pd.Series:
        fmt = self.s.date_format
        if fmt in ("unix", "unix_ms"):
            return unix_dates(values, self.s.timezone, unit="s" if fmt == "unix" else "ms")
        if fmt == "iso":
            return iso_dates(values)
        cells = text(values)
        parsed = pd.to_datetime(cells.mask(cells == ""), format=fmt, errors="coerce")
        return cells.where(parsed.isna(), parsed.dt.strftime("%Y-%m-%d"))


def dig(value: Any, path: str) -> Any:
    """The value at a dotted path (`a.b.0.c`) of nested dicts and lists, or None."""
    for part in path.split(".") if path else []:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and re.fullmatch(r"\d+", part) and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _values(f: pd.DataFrame, records: list[dict[str, Any]], path: str) -> pd.Series | None:
    """The column of a dotted path: vectorized when it is a flattened column, else dug out
    of each record (paths through lists); None when no record has it."""
    if path in f:
        return f[path]
    if not any(p.isdigit() for p in path.split(".")):
        return None
    values = pd.Series([dig(r, path) for r in records], index=f.index, dtype=object)
    return None if values.isna().all() else values


def _identifier_text(values: pd.Series) -> pd.Series:
    """Ids as text without the `.0` a float column (ids with gaps) would give them."""
    out = text(values)
    if values.dtype.kind != "f":
        return out  # text ids keep their leading zeros
    whole = values.notna() & (values == values.round())
    out.loc[whole] = values[whole].astype("int64").astype(str)
    return out

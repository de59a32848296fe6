"""Reading the ledger's tables as frames, for the reports and the risk model (one reader).

Only the columns asked for are read (message texts, headers and the event log can stay in
the database); timestamps come back as naive UTC (`datetime64[ns]`), the way the frames'
arithmetic expects them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlmodel import SQLModel

from dunning.ledger.store import Ledger, normalize_url


def read_tables(
    url: str, columns: Mapping[str, Sequence[str] | None], *, must_exist: bool = True
) -> dict[str, pd.DataFrame]:
    """Read ledger tables (table name -> the columns to read, None for all) at `url`.

    Args:
        url: SQLAlchemy URL or SQLite file path of the ledger.
        columns: which tables and columns; each comes back as a frame under its table name.
        must_exist: refuse a SQLite file that does not exist instead of creating an empty
            ledger (a typo must not report on a new, empty ledger).

    Raises:
        FileNotFoundError: `must_exist` and the SQLite ledger file does not exist.
        KeyError: a table or column the ledger does not have.

    Example:
        >>> read_tables("sqlite:///var/ledger.db", {"actions": ["key", "state", "sent_at"]})
    """
    parsed = sa.engine.make_url(normalize_url(url))
    path = parsed.database or ""
    if must_exist and parsed.get_backend_name() == "sqlite" and path not in ("", ":memory:"):
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"no ledger at {path} (from {Path.cwd()}); check the ledger URL, "
                "or run a sweep first to create it"
            )
    ledger = Ledger(url)
    tables = SQLModel.metadata.tables
    frames: dict[str, pd.DataFrame] = {}
    with ledger.engine.connect() as conn:
        for name, wanted in columns.items():
            table = tables[name]
            chosen = [table.c[c] for c in wanted] if wanted is not None else list(table.c)
            frame = pd.read_sql(sa.select(*chosen), conn)
            for column in chosen:
                if _is_timestamp(column):
                    frame[column.name] = _naive_utc(frame[column.name])
            frames[name] = frame
    return frames


def _is_timestamp(column: sa.Column) -> bool:
    # SQLModel stores datetimes through a TypeDecorator (UTCDateTime) over DateTime.
    kind = column.type.impl if isinstance(column.type, sa.TypeDecorator) else column.type
    return isinstance(kind, sa.DateTime)


def _naive_utc(values: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(values, utc=True, errors="coerce")
    return stamps.dt.tz_localize(None).astype("datetime64[ns]")

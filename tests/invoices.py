"""Write small invoice files in the default CSV layout for tests."""

from __future__ import annotations

import csv
from pathlib import Path

from dunning.schema import INVOICE_COLUMNS

DEFAULTS = {
    "customer_id": "C1",
    "customer_name": "Acme Cliente S.L.",
    "email": "pagos@cliente.example",
    "country": "ES",
    "language": "es",
    "timezone": "Europe/Madrid",
    "currency": "EUR",
    "amount_total": "100.00",
    "amount_due": "100.00",
    "issue_date": "2026-11-01",
    "status": "open",
}


def write_invoices(path: Path, rows: list[dict[str, str]]) -> Path:
    """A CSV with the default columns; each row is DEFAULTS updated with its own cells."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(INVOICE_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" for c in INVOICE_COLUMNS} | DEFAULTS | row)
    return path

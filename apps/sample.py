"""A realistic demo portfolio derived from the IBM accounts-receivable sample.

Customers, amounts and dispute flags come from the real data; due dates are shifted so that
the demo day has work in every stage of the default ladder, and a few rows are broken on
purpose so the quarantine shows up in the run report.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from dunning.schema import INVOICE_COLUMNS

#: IBM sample country codes -> (country, language, timezone, currency) of our demo customers.
_COUNTRIES = {
    391: ("ES", "es", "Europe/Madrid", "EUR"),
    406: ("ES", "es", "Europe/Madrid", "EUR"),
    770: ("MX", "es", "America/Mexico_City", "MXN"),
    818: ("US", "en", "America/New_York", "USD"),
    897: ("PT", "pt", "Europe/Lisbon", "EUR"),
}
_NAME_PARTS = (
    [
        "Talleres",
        "Distribuciones",
        "Construcciones",
        "Suministros",
        "Transportes",
        "Gráficas",
        "Hermanos",
        "Comercial",
        "Industrias",
        "Servicios",
    ],
    [
        "Ibéricos",
        "del Norte",
        "Levante",
        "Atlántico",
        "Martínez",
        "Sur",
        "Castilla",
        "Ebro",
        "Mediterráneo",
        "Andes",
    ],
    ["S.L.", "S.A.", "S.L.U.", "y Cía.", "Group"],
)
#: Days past due at which the demo day lands for each share of the portfolio.
_DAYS_PAST_DUE = [-10, -3, 0, 1, 3, 7, 10, 15, 20, 30, 45, 90]

_MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def demo_portfolio(
    ibm_csv: str | Path, today: date, size: int = 300, seed: int = 7
) -> pd.DataFrame:
    """`size` invoices (as CSV-ready strings in the default columns) due around `today`."""
    rng = np.random.default_rng(seed)
    ibm = pd.read_csv(ibm_csv, dtype={"invoiceNumber": str, "customerID": str})
    rows = ibm.sample(n=min(size, len(ibm)), random_state=seed).reset_index(drop=True)
    geo = rows["countryCode"].map(lambda c: _COUNTRIES.get(int(c), _COUNTRIES[391]))
    past_due = rng.choice(_DAYS_PAST_DUE, size=len(rows))
    due = [today - timedelta(days=int(d)) for d in past_due]
    status = np.where(rng.random(len(rows)) < 0.06, "paid", "open")
    status = np.where(
        (rows["Disputed"] == "Yes") & (rng.random(len(rows)) < 0.15), "disputed", status
    )
    amount = rows["InvoiceAmount"].round(2) * 10
    part_paid = (status == "open") & (rng.random(len(rows)) < 0.08)
    amount_due = np.where(
        status == "paid", 0.0, np.where(part_paid, (amount * 0.6).round(2), amount)
    )
    customers = rows["customerID"]
    frame = pd.DataFrame(
        {
            "invoice_number": "FV-" + rows["invoiceNumber"].str.lstrip("0"),
            "customer_id": customers,
            "customer_name": customers.map(lambda c: _company_name(c)),
            "email": "cuentas+" + customers.str.lower() + "@example.com",
            "phone": "",
            "country": [g[0] for g in geo],
            "language": [g[1] for g in geo],
            "timezone": [g[2] for g in geo],
            "currency": [g[3] for g in geo],
            "amount_total": amount.map("{:.2f}".format),
            "amount_due": pd.Series(amount_due).map("{:.2f}".format),
            "issue_date": [(d - timedelta(days=30)).isoformat() for d in due],
            "due_date": [d.isoformat() for d in due],
            "status": status,
            "payment_link": "https://pay.example.com/i/FV-" + rows["invoiceNumber"].str.lstrip("0"),
            "pdf_path": "",
        }
    )
    no_email = rng.random(len(frame)) < 0.03
    frame.loc[no_email, "email"] = ""
    frame.loc[frame.index % 4 == 0, "pdf_path"] = "pdf/" + frame["invoice_number"] + ".pdf"
    return pd.concat([frame, _broken_rows(today)], ignore_index=True)[list(INVOICE_COLUMNS)]


def _company_name(customer_id: str) -> str:
    h = sum(ord(c) * (i + 1) for i, c in enumerate(customer_id))
    first, second, suffix = _NAME_PARTS
    return (
        f"{first[h % len(first)]} {second[(h // 7) % len(second)]} {suffix[(h // 3) % len(suffix)]}"
    )


def _broken_rows(today: date) -> pd.DataFrame:
    """Rows an ERP export really produces, to show the quarantine in the run report."""
    base = {c: "" for c in INVOICE_COLUMNS} | {
        "customer_id": "9999-BROKEN",
        "customer_name": "Exportación Rota S.L.",
        "email": "admin@example.com",
        "country": "ES",
        "currency": "EUR",
        "amount_total": "100.00",
        "amount_due": "100.00",
        "due_date": today.isoformat(),
        "status": "open",
    }
    return pd.DataFrame(
        [
            base | {"invoice_number": "FV-BAD-1", "due_date": "31/02/2026"},
            base | {"invoice_number": "FV-BAD-2", "amount_due": "-50"},
            base | {"invoice_number": "FV-BAD-3", "currency": "EURO"},
            base | {"invoice_number": "FV-BAD-4", "email": "admin(at)example.com"},
        ]
    )


def write_demo_files(
    ibm_csv: str | Path, directory: str | Path, today: date, size: int = 300
) -> Path:
    """Write `invoices.csv` and the PDFs it refers to under `directory`; returns the CSV."""
    directory = Path(directory)
    (directory / "pdf").mkdir(parents=True, exist_ok=True)
    frame = demo_portfolio(ibm_csv, today, size=size)
    for rel in frame.loc[frame["pdf_path"] != "", "pdf_path"]:
        (directory / rel).write_bytes(_MINIMAL_PDF)
    path = directory / "invoices.csv"
    frame.to_csv(path, index=False)
    return path

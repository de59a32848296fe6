"""A realistic demo portfolio, generated: shaped like the IBM accounts-receivable sample.

The repository carries no customer data, so the demo makes its own. The shape follows what
was measured on the public IBM Watson Analytics "Accounts Receivable" sample (2,466 invoices
of 100 customers in 5 countries): the country shares, log-normal amounts that vary more
between customers than within one, a dispute rate that clusters by customer, and payment
delays (35.6 % paid late, median 8 days late, p90 20, max 45; disputed invoices late 68 % of
the time against 26 %). Due dates are placed so that the demo day has work in every stage
of the default ladder, the invoices that are paid late landing in the later stages, and a
few rows are broken on purpose so the quarantine shows up in the run report. The same seed
gives the same portfolio.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from string import ascii_uppercase

import numpy as np
import pandas as pd

from dunning.schema import INVOICE_COLUMNS

#: (country, language, timezone, currency) -> share of customers, from the IBM sample's five
#: country codes (391 and 406 both become Spain).
_COUNTRIES = {
    ("ES", "es", "Europe/Madrid", "EUR"): 0.477,
    ("MX", "es", "America/Mexico_City", "MXN"): 0.205,
    ("PT", "pt", "Europe/Lisbon", "EUR"): 0.161,
    ("US", "en", "America/New_York", "USD"): 0.157,
}
_CUSTOMERS = 100
#: ln(amount): customers' means around 4.0 (spread 0.31), invoices around theirs (0.31);
#: scaled by 10 so that demo amounts read like invoices of a small business.
_LN_AMOUNT, _LN_SPREAD_CUSTOMER, _LN_SPREAD_INVOICE, _AMOUNT_SCALE = 4.015, 0.312, 0.310, 10
#: Beta parameters of a customer's share of disputed invoices (mean 0.23, spread 0.27).
_DISPUTE_BETA = (0.33, 1.10)
#: Probability that an invoice is paid late, disputed or not.
_LATE_IF_DISPUTED, _LATE_OTHERWISE = 0.68, 0.26
#: Days late of a late invoice: log-normal with median 8 and p90 20, at most 45.
_DAYS_LATE_MEDIAN, _DAYS_LATE_SIGMA, _DAYS_LATE_MAX = 8.0, 0.715, 45
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


def demo_portfolio(today: date, size: int = 300, seed: int = 7) -> pd.DataFrame:
    """`size` generated invoices due around `today`, then the broken rows.

    Every cell is a CSV-ready string, in the columns of `dunning.schema.INVOICE_COLUMNS`.
    """
    rng = np.random.default_rng(seed)
    customers = _customers(rng)
    rows = customers.iloc[rng.integers(0, len(customers), size)].reset_index(drop=True)
    ever_disputed = rng.random(size) < rows["dispute_share"].to_numpy()
    paid_late = rng.random(size) < np.where(ever_disputed, _LATE_IF_DISPUTED, _LATE_OTHERWISE)
    days_late = rng.lognormal(np.log(_DAYS_LATE_MEDIAN), _DAYS_LATE_SIGMA, size)
    days_late = np.where(paid_late, np.minimum(np.ceil(days_late), _DAYS_LATE_MAX), 0)
    # Each stage gets its share of the portfolio; the invoices furthest past due on the demo
    # day are the ones paid latest (ties in random order).
    past_due = np.empty(size, dtype=int)
    past_due[np.lexsort((rng.random(size), days_late))] = np.sort(
        rng.choice(_DAYS_PAST_DUE, size=size)
    )
    due = [today - timedelta(days=int(d)) for d in past_due]
    status = np.where(rng.random(size) < 0.06, "paid", "open")
    status = np.where(ever_disputed & (rng.random(size) < 0.15), "disputed", status)
    ln_amount = rows["ln_amount"].to_numpy() + rng.normal(0, _LN_SPREAD_INVOICE, size)
    amount = (np.exp(ln_amount) * _AMOUNT_SCALE).round(2)
    part_paid = (status == "open") & (rng.random(size) < 0.08)
    amount_due = np.where(
        status == "paid", 0.0, np.where(part_paid, (amount * 0.6).round(2), amount)
    )
    numbers = "FV-" + pd.Series(rng.choice(9_000_000, size, replace=False) + 1_000_000).astype(str)
    frame = pd.DataFrame(
        {
            "invoice_number": numbers,
            "customer_id": rows["customer_id"],
            "customer_name": rows["customer_name"],
            "email": "cuentas+" + rows["customer_id"].str.lower() + "@example.com",
            "phone": "",
            "country": rows["country"],
            "language": rows["language"],
            "timezone": rows["timezone"],
            "currency": rows["currency"],
            "amount_total": pd.Series(amount).map("{:.2f}".format),
            "amount_due": pd.Series(amount_due).map("{:.2f}".format),
            "issue_date": [(d - timedelta(days=30)).isoformat() for d in due],
            "due_date": [d.isoformat() for d in due],
            "status": status,
            "payment_link": "https://pay.example.com/i/" + numbers,
            "pdf_path": "",
        }
    )
    no_email = rng.random(size) < 0.03
    frame.loc[no_email, "email"] = ""
    frame.loc[frame.index % 4 == 0, "pdf_path"] = "pdf/" + frame["invoice_number"] + ".pdf"
    return pd.concat([frame, _broken_rows(today)], ignore_index=True)[list(INVOICE_COLUMNS)]


def _customers(rng: np.random.Generator) -> pd.DataFrame:
    """The demo's customers: IBM-style ids, a country, an amount level, a dispute habit."""
    digits = rng.choice(10_000, _CUSTOMERS, replace=False)
    letters = rng.choice(list(ascii_uppercase), size=(_CUSTOMERS, 5))
    ids = [f"{d:04d}-{''.join(s)}" for d, s in zip(digits, letters, strict=True)]
    shares = np.array(list(_COUNTRIES.values()))
    geo = [
        list(_COUNTRIES)[i] for i in rng.choice(len(shares), _CUSTOMERS, p=shares / shares.sum())
    ]
    return pd.DataFrame(
        {
            "customer_id": ids,
            "customer_name": [_company_name(c) for c in ids],
            "country": [g[0] for g in geo],
            "language": [g[1] for g in geo],
            "timezone": [g[2] for g in geo],
            "currency": [g[3] for g in geo],
            "ln_amount": rng.normal(_LN_AMOUNT, _LN_SPREAD_CUSTOMER, _CUSTOMERS),
            "dispute_share": rng.beta(*_DISPUTE_BETA, _CUSTOMERS),
        }
    )


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


def write_demo_files(directory: str | Path, today: date, size: int = 300) -> Path:
    """Write `invoices.csv` and the PDFs it refers to under `directory`; returns the CSV."""
    directory = Path(directory)
    (directory / "pdf").mkdir(parents=True, exist_ok=True)
    frame = demo_portfolio(today, size=size)
    for rel in frame.loc[frame["pdf_path"] != "", "pdf_path"]:
        (directory / rel).write_bytes(_MINIMAL_PDF)
    path = directory / "invoices.csv"
    frame.to_csv(path, index=False)
    return path

"""Synthetic invoices shaped like the real accounts-receivable data, for benchmarks.

`synth_invoices(n, seed=..., today=...)` returns a frame with exactly the columns of
`dunning.schema.INVOICE_COLUMNS`, every cell a string as if read from a CSV, and
`write_invoices_csv` writes it in the default CSV layout that `dunning.importers` reads.

Shape (each figure is a target; the generator is deterministic for a given seed):

* amounts: a mixture of the log-normal fits of the real amounts in the public data sets
  (`fit_amounts` recomputes them from `bench/realdata.py`'s location): SAP invoice rows
  `VALUE_EUR` (weight 0.8) and the IBM sample `InvoiceAmount` (weight 0.2), scaled by a rough
  rate to the customer's currency;
* customers: one per ~25 invoices, invoices spread over them with a Zipf-Mandelbrot skew
  (share of rank k ~ 1 / (k + 10)); at 1M invoices the top customer holds ~1 % of them and
  the top tenth ~70 %, like the SAP file (1.0 % and 71 %); country, timezone, language and
  email belong to the customer;
* countries: ES mostly, plus MX, US, PT, BR, CO, AR, each with its IANA timezones, language
  es/en/pt and currency;
* due dates: ~35 % spread from 40 days before `today` to 3 days after it, so that on `today`
  every stage of the default ladder (pre_due -3 ... final +30) is the latest due stage of
  some invoices; the rest fall due 4 to 90 days after `today` (not due yet);
* status: ~5 % paid (nothing due), 1 % cancelled, 2 % disputed, 3 % part-paid (status
  `part_paid`, 10-90 % still due), the rest open;
* ~2 % of invoices have an empty email (the planner then opens a human task).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from bench.realdata import real_data_path
from dunning.schema import INVOICE_COLUMNS

#: The planning day the due dates are spread around (a Wednesday; ES has a holiday on Dec 8).
DEFAULT_TODAY = date(2026, 12, 9)

#: Log-normal fits (mean and std of ln amount) of the real data, from `fit_amounts()`.
SAP_LOGNORMAL = (3.446, 1.689)  # sap_ar_2017_2018.csv.gz, Invoice rows, VALUE_EUR > 0
IBM_LOGNORMAL = (4.015, 0.437)  # ibm_accounts_receivable.csv, InvoiceAmount
SAP_WEIGHT = 0.8

#: country -> (share of customers, timezones, languages with weights, currency, EUR rate)
COUNTRIES: dict[str, tuple[float, tuple[str, ...], dict[str, float], str, float]] = {
    "ES": (0.60, ("Europe/Madrid", "Atlantic/Canary"), {"es": 0.95, "en": 0.05}, "EUR", 1.0),
    "MX": (0.12, ("America/Mexico_City", "America/Tijuana"), {"es": 1.0}, "MXN", 20.0),
    "US": (
        0.08,
        ("America/New_York", "America/Chicago", "America/Los_Angeles"),
        {"en": 0.85, "es": 0.15},
        "USD",
        1.1,
    ),
    "PT": (0.07, ("Europe/Lisbon",), {"pt": 0.9, "en": 0.1}, "EUR", 1.0),
    "BR": (0.05, ("America/Sao_Paulo",), {"pt": 1.0}, "BRL", 5.5),
    "CO": (0.04, ("America/Bogota",), {"es": 1.0}, "COP", 4500.0),
    "AR": (0.04, ("America/Argentina/Buenos_Aires",), {"es": 1.0}, "ARS", 1000.0),
}

INVOICES_PER_CUSTOMER = 25
ZIPF_EXPONENT = 1.0
ZIPF_OFFSET = 10
ACTIVE_SHARE = 0.35  # due dates inside the ladder's reach on `today`
ACTIVE_DAYS = (-40, 3)  # due date - today, for the active share (inclusive)
FUTURE_DAYS = (4, 90)  # due date - today, for the rest
TERMS_DAYS = (30, 30, 30, 60, 15)  # payment terms: issue date = due date - terms
STATUS_SHARES = {"paid": 0.05, "cancelled": 0.01, "disputed": 0.02, "part_paid": 0.03}
EMPTY_EMAIL_SHARE = 0.02


def fit_amounts(directory: str | Path | None = None) -> dict[str, tuple[float, float]]:
    """Recompute the log-normal fits of the real amounts (mean, std of the log).

    The data sets are read from `directory`, else as `bench.realdata.data_dir()` says.
    """
    ibm_csv = real_data_path("ibm_accounts_receivable.csv", directory)
    sap_csv = real_data_path("sap_ar_2017_2018.csv.gz", directory)
    ibm = pd.read_csv(ibm_csv, usecols=["InvoiceAmount"])
    sap = pd.read_csv(sap_csv, usecols=["VALUE_EUR", "TBSLT_LTEXT"])
    sap_amounts = sap.loc[sap["TBSLT_LTEXT"] == "Invoice", "VALUE_EUR"]
    fits = {}
    for name, amounts in (("ibm", ibm["InvoiceAmount"]), ("sap", sap_amounts)):
        logs = np.log(amounts[amounts > 0].to_numpy(dtype="float64"))
        fits[name] = (round(float(logs.mean()), 3), round(float(logs.std()), 3))
    return fits


def _fmt(template: str, values: np.ndarray) -> np.ndarray:
    return np.array([template % v for v in values.tolist()], dtype=object)


def _customers(n_customers: int, rng: np.random.Generator) -> pd.DataFrame:
    names = list(COUNTRIES)
    shares = np.array([COUNTRIES[c][0] for c in names])
    country = rng.choice(names, size=n_customers, p=shares / shares.sum())
    timezone = np.empty(n_customers, dtype=object)
    language = np.empty(n_customers, dtype=object)
    currency = np.empty(n_customers, dtype=object)
    rate = np.empty(n_customers, dtype="float64")
    for c in names:
        rows = np.flatnonzero(country == c)
        _, tzs, langs, cur, fx = COUNTRIES[c]
        timezone[rows] = rng.choice(tzs, size=len(rows))
        lang_p = np.array(list(langs.values()))
        language[rows] = rng.choice(list(langs), size=len(rows), p=lang_p / lang_p.sum())
        currency[rows] = cur
        rate[rows] = fx
    ids = np.arange(1, n_customers + 1)
    cid = _fmt("C%06d", ids)
    suffix = np.where(np.isin(country, ["ES"]), "S.L.", np.where(country == "US", "Inc.", "S.A."))
    return pd.DataFrame(
        {
            "customer_id": cid,
            "customer_name": np.array(
                [f"Customer {i} {s}" for i, s in zip(ids.tolist(), suffix.tolist(), strict=True)],
                dtype=object,
            ),
            "email": _fmt("ap@c%06d.example.com", ids),
            "phone": _fmt("+00 600 %06d", ids),
            "country": country.astype(object),
            "language": language,
            "timezone": timezone,
            "currency": currency,
            "rate": rate,
        }
    )


def _amounts(n: int, rng: np.random.Generator) -> np.ndarray:
    from_sap = rng.random(n) < SAP_WEIGHT
    mu = np.where(from_sap, SAP_LOGNORMAL[0], IBM_LOGNORMAL[0])
    sigma = np.where(from_sap, SAP_LOGNORMAL[1], IBM_LOGNORMAL[1])
    return np.clip(np.exp(rng.normal(mu, sigma)), 1.0, 500_000.0)


def synth_invoices(n: int, *, seed: int = 0, today: date = DEFAULT_TODAY) -> pd.DataFrame:
    """`n` synthetic invoices as a frame of strings with the columns of `INVOICE_COLUMNS`."""
    rng = np.random.default_rng(seed)
    n_customers = max(1, round(n / INVOICES_PER_CUSTOMER))
    customers = _customers(n_customers, rng)

    # Zipf-Mandelbrot: the customer of rank k gets a share ~ 1 / (k + q)**s (ranks shuffled).
    weights = 1.0 / (np.arange(1, n_customers + 1) + ZIPF_OFFSET) ** ZIPF_EXPONENT
    which = rng.choice(n_customers, size=n, p=weights / weights.sum())
    which = rng.permutation(n_customers)[which]
    cust = customers.iloc[which].reset_index(drop=True)

    today64 = np.datetime64(today, "D")
    active = rng.random(n) < ACTIVE_SHARE
    offset = np.where(
        active,
        rng.integers(ACTIVE_DAYS[0], ACTIVE_DAYS[1] + 1, size=n),
        rng.integers(FUTURE_DAYS[0], FUTURE_DAYS[1] + 1, size=n),
    )
    due = today64 + offset.astype("timedelta64[D]")
    issue = due - rng.choice(TERMS_DAYS, size=n).astype("timedelta64[D]")

    total = np.round(_amounts(n, rng) * cust["rate"].to_numpy(), 2)
    u = rng.random(n)
    edges = np.cumsum(list(STATUS_SHARES.values()))
    kind = np.searchsorted(edges, u, side="right")  # 0 paid, 1 cancelled, 2 disputed, 3 part
    status = np.array([*STATUS_SHARES, "open"], dtype=object)[kind]
    due_amount = total.copy()
    due_amount[kind == 0] = 0.0
    part = kind == 3
    due_amount[part] = np.round(total[part] * rng.uniform(0.1, 0.9, size=part.sum()), 2)

    email = cust["email"].to_numpy(dtype=object).copy()
    email[rng.random(n) < EMPTY_EMAIL_SHARE] = ""

    numbers = np.arange(1, n + 1)
    invoice_number = _fmt("INV-%08d", numbers)
    frame = pd.DataFrame(
        {
            "invoice_number": invoice_number,
            "customer_id": cust["customer_id"].to_numpy(),
            "customer_name": cust["customer_name"].to_numpy(),
            "email": email,
            "phone": cust["phone"].to_numpy(),
            "country": cust["country"].to_numpy(),
            "language": cust["language"].to_numpy(),
            "timezone": cust["timezone"].to_numpy(),
            "currency": cust["currency"].to_numpy(),
            "amount_total": _fmt("%.2f", total),
            "amount_due": _fmt("%.2f", due_amount),
            "issue_date": np.datetime_as_string(issue, unit="D").astype(object),
            "due_date": np.datetime_as_string(due, unit="D").astype(object),
            "status": status,
            "payment_link": _fmt("https://pay.example.com/i/INV-%08d", numbers),
            "pdf_path": _fmt("invoices/INV-%08d.pdf", numbers),
        },
        columns=list(INVOICE_COLUMNS),
    )
    return frame.astype(str)


def write_invoices_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a synthetic frame as a CSV in the default layout (UTF-8, comma, header)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, columns=list(INVOICE_COLUMNS))
    return path


def synth_csv(n: int, path: str | Path, *, seed: int = 0, today: date = DEFAULT_TODAY) -> Path:
    """Generate `n` invoices and write them to `path` as CSV."""
    return write_invoices_csv(synth_invoices(n, seed=seed, today=today), path)

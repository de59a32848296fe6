"""A reproducible portfolio of invoices, to load into every fake API in its own shapes."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

COUNTRIES = [
    ("ES", "es_ES", "EUR"),
    ("MX", "es_MX", "MXN"),
    ("US", "en_US", "USD"),
    ("JP", "ja_JP", "JPY"),
    ("PT", "pt_PT", "EUR"),
]


@dataclass
class Item:
    """One invoice as the business knows it, before any API shapes it."""

    number: str
    customer: int
    customer_name: str
    email: str
    phone: str
    country: str
    lang: str
    currency: str
    total: float
    due: float
    issue_date: date
    due_date: date
    state: str  # open | partial | paid | cancelled


def portfolio(n: int, *, seed: int = 7, start: date = date(2026, 9, 1)) -> list[Item]:
    """`n` invoices for n/4 customers: mostly open, some part-paid, paid or cancelled."""
    rnd = random.Random(seed)
    items = []
    for i in range(1, n + 1):
        customer = rnd.randint(1, max(1, n // 4))
        country, lang, currency = COUNTRIES[customer % len(COUNTRIES)]
        total = (
            float(rnd.randint(100, 500_000))
            if currency == "JPY"
            else round(rnd.uniform(50, 20_000), 2)
        )
        state = rnd.choices(["open", "partial", "paid", "cancelled"], [70, 15, 10, 5])[0]
        due = {"open": total, "partial": round(total * 0.4, 0 if currency == "JPY" else 2)}.get(
            state, 0.0
        )
        issue = start + timedelta(days=rnd.randint(0, 90))
        items.append(
            Item(
                number=f"INV/2026/{i:05d}",
                customer=customer,
                customer_name=f"Cliente {customer} S.L.",
                email=f"ap{customer}@cliente{customer}.example",
                phone=f"+34 600 {customer:06d}",
                country=country,
                lang=lang,
                currency=currency,
                total=total,
                due=due,
                issue_date=issue,
                due_date=issue + timedelta(days=30),
                state=state,
            )
        )
    return items

"""A Stripe account: `GET /v1/invoices` (list object, `starting_after`/`has_more`), one
invoice, and `GET /v1/events`. Shapes from the official
stripe-python SDK (`stripe/_invoice.py`, `_list_object.py`, `_event.py`; API 2026-06-24)."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, time
from typing import Any

from dunning.connectors.stripe import exponent
from tests.connectors.fakeapi import FakeApi, Request, Response
from tests.connectors.portfolio import Item

STATUS = {"open": "open", "partial": "open", "paid": "paid", "cancelled": "void"}


def unix(day, hour: int = 12) -> int:
    return int(datetime.combine(day, time(hour), tzinfo=UTC).timestamp())


class FakeStripe(FakeApi):
    def __init__(self, *, secret_key: str = "sk_test_51Hx0000secret") -> None:
        super().__init__()
        self.secret_key = secret_key
        self.invoices: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._seq = itertools.count(1)

    def add_customer(self, cid: str, **values: Any) -> dict[str, Any]:
        self.customers[cid] = {
            "id": cid,
            "object": "customer",
            "name": None,
            "email": None,
            "phone": None,
            "address": None,
            "preferred_locales": [],
        } | values
        return self.customers[cid]

    def add_invoice(self, **values: Any) -> dict[str, Any]:
        n = next(self._seq)
        inv = {
            "id": f"in_{n:024d}",
            "object": "invoice",
            "number": f"ACME-{n:04d}",
            "customer": None,
            "customer_email": None,
            "customer_name": None,
            "customer_phone": None,
            "currency": "eur",
            "amount_due": 10000,
            "amount_paid": 0,
            "amount_remaining": 10000,
            "total": 10000,
            "due_date": unix(datetime(2026, 12, 1).date()),
            "status": "open",
            "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_1/test_{n}",
            "invoice_pdf": f"https://pay.stripe.com/invoice/acct_1/test_{n}/pdf",
            "collection_method": "send_invoice",
            "created": 1_790_000_000 + n,
            "effective_at": 1_790_000_000 + n,
            "livemode": False,
        } | values
        self.invoices[inv["id"]] = inv
        return inv

    def load(self, items: list[Item]) -> None:
        for it in items:
            cid = f"cus_{it.customer:08d}"
            if cid not in self.customers:
                self.add_customer(
                    cid,
                    name=it.customer_name,
                    email=it.email,
                    phone=it.phone,
                    address={"country": it.country},
                    preferred_locales=[it.lang.replace("_", "-")],
                )
            scale = 10 ** exponent(it.currency)
            self.add_invoice(
                number=it.number,
                customer=cid,
                customer_email=it.email,
                customer_name=it.customer_name,
                currency=it.currency.lower(),
                amount_due=round(it.total * scale),
                total=round(it.total * scale),
                amount_paid=round((it.total - it.due) * scale),
                amount_remaining=round(it.due * scale),
                status=STATUS[it.state],
                due_date=unix(it.due_date),
                created=unix(it.issue_date, 9),
                effective_at=unix(it.issue_date, 9),
            )

    def pay(self, invoice_id: str, at: datetime) -> None:
        inv = self.invoices[invoice_id]
        inv.update(status="paid", amount_paid=inv["amount_due"], amount_remaining=0)
        self.events.append(
            {
                "id": f"evt_{len(self.events) + 1:024d}",
                "object": "event",
                "type": "invoice.paid",
                "created": int(at.timestamp()),
                "data": {"object": copy.deepcopy(inv)},
                "livemode": False,
                "pending_webhooks": 0,
                "api_version": "2026-06-24.dahlia",
            }
        )

    def route(self, req: Request) -> Response:
        if req.headers.get("authorization") != f"Bearer {self.secret_key}":
            return Response(
                401,
                {
                    "error": {
                        "message": f"Invalid API Key provided: sk_test_****{self.secret_key[-4:]}",
                        "type": "invalid_request_error",
                    }
                },
            )
        if req.path == "/v1/invoices":
            rows = sorted(self.invoices.values(), key=lambda i: -i["created"])
            if req.arg("status"):
                rows = [i for i in rows if i["status"] == req.arg("status")]
            if req.arg("collection_method"):
                rows = [i for i in rows if i["collection_method"] == req.arg("collection_method")]
            page = self._page(req, rows, "/v1/invoices")
            if "data.customer" in req.query.get("expand[]", []):
                page["data"] = [self._expanded(i) for i in page["data"]]
            return Response(200, page)
        if req.path.startswith("/v1/invoices/"):
            inv = self.invoices.get(req.path.rsplit("/", 1)[1])
            if inv is None:
                return Response(
                    404,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "code": "resource_missing",
                            "message": "No such invoice",
                        }
                    },
                )
            expand = "customer" in req.query.get("expand[]", [])
            return Response(200, self._expanded(inv) if expand else inv)
        if req.path == "/v1/events":
            types = set(req.query.get("types[]", []))
            since = int(req.arg("created[gte]", "0"))
            rows = [
                e
                for e in reversed(self.events)
                if (not types or e["type"] in types) and e["created"] >= since
            ]
            return Response(200, self._page(req, rows, "/v1/events"))
        return Response(
            404,
            {
                "error": {
                    "type": "invalid_request_error",
                    "message": f"Unrecognized request URL {req.path}",
                }
            },
        )

    def _page(self, req: Request, rows: list[dict[str, Any]], url: str) -> dict[str, Any]:
        limit = int(req.arg("limit", "10"))
        after = req.arg("starting_after")
        if after:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(after) + 1 :]
        return {
            "object": "list",
            "url": url,
            "has_more": len(rows) > limit,
            "data": copy.deepcopy(rows[:limit]),
        }

    def _expanded(self, inv: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(inv)
        if inv.get("customer") in self.customers:
            out["customer"] = copy.deepcopy(self.customers[inv["customer"]])
        return out

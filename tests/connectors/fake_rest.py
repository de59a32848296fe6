"""An in-house invoicing API: nested records, amounts in cents, its own status words, and any
of four pagination styles (page, offset, cursor, Link header). Header `X-Api-Key`."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from tests.connectors.fakeapi import FakeApi, Request, Response
from tests.connectors.portfolio import Item

STATE = {"open": "unpaid", "partial": "part_settled", "paid": "settled", "cancelled": "void"}


class FakeRest(FakeApi):
    def __init__(
        self, *, style: str = "page", api_key: str = "rest-secret", max_page: int = 100
    ) -> None:
        super().__init__()
        self.style, self.api_key, self.max_page = style, api_key, max_page
        self.records: list[dict[str, Any]] = []
        self.link_base = ""  # e.g. "http://elsewhere.example": next links on another host

    def add(self, **values: Any) -> dict[str, Any]:
        n = len(self.records) + 1
        rec = {
            "id": n,
            "number": f"R-{n:05d}",
            "customer": {
                "id": f"K{n}",
                "name": f"Cliente {n}",
                "email": f"ap{n}@k.example",
                "address": {"country": "ES"},
            },
            "balance": {"amount": 12345, "currency": "EUR"},
            "total": {"amount": 20000},
            "dates": {"issued": "2026-11-01T10:00:00Z", "due": "2026-12-01"},
            "state": "unpaid",
            "pay_url": f"https://pay.example/{n}",
            "updated_at": "2026-11-01T10:00:00Z",
        } | values
        self.records.append(rec)
        return rec

    def load(self, items: list[Item]) -> None:
        for it in items:
            scale = 1 if it.currency == "JPY" else 100
            self.add(
                number=it.number,
                customer={
                    "id": f"K{it.customer}",
                    "name": it.customer_name,
                    "email": it.email,
                    "address": {"country": it.country},
                },
                balance={"amount": round(it.due * scale), "currency": it.currency},
                total={"amount": round(it.total * scale)},
                dates={"issued": f"{it.issue_date}T09:30:00Z", "due": str(it.due_date)},
                state=STATE[it.state],
            )

    def route(self, req: Request) -> Response:
        if req.headers.get("x-api-key") != self.api_key:
            return Response(403, {"error": "forbidden", "message": "API key not valid"})
        if req.path.startswith("/api/invoices/"):
            number = req.path.rsplit("/", 1)[1]
            found = [r for r in self.records if r["number"] == number]
            return (
                Response(200, {"invoice": found[0]})
                if found
                else Response(404, {"message": "no such invoice"})
            )
        if req.path != "/api/invoices":
            return Response(404, {"message": "not found"})
        rows = self.records
        if req.arg("updated_since"):
            since = datetime.fromisoformat(req.arg("updated_since"))
            rows = [r for r in rows if datetime.fromisoformat(r["updated_at"]) > since]
        size = min(int(req.arg("per_page", "20")), self.max_page)
        if self.style == "page":
            start = (int(req.arg("page", "1")) - 1) * size
            return Response(200, {"data": copy.deepcopy(rows[start : start + size])})
        if self.style == "offset":
            start = int(req.arg("offset", "0"))
            return Response(200, {"data": copy.deepcopy(rows[start : start + size])})
        if self.style == "cursor":
            start = int(req.arg("cursor") or 0)
            nxt = start + size if start + size < len(rows) else None
            return Response(
                200,
                {
                    "result": {
                        "items": copy.deepcopy(rows[start : start + size]),
                        "next": nxt and str(nxt),
                    }
                },
            )
        start = int(req.arg("from", "0"))
        headers = {}
        if start + size < len(rows):
            headers["Link"] = (
                f'<{self.link_base}/api/invoices?from={start + size}&per_page={size}>; rel="next", '
                f'</api/invoices?from=0&per_page={size}>; rel="first"'
            )
        return Response(200, copy.deepcopy(rows[start : start + size]), headers)

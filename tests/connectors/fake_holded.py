"""A Holded account: `GET /api/invoicing/v1/documents/invoice?page=N` (a bare JSON array, an
empty one past the end), one document, and contacts. Header `key`. Document shapes from
developers.holded.com/reference (dates in Unix seconds of Madrid midnight, `dueDate` may be
null, `paymentsPending` with float residue, lower-case currency)."""

from __future__ import annotations

import copy
import itertools
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from tests.connectors.fakeapi import FakeApi, Request, Response
from tests.connectors.portfolio import Item

MADRID = ZoneInfo("Europe/Madrid")


def madrid_midnight(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=MADRID).timestamp())


class FakeHolded(FakeApi):
    def __init__(self, *, api_key: str = "holded-key-abc", page_size: int = 100) -> None:
        super().__init__()
        self.api_key = api_key
        self.page_size = page_size
        self.documents: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self._seq = itertools.count(1)

    def add_contact(self, cid: str, **values: Any) -> dict[str, Any]:
        self.contacts[cid] = {
            "id": cid,
            "customId": "",
            "name": f"Contact {cid}",
            "code": "",
            "email": "",
            "mobile": "",
            "phone": "",
            "type": "client",
            "billAddress": {
                "address": "",
                "city": "",
                "postalCode": "",
                "province": "",
                "country": "España",
                "countryCode": "ES",
            },
        } | values
        return self.contacts[cid]

    def add_document(self, **values: Any) -> dict[str, Any]:
        n = next(self._seq)
        doc = {
            "id": f"67c6e3d40a0a3de6670{n:05d}",
            "contact": None,
            "contactName": "",
            "desc": "",
            "date": madrid_midnight(date(2026, 11, 1)),
            "dueDate": madrid_midnight(date(2026, 12, 1)),
            "multipledueDate": [],
            "forecastDate": None,
            "notes": "",
            "tags": [],
            "products": [
                {
                    "name": "Servicio",
                    "price": 82.64,
                    "units": 1,
                    "tax": 21,
                    "taxes": ["s_iva_21"],
                    "sku": "",
                    "productId": "p1",
                }
            ],
            "tax": 17.36,
            "subtotal": 82.64,
            "discount": 0,
            "total": 100.0,
            "language": "es",
            "status": 0,
            "customFields": [],
            "docNumber": f"F-2026-{n:05d}",
            "currency": "eur",
            "currencyChange": 1,
            "paymentsDetail": [],
            "paymentsTotal": 0,
            "paymentsPending": 100.0,
            "paymentsRefunds": 0,
        } | values
        self.documents[doc["id"]] = doc
        return doc

    def load(self, items: list[Item]) -> None:
        for it in items:
            cid = f"6453e48b0848f9b8cb{it.customer:06d}"
            if cid not in self.contacts:
                self.add_contact(
                    cid,
                    name=it.customer_name,
                    email=it.email,
                    mobile=it.phone,
                    billAddress={"countryCode": it.country},
                )
            if it.state == "cancelled":
                continue  # Holded deletes or rectifies, it has no cancelled state to read
            paid = it.total - it.due
            self.add_document(
                contact=cid,
                contactName=it.customer_name,
                docNumber=it.number,
                date=madrid_midnight(it.issue_date),
                dueDate=madrid_midnight(it.due_date),
                total=it.total,
                currency=it.currency.lower(),
                language=it.lang[:2],
                paymentsTotal=paid,
                # float residue as Holded sends it on fully paid invoices
                paymentsPending=it.due if it.due else 4.547473508864641e-13,
                status={"open": 0, "partial": 2, "paid": 1}[it.state],
            )

    def route(self, req: Request) -> Response:
        if req.headers.get("key") != self.api_key:
            return Response(401, {"status": 0, "info": "Unauthorized: invalid API key"})
        prefix = "/api/invoicing/v1/documents/invoice"
        if req.path == prefix:
            start, end = int(req.arg("starttmp", "0")), int(req.arg("endtmp", "99999999999"))
            rows = [
                d for d in self.documents.values() if d["date"] is None or start <= d["date"] <= end
            ]
            return Response(200, self._page(req, rows))
        if req.path.startswith(prefix + "/"):
            doc = self.documents.get(req.path.rsplit("/", 1)[1])
            if doc is None:
                return Response(404, {"status": 0, "info": "Document not found"})
            return Response(200, copy.deepcopy(doc))
        if req.path == "/api/invoicing/v1/contacts":
            return Response(200, self._page(req, list(self.contacts.values())))
        return Response(404, {"status": 0, "info": "Not found"})

    def _page(self, req: Request, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        page = int(req.arg("page", "1"))
        return copy.deepcopy(rows[(page - 1) * self.page_size : page * self.page_size])

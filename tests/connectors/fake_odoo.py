"""An Odoo server speaking JSON-2 (/json/2/<model>/<method>) and JSON-RPC (/jsonrpc).

Shapes from Odoo's external API documentation
(odoo.com/documentation/19.0/developer/reference/external_api.html): many2one fields as
`[id, "name"]`, `False` for empty values, JSON-2 errors as `{"name", "message", "arguments",
...}` with an HTTP status, JSON-RPC errors as HTTP 200 with an `error` member.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from tests.connectors.fakeapi import FakeApi, Request, Response
from tests.connectors.portfolio import Item

PAYMENT_STATE = {"open": "not_paid", "partial": "partial", "paid": "paid", "cancelled": "not_paid"}


class FakeOdoo(FakeApi):
    """One Odoo database with customers, invoices, chatter messages and activities."""

    def __init__(
        self,
        *,
        api_key: str = "odoo-key-123",
        database: str = "acme",
        login: str = "bot@acme.example",
    ) -> None:
        super().__init__()
        self.api_key, self.database, self.login, self.uid = api_key, database, login, 7
        self.models: dict[str, dict[int, dict[str, Any]]] = {
            "account.move": {},
            "res.partner": {},
            # The salesperson every invoice has (invoice_user_id [2, "Marta Ventas"]).
            "res.users": {2: {"id": 2, "login": "marta", "email": "marta.ventas@acme.example"}},
            "res.country": {1: {"id": 1, "code": "ES", "name": "Spain"}},
            "ir.model": {312: {"id": 312, "model": "account.move", "name": "Journal Entry"}},
            "mail.message": {},
            "mail.activity": {},
        }
        self._ids = itertools.count(1000)
        self.rpc_calls: list[tuple[str, str]] = []

    # -- data -------------------------------------------------------------------------------
    def country(self, code: str) -> int:
        for c in self.models["res.country"].values():
            if c["code"] == code:
                return c["id"]
        cid = len(self.models["res.country"]) + 1
        self.models["res.country"][cid] = {"id": cid, "code": code, "name": code}
        return cid

    def add_partner(self, pid: int, **values: Any) -> dict[str, Any]:
        rec = {
            "id": pid,
            "name": f"Partner {pid}",
            "email": False,
            "phone": False,
            "lang": "es_ES",
            "country_id": False,
            "tz": False,
        } | values
        self.models["res.partner"][pid] = rec
        return rec

    def add_move(self, **values: Any) -> dict[str, Any]:
        mid = values.pop("id", None) or next(self._ids)
        partner = self.models["res.partner"].get(values.get("partner_id_int", 0))
        rec = {
            "id": mid,
            "name": f"INV/{mid}",
            "move_type": "out_invoice",
            "state": "posted",
            "payment_state": "not_paid",
            "partner_id": [partner["id"], partner["name"]] if partner else False,
            "commercial_partner_id": [partner["id"], partner["name"]] if partner else False,
            "invoice_date": "2026-11-01",
            "invoice_date_due": "2026-12-01",
            "amount_total": 100.0,
            "amount_residual": 100.0,
            "currency_id": [1, "EUR"],
            "invoice_user_id": [2, "Marta Ventas"],
            "write_date": "2026-11-01 08:00:00",
            "access_token": f"tok{mid}",
        }
        values.pop("partner_id_int", None)
        rec.update(values)
        self.models["account.move"][mid] = rec
        return rec

    def load(self, items: list[Item]) -> None:
        """The portfolio as partners and posted customer invoices."""
        for it in items:
            if it.customer not in self.models["res.partner"]:
                self.add_partner(
                    it.customer,
                    name=it.customer_name,
                    email=it.email,
                    phone=it.phone,
                    lang=it.lang,
                    country_id=[self.country(it.country), it.country],
                    tz="Europe/Madrid" if it.country == "ES" else False,
                )
        for n, it in enumerate(items, start=1):
            self.add_move(
                id=n,
                name=it.number,
                partner_id_int=it.customer,
                state="cancel" if it.state == "cancelled" else "posted",
                payment_state=PAYMENT_STATE[it.state],
                invoice_date=it.issue_date.isoformat(),
                invoice_date_due=it.due_date.isoformat(),
                amount_total=it.total,
                amount_residual=it.due,
                currency_id=[{"EUR": 1, "USD": 2, "MXN": 33, "JPY": 25}[it.currency], it.currency],
            )

    # -- protocol ---------------------------------------------------------------------------
    def route(self, req: Request) -> Response:
        if req.path == "/jsonrpc":
            return self._jsonrpc(req)
        if req.path.startswith("/json/2/"):
            auth = req.headers.get("authorization", "")
            if auth.lower() != f"bearer {self.api_key}":
                return Response(
                    401,
                    {
                        "name": "werkzeug.exceptions.Unauthorized",
                        "message": "Invalid apikey",
                        "arguments": ["Invalid apikey", 401],
                        "context": {},
                        "debug": "",
                    },
                )
            _, _, _, model, method = req.path.split("/", 4)
            params = req.json() or {}
            ids = params.pop("ids", None)
            params.pop("context", None)
            try:
                return Response(200, self.execute(model, method, ids, params))
            except KeyError as exc:
                return Response(404, {"name": "werkzeug.exceptions.NotFound", "message": str(exc)})
        return Response(404, {"message": "not found"})

    def _jsonrpc(self, req: Request) -> Response:
        body = req.json()
        params = body["params"]
        service, method, args = params["service"], params["method"], params["args"]
        self.rpc_calls.append((service, method))

        def answer(result: Any) -> Response:
            return Response(200, {"jsonrpc": "2.0", "id": body.get("id"), "result": result})

        if service == "common" and method == "authenticate":
            db, login, key, _ = args
            ok = db == self.database and login == self.login and key == self.api_key
            return answer(self.uid if ok else False)
        if service == "object" and method == "execute_kw":
            db, uid, key, model, meth, margs, kwargs = args
            if db != self.database or uid != self.uid or key != self.api_key:
                return Response(
                    200,
                    {
                        "jsonrpc": "2.0",
                        "id": body.get("id"),
                        "error": {
                            "code": 200,
                            "message": "Odoo Server Error",
                            "data": {
                                "name": "odoo.exceptions.AccessDenied",
                                "message": "Access Denied",
                                "arguments": ["Access Denied"],
                                "context": {},
                                "debug": "",
                            },
                        },
                    },
                )
            ids = margs[0] if margs and meth not in ("create", "search_read") else None
            if meth == "create":
                kwargs = {"vals_list": margs[0]}
            elif meth == "search_read" and margs:
                kwargs = {"domain": margs[0], **kwargs}
            kwargs.pop("context", None)
            return answer(self.execute(model, meth, ids, kwargs))
        return Response(
            200,
            {
                "jsonrpc": "2.0",
                "id": body.get("id"),
                "error": {
                    "code": 200,
                    "message": "Odoo Server Error",
                    "data": {"name": "builtins.KeyError", "message": f"{service}.{method}"},
                },
            },
        )

    def execute(self, model: str, method: str, ids: list[int] | None, p: dict[str, Any]) -> Any:
        table = self.models[model]
        if method == "search_read":
            rows = [r for r in table.values() if matches(r, p.get("domain") or [])]
            order = (p.get("order") or "id asc").split()
            rows.sort(key=lambda r: r[order[0]], reverse=len(order) > 1 and order[1] == "desc")
            rows = rows[p.get("offset", 0) :]
            if p.get("limit"):
                rows = rows[: p["limit"]]
            return [project(r, p.get("fields")) for r in rows]
        if method == "read":
            return [project(table[i], p.get("fields")) for i in ids or [] if i in table]
        if method == "message_post":
            mid = next(self._ids)
            self.models["mail.message"][mid] = {
                "id": mid,
                "model": model,
                "res_id": ids[0],
                "body": p.get("body"),
                "message_type": p.get("message_type"),
                "subtype_xmlid": p.get("subtype_xmlid"),
                "body_is_html": p.get("body_is_html"),
            }
            return mid
        if method == "create":
            created = []
            for vals in p["vals_list"]:
                rid = next(self._ids)
                table[rid] = {"id": rid, **vals}
                created.append(rid)
            return created
        raise KeyError(f"{model}.{method}")


def project(record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    if not fields:
        return dict(record)
    return {"id": record["id"], **{f: record.get(f, False) for f in fields}}


def matches(record: dict[str, Any], domain: list[Any]) -> bool:
    """Implicit-AND domains of `[field, operator, value]` leaves."""
    for leaf in domain:
        field_name, op, value = leaf
        have = record.get(field_name, False)
        if isinstance(have, list) and have:
            have = have[0]
        if op == "=" and not have == value:
            return False
        if op == "!=" and have == value:
            return False
        if op == "in" and have not in value:
            return False
        if op == "not in" and have in value:
            return False
        if op in (">", ">=", "<", "<="):
            a, b = have, value
            if field_name == "write_date":
                a, b = datetime.fromisoformat(a), datetime.fromisoformat(b)
            if not {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]:
                return False
    return True

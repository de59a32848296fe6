"""Odoo: open customer invoices (`account.move`), chatter notes and activities.

Two ways in, chosen by the block (see Odoo's external API documentation,
odoo.com/documentation/19.0/developer/reference/external_api.html):

- `json2` (Odoo 19+): `POST /json/2/<model>/<method>` with `Authorization: bearer <API key>`
  and the method's parameters by name. Errors are HTTP 4xx/5xx.
- `jsonrpc` (Odoo 14-19, removed in Odoo 20-22): `POST /jsonrpc` calling
  `common.authenticate` once, then `object.execute_kw(db, uid, key, model, method, args,
  kwargs)`. Errors come back as HTTP 200 with an `error` member.

Invoices are read page by page in id order with a keyset (`id > last`) so an invoice posted
during the read never shifts a page. Payment states are mapped so that what Odoo still
expects to be paid gets reminders and nothing else does:

| Odoo `payment_state` | our status | why |
|---|---|---|
| not_paid, partial | open | money is owed (`amount_residual`) |
| in_payment | paid | a payment is registered, waiting for the bank statement |
| paid, invoicing_legacy | paid | |
| reversed | cancelled | a credit note cancels it |
| blocked | disputed | payment blocked in Odoo: reminders stop |

A posted invoice that was reset to draft or cancelled (`state`) is cancelled.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from dunning.connectors.frame import (
    amount_text,
    decimals_of,
    first_of,
    many2one_id,
    many2one_name,
    records_frame,
    text,
    to_result,
)
from dunning.connectors.http import AuthError, ConnectorError, HttpClient
from dunning.crm import CrmRejected, entry_text
from dunning.importers import ImportResult, to_invoice
from dunning.ledger.models import CrmEntry
from dunning.schema import Invoice

Protocol = Literal["json2", "jsonrpc"]

MOVE_FIELDS: tuple[str, ...] = (
    "name",
    "partner_id",
    "commercial_partner_id",
    "invoice_date",
    "invoice_date_due",
    "amount_total",
    "amount_residual",
    "currency_id",
    "payment_state",
    "state",
    "move_type",
    "invoice_user_id",
    "write_date",
)
PARTNER_FIELDS: tuple[str, ...] = ("name", "email", "phone", "lang", "country_id", "tz")
#: The salesperson (`invoice_user_id`, a res.users) is the invoice's account owner: their
#: `email`, else their `login` when it is an address. Odoo has no manager on a user (that is
#: HR's employee record), so `manager_email` stays empty: the policy's `owners.managers`.
USER_FIELDS: tuple[str, ...] = ("login", "email")
#: Payment states read by a full sweep: what is owed, plus what just stopped being owed
#: (in_payment) or is blocked, so the ledger learns about them.
OPEN_PAYMENT_STATES: tuple[str, ...] = ("not_paid", "partial", "in_payment", "blocked")
_AUTH_ERRORS = ("odoo.exceptions.AccessDenied", "odoo.exceptions.AccessError")


class OdooClient:
    """Call model methods on an Odoo server over JSON-2 or JSON-RPC.

    Example:
        >>> odoo = OdooClient(http, protocol="json2", database="acme", api_key="...")
        >>> odoo.call("res.partner", "search_read", domain=[["is_company", "=", True]],
        ...           fields=["name"], limit=5)
    """

    def __init__(
        self,
        http: HttpClient,
        *,
        protocol: Protocol = "json2",
        database: str = "",
        login: str = "",
        api_key: str,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.http = http
        self.protocol = protocol
        self.database = database
        self.login = login
        self._key = api_key
        self.context = context or {}
        self._uid: int | None = None
        self._ids = itertools.count(1)

    def call(self, model: str, method: str, *, ids: list[int] | None = None, **params: Any) -> Any:
        """Call `model.method` on `ids` (or on the model) with named parameters."""
        if self.protocol == "json2":
            body: dict[str, Any] = {**params}
            if ids is not None:
                body["ids"] = ids
            if self.context:
                body["context"] = self.context
            return self.http.post_json(f"/json/2/{model}/{method}", body)
        args: list[Any] = [ids] if ids is not None else []
        if self.context:
            params = {**params, "context": self.context}
        return self._execute_kw(model, method, args, params)

    def create(self, model: str, values: list[dict[str, Any]]) -> list[int]:
        """Create records; their ids."""
        if self.protocol == "json2":
            created = self.call(model, "create", vals_list=values)
        else:
            created = self._execute_kw(model, "create", [values], {})
        return created if isinstance(created, list) else [created]

    def search_read(
        self,
        model: str,
        domain: list[Any],
        fields: list[str],
        *,
        limit: int | None = None,
        order: str | None = None,
    ) -> list[dict[str, Any]]:
        """`search_read` with the usual keyword parameters."""
        params: dict[str, Any] = {"domain": domain, "fields": fields}
        if limit is not None:
            params["limit"] = limit
        if order:
            params["order"] = order
        return self.call(model, "search_read", **params)

    # -- JSON-RPC ---------------------------------------------------------------------------
    def _rpc(self, service: str, method: str, args: list[Any]) -> Any:
        body = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": args},
            "id": next(self._ids),
        }
        answer = self.http.post_json("/jsonrpc", body)
        error = answer.get("error") if isinstance(answer, dict) else None
        if error:
            data = error.get("data") or {}
            message = data.get("message") or error.get("message") or "unknown error"
            what = f"{self.http.name}: Odoo {service}.{method} failed: {message}"
            if data.get("name") in _AUTH_ERRORS:
                raise AuthError(f"{what}; {self.http.auth_hint}".rstrip("; "))
            raise ConnectorError(what)
        return answer.get("result") if isinstance(answer, dict) else answer

    def _execute_kw(self, model: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        uid = self._authenticate()
        return self._rpc(
            "object", "execute_kw", [self.database, uid, self._key, model, method, args, kwargs]
        )

    def _authenticate(self) -> int:
        if self._uid is None:
            uid = self._rpc("common", "authenticate", [self.database, self.login, self._key, {}])
            if not uid:
                raise AuthError(
                    f"{self.http.name}: Odoo refused login {self.login!r} on database "
                    f"{self.database!r}; {self.http.auth_hint}".rstrip("; ")
                )
            self._uid = int(uid)
        return self._uid


class OdooInvoices:
    """Open customer invoices of one Odoo company, in the normalized schema.

    Args:
        client: the Odoo client.
        base_url: the server's URL, for `{base_url}` in the portal link template.
        page_size: invoices per request.
        payment_states: payment states a full read asks for.
        portal_url_template: link put in every reminder (payment link), formatted with the
            invoice's `id`, `name`, `access_token` and `base_url`; e.g.
            `{base_url}/my/invoices/{id}?access_token={access_token}` (the customer portal,
            where the invoice can be paid online and its PDF downloaded; add
            `&report_type=pdf&download=true` for a direct link to the PDF). Empty: no link.
        source: how quarantine messages name the source.
    """

    supports_changes = True

    def __init__(
        self,
        client: OdooClient,
        *,
        base_url: str = "",
        page_size: int = 500,
        payment_states: tuple[str, ...] = OPEN_PAYMENT_STATES,
        portal_url_template: str = "",
        source: str = "Odoo",
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.payment_states = payment_states
        self.portal_url_template = portal_url_template
        self.source = source
        self._partners: dict[int, dict[str, Any]] = {}
        self._countries: dict[int, str] = {}
        self._users: dict[int, str] = {}

    @property
    def _fields(self) -> list[str]:
        fields = list(MOVE_FIELDS)
        if "{access_token}" in self.portal_url_template:
            fields.append("access_token")
        return fields

    def read(self) -> ImportResult:
        """Every posted customer invoice whose payment state is one of `payment_states`."""
        domain = [
            ["move_type", "=", "out_invoice"],
            ["state", "=", "posted"],
            ["payment_state", "in", list(self.payment_states)],
        ]
        return self._result(list(itertools.chain.from_iterable(self.pages(domain))))

    def read_changed_since(self, since: datetime) -> ImportResult:
        """Every customer invoice written since `since` (paid, cancelled and reset included)."""
        stamp = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        domain = [["move_type", "=", "out_invoice"], ["write_date", ">", stamp]]
        return self._result(list(itertools.chain.from_iterable(self.pages(domain))))

    def get_invoice(self, invoice_number: str) -> Invoice | None:
        """The invoice as Odoo has it now (whatever its state), or None if there is none."""
        records = self.client.search_read(
            "account.move",
            [["move_type", "=", "out_invoice"], ["name", "=", invoice_number]],
            self._fields,
            limit=1,
        )
        result = self._result(records)
        if result.invoices.empty:
            return None
        return to_invoice(result.invoices.iloc[0].to_dict())

    def move_of(self, invoice_number: str) -> dict[str, Any] | None:
        """The invoice's record (`id`, `invoice_user_id`, ...) for chatter and activities."""
        records = self.client.search_read(
            "account.move",
            [["move_type", "in", ["out_invoice", "out_refund"]], ["name", "=", invoice_number]],
            ["name", "invoice_user_id", "partner_id", "commercial_partner_id"],
            limit=1,
        )
        return records[0] if records else None

    def pages(self, domain: list[Any]) -> Iterator[list[dict[str, Any]]]:
        """Pages of `account.move` records matching `domain`, in id order (keyset paging)."""
        last = 0
        while True:
            page = self.client.search_read(
                "account.move",
                [*domain, ["id", ">", last]],
                self._fields,
                limit=self.page_size,
                order="id asc",
            )
            if not isinstance(page, list):
                raise ConnectorError(
                    f"{self.client.http.name}: search_read answered {type(page).__name__}, "
                    "expected a list of records; check the block's URL and protocol"
                )
            if not page:
                return
            yield page
            ids = [r.get("id") for r in page if isinstance(r.get("id"), int)]
            if not ids or max(ids) <= last:
                return
            last = max(ids)
            if len(page) < self.page_size:
                return

    # -- mapping --------------------------------------------------------------------------
    def _result(self, records: list[dict[str, Any]]) -> ImportResult:
        f = records_frame(records)
        if f.empty:
            return to_result(pd.DataFrame(), self.source)
        partner = many2one_id(_col(f, "partner_id"))
        company = many2one_id(_col(f, "commercial_partner_id")).fillna(partner)
        self._load_partners(pd.concat([partner, company]).dropna().unique().tolist())
        contacts = self._partner_frame()
        own = contacts.reindex(partner.fillna(-1).to_numpy("int64")).set_axis(f.index)
        firm = contacts.reindex(company.fillna(-1).to_numpy("int64")).set_axis(f.index)
        currency = text(many2one_name(_col(f, "currency_id"))).str.upper()
        digits = decimals_of(currency)
        raw = pd.DataFrame(
            {
                "invoice_number": text(_col(f, "name")),
                "customer_id": text(company.astype("string")),
                "customer_name": first_of([firm["name"], many2one_name(_col(f, "partner_id"))]),
                "email": first_of([own["email"], firm["email"]]),
                "phone": first_of([own["phone"], firm["phone"]]),
                "country": first_of([own["country"], firm["country"]]),
                "language": first_of([own["lang"], firm["lang"]]),
                "timezone": first_of([own["tz"], firm["tz"]]),
                "currency": currency,
                "amount_total": amount_text(_col(f, "amount_total"), digits),
                "amount_due": amount_text(_col(f, "amount_residual"), digits),
                "issue_date": text(_col(f, "invoice_date")),
                "due_date": text(_col(f, "invoice_date_due")),
                "status": _status(text(_col(f, "state")), text(_col(f, "payment_state"))),
                "payment_link": self._links(f),
                "owner_email": self._owner_emails(many2one_id(_col(f, "invoice_user_id"))),
            },
            index=f.index,
        )
        return to_result(raw, self.source)

    def _owner_emails(self, users: pd.Series) -> pd.Series:
        """Each invoice's salesperson's email ("" without one), users read once each."""
        missing = sorted({int(u) for u in users.dropna()} - set(self._users))
        for start in range(0, len(missing), 1000):
            chunk = missing[start : start + 1000]
            for u in self.client.call("res.users", "read", ids=chunk, fields=list(USER_FIELDS)):
                email, login = str(u.get("email") or ""), str(u.get("login") or "")
                self._users[int(u["id"])] = email or (login if "@" in login else "")
        return text(users.map(self._users))

    def _links(self, f: pd.DataFrame) -> pd.Series:
        if not self.portal_url_template:
            return pd.Series("", index=f.index, dtype="str")
        ids, names = text(_col(f, "id")), text(_col(f, "name"))
        tokens = text(_col(f, "access_token"))
        return pd.Series(
            [
                self.portal_url_template.format(
                    id=i, name=n, access_token=t, base_url=self.base_url
                )
                for i, n, t in zip(ids, names, tokens, strict=True)
            ],
            index=f.index,
            dtype="str",
        )

    def _load_partners(self, ids: list[int]) -> None:
        missing = sorted({int(i) for i in ids} - set(self._partners))
        for start in range(0, len(missing), 1000):
            chunk = missing[start : start + 1000]
            for p in self.client.call(
                "res.partner", "read", ids=chunk, fields=list(PARTNER_FIELDS)
            ):
                self._partners[int(p["id"])] = p
        countries = {
            c[0]
            for p in self._partners.values()
            if isinstance(c := p.get("country_id"), list) and c and c[0] not in self._countries
        }
        if countries:
            for c in self.client.call(
                "res.country", "read", ids=sorted(countries), fields=["code"]
            ):
                self._countries[int(c["id"])] = str(c.get("code") or "")

    def _partner_frame(self) -> pd.DataFrame:
        columns = ["name", "email", "phone", "lang", "tz", "country"]
        if not self._partners:
            return pd.DataFrame(columns=columns, dtype="str")
        p = pd.DataFrame.from_dict(self._partners, orient="index")
        country_id = many2one_id(_col(p, "country_id"))
        out = pd.DataFrame(index=p.index)
        for name in ("name", "email", "phone", "lang", "tz"):
            out[name] = text(_col(p, name))
        out["country"] = text(country_id.map(self._countries))
        return out


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _status(state: pd.Series, payment: pd.Series) -> pd.Series:
    """Our status from Odoo's `state` and `payment_state` (table in the module docstring)."""
    status = np.select(
        [
            state.isin(["cancel", "draft"]) | (payment == "reversed"),
            payment.isin(["paid", "in_payment", "invoicing_legacy"]),
            payment == "blocked",
            payment.isin(["not_paid", "partial"]),
        ],
        ["cancelled", "paid", "disputed", "open"],
        default=payment.to_numpy(),  # an unknown state is quarantined with its value
    )
    return pd.Series(status, index=state.index, dtype="str")


class OdooChatter:
    """Deliver CRM entries to Odoo: chatter notes and activities on the invoice.

    Every entry becomes an internal note (`message_post`, subtype `mail.mt_note`) on the
    invoice; a task also becomes a `mail.activity` on the invoice, assigned to the
    invoice's salesperson (`invoice_user_id`) for the account owner, to `manager_user_id`
    for the manager, and to `default_user_id` otherwise.
    """

    crm_name = "odoo"

    def __init__(
        self,
        invoices: OdooInvoices,
        *,
        manager_user_id: int | None = None,
        default_user_id: int | None = None,
        activity_type_id: int | None = None,
    ) -> None:
        self.invoices = invoices
        self.client = invoices.client
        self.manager_user_id = manager_user_id
        self.default_user_id = default_user_id
        self.activity_type_id = activity_type_id
        self._moves: dict[str, dict[str, Any] | None] = {}
        self._model_id: int | None = None

    def deliver(self, entry: CrmEntry) -> str:
        """Post the note or schedule the activity; the Odoo record it created."""
        if entry.invoice_number not in self._moves:
            self._moves[entry.invoice_number] = self.invoices.move_of(entry.invoice_number)
        move = self._moves[entry.invoice_number]
        if move is None:
            raise CrmRejected(
                f"Odoo has no customer invoice {entry.invoice_number!r} to log the {entry.kind} on"
            )
        body = "<p>" + html.escape(entry_text(entry)).replace("\n", "<br>") + "</p>"
        if entry.kind != "task":
            message = self.client.call(
                "account.move",
                "message_post",
                ids=[move["id"]],
                body=body,
                body_is_html=True,
                message_type="comment",
                subtype_xmlid="mail.mt_note",
            )
            return f"mail.message/{_one_id(message)}"
        p = entry.payload or {}
        values: dict[str, Any] = {
            "res_model_id": self._account_move_model(),
            "res_id": move["id"],
            "summary": str(p.get("title") or "")[:250],
            "note": body,
            "date_deadline": p.get("due_on") or datetime.now(UTC).date().isoformat(),
        }
        user = self._user(str(p.get("role") or p.get("assignee") or ""), move)
        if user:
            values["user_id"] = user
        if self.activity_type_id:
            values["activity_type_id"] = self.activity_type_id
        (activity,) = self.client.create("mail.activity", [values])
        return f"mail.activity/{activity}"

    def _user(self, assignee: str, move: dict[str, Any]) -> int | None:
        salesperson = move.get("invoice_user_id")
        if assignee == "manager" and self.manager_user_id:
            return self.manager_user_id
        if assignee == "account_owner" and isinstance(salesperson, list) and salesperson:
            return int(salesperson[0])
        return self.default_user_id

    def _account_move_model(self) -> int:
        if self._model_id is None:
            found = self.client.search_read(
                "ir.model", [["model", "=", "account.move"]], ["id"], limit=1
            )
            if not found:
                raise ConnectorError(f"{self.client.http.name}: Odoo has no model account.move")
            self._model_id = int(found[0]["id"])
        return self._model_id


def _one_id(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value

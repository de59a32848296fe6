"""People on our side of an invoice: owner/manager columns, policy owners, internal-only
stages (`channel: none`) with notifications, and the B2B example of docs/examples run through
the real sweep (Prefect test harness, SMTP sink, SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, DunningPolicy, LedgerDatabase
from dunning.importers import read_invoice_file
from dunning.ledger import HumanTask, Ledger
from dunning.ledger.models import InvoiceRecord
from dunning.policy import PolicyError, load_policy, resolve_assignee, resolve_recipients
from flows.sweep import dunning_sweep
from tests.test_flows import channel_for
from tests.test_replies_act import env  # noqa: F401 - the replies fixture (ledger, sink, policy)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
CUSTOMERS = {"pagos@talleresebro.example", "tesoreria@duero.example", "admin@tajo.example"}
ANA, LUIS, JORGE = (
    "ana.vendedora@acme.example",
    "luis.comercial@acme.example",
    "jorge.jefe@acme.example",
)
DEFAULT_OWNER = "cobros@acme.example"


@pytest.fixture
def sink(tmp_path: Path):
    with MailSink(tmp_path / "outbox", port=0) as s:
        yield s


def _at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T10:00:00+01:00")


def _sweep(csv_path: Path, sink: MailSink, url: str, day: str) -> dict:
    return dunning_sweep(
        source=CsvInvoiceSource(path=str(csv_path)),
        channel=channel_for(sink),
        ledger=LedgerDatabase(url=url),
        policy=DunningPolicy.from_yaml(EXAMPLES / "b2b_policy.yaml"),
        now=_at(day),
    )


def _mark_paid(csv_path: Path, number: str) -> None:
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["invoice_number"] == number:
            row.update(status="paid", amount_due="0")
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _tasks(url: str) -> list[tuple[str, str, str]]:
    tasks = Ledger(url).frame(HumanTask).sort_values("id")
    return [(r.invoice_number, r.title.split(":")[0], r.assignee) for r in tasks.itertuples()]


def _mail(sink: MailSink, already: int) -> list[tuple[str, str]]:
    """(To, subject) of the messages received after the first `already`."""
    return [(str(m["To"]), str(m["Subject"])) for m in sink.messages()[already:]]


# -- the B2B example, end to end ------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_b2b_example_salesperson_then_manager_and_a_payment_stops_the_rest(
    prefect_api, sink, tmp_path, backend, request
):
    invoices = shutil.copy(EXAMPLES / "b2b_invoices.csv", tmp_path / "invoices.csv")
    url = f"sqlite:///{tmp_path}/l.db" if backend == "sqlite" else request.getfixturevalue("pg_url")

    # -5 days: each salesperson (the CSV's owner_email) gets a task and an email; no customer
    # gets anything (internal-only stage).
    first = _sweep(invoices, sink, url, "2026-12-09")
    assert (first["sent"], first["tasks"]) == (0, 2)
    assert sorted(_tasks(url)) == [
        ("B2B-1001", "Recordar al cliente el vencimiento", ANA),
        ("B2B-1002", "Recordar al cliente el vencimiento", LUIS),
    ]
    mail = _mail(sink, 0)
    assert sorted(to for to, _ in mail) == [ANA, LUIS]
    assert all("Recordar al cliente el vencimiento" in subject for _, subject in mail)
    body = next(m for m in sink.messages() if m["To"] == ANA).get_body(("plain",)).get_content()
    assert "B2B-1001" in body and "Talleres Ebro S.L." in body and "12.400,00" in body
    assert "/customer?id=C-EBRO" in body  # the customer's timeline in the desk
    assert not CUSTOMERS & {str(m["To"]) for m in sink.messages()}

    # The same day again: nothing new, for anyone.
    again = _sweep(invoices, sink, url, "2026-12-09")
    assert (again["sent"], again["tasks"]) == (0, 0)
    assert len(sink.messages()) == 2 and len(_tasks(url)) == 2

    # Duero pays before the due date; the day after it, only Ebro's salesperson is asked.
    _mark_paid(invoices, "B2B-1002")
    second = _sweep(invoices, sink, url, "2026-12-15")
    assert second["tasks"] == 1
    assert _tasks(url)[2:] == [("B2B-1001", "Factura vencida sin pago", ANA)]
    assert [to for to, _ in _mail(sink, 2)] == [ANA]

    # +10 days: the sales manager's task, emailed to the manager and the salesperson; the
    # paid invoice gets nothing and Luis hears nothing more. Tajo (no owner in the CSV)
    # reaches its -5 stage: the policy's default owner gets it.
    third = _sweep(invoices, sink, url, "2026-12-24")
    assert third["tasks"] == 2
    assert sorted(_tasks(url)[3:]) == [
        ("B2B-1001", "Sin pago tras 10 días", JORGE),
        ("B2B-1003", "Recordar al cliente el vencimiento", DEFAULT_OWNER),
    ]
    assert sorted(to for to, _ in _mail(sink, 3)) == [DEFAULT_OWNER, f"{JORGE}, {ANA}"]
    every_recipient = {a.strip() for m in sink.messages() for a in str(m["To"]).split(",")}
    assert LUIS in every_recipient and not CUSTOMERS & every_recipient
    assert sum(LUIS in str(m["To"]) for m in sink.messages()) == 1  # never after the payment

    # The ledger keeps who owns each invoice.
    records = Ledger(url).frame(InvoiceRecord).set_index("invoice_number")
    assert records.loc["B2B-1001", "owner_email"] == ANA
    assert records.loc["B2B-1001", "manager_email"] == JORGE
    assert records.loc["B2B-1003", "owner_email"] == ""


# -- the policy -----------------------------------------------------------------------------


def _policy_file(tmp_path: Path, stages: str, extra: str = "") -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(f"language: es\n{extra}stages:\n{stages}", encoding="utf-8")
    return path


def test_an_unknown_stage_key_is_an_error_with_its_path(tmp_path):
    path = _policy_file(
        tmp_path,
        "  - {name: due, offset_days: 0}\n"
        "  - {name: call, offset_days: 5, send_customer_message: false}\n",
    )
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert "stages[1].send_customer_message: unknown key" in str(err.value)
    assert "channel" in str(err.value)  # the allowed keys are listed


def test_channel_none_without_an_escalation_is_an_error_with_its_path(tmp_path):
    path = _policy_file(tmp_path, "  - {name: silent, offset_days: 0, channel: none}\n")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert "stages[0]" in str(err.value) and "channel none" in str(err.value)
    empty = _policy_file(
        tmp_path,
        "  - {name: silent, offset_days: 0, channel: none, escalation: {notify: []}}\n",
    )
    with pytest.raises(PolicyError, match=r"stages\[0\].*escalation"):
        load_policy(empty)


def test_an_internal_stage_needs_no_template(tmp_path):
    # "remind_salesperson" has no email template: fine, it never messages the customer.
    policy = load_policy(EXAMPLES / "b2b_policy.yaml", languages=["es", "en", "pt"])
    assert [s.channel for s in policy.stages] == ["none", "none", "none"]


def test_a_bad_assignee_or_notify_entry_is_an_error(tmp_path):
    path = _policy_file(
        tmp_path,
        "  - name: due\n    offset_days: 0\n    escalation:\n"
        "      human_task: Call\n      assignee: acount_owner\n      notify: [boss]\n",
    )
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    text = str(err.value)
    assert "stages[0].escalation.assignee" in text and "'acount_owner'" in text
    assert "stages[0].escalation.notify" in text and "'boss'" in text


def test_roles_resolve_per_invoice_then_to_the_policy_owners(tmp_path):
    path = _policy_file(
        tmp_path,
        "  - {name: due, offset_days: 0}\n",
        "owners: {default: Cobros@Acme.example, managers: [dir@acme.example]}\n",
    )
    policy = load_policy(path)
    who = dict(owner_email="ana@acme.example", manager_email="jefe@acme.example")
    assert resolve_assignee("account_owner", policy, **who) == "ana@acme.example"
    assert resolve_assignee("manager", policy, **who) == "jefe@acme.example"
    assert resolve_assignee("account_owner", policy) == "cobros@acme.example"
    assert resolve_assignee("manager", policy) == "dir@acme.example"
    assert resolve_assignee("x@acme.example", policy, **who) == "x@acme.example"
    assert resolve_recipients(["manager", "account_owner", "manager"], policy, **who) == [
        "jefe@acme.example",
        "ana@acme.example",
    ]
    bare = load_policy(_policy_file(tmp_path, "  - {name: due, offset_days: 0}\n"))
    assert resolve_assignee("account_owner", bare) == "account_owner"  # the shared queue
    assert resolve_recipients(["account_owner", "manager"], bare) == []  # nobody to email


# -- the data -------------------------------------------------------------------------------


def test_people_columns_are_read_under_the_names_people_give_them(tmp_path):
    path = tmp_path / "ventas.csv"
    path.write_text(
        "invoice_number,due_date,amount_due,Vendedor,Jefe de ventas\n"
        "F-1,2026-12-01,10,Ana@Acme.example,jefe@acme.example\n"
        "F-2,2026-12-01,10,,\n",
        encoding="utf-8",
    )
    result = read_invoice_file(path)
    assert result.quarantine.empty
    got = result.invoices[["invoice_number", "owner_email", "manager_email"]].values.tolist()
    assert got == [["F-1", "ana@acme.example", "jefe@acme.example"], ["F-2", "", ""]]


def test_a_name_instead_of_an_owner_email_quarantines_the_row_naming_it(tmp_path):
    path = tmp_path / "ventas.csv"
    path.write_text(
        "invoice_number,due_date,amount_due,owner_email\n"
        "F-1,2026-12-01,10,ana@acme.example\n"
        "F-2,2026-12-01,10,Ana López\n",
        encoding="utf-8",
    )
    result = read_invoice_file(path)
    assert result.invoices["invoice_number"].tolist() == ["F-1"]
    (problem,) = result.quarantine.itertuples()
    assert (problem.row, problem.line, problem.invoice_number, problem.field, problem.value) == (
        2,
        3,
        "F-2",
        "owner_email",
        "Ana López",
    )
    assert "email address" in problem.reason


def test_two_candidate_owner_columns_are_not_guessed(tmp_path):
    path = tmp_path / "ventas.csv"
    path.write_text(
        "invoice_number,due_date,amount_due,Vendedor,Comercial\n"
        "F-1,2026-12-01,10,ana@acme.example,luis@acme.example\n",
        encoding="utf-8",
    )
    assert read_invoice_file(path).invoices["owner_email"].tolist() == [""]


def test_a_ledger_from_before_the_people_columns_still_opens(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE invoices (invoice_number VARCHAR PRIMARY KEY, customer_id VARCHAR "
            "NOT NULL, customer_name VARCHAR NOT NULL, email VARCHAR NOT NULL, phone VARCHAR "
            "NOT NULL, currency VARCHAR NOT NULL, amount_total FLOAT NOT NULL, amount_due "
            "FLOAT NOT NULL, due_date DATE, status VARCHAR NOT NULL, first_seen DATETIME NOT "
            "NULL, last_seen DATETIME NOT NULL, closed_at DATETIME)"
        )
        conn.execute(
            "INSERT INTO invoices VALUES ('F-1', 'C1', 'Ebro', 'e@x.example', '', 'EUR', 1, 1, "
            "'2026-12-01', 'open', '2026-12-01 00:00:00', '2026-12-01 00:00:00', NULL)"
        )
    ledger = Ledger(f"sqlite:///{db}")
    records = ledger.frame(InvoiceRecord)
    assert records[["invoice_number", "owner_email"]].values.tolist() == [["F-1", ""]]
    # A customer handed to another salesperson: the next sync follows.
    result = read_invoice_file(_one_row(tmp_path, "ana@acme.example"))
    ledger.sync_invoices(result.invoices)
    ledger.sync_invoices(read_invoice_file(_one_row(tmp_path, "luis@acme.example")).invoices)
    assert ledger.frame(InvoiceRecord)["owner_email"].tolist() == ["luis@acme.example"]


def _one_row(tmp_path: Path, owner: str) -> Path:
    path = tmp_path / "one.csv"
    path.write_text(
        "invoice_number,customer_id,due_date,amount_due,owner_email\n"
        f"F-1,C1,2026-12-01,1,{owner}\n",
        encoding="utf-8",
    )
    return path


# -- the desk -------------------------------------------------------------------------------


def test_a_collector_sees_the_customers_they_own_a_manager_all(tmp_path):
    import re

    import pandas as pd
    from starlette.testclient import TestClient

    from apps.desk import queries
    from apps.desk.app import DeskConfig, create_app
    from apps.desk.auth import User, add_user

    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    ledger.sync_invoices(
        pd.DataFrame(
            {
                "invoice_number": ["F-1", "F-2", "F-3"],
                "customer_id": ["C1", "C2", "C3"],
                "customer_name": ["Ebro", "Duero", "Tajo"],
                "email": ["a@ebro.example", "b@duero.example", "c@tajo.example"],
                "amount_due": [100.0, 200.0, 300.0],
                "amount_total": [100.0, 200.0, 300.0],
                "due_date": [pd.Timestamp("2026-11-01")] * 3,
                "status": ["open"] * 3,
                "currency": ["EUR"] * 3,
                "owner_email": [ANA, LUIS, ""],
            }
        )
    )
    ana, manager = User(ANA, "collector"), User(JORGE, "manager")
    assert [r["customer_id"] for r in queries.my_customers(ledger, ana)] == ["C1"]
    assert queries.can_see_customer(ledger, ana, "C1")
    assert not queries.can_see_customer(ledger, ana, "C2")
    assert [r["customer_id"] for r in queries.search(ledger, ana, "F-")] == ["C1"]
    assert {r["customer_id"] for r in queries.search(ledger, manager, "F-")} == {"C1", "C2", "C3"}

    # In the pages: the search page without a query lists "my customers".
    add_user(ledger, ANA, "ana-pass-123", role="collector")
    client = TestClient(create_app(DeskConfig(ledger_url=ledger.url)), follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    login = {"csrf_token": token, "email": ANA, "password": "ana-pass-123", "next": "/"}
    assert client.post("/login", data=login).status_code == 303
    page = client.get("/search").text
    assert "customer?id=C1" in page and "customer?id=C2" not in page
    assert client.get("/customer?id=C1").status_code == 200
    assert client.get("/customer?id=C2").status_code == 403


# -- replies --------------------------------------------------------------------------------


def test_a_reply_asks_the_invoices_owner_not_the_role(env):  # noqa: F811
    from tests.test_replies_act import Understood, receive

    ledger: Ledger = env["ledger"]
    invoices = read_invoice_file(env["tmp"] / "inv.csv").invoices
    owned = invoices.assign(
        owner_email=[ANA if n == "F-2" else "" for n in invoices["invoice_number"]]
    )
    ledger.sync_invoices(owned)  # the customer's salesperson, as the next sweep records it
    receive(env, Understood("already_paid"), text="Ya pagamos la F-2 ayer", subject="Re: F-2")
    receive(
        env,
        Understood("already_paid"),
        sender="bob@b.example",
        text="We paid G-9",
        subject="Re: G-9",
    )
    tasks = ledger.frame(HumanTask).set_index("invoice_number")["assignee"]
    assert tasks["F-2"] == ANA
    assert tasks["G-9"] == "account_owner"  # nobody named, no policy owners: the shared queue

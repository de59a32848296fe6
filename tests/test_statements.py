"""Statements (`grouping: statement`): one email per customer for all its due invoices.

The core's sweep (`tests.faults.core`, the pipeline the `dunning-sweep` flow maps onto its
tasks) against a real SMTP sink on loopback, the ledger on SQLite and the machine's
PostgreSQL; one run of the flow on the Prefect test harness.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from apps.mailsink import MailSink
from dunning.act import execute_action
from dunning.action import ActionKey, PlannedAction
from dunning.importers import read_invoice_file
from dunning.ledger import Action, HumanTask, Ledger
from dunning.plan import due_now, plan, planned_actions
from dunning.policy import Policy, PolicyError, default_policy, load_policy
from dunning.smtp import SmtpPool, SmtpSettings
from tests.faults.core import IDENTITY, NOW, csv_source, sweep
from tests.invoices import write_invoices

ROOT = Path(__file__).resolve().parent.parent

#: Each customer's four invoices: due date -> the stage due on NOW (2026-12-09, Madrid).
DUE = {
    "2026-12-08": "overdue_1",
    "2026-12-02": "overdue_7",
    "2026-11-23": "overdue_15",
    "2026-11-04": "final",
}
CUSTOMERS = {"C1": "es", "C2": "en", "C3": "pt"}


def statement_policy(**changes: object) -> Policy:
    return default_policy().model_copy(update={"grouping": "statement", **changes})


def amount(c: int, i: int) -> float:
    return 1000 * c + 100 * i + 0.5


def portfolio(tmp_path: Path, *, pdfs: bool = True) -> Path:
    """3 customers (es, en, pt) x 4 invoices, each at a different stage, each with a PDF."""
    rows = []
    for c, (customer, lang) in enumerate(CUSTOMERS.items(), start=1):
        for i, due in enumerate(DUE):
            number = f"{customer}-F{i}"
            row = dict(
                invoice_number=number,
                customer_id=customer,
                customer_name=f"Cliente {customer}",
                email=f"ap@{customer.lower()}.example",
                language=lang,
                due_date=due,
                amount_total=f"{amount(c, i):.2f}",
                amount_due=f"{amount(c, i):.2f}",
                payment_link=f"https://pay.example/{number}",
            )
            if pdfs:
                (tmp_path / f"{number}.pdf").write_bytes(b"%PDF-1.4 " + number.encode())
                row["pdf_path"] = f"{number}.pdf"
            rows.append(row)
    return write_invoices(tmp_path / "inv.csv", rows)


@pytest.fixture
def sink(tmp_path: Path):
    with MailSink(tmp_path / "outbox", port=0) as s:
        yield s


@pytest.fixture
def pool(sink: MailSink):
    p = SmtpPool(SmtpSettings(sink.host, sink.port, timeout=10), size=4)
    yield p
    p.close()


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    return request.getfixturevalue("pg_url")


def run(csv: Path, url: str, pool: SmtpPool, tmp_path: Path, **kw: object) -> list[dict]:
    read, lookup = csv_source(str(csv))
    policy = kw.pop("policy", None) or statement_policy()
    return sweep(
        read, lookup, Ledger(url), pool, policy=policy, attachments_root=str(tmp_path), **kw
    )


def text_of(message) -> str:  # noqa: ANN001
    return message.get_body(("plain",)).get_content()


def test_three_customers_get_one_statement_each_with_all_four_invoices(
    sink, pool, tmp_path, ledger_url
):
    csv = portfolio(tmp_path)
    outcomes = run(csv, ledger_url, pool, tmp_path)
    assert [o["status"] for o in outcomes] == ["sent"] * 3
    messages = {m["To"]: m for m in sink.messages()}
    assert sorted(messages) == ["ap@c1.example", "ap@c2.example", "ap@c3.example"]

    es = messages["ap@c1.example"]
    body = text_of(es)
    # Every invoice with its number, amount, days overdue and payment link; then the total.
    for i, (due, _stage) in enumerate(DUE.items()):
        number = f"C1-F{i}"
        line = next(x for x in body.splitlines() if x.startswith(f"- Número de factura {number}"))
        assert f"{amount(1, i):,.2f}".replace(",", "X").replace(".", ",").replace("X", ".") in line
        days = (NOW.date() - datetime.fromisoformat(due).date()).days
        assert "Días de retraso".lower() + f": {days}" in line
        assert f"https://pay.example/{number}" in body
    total = sum(amount(1, i) for i in range(4))
    assert total == 4602.0 and "Total pendiente: 4.602,00\xa0€" in body
    assert "4 facturas" in es["Subject"] and "Último aviso" in es["Subject"]  # final's tone
    assert "último aviso" in body  # the final stage's words
    html = es.get_body(("html",)).get_content()
    assert "C1-F3" in html and "4.602,00" in html
    assert sorted(a.get_filename() for a in es.iter_attachments()) == [
        f"C1-F{i}.pdf" for i in range(4)
    ]
    en = text_of(messages["ap@c2.example"])  # English words, Spain's number format
    assert "Total due: 8.602,00\xa0€" in en and "days overdue: 35" in en
    assert "Extrato" in messages["ap@c3.example"].get_body(("html",)).get_content()

    # The ledger: each invoice's stage sent through its customer's one message.
    ledger = Ledger(ledger_url)
    actions = ledger.frame(Action).set_index("key")
    for _c, customer in enumerate(CUSTOMERS, start=1):
        message = messages[f"ap@{customer.lower()}.example"]
        for i, stage in enumerate(DUE.values()):
            row = actions.loc[f"{customer}-F{i}:{stage}:email"]
            assert (row.state, row.message_id) == ("sent", message["Message-ID"])
        statement = actions.loc[message["X-Dunning-Key"]]
        assert ActionKey.parse(message["X-Dunning-Key"]).is_statement
        assert statement.state == "sent" and statement.customer_id == customer
    # Escalations still happen per invoice: overdue_15's call task and final's manager task.
    tasks = ledger.frame(HumanTask)
    assert len(tasks) == 6
    assert sorted(tasks["invoice_number"]) == sorted(f"{c}-F{i}" for c in CUSTOMERS for i in (2, 3))

    again = run(csv, ledger_url, pool, tmp_path)
    assert again == []  # every invoice's stage is already sent: no action at all
    assert len(sink.messages()) == 3


def test_three_concurrent_sweeps_send_one_statement_per_customer(sink, pool, tmp_path, ledger_url):
    csv = portfolio(tmp_path, pdfs=False)
    Ledger(ledger_url)  # the schema, created once before the racers start
    results: list[list[dict]] = []
    barrier = threading.Barrier(3)

    def racer() -> None:
        barrier.wait()
        results.append(run(csv, ledger_url, pool, tmp_path))

    threads = [threading.Thread(target=racer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 3
    sent = [o for r in results for o in r if o["status"] == "sent"]
    assert len(sent) == 3, results
    keys = [m["X-Dunning-Key"] for m in sink.messages()]
    assert len(keys) == 3 and len(set(keys)) == 3
    actions = Ledger(ledger_url).frame(Action)
    assert (actions["state"] == "sent").all() and len(actions) == 12 + 3


def test_invoice_paid_between_plan_and_send_drops_out(sink, pool, tmp_path):
    rows = [
        dict(invoice_number=f"P-{i}", due_date="2026-12-02", amount_due="100.00") for i in range(4)
    ]
    csv = write_invoices(tmp_path / "inv.csv", rows)
    policy = statement_policy()
    planned = due_now(plan(read_invoice_file(csv).invoices, policy, NOW), NOW)
    (action,) = planned_actions(planned)
    assert [i.invoice for i in action.items] == ["P-0", "P-1", "P-2", "P-3"]
    rows[1] |= dict(status="paid", amount_due="0")  # the customer pays P-1 meanwhile
    write_invoices(csv, rows)

    url = f"sqlite:///{tmp_path}/l.db"
    outcome = act(action, csv, url, pool, policy)
    assert outcome.status == "sent" and outcome.items == ["P-0", "P-2", "P-3"]
    assert "P-1 (paid_at_source)" in outcome.reason
    (message,) = sink.messages()
    body = text_of(message)
    assert "P-0" in body and "P-2" in body and "P-1" not in body
    assert "Total pendiente: 300,00\xa0€" in body
    keys = set(Ledger(url).frame(Action)["key"])
    assert "P-1:overdue_7:email" not in keys and "P-2:overdue_7:email" in keys


def test_statement_whose_invoices_were_all_paid_is_not_sent(sink, pool, tmp_path):
    rows = [dict(invoice_number=f"Q-{i}", due_date="2026-12-02") for i in range(2)]
    csv = write_invoices(tmp_path / "inv.csv", rows)
    policy = statement_policy()
    (action,) = planned_actions(due_now(plan(read_invoice_file(csv).invoices, policy, NOW), NOW))
    write_invoices(csv, [r | dict(status="paid", amount_due="0") for r in rows])

    url = f"sqlite:///{tmp_path}/l.db"
    outcome = act(action, csv, url, pool, policy)
    assert (outcome.status, outcome.reason) == ("skipped", "paid_at_source")
    assert sink.messages() == []
    assert Ledger(url).frame(Action).empty  # nothing claimed, nothing to explain later


def act(action: PlannedAction, csv: Path, url: str, pool: SmtpPool, policy: Policy):  # noqa: ANN201
    _read, lookup = csv_source(str(csv))
    return execute_action(
        action,
        ledger=Ledger(url),
        policy=policy,
        lookup=lookup,
        pool=pool,
        identity=IDENTITY,
        now=NOW,
    )


CRASH_AFTER_ACCEPT = """
import os, sys
from dunning.ledger import Ledger
from dunning.smtp import SmtpPool, SmtpSettings
from tests.faults.core import csv_source, sweep
from tests.test_statements import statement_policy

csv, url, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
real_send = SmtpPool.send

def send_then_die(self, message, envelope):
    # The server accepts the statement; the process dies before the ledger hears of it.
    real_send(self, message, envelope)
    os._exit(9)

SmtpPool.send = send_then_die
read, lookup = csv_source(csv)
sweep(read, lookup, Ledger(url), SmtpPool(SmtpSettings("127.0.0.1", port)),
      policy=statement_policy(), workers=1)
"""


def test_crash_between_accept_and_record_leaves_it_in_doubt_never_resent(
    sink, pool, tmp_path, ledger_url
):
    rows = [dict(invoice_number=f"K-{i}", due_date="2026-12-02") for i in range(3)]
    csv = write_invoices(tmp_path / "inv.csv", rows)
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_ACCEPT, str(csv), ledger_url, str(sink.port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 9, proc.stderr[-3000:]
    (message,) = sink.messages()  # accepted by the server before the crash

    outcomes = run(csv, ledger_url, pool, tmp_path)
    assert outcomes == []  # the plan already sees every invoice in doubt
    assert len(sink.messages()) == 1
    in_doubt = Ledger(ledger_url).in_doubt()
    assert set(in_doubt["key"]) == {
        message["X-Dunning-Key"],
        *(f"K-{i}:overdue_7:email" for i in range(3)),
    }
    assert set(in_doubt["message_id"]) == {message["Message-ID"]}
    report = subprocess.run(
        [sys.executable, "-m", "apps.cli", "ledger", "in-doubt", "--ledger", ledger_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert "K-2:overdue_7:email" in report.stdout


def test_only_segments_with_statement_grouping_get_statements(sink, pool, tmp_path):
    rows = [
        dict(invoice_number=f"B-{i}", customer_id="BIG", due_date="2026-12-02") for i in range(2)
    ]
    rows += [
        dict(invoice_number=f"S-{i}", customer_id="SMALL", due_date="2026-12-02") for i in range(2)
    ]
    csv = write_invoices(tmp_path / "inv.csv", rows)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        "stages:\n  - {name: overdue_7, offset_days: 7, tone: firm}\n"
        "segments:\n"
        "  - name: big\n    customer_ids: [BIG]\n    grouping: statement\n"
        "    stages:\n      - {name: overdue_7, offset_days: 7, tone: firm}\n",
        encoding="utf-8",
    )
    policy = load_policy(policy_file)
    assert (policy.grouping_of("big"), policy.grouping_of(None)) == ("statement", "invoice")
    outcomes = run(csv, f"sqlite:///{tmp_path}/l.db", pool, tmp_path, policy=policy)
    keys = sorted(m["X-Dunning-Key"] for m in sink.messages())
    assert len(outcomes) == 3 and keys[1:] == ["S-0:overdue_7:email", "S-1:overdue_7:email"]
    assert keys[0].startswith("BIG:statement-")


def test_grouping_is_strict(tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text(
        "grouping: statements\nstages:\n  - {name: due, offset_days: 0}\n", encoding="utf-8"
    )
    with pytest.raises(PolicyError, match="grouping"):
        load_policy(bad)


def test_statement_key_is_the_same_for_the_same_invoices_in_any_order():
    a = ActionKey.statement("C1", ["F-1:due:email", "F-2:final:email"], "email")
    b = ActionKey.statement("C1", ["F-2:final:email", "F-1:due:email"], "email")
    c = ActionKey.statement("C1", ["F-1:due:email"], "email")
    assert a == b != c and ActionKey.parse(str(a)) == a
    assert (
        a.is_statement and a.invoice == "C1" and not ActionKey.parse("F-1:due:email").is_statement
    )


def test_plan_json_and_table_show_the_statement(tmp_path):
    csv = portfolio(tmp_path, pdfs=False)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        (ROOT / "dunning" / "default_policy.yaml").read_text(encoding="utf-8")
        + "\ngrouping: statement\n",
        encoding="utf-8",
    )
    dunning = str(Path(sys.executable).with_name("dunning"))
    common = [
        "plan",
        "--invoices",
        str(csv),
        "--policy",
        str(policy_file),
        "--now",
        NOW.isoformat(),
    ]
    out = subprocess.run([dunning, *common], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    by_customer: dict[str, set[str]] = {}
    for rec in records:
        by_customer.setdefault(rec["customer"], set()).add(rec["statement"])
    assert {c: len(s) for c, s in by_customer.items()} == {"C1": 1, "C2": 1, "C3": 1}
    table = subprocess.run(
        [dunning, *common, "--format", "table"], capture_output=True, text=True, timeout=120
    )
    assert table.returncode == 0, table.stderr
    assert "statement" in table.stdout.splitlines()[0]
    assert len(re.findall(r"C2:statement-\w+:email", table.stdout)) == 4


def test_a_statement_policy_needs_the_statement_template_in_every_language(tmp_path):
    from dunning.policy import missing_templates

    policy = statement_policy()
    assert missing_templates(policy, ["es", "en", "pt"]) == []
    assert any(
        p.startswith("grouping: statements have no 'fr' email template")
        for p in missing_templates(policy, ["fr"])
    )


def test_flow_sends_one_statement_per_customer_in_task_runs_and_in_batches(
    prefect_api, sink, tmp_path
):
    from blocks import CsvInvoiceSource, DunningPolicy, LedgerDatabase
    from flows.sweep import dunning_sweep
    from tests.test_flows import channel_for, task_runs_of

    csv = portfolio(tmp_path)
    policy = DunningPolicy.model_validate(statement_policy().model_dump())
    url = f"sqlite:///{tmp_path}/l.db"

    def sweep_flow(max_task_runs: int, now: datetime = NOW):
        return dunning_sweep(
            source=CsvInvoiceSource(path=str(csv)),
            channel=channel_for(sink),
            ledger=LedgerDatabase(url=url),
            policy=policy,
            now=now,
            max_task_runs=max_task_runs,
            return_state=True,
        )

    state = sweep_flow(max_task_runs=200)
    assert state.result()["sent"] == 3
    runs = task_runs_of(state.state_details.flow_run_id, lambda r: len(r) >= 6)
    names = {r.name for r in runs}
    assert {"C1-statement", "C2-statement", "C3-statement"} <= names
    messages = sink.messages()
    assert len(messages) == 3
    assert all(len(list(m.iter_attachments())) == 4 for m in messages)
    assert sweep_flow(max_task_runs=200).result()["sent"] == 0
    assert len(sink.messages()) == 3
    first_keys = {m["X-Dunning-Key"] for m in messages}

    # Two task runs for three statements: batches of whole customers, nothing split.
    later = datetime.fromisoformat("2026-12-28T10:00:00+01:00")  # three stages more each
    state = sweep_flow(max_task_runs=2, now=later)
    assert state.result()["sent"] == 3
    runs = task_runs_of(state.state_details.flow_run_id, lambda r: len(r) >= 5)
    assert {"send 1–2 of 3", "send 3 of 3"} <= {r.name for r in runs}
    second = [m for m in sink.messages() if m["X-Dunning-Key"] not in first_keys]
    assert len(second) == 3
    for message in second:
        listed = re.findall(r"^- \S.*? (C\d-F\d):", text_of(message), flags=re.M)
        assert sorted(listed) == sorted(f"{listed[0][:2]}-F{i}" for i in range(3)), listed


def whatsapp_portfolio(tmp_path: Path) -> Path:
    """Two customers with a WhatsApp opt-in and three due invoices each; C2's number is
    not on WhatsApp."""
    rows = [
        dict(
            invoice_number=f"{c}-W{i}",
            customer_id=c,
            customer_name=f"Cliente {c}",
            email=f"ap@{c.lower()}.example",
            phone=phone,
            preferred_channel="whatsapp",
            whatsapp_opt_in="true",
            due_date=due,
            amount_total="100.00",
            amount_due="100.00",
        )
        for c, phone in (("C1", "600111222"), ("C2", "600333444"))
        for i, due in enumerate(["2026-12-02", "2026-11-23", "2026-11-04"])
    ]
    path = tmp_path / "inv.csv"
    write_invoices(path, [{k: v for k, v in r.items() if k not in OPTIONAL} for r in rows])
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = frame.assign(**{k: [r[k] for r in rows] for k in OPTIONAL})
    frame.to_csv(path, index=False)
    return path


#: The optional columns `write_invoices` does not write.
OPTIONAL = ("preferred_channel", "whatsapp_opt_in")


def test_whatsapp_statement_carries_count_and_total_and_falls_back_to_an_email_statement(
    sink, pool, tmp_path
):
    from dunning.act import WhatsAppSender
    from dunning.whatsapp import CloudApiSettings, TemplateBook, WhatsAppClient
    from tests.whatsapp_cloud import CloudApiServer, approved_from

    book = TemplateBook.load()
    csv = whatsapp_portfolio(tmp_path)
    policy = statement_policy()
    url = f"sqlite:///{tmp_path}/l.db"
    ledger = Ledger(url)
    _read, lookup = csv_source(str(csv))
    with CloudApiServer(token="t0k", phone_number_id="1065", approved=approved_from(book)) as api:
        api.state.not_on_whatsapp.add("34600333444")
        client = WhatsAppClient(
            CloudApiSettings("1065", access_token="t0k", base_url=api.base_url, backoff_seconds=0)
        )

        def sweep_once() -> list:
            invoices = read_invoice_file(csv).invoices
            ledger.sync_invoices(invoices, now=NOW)
            planned = plan(
                invoices,
                policy,
                NOW,
                ledger.planning_state(),
                channels_available=frozenset({"email", "whatsapp"}),
            )
            return [
                execute_action(
                    a,
                    ledger=ledger,
                    policy=policy,
                    lookup=lookup,
                    pool=pool,
                    identity=IDENTITY,
                    now=NOW,
                    whatsapp=WhatsAppSender(client, book),
                )
                for a in planned_actions(due_now(planned, NOW))
            ]

        first = sweep_once()
        assert [str(a.key).split(":")[0] for a in first] == ["C1", "C2"]
        by_customer = {o.key.invoice: o for o in first}
        on_whatsapp, by_email = by_customer["C1"], by_customer["C2"]
        assert (on_whatsapp.status, on_whatsapp.channel) == ("sent", "whatsapp")
        (request,) = [r for r in api.state.requests if r["body"].get("to") == "34600111222"]
        template = request["body"]["template"]
        assert template["name"] == "dunning_statement"
        values = [p["text"] for p in template["components"][0]["parameters"]]
        assert values == ["Cliente C1", "3", "300,00\xa0€"]
        # C2's number is not on WhatsApp: the same three invoices went as one email.
        assert (by_email.status, by_email.channel, by_email.fallback_from) == (
            "sent",
            "email",
            "whatsapp",
        )
        (mail,) = sink.messages()
        assert mail["To"] == "ap@c2.example" and "3 facturas" in mail["Subject"]
        actions = ledger.frame(Action).set_index("key")
        for i, stage in enumerate(["overdue_7", "overdue_15", "final"]):
            assert actions.loc[f"C1-W{i}:{stage}:whatsapp", "state"] == "sent"
            assert actions.loc[f"C2-W{i}:{stage}:whatsapp", "state"] == "rejected"
            assert actions.loc[f"C2-W{i}:{stage}:email", "state"] == "sent"

        assert sweep_once() == []  # nothing is due again on either channel
        assert len(sink.messages()) == 1
        assert len([r for r in api.state.requests if r["body"].get("to") == "34600111222"]) == 1


def test_a_statement_totals_each_currency_and_round_trips_as_a_task_parameter(sink, pool, tmp_path):
    import pickle

    from babel import Locale

    from dunning.render import format_money

    rows = [
        dict(invoice_number="M-1", due_date="2026-12-02", amount_due="100.25"),
        dict(invoice_number="M-2", due_date="2026-12-02", amount_due="200.50"),
        dict(invoice_number="M-3", due_date="2026-12-02", amount_due="50.00", currency="USD"),
    ]
    csv = write_invoices(tmp_path / "inv.csv", rows)
    policy = statement_policy()
    (action,) = planned_actions(due_now(plan(read_invoice_file(csv).invoices, policy, NOW), NOW))
    assert PlannedAction.from_dict(action.to_dict()) == action
    assert pickle.loads(pickle.dumps(action)) == action  # what a task run's parameters need
    assert [i.invoice for i in action.items] == ["M-1", "M-2", "M-3"]

    outcome = act(action, csv, f"sqlite:///{tmp_path}/l.db", pool, policy)
    assert outcome.status == "sent" and outcome.to_dict()["items"] == ["M-1", "M-2", "M-3"]
    body = text_of(sink.messages()[0])
    locale = Locale.parse("es_ES")
    totals = [line for line in body.splitlines() if line.startswith("Total pendiente:")]
    assert totals == [
        f"Total pendiente: {format_money(300.75, 'EUR', locale)}",
        f"Total pendiente: {format_money(50.0, 'USD', locale)}",
    ]

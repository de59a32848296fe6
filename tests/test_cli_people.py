"""The command line of issue 13, as a user runs it: `dunning policy check`, what `dunning plan`
previews about people, `dunning tasks list`, complaint words, `dunning replies ingest`."""

from __future__ import annotations

import json
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import yaml
from typer.testing import CliRunner

from apps.cli import app
from apps.mailsink import MailSink
from dunning.importers import read_invoice_file
from dunning.ledger import Ledger
from tests.invoices import write_invoices
from tests.test_cli import run

NOW = "2026-12-09T10:00:00+01:00"  # a Wednesday
BOSS = "boss@acme.example"
LADDER = {
    "replies": {"manager_emails": [BOSS]},
    "stages": [
        {"name": "due", "offset_days": 0},
        {
            "name": "overdue_7",
            "offset_days": 7,
            "tone": "firm",
            "escalation": {"human_task": "Call the customer", "assignee": "ana@acme.example"},
        },
        {
            "name": "final",
            "offset_days": 30,
            "tone": "final",
            "escalation": {
                "human_task": "Decide on collection",
                "assignee": "manager",
                "customer_status": "on_hold",
            },
        },
    ],
}


def policy_file(tmp_path: Path, policy: dict) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    return path


# -- dunning policy check ------------------------------------------------------------------


def test_policy_check_names_the_typo_its_path_and_exits_1(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(LADDER))
    bad["stages"][2]["escalation"]["asignee"] = bad["stages"][2]["escalation"].pop("assignee")
    bad["stages"].append({"name": "courtesy_call", "offset_days": 3})
    proc = run("policy", "check", "--policy", str(policy_file(tmp_path, bad)))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0].endswith("policy.yaml: 1 problem(s)")
    assert lines[1] == (
        "error: stages[2].escalation.asignee: unknown key (did you mean 'assignee'?); "
        "allowed keys: assignee, customer_status, human_task, notify, task_due_days"
    )
    assert proc.stdout == ""

    # the typo fixed, the missing template is what is left
    bad["stages"][2]["escalation"]["assignee"] = "manager"
    del bad["stages"][2]["escalation"]["asignee"]
    proc = run("policy", "check", "--policy", str(policy_file(tmp_path, bad)))
    assert proc.returncode == 1
    assert "error: stages[3].template: stage 'courtesy_call' has no 'es' email template" in (
        proc.stderr
    )


def test_policy_check_summarizes_a_good_ladder_and_checks_the_invoices_languages(tmp_path):
    path = policy_file(tmp_path, LADDER)
    proc = run("policy", "check", "--policy", str(path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "policy 'default': OK, templates checked in es"
    assert lines[1] == "ladder default:"
    assert lines[4].startswith("  +30 days  final  channel=preferred  tone=final")
    assert "task='Decide on collection' for manager in 1d  status=on_hold" in lines[4]

    # Portuguese invoices: the built-in ladder exists in pt, a Spanish-only template does not
    overlay = tmp_path / "mine" / "email" / "es"
    overlay.mkdir(parents=True)
    for part in ("subject.txt", "txt", "html"):
        (overlay / f"courtesy_call.{part}").write_text("Hola {{ invoice_number }}")
    own = yaml.safe_load(yaml.safe_dump(LADDER)) | {"templates_dir": "mine"}
    own["stages"].append({"name": "courtesy_call", "offset_days": 3})
    path = policy_file(tmp_path, own)
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(invoice_number="ES-1", due_date="2026-12-02"),
            dict(invoice_number="BR-1", due_date="2026-12-02", country="BR", language="pt"),
        ],
    )
    assert run("policy", "check", "--policy", str(path)).returncode == 0
    proc = run("policy", "check", "--policy", str(path), "--invoices", str(csv))
    assert proc.returncode == 1
    assert "stage 'courtesy_call' has no 'pt' email template" in proc.stderr
    # `dunning plan` still previews, and warns of it
    proc = run("plan", "--invoices", str(csv), "--policy", str(path), "--now", NOW)
    assert proc.returncode == 0, proc.stderr
    assert "warning: stages[3].template: stage 'courtesy_call' has no 'pt' email template" in (
        proc.stderr
    )


# -- dunning plan: who gets what -------------------------------------------------------------


def test_plan_previews_escalation_assignee_status_and_subject(tmp_path):
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(invoice_number="F-7", due_date="2026-12-02"),
            dict(invoice_number="F-30", due_date="2026-11-09"),
            dict(invoice_number="F-0", due_date="2026-12-09"),
        ],
    )
    path = policy_file(tmp_path, LADDER)
    proc = run("plan", "--invoices", str(csv), "--policy", str(path), "--now", NOW)
    assert proc.returncode == 0, proc.stderr
    plan = {r["invoice"]: r for r in map(json.loads, proc.stdout.splitlines())}
    final = plan["F-30"]
    assert final["stage"] == "final"
    assert final["escalation"] == {
        "human_task": "Decide on collection",
        "assignee": "manager",
        "task_due_days": 1,
        "customer_status": "on_hold",
        "notify": [],
    }
    assert final["assignee"] == BOSS  # the manager role, resolved through the policy
    assert final["customer_status"] == "on_hold"
    assert final["notify"] == []
    assert final["subject"] == "Último aviso: factura F-30 vencida hace 30 días"
    seven = plan["F-7"]
    assert (seven["assignee"], seven["customer_status"]) == ("ana@acme.example", None)
    assert seven["subject"] == "Factura F-7 vencida hace 7 días"
    due = plan["F-0"]
    assert (due["escalation"], due["assignee"]) == (None, None)
    assert "F-0" in due["subject"]

    table = run(
        "plan", "--invoices", str(csv), "--policy", str(path), "--now", NOW, "--format", "table"
    )
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    for column in ("task", "assignee", "customer_status", "subject"):
        assert column in header.split()
    row = next(r for r in rows if r.split()[0] == "F-30")
    assert BOSS in row and "on_hold" in row and "Último aviso: factura F-30" in row


# -- dunning tasks list ----------------------------------------------------------------------


def test_tasks_list_as_json_and_table_filtered_by_assignee(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    csv = write_invoices(tmp_path / "inv.csv", [dict(invoice_number="F-1", due_date="2026-12-02")])
    ledger.sync_invoices(read_invoice_file(csv).invoices)
    ledger.open_task(
        key="F-1:call",
        title="Call Acme",
        invoice_number="F-1",
        customer_id="C1",
        assignee="ana@acme.example",
        due_on=date(2026, 12, 10),
    )
    ledger.open_task(key="C9:decide", title="Decide", customer_id="C9", assignee="manager")

    proc = run("tasks", "list", "--ledger", url, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows[0] == {
        "id": 1,
        "invoice": "F-1",
        "customer": "Acme Cliente S.L.",
        "title": "Call Acme",
        "assignee": "ana@acme.example",
        "due": "2026-12-10",
        "state": "open",
    }
    assert [(r["customer"], r["assignee"], r["due"]) for r in rows[1:]] == [("C9", "manager", None)]

    mine = run("tasks", "list", "--ledger", url, "--assignee", "ANA@acme.example")
    assert mine.returncode == 0, mine.stderr
    header, *lines = mine.stdout.splitlines()
    assert header.split() == ["id", "invoice", "customer", "title", "assignee", "due", "state"]
    assert len(lines) == 1 and "Call Acme" in lines[0] and "2026-12-10" in lines[0]
    nobody = run("tasks", "list", "--ledger", url, "--assignee", "luis@acme.example")
    assert nobody.stdout.strip() == "no tasks"


# -- complaint words -------------------------------------------------------------------------


def test_the_words_for_a_complaint_are_a_dispute():
    texts = [
        "reclamo",
        "RECLAMO",
        "queja",
        "reclamação",
        "complaint",
        "formal complaint",
        "Buenas, tengo un reclamo con la factura F-1",
        "We are filing a formal complaint about invoice F-1.",
        "Vou abrir uma reclamação sobre esta fatura",
    ]
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    result = CliRunner().invoke(app, ["replies", "classify", "--today", "2026-12-09"], lines)
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(o["text"], o["intent"]) for o in out] == [(t, "dispute") for t in texts]
    assert all(o["confidence"] >= 0.6 for o in out)  # the bar replies are acted on at
    calm = "".join(json.dumps({"text": t}) + "\n" for t in ["Sin reclamos, pagamos el viernes"])
    result = CliRunner().invoke(app, ["replies", "classify", "--today", "2026-12-09"], calm)
    assert json.loads(result.stdout)["intent"] == "promise_to_pay"


# -- dunning replies ingest ------------------------------------------------------------------


def saved_email(path: Path, sender: str, subject: str, text: str) -> Path:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "cobros@acme.example"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.fromisoformat("2026-12-09T11:00:00+01:00"))
    msg["Message-ID"] = f"<{path.stem}@cliente.example>"
    msg.set_content(text)
    path.write_bytes(bytes(msg))
    return path


def test_replies_ingest_acts_on_saved_emails_like_the_mailbox(tmp_path, prefect_api):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(invoice_number="F-1", due_date="2026-12-02"),
            dict(
                invoice_number="G-1",
                customer_id="C2",
                email="ana@otro.example",
                due_date="2026-12-02",
            ),
        ],
    )
    Ledger(url).sync_invoices(read_invoice_file(csv).invoices)
    angry = saved_email(tmp_path / "reclamo.eml", "pagos@cliente.example", "Factura F-1", "RECLAMO")
    broken = tmp_path / "broken.eml"
    broken.write_bytes(b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" * 3000)
    with MailSink(tmp_path / "outbox", port=0) as sink:
        args = [
            "replies",
            "ingest",
            "--ledger",
            url,
            "--invoices",
            str(csv),
            "--smtp-host",
            sink.host,
            "--smtp-port",
            str(sink.port),
            "--from",
            "cobros@acme.example",
        ]
        result = CliRunner().invoke(app, [*args, str(angry), str(broken)])
        assert result.exit_code == 1, result.output  # one file could not be read
        assert f"{angry}: inbox message 1" in result.stdout
        assert f"error: {broken}: cannot be read as an email" in result.stderr
        counts = json.loads(result.stdout.splitlines()[-1])
        assert counts["processed"] == 1 and counts["intents"] == {"dispute": 1}

        again = CliRunner().invoke(app, [*args, str(angry)])
        assert again.exit_code == 0, again.output
        assert "already in the inbox" in again.stdout
        assert json.loads(again.stdout.splitlines()[-1])["processed"] == 0

    message = Ledger(url).inbound_message(1)
    assert (message.intent, message.invoice_numbers) == ("dispute", ["F-1"])
    # the chase stops for F-1 (a dispute), the other customer's invoice goes on
    proc = run("plan", "--invoices", str(csv), "--ledger", url, "--now", NOW)
    plan = {r["invoice"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert plan["F-1"]["skip_reason"] == "disputed"
    assert plan["G-1"]["stage"] == "overdue_7"

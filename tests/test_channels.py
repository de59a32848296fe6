"""Channel choice: the customer's preferred channel, the policy's fallback order, consent and
opt-outs in the planner; WhatsApp, its email fallback and the per-channel keys in a sweep on
a real Prefect server, the in-process Cloud API server and a real SMTP server."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from dunning.channels import WhatsAppFacts
from dunning.importers import normalize
from dunning.ledger import LedgerState
from dunning.plan import action_dicts, plan, plan_records
from dunning.policy import Policy, default_policy

NOW = datetime.fromisoformat("2026-12-09T10:00:00+01:00")  # F-1 is overdue_7 then
BOTH = frozenset({"email", "whatsapp"})


def invoice(number: str = "F-1", **fields: str) -> dict[str, str]:
    return {
        "invoice_number": number,
        "customer_id": f"C-{number}",
        "customer_name": "Talleres Ebro S.L.",
        "email": "pagos@ebro.example",
        "phone": "600 12 34 56",
        "country": "ES",
        "language": "es",
        "timezone": "Europe/Madrid",
        "currency": "EUR",
        "amount_total": "1234.56",
        "amount_due": "1234.56",
        "due_date": "2026-12-02",
        "status": "open",
    } | fields


def frame(*rows: dict[str, str]) -> pd.DataFrame:
    result = normalize(pd.DataFrame(list(rows), dtype=str).fillna(""))
    assert result.quarantine.empty, result.quarantine.to_string()
    return result.invoices


def pauses(*rows: dict) -> LedgerState:
    base = {"invoice_number": None, "customer_id": None, "until": None, "channel": ""}
    return LedgerState(pauses=pd.DataFrame([base | r for r in rows]))


def by_invoice(planned: pd.DataFrame) -> dict[str, dict]:
    return {r["invoice"]: r for r in planned.to_dict("records")}


def test_without_a_whatsapp_block_the_plan_is_email_as_before():
    invoices = frame(
        invoice("F-1", preferred_channel="whatsapp", whatsapp_opt_in="sí"),
        invoice("F-2"),
        invoice("F-3", email=""),
    )
    planned = by_invoice(plan(invoices, default_policy(), NOW))
    assert [(r["channel"], r["key"]) for r in planned.values()] == [
        ("email", "F-1:overdue_7:email"),
        ("email", "F-2:overdue_7:email"),
        ("task", "F-3:overdue_7:task"),
    ]
    assert planned["F-1"]["channel_note"] == "preferred whatsapp: no WhatsApp channel configured"
    assert planned["F-2"]["channel_note"] == "" and planned["F-3"]["channel_note"] == ""
    assert planned["F-3"]["note"] == "no usable email: a human task instead"
    # A block alone changes nothing for customers who prefer nothing.
    plain = frame(invoice("F-2"), invoice("F-3", email=""))
    pd.testing.assert_frame_equal(
        plan(plain, default_policy(), NOW),
        plan(plain, default_policy(), NOW, channels_available=BOTH),
    )


def test_preferred_whatsapp_with_consent_goes_on_whatsapp():
    invoices = frame(
        invoice("F-1", preferred_channel="whatsapp", whatsapp_opt_in="yes"),
        invoice("F-2", preferred_channel="WhatsApp"),  # opted in with us, not at the source
    )
    facts = WhatsAppFacts(opted_in=frozenset({"C-F-2"}))
    planned = by_invoice(
        plan(invoices, default_policy(), NOW, None, channels_available=BOTH, whatsapp=facts)
    )
    for number in ("F-1", "F-2"):
        row = planned[number]
        assert (row["channel"], row["channels"], row["channel_note"]) == ("whatsapp",) * 2 + ("",)
        assert row["key"] == f"{number}:overdue_7:whatsapp"


@pytest.mark.parametrize(
    ("fields", "state", "facts", "note"),
    [
        ({"whatsapp_opt_in": ""}, None, None, "preferred whatsapp: no opt-in"),
        ({"whatsapp_opt_in": "no"}, None, None, "preferred whatsapp: no opt-in"),
        (
            {"phone": "+34 12"},
            None,
            None,
            "preferred whatsapp: phone '+34 12' not a valid number for ES",
        ),
        ({"phone": ""}, None, None, "preferred whatsapp: no phone number"),
        (
            {},
            pauses({"kind": "opt_out", "customer_id": "C-F-1", "channel": "whatsapp"}),
            None,
            "preferred whatsapp: opted out",
        ),
        (
            {},
            None,
            WhatsAppFacts(invalid=frozenset({("C-F-1", "+34600123456")})),
            "preferred whatsapp: number +34600123456 reported as not on WhatsApp",
        ),
    ],
    ids=["no-opt-in", "opt-in-no", "bad-phone", "no-phone", "opted-out", "reported-invalid"],
)
def test_whatsapp_unusable_falls_back_to_email_with_the_reason(fields, state, facts, note):
    fields = {"preferred_channel": "whatsapp", "whatsapp_opt_in": "true"} | fields
    planned = plan(
        frame(invoice("F-1", **fields)),
        default_policy(),
        NOW,
        state,
        channels_available=BOTH,
        whatsapp=facts,
    )
    row = planned.iloc[0]
    assert (row["channel"], row["key"], row["skip_reason"]) == (
        "email",
        "F-1:overdue_7:email",
        None,
    )
    assert row["channel_note"] == note
    (rec,) = plan_records(planned)
    assert (rec["channel"], rec["channel_note"]) == ("email", note)


def test_opt_outs_are_per_channel():
    policy = default_policy().model_copy(update={"channel_order": ["email", "whatsapp"]})
    invoices = frame(
        invoice("F-1", whatsapp_opt_in="1"),  # email opt-out, WhatsApp consent
        invoice("F-2"),  # email opt-out, no WhatsApp consent
        invoice("F-3", whatsapp_opt_in="1"),  # opted out of everything
        invoice("F-4", whatsapp_opt_in="1"),  # WhatsApp opt-out only: email as usual
    )
    state = pauses(
        {"kind": "opt_out", "customer_id": "C-F-1", "channel": "email"},
        {"kind": "opt_out", "customer_id": "C-F-2", "channel": "email"},
        {"kind": "opt_out", "invoice_number": "F-3", "channel": ""},
        {"kind": "opt_out", "customer_id": "C-F-4", "channel": "whatsapp"},
    )
    planned = by_invoice(plan(invoices, policy, NOW, state, channels_available=BOTH))
    assert (planned["F-1"]["channel"], planned["F-1"]["channel_note"]) == (
        "whatsapp",
        "email: opted out",
    )
    assert planned["F-2"]["skip_reason"] == "opted_out"
    assert planned["F-3"]["skip_reason"] == "opted_out"
    assert (planned["F-4"]["channel"], planned["F-4"]["channel_note"]) == ("email", "")
    # Without a WhatsApp block an email opt-out stops the reminders, as it always did.
    email_only = by_invoice(plan(invoices, policy, NOW, state))
    assert email_only["F-1"]["skip_reason"] == "opted_out"
    assert email_only["F-4"]["channel"] == "email"


def test_a_final_notice_on_all_channels_is_one_row_and_one_action_per_channel():
    data = default_policy().model_dump()
    for stage in data["stages"]:
        if stage["name"] == "final":
            stage["channel"] = "all"
    policy = Policy.model_validate(data | {"channel_order": ["whatsapp", "email"]})
    invoices = frame(
        invoice("F-1", due_date="2026-11-02", whatsapp_opt_in="true"),
        invoice("F-2", due_date="2026-11-02"),  # no consent: email only
        invoice("F-3", due_date="2026-11-25", whatsapp_opt_in="true"),  # overdue_7: one channel
    )
    planned = plan(invoices, policy, NOW, channels_available=BOTH)
    rows = by_invoice(planned)
    assert (rows["F-1"]["stage"], rows["F-1"]["channel"], rows["F-1"]["channels"]) == (
        "final",
        "whatsapp",
        "whatsapp,email",
    )
    assert (rows["F-2"]["channels"], rows["F-2"]["channel_note"]) == (
        "email",
        "whatsapp: no opt-in",
    )
    assert (rows["F-3"]["stage"], rows["F-3"]["channels"]) == ("overdue_7", "whatsapp")
    actions = action_dicts(planned)
    assert [(a["key"], a["channel"]) for a in actions] == [
        ("F-1:final:whatsapp", "whatsapp"),
        ("F-1:final:email", "email"),
        ("F-2:final:email", "email"),
        ("F-3:overdue_7:whatsapp", "whatsapp"),
    ]
    rec = {r["invoice"]: r for r in plan_records(planned)}
    assert rec["F-1"]["channels"] == ["whatsapp", "email"] and "channels" not in rec["F-3"]


def test_a_stage_on_email_never_uses_whatsapp_and_one_on_whatsapp_falls_back():
    data = default_policy().model_dump()
    for stage in data["stages"]:
        stage["channel"] = "whatsapp" if stage["name"] == "overdue_7" else "email"
    policy = Policy.model_validate(data)
    invoices = frame(
        invoice("F-1", whatsapp_opt_in="true", preferred_channel="whatsapp"),
        invoice("F-2"),
        invoice("F-3", due_date="2026-11-02", whatsapp_opt_in="true", preferred_channel="whatsapp"),
    )
    rows = by_invoice(plan(invoices, policy, NOW, channels_available=BOTH))
    assert rows["F-1"]["channel"] == "whatsapp"
    assert (rows["F-2"]["channel"], rows["F-2"]["channel_note"]) == ("email", "whatsapp: no opt-in")
    assert (rows["F-3"]["stage"], rows["F-3"]["channel"]) == ("final", "email")


def test_the_ledger_key_of_the_primary_channel_decides_already_sent():
    invoices = frame(invoice("F-1", preferred_channel="whatsapp", whatsapp_opt_in="true"))
    taken = LedgerState(
        actions=pd.DataFrame(
            {
                "key": ["F-1:overdue_7:whatsapp"],
                "state": ["rejected"],
                "updated_at": [pd.Timestamp("2026-12-09", tz="UTC")],
            }
        )
    )
    row = plan(invoices, default_policy(), NOW, taken, channels_available=BOTH).iloc[0]
    assert row["skip_reason"] == "rejected"
    # The same ledger does not hold back the email of an email-only run.
    assert plan(invoices, default_policy(), NOW, taken).iloc[0]["skip_reason"] is None


def test_bad_channel_fields_are_quarantined_with_what_to_write():
    raw = pd.DataFrame(
        [
            invoice("F-1", preferred_channel="fax"),
            invoice("F-2", whatsapp_opt_in="maybe"),
            invoice("F-3", preferred_channel=" Email ", whatsapp_opt_in="Sí"),
        ],
        dtype=str,
    ).fillna("")
    result = normalize(raw)
    assert list(result.invoices["invoice_number"]) == ["F-3"]
    assert (
        result.invoices.loc[0, "preferred_channel"],
        result.invoices.loc[0, "whatsapp_opt_in"],
    ) == (
        "email",
        "true",
    )
    problems = result.quarantine.set_index("invoice_number")
    assert problems.loc["F-1", "field"] == "preferred_channel"
    assert "email, whatsapp" in problems.loc["F-1", "reason"]
    assert problems.loc["F-2", "field"] == "whatsapp_opt_in"
    assert "yes/no" in problems.loc["F-2", "reason"]


def test_policy_without_channel_fields_reads_as_email_only():
    policy = Policy.model_validate(
        {
            "stages": [
                {"name": "due", "offset_days": 0, "channel": "email"},
                {"name": "x", "offset_days": 3},
            ]
        }
    )
    assert policy.channel_order == ["email"]
    assert [s.channel for s in policy.stages] == ["email", "preferred"]


# -- end to end: a sweep on a real Prefect server, the Cloud API contract and real SMTP ------

SWEEP_NOW = datetime.fromisoformat("2026-12-09T10:00:00+01:00")
TOKEN = "EAAG-channels-test-token"
PHONE_ID = "106540352242922"


def write_csv(path, rows: list[dict[str, str]]):
    """A CSV in the default layout plus the optional channel columns."""
    import csv

    from dunning.schema import INVOICE_COLUMNS, OPTIONAL_COLUMNS

    columns = [*INVOICE_COLUMNS, *OPTIONAL_COLUMNS]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" for c in columns} | row)
    return path


@pytest.fixture
def cloud_api():
    from dunning.whatsapp import TemplateBook
    from tests.whatsapp_cloud import CloudApiServer, approved_from

    approved = approved_from(TemplateBook.load())
    with CloudApiServer(token=TOKEN, phone_number_id=PHONE_ID, approved=approved) as api:
        yield api


def test_sweep_sends_whatsapp_email_and_the_131026_fallback_once(prefect_api, cloud_api, tmp_path):
    from prefect_email import EmailServerCredentials

    from apps.mailsink import MailSink
    from blocks import CsvInvoiceSource, EmailChannel, LedgerDatabase, WhatsAppCloudChannel
    from dunning.ledger import Action, HumanTask, Ledger
    from dunning.render import format_day, format_money, locale_for
    from flows.sweep import dunning_sweep

    csv = write_csv(
        tmp_path / "inv.csv",
        [
            invoice("W-1", preferred_channel="whatsapp", whatsapp_opt_in="sí"),
            invoice("E-1", email="ap@beta.example", phone=""),
            invoice(
                "X-1",
                email="cuentas@gamma.example",
                phone="611 22 33 44",
                preferred_channel="whatsapp",
                whatsapp_opt_in="yes",
            ),
        ],
    )
    cloud_api.state.not_on_whatsapp.add("34611223344")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    block = WhatsAppCloudChannel(
        phone_number_id=PHONE_ID, access_token=TOKEN, base_url=cloud_api.base_url
    )
    with MailSink(tmp_path / "outbox", port=0) as sink:
        email = EmailChannel(
            credentials=EmailServerCredentials(
                smtp_server=sink.host, smtp_port=sink.port, smtp_type="INSECURE"
            ),
            from_address="cobros@acme.example",
            from_name="Acme S.L.",
        )

        def sweep() -> dict:
            return dunning_sweep(
                source=CsvInvoiceSource(path=str(csv)),
                channel=email,
                ledger=LedgerDatabase(url=url),
                now=SWEEP_NOW,
                whatsapp=block,
            )

        first = sweep()
        mails = sink.messages()
        second = sweep()
        assert len(sink.messages()) == 2, "the second sweep sent an email"

    # W-1: the approved overdue_7 template with the customer's name, invoice, amount, date.
    sent = cloud_api.state.sent()
    assert [m["to"] for m in sent] == ["34600123456"]
    template = sent[0]["template"]
    assert (template["name"], template["language"]["code"]) == ("dunning_overdue_7", "es")
    loc = locale_for("es", "ES")
    assert [p["text"] for p in template["components"][0]["parameters"]] == [
        "Talleres Ebro S.L.",
        "W-1",
        format_money(1234.56, "EUR", loc),
        format_day(date(2026, 12, 2), loc),
    ]
    # E-1 by email as always; X-1: Meta answered 131026, so the same stage went by email.
    assert sorted(m["To"] for m in mails) == ["ap@beta.example", "cuentas@gamma.example"]
    x1 = next(m for m in mails if m["To"] == "cuentas@gamma.example")
    assert "X-1" in x1["Subject"]
    assert first["sent"] == 3, first
    assert second["sent"] == 0 and second.get("failed", 0) == 0, second
    assert len(cloud_api.state.requests) == 2  # W-1 sent, X-1 refused; nothing on the re-run

    ledger = Ledger(url)
    states = dict(ledger.frame(Action)[["key", "state"]].itertuples(index=False))
    assert states == {
        "W-1:overdue_7:whatsapp": "sent",
        "E-1:overdue_7:email": "sent",
        "X-1:overdue_7:whatsapp": "rejected",
        "X-1:overdue_7:email": "sent",
    }
    (task,) = ledger.frame(HumanTask).to_dict("records")
    assert "+34611223344" in task["title"] and task["invoice_number"] == "X-1"


def test_plan_command_shows_the_channel_and_why_it_fell_back(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    csv = write_csv(
        tmp_path / "inv.csv",
        [
            invoice("W-1", preferred_channel="whatsapp", whatsapp_opt_in="true"),
            invoice("N-1", preferred_channel="whatsapp"),
            invoice("B-1", preferred_channel="whatsapp", whatsapp_opt_in="true", phone="12"),
        ],
    )
    dunning = str(Path(sys.executable).with_name("dunning"))

    def run(*extra: str) -> dict[str, dict]:
        proc = subprocess.run(
            [dunning, "plan", "--invoices", str(csv), "--now", SWEEP_NOW.isoformat(), *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return {r["invoice"]: r for r in map(json.loads, proc.stdout.splitlines())}

    planned = run("--whatsapp")
    assert (planned["W-1"]["channel"], planned["W-1"].get("channel_note")) == ("whatsapp", None)
    assert (planned["N-1"]["channel"], planned["N-1"]["channel_note"]) == (
        "email",
        "preferred whatsapp: no opt-in",
    )
    assert planned["B-1"]["channel"] == "email"
    assert (
        planned["B-1"]["channel_note"] == "preferred whatsapp: phone '12' not a valid number for ES"
    )
    without = run()
    assert {r["channel"] for r in without.values()} == {"email"}
    assert without["W-1"]["channel_note"] == "preferred whatsapp: no WhatsApp channel configured"


def test_promise_broken_email_names_the_promised_date(tmp_path):
    from apps.mailsink import MailSink
    from dunning.act import EmailIdentity, execute_action
    from dunning.importers import to_invoice
    from dunning.ledger import Ledger
    from dunning.smtp import SmtpPool, SmtpSettings

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    inv = to_invoice(frame(invoice("F-1")).iloc[0].to_dict())
    promise_id = ledger.add_promise(
        invoice_number="F-1", customer_id=inv.customer_id, promised_on=date(2026, 12, 4)
    )
    with MailSink(tmp_path / "outbox", port=0) as sink:
        outcome = execute_action(
            {
                "key": f"F-1:promise_broken-{promise_id}:email",
                "invoice": "F-1",
                "customer": inv.customer_id,
                "stage": "promise_broken",
                "channel": "email",
                "language": "es",
                "country": "ES",
                "timezone": "Europe/Madrid",
            },
            ledger=ledger,
            policy=default_policy(),
            lookup=lambda _: inv,
            pool=SmtpPool(SmtpSettings(host=sink.host, port=sink.port)),
            identity=EmailIdentity(from_address="cobros@acme.example"),
            now=SWEEP_NOW,
        )
        assert outcome.status == "sent", outcome
        (mail,) = sink.messages()
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert "Nos comunicó que el 4 de diciembre de 2026 realizaría el pago" in body, body


def test_an_invoice_the_ledger_knows_is_paid_gets_no_reminder(tmp_path):
    from apps.mailsink import MailSink
    from dunning.act import EmailIdentity, execute_action
    from dunning.importers import to_invoice
    from dunning.ledger import Ledger
    from dunning.smtp import SmtpPool, SmtpSettings

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    open_at_source = to_invoice(frame(invoice("F-1")).iloc[0].to_dict())
    # A payment webhook (or a newer read) closed it; the source's re-check still says open.
    ledger.sync_invoices(frame(invoice("F-1", status="paid", amount_due="0")))
    with MailSink(tmp_path / "outbox", port=0) as sink:
        outcome = execute_action(
            {
                "key": "F-1:overdue_7:email",
                "invoice": "F-1",
                "customer": "C-F-1",
                "stage": "overdue_7",
                "channel": "email",
            },
            ledger=ledger,
            policy=default_policy(),
            lookup=lambda _: open_at_source,
            pool=SmtpPool(SmtpSettings(host=sink.host, port=sink.port)),
            identity=EmailIdentity(from_address="cobros@acme.example"),
            now=SWEEP_NOW,
        )
        assert sink.messages() == []
    assert (outcome.status, outcome.reason) == ("skipped", "paid_at_source")

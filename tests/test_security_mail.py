"""Issue 16, mail side: each attack on the reply intake, reproduced, now doing no harm.

Every test sends what an attacker sent (a stranger at a free-mail domain, a mail bomb, a
forged From, a foreign phone number, a crafted `pdf_path`) and checks what a user would
notice: no document or bank details mailed, no pause, promise or opt-out recorded, a task
for a person, the other messages still processed. docs/security.md lists them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from imap_tools import MailBoxUnencrypted

from apps.mailsink import MailSink
from blocks import ImapMailbox, RestInvoiceSource
from dunning.act import execute_action
from dunning.importers import read_invoice_file
from dunning.ledger import Event, HumanTask, InboundMessage, Ledger, Pause, Promise
from dunning.mail import find_attachment
from dunning.policy import BankDetails, default_policy
from dunning.replies import classify, imap
from dunning.replies.act import handle_reply
from dunning.replies.classify import MAX_CLASSIFIED_CHARS, classified_part
from dunning.replies.imap import MAX_CONTAINERS, ImapSettings, fetch_into
from dunning.replies.match import is_public_mail_domain, match_message
from dunning.schema import Invoice
from dunning.smtp import SmtpPool, SmtpSettings
from tests.connectors.fake_rest import FakeRest
from tests.connectors.fakeapi import Request, Response
from tests.connectors.test_rest import MAPPING as REST_MAPPING
from tests.invoices import write_invoices
from tests.test_replies_act import IDENTITY, RECEIVED, Understood

# -- a ledger of customers whose contacts write from free-mail and company domains -------------


@pytest.fixture
def env(tmp_path: Path):
    pdf = tmp_path / "F-015.pdf"
    pdf.write_bytes(b"%PDF-1.4 F-015")
    rows = [
        dict(invoice_number="F-015", customer_id="UK1", email="pay.accounts@hotmail.co.uk"),
        dict(invoice_number="D-7", customer_id="DE1", email="buchhaltung@gmx.de"),
        dict(invoice_number="A-1", customer_id="AC1", email="ana@acme-customer.example"),
        dict(invoice_number="E-1", customer_id="ES1", email="e@es.example", phone="600 123 456"),
    ]
    for row in rows:
        row.update(due_date="2026-11-02", pdf_path=str(pdf))
    invoices = read_invoice_file(write_invoices(tmp_path / "inv.csv", rows)).invoices
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    ledger.sync_invoices(invoices)
    by_number = {r["invoice_number"]: Invoice(**r) for r in invoices.to_dict("records")}
    policy = default_policy().model_copy(deep=True)
    policy.replies.bank_details = BankDetails(
        beneficiary="Acme S.L.", iban="ES9121000418450200051332", bic="CAIXESBBXXX"
    )
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        yield dict(
            ledger=ledger,
            sink=sink,
            pool=pool,
            policy=policy,
            lookup=by_number.get,
            folder=str(tmp_path),
        )
        pool.close()


def receive(env: dict, understood: Understood, *, sender: str, text: str, **fields) -> dict:
    """Store one message and act on it as if classified `understood`."""
    ledger: Ledger = env["ledger"]
    (new_id,) = ledger.store_inbound(
        [
            InboundMessage(
                provider_id=f"<m{len(ledger.inbound())}@x.example>",
                sender=sender,
                text=text,
                received_at=RECEIVED,
                **fields,
            )
        ]
    )
    outcome = handle_reply(
        ledger.inbound_message(new_id),
        ledger=ledger,
        policy=env["policy"],
        lookup=env["lookup"],
        pool=env["pool"],
        identity=IDENTITY,
        classify=lambda *a, **k: understood,
        attachments_root=env["folder"],
    )
    return outcome.to_dict()


def opt_outs(env: dict) -> list[str]:
    return env["ledger"].frame(Pause, kind="opt_out")["customer_id"].tolist()


# -- 1. a stranger at the contact's free-mail domain -------------------------------------------


def test_a_stranger_at_the_contacts_free_mail_domain_gets_no_document(env):
    out = receive(
        env,
        Understood("invoice_copy_request", lang="en"),
        sender="mallory@hotmail.co.uk",
        text="Could you please send me a copy of invoice F-015?",
    )
    assert not env["sink"].messages()  # before: answered with F-015.pdf
    assert out["state"] == "needs_human"
    (task,) = env["ledger"].frame(HumanTask)["title"].tolist()
    assert "not a known contact" in task


def test_a_stranger_at_gmx_gets_no_iban_and_cannot_opt_the_customer_out(env):
    receive(env, Understood("bank_details_request"), sender="mallory@gmx.de", text="IBAN? D-7")
    receive(env, Understood("opt_out"), sender="mallory@gmx.de", text="stop sending me these D-7")
    assert not env["sink"].messages()  # before: the IBAN was mailed
    assert opt_outs(env) == []  # before: DE1 was opted out


def test_a_colleague_at_the_customers_own_domain_is_trusted_but_not_for_documents(env):
    colleague = "pagos@acme-customer.example"
    ledger = env["ledger"]
    matched = match_message(InboundMessage(provider_id="<c>", sender=colleague, text="A-1"), ledger)
    assert (matched.trusted, matched.known) == (True, False)
    receive(env, Understood("opt_out"), sender=colleague, text="A-1: no more emails")
    receive(env, Understood("invoice_copy_request"), sender=colleague, text="copy of A-1")
    assert opt_outs(env) == [] and not env["sink"].messages()
    # The known contact itself gets the document.
    receive(env, Understood("invoice_copy_request"), sender="ana@acme-customer.example", text="A-1")
    (answer,) = env["sink"].messages()
    assert [a.get_filename() for a in answer.iter_attachments()] == ["F-015.pdf"]


def test_free_mail_and_disposable_domains_come_from_the_maintained_lists():
    for domain in ("hotmail.co.uk", "gmx.de", "gmail.com", "mailinator.com", "mail.yahoo.co.jp"):
        assert is_public_mail_domain(domain), domain
    assert not is_public_mail_domain("acme-customer.example")


# -- 6. a forged From that the receiving server failed --------------------------------------

FAILED = "mx.acme.example; spf=fail smtp.mailfrom=e@es.example; dmarc=fail header.from=es.example"


@pytest.mark.parametrize(
    "understood",
    [
        Understood("promise_to_pay", promise_date=date(2026, 11, 20)),
        Understood("opt_out"),
        Understood("dispute"),
        Understood("payment_plan_request"),
    ],
    ids=lambda u: u.intent,
)
def test_a_message_that_failed_dmarc_or_spf_changes_nothing(env, understood):
    out = receive(
        env,
        understood,
        sender="e@es.example",  # the known contact's address, forged
        text="E-1",
        headers={"authentication-results": FAILED},
    )
    assert env["ledger"].frame(Promise).empty and env["ledger"].frame(Pause).empty
    assert not env["sink"].messages() and out["state"] == "needs_human"
    (task,) = env["ledger"].frame(HumanTask)["title"].tolist()
    assert "failed mail authentication" in task and "dmarc=fail" in task


def test_a_message_that_passed_is_acted_on(env):
    passed = FAILED.replace("=fail", "=pass")
    receive(
        env,
        Understood("promise_to_pay", promise_date=date(2026, 11, 20)),
        sender="e@es.example",
        text="E-1",
        headers={"authentication-results": passed},
    )
    assert env["ledger"].frame(Promise)["invoice_number"].tolist() == ["E-1"]


# -- 14. a foreign number that ends like a customer's -------------------------------------------


def test_a_uk_number_ending_like_a_spanish_customers_cannot_opt_it_out(env):
    # The Spanish customer's phone is "600 123 456" (+34); this UK mobile ends the same.
    uk = InboundMessage(provider_id="<w1>", sender="+447600123456", channel="whatsapp", text="STOP")
    assert match_message(uk, env["ledger"]).how == "none"  # before: matched ES1
    receive(env, Understood("opt_out"), sender="+447600123456", text="STOP", channel="whatsapp")
    assert opt_outs(env) == []
    receive(env, Understood("opt_out"), sender="+34600123456", text="STOP", channel="whatsapp")
    assert opt_outs(env) == ["ES1"]


# -- 13. the mailbox password in a repr -------------------------------------------------------


def test_the_mailbox_password_is_never_printed():
    settings = ImapSettings(host="imap.x.example", username="ar@x.example", password="hunter2")
    block = ImapMailbox(host="imap.x.example", username="ar@x.example", password="hunter2")
    for shown in (repr(settings), str(settings), repr(block), repr(block.settings())):
        assert "hunter2" not in shown
    assert block.settings().password.get_secret_value() == "hunter2"


# -- 4. a huge reply --------------------------------------------------------------------------


def test_only_the_start_of_the_senders_own_words_is_classified():
    own = "Pagaremos la factura el viernes. " * 1_000  # 33 KB of new text
    quoted = "\n\nEl lun, 3 nov 2026, Acme <c@acme.example> escribió:\n> Su factura vence hoy\n"
    part = classified_part(own + quoted * 10_000)
    assert len(part) == MAX_CLASSIFIED_CHARS and "escribió" not in part
    # A 5 MB message is classified on that part (bench/replies_large.py times it).
    result = classify(own + "x" * 5_000_000, received_on=date(2026, 11, 10))
    assert result.intent == "promise_to_pay"


# -- 2. one email that stopped all intake ---------------------------------------------------


def nested_bomb(levels: int) -> bytes:
    """A message with `levels` nested multipart/mixed parts (the issue's was 2,000)."""
    head = b"From: mallory@x.example\r\nTo: ar@acme.example\r\nSubject: bomb\r\n"
    head += b"Message-ID: <bomb%d@x.example>\r\nMIME-Version: 1.0\r\n" % levels
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(levels)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(levels)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nhi" + closing


def good_reply() -> bytes:
    msg = EmailMessage()
    msg["From"] = "ana@acme-customer.example"
    msg["To"] = "ar@acme.example"
    msg["Subject"] = "Re: A-1"
    msg["Date"] = format_datetime(datetime(2026, 11, 10, 9, tzinfo=UTC))
    msg["Message-ID"] = "<good@acme-customer.example>"
    msg["Authentication-Results"] = "mx.acme.example; spf=pass smtp.mailfrom=acme-customer.example"
    msg.set_content("Pagaremos la A-1 el viernes.")
    return msg.as_bytes()


def test_a_nested_mail_bomb_is_set_aside_and_the_good_message_beside_it_is_read(
    tmp_path, imap_server
):
    login = f"{tmp_path.name}@acme.example"
    imap_server.add_user(login, "imap-secret")
    bomb = nested_bomb(2_000)
    assert len(bomb) > 100_000 and MAX_CONTAINERS < 2_000
    with MailBoxUnencrypted("127.0.0.1", imap_server.port).login(login, "imap-secret") as box:
        box.append(bomb, "INBOX")
        box.append(nested_bomb(MAX_CONTAINERS), "INBOX")  # just under the count: depth decides
        box.append(good_reply(), "INBOX")
    settings = ImapSettings(
        host="127.0.0.1", port=imap_server.port, security="none", username=login,
        password="imap-secret",
    )  # fmt: skip
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")

    new_ids = fetch_into(ledger, settings)  # before: RecursionError, nothing stored or moved
    assert fetch_into(ledger, settings) == []  # and the next run finds an empty inbox

    (good,) = [ledger.inbound_message(i) for i in new_ids]
    assert good.sender == "ana@acme-customer.example" and good.state == "new"
    assert "spf=pass" in good.headers["authentication-results"]
    quarantined = ledger.inbound(state="quarantined")
    assert len(quarantined) == 2
    assert quarantined[0].text.encode() == bomb  # stored raw, as received
    assert "containers" in quarantined[0].outcome and "levels deep" in quarantined[1].outcome
    tasks = ledger.frame(HumanTask)["title"].tolist()
    assert len(tasks) == 2 and all("Quarantine" in t for t in tasks)
    with MailBoxUnencrypted("127.0.0.1", imap_server.port).login(login, "imap-secret") as box:
        box.folder.set("Quarantine")
        assert len(box.uids()) == 2
        box.folder.set("Processed")
        assert len(box.uids()) == 1


# -- 3. an API source's record naming a local file --------------------------------------------

PDF = b"%PDF-1.4 invoice from the API"


class FakeRestWithDocuments(FakeRest):
    """The in-house API, which also serves each invoice's PDF under /docs/."""

    def route(self, req: Request) -> Response:
        if req.path.startswith("/docs/"):
            if req.headers.get("x-api-key") != self.api_key:
                return Response(403, {"message": "forbidden"})
            kind = "text/html" if req.path.endswith(".html") else "application/pdf"
            return Response(
                200, PDF if kind == "application/pdf" else b"<html>", {"Content-Type": kind}
            )
        return super().route(req)


@pytest.mark.parametrize(
    "pdf_path, attached",
    [
        ("/etc/hostname", None),
        ("../../secret.txt", None),
        ("http://elsewhere.invalid/docs/R-00001.pdf", None),  # another host: not fetched
        ("{api}/docs/R-00001.html", None),  # the API's host, but not a PDF
        ("{api}/docs/R-00001.pdf", PDF),  # the API's own document: downloaded and attached
    ],
)
def test_an_api_record_can_only_attach_the_apis_own_document(tmp_path, pdf_path, attached):
    (tmp_path.parent / "secret.txt").write_text("the secret")
    with MailSink(tmp_path / "outbox", port=0) as sink, FakeRestWithDocuments() as api:
        api.add(number="R-00001", pdf_path=pdf_path.format(api=api.url))
        source = RestInvoiceSource(
            url=f"{api.url}/api/invoices",
            auth_header="X-Api-Key",
            auth_value=api.api_key,
            records_path="data",
            field_mapping={**REST_MAPPING, "pdf_path": "pdf_path"},
            status_mapping={"unpaid": "open"},
            amounts_in_minor_units=True,
            item_url=f"{api.url}/api/invoices/{{invoice_number}}",
            item_path="invoice",
            retries=0,
        )
        ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        outcome = execute_action(
            {
                "key": "R-00001:overdue_7:email",
                "invoice": "R-00001",
                "customer": "K1",
                "stage": "overdue_7",
                "channel": "email",
                "language": "es",
                "country": "ES",
                "timezone": "Europe/Madrid",
            },
            ledger=ledger,
            policy=default_policy(),
            lookup=source.get_invoice,
            pool=pool,
            identity=IDENTITY,
            now=datetime(2026, 12, 10, 10, tzinfo=UTC),
            attachments_root=source.attachments_root,
        )
        pool.close()
        (mail,) = sink.messages()  # the reminder still goes
    assert outcome.status == "sent"
    files = [a.get_content() for a in mail.iter_attachments()]
    assert files == ([attached] if attached else [])
    refused = ledger.frame(Event, kind="attachment_refused")
    if attached:
        assert refused.empty and outcome.reason == ""
    else:  # the reason is recorded, on the outcome and in the ledger
        assert pdf_path.format(api=api.url) in outcome.reason
        assert refused["action_key"].tolist() == ["R-00001:overdue_7:email"]


def test_without_a_folder_no_local_file_is_attached(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret")
    attached, why = find_attachment(str(secret), None)  # before: the file itself
    assert attached is None and "no attachments folder" in why
    inside = tmp_path / "docs" / "F-1.pdf"
    inside.parent.mkdir()
    inside.write_bytes(PDF)
    assert find_attachment("F-1.pdf", str(inside.parent)) == (inside, "")
    assert find_attachment("../secret.txt", str(inside.parent))[0] is None


def test_a_message_over_the_size_limit_is_not_downloaded_but_set_aside(
    tmp_path, imap_server, monkeypatch
):
    login = f"{tmp_path.name}@acme.example"
    imap_server.add_user(login, "imap-secret")
    monkeypatch.setattr(imap, "MAX_MESSAGE_BYTES", 5_000)  # 25 MB in production
    big = EmailMessage()
    big["From"], big["Subject"], big["Message-ID"] = "x@x.example", "big", "<big@x.example>"
    big.set_content("A" * 20_000)
    with MailBoxUnencrypted("127.0.0.1", imap_server.port).login(login, "imap-secret") as box:
        box.append(big.as_bytes(), "INBOX")
        box.append(good_reply(), "INBOX")
    settings = ImapSettings(
        host="127.0.0.1", port=imap_server.port, security="none", username=login,
        password="imap-secret",
    )  # fmt: skip
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    assert len(fetch_into(ledger, settings)) == 1  # the good reply
    (aside,) = ledger.inbound(state="quarantined")
    assert "too large" in aside.outcome and "Subject: big" in aside.text
    assert "AAAA" not in aside.text  # only the header was fetched
    assert len(ledger.frame(HumanTask)) == 1

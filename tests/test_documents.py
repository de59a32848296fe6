"""The document library: a customer's "¿me mandan el RUT?" answered with the file attached,
once, at the real SMTP sink, with the ledger on SQLite and PostgreSQL; everything the
library must refuse (paths out of the folder, links out, unlisted kinds, large files).

The acting tests use the real offline classifier (its `document_request` intent and
`document` field), except where a test says it gives the classification itself."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, DocumentLibrary, DunningPolicy, LedgerDatabase
from dunning.act import EmailIdentity
from dunning.bank_accounts import BankAccount
from dunning.documents import Library
from dunning.importers import read_invoice_file
from dunning.ledger import Action, HumanTask, InboundMessage, Ledger
from dunning.policy import default_policy
from dunning.replies.act import handle_reply
from dunning.schema import Invoice
from dunning.smtp import SmtpPool, SmtpSettings
from tests.invoices import write_invoices
from tests.mailboxes import arrive, mailbox_block, new_mailbox

RECEIVED = datetime(2026, 11, 10, 13, 30, tzinfo=UTC)
IDENTITY = EmailIdentity(from_address="cobranza@acme.example", from_name="Acme SpA")
CONTACT = "compras@cliente.cl"
TAX_PDF = b"%PDF-1.4 e-RUT Acme SpA 76.086.428-5"


@dataclass(frozen=True)
class Understood:
    """A classification given by the test (where the real classifier is not the point)."""

    intent: str
    confidence: float = 0.95
    lang: str = "es"
    promise_date: date | None = None
    angry: bool = False
    new_contact: str = ""
    document: str | None = None


def make_library(folder: Path, **fields) -> Library:
    return Library(path=str(folder), country="CL", **fields)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "documents"
    docs.mkdir()
    (docs / "tax_certificate.pdf").write_bytes(TAX_PDF)
    (docs / "tax_certificate.en.pdf").write_bytes(b"%PDF-1.4 tax certificate, English")
    (tmp_path / "secrets.env").write_text("DB_PASSWORD=hunter2")
    return docs


#: The tests that show the issue's cases run on both ledgers; the others on SQLite.
BOTH_LEDGERS = pytest.mark.parametrize("env", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def env(request, tmp_path: Path, folder: Path):
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(
                invoice_number="CL-100",
                customer_id="CL1",
                customer_name="Cliente Ltda.",
                email=CONTACT,
                country="CL",
                language="es",
                timezone="America/Santiago",
                currency="CLP",
                amount_total="450000",
                amount_due="450000",
                due_date="2026-11-02",
            ),
            dict(
                invoice_number="US-7",
                customer_id="US1",
                email="ap@buyer.example",
                country="US",
                language="en",
                timezone="America/New_York",
                currency="USD",
                due_date="2026-11-02",
            ),
        ],
    )
    invoices = read_invoice_file(csv).invoices
    url = (
        f"sqlite:///{tmp_path}/ledger.db"
        if getattr(request, "param", "sqlite") == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    ledger = Ledger(url)
    ledger.sync_invoices(invoices)
    by_number = {r["invoice_number"]: Invoice(**r) for r in invoices.to_dict("records")}
    policy = default_policy().model_copy(deep=True)
    policy.timezone = "America/Santiago"
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        yield dict(
            ledger=ledger,
            sink=sink,
            pool=pool,
            policy=policy,
            lookup=by_number.get,
            library=make_library(folder),
        )
        pool.close()


def store(env: dict, text: str, *, sender: str = CONTACT, subject: str = "Re: Factura CL-100"):
    """The message as the IMAP poll (or the IDLE listener) stores it: once per Message-ID."""
    n = len(env["ledger"].inbound())
    return env["ledger"].store_inbound(
        [
            InboundMessage(
                provider_id=f"<req{n}@cliente.cl>",
                sender=sender,
                subject=subject,
                text=text,
                received_at=RECEIVED,
            )
        ]
    )


def act(env: dict, message_id: int, *, understood: Understood | None = None, **changes) -> dict:
    kwargs = (
        dict(
            ledger=env["ledger"],
            policy=env["policy"],
            lookup=env["lookup"],
            pool=env["pool"],
            identity=IDENTITY,
            documents=env["library"],
        )
        | changes
    )
    if understood is not None:
        kwargs["classify"] = lambda *a, **k: understood
    return handle_reply(env["ledger"].inbound_message(message_id), **kwargs).to_dict()


def receive(env: dict, text: str, **fields) -> dict:
    understood = fields.pop("understood", None)
    changes = {k: fields.pop(k) for k in list(fields) if k in ("documents",)}
    (new_id,) = store(env, text, **fields)
    return act(env, new_id, understood=understood, **changes)


def mails_to(env: dict, address: str) -> list:
    return [m for m in env["sink"].messages() if address in m["To"]]


def attachments(message) -> dict[str, bytes]:
    return {a.get_filename(): a.get_content() for a in message.iter_attachments()}


# -- answered, once ----------------------------------------------------------------------------


@BOTH_LEDGERS
def test_a_chilean_customer_asking_for_the_rut_gets_the_tax_certificate_once(env):
    out = receive(env, "me mandan el RUT?")
    assert out["intent"] == "document_request" and out["state"] == "processed"
    (answer,) = mails_to(env, CONTACT)
    assert attachments(answer) == {"tax_certificate.pdf": TAX_PDF}
    assert answer["In-Reply-To"] == "<req0@cliente.cl>"  # in the customer's thread
    text = answer.get_body(("plain",)).get_content()
    assert "certificado de RUT (e-RUT)" in text and "CL-100" in text
    # The same message handled again (the poll and the listener both saw it, or a retried
    # task): the outbox key is the message's, so nothing more is sent.
    message_id = env["ledger"].inbound()[0].id
    again = act(env, message_id)
    assert "already answered" in "; ".join(again["done"])
    assert len(mails_to(env, CONTACT)) == 1
    sent = env["ledger"].frame(Action)
    assert sent["stage"].tolist() == ["answer_document"]


@BOTH_LEDGERS
def test_the_same_email_seen_by_the_poll_and_the_listener_is_stored_and_answered_once(env):
    copy = dict(
        provider_id="<same@cliente.cl>",
        sender=CONTACT,
        subject="RUT",
        text="me mandan el RUT?",
        received_at=RECEIVED,
    )
    first = env["ledger"].store_inbound([InboundMessage(**copy)])
    second = env["ledger"].store_inbound([InboundMessage(**copy)])
    assert len(first) == 1 and second == []
    act(env, first[0])
    act(env, first[0])
    assert len(mails_to(env, CONTACT)) == 1


def test_an_english_speaking_customer_gets_the_english_variant(env):
    out = receive(
        env,
        "Could you send us your tax certificate?",
        sender="ap@buyer.example",
        subject="Invoice US-7",
        understood=Understood("document_request", lang="en", document="tax_certificate"),
    )
    assert out["state"] == "processed"
    (answer,) = mails_to(env, "ap@buyer.example")
    assert list(attachments(answer)) == ["tax_certificate.en.pdf"]
    assert answer["Content-Language"] == "en"


def test_a_kind_of_the_companys_own_is_found_by_its_keywords(env, folder):
    (folder / "f30.pdf").write_bytes(b"%PDF-1.4 F30")
    env["library"] = make_library(
        folder,
        kinds=[
            {
                "name": "labour_compliance",
                "title": "nuestro certificado F30 de cumplimiento laboral",
                "keywords": ["F30", "cumplimiento laboral"],
                "file": "f30.pdf",
            }
        ],
    )
    # Given: the classifier knows it is a document request but not which document.
    receive(
        env,
        "Hola, necesitamos el certificado de Cumplimiento Laboral para pagar",
        understood=Understood("document_request", document=None),
    )
    (answer,) = mails_to(env, CONTACT)
    assert list(attachments(answer)) == ["f30.pdf"]
    assert "certificado F30 de cumplimiento laboral" in answer.get_body(("plain",)).get_content()


def test_bank_details_asked_with_the_certificate_attach_the_librarys(env, folder):
    (folder / "bank_certificate.pdf").write_bytes(b"%PDF-1.4 certificado Banco de Chile")
    env["policy"].replies.bank_accounts = [
        BankAccount(
            country="CL",
            beneficiary="Acme SpA",
            bank_name="Banco de Chile",
            account_type="Cuenta corriente",
            account_number="00-123-45678-09",
            holder_id="76.086.428-5",
        )
    ]
    receive(
        env,
        "¿Me pasan los datos de la cuenta y el certificado bancario?",
        understood=Understood("bank_details_request", document="bank_certificate"),
    )
    (answer,) = mails_to(env, CONTACT)
    assert list(attachments(answer)) == ["bank_certificate.pdf"]
    text = answer.get_body(("plain",)).get_content()
    assert "00-123-45678-09" in text and "76.086.428-5" in text and "Cuenta corriente" in text


# -- a person instead -------------------------------------------------------------------------


@BOTH_LEDGERS
def test_an_unknown_sender_gets_nothing_and_a_person_looks(env):
    out = receive(env, "me mandan el RUT? factura CL-100", sender="otro@gmail.com")
    assert out["state"] == "needs_human" and not env["sink"].messages()
    assert "not a known contact" in env["ledger"].frame(HumanTask).iloc[0].title


@BOTH_LEDGERS
def test_a_kind_the_library_lacks_becomes_a_task(env):
    out = receive(env, "Necesito el certificado bancario, por favor.")
    assert out["intent"] == "document_request"
    assert out["state"] == "needs_human" and not env["sink"].messages()
    (title,) = env["ledger"].frame(HumanTask)["title"].tolist()
    assert "bank certificate" in title and "no such file" in title


def test_a_document_nobody_listed_becomes_a_task(env):
    out = receive(
        env,
        "¿Me envían el certificado de cumplimiento laboral?",
        understood=Understood("document_request", document=None),
    )
    assert out["state"] == "needs_human" and not env["sink"].messages()
    assert "not a kind in the document library" in env["ledger"].frame(HumanTask).iloc[0].title


def test_without_a_library_the_request_becomes_a_task(env):
    out = receive(env, "me mandan el RUT?", documents=None)
    assert out["state"] == "needs_human" and not env["sink"].messages()
    assert "no document library" in env["ledger"].frame(HumanTask).iloc[0].title


def test_a_kind_named_by_the_classifier_that_is_no_kind_sends_nothing(env, folder):
    # Whatever reaches `document` (an LLM's answer, a future rule), only listed kinds are
    # sent, and the name never becomes a path.
    (folder / "passwd.pdf").write_bytes(b"%PDF nope")
    for named in ("../secrets.env", "/etc/passwd", "passwd", "tax_certificate/../../x"):
        receive(
            env, "mándenme el archivo", understood=Understood("document_request", document=named)
        )
    assert not env["sink"].messages()
    assert len(env["ledger"].frame(HumanTask)) == 4


# -- what the library refuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../secrets.env",
        "../x.pdf",
        "/etc/passwd",
        "sub/tax.pdf",
        ".hidden.pdf",
        "run.sh",
        "a\\b.pdf",
    ],
)
def test_file_names_outside_the_folder_or_of_other_types_are_refused_at_load(folder, name):
    with pytest.raises(ValidationError, match="files.tax_certificate"):
        make_library(folder, files={"tax_certificate": name})
    with pytest.raises(ValidationError):
        make_library(folder, kinds=[{"name": "x_doc", "file": name}])
    with pytest.raises(ValidationError):
        DocumentLibrary(path=str(folder), files={"tax_certificate": name})


def test_only_listed_kinds_and_valid_names(folder):
    with pytest.raises(ValidationError, match="not a document kind"):
        make_library(folder, files={"payroll": "payroll.pdf"})
    with pytest.raises(ValidationError, match="kind name"):
        make_library(folder, kinds=[{"name": "../up"}])
    library = make_library(folder)
    assert library.find("secrets", "es") == (
        None,
        "'secrets' is not a document kind of the library",
    )


def test_a_link_out_of_the_folder_is_refused_a_link_inside_is_followed(folder):
    outside = folder.parent / "secrets.env"
    (folder / "bank_certificate.pdf").symlink_to(outside)
    library = make_library(folder)
    path, why = library.find("bank_certificate", "es")
    assert path is None and "outside the library folder" in why
    (folder / "bank_certificate.pdf").unlink()
    (folder / "real.pdf").write_bytes(b"%PDF bank")
    (folder / "bank_certificate.pdf").symlink_to(folder / "real.pdf")
    assert library.find("bank_certificate", "es")[0] == folder / "bank_certificate.pdf"


def test_a_folder_linked_out_of_the_library_is_refused(folder, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "bank_certificate.pdf").write_bytes(b"%PDF other")
    (folder / "bank_certificate.pdf").symlink_to(elsewhere / "bank_certificate.pdf")
    assert make_library(folder).find("bank_certificate")[0] is None


def test_a_language_variant_never_escapes_the_folder(folder):
    library = make_library(folder)
    for language in ("../..", "es/../../x", "", "EN", "english"):
        assert library.find("tax_certificate", language)[0] == folder / "tax_certificate.pdf"
    assert library.find("tax_certificate", "en")[0] == folder / "tax_certificate.en.pdf"


def test_large_files_directories_and_missing_files_are_refused_with_the_reason(folder):
    (folder / "bank_certificate.pdf").write_bytes(b"x" * 2048)
    library = make_library(folder, max_bytes=1024)
    assert "over the limit" in library.find("bank_certificate")[1]
    (folder / "bank_certificate.pdf").unlink()
    (folder / "bank_certificate.pdf").mkdir()
    assert "not a regular file" in library.find("bank_certificate")[1]
    gone = make_library(folder.parent / "no-such-folder")
    assert "does not exist" in gone.find("tax_certificate")[1]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_not_read(folder):
    os.mkfifo(folder / "bank_certificate.pdf")
    assert "not a regular file" in make_library(folder).find("bank_certificate")[1]


def test_titles_follow_the_companys_country_and_the_answers_language(folder):
    assert (
        make_library(folder).title("tax_certificate", "es") == "nuestro certificado de RUT (e-RUT)"
    )
    mexico = Library(path=str(folder), country="MX")
    assert mexico.title("tax_certificate", "es") == "nuestra constancia de situación fiscal"
    assert Library(path=str(folder), country="US").title("tax_certificate", "en") == "our Form W-9"
    assert Library(path=str(folder), country="BR").title("tax_certificate", "pt") == (
        "o nosso cartão CNPJ"
    )
    assert mexico.title("tax_certificate", "en") == "our tax certificate"


def test_the_block_builds_the_library(folder):
    block = DocumentLibrary(path=str(folder), country="cl", max_megabytes=0.001)
    library = block.library()
    assert library.country == "CL" and library.max_bytes == 1048
    assert library.find("tax_certificate", "es")[0] == folder / "tax_certificate.pdf"


# -- end to end: the mailbox, the flow, the SMTP sink --------------------------------------------


def test_the_rut_request_in_the_mailbox_is_answered_once_by_the_flow(
    tmp_path, folder, imap_server, prefect_api
):
    """A real dovecot mailbox, `process-replies` on a real Prefect server with the library
    block, the real SMTP sink; the flow run twice (the poll after the listener) answers once."""
    from flows.replies import process_replies
    from tests.test_flows import channel_for

    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(
                invoice_number="CL-100",
                customer_id="CL1",
                email=CONTACT,
                country="CL",
                language="es",
                timezone="America/Santiago",
                currency="CLP",
                due_date="2026-11-02",
            )
        ],
    )
    Ledger(f"sqlite:///{tmp_path}/ledger.db").sync_invoices(read_invoice_file(csv).invoices)
    login = new_mailbox(imap_server, tmp_path)
    arrive(
        imap_server,
        login,
        sender=CONTACT,
        to="cobranza@acme.example",
        subject="Factura CL-100",
        text="Hola, me mandan el RUT? Gracias",
        received_at=RECEIVED,
        message_id="<rut-1@cliente.cl>",
    )
    policy = default_policy().model_copy(deep=True)
    policy.timezone = "America/Santiago"
    with MailSink(tmp_path / "outbox", port=0) as sink:
        run = dict(
            mailbox=mailbox_block(imap_server, login),
            source=CsvInvoiceSource(path=str(csv)),
            channel=channel_for(sink),
            ledger=LedgerDatabase(url=f"sqlite:///{tmp_path}/ledger.db"),
            policy=DunningPolicy(**policy.model_dump()),
            documents=DocumentLibrary(path=str(folder), country="CL"),
        )
        counts = process_replies(**run)
        assert counts["intents"] == {"document_request": 1}, counts
        process_replies(**run)
        (answer,) = [m for m in sink.messages() if CONTACT in m["To"]]
    assert attachments(answer) == {"tax_certificate.pdf": TAX_PDF}
    assert answer["In-Reply-To"] == "<rut-1@cliente.cl>"

"""Bank accounts for every market: each country's fields checked at load, a wrong account
left out with its reason (the rest of the policy loads), and the answer to "¿me pasás el
CBU?" showing the account in the invoice's currency, at the real SMTP sink, with the
ledger on SQLite and PostgreSQL. The replies are classified by the real offline classifier.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from apps.mailsink import MailSink
from dunning.act import EmailIdentity
from dunning.bank_accounts import BankAccount, accounts_for, clabe_check_digit, screen_accounts
from dunning.importers import read_invoice_file
from dunning.ledger import HumanTask, InboundMessage, Ledger
from dunning.policy import Policy, load_policy
from dunning.replies.act import handle_reply
from dunning.schema import Invoice
from dunning.smtp import SmtpPool, SmtpSettings
from tests.invoices import write_invoices
from tests.test_cli import run

IBAN = "ES91 2100 0418 4502 0005 1332"
CLABE = "002010077777777771"  # Banamex, plaza 010, account 07777777777, check digit 1
BAD_CLABE = "002010077777777772"
CBU = "2850590940090418135201"
RECEIVED = datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
IDENTITY = EmailIdentity(from_address="cobranzas@acme.example", from_name="Acme")

ACCOUNTS = [
    {"name": "Euros", "beneficiary": "Acme S.L.", "iban": IBAN.replace(" ", "")},
    {
        "name": "Pesos MX (typo)",
        "country": "MX",
        "beneficiary": "Acme SA de CV",
        "clabe": BAD_CLABE,
    },
    {"name": "Pesos MX", "country": "MX", "beneficiary": "Acme SA de CV", "clabe": CLABE},
    {
        "name": "Pesos AR",
        "country": "AR",
        "beneficiary": "Acme Argentina SA",
        "cbu": CBU,
        "alias": "ACME.COBROS",
        "holder_id": "20-26756539-3",
    },
]


# -- each country's fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"iban": "ES9121000418450200051332"}, {"iban": IBAN, "bic": "CAIXESBB"}),
        ({"country": "MX", "clabe": "002 010 07777777777 1"}, {"clabe": CLABE}),
        (
            {"country": "AR", "cvu": "0000003110000000000014", "alias": "mi.billetera"},
            {"cvu": "0000003110000000000014", "alias": "mi.billetera"},
        ),
        (
            {
                "country": "CL",
                "bank_name": "Banco de Chile",
                "account_type": "Cuenta corriente",
                "account_number": "00-123-45678-09",
                "holder_id": "760864285",
            },
            {"rut": "76.086.428-5", "account_number": "00-123-45678-09"},
        ),
        ({"country": "BR", "pix_key": "390.533.447-05"}, {"pix_key": "390.533.447-05"}),
        ({"country": "BR", "pix_key": "+55 (11) 98765-4321"}, {"pix_key": "+5511987654321"}),
        (
            {"country": "BR", "pix_key": "Financeiro@Acme.com.br"},
            {"pix_key": "financeiro@acme.com.br"},
        ),
        (
            {"country": "BR", "pix_key": "123e4567-e89b-12d3-a456-426614174000"},
            {"pix_key": "123e4567-e89b-12d3-a456-426614174000"},
        ),
        (
            {"country": "BR", "bank_code": "341", "branch": "0001", "account_number": "12345-6"},
            {"branch": "0001", "account_number": "12345-6"},
        ),
        (
            {"country": "US", "routing_number": "111000025", "account_number": "000123456789"},
            {"routing_number": "111000025", "account_number": "000123456789"},
        ),
        (
            {
                "country": "CO",
                "bank_name": "Bancolombia",
                "account_type": "Ahorros",
                "account_number": "123-456789-01",
                "holder_id": "213.123.432-1",
            },
            {"nit": "213.123.432-1", "account_number": "123-456789-01"},
        ),
        (
            {"country": "PE", "cci": "002-193-001234567890-12", "holder_id": "20512333797"},
            {"cci": "002-193-001234567890-12", "ruc": "20512333797"},
        ),
    ],
)
def test_each_countrys_account_loads_with_its_fields(fields, shown):
    account = BankAccount(beneficiary="Acme", **fields)
    lines = dict(account.lines())
    assert lines["beneficiary"] == "Acme"
    for field, value in shown.items():
        assert lines[field] == value, (field, lines)


@pytest.mark.parametrize(
    ("fields", "field", "why"),
    [
        ({"iban": "ES9121000418450200051333"}, "iban", "not valid"),
        ({"country": "MX", "clabe": BAD_CLABE}, "clabe", "check digit"),
        ({"country": "MX", "clabe": "0020100777"}, "clabe", "18 digits"),
        ({"country": "MX"}, "clabe", "required"),
        ({"country": "AR", "cbu": "2850590940090418135202"}, "cbu", "CBU/CVU"),
        ({"country": "AR", "cbu": CBU, "alias": "a b"}, "alias", "6 to 20"),
        (
            {
                "country": "CL",
                "bank_name": "BCI",
                "account_type": "Cuenta vista",
                "account_number": "123456",
                "holder_id": "76.086.428-4",
            },
            "holder_id",
            "RUT",
        ),
        (
            {"country": "CL", "bank_name": "BCI", "account_number": "123456"},
            "account_type",
            "required",
        ),
        ({"country": "BR", "pix_key": "111.111.111-12"}, "pix_key", "CPF"),
        ({"country": "BR", "pix_key": "acme"}, "pix_key", "not a PIX key"),
        ({"country": "BR", "branch": "1"}, "account_number", "required"),
        (
            {"country": "US", "routing_number": "111000026", "account_number": "1234"},
            "routing_number",
            "ABA",
        ),
        (
            {"country": "CO", "bank_name": "B", "account_type": "Ahorros", "account_number": "12"},
            "account_number",
            "digits",
        ),
        ({"country": "PE", "cci": "1234"}, "cci", "20 digits"),
        (
            {
                "country": "US",
                "routing_number": "111000025",
                "account_number": "1234",
                "clabe": CLABE,
            },
            "clabe",
            "only MX",
        ),
        ({"country": "XX", "account_number": "1"}, "currency", "which currency"),
        ({"country": "MX", "clabe": CLABE, "swift": "X"}, "swift", "Extra inputs"),
    ],
)
def test_a_wrong_account_is_refused_naming_the_field(fields, field, why):
    with pytest.raises(ValidationError) as caught:
        BankAccount(beneficiary="Acme", **fields)
    assert field in str(caught.value) and why in str(caught.value)


def test_the_clabe_check_digit():
    assert clabe_check_digit(CLABE[:17]) == 1
    assert clabe_check_digit("03218000011835971") == 9  # BBVA example from Banxico's rules


def test_the_account_in_the_invoices_currency_the_customers_country_first():
    usd_pe = BankAccount(country="PE", currency="USD", beneficiary="A", cci="0" * 19 + "1")
    usd_us = BankAccount(
        country="US", beneficiary="A", routing_number="111000025", account_number="1234"
    )
    mxn = BankAccount(country="MX", beneficiary="A", clabe=CLABE)
    assert accounts_for([usd_us, usd_pe, mxn], "USD", "PE") == [usd_pe]
    assert accounts_for([usd_us, usd_pe, mxn], "usd", "ES") == [usd_us, usd_pe]
    assert accounts_for([usd_us, usd_pe, mxn], "CLP", "CL") == []


# -- one wrong account, the policy still loads -----------------------------------------------


def write_policy(tmp_path: Path, replies: dict) -> Path:
    path = tmp_path / "policy.yaml"
    data = {"stages": [{"name": "due", "offset_days": 0}], "replies": replies}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_a_policy_with_one_invalid_clabe_loads_the_others_and_says_which(tmp_path):
    policy = load_policy(write_policy(tmp_path, {"bank_accounts": ACCOUNTS}))
    names = [a.name for a in policy.replies.accounts()]
    assert names == ["Euros", "Pesos MX", "Pesos AR"]
    (refused,) = policy.replies.refused_accounts
    assert refused.startswith("replies.bank_accounts[1] ('Pesos MX (typo)')")
    assert "clabe" in refused and "check digit" in refused
    # Saved and read back (the block does that): the same accounts, the same values.
    again = Policy.model_validate(policy.model_dump())
    assert again.replies.accounts() == policy.replies.accounts()


def test_the_older_bank_details_still_load_as_one_iban_account(tmp_path):
    path = write_policy(
        tmp_path,
        {"bank_details": {"beneficiary": "Acme S.L.", "iban": IBAN, "bank_name": "CaixaBank"}},
    )
    (account,) = load_policy(path).replies.accounts()
    assert (account.country, account.currency, account.iban) == ("ES", "EUR", IBAN)
    broken = write_policy(tmp_path, {"bank_details": {"beneficiary": "Acme", "iban": "CL12345"}})
    policy = load_policy(broken)  # a Chilean number in the IBAN field no longer stops everything
    assert policy.replies.accounts() == []
    assert "replies.bank_details refused" in policy.replies.refused_accounts[0]


def test_dunning_policy_check_lists_the_refused_account_as_a_warning(tmp_path):
    proc = run(
        "policy", "check", "--policy", str(write_policy(tmp_path, {"bank_accounts": ACCOUNTS}))
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning: replies.bank_accounts[1] ('Pesos MX (typo)')" in proc.stderr
    assert "clabe" in proc.stderr
    assert "MX MXN  Pesos MX" in proc.stdout and "AR ARS  Pesos AR" in proc.stdout


def test_the_screen_names_unknown_keys_and_keeps_the_order():
    accepted, refused = screen_accounts(
        [ACCOUNTS[2], {"beneficiary": "X", "country": "MX", "clab": CLABE}]
    )
    assert [a.name for a in accepted] == ["Pesos MX"]
    assert "replies.bank_accounts[1]" in refused[0] and "clab: unknown key" in refused[0]


# -- the answer -------------------------------------------------------------------------------


CUSTOMERS = {
    "AR-1": dict(
        customer_id="AR1",
        email="pagos@cliente.com.ar",
        country="AR",
        currency="ARS",
        timezone="America/Argentina/Buenos_Aires",
    ),
    "MX-1": dict(
        customer_id="MX1",
        email="cxp@cliente.mx",
        country="MX",
        currency="MXN",
        timezone="America/Mexico_City",
    ),
    "CL-1": dict(
        customer_id="CL1",
        email="pagos@cliente.cl",
        country="CL",
        currency="CLP",
        timezone="America/Santiago",
    ),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request, tmp_path: Path):
    rows = [
        dict(
            invoice_number=n,
            language="es",
            due_date="2026-11-02",
            amount_due="1000",
            amount_total="1000",
            **c,
        )
        for n, c in CUSTOMERS.items()
    ]
    invoices = read_invoice_file(write_invoices(tmp_path / "inv.csv", rows)).invoices
    url = (
        f"sqlite:///{tmp_path}/l.db"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    ledger = Ledger(url)
    ledger.sync_invoices(invoices)
    by_number = {r["invoice_number"]: Invoice(**r) for r in invoices.to_dict("records")}
    policy = load_policy(write_policy(tmp_path, {"bank_accounts": ACCOUNTS}))
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        yield dict(ledger=ledger, sink=sink, pool=pool, policy=policy, lookup=by_number.get)
        pool.close()


def ask(env: dict, sender: str, text: str) -> dict:
    ledger: Ledger = env["ledger"]
    (new_id,) = ledger.store_inbound(
        [
            InboundMessage(
                provider_id=f"<{sender}-{len(ledger.inbound())}>",
                sender=sender,
                text=text,
                received_at=RECEIVED,
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
    )
    return outcome.to_dict()


def body_to(env: dict, address: str) -> str:
    (message,) = [m for m in env["sink"].messages() if address in m["To"]]
    return message.get_body(("plain",)).get_content() + message.get_body(("html",)).get_content()


def test_an_argentine_customer_asking_for_the_cbu_gets_the_ars_account(env):
    out = ask(env, "pagos@cliente.com.ar", "me pasás el CBU?")
    assert out["intent"] == "bank_details_request" and out["state"] == "processed"
    body = body_to(env, "pagos@cliente.com.ar")
    assert CBU in body and "acme.cobros" in body and "20-26756539-3" in body
    assert IBAN not in body and CLABE not in body  # only the account in pesos argentinos
    assert "AR-1" in body


def test_a_mexican_customer_asking_for_the_clabe_gets_the_valid_mxn_account(env):
    out = ask(env, "cxp@cliente.mx", "cuál es la CLABE?")
    assert out["intent"] == "bank_details_request"
    body = body_to(env, "cxp@cliente.mx")
    assert CLABE in body and BAD_CLABE not in body  # the typo was left out at load
    assert CBU not in body and IBAN not in body


def test_no_account_in_the_invoices_currency_goes_to_a_person(env):
    out = ask(env, "pagos@cliente.cl", "me pasan los datos para la transferencia?")
    assert out["intent"] == "bank_details_request" and out["state"] == "needs_human"
    assert not env["sink"].messages()
    assert "no account in the policy takes CLP" in env["ledger"].frame(HumanTask).iloc[0].title

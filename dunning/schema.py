"""The normalized invoice schema every invoice source produces, and its vocabulary.

One row per invoice, one column per field below. Sources map their own columns onto these
names; the planner, the ledger and the reports only ever see these, and the risk readers map
their sources onto them too (the risk frame renames three: `dunning.risk.sources`). The one
validator of invoice frames (`dunning.importers.validate_invoices`) applies the rules
written here: the statuses and their aliases, the currencies, the row numbering.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

import pandas as pd
from babel.numbers import list_currencies
from pydantic import BaseModel, field_validator

#: Columns of the normalized invoice frame, in the order of the default CSV layout.
INVOICE_COLUMNS: tuple[str, ...] = (
    "invoice_number",
    "customer_id",
    "customer_name",
    "email",
    "phone",
    "country",
    "language",
    "timezone",
    "currency",
    "amount_total",
    "amount_due",
    "issue_date",
    "due_date",
    "status",
    "payment_link",
    "pdf_path",
)

#: Columns a source may have besides those: read when present, empty (unknown) otherwise.
#: `preferred_channel` is email, whatsapp, sms or voice; `whatsapp_opt_in` the customer's recorded
#: consent to WhatsApp messages ("true"/"false" once normalized, "" when unknown).
#: `owner_email` is the account owner (the salesperson or collector who answers for the
#: customer) and `manager_email` their manager: the people an escalation's `assignee` and
#: `notify` resolve to (`dunning.people`); empty means the policy's `owners` defaults.
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "preferred_channel",
    "whatsapp_opt_in",
    "owner_email",
    "manager_email",
)
#: The people columns of OPTIONAL_COLUMNS (validated as one email address each).
PEOPLE_COLUMNS: tuple[str, ...] = ("owner_email", "manager_email")
REQUIRED_COLUMNS: tuple[str, ...] = ("invoice_number", "due_date")
CHANNELS: tuple[str, ...] = ("email", "whatsapp", "sms", "voice")
#: Source spellings of a yes/no opt-in (lower case), mapped to "true"/"false".
OPT_IN_VALUES: dict[str, str] = {
    **dict.fromkeys(("true", "yes", "y", "1", "si", "sí", "s", "x"), "true"),
    **dict.fromkeys(("false", "no", "n", "0"), "false"),
}


def _words(text: str) -> tuple[str, ...]:
    """ "a, b c" -> ("a", "b c"): the word lists below, one line per language."""
    return tuple(w.strip() for w in text.split(","))


STATUSES: tuple[str, ...] = ("open", "paid", "cancelled", "disputed")
#: Words sources write for a status (English, Spanish, Portuguese), each mapped to one of
#: STATUSES. Keys are in `status_word_key` form (lower case, no accents, one space between
#: words), so "Pendiente", "PENDIENTE" and "pendiente " are the same word. A partly paid
#: invoice is open: its `amount_due` says what is still owed. "pending" is not here on
#: purpose: pending what (payment, approval, issue)? A company's own words go in its
#: source's `status_mapping`.
STATUS_ALIASES: dict[str, str] = {
    **{status: status for status in STATUSES},
    **dict.fromkeys(
        (
            *_words("unpaid, overdue, past due, due, outstanding, partial, part paid"),
            *_words("partially paid"),
            *_words("pendiente, pendiente de pago, pendiente de cobro, vencida, vencido"),
            *_words("parcial, parcialmente pagada, pagada parcialmente, impagada, impagado"),
            *_words("abierta, abierto, no pagada, por cobrar"),
            *_words("em aberto, aberta, aberto, pendente, atrasada, em atraso"),
            *_words("parcialmente paga, a receber"),
        ),
        "open",
    ),
    **dict.fromkeys(
        (
            *_words("settled"),
            *_words("pagada, pagado, cobrada, cobrado, liquidada, saldada"),
            *_words("paga, pago, quitada, recebida"),
        ),
        "paid",
    ),
    **dict.fromkeys(
        (
            *_words("canceled, void, voided"),
            *_words("anulada, anulado, cancelada, cancelado"),
            *_words("estornada"),
        ),
        "cancelled",
    ),
    **dict.fromkeys(
        (
            *_words("in dispute"),
            *_words("en disputa, disputada, reclamada, impugnada, en litigio"),
            *_words("em disputa, contestada, em litigio"),
        ),
        "disputed",
    ),
}
#: Headers people give the account owner's and the manager's column (`header_key` form).
#: Unlike HEADER_SYNONYMS these are READ, not only suggested, because a people column is
#: optional: without it the file still imports and the tasks silently go to the policy's
#: default owner. A header is taken only when exactly one header of the file matches and the
#: field is neither mapped nor present under its own name (`dunning.importers.match_columns`).
PEOPLE_HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "owner_email": _words(
        "owner email, owner, account owner, account owner email, salesperson, sales person, "
        "salesperson email, sales rep, vendedor, vendedora, email vendedor, correo vendedor, "
        "comercial, email comercial, correo comercial, ejecutivo, ejecutiva, "
        "ejecutivo de cuenta, responsable, gestor, gestora, vendedor responsavel"
    ),
    "manager_email": _words(
        "manager email, manager, sales manager, jefe, jefa, jefe de ventas, jefe comercial, "
        "supervisor, supervisora, gerente, gerente comercial, director comercial, "
        "email jefe, correo jefe"
    ),
}
#: Well-known headers for our columns in Spanish, Portuguese and English (`header_key`
#: form). Only used to suggest a column ("did you mean 'Vencimiento'?") when a field is not
#: found: a file's columns are mapped by the user, never guessed.
HEADER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "invoice_number": _words(
        "factura, no factura, n factura, num factura, numero factura, numero de factura, "
        "nro factura, fatura, numero da fatura, nota fiscal, invoice, invoice no, "
        "invoice number"
    ),
    "customer_id": _words(
        "cliente, codigo cliente, cod cliente, id cliente, nif, cif, codigo do cliente, cnpj, "
        "customer, customer id"
    ),
    "customer_name": _words(
        "cliente, nombre, nombre cliente, razon social, nome, nome do cliente, razao social, "
        "customer name, name"
    ),
    "email": _words("correo, correo electronico, e mail, mail, email"),
    "phone": _words("telefono, movil, celular, telefone, phone, mobile"),
    "country": _words("pais, country"),
    "language": _words("idioma, lengua, lingua, language"),
    "timezone": _words("zona horaria, fuso horario, time zone"),
    "currency": _words("moneda, divisa, moeda, currency"),
    "amount_total": _words(
        "importe, importe total, total, monto, monto total, valor, valor total, amount, "
        "total amount"
    ),
    "amount_due": _words(
        "importe pendiente, pendiente, saldo, saldo pendiente, monto pendiente, por cobrar, "
        "valor em aberto, valor pendente, em aberto, a receber, amount due, balance, "
        "outstanding"
    ),
    "issue_date": _words(
        "fecha, fecha factura, fecha emision, fecha de emision, emision, data, data emissao, "
        "data de emissao, emissao, invoice date, issue date, date"
    ),
    "due_date": _words(
        "vencimiento, fecha vencimiento, fecha de vencimiento, vence, vto, vencimento, "
        "data de vencimento, data vencimento, due, due date"
    ),
    "status": _words("estado, situacion, situacao, status, state"),
    "payment_link": _words("enlace de pago, link de pago, link de pagamento, payment link"),
    "pdf_path": _words("pdf, archivo, fichero, arquivo"),
    "preferred_channel": _words("canal, canal preferido, channel"),
    "whatsapp_opt_in": _words("whatsapp, acepta whatsapp, consentimiento whatsapp, opt in"),
    **PEOPLE_HEADER_ALIASES,
}

#: The day an invoice was paid or cancelled, when the source knows it (the reports use it;
#: the sweep learns it from the ledger instead). Empty while the invoice is open.
CLOSED_DATE = "closed_date"
#: Other names of our columns that sources use: source name -> our name.
COLUMN_SYNONYMS: dict[str, str] = {"paid_date": CLOSED_DATE}
#: The public IBM Watson "Accounts Receivable" sample's columns in our vocabulary (the reports
#: and the risk model both read it). Its dates are `IBM_DATE_FORMAT`; it names no currency.
IBM_SAMPLE_COLUMNS: dict[str, str] = {
    "invoiceNumber": "invoice_number",
    "customerID": "customer_id",
    "InvoiceDate": "issue_date",
    "DueDate": "due_date",
    "SettledDate": CLOSED_DATE,
    "InvoiceAmount": "amount_total",
    "Disputed": "disputed",
    "PaperlessBill": "channel",
    "countryCode": "country",
}
IBM_DATE_FORMAT = "%m/%d/%Y"
#: ISO 4217 currency codes (Babel's list), and the currency of a row that names none.
CURRENCIES: frozenset[str] = frozenset(list_currencies())
DEFAULT_CURRENCY = "EUR"
#: Columns of the quarantine frame: one row per problem found in the source.
QUARANTINE_COLUMNS: tuple[str, ...] = ("row", "line", "invoice_number", "field", "value", "reason")


def status_word_key(word: str) -> str:
    """A status word as `STATUS_ALIASES` keys it: lower case, accents dropped, runs of
    spaces, "_" and "-" as one space ("Em_Aberto" and "em aberto" are one word)."""
    return " ".join(re.split(r"[\s_\-]+", _without_accents(word).casefold())).strip()


def header_key(header: str) -> str:
    """A column header as `HEADER_SYNONYMS` writes it: lower case, accents dropped, anything
    but letters and digits as one space ("Nº factura" and "N° Factura" -> "n factura" or
    "no factura", close enough for a suggestion)."""
    return " ".join(re.split(r"[\W_]+", _without_accents(header).casefold())).strip()


def _without_accents(text: str) -> str:
    # NFKD splits "á" into "a" and a combining accent; only the accents are dropped, so a
    # word in another script keeps its letters.
    return re.sub("[\u0300-\u036f]", "", unicodedata.normalize("NFKD", text))


def row_numbers(positions: int) -> range:
    """The `row` of each data row of a source: counted from 1, in the source's order."""
    return range(1, positions + 1)


def file_line(row: int | pd.Series) -> int | pd.Series:
    """The line of a file that holds data row `row` (from `row_numbers`): the header is line
    1, so the first row is on line 2."""
    return row + 1


class Invoice(BaseModel):
    """One invoice in the normalized schema (a row of the invoice frame)."""

    invoice_number: str
    customer_id: str = ""
    customer_name: str = ""
    email: str = ""
    phone: str = ""
    country: str = ""
    language: str = ""
    timezone: str = ""
    currency: str = "EUR"
    amount_total: float = 0.0
    amount_due: float = 0.0
    issue_date: date | None = None
    due_date: date
    status: str = "open"
    payment_link: str = ""
    pdf_path: str = ""
    preferred_channel: str = ""
    whatsapp_opt_in: bool | None = None
    owner_email: str = ""
    manager_email: str = ""

    @field_validator("whatsapp_opt_in", mode="before")
    @classmethod
    def _opt_in(cls, value: object) -> object:
        """The frame's "true"/"false"/"" (and a source's yes/no/sí) as True/False/None."""
        if isinstance(value, str):
            return {"true": True, "false": False}.get(OPT_IN_VALUES.get(value.strip().lower()))
        if isinstance(value, float) and value != value:  # NaN: unknown
            return None
        return value

    @property
    def is_payable(self) -> bool:
        """True while the customer still owes money on it."""
        return self.status in ("open", "disputed") and self.amount_due > 0

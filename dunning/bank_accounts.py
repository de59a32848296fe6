"""Where customers pay: one bank account per market, written the way that country's banks do.

A company selling in Spain, Mexico, Argentina, Chile, Brazil, the US, Colombia and Peru has
one account (or several) per currency. Each `BankAccount` carries the fields its country
uses, and each number with a checksum is checked when the policy is loaded, so a typo is
caught before a customer pays into it:

| country | fields | checked |
|---|---|---|
| any IBAN country (ES, PT, ...) | `iban`, `bic` | IBAN and BIC (schwifty) |
| MX | `clabe` | 18 digits and the CLABE check digit |
| AR | `cbu` or `cvu`, `alias`, `holder_id` (CUIT) | CBU/CVU check digits, CUIT (python-stdnum) |
| CL | `bank_name`, `account_type`, `account_number`, `holder_id` (RUT) | RUT (python-stdnum) |
| BR | `pix_key`, or `bank_code`/`branch`/`account_number` | CPF/CNPJ key (stdnum), others by form |
| US | `routing_number`, `account_number` | ABA routing checksum (python-stdnum) |
| CO | `bank_name`, `account_type`, `account_number`, `holder_id` (NIT) | NIT (stdnum) |
| PE | `account_number` and/or `cci`, `holder_id` (RUC) | RUC (stdnum), CCI by form (20 digits) |

A wrong account is refused with every problem named by field (`clabe: ... check digit`);
`dunning.policy.Replies` leaves it out and loads the others (see `screen_accounts`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: The currency an account takes when it names none: its country's own.
COUNTRY_CURRENCY = {
    "AR": "ARS",
    "BR": "BRL",
    "CL": "CLP",
    "CO": "COP",
    "MX": "MXN",
    "PE": "PEN",
    "US": "USD",
    # The euro area's IBAN countries.
    **dict.fromkeys("AT BE CY DE EE ES FI FR GR HR IE IT LT LU LV MT NL PT SI SK".split(), "EUR"),
}

#: Fields only one country's banks use: given for another country, they are a mistake.
COUNTRY_FIELDS = {
    "clabe": "MX",
    "cbu": "AR",
    "cvu": "AR",
    "alias": "AR",
    "pix_key": "BR",
    "routing_number": "US",
    "cci": "PE",
}

#: What the account holder's tax number is called in each country (also its label in the
#: answer); checked with python-stdnum.
HOLDER_ID_NAMES = {
    "AR": "cuit",
    "CL": "rut",
    "CO": "nit",
    "PE": "ruc",
    "MX": "rfc",
}

#: The order the fields are shown in the answer to a customer.
DISPLAY_ORDER = (
    "beneficiary",
    "holder_id",
    "bank_name",
    "bank_code",
    "branch",
    "account_type",
    "account_number",
    "iban",
    "bic",
    "clabe",
    "cbu",
    "cvu",
    "alias",
    "routing_number",
    "cci",
    "pix_key",
)

_ALIAS = re.compile(r"^[A-Za-z0-9.\-]{6,20}$")  # BCRA: 6 to 20 letters, digits, '.' or '-'
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_BR_PHONE = re.compile(r"^\+55\d{10,11}$")
_CLABE_WEIGHTS = (3, 7, 1) * 6


def digits(value: str) -> str:
    """The number without the spaces, dots and hyphens people write it with."""
    return re.sub(r"[\s.\-/]", "", value)


def clabe_check_digit(first17: str) -> int:
    """The 18th digit of a CLABE (Banco de México): weights 3, 7, 1 over the first 17
    digits, each product taken modulo 10."""
    total = sum(int(d) * w % 10 for d, w in zip(first17, _CLABE_WEIGHTS, strict=False))
    return (10 - total % 10) % 10


def _check_clabe(value: str) -> str:
    number = digits(value)
    if not re.fullmatch(r"\d{18}", number):
        raise ValueError(f"a CLABE has 18 digits, {value!r} has {len(number)} characters")
    if clabe_check_digit(number[:17]) != int(number[17]):
        raise ValueError(f"{value!r} fails the CLABE check digit; copy it from the bank")
    return number


def _stdnum(module: Any, what: str) -> Callable[[str], str]:
    """A check with a python-stdnum module: the number formatted, or a ValueError."""

    def check(value: str) -> str:
        from stdnum.exceptions import ValidationError as StdnumError

        try:
            return getattr(module, "format", module.compact)(module.validate(value))
        except StdnumError as exc:
            raise ValueError(f"{value!r} is not a valid {what} ({exc})") from None

    return check


def _holder_check(country: str) -> Callable[[str], str] | None:
    from stdnum.ar import cuit
    from stdnum.cl import rut
    from stdnum.co import nit
    from stdnum.mx import rfc
    from stdnum.pe import ruc

    checks = {
        "AR": _stdnum(cuit, "CUIT"),
        "CL": _stdnum(rut, "RUT"),
        "CO": _stdnum(nit, "NIT"),
        "MX": lambda v: rfc.compact(rfc.validate(v)),
        "PE": _stdnum(ruc, "RUC"),
        "BR": _cpf_or_cnpj,
    }
    return checks.get(country)


def _cpf_or_cnpj(value: str) -> str:
    from stdnum.br import cnpj, cpf

    number = digits(value)
    module, what = (cpf, "CPF") if len(number) == 11 else (cnpj, "CNPJ")
    return _stdnum(module, what)(number)


def _check_pix_key(value: str) -> str:
    """A PIX key is a CPF, a CNPJ, an email, a phone (+55...) or a random key (UUID)."""
    key = value.strip()
    if _EMAIL.match(key):
        return key.lower()
    if key.startswith("+"):
        phone = digits(key).replace("(", "").replace(")", "")
        if not _BR_PHONE.match(phone):
            raise ValueError(f"{value!r} is not a Brazilian phone key (+55 and 10-11 digits)")
        return phone
    try:
        return str(uuid.UUID(key))
    except ValueError:
        pass
    if re.fullmatch(r"[\d.\-/ ]+", key):
        return _cpf_or_cnpj(key)
    raise ValueError(
        f"{value!r} is not a PIX key: give a CPF, a CNPJ, an email, a phone (+55...) "
        "or a random key"
    )


def _check_routing(value: str) -> str:
    from stdnum.us import rtn

    return _stdnum(rtn, "ABA routing number")(value)


def _check_cbu(value: str) -> str:
    from stdnum.ar import cbu

    return digits(_stdnum(cbu, "CBU/CVU")(value))


def _check_digits(low: int, high: int, what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        number = digits(value)
        if not re.fullmatch(rf"\d{{{low},{high}}}", number):
            size = f"{low}" if low == high else f"{low} to {high}"
            raise ValueError(f"{what} has {size} digits; {value!r} does not")
        return value.strip()  # shown as the bank writes it (00-123-45678-09)

    return check


class BankAccount(BaseModel):
    """One account customers pay into, with the fields its country's banks use.

    Example (YAML, under `replies.bank_accounts`):

        - {name: Pesos, country: MX, beneficiary: Acme SA de CV, clabe: "002010077777777771"}
        - {country: AR, beneficiary: Acme SA, cbu: "2850590940090418135201", alias: acme.cobros}
        - {country: CL, beneficiary: Acme SpA, bank_name: Banco de Chile,
           account_type: Cuenta corriente, account_number: "00-123-45678-09",
           holder_id: 76.086.428-5}
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", description="A label for the account (shown in warnings).")
    country: str = Field(
        "", description="ISO country of the account (e.g. MX); from the IBAN when empty."
    )
    currency: str = Field(
        "", description="ISO currency it takes (e.g. MXN); the country's own when empty."
    )
    beneficiary: str = Field(description="Account holder, as the bank knows it.")
    bank_name: str = ""
    holder_id: str = Field(
        "",
        description="The holder's tax number: RUT (CL), CUIT (AR), NIT (CO), RUC (PE), "
        "CPF/CNPJ (BR), RFC (MX).",
    )
    iban: str = Field("", description="IBAN, with or without spaces.")
    bic: str = Field("", description="BIC/SWIFT; derived from the IBAN when left empty.")
    clabe: str = Field("", description="Mexico: the 18-digit CLABE.")
    cbu: str = Field("", description="Argentina: the 22-digit CBU.")
    cvu: str = Field("", description="Argentina: the 22-digit CVU of a virtual wallet.")
    alias: str = Field("", description="Argentina: the CBU/CVU alias (e.g. acme.cobros).")
    account_type: str = Field(
        "", description="e.g. Cuenta corriente, Cuenta vista, Ahorros, Checking."
    )
    account_number: str = ""
    bank_code: str = Field("", description="Brazil: the bank's COMPE code (e.g. 341).")
    branch: str = Field("", description="Brazil: agência.")
    pix_key: str = Field(
        "", description="Brazil: a PIX key (CPF, CNPJ, email, +55 phone or random key)."
    )
    routing_number: str = Field("", description="US: the 9-digit ABA routing number.")
    cci: str = Field("", description="Peru: the 20-digit Código de Cuenta Interbancario.")
    certificate_path: str = Field(
        "", description="PDF of the bank's account certificate, attached to the answer."
    )

    @model_validator(mode="after")
    def _valid(self) -> BankAccount:
        problems: list[str] = []

        def check(field: str, fn: Callable[[str], str]) -> None:
            value = getattr(self, field)
            if not value:
                return
            try:
                setattr(self, field, fn(value))
            except ValueError as exc:
                problems.append(f"{field}: {exc}")

        def require(*fields: str, why: str) -> None:
            if not any(getattr(self, f) for f in fields):
                problems.append(f"{' or '.join(fields)}: required {why}")

        if self.iban:
            check("iban", _check_iban)
            if not self.country and not problems:
                self.country = self.iban[:2]
            if not problems:
                try:
                    self.bic = _check_bic(self.bic, self.iban)
                except ValueError as exc:
                    problems.append(f"bic: {exc}")
        self.country = self.country.strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", self.country):
            problems.append("country: give the account's ISO country code (e.g. MX, AR, CL)")
            raise ValueError("; ".join(problems))
        for field, country in COUNTRY_FIELDS.items():
            if getattr(self, field) and self.country != country:
                problems.append(
                    f"{field}: only {country} accounts have one, this is {self.country}"
                )
        self.currency = (self.currency or COUNTRY_CURRENCY.get(self.country, "")).upper()
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            problems.append("currency: say which currency the account takes (e.g. USD)")
        holder = _holder_check(self.country)
        if holder is not None:
            check("holder_id", holder)
        if not self.iban:
            self._country_fields(check, require)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _country_fields(self, check: Any, require: Any) -> None:
        """The fields a country without IBAN needs, each checked."""
        if self.country == "MX":
            require("clabe", why="for a Mexican account")
            check("clabe", _check_clabe)
        elif self.country == "AR":
            require("cbu", "cvu", why="for an Argentine account")
            check("cbu", _check_cbu)
            check("cvu", _check_cbu)
            check("alias", _check_alias)
        elif self.country == "CL":
            require("bank_name", why="for a Chilean account")
            require("account_type", why="for a Chilean account (e.g. Cuenta corriente)")
            require("account_number", why="for a Chilean account")
            require("holder_id", why="for a Chilean account (the holder's RUT)")
            check("account_number", _check_digits(4, 20, "a Chilean account number"))
        elif self.country == "BR":
            if not self.pix_key:
                require("bank_code", "bank_name", why="for a Brazilian account without pix_key")
                require("branch", why="for a Brazilian account without pix_key")
                require("account_number", why="for a Brazilian account without pix_key")
            check("pix_key", _check_pix_key)
            check("branch", _check_digits(3, 5, "a branch (agência)"))
        elif self.country == "US":
            require("routing_number", why="for a US account (ACH)")
            require("account_number", why="for a US account")
            check("routing_number", _check_routing)
            check("account_number", _check_digits(4, 17, "a US account number"))
        elif self.country == "CO":
            require("bank_name", why="for a Colombian account")
            require("account_type", why="for a Colombian account (Ahorros or Corriente)")
            require("account_number", why="for a Colombian account")
            check("account_number", _check_digits(6, 20, "a Colombian account number"))
        elif self.country == "PE":
            require("account_number", "cci", why="for a Peruvian account")
            check("account_number", _check_digits(10, 20, "a Peruvian account number"))
            check("cci", _check_digits(20, 20, "a CCI"))
        else:
            require("account_number", why=f"for a {self.country} account without IBAN")

    @property
    def label(self) -> str:
        """How warnings and people name the account."""
        return self.name or f"{self.country} {self.currency} {self.beneficiary}".strip()

    def lines(self) -> list[tuple[str, str]]:
        """(field, value) pairs to show a customer, in `DISPLAY_ORDER`; the holder's tax
        number is named after its country's name for it (`rut`, `cuit`, ...)."""
        out = []
        for field in DISPLAY_ORDER:
            value = getattr(self, field)
            if not value:
                continue
            if field == "holder_id":
                field = HOLDER_ID_NAMES.get(self.country, "tax_id")
                if self.country == "BR":
                    field = "cpf" if len(digits(value)) == 11 else "cnpj"
            out.append((field, value))
        return out


def _check_iban(value: str) -> str:
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    try:
        return IBAN(value).formatted
    except SchwiftyException as exc:
        raise ValueError(f"{value!r} is not valid ({exc}); copy it from the bank") from None


def _check_bic(value: str, iban: str) -> str:
    from schwifty import BIC, IBAN
    from schwifty.exceptions import SchwiftyException

    try:
        if value:
            return str(BIC(value))
        derived = IBAN(iban).bic
        return str(derived) if derived else ""
    except SchwiftyException as exc:
        raise ValueError(f"{value!r} is not valid ({exc})") from None


def _check_alias(value: str) -> str:
    if not _ALIAS.match(value.strip()):
        raise ValueError(f"{value!r}: an alias has 6 to 20 letters, digits, '.' or '-'")
    return value.strip().lower()


def screen_accounts(
    raw: Iterable[Any], *, where: str = "replies.bank_accounts"
) -> tuple[list[BankAccount], list[str]]:
    """The accounts that are valid, and one line per refused account naming where it is,
    its label and each wrong field: a wrong account never stops the others loading."""
    accepted: list[BankAccount] = []
    refused: list[str] = []
    for i, item in enumerate(raw):
        if isinstance(item, BankAccount):
            accepted.append(item)
            continue
        try:
            accepted.append(BankAccount.model_validate(item))
        except ValidationError as exc:
            label = item.get("name") or item.get("beneficiary") if isinstance(item, dict) else ""
            named = f" ({label!r})" if label else ""
            reasons = "; ".join(_reason(err) for err in exc.errors())
            refused.append(f"{where}[{i}]{named} refused, the others load: {reasons}")
    return accepted, refused


def _reason(err: Any) -> str:
    field = ".".join(str(p) for p in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{field}: unknown key"
    return f"{field}: {message}" if field else message


def accounts_for(accounts: Iterable[BankAccount], currency: str, country: str) -> list[BankAccount]:
    """The accounts to show for an invoice: those in its currency, the ones in the
    customer's country first (a USD invoice in Peru: the Peruvian USD account, not the US
    one); none when no account takes the currency (a person answers)."""
    currency, country = currency.upper(), country.upper()
    same_currency = [a for a in accounts if a.currency == currency]
    local = [a for a in same_currency if a.country == country]
    return local or same_currency

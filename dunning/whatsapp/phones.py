"""Phone numbers in E.164, the only form the WhatsApp Cloud API and the inbox use.

Sources write numbers every way (`600 123 456`, `+34 600-123-456`, `0034600123456`); the
customer's country resolves the national ones. Parsing is `phonenumbers` (Google's
libphonenumber metadata), not a regular expression.
"""

from __future__ import annotations

import pandas as pd
import phonenumbers


class InvalidPhone(ValueError):
    """A number that cannot be a phone number of its country (the message says which)."""


def to_e164(raw: str, country: str = "") -> str:
    """The number in E.164 (`+34600123456`), reading national numbers as `country`'s.

    Raises `InvalidPhone` naming the value and the country when it is empty, cannot be
    parsed, or is not a possible number there (too short, wrong prefix).

    Example:
        >>> to_e164("600 12 34 56", "ES")
        '+34600123456'
    """
    text = (raw or "").strip()
    region = (country or "").strip().upper() or None
    if not text:
        raise InvalidPhone("no phone number: add one at the source to use WhatsApp")
    if text.startswith("00"):
        text = "+" + text[2:]  # the international prefix of most of Europe and LatAm
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(
            f"phone {raw!r} cannot be read as a number of country {region or '?'} ({exc}); "
            "fix it at the source (with the country code, e.g. +34 600 123 456)"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(
            f"phone {raw!r} is not a valid number for country "
            f"{phonenumbers.region_code_for_number(number) or region or '?'}; fix it at the source"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def wa_id(e164: str) -> str:
    """The API's form of a number: E.164 digits without the `+` (`34600123456`)."""
    return e164.lstrip("+")


def from_wa_id(value: str) -> str:
    """E.164 of a number as the webhooks give it (`34600123456` -> `+34600123456`)."""
    digits = "".join(ch for ch in value if ch.isdigit())
    return f"+{digits}" if digits else ""


def normalize_phones(phones: pd.Series, countries: pd.Series) -> pd.Series:
    """E.164 of every number (empty where it cannot be read), for a whole invoice frame.

    Each distinct (number, country) pair is parsed once, so a frame of 100k invoices from a
    few thousand customers costs a few thousand parses.
    """
    pairs = pd.DataFrame(
        {"phone": phones.fillna("").astype(str), "country": countries.fillna("").astype(str)},
        index=phones.index,
    )
    unique = pairs.drop_duplicates()
    unique["e164"] = [
        _or_empty(p, c) for p, c in zip(unique["phone"], unique["country"], strict=True)
    ]
    return pairs.merge(unique, on=["phone", "country"], how="left")["e164"].set_axis(phones.index)


def _or_empty(phone: str, country: str) -> str:
    try:
        return to_e164(phone, country)
    except InvalidPhone:
        return ""


def same_number(sender_e164: str, contact: str) -> bool:
    """Whether a contact number, as the source wrote it, is the sender's full E.164 number.

    The whole number is compared, country code included: `+44 7600 123456` is not the
    Spanish `+34 600 123 456` even though they share their last digits. A national number
    in the source (no `+` or `00` prefix) is read as a number of the sender's own country,
    so it can only equal a sender there with exactly that number.

    Example:
        >>> same_number("+34600123456", "600 12 34 56"), same_number("+447600123456", "600123456")
        (True, False)
    """
    try:
        sender = phonenumbers.parse(
            sender_e164 if sender_e164.startswith("+") else "+" + sender_e164
        )
    except phonenumbers.NumberParseException:
        return False
    region = phonenumbers.region_code_for_number(sender)
    text = (contact or "").strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return False
    return (number.country_code, number.national_number) == (
        sender.country_code,
        sender.national_number,
    )

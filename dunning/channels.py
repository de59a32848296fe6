"""Which channel each planned reminder goes on: the customer's preference, the policy's
fallback order, consent and opt-outs, vectorized over the whole invoice frame.

Per invoice with a stage, the candidates are, in order:

- stage channel `preferred` (the default): the customer's `preferred_channel`, then the
  policy's `channel_order`;
- `email`: email only (without an address, a human task, as always);
- `whatsapp`, `sms`, `voice`: that channel, then `channel_order`;
- `all`: every message channel the customer can get (email, WhatsApp, SMS; not calls);
- `none`: an internal stage: no candidate, the channel is `INTERNAL` and the act step only
  does the stage's escalation (task, notification, customer status).

A candidate is usable when the channel is configured for the run and:
email - the invoice has an address and no email opt-out; WhatsApp - a WhatsApp block is
given, the customer opted in (a `whatsapp_opt_in` of the source, or one recorded in the
ledger), there is no WhatsApp opt-out, and the phone reads as a valid number of the
customer's country that was not reported as not being on WhatsApp; SMS - an `SmsChannel`
is given, no SMS opt-out, an SMS opt-in where the customer's country requires one, and a
valid number not reported unusable for SMS (21211/21614); voice - a `VoiceChannel` is given,
no voice opt-out and a valid number not reported unusable for calls. The first usable
candidate is the channel; `channel_note` says why the ones before it were passed over
("preferred whatsapp: no opt-in"). With no usable candidate the invoice gets a human task,
or nothing (`opted_out`) when its email is opted out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dunning.policy import Policy

if TYPE_CHECKING:
    from dunning.ledger import Ledger

EMAIL_ONLY: frozenset[str] = frozenset({"email"})
ALL_CHANNELS: tuple[str, ...] = ("email", "whatsapp", "sms")
#: The channels that need a readable phone number, and how a reason names them.
PHONE_CHANNELS: dict[str, str] = {"whatsapp": "WhatsApp", "sms": "SMS", "voice": "voice"}
#: The planned channel of an internal stage (`channel: none`): nothing reaches the customer.
INTERNAL = "none"


@dataclass(frozen=True)
class WhatsAppFacts:
    """What the ledger knows about WhatsApp contacts, for planning a whole frame.

    `opted_in`: customers with an opt-in recorded by us; `invalid`: (customer id, E.164
    number) pairs Meta reported as not on WhatsApp.
    """

    opted_in: frozenset[str] = field(default_factory=frozenset)
    invalid: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    @classmethod
    def from_ledger(cls, ledger: Ledger) -> WhatsAppFacts:
        """Read the opt-ins and the numbers marked invalid (two small queries)."""
        from dunning.whatsapp.consent import invalid_contacts, opted_in_customers

        return cls(frozenset(opted_in_customers(ledger)), frozenset(invalid_contacts(ledger)))


@dataclass(frozen=True)
class TwilioFacts:
    """What the ledger knows about SMS and voice contacts, for planning a whole frame.

    `opted_in`: customers with a recorded SMS opt-in; `invalid`: (channel, customer id,
    E.164 number) reported unusable; `opt_in_countries`: where SMS needs an opt-in (the
    `SmsChannel` block's list).
    """

    opted_in: frozenset[str] = field(default_factory=frozenset)
    invalid: frozenset[tuple[str, str, str]] = field(default_factory=frozenset)
    opt_in_countries: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_ledger(
        cls, ledger: Ledger, opt_in_countries: frozenset[str] = frozenset()
    ) -> TwilioFacts:
        """Read the SMS opt-ins and the numbers marked unusable (three small queries)."""
        from dunning.twilio.consent import invalid_contacts, opted_in_customers

        invalid = {(c, *pair) for c in ("sms", "voice") for pair in invalid_contacts(ledger, c)}
        return cls(
            frozenset(opted_in_customers(ledger, "sms")),
            frozenset(invalid),
            frozenset(c.upper() for c in opt_in_countries),
        )


@dataclass
class ChannelChoice:
    """Per invoice: the primary `channel` ("task" when none, "" without a stage), every
    channel to use (`channels`, comma-separated), why the preferred ones were passed over
    (`note`), and whether the invoice is opted out of everything it could get."""

    channel: np.ndarray
    channels: np.ndarray
    note: np.ndarray
    opted_out: np.ndarray


def stage_channels(policy: Policy, segment: np.ndarray, stage: np.ndarray) -> np.ndarray:
    """The `channel` setting of each row's stage ("" where there is no stage)."""
    out = np.full(len(stage), "", dtype=object)
    broken = policy.replies.broken_promise
    for seg in pd.unique(segment):
        rows = np.flatnonzero(segment == seg)
        lookup = {s.name: s.channel for s in policy.ladder(seg or None)}
        lookup[broken.name] = broken.channel
        out[rows] = pd.Series(stage[rows]).map(lookup).fillna("").to_numpy(dtype=object)
    return out


def choose_channels(
    df: pd.DataFrame,
    policy: Policy,
    stage: np.ndarray,
    mode: np.ndarray,
    pauses: pd.DataFrame,
    available: frozenset[str] = EMAIL_ONLY,
    facts: WhatsAppFacts | None = None,
    twilio: TwilioFacts | None = None,
) -> ChannelChoice:
    """Choose the channel(s) of every row with a stage (see the module docstring).

    Args:
        df: the invoice frame (email, phone, country filled in, customer_id, invoice_number,
            and optionally preferred_channel and whatsapp_opt_in).
        stage: each row's stage ("" for none); `mode`: its stage's channel setting.
        pauses: the active pauses (kind, channel, invoice_number, customer_id).
        available: the channels configured for this run (`{"email"}` without WhatsApp).
        facts: the ledger's WhatsApp opt-ins and invalid numbers.
        twilio: the ledger's SMS opt-ins and the numbers unusable for SMS or calls.
    """
    n = len(df)
    # An internal stage (`channel: none`) messages nobody: its channel is "none" and the act
    # step only escalates. It is not a customer contact, so opt-outs do not apply to it.
    internal = (stage != "") & (mode == "none")
    has_stage = (stage != "") & ~internal
    pref = _text(df, "preferred_channel")
    reason: dict[str, np.ndarray] = {}
    email_out = _opted_out(df, pauses, "email")
    reason["email"] = np.where(
        email_out,
        "opted out",
        np.where(_text(df, "email") == "", "no email address", ""),
    ).astype(object)
    wanted = has_stage & _wants_whatsapp(mode, pref, policy)
    reason["whatsapp"] = _whatsapp_reasons(df, pauses, wanted, available, facts or WhatsAppFacts())
    for c in ("sms", "voice"):
        wants = has_stage & _wants(c, mode, pref, policy)
        reason[c] = _twilio_reasons(c, df, pauses, wants, available, twilio or TwilioFacts())

    channel = np.full(n, "", dtype=object)
    channels = np.full(n, "", dtype=object)
    note = np.full(n, "", dtype=object)
    groups = pd.DataFrame({"mode": mode, "pref": pref})[has_stage].groupby(
        ["mode", "pref"], sort=False
    )
    for (m, p), index in groups.groups.items():
        rows = np.asarray(index)
        explicit = _order(m, p, policy.channel_order)
        extra = [c for c in ALL_CHANNELS if c in available and c not in explicit]
        ordered = explicit + extra if m == "all" else explicit
        chosen = np.full(len(rows), "", dtype=object)
        every = np.full(len(rows), "", dtype=object)
        why = np.full(len(rows), "", dtype=object)
        for pos, c in enumerate(ordered):
            r = reason[c][rows]
            ok = r == ""
            label = f"preferred {c}" if pos == 0 and c == p and m == "preferred" else c
            # Email alone is today's plan: its missing address is the `note` of the task.
            noted = c in explicit and explicit != ["email"]
            passed = ~ok & ((chosen == "") | (m == "all")) & noted
            why = np.where(passed, _join(why, f"{label}: " + r.astype(object), "; "), why)
            every = np.where(ok, _join(every, c, ","), every)
            chosen = np.where(ok & (chosen == ""), c, chosen)
        channel[rows] = chosen
        channels[rows] = every if m == "all" else chosen
        note[rows] = why
    opted_out = has_stage & (channel == "") & email_out
    task = has_stage & (channel == "") & ~email_out
    channel[task] = "task"
    channels[task] = "task"
    channel[internal] = channels[internal] = INTERNAL
    return ChannelChoice(channel, channels, note, opted_out)


def _order(mode: str, preferred: str, channel_order: list[str]) -> list[str]:
    if mode == "email":
        order = ["email"]
    elif mode in PHONE_CHANNELS:
        order = [mode, *channel_order]
    else:  # preferred, all
        order = [preferred, *channel_order] if preferred else list(channel_order)
    return list(dict.fromkeys(order))


def _wants_whatsapp(mode: np.ndarray, pref: np.ndarray, policy: Policy) -> np.ndarray:
    return _wants("whatsapp", mode, pref, policy)


def _wants(channel: str, mode: np.ndarray, pref: np.ndarray, policy: Policy) -> np.ndarray:
    """Rows whose candidates include `channel` (only those are checked, e.g. parsed)."""
    in_order = channel in policy.channel_order
    return (
        (mode == channel)
        | ((mode == "all") & (channel in ALL_CHANNELS))
        | (pref == channel) & (mode != "email")
        | (in_order & (mode != "email"))
    )


def _twilio_reasons(
    channel: str,
    df: pd.DataFrame,
    pauses: pd.DataFrame,
    wanted: np.ndarray,
    available: frozenset[str],
    facts: TwilioFacts,
) -> np.ndarray:
    """Why SMS (or voice) cannot be used for each row ("" where it can): the channel
    configured, opt-out, SMS consent where the country requires it, the number, a number
    reported unusable; on the rows that want it only."""
    n = len(df)
    out = np.full(n, "", dtype=object)
    if channel not in available:
        out[:] = f"no {PHONE_CHANNELS[channel]} channel configured"
        return out
    customer = df["customer_id"].astype(str)
    opted_out = _opted_out(df, pauses, channel)
    out[opted_out] = "opted out"
    if channel == "sms" and facts.opt_in_countries:
        country = pd.Series(_text(df, "country")).str.upper()
        needs = country.isin(facts.opt_in_countries).to_numpy()
        consent = customer.isin(facts.opted_in).to_numpy()
        out[~opted_out & needs & ~consent] = "no opt-in (required in the country)"
    invalid = {(c, p) for ch, c, p in facts.invalid if ch == channel}
    _number_reasons(
        df,
        np.flatnonzero(wanted & (out == "")),
        out,
        invalid,
        f" reported unusable for {PHONE_CHANNELS[channel]}",
    )
    return out


def _whatsapp_reasons(
    df: pd.DataFrame,
    pauses: pd.DataFrame,
    wanted: np.ndarray,
    available: frozenset[str],
    facts: WhatsAppFacts,
) -> np.ndarray:
    """Why WhatsApp cannot be used for each row ("" where it can), checked in the order
    opt-out, consent, number, number reported invalid, on the rows that want it only."""
    n = len(df)
    out = np.full(n, "", dtype=object)
    if "whatsapp" not in available:
        out[:] = "no WhatsApp channel configured"
        return out
    customer = df["customer_id"].astype(str)
    opted_out = _opted_out(df, pauses, "whatsapp")
    source_yes = _text(df, "whatsapp_opt_in") == "true"
    consent = source_yes | customer.isin(facts.opted_in).to_numpy()
    out[opted_out] = "opted out"
    out[~opted_out & ~consent] = "no opt-in"
    rows = np.flatnonzero(wanted & ~opted_out & consent)
    _number_reasons(df, rows, out, facts.invalid, " reported as not on WhatsApp")
    return out


def _number_reasons(
    df: pd.DataFrame,
    rows: np.ndarray,
    out: np.ndarray,
    invalid: set[tuple[str, str]] | frozenset[tuple[str, str]],
    reported_as: str,
) -> None:
    """Write into `out[rows]` why each row's phone cannot be used ("" where it can): no
    number, not a valid number for its country, or (customer id, E.164) among `invalid`
    (then "number <E.164>" + `reported_as`). Phones are parsed for these rows only."""
    if not len(rows):
        return
    from dunning.whatsapp.phones import normalize_phones

    sub = df.iloc[rows]
    phone = sub["phone"].fillna("").astype(str)
    country = sub["country"].fillna("").astype(str)
    e164 = normalize_phones(phone, country).to_numpy(dtype=object)
    bad = e164 == ""
    empty = (phone.str.strip() == "").to_numpy()
    unreadable = "phone '" + phone.to_numpy(dtype=object) + "' not a valid number for "
    out[rows] = np.where(
        empty,
        "no phone number",
        np.where(bad, unreadable + country.to_numpy(dtype=object), ""),
    )
    if invalid:
        customer = sub["customer_id"].astype(str)
        pairs = pd.Series(list(zip(customer, e164, strict=True)))
        reported = pairs.isin(invalid).to_numpy() & ~bad
        out[rows[reported]] = "number " + e164[reported] + reported_as


def _opted_out(df: pd.DataFrame, pauses: pd.DataFrame, channel: str) -> np.ndarray:
    """Rows whose invoice or customer has an active opt-out covering `channel`."""
    if pauses.empty:
        return np.zeros(len(df), dtype=bool)
    kinds = pauses.get("channel", pd.Series("", index=pauses.index)).fillna("")
    p = pauses[(pauses["kind"] == "opt_out") & kinds.isin(["", channel])]
    if p.empty:
        return np.zeros(len(df), dtype=bool)
    return (
        df["invoice_number"].isin(p["invoice_number"].dropna())
        | df["customer_id"].isin(p["customer_id"].dropna())
    ).to_numpy()


def _text(df: pd.DataFrame, column: str) -> np.ndarray:
    if column not in df:
        return np.full(len(df), "", dtype=object)
    return df[column].fillna("").astype(str).to_numpy(dtype=object)


def _join(left: np.ndarray, right: str | np.ndarray, sep: str) -> np.ndarray:
    return np.where(left == "", right, left + sep + right)

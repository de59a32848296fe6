"""The dunning policy: the ladder of stages, the sending window, and per-segment overrides.

Modelled on Odoo's follow-up levels: each stage is an offset from the due date with a
channel, a template and a tone, and may escalate to a person. The same schema is a YAML file
(`load_policy`) and a Prefect block (`blocks.policy.DunningPolicy`).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator

DEFAULT_POLICY_FILE = Path(__file__).with_name("default_policy.yaml")


class Escalation(BaseModel):
    """What a stage hands to people besides the message."""

    human_task: str | None = Field(None, description="Title of a task opened for a person.")
    assignee: str = Field("account_owner", description="Role or person the task is for.")
    task_due_days: int = Field(1, ge=0, description="Task due this many days after opening.")
    customer_status: str | None = Field(
        None, description="Customer status set in the CRM (e.g. on_hold)."
    )


class Stage(BaseModel):
    """One rung of the ladder."""

    name: str = Field(description="Stage id, also the template name (e.g. overdue_7).")
    offset_days: int = Field(description="Days relative to the due date (negative = before).")
    channel: Literal["preferred", "email", "whatsapp", "all"] = Field(
        "preferred",
        description="preferred: the customer's preferred channel, then the policy's "
        "channel_order; email: email only (a human task without an address); whatsapp: "
        "WhatsApp first, then channel_order; all: every channel the customer can get "
        "(e.g. a final notice on both).",
    )
    template: str | None = Field(None, description="Template name; defaults to the stage name.")
    tone: Literal["friendly", "neutral", "firm", "final"] = "neutral"
    include_payment_link: bool = True
    escalation: Escalation | None = None

    @property
    def template_name(self) -> str:
        return self.template or self.name


class Window(BaseModel):
    """Local hours in which messages may be sent (customer's timezone)."""

    start: time = time(9, 0)
    end: time = time(18, 0)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after start {self.start}")
        return self


class Segment(BaseModel):
    """Customers that get their own ladder. All given conditions must hold."""

    name: str
    customer_ids: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    min_amount_due: float | None = None
    min_p_late: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Invoices whose probability of being paid late (the risk model's "
        "p_late) is at least this; unscored invoices never match.",
    )
    stages: list[Stage]


class BankDetails(BaseModel):
    """Where customers pay: sent to whoever asks for the bank details.

    The IBAN (and BIC, if given) are checked with schwifty when the policy is loaded, so a
    typo is caught before it reaches a customer.
    """

    beneficiary: str = Field(description="Account holder, as the bank knows it.")
    iban: str = Field(description="IBAN, with or without spaces.")
    bic: str = Field("", description="BIC/SWIFT; derived from the IBAN when left empty.")
    bank_name: str = ""
    certificate_path: str = Field(
        "", description="PDF of the bank's account certificate, attached to the answer."
    )

    @field_validator("iban")
    @classmethod
    def _valid_iban(cls, v: str) -> str:
        from schwifty import IBAN
        from schwifty.exceptions import SchwiftyException

        try:
            return IBAN(v).formatted
        except SchwiftyException as exc:
            raise ValueError(f"IBAN {v!r} is not valid ({exc}); copy it from the bank") from None

    @model_validator(mode="after")
    def _valid_bic(self) -> BankDetails:
        from schwifty import BIC, IBAN
        from schwifty.exceptions import SchwiftyException

        try:
            if self.bic:
                self.bic = str(BIC(self.bic))
            else:
                derived = IBAN(self.iban).bic
                self.bic = str(derived) if derived else ""
        except SchwiftyException as exc:
            raise ValueError(f"BIC {self.bic!r} is not valid ({exc})") from None
        return self


def _broken_promise_stage() -> Stage:
    return Stage(
        name="promise_broken",
        offset_days=0,
        tone="firm",
        escalation=Escalation(
            human_task="Promise to pay broken: call the customer", assignee="account_owner"
        ),
    )


class Replies(BaseModel):
    """How customers' replies are acted on."""

    min_confidence: float = Field(
        0.6, ge=0, le=1, description="Below this, a person approves a drafted answer."
    )
    payment_verification_days: int = Field(
        5, ge=0, description="Days reminders wait after 'already paid' while a person checks."
    )
    manager_emails: list[str] = Field(
        default_factory=list, description="Alerted at once on a dispute or an angry reply."
    )
    bank_details: BankDetails | None = Field(
        None, description="Sent to customers who ask where to pay; unset: a person answers."
    )
    broken_promise: Stage = Field(
        default_factory=_broken_promise_stage,
        description="The message (and task) when a promised date passes unpaid.",
    )


class Policy(BaseModel):
    """The whole dunning policy.

    Example (YAML):

        timezone: Europe/Madrid
        window: {start: "09:00", end: "18:00"}
        stages:
          - {name: due, offset_days: 0, tone: neutral}
          - {name: overdue_7, offset_days: 7, tone: firm}
    """

    name: str = Field("default", description="The policy's name, shown in reports.")
    stages: list[Stage] = Field(description="Ladder stages; sorted by offset when evaluated.")
    business_day_offsets: bool = Field(
        False, description="Count stage offsets in business days instead of calendar days."
    )
    roll_to_business_day: bool = Field(
        True, description="A stage falling on a weekend or holiday moves to the next business day."
    )
    window: Window = Field(
        default_factory=Window, description="Local hours messages may be sent in (09:00-18:00)."
    )
    timezone: str = Field(
        "Europe/Madrid", description="Customer timezone when the source has none."
    )
    country: str = Field("ES", description="Customer country when the source has none (holidays).")
    language: str = Field("es", description="Message language when the source has none.")
    segments: list[Segment] = Field(
        default_factory=list, description="Customers that get their own ladder."
    )
    channel_order: list[Literal["email", "whatsapp"]] = Field(
        default_factory=lambda: ["email"],
        min_length=1,
        description="Channels tried in order after the customer's preferred one; WhatsApp "
        "only for customers with an opt-in, and only when a WhatsApp block is given.",
    )
    promise_grace_days: int = Field(
        2, ge=0, description="Days after a promised date before chasing."
    )
    replies: Replies = Field(
        default_factory=Replies, description="How customers' replies are acted on."
    )
    risk_model: str | None = Field(
        None,
        description="Model file from `dunning risk train --format ledger`: each invoice gets "
        "its p_late before planning, for segments with min_p_late. Empty: no scoring.",
    )
    stale_claim_minutes: int = Field(
        15,
        ge=1,
        description="A claimed action not handed to the mail server after this is retaken.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        if v not in zoneinfo.available_timezones():
            raise ValueError(f"unknown timezone {v!r}; use an IANA name such as Europe/Madrid")
        return v

    @model_validator(mode="after")
    def _unique_stage_names(self) -> Policy:
        for ladder in [self.stages, *(s.stages for s in self.segments)]:
            names = [s.name for s in ladder]
            if len(names) != len(set(names)):
                raise ValueError(f"stage names must be unique within a ladder: {names}")
            if not ladder:
                raise ValueError("a ladder needs at least one stage")
        return self

    def ladder(self, segment: str | None = None) -> list[Stage]:
        """The stages of a segment (or the default ladder), sorted by offset."""
        stages = next((s.stages for s in self.segments if s.name == segment), self.stages)
        return sorted(stages, key=lambda s: s.offset_days)

    def stage(self, name: str, segment: str | None = None) -> Stage:
        if name == self.replies.broken_promise.name:
            return self.replies.broken_promise
        for s in self.ladder(segment):
            if s.name == name:
                return s
        raise KeyError(f"no stage {name!r} in the ladder of segment {segment or 'default'}")


def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy YAML file; with no path, the built-in default ladder."""
    path = Path(path) if path else DEFAULT_POLICY_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"policy file {path} does not exist") from exc
    return Policy.model_validate(data or {})


def default_policy() -> Policy:
    return load_policy(None)


def today(policy: Policy | None = None, now: datetime | None = None) -> date:
    """The date it is in the policy's timezone: the one "today" of sweeps, reports and replies.

    Args:
        policy: whose `timezone` decides the day; without one, the default policy's
            (Europe/Madrid), so a command without a policy agrees with the default sweep.
        now: the moment (timezone-aware); the current time if empty. A naive `now` is
            taken as UTC, the way the ledger stores times.

    Example:
        >>> today(load_policy("policy.yaml"))
        >>> today(now=datetime(2026, 12, 31, 23, 30, tzinfo=UTC))  # 2027-01-01 in Madrid
    """
    zone = policy.timezone if policy is not None else Policy.model_fields["timezone"].default
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zoneinfo.ZoneInfo(zone)).date()

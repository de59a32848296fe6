"""The dunning policy: the ladder of stages, the sending window, and per-segment overrides.

Modelled on Odoo's follow-up levels: each stage is an offset from the due date with a
channel, a template and a tone, and may escalate to a person. The same schema is a YAML file
(`load_policy`) and a Prefect block (`blocks.policy.DunningPolicy`).
"""

from __future__ import annotations

import difflib
import logging
import re
import types
import typing
import zoneinfo
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from dunning.bank_accounts import BankAccount, screen_accounts

DEFAULT_POLICY_FILE = Path(__file__).with_name("default_policy.yaml")
log = logging.getLogger(__name__)

#: The parts of an email template, each looked up as `email/<lang>/<template>.<part>`.
EMAIL_TEMPLATE_PARTS = ("subject.txt", "txt", "html")


class PolicyError(ValueError):
    """A policy that cannot be used: one line per problem, each naming where it is."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class _Strict(BaseModel):
    """A policy part that rejects unknown keys: a misspelt or invented key (e.g.
    `send_customer_message: false`) must fail at load, never be silently ignored."""

    model_config = ConfigDict(extra="forbid")


#: How a customer's due stages become messages: `invoice`, one message per invoice and
#: stage; `statement`, one message per customer and sweep listing every invoice with a stage
#: due (`dunning.statement`).
Grouping = Literal["invoice", "statement"]


#: What the customer gets when an invoice that was chased is paid (`dunning.thanks`):
#: `thank_you`, one thank-you email; `none`, nothing (the CRM still hears of the payment).
OnPayment = Literal["thank_you", "none"]


#: The roles an escalation's `assignee` and `notify` may name instead of an email address:
#: the invoice's `owner_email` (else `owners.default`) and its `manager_email` (else the
#: first of `owners.managers`), resolved per invoice by `resolve_assignee`.
ROLES = ("account_owner", "manager")
_EMAIL_SHAPE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[A-Za-z]{2,}$")


def _person(value: str) -> str:
    """A role of ROLES or one email address (lower case), else a ValueError saying so."""
    value = value.strip()
    if value in ROLES:
        return value
    if not _EMAIL_SHAPE.match(value):
        raise ValueError(f"{value!r} is neither a role ({', '.join(ROLES)}) nor an email address")
    return value.lower()


def _email(value: str) -> str:
    value = value.strip()
    if not _EMAIL_SHAPE.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value.lower()


class Escalation(_Strict):
    """What a stage hands to people besides the message."""

    human_task: str | None = Field(None, description="Title of a task opened for a person.")
    assignee: str = Field(
        "account_owner",
        description="Who the task is for: account_owner (the invoice's owner_email, else "
        "owners.default), manager (its manager_email, else owners.managers) or an email.",
    )
    task_due_days: int = Field(1, ge=0, description="Task due this many days after opening.")
    customer_status: str | None = Field(
        None, description="Customer status set in the CRM (e.g. on_hold)."
    )
    notify: list[str] = Field(
        default_factory=list,
        description="Sent one internal email (the invoice, the customer's desk link and the "
        "task expected): account_owner, manager or email addresses, resolved per invoice.",
    )

    @field_validator("assignee")
    @classmethod
    def _assignee(cls, v: str) -> str:
        return _person(v)

    @field_validator("notify")
    @classmethod
    def _notify(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(_person(x) for x in v))

    @property
    def does_something(self) -> bool:
        """True when it opens a task, notifies someone or sets a customer status."""
        return bool(self.human_task or self.notify or self.customer_status)


class Owners(_Strict):
    """Who answers for an invoice whose source names nobody (no owner_email/manager_email)."""

    default: str = Field(
        "", description="Email of the account owner of invoices without an owner_email."
    )
    managers: list[str] = Field(
        default_factory=list,
        description="Emails of the sales managers: the `manager` of invoices without a "
        "manager_email is the first.",
    )

    @field_validator("default")
    @classmethod
    def _default(cls, v: str) -> str:
        return _email(v) if v.strip() else ""

    @field_validator("managers")
    @classmethod
    def _managers(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(_email(x) for x in v))


class Stage(_Strict):
    """One rung of the ladder."""

    name: str = Field(description="Stage id, also the template name (e.g. overdue_7).")
    offset_days: int = Field(description="Days relative to the due date (negative = before).")
    channel: Literal["preferred", "email", "whatsapp", "sms", "voice", "all", "none"] = Field(
        "preferred",
        description="preferred: the customer's preferred channel, then the policy's "
        "channel_order; email: email only (a human task without an address); whatsapp: "
        "WhatsApp first, then channel_order; sms, voice: an SMS or an automated call "
        "first, then channel_order (a call not answered after the voice channel's attempts "
        "becomes a task); all: every message channel the customer can get (e.g. a final "
        "notice on both); none: nothing to the customer, only the escalation (an "
        "internal stage: a task, a notification, a customer status).",
    )
    template: str | None = Field(None, description="Template name; defaults to the stage name.")
    tone: Literal["friendly", "neutral", "firm", "final"] = "neutral"
    include_payment_link: bool = True
    escalation: Escalation | None = None

    @model_validator(mode="after")
    def _internal_does_something(self) -> Stage:
        if self.channel == "none" and not (self.escalation and self.escalation.does_something):
            raise ValueError(
                f"stage {self.name!r} has channel none (nothing to the customer) and no "
                "escalation doing anything: give it escalation.human_task, escalation.notify "
                "or escalation.customer_status"
            )
        return self

    @property
    def template_name(self) -> str:
        return self.template or self.name

    @property
    def messages_customer(self) -> bool:
        """False for an internal stage (`channel: none`): no template, no message."""
        return self.channel != "none"


class Window(_Strict):
    """Local hours in which messages may be sent (customer's timezone)."""

    start: time = time(9, 0)
    end: time = time(18, 0)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after start {self.start}")
        return self


class Segment(_Strict):
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
    on_payment: OnPayment | None = Field(
        None,
        description="thank_you or none for this segment's customers; empty: the "
        "policy's on_payment.",
    )
    grouping: Grouping | None = Field(
        None,
        description="invoice or statement for this segment's customers; empty: the "
        "policy's grouping.",
    )


class BankDetails(_Strict):
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

    def to_account(self) -> BankAccount:
        """The same account in the list form (`Replies.bank_accounts`)."""
        return BankAccount(name="bank_details", **self.model_dump())

    def lines(self) -> list[tuple[str, str]]:
        """(field, value) pairs to show a customer, as `BankAccount.lines`."""
        return self.to_account().lines()


def _broken_promise_stage() -> Stage:
    return Stage(
        name="promise_broken",
        offset_days=0,
        tone="firm",
        escalation=Escalation(
            human_task="Promise to pay broken: call the customer", assignee="account_owner"
        ),
    )


class Replies(_Strict):
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
        None,
        description="One IBAN account (the older form of bank_accounts, still read); "
        "unset and no bank_accounts: a person answers.",
    )
    bank_accounts: list[BankAccount] = Field(
        default_factory=list,
        description="Where customers pay, one entry per account with the fields its country "
        "uses (IBAN+BIC, CLABE, CBU/CVU and alias, Chilean bank/type/number/RUT, PIX key, "
        "US routing, Colombian and Peruvian accounts/CCI); the answer shows those in the "
        "invoice's currency. A wrong account is left out with a warning (`dunning policy "
        "check`); the others load.",
    )
    broken_promise: Stage = Field(
        default_factory=_broken_promise_stage,
        description="The message (and task) when a promised date passes unpaid.",
    )
    _refused_accounts: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _screen_accounts(cls, data: Any, handler: Any) -> Replies:
        """A wrong bank account is left out (and said so), never the whole policy."""
        refused: list[str] = []
        if isinstance(data, dict):
            data = dict(data)
            accounts, refused = screen_accounts(data.get("bank_accounts") or [])
            data["bank_accounts"] = accounts
            legacy = data.get("bank_details")
            if isinstance(legacy, dict):
                try:
                    data["bank_details"] = BankDetails.model_validate(legacy)
                except ValidationError as exc:
                    reasons = "; ".join(describe_errors(exc, BankDetails))
                    refused.append(f"replies.bank_details refused: {reasons}")
                    data["bank_details"] = None
        replies = handler(data)
        replies._refused_accounts = refused
        for line in refused:
            log.warning("policy: %s", line)
        return replies

    @property
    def refused_accounts(self) -> list[str]:
        """One line per bank account left out at load, with where it is and why."""
        return list(self._refused_accounts)

    def accounts(self) -> list[BankAccount]:
        """Every bank account customers may pay into: `bank_accounts`, then `bank_details`."""
        legacy = [self.bank_details.to_account()] if self.bank_details else []
        return [*self.bank_accounts, *legacy]


class Policy(_Strict):
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
    channel_order: list[Literal["email", "whatsapp", "sms", "voice"]] = Field(
        default_factory=lambda: ["email"],
        min_length=1,
        description="Channels tried in order after the customer's preferred one; WhatsApp "
        "only for customers with an opt-in, and only when a WhatsApp block is given.",
    )
    promise_grace_days: int = Field(
        2, ge=0, description="Days after a promised date before chasing."
    )
    dispute_scope: Literal["customer", "invoice"] = Field(
        "customer",
        description="customer: a dispute (a reply, an angry reply, the desk, a webhook) stops "
        "reminders for all the customer's open invoices until a manager resumes them; "
        "invoice: only the disputed invoice stops.",
    )
    on_payment: OnPayment = Field(
        "thank_you",
        description="thank_you: when an invoice a reminder went out for is paid, the "
        "customer gets one thank-you email; none: nothing is sent. Segments may set their own.",
    )
    confirm_promises: bool = Field(
        True,
        description="A promise to pay recorded from a reply or the desk gets one "
        "confirmation email ('we note payment on <date>'); false: none.",
    )
    grouping: Grouping = Field(
        "invoice",
        description="invoice: one message per invoice and stage; statement: one email per "
        "customer and sweep listing every invoice with a stage due (number, amount, days "
        "overdue, payment link, total per currency, the PDFs attached), in the tone of its "
        "most advanced stage; each invoice's stage counts as sent. Segments may set their own.",
    )
    replies: Replies = Field(
        default_factory=Replies, description="How customers' replies are acted on."
    )
    owners: Owners = Field(
        default_factory=Owners,
        description="The account owner and managers of invoices whose source names nobody.",
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
    templates_dir: str | None = Field(
        None,
        description="A folder of your own templates laid over the built-in ones file by file "
        "(same layout: email/<lang>/<template>.subject.txt, .txt, .html): a new stage needs "
        "only its own three files. A relative path is read from the policy file's folder.",
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

    def grouping_of(self, segment: str | None = None) -> Grouping:
        """The grouping of a segment's customers (its own, else the policy's)."""
        seg = next((s for s in self.segments if s.name == segment), None)
        return seg.grouping if seg is not None and seg.grouping else self.grouping

    def on_payment_of(self, segment: str | None = None) -> OnPayment:
        """What a segment's customers get on payment (its own setting, else the policy's)."""
        seg = next((s for s in self.segments if s.name == segment), None)
        return seg.on_payment if seg is not None and seg.on_payment else self.on_payment

    def stage(self, name: str, segment: str | None = None) -> Stage:
        if name == self.replies.broken_promise.name:
            return self.replies.broken_promise
        for s in self.ladder(segment):
            if s.name == name:
                return s
        raise KeyError(f"no stage {name!r} in the ladder of segment {segment or 'default'}")


def load_policy(
    path: str | Path | None = None, *, languages: Iterable[str] | None = None
) -> Policy:
    """Read a policy YAML file; with no path, the built-in default ladder.

    Strict: an unknown key, a bad value or a stage whose email template is missing in a
    language the portfolio uses (`languages`; default the policy's `language`) raises
    `PolicyError` naming each problem's path, e.g. `stages[3].escalation.asignee: unknown
    key (did you mean 'assignee'?); allowed keys: ...`. A relative `templates_dir` is
    resolved against the file's folder.
    """
    path = Path(path) if path else DEFAULT_POLICY_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"policy file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(str(path), [f"not valid YAML ({exc})"]) from None
    if data is not None and not isinstance(data, dict):
        raise PolicyError(str(path), [f"expected a mapping of keys, got {type(data).__name__}"])
    data = data or {}
    if isinstance(data.get("templates_dir"), str):
        data["templates_dir"] = str((path.parent / data["templates_dir"]).resolve())
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(str(path), describe_errors(exc, Policy)) from None
    problems = missing_templates(policy, languages)
    if problems:
        raise PolicyError(str(path), problems)
    return policy


def describe_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per validation error: its path (`stages[3].escalation`) and what is wrong;
    for an unknown key, the keys allowed there and the closest one."""
    lines = []
    for err in exc.errors():
        where = _path(err["loc"])
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            allowed = sorted(_model_at(model, err["loc"][:-1]).model_fields)
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"{where}: unknown key{hint}; allowed keys: {', '.join(allowed)}")
        else:
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"{where or '(top level)'}: {message}")
    return lines


def _path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the user wrote it: `stages[3].escalation.asignee`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel]:
    """The model class found at `loc` (list indexes skipped, optional types unwrapped)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            break
        found = _model_in(field.annotation)
        if found is None:
            break
        model = found
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def missing_templates(policy: Policy, languages: Iterable[str] | None = None) -> list[str]:
    """Every stage whose email template is missing in one of `languages` (default: the
    policy's `language`), looked up in the policy's `templates_dir` and then the built-in
    templates; one line per stage and language, with its path in the policy."""
    from dunning.render import template_exists, templates_dir  # no cycle: render imports no policy

    if not (templates_dir() / "email").is_dir():
        # A templates folder that is not there at all (DUNNING_TEMPLATES set ahead of the
        # files) is a setting's problem, not the policy's: `dunning policy check` and the
        # first render name it. Every stage would be listed here otherwise.
        return []
    langs = sorted(set(languages or ()) | {policy.language})
    ladders = [("stages", policy.stages)] + [
        (f"segments[{i}].stages", seg.stages) for i, seg in enumerate(policy.segments)
    ]
    problems = []
    for where, ladder in ladders:
        for i, stage in enumerate(ladder):
            if not stage.messages_customer:
                continue
            for lang in langs:
                missing = [
                    part
                    for part in EMAIL_TEMPLATE_PARTS
                    if not template_exists(
                        f"email/{lang}/{stage.template_name}.{part}", policy.templates_dir
                    )
                ]
                if missing:
                    files = ", ".join(f"{stage.template_name}.{p}" for p in missing)
                    lines = (
                        f"{where}[{i}].template: stage {stage.name!r} has no {lang!r} email "
                        f"template (missing email/{lang}/{files}); add the files to the "
                        "policy's templates_dir or name an existing template"
                    )
                    problems.append(lines)
    return problems + _missing_statement_templates(policy, langs)


def _missing_statement_templates(policy: Policy, langs: list[str]) -> list[str]:
    """The statement template's parts missing in `langs`, when some customers get statements
    (`grouping: statement` at the top level or in a segment)."""
    from dunning.action import STATEMENT  # the statement's template is named after it
    from dunning.render import template_exists

    where = [("grouping", policy.grouping)] + [
        (f"segments[{i}].grouping", seg.grouping) for i, seg in enumerate(policy.segments)
    ]
    used = next((path for path, grouping in where if grouping == STATEMENT), None)
    if used is None:
        return []
    problems = []
    for lang in langs:
        missing = [
            f"{STATEMENT}.{part}"
            for part in EMAIL_TEMPLATE_PARTS
            if not template_exists(f"email/{lang}/{STATEMENT}.{part}", policy.templates_dir)
        ]
        if missing:
            problems.append(
                f"{used}: statements have no {lang!r} email template (missing email/{lang}/"
                f"{', '.join(missing)}); add the files to the policy's templates_dir"
            )
    return problems


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


def resolve_assignee(
    assignee: str, policy: Policy, *, owner_email: str = "", manager_email: str = ""
) -> str:
    """Who `assignee` (a role of ROLES or an email) is for one invoice: the one rule of the
    task's assignee, the notification's recipients (`resolve_recipients`) and the plan's
    preview. An email address as it is; `account_owner` as the invoice's `owner_email`, else
    the policy's `owners.default`; `manager` as its `manager_email`, else the first of
    `owners.managers`, else the first of `replies.manager_emails`; else the role itself (the
    task stays with the role, for whoever works that queue in the desk)."""
    if assignee == "account_owner":
        return owner_email.strip().lower() or policy.owners.default or assignee
    if assignee == "manager":
        managers = [*policy.owners.managers, *policy.replies.manager_emails]
        return manager_email.strip().lower() or (managers[0] if managers else assignee)
    return assignee


def resolve_recipients(
    notify: Iterable[str], policy: Policy, *, owner_email: str = "", manager_email: str = ""
) -> list[str]:
    """The email addresses `notify` names for one invoice (`resolve_assignee` on each), in
    order, once each; a role nobody fills (no owner, no manager anywhere) is left out."""
    people = (
        resolve_assignee(who, policy, owner_email=owner_email, manager_email=manager_email)
        for who in notify
    )
    return list(dict.fromkeys(p for p in people if p not in ROLES))

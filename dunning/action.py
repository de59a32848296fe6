"""The typed values of the act step: an action's key, the planned action, its outcome.

A planned action leaves the plan's frame once (`dunning.plan.planned_actions`) as a
`PlannedAction`, is carried out by `dunning.act.execute_action` (the Prefect task
`send-reminder` wraps it) and ends as an `Outcome`. Plain dataclasses of strings, so
Prefect can pass them to task runs and keep them as results (pickled like any value).

The key `invoice:stage:channel` is the ledger's idempotency key: one claim, one message.
`ActionKey` and, vectorized for the plan's frame, the `*_column`/`stage_keys`/
`with_channels` functions beside it are the only places its string form is built or parsed.

A statement (policy `grouping: statement`, `dunning.statement`) is one action whose `items`
are the per-invoice actions it covers; its own key names the customer and the set of those
items (`C-1:statement-<digest>:email`), so sweeps that plan the same statement claim the
same key, and each item keeps its own key as if it had gone alone.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

#: Between the parts of a key. Invoice numbers may contain it (keys are split from the
#: right); stage and channel names never do.
SEPARATOR = ":"

#: How much of an error's text a failed outcome keeps (the summary shows it).
REASON_CHARS = 300

#: The stage of a statement's action, and the start of its key's stage part.
STATEMENT = "statement"

#: Hex digits of the digest that names a statement's items in its key.
_STATEMENT_DIGEST_CHARS = 16


@dataclass(frozen=True)
class ActionKey:
    """The idempotency key of one action: `invoice:stage:channel`.

    `stage` is the key's stage: the ladder stage, or for a broken promise the stage and the
    promise's id (`promise_broken-7`), one message per promise.

    Example:
        >>> key = ActionKey.parse("F-1:overdue_7:whatsapp")
        >>> key.stage, str(key.on("email"))
        ('overdue_7', 'F-1:overdue_7:email')
    """

    invoice: str
    stage: str
    channel: str

    @classmethod
    def parse(cls, text: str) -> ActionKey:
        """The key of its string form; ValueError if it has no stage and channel."""
        parts = str(text).rsplit(SEPARATOR, 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"not an action key (invoice:stage:channel): {text!r}")
        return cls(*parts)

    def format(self) -> str:
        """The string form, as the ledger's outbox stores it."""
        return SEPARATOR.join((self.invoice, self.stage, self.channel))

    def __str__(self) -> str:
        return self.format()

    def on(self, channel: str) -> ActionKey:
        """The same invoice and stage on another channel (a fallback, or a stage on `all`)."""
        return replace(self, channel=channel)

    @classmethod
    def statement(cls, customer: str, items: Iterable[ActionKey | str], channel: str) -> ActionKey:
        """The key of a customer's statement covering `items` (per-invoice keys, in any
        order): `customer:statement-<digest>:channel`. The same items give the same key."""
        return cls(customer, _statement_stage(str(k) for k in items), channel)

    @property
    def is_statement(self) -> bool:
        """Whether this is a statement's key (its `invoice` part is then the customer)."""
        return self.stage.startswith(f"{STATEMENT}-")


def key_column(invoice: pd.Series, stage: ArrayLike, channel: ArrayLike) -> np.ndarray:
    """`ActionKey.format` of every row, vectorized (an object array of strings)."""
    return stage_keys(invoice, stage) + SEPARATOR + np.asarray(channel, dtype=object)


def stage_keys(invoice: pd.Series, stage: ArrayLike) -> np.ndarray:
    """The `invoice:stage` part of each row's key: that stage of that invoice on any channel."""
    invoices = invoice.astype(str).to_numpy(dtype=object)
    return invoices + SEPARATOR + np.asarray(stage, dtype=object)


def stage_column(keys: pd.Series) -> pd.Series:
    """The `invoice:stage` part of every key (its channel dropped), vectorized."""
    return keys.str.rsplit(SEPARATOR, n=1).str[0]


def statement_key_column(
    customer: pd.Series, keys: ArrayLike, channel: ArrayLike, member: np.ndarray
) -> np.ndarray:
    """`ActionKey.statement` of every `member` row, vectorized (None elsewhere): the member
    rows of one customer and channel share one key, named by all their keys."""
    out = np.full(len(member), None, dtype=object)
    rows = np.flatnonzero(member)
    if not len(rows):
        return out
    frame = pd.DataFrame(
        {
            "customer": customer.astype(str).to_numpy(dtype=object)[rows],
            "channel": np.asarray(channel, dtype=object)[rows],
            "key": np.asarray(keys, dtype=object)[rows],
        }
    )
    stage = frame.groupby(["customer", "channel"], sort=False)["key"].transform(_statement_stage)
    out[rows] = (frame["customer"] + SEPARATOR + stage + SEPARATOR + frame["channel"]).to_numpy()
    return out


def _statement_stage(keys: Iterable[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()
    return f"{STATEMENT}-{digest[:_STATEMENT_DIGEST_CHARS]}"


def with_channels(keys: pd.Series, channels: pd.Series) -> pd.Series:
    """`ActionKey.on` of every row, vectorized: each key moved to the row's channel."""
    return stage_column(keys) + SEPARATOR + channels


class _Keyed:
    """The invoice and channel of a record that carries an `ActionKey`, read off the key."""

    key: ActionKey

    @property
    def invoice(self) -> str:
        """The invoice number the key names."""
        return self.key.invoice

    @property
    def channel(self) -> str:
        """The key's channel: email, whatsapp, sms, voice or task (a human task where there
        is no usable email). An outcome's is the channel that carried the action: email
        after a WhatsApp fallback."""
        return self.key.channel


@dataclass(frozen=True)
class PlannedAction(_Keyed):
    """One action of the plan, all the act step needs to carry it out.

    `stage` is the ladder stage whose message goes out (`promise_broken` for a broken
    promise, whose key also names the promise). An empty `timezone`, `language` or
    `country` means the policy's (timezone) or the invoice's own.

    A statement (`dunning.statement`) has `stage` "statement", a statement key, and the
    per-invoice actions it covers as `items` (each with its own key and stage).
    """

    key: ActionKey
    customer: str
    stage: str
    segment: str = ""
    timezone: str = ""
    language: str = ""
    country: str = ""
    items: tuple[PlannedAction, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlannedAction:
        """An action from its JSON form (`to_dict`, or a plan row): `key` as a string.

        Missing values (None, NaN) of the optional fields become "".
        """
        return cls(
            key=ActionKey.parse(data["key"]),
            customer=_text(data.get("customer")),
            stage=_text(data["stage"]),
            segment=_text(data.get("segment")),
            timezone=_text(data.get("timezone")),
            language=_text(data.get("language")),
            country=_text(data.get("country")),
            items=tuple(cls.from_dict(item) for item in data.get("items") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: flat, the key as a string, invoice and channel spelled out (and
        a statement's `items` in the same form)."""
        items = {"items": [item.to_dict() for item in self.items]} if self.items else {}
        return {
            "key": str(self.key),
            "invoice": self.invoice,
            "customer": self.customer,
            "stage": self.stage,
            "channel": self.channel,
            "segment": self.segment,
            "timezone": self.timezone,
            "language": self.language,
            "country": self.country,
            **items,
        }


@dataclass
class Outcome(_Keyed):
    """What happened to one action; `status` is sent, task, skipped or failed.

    `key` is the key that carried it: a WhatsApp action that fell back names the email (or
    task) key, with `fallback_from` whatsapp and `fallback_reason` (e.g.
    `undeliverable: ... (code 131026 ...)`). `stage` is the ladder stage. A statement's
    `items` are the invoices it carried (those paid or taken meanwhile dropped out).
    """

    key: ActionKey
    stage: str
    status: str
    reason: str = ""
    recipient: str = ""
    message_id: str = ""
    escalations: list[str] = field(default_factory=list)
    fallback_from: str = ""
    fallback_reason: str = ""
    items: list[str] = field(default_factory=list)

    @classmethod
    def failed(cls, action: PlannedAction, error: BaseException | str) -> Outcome:
        """The outcome of an action that raised (after any retries): `failed`, the error
        as the reason; the sweep records it and goes on with the other actions."""
        return cls(action.key, action.stage, "failed", reason=str(error)[:REASON_CHARS])

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the sweep summary's rows): flat, the key as a string."""
        fields = asdict(self)
        if not self.items:  # only a statement's outcome lists its invoices
            del fields["items"]
        return {
            "key": str(self.key),
            "invoice": self.invoice,
            "stage": self.stage,
            "channel": self.channel,
            **{k: v for k, v in fields.items() if k not in ("key", "stage")},
        }


def _text(value: Any) -> str:
    """A plan cell as text: None and NaN (a missing value) are ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)

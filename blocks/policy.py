"""The dunning policy as a block: the ladder, editable in the Prefect UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.blocks.core import Block
from pydantic import ValidationError, model_validator

from blocks.catalog import PROCESS_LOGO, docs_url
from dunning.policy import Policy, describe_errors, load_policy
from dunning.settings import settings

#: Keys Prefect itself writes into a saved block's data; not policy keys.
PREFECT_BLOCK_KEYS = frozenset({"block_type_slug"})


class DunningPolicy(Policy, Block):
    """The escalation ladder: stages relative to the due date, sending window, segments.

    Same schema as the policy YAML file (see `dunning/default_policy.yaml`). With no stages
    given, the default ladder (pre_due -3, due 0, overdue_1, overdue_7, overdue_15 with a call
    task, final +30 with a manager task and the customer put on hold) is used.

    Attributes:
        name: The policy's name, shown in reports.
        stages: The ladder: each stage's offset from the due date, channel, tone, template
            and escalation.
        window: Local hours messages may be sent in.
        timezone, country, language: The customer's, when the source has none.
        segments: Customers that get their own ladder.
        channel_order: Channels tried in order after the customer's preferred one.
        replies: How customers' replies are acted on.

    Examples:
        Save a policy once, from a YAML file or the built-in ladder:
        ```python
        from blocks import DunningPolicy

        DunningPolicy.from_yaml(None).save("BLOCK_NAME", overwrite=True)  # or a file's path
        ```

        Load it (e.g. for a sweep's `policy` parameter):
        ```python
        from blocks import DunningPolicy

        dunning_policy = DunningPolicy.load("BLOCK_NAME")
        print([stage.name for stage in dunning_policy.to_policy().stages])
        ```
    """

    _block_type_name = "Dunning Policy"
    _description = "The dunning ladder: stages, tone, escalations, sending window, segments."
    _logo_url = PROCESS_LOGO
    _documentation_url = docs_url(_block_type_name)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_keys(cls, data: Any) -> Any:
        # A Prefect Block accepts extra keys; a policy must not: a misspelt or invented key
        # (`send_customer_message: false`) is refused here as it is in the YAML file.
        if isinstance(data, dict) and set(data) - set(cls.model_fields) - PREFECT_BLOCK_KEYS:
            try:
                Policy.model_validate(
                    {k: v for k, v in data.items() if k not in PREFECT_BLOCK_KEYS}
                )
            except ValidationError as exc:
                raise ValueError("; ".join(describe_errors(exc, Policy))) from None
        return data

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> DunningPolicy:
        """A block from a policy YAML file (the built-in default ladder when no path)."""
        return cls.model_validate(load_policy(path).model_dump())

    @classmethod
    def from_settings(cls) -> DunningPolicy:
        """The policy the `DUNNING_POLICY` setting names: a YAML file (`policy.yaml`, as
        `dunning init` writes it) or a saved block; the built-in ladder when it is unset.

        The flows use it when their `policy` parameter is empty, so the `.env` of the project
        a worker runs in chooses the policy of every deployment."""
        current = settings()
        if not current.policy:
            return cls.default()
        path = current.policy_file()
        if path is not None:
            return cls.from_yaml(path)
        from blocks.resolve import resolve_block

        return resolve_block(current.policy, cls)

    @classmethod
    def default(cls) -> DunningPolicy:
        """The built-in default ladder (`dunning/default_policy.yaml`)."""
        return cls.from_yaml(None)

    def to_policy(self) -> Policy:
        """The plain policy the core plans with."""
        return Policy.model_validate(self.model_dump(include=set(Policy.model_fields)))

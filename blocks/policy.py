"""The dunning policy as a block: the ladder, editable in the Prefect UI."""

from __future__ import annotations

from pathlib import Path

from prefect.blocks.core import Block

from dunning.policy import Policy, load_policy


class DunningPolicy(Policy, Block):
    """The escalation ladder: stages relative to the due date, sending window, segments.

    Same schema as the policy YAML file (see `dunning/default_policy.yaml`). With no stages
    given, the default ladder (pre_due -3, due 0, overdue_1, overdue_7, overdue_15 with a call
    task, final +30 with a manager task and the customer put on hold) is used.

    Example:
        ```python
        from blocks import DunningPolicy

        policy = DunningPolicy.from_yaml("policies/spain.yaml")
        policy.save("default", overwrite=True)
        ```
    """

    _block_type_name = "Dunning Policy"
    _description = "The dunning ladder: stages, tone, escalations, sending window, segments."

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> DunningPolicy:
        """A block from a policy YAML file (the built-in default ladder when no path)."""
        return cls.model_validate(load_policy(path).model_dump())

    @classmethod
    def default(cls) -> DunningPolicy:
        return cls.from_yaml(None)

    def to_policy(self) -> Policy:
        return Policy.model_validate(self.model_dump(include=set(Policy.model_fields)))

    @classmethod
    def resolve(cls, ref: str | DunningPolicy | None) -> Policy:
        """The policy of a flow parameter: a block, a saved block's name, or None for the
        built-in default ladder."""
        if ref is None or ref == "":
            return cls.default().to_policy()
        if isinstance(ref, str):
            return cls.load(ref).to_policy()
        return ref.to_policy()

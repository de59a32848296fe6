"""A sending channel's quota, as a Prefect rate limit shared by every worker."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MessageQuota(BaseModel):
    """`messages_per_second` for a channel block; the send task takes one slot per message.

    The rate limit is created on the Prefect server by the sweep (a limit that does not
    exist would be silently ignored), named by `rate_limit_name()`.
    """

    messages_per_second: float = Field(
        0.0,
        ge=0,
        description="The provider's quota, as a Prefect rate limit shared by every worker "
        "(0: none).",
    )

    @property
    def requests_per_second(self) -> float:
        return self.messages_per_second

    def rate_limit_name(self) -> str | None:
        """The Prefect rate limit of this channel account; None without a quota."""
        return f"dunning-{self.quota_key()}" if self.messages_per_second else None

    def quota_key(self) -> str:
        """What the quota is per (an SMTP account, a WhatsApp number)."""
        raise NotImplementedError

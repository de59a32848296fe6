"""Plan the sweep: evaluate the ladder for all invoices at once."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.ledger import LedgerDatabase
from dunning.channels import TwilioFacts, WhatsAppFacts
from dunning.plan import plan
from dunning.policy import Policy, Window
from tasks._logging import task_logger


@task(name="plan-actions", cache_policy=NO_CACHE)
def plan_actions(
    invoices: pd.DataFrame,
    policy: Policy,
    ledger: LedgerDatabase,
    now: datetime,
    window: Window | None = None,
    channels: tuple[str, ...] = ("email",),
    sms_opt_in_countries: tuple[str, ...] = (),
) -> pd.DataFrame:
    """The next action (or the reason for none) of every invoice, vectorized.

    One task run for the whole portfolio, not one per invoice: 100k invoices plan in about
    a second. `channels` are the channels configured for the run: with "whatsapp" the
    ledger's WhatsApp opt-ins and invalid numbers are read for the channel choice (with
    "sms" or "voice", the SMS opt-ins, required in `sms_opt_in_countries`, and the numbers
    Twilio refused). With the
    policy's `risk_model`, every invoice is scored first (`p_late`, shown in the plan) so
    that risk segments apply.

    Example:
        ```python
        planned = plan_actions(result.invoices, policy, ledger, now=datetime.now(UTC))
        planned[planned.skip_reason.isna()][["invoice", "stage", "send_at"]]
        ```
    """
    led = ledger.get_ledger()
    if policy.risk_model:
        from dunning.risk import score_for_planning

        p_late = score_for_planning(invoices, policy.risk_model, led.url)
        invoices = invoices.assign(p_late=p_late)
        task_logger().info("risk: %d invoices scored", int(p_late.notna().sum()))
    planned = plan(
        invoices,
        policy,
        now,
        led.planning_state(),
        window=window,
        channels_available=frozenset(channels),
        whatsapp=WhatsAppFacts.from_ledger(led) if "whatsapp" in channels else None,
        twilio=TwilioFacts.from_ledger(led, frozenset(sms_opt_in_countries))
        if {"sms", "voice"} & set(channels)
        else None,
    )
    acting = planned["skip_reason"].isna()
    task_logger().info(
        "planned %d actions for %d invoices; by channel: %s; fell back: %d; skipped: %s",
        int(acting.sum()),
        len(planned),
        planned.loc[acting, "channels"].value_counts().to_dict(),
        int((planned["channel_note"] != "").sum()),
        planned["skip_reason"].value_counts().to_dict(),
    )
    return planned

"""Publish the sweep's report as Prefect artifacts."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from dunning.summary import SweepSummary, to_markdown

MAX_TABLE_ROWS = 500


@task(name="publish-summary", cache_policy=NO_CACHE)
def publish_summary(summary: SweepSummary) -> None:
    """Markdown summary (sent, skipped by reason, failed, quarantined) and a table of actions.

    Both appear in the flow run's Artifacts tab; the keyed versions (`dunning-sweep-summary`,
    `dunning-sweep-actions`) also keep a history across runs in the Artifacts page.
    """
    create_markdown_artifact(
        key="dunning-sweep-summary",
        markdown=to_markdown(summary),
        description="Dunning sweep: sent, skipped with reason, failed, quarantined rows",
    )
    rows = [
        {k: a[k] for k in ("invoice", "stage", "channel", "status", "reason", "recipient")}
        for a in summary.actions[:MAX_TABLE_ROWS]
    ]
    if rows:
        create_table_artifact(
            key="dunning-sweep-actions",
            table=rows,
            description=f"Actions of this sweep (first {len(rows)} of {len(summary.actions)})",
        )

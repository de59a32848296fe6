"""The report of one sweep: what was sent, skipped and why, failed, deferred, quarantined."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from dunning.action import Outcome
from dunning.exports import markdown_text
from dunning.importers import describe_quarantine
from dunning.ledger import SyncReport


@dataclass
class SweepSummary:
    """Counts and rows of one sweep, ready for an artifact or a JSON answer.

    `actions` are the outcomes in their JSON form (`Outcome.to_dict`).
    """

    now: str
    invoices: int
    quarantined_rows: int
    sent: int = 0
    tasks: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    sync: dict[str, int] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[str] = field(default_factory=list)
    next_send_at: str | None = None
    crm: dict[str, Any] = field(default_factory=dict)
    #: What this sweep cost in Prefect: task runs for its actions (one per action, or per
    #: batch of customers above the sweep's `max_task_runs`) and the events it emitted.
    task_runs: int = 0
    prefect_events: int = 0

    def counts(self) -> dict[str, Any]:
        return {
            "invoices": self.invoices,
            "sent": self.sent,
            "tasks": self.tasks,
            "failed": self.failed,
            "deferred": self.deferred,
            "skipped": self.skipped,
            "quarantined_rows": self.quarantined_rows,
            "next_send_at": self.next_send_at,
            "sync": self.sync,
            "crm": self.crm,
        }


def summarize(
    planned: pd.DataFrame,
    deferred: pd.DataFrame,
    outcomes: list[Outcome],
    quarantine: pd.DataFrame,
    sync: SyncReport | None,
    now: datetime,
) -> SweepSummary:
    """Combine the plan's skips with the outcome of every action attempted."""
    skipped = Counter(planned["skip_reason"].dropna())
    by_status = Counter(o.status for o in outcomes)
    for o in outcomes:
        if o.status == "skipped":
            skipped[o.reason] += 1
    summary = SweepSummary(
        now=now.isoformat(),
        invoices=len(planned),
        quarantined_rows=int(quarantine["row"].nunique()) if len(quarantine) else 0,
        sent=by_status["sent"],
        tasks=by_status["task"],
        failed=by_status["failed"],
        deferred=len(deferred),
        skipped=dict(sorted(skipped.items())),
        sync=dict(vars(sync)) if sync else {},
        actions=[o.to_dict() for o in outcomes],
        quarantine=describe_quarantine(quarantine),
        next_send_at=deferred["send_at"].min().isoformat() if len(deferred) else None,
    )
    return summary


def to_markdown(s: SweepSummary, *, max_rows: int = 200) -> str:
    """The sweep report as markdown (the flow run's artifact)."""
    lines = [
        f"# Dunning sweep at {s.now}",
        "",
        "| sent | human tasks | failed | deferred (window not open) | skipped | quarantined rows |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {s.sent} | {s.tasks} | {s.failed} | {s.deferred} | {sum(s.skipped.values())} "
        f"| {s.quarantined_rows} |",
        "",
        f"{s.invoices} invoices evaluated.",
    ]
    if s.next_send_at:
        lines.append(f"Next deferred message due at {s.next_send_at}.")
    if s.crm:
        c = s.crm
        line = (
            f"**CRM:** {c.get('crm', '?')}: {c.get('delivered', 0)} delivered, "
            f"{c.get('failed', 0)} refused, {c.get('pending', 0)} pending"
        )
        if c.get("error"):
            line += f" (not reachable: {_cell(c['error'])}; the next run delivers them)"
        lines += ["", line + "."]
    if s.prefect_events:
        lines += [
            "",
            f"**Prefect:** {s.task_runs:,} task runs for {len(s.actions):,} actions, "
            f"{s.prefect_events:,} events.",
        ]
    if s.sync:
        lines += [
            "",
            "**Changes at the source:** "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in s.sync.items()),
        ]
    if s.skipped:
        lines += ["", "## Skipped, by reason", "", "| reason | invoices |", "|---|---:|"]
        lines += [f"| {_cell(reason)} | {n} |" for reason, n in s.skipped.items()]
    failed = [a for a in s.actions if a["status"] == "failed"]
    if failed:
        lines += ["", "## Failed", "", "| invoice | stage | reason |", "|---|---|---|"]
        lines += [
            f"| {_cell(a['invoice'])} | {_cell(a['stage'])} | {_cell(a['reason'])} |"
            for a in failed[:max_rows]
        ]
    if s.quarantine:
        lines += ["", f"## Quarantined rows ({s.quarantined_rows})", ""]
        lines += [f"- {_cell(q)}" for q in s.quarantine[:max_rows]]
        if len(s.quarantine) > max_rows:
            lines.append(f"- ... and {len(s.quarantine) - max_rows} more problems")
    return "\n".join(lines) + "\n"


def table_chunks(
    rows: list[dict[str, Any]], *, max_rows: int, max_bytes: int
) -> list[list[dict[str, Any]]]:
    """`rows` cut into consecutive chunks of at most `max_rows` rows and `max_bytes` bytes of
    JSON each (one table artifact per chunk: Prefect refuses a request over 5 MiB).

    Raises:
        ValueError: one row alone is larger than `max_bytes`.
    """
    chunks: list[list[dict[str, Any]]] = []
    chunk: list[dict[str, Any]] = []
    size = 2  # the list's brackets
    for row in rows:
        row_size = len(json.dumps(row, default=str).encode()) + 2  # and its ", "
        if row_size + 2 > max_bytes:
            raise ValueError(f"one action's row is {row_size:,} bytes, over {max_bytes:,}")
        if chunk and (len(chunk) >= max_rows or size + row_size > max_bytes):
            chunks.append(chunk)
            chunk, size = [], 2
        chunk.append(row)
        size += row_size
    if chunk:
        chunks.append(chunk)
    return chunks


def _cell(text: object) -> str:
    # Invoice numbers, reasons and problems come from the source: shown literally, never
    # as an image, link or HTML in the artifact (`dunning.exports.markdown_text`).
    return markdown_text(text)

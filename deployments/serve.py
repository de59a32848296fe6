"""Serve the dunning deployments from one process (local running, the demo).

`python -m deployments.serve` creates/updates the deployments on the Prefect server in
`PREFECT_API_URL` and runs their flow runs here until stopped (SIGTERM pauses them cleanly).

- `dunning-sweep`: cron 09:00 on business days (Monday-Friday) in `DUNNING_TIMEZONE`
  (default Europe/Madrid); public holidays are handled by the ladder, per customer country.
- `dunning-invoice`: no schedule; run it for one invoice from the UI or `run_deployment`.
"""

from __future__ import annotations

import os

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from flows.sweep import dunning_invoice, dunning_sweep

SWEEP_CRON = os.environ.get("DUNNING_SWEEP_CRON", "0 9 * * 1-5")


def deployments(timezone: str | None = None) -> list[RunnerDeployment]:
    """The deployments, with the sweep's schedule in `timezone`."""
    tz = timezone or os.environ.get("DUNNING_TIMEZONE", "Europe/Madrid")
    return [
        dunning_sweep.to_deployment(
            name="dunning-sweep",
            schedule=Cron(SWEEP_CRON, timezone=tz),
            description=f"Daily dunning sweep, {SWEEP_CRON} ({tz}).",
            tags=["dunning"],
        ),
        dunning_invoice.to_deployment(
            name="dunning-invoice",
            description="The dunning loop for one invoice, on demand.",
            tags=["dunning"],
        ),
    ]


def main() -> None:
    serve(*deployments(), limit=4)


if __name__ == "__main__":
    main()

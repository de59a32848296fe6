"""Serve the deployments of `prefect.yaml` from one process (local running, the demo).

`prefect.yaml` is the one list of deployments. `prefect deploy --all` sends it to a work pool;
`python -m deployments.serve` reads the same file and serves exactly its deployments (names,
flows, descriptions, tags, parameters, schedules with their timezones, triggers) against the
server in `PREFECT_API_URL`, running their flow runs here until stopped. The YAML is the
source rather than a Python list that generates it because it is the file Prefect's tooling
and documentation send a user to edit; a generated copy would be edited by hand and drift.

What a process cannot take from the YAML is the work pool and its pull steps: a served flow
runs in this process, from this checkout. For the machine it runs on, the settings
(`dunning.settings`: the `DUNNING_*` variables, else the `.env` of the working directory)
are laid over what the YAML declares:

- `DUNNING_TIMEZONE`: the timezone of every cron schedule (the YAML says Europe/Madrid).
- `DUNNING_SWEEP_CRON`: the cron of `dunning-sweep` (the YAML: 09:00 Monday-Friday).
- `DUNNING_REPLIES_EVERY`: seconds between `process-replies` runs (the YAML: 300).
- `DUNNING_REPLIES_MAILBOX`: its `mailbox` parameter; empty processes only the inbox the
  webhook receiver fills (the demo has no mailbox).
- `DUNNING_REPLIES=0`: leaves `process-replies` out.
- `DUNNING_REPORT_TO`: the `recipients` of `portfolio-report` (comma-separated).

The CRM and the policy (`DUNNING_CRM`, `DUNNING_POLICY`) and, when a deployment leaves it
empty, the report's recipients are read by the flows themselves when they run, so that
deployments made by `prefect deploy` take them from the worker's settings too.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentTriggerTypes
from prefect.schedules import Cron, Interval, RRule, Schedule
from pydantic import TypeAdapter

from dunning.settings import settings

#: The deployments' one definition, beside this package.
PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"

_TRIGGER = TypeAdapter(DeploymentTriggerTypes)
#: Keys of a schedule in prefect.yaml this module turns into a Prefect schedule.
_SCHEDULE_KEYS = {"cron", "interval", "rrule", "timezone", "active", "parameters", "slug"}
_SCHEDULE_KEYS |= {"day_or", "anchor_date"}


def declared(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    """The `deployments` of a prefect.yaml, as written (YAML anchors and merges resolved)."""
    return yaml.safe_load(path.read_text())["deployments"]


def deployments(timezone: str | None = None, path: Path = PREFECT_YAML) -> list[RunnerDeployment]:
    """Every deployment of `path`, ready to serve, with this machine's settings laid over
    (see the module's docstring); `timezone` overrides `DUNNING_TIMEZONE`."""
    return [_runner(spec) for spec in _overridden(declared(path), timezone)]


def _overridden(specs: list[dict[str, Any]], timezone: str | None) -> list[dict[str, Any]]:
    """The specs with the settings laid over (the specs are not changed)."""
    current = settings()
    tz = timezone or current.timezone
    result = []
    for spec in specs:
        name = spec["name"]
        if name == "process-replies" and not current.replies:
            continue
        params = dict(spec.get("parameters") or {})
        schedules = [dict(s) for s in spec.get("schedules") or []]
        for schedule in schedules:
            if tz and "cron" in schedule:
                schedule["timezone"] = tz
            if name == "dunning-sweep" and "cron" in schedule and current.sweep_cron:
                schedule["cron"] = current.sweep_cron
            if name == "process-replies" and "interval" in schedule and current.replies_every:
                schedule["interval"] = current.replies_every
        if name == "process-replies" and current.replies_mailbox is not None:
            params["mailbox"] = current.replies_mailbox or None
        if name == "portfolio-report" and current.report_to:
            params["recipients"] = current.report_to
        result.append(spec | {"parameters": params, "schedules": schedules})
    return result


def _runner(spec: dict[str, Any]) -> RunnerDeployment:
    """A served deployment from one entry of prefect.yaml."""
    name = spec["name"]
    triggers = [
        _TRIGGER.validate_python({"name": f"{name}__automation_{i}"} | trigger)
        for i, trigger in enumerate(spec.get("triggers") or [], start=1)
    ]
    return _flow(spec["entrypoint"]).to_deployment(
        name=name,
        description=spec.get("description"),
        tags=spec.get("tags"),
        parameters=spec.get("parameters") or {},
        schedules=[_schedule(s) for s in spec.get("schedules") or []],
        triggers=triggers,
    )


def _flow(entrypoint: str) -> Flow:
    """The flow of an entrypoint such as `flows/sweep.py:dunning_sweep`, imported as its
    module (`flows.sweep`), the same module the rest of the process uses."""
    file, _, attribute = entrypoint.partition(":")
    module = importlib.import_module(".".join(Path(file).with_suffix("").parts))
    return getattr(module, attribute)


def _schedule(spec: dict[str, Any]) -> Schedule:
    """A Prefect schedule from a prefect.yaml schedule (cron, interval in seconds, or rrule)."""
    unknown = set(spec) - _SCHEDULE_KEYS
    if unknown:  # served deployments must not silently differ from deployed ones
        raise ValueError(f"schedule keys {sorted(unknown)} are not served: {spec}")
    common = {
        "timezone": spec.get("timezone"),
        "active": spec.get("active", True),
        "parameters": spec.get("parameters"),
        "slug": spec.get("slug"),
    }
    if "cron" in spec:
        return Cron(spec["cron"], day_or=spec.get("day_or", True), **common)
    if "interval" in spec:
        anchor = spec.get("anchor_date")
        if isinstance(anchor, str):
            anchor = datetime.fromisoformat(anchor)
        return Interval(spec["interval"], anchor_date=anchor, **common)
    if "rrule" in spec:
        return RRule(spec["rrule"], **common)
    raise ValueError(f"a schedule needs cron, interval or rrule: {spec}")


def main() -> None:
    serve(*deployments(), limit=4)


if __name__ == "__main__":
    main()

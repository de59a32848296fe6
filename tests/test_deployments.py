"""One list of deployments: `deployments/serve.py` serves exactly what `prefect.yaml` declares.

The decisive test deploys prefect.yaml with Prefect's own `prefect deploy --all`, reads what
the server holds, then applies the served deployments over the same names and checks the
server holds the same thing: schedules (with timezones), parameters, triggers, descriptions,
tags and entrypoints."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

from deployments.serve import PREFECT_YAML, declared, deployments

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = (
    "DUNNING_TIMEZONE",
    "DUNNING_SWEEP_CRON",
    "DUNNING_REPLIES_EVERY",
    "DUNNING_REPLIES_MAILBOX",
    "DUNNING_REPLIES",
    "DUNNING_REPORT_TO",
)


@pytest.fixture
def no_overrides(monkeypatch):
    for name in OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _schedule(schedule: Any) -> dict[str, Any]:
    """A schedule as comparable data; an interval's anchor is the moment it was created."""
    data = schedule.schedule.model_dump(mode="json", exclude={"anchor_date"})
    return data | {"active": schedule.active, "parameters": schedule.parameters or {}}


def test_every_declared_deployment_is_served_as_declared(no_overrides):
    specs = {spec["name"]: spec for spec in declared()}
    served = {d.name: d for d in deployments()}
    assert list(served) == list(specs)
    assert {"dunning-sweep", "dunning-sweep-sharded", "process-replies"} <= set(served)
    for name, spec in specs.items():
        d = served[name]
        assert d.entrypoint == spec["entrypoint"], name
        assert d.parameters == (spec.get("parameters") or {}), name
        assert d.description == spec["description"] and d.tags == spec["tags"], name
        wanted = spec.get("schedules") or []
        assert len(d.schedules) == len(wanted), name
        for got, want in zip(d.schedules, wanted, strict=True):
            if "cron" in want:
                assert got.schedule.cron == want["cron"]
                assert got.schedule.timezone == want["timezone"]
            else:
                assert got.schedule.interval.total_seconds() == want["interval"]
            assert got.active == want["active"]
        triggers = spec.get("triggers") or []
        assert [t.expect for t in d.triggers] == [set(t["expect"]) for t in triggers], name
        assert [t.parameters for t in d.triggers] == [t["parameters"] for t in triggers], name
    # What the report's source and the sharded sweep declare is served (they had drifted).
    assert served["portfolio-report"].parameters["source"] == "default"
    assert served["dunning-sweep-sharded"].parameters["shards"] == 2


def test_this_machines_overrides(no_overrides):
    no_overrides.setenv("DUNNING_TIMEZONE", "America/Mexico_City")
    no_overrides.setenv("DUNNING_SWEEP_CRON", "30 7 * * *")
    no_overrides.setenv("DUNNING_REPLIES_EVERY", "60")
    no_overrides.setenv("DUNNING_REPLIES_MAILBOX", "")
    no_overrides.setenv("DUNNING_REPORT_TO", "cfo@acme.example")
    served = {d.name: d for d in deployments()}
    sweep = served["dunning-sweep"].schedules[0].schedule
    assert (sweep.cron, sweep.timezone) == ("30 7 * * *", "America/Mexico_City")
    assert served["portfolio-report"].schedules[0].schedule.timezone == "America/Mexico_City"
    assert served["portfolio-report"].parameters["recipients"] == "cfo@acme.example"
    replies = served["process-replies"]
    assert replies.schedules[0].schedule.interval.total_seconds() == 60
    assert replies.parameters["mailbox"] is None
    # An explicit timezone wins over the variable; the file itself is never changed.
    assert deployments(timezone="Asia/Tokyo")[0].schedules[0].schedule.timezone == "Asia/Tokyo"
    assert declared()[0]["schedules"][0]["timezone"] == "Europe/Madrid"
    no_overrides.setenv("DUNNING_REPLIES", "0")
    assert "process-replies" not in {d.name for d in deployments()}


def test_a_schedule_the_server_could_not_serve_as_declared_is_refused(tmp_path, no_overrides):
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    spec["deployments"][0]["schedules"][0]["max_active_runs"] = 3
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match="max_active_runs"):
        deployments(path=path)


def _held(client, names: list[str]) -> dict[str, dict[str, Any]]:
    """What the server holds for each deployment, as comparable data."""
    flow_names = {d.name: d.flow_name for d in deployments()}
    held = {}
    for spec_name in names:
        d = client.read_deployment_by_name(f"{flow_names[spec_name]}/{spec_name}")
        automations = client.read_resource_related_automations(f"prefect.deployment.{d.id}")
        held[spec_name] = {
            "id": d.id,
            "entrypoint": d.entrypoint,
            "description": d.description,
            "tags": sorted(d.tags),
            "parameters": d.parameters,
            "schedules": [_schedule(s) for s in d.schedules],
            "triggers": sorted(
                (
                    a.name,
                    a.enabled,
                    sorted(a.trigger.expect),
                    a.trigger.match.model_dump(mode="json"),
                    a.actions[0].parameters,
                )
                for a in automations
            ),
        }
    return held


def test_served_deployments_are_what_prefect_deploy_makes_of_prefect_yaml(
    prefect_api, no_overrides
):
    pool = yaml.safe_load(PREFECT_YAML.read_text())["definitions"]["work_pool"]["name"]
    env = os.environ | {"PREFECT_API_URL": prefect_api, "DUNNING_HOME": str(ROOT)}
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    deployed = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
    names = [spec["name"] for spec in declared()]
    with get_client(sync_client=True) as client:
        by_prefect_deploy = _held(client, names)
        for held in by_prefect_deploy.values():  # so that nothing below is left from them
            client.delete_deployment(held.pop("id"))
        for d in deployments():
            d.apply()
        by_serve = _held(client, names)
    assert by_prefect_deploy["dunning-sweep"]["schedules"][0]["timezone"] == "Europe/Madrid"
    assert len(by_prefect_deploy["dunning-invoice"]["triggers"]) == 1
    assert len(by_serve) == 6
    for name in names:
        by_serve[name].pop("id")
        assert by_serve[name] == by_prefect_deploy[name], name

"""A HubSpot portal: CRM search on contacts/companies, notes and tasks created with
associations, record updates. Shapes from
developers.hubspot.com/docs/api-reference/crm-notes-v3/guide and .../api/crm/tasks."""

from __future__ import annotations

import itertools
from typing import Any

from tests.connectors.fakeapi import FakeApi, Request, Response

ASSOCIATION_TO = {202: "contacts", 190: "companies", 204: "contacts", 192: "companies"}


class FakeHubSpot(FakeApi):
    def __init__(self, *, token: str = "pat-eu1-0000-secret") -> None:
        super().__init__()
        self.token = token
        self.objects: dict[str, dict[str, dict[str, Any]]] = {
            "contacts": {},
            "companies": {},
            "notes": {},
            "tasks": {},
        }
        self.company_properties = {
            "name",
            "domain",
            "erp_customer_id",
            "hubspot_owner_id",
            "dunning_status",
        }
        self._ids = itertools.count(5001)

    def add(self, object_type: str, **properties: Any) -> str:
        oid = str(next(self._ids))
        self.objects[object_type][oid] = {"id": oid, "properties": properties, "associations": []}
        return oid

    def notes(self) -> list[dict[str, Any]]:
        return list(self.objects["notes"].values())

    def tasks(self) -> list[dict[str, Any]]:
        return list(self.objects["tasks"].values())

    def route(self, req: Request) -> Response:
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return Response(
                401,
                {
                    "status": "error",
                    "message": "Authentication credentials not found.",
                    "correlationId": "4ac1f5a2-0000",
                    "category": "INVALID_AUTHENTICATION",
                },
            )
        parts = req.path.strip("/").split("/")  # crm v3 objects <type> [search|<id>]
        if parts[:3] != ["crm", "v3", "objects"] or len(parts) < 4:
            return Response(404, {"status": "error", "message": "not found"})
        object_type = parts[3]
        if len(parts) == 5 and parts[4] == "search" and req.method == "POST":
            return Response(200, self._search(object_type, req.json()))
        if len(parts) == 4 and req.method == "POST":
            return self._create(object_type, req.json())
        if len(parts) == 5 and req.method == "PATCH":
            record = self.objects[object_type].get(parts[4])
            if record is None:
                return Response(404, {"status": "error", "message": "Object not found"})
            props = req.json()["properties"]
            unknown = set(props) - self.company_properties
            if object_type == "companies" and unknown:
                return Response(
                    400,
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": f"Property {sorted(unknown)} does not exist",
                    },
                )
            record["properties"].update(props)
            return Response(200, record)
        return Response(405, {"status": "error", "message": "method not allowed"})

    def _search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        (group,) = body["filterGroups"]
        results = [
            r
            for r in self.objects[object_type].values()
            if all(
                f["operator"] == "EQ"
                and str(r["properties"].get(f["propertyName"], "")).lower()
                == str(f["value"]).lower()
                for f in group["filters"]
            )
        ]
        return {
            "total": len(results),
            "results": [
                {"id": r["id"], "properties": r["properties"], "archived": False}
                for r in results[: body.get("limit", 10)]
            ],
        }

    def _create(self, object_type: str, body: dict[str, Any]) -> Response:
        props = body.get("properties") or {}
        if "hs_timestamp" not in props:
            return Response(
                400,
                {
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": "Property hs_timestamp is required",
                },
            )
        for assoc in body.get("associations", []):
            (kind,) = assoc["types"]
            target = ASSOCIATION_TO.get(kind["associationTypeId"])
            if target is None or assoc["to"]["id"] not in self.objects[target]:
                return Response(
                    400,
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": f"invalid association {assoc}",
                    },
                )
        oid = self.add(object_type, **props)
        self.objects[object_type][oid]["associations"] = [
            (ASSOCIATION_TO[a["types"][0]["associationTypeId"]], a["to"]["id"])
            for a in body.get("associations", [])
        ]
        return Response(
            201,
            {
                "id": oid,
                "properties": props,
                "archived": False,
                "createdAt": "2026-12-09T09:00:00.000Z",
            },
        )

"""HubSpot CRM v3: notes and tasks on the customer's contact/company, and its status.

See developers.hubspot.com/docs/api-reference/crm-notes-v3/guide. Notes
(`POST /crm/v3/objects/notes`) and tasks (`POST /crm/v3/objects/tasks`) are created with
their associations in the same request.
The records they attach to are found with the CRM search API
(`POST /crm/v3/objects/{contacts|companies}/search`): the contact by the invoice's email,
the company by a company property holding our customer id (e.g. a custom property
`erp_customer_id`), when one is configured. The customer's status is a property of the
company (or of the contact when there is no company), set with
`PATCH /crm/v3/objects/{type}/{id}`.
"""

from __future__ import annotations

import html
from datetime import UTC, date, datetime
from typing import Any

from dunning.connectors.http import HttpClient
from dunning.crm import CrmRejected, entry_text
from dunning.ledger.models import CrmEntry

#: HubSpot-defined association type ids (note/task -> contact/company).
ASSOCIATION_TYPES: dict[tuple[str, str], int] = {
    ("notes", "contacts"): 202,
    ("notes", "companies"): 190,
    ("tasks", "contacts"): 204,
    ("tasks", "companies"): 192,
}
PRIORITIES = ("LOW", "MEDIUM", "HIGH")
TASK_TYPES = ("TODO", "CALL", "EMAIL")


class HubSpotSink:
    """Deliver CRM entries to one HubSpot account.

    Args:
        http: client with `Authorization: Bearer <private app token>`.
        company_id_property: company property that holds our customer id; empty to attach
            to contacts only.
        status_property: property set to the customer's status (must exist in HubSpot).
        owner_ids: HubSpot owner id per assignee: a person's email
            (`ana@acme.example`: "64492917") or a role (`manager`); a task whose role is
            `account_owner` otherwise goes to the owner of the company, then of the contact.
        default_owner_id: owner of tasks no rule above assigns.
    """

    crm_name = "hubspot"

    def __init__(
        self,
        http: HttpClient,
        *,
        company_id_property: str = "",
        status_property: str = "dunning_status",
        owner_ids: dict[str, str] | None = None,
        default_owner_id: str = "",
    ) -> None:
        self.http = http
        self.company_id_property = company_id_property
        self.status_property = status_property
        self.owner_ids = owner_ids or {}
        self.default_owner_id = default_owner_id
        self._found: dict[tuple[str, str, str], dict[str, Any] | None] = {}

    def deliver(self, entry: CrmEntry) -> str:
        """Create the note or task, or set the status; the HubSpot id."""
        p = entry.payload or {}
        contact = self.find("contacts", "email", _first_email(p.get("email")))
        company = (
            self.find("companies", self.company_id_property, entry.customer_id)
            if self.company_id_property
            else None
        )
        if contact is None and company is None:
            raise CrmRejected(
                f"HubSpot has no contact with email {p.get('email') or '(none)'!r}"
                + (
                    f" and no company with {self.company_id_property} = {entry.customer_id!r}"
                    if self.company_id_property
                    else ""
                )
                + f" to attach the {entry.kind} of invoice {entry.invoice_number} to; create "
                "it in HubSpot, then re-queue the failed entries"
            )
        targets = [("contacts", contact), ("companies", company)]
        if entry.kind == "status":
            kind, record = ("companies", company) if company else ("contacts", contact)
            assert record is not None
            self.http.patch_json(
                f"/crm/v3/objects/{kind}/{record['id']}",
                {"properties": {self.status_property: p.get("status", "")}},
            )
            return f"{kind}/{record['id']}"
        if entry.kind == "note":
            body = {
                "properties": {
                    "hs_timestamp": _millis(p.get("at")),
                    "hs_note_body": _html(entry_text(entry)),
                },
                "associations": _associations("notes", targets),
            }
            return str(self.http.post_json("/crm/v3/objects/notes", body)["id"])
        properties = {
            # HubSpot shows a task due on the day of hs_timestamp in the portal's timezone:
            # noon UTC is the same calendar day from UTC-11 to UTC+11.
            "hs_timestamp": _noon_utc(p.get("due_on")),
            "hs_task_subject": str(p.get("title") or "")[:250],
            "hs_task_body": _html(entry_text(entry)),
            "hs_task_status": "NOT_STARTED",
            "hs_task_priority": p.get("priority") if p.get("priority") in PRIORITIES else "MEDIUM",
            "hs_task_type": p.get("task_type") if p.get("task_type") in TASK_TYPES else "TODO",
        }
        owner = self._owner(
            str(p.get("assignee") or ""), company, contact, str(p.get("role") or "")
        )
        if owner:
            properties["hubspot_owner_id"] = owner
        body = {"properties": properties, "associations": _associations("tasks", targets)}
        return str(self.http.post_json("/crm/v3/objects/tasks", body)["id"])

    def find(self, object_type: str, prop: str, value: str) -> dict[str, Any] | None:
        """The first record whose `prop` equals `value` (cached per client), or None."""
        if not value:
            return None
        key = (object_type, prop, value)
        if key not in self._found:
            answer = self.http.post_json(
                f"/crm/v3/objects/{object_type}/search",
                {
                    "filterGroups": [
                        {"filters": [{"propertyName": prop, "operator": "EQ", "value": value}]}
                    ],
                    "properties": [prop, "hubspot_owner_id"],
                    "limit": 1,
                },
            )
            results = answer.get("results") or []
            self._found[key] = results[0] if results else None
        return self._found[key]

    def _owner(
        self,
        assignee: str,
        company: dict[str, Any] | None,
        contact: dict[str, Any] | None,
        role: str = "",
    ) -> str:
        # `assignee` is the person's email once resolved (`owner_ids` may map it), `role`
        # the policy's account_owner/manager it was resolved from.
        for who in (assignee, role):
            if who in self.owner_ids:
                return self.owner_ids[who]
        if "account_owner" in (assignee, role):
            for record in (company, contact):
                owner = ((record or {}).get("properties") or {}).get("hubspot_owner_id")
                if owner:
                    return str(owner)
        return self.default_owner_id


def _associations(
    from_type: str, targets: list[tuple[str, dict[str, Any] | None]]
) -> list[dict[str, Any]]:
    return [
        {
            "to": {"id": str(record["id"])},
            "types": [
                {
                    "associationCategory": "HUBSPOT_DEFINED",
                    "associationTypeId": ASSOCIATION_TYPES[(from_type, to_type)],
                }
            ],
        }
        for to_type, record in targets
        if record is not None
    ]


def _first_email(value: Any) -> str:
    """The first address of an email cell that may list several ("a@x; b@x")."""
    text = str(value or "").replace(",", ";")
    return text.split(";")[0].strip()


def _html(text: str) -> str:
    return "<p>" + html.escape(text).replace("\n", "<br>") + "</p>"


def _millis(at: Any) -> str:
    """An ISO time (now when missing) as Unix milliseconds, which HubSpot takes for hs_timestamp."""
    try:
        moment = datetime.fromisoformat(str(at))
    except ValueError:
        moment = datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return str(int(moment.timestamp() * 1000))


def _noon_utc(due_on: Any) -> str:
    try:
        day = date.fromisoformat(str(due_on))
    except ValueError:
        day = datetime.now(UTC).date()
    return f"{day.isoformat()}T12:00:00.000Z"

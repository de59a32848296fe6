"""The desk's words in Spanish and English, and how a request picks its language.

The language comes from the `desk_lang` cookie (set by the language links), else from the
browser's Accept-Language, else Spanish. Templates call `t("key")`.
"""

from __future__ import annotations

LANGS = ("es", "en")
DEFAULT_LANG = "es"
LOCALES = {"es": "es_ES", "en": "en_US"}

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "desk": "Collections desk",
        "login": "Log in",
        "logout": "Log out",
        "email": "Email",
        "password": "Password",
        "bad_login": "Wrong email or password.",
        "tasks": "My tasks",
        "portfolio": "Portfolio",
        "search": "Search",
        "search_hint": "Customer, invoice number, email or phone",
        "no_results": "Nothing found.",
        "no_tasks": "No open tasks.",
        "due": "Due",
        "task": "Task",
        "customer": "Customer",
        "invoice": "Invoice",
        "amount": "Amount due",
        "currencies": "currencies",
        "message": "Message",
        "assignee": "Assignee",
        "all": "All",
        "filter": "Filter",
        "next": "Next",
        "previous": "Previous",
        "close_task": "Close task",
        "outcome": "Outcome",
        "outcome_promise": "Called - promise to pay on the date",
        "outcome_dispute": "Dispute opened (give the reason)",
        "outcome_paid": "Paid (customer says so)",
        "outcome_no_answer": "No answer - retry on the date",
        "date": "Date",
        "reason": "Reason",
        "note": "Note",
        "save": "Save",
        "closed": "Task closed",
        "invoices": "Invoices",
        "stage": "Stage",
        "status": "Status",
        "due_date": "Due date",
        "timeline": "Timeline",
        "pauses": "Active pauses",
        "no_pauses": "Reminders are running.",
        "pause": "Pause reminders",
        "resume": "Resume reminders",
        "scope": "For",
        "whole_customer": "The whole customer",
        "until": "Until (optional)",
        "promises": "Promises",
        "open_tasks": "Tasks",
        "risk": "Risk score",
        "no_risk": "No risk score yet.",
        "delivery": "Delivery",
        "intent": "Intent",
        "subject": "Subject",
        "by": "by",
        "forbidden": "You cannot see this.",
        "not_found": "Not found.",
        "headline": "Headline figures",
        "receivables": "Receivables",
        "overdue": "Overdue",
        "dso": "DSO (countback)",
        "promises_kept": "Promises kept",
        "disputes_open": "Disputes open",
        "tasks_open": "Tasks open",
        "prefect_runs": "Flow runs in the Prefect UI",
        "currency": "Currency",
        "customer_status": "Customer status",
        "phone": "Phone",
        "kind": "Kind",
        "paused": "Reminders paused",
        "resumed": "Reminders resumed",
    },
    "es": {
        "desk": "Mesa de cobros",
        "login": "Entrar",
        "logout": "Salir",
        "email": "Correo",
        "password": "Contraseña",
        "bad_login": "Correo o contraseña incorrectos.",
        "tasks": "Mis tareas",
        "portfolio": "Cartera",
        "search": "Buscar",
        "search_hint": "Cliente, número de factura, correo o teléfono",
        "no_results": "Sin resultados.",
        "no_tasks": "No hay tareas abiertas.",
        "due": "Vence",
        "task": "Tarea",
        "customer": "Cliente",
        "invoice": "Factura",
        "amount": "Importe pendiente",
        "currencies": "monedas",
        "message": "Mensaje",
        "assignee": "Asignada a",
        "all": "Todas",
        "filter": "Filtrar",
        "next": "Siguiente",
        "previous": "Anterior",
        "close_task": "Cerrar tarea",
        "outcome": "Resultado",
        "outcome_promise": "Llamado - promete pagar en la fecha",
        "outcome_dispute": "Disputa abierta (indique el motivo)",
        "outcome_paid": "Pagado (según el cliente)",
        "outcome_no_answer": "No contesta - reintentar en la fecha",
        "date": "Fecha",
        "reason": "Motivo",
        "note": "Nota",
        "save": "Guardar",
        "closed": "Tarea cerrada",
        "invoices": "Facturas",
        "stage": "Etapa",
        "status": "Estado",
        "due_date": "Vencimiento",
        "timeline": "Historial",
        "pauses": "Pausas activas",
        "no_pauses": "Los recordatorios están activos.",
        "pause": "Pausar recordatorios",
        "resume": "Reanudar recordatorios",
        "scope": "Para",
        "whole_customer": "Todo el cliente",
        "until": "Hasta (opcional)",
        "promises": "Promesas",
        "open_tasks": "Tareas",
        "risk": "Riesgo",
        "no_risk": "Sin puntuación de riesgo.",
        "delivery": "Entrega",
        "intent": "Intención",
        "subject": "Asunto",
        "by": "por",
        "forbidden": "No puede ver esta página.",
        "not_found": "No encontrado.",
        "headline": "Cifras principales",
        "receivables": "Pendiente de cobro",
        "overdue": "Vencido",
        "dso": "DSO (countback)",
        "promises_kept": "Promesas cumplidas",
        "disputes_open": "Disputas abiertas",
        "tasks_open": "Tareas abiertas",
        "prefect_runs": "Ejecuciones en la interfaz de Prefect",
        "currency": "Moneda",
        "customer_status": "Estado del cliente",
        "phone": "Teléfono",
        "kind": "Tipo",
        "paused": "Recordatorios pausados",
        "resumed": "Recordatorios reanudados",
    },
}


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the cookie if valid, else the first supported Accept-Language."""
    if cookie in LANGS:
        return cookie
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGS:
            return code
    return DEFAULT_LANG


def translator(lang: str):  # noqa: ANN201
    """`t(key)` for the language; an unknown key shows itself (visible, never a crash)."""
    table = MESSAGES.get(lang, MESSAGES[DEFAULT_LANG])

    def t(key: str) -> str:
        return table.get(key, key)

    return t

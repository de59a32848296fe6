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
        "my_customers": "My customers",
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
        "draft": "Drafted answer",
        "draft_hint": (
            "Edit the text, then approve to send it in the customer's thread, or discard it."
        ),
        "draft_sources": "Quoted from the knowledge base",
        "draft_no_answer": "The knowledge base has no answer: the draft says a person will answer.",
        "draft_approve": "Approve and send",
        "draft_discard": "Discard",
        "draft_state": "Draft",
        "draft_in_imap": "Also saved in the mailbox's Drafts folder.",
        "draft_no_mailer": (
            "This desk has no email channel: start it with --channel to send drafts."
        ),
        "draft_in_doubt": (
            "In doubt: this answer was approved but nobody recorded whether the mail server "
            "took it. Check the Sent folder (or ask the customer) before deciding."
        ),
        "draft_sending": "Being sent: wait a few minutes and reload.",
        "draft_mark_sent": "It is in the Sent folder: mark as sent",
        "draft_confirm_resend": (
            "I checked: it is not in the Sent folder. I understand the customer may "
            "receive this answer twice."
        ),
        "draft_send_again": "Send again",
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
        "attachments": "Attachments",
        "attach": "Attach",
        "attach_file": "Attach a file",
        "attach_hint": "PDF, PNG, JPEG, plain text, XLSX or DOCX; at most (MB):",
        "no_attachments": "No attachments.",
        "attachment_added": "File attached",
        "attachment_refused": "The file was not attached.",
        "file": "File",
        "size": "Size",
        "uploaded_by": "Uploaded by",
        "headline": "Headline figures",
        "receivables": "Receivables",
        "overdue": "Overdue",
        "dso": "DSO (countback)",
        "promises_kept": "Promises kept",
        "disputes_open": "Disputes open",
        "tasks_open": "Tasks open",
        "prefect_runs": "Flow runs in the Prefect UI",
        "flow_run": "Flow run in Prefect",
        "currency": "Currency",
        "customer_status": "Customer status",
        "phone": "Phone",
        "kind": "Kind",
        "paused": "Reminders paused",
        "resumed": "Reminders resumed",
        "login_locked": "Too many failed logins. Try again in",
        "bad_request": "This request is not valid.",
        "security": "Security",
        "failed_logins": "Failed logins (last 24 hours)",
        "by_account": "By account",
        "by_address": "By address",
        "latest_failures": "Latest failures",
        "failures": "Failures",
        "latest": "Latest",
        "address": "Address",
        "when": "When",
        "locked_now": "Locked now",
        "none": "None.",
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
        "my_customers": "Mis clientes",
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
        "draft": "Respuesta redactada",
        "draft_hint": (
            "Edite el texto y apruébelo para enviarlo en el hilo del cliente, o descártelo."
        ),
        "draft_sources": "Citado de la base de conocimiento",
        "draft_no_answer": (
            "La base de conocimiento no tiene la "
            "respuesta: el borrador dice que responderá una persona."
        ),
        "draft_approve": "Aprobar y enviar",
        "draft_discard": "Descartar",
        "draft_state": "Borrador",
        "draft_in_imap": "También guardado en la carpeta Borradores del buzón.",
        "draft_no_mailer": (
            "Este escritorio no tiene canal de "
            "correo: inícielo con --channel para enviar borradores."
        ),
        "draft_in_doubt": (
            "En duda: esta respuesta se aprobó pero nadie registró si el servidor de correo "
            "la aceptó. Revise la carpeta Enviados (o pregunte al cliente) antes de decidir."
        ),
        "draft_sending": "Enviándose: espere unos minutos y recargue.",
        "draft_mark_sent": "Está en Enviados: marcar como enviada",
        "draft_confirm_resend": (
            "Lo he revisado: no está en Enviados. Entiendo que el cliente puede "
            "recibir esta respuesta dos veces."
        ),
        "draft_send_again": "Enviar de nuevo",
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
        "attachments": "Adjuntos",
        "attach": "Adjuntar",
        "attach_file": "Adjuntar un archivo",
        "attach_hint": "PDF, PNG, JPEG, texto, XLSX o DOCX; como máximo (MB):",
        "no_attachments": "Sin adjuntos.",
        "attachment_added": "Archivo adjuntado",
        "attachment_refused": "No se ha adjuntado el archivo.",
        "file": "Archivo",
        "size": "Tamaño",
        "uploaded_by": "Subido por",
        "headline": "Cifras principales",
        "receivables": "Pendiente de cobro",
        "overdue": "Vencido",
        "dso": "DSO (countback)",
        "promises_kept": "Promesas cumplidas",
        "disputes_open": "Disputas abiertas",
        "tasks_open": "Tareas abiertas",
        "prefect_runs": "Ejecuciones en la interfaz de Prefect",
        "flow_run": "Ejecución en Prefect",
        "currency": "Moneda",
        "customer_status": "Estado del cliente",
        "phone": "Teléfono",
        "kind": "Tipo",
        "paused": "Recordatorios pausados",
        "resumed": "Recordatorios reanudados",
        "login_locked": "Demasiados intentos fallidos. Vuelva a intentarlo en",
        "bad_request": "Esta petición no es válida.",
        "security": "Seguridad",
        "failed_logins": "Accesos fallidos (últimas 24 horas)",
        "by_account": "Por cuenta",
        "by_address": "Por dirección",
        "latest_failures": "Últimos fallos",
        "failures": "Fallos",
        "latest": "Último",
        "address": "Dirección",
        "when": "Cuándo",
        "locked_now": "Bloqueada ahora",
        "none": "Ninguno.",
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

"""When a failed task run is worth retrying."""

from __future__ import annotations

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from dunning.smtp import NotSent


def retry_if_temporary(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry only what a retry can fix: a mail server that did not take the message now, a
    WhatsApp rate limit or outage (`RateLimited`/`TemporaryError` are temporary `NotSent`).
    A permanent refusal or an invalid token fails at once."""
    try:
        state.result()
    except NotSent as exc:
        return not exc.permanent
    except Exception:
        return False
    return False

"""`DEMO_ONESHOT=1 make demo` on its own ports and folder: exits 0 and leaves mail."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from apps.mailsink import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_demo_oneshot_exits_zero_and_fills_the_outbox(tmp_path):
    env = os.environ | {
        "DEMO_ONESHOT": "1",
        "DEMO_VAR": str(tmp_path / "var"),
        "DEMO_PREFECT_PORT": str(free_port()),
        "DEMO_SMTP_PORT": str(free_port()),
        "DEMO_WEBHOOK_PORT": str(free_port()),
        "DEMO_DESK_PORT": str(free_port()),
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run(
        ["make", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    emls = list((tmp_path / "var" / "outbox").glob("*.eml"))
    assert len(emls) > 50
    assert "Prefect UI" in proc.stdout and "ledger.db" in proc.stdout
    assert "Completed" in proc.stdout
    assert "Collections desk" in proc.stdout and "Webhooks" in proc.stdout

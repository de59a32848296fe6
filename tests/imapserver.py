"""A real IMAP server for tests: Debian's dovecot, run from a private config on loopback.

Each instance has its own directory, users file, maildirs and ports (plain IMAP and IMAPS
with a self-signed certificate), so tests never touch a system mailbox. `make test` and
`.ci/run` install the `dovecot-imapd` package.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from apps.mailsink import free_port

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
# IDLE clients hear of new mail through inotify; when a full test run has used up the
# machine's inotify instances (128), dovecot falls back to polling, every 30 s by default.
mailbox_idle_check_interval = 1 secs
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
  }}
}}
"""


@dataclass
class Dovecot:
    """A running dovecot; `users` maps login to password."""

    root: Path
    port: int
    ssl_port: int
    users: dict[str, str] = field(default_factory=dict)

    @property
    def ca_file(self) -> str:
        return str(self.root / "cert.pem")

    def add_user(self, login: str, password: str) -> None:
        self.users[login] = password
        lines = [f"{u}:{{PLAIN}}{p}" for u, p in self.users.items()]
        (self.root / "users").write_text("\n".join(lines) + "\n")
        # dovecot re-reads the users file at most once per clock second: a login in the
        # second of an earlier lookup would not know the new user ("Authentication failed",
        # every other login when users are added back to back). Wait for the next second.
        time.sleep(1.02 - time.time() % 1)

    def stop(self) -> None:
        subprocess.run(["dovecot", "-c", str(self.root / "dovecot.conf"), "stop"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_dovecot() -> Dovecot:
    """Start a private dovecot on free loopback ports; fails loudly if it is not installed."""
    if not shutil.which("dovecot"):
        raise RuntimeError(
            "dovecot is not installed: `apt-get install dovecot-imapd` (make test does it)"
        )
    root = Path(tempfile.mkdtemp(prefix="dunning-dovecot-"))
    # Mail processes run as nobody: the directory must be reachable and the maildirs theirs.
    root.chmod(0o755)
    nobody = pwd.getpwnam("nobody")
    (root / "mail").mkdir()
    os.chown(root / "mail", nobody.pw_uid, nobody.pw_gid)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(root / "key.pem"),
            "-out",
            str(root / "cert.pem"),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    server = Dovecot(root=root, port=free_port(), ssl_port=free_port())
    (root / "dovecot.conf").write_text(
        CONFIG.format(
            root=root,
            uid=nobody.pw_uid,
            gid=nobody.pw_gid,
            port=server.port,
            ssl_port=server.ssl_port,
        )
    )
    server.add_user("cobros@empresa.example", "imap-secret")
    subprocess.run(["dovecot", "-c", str(root / "dovecot.conf")], check=True)
    _wait_for_port(server.port, root / "dovecot.log")
    return server


def _wait_for_port(port: int, log: Path, timeout: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"dovecot did not listen on {port}: {log.read_text()[-2000:]}")

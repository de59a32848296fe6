"""`make demo` starts and stops cleanly (deployments/demo.py): SIGTERM stops everything it
started, a taken port is one line naming the variable that moves it, and processes of an
earlier demo are refused (and stopped by `--stop`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from apps.mailsink import free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO = [sys.executable, "-m", "deployments.demo"]
PORT_VARIABLES = ("DEMO_PREFECT_PORT", "DEMO_SMTP_PORT", "DEMO_WEBHOOK_PORT", "DEMO_DESK_PORT")

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")


def _demo_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = os.environ | {"DEMO_VAR": str(tmp_path / "var"), "PREFECT_HOME": str(tmp_path / "p")}
    env |= {variable: str(free_port()) for variable in PORT_VARIABLES}
    env.pop("PREFECT_API_URL", None)
    env.pop("DEMO_ONESHOT", None)
    return env | extra


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free(port: int) -> bool:
    """Bindable as a server binds it (SO_REUSEADDR: TIME_WAIT leftovers do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _marked(mark: str) -> list[int]:
    """Pids of the processes whose environment carries `mark`: the demo and everything it
    started, however deep (each child inherits the environment)."""
    needle = f"DEMO_LIFECYCLE_MARK={mark}".encode()
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                pids.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return pids


def _described(pids: list[int]) -> list[str]:
    """`pid command line` of each pid still running, for a failure message."""
    lines = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        lines.append(f"{pid} {cmdline.decode(errors='replace')[:120]}")
    return lines


def test_sigterm_stops_every_process_and_frees_every_port(tmp_path):
    mark = uuid.uuid4().hex
    env = _demo_env(tmp_path, DEMO_LIFECYCLE_MARK=mark)
    ports = [int(env[variable]) for variable in PORT_VARIABLES]
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        demo = subprocess.Popen(
            DEMO, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 400
        while not all(_answers(port) for port in ports):
            assert demo.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "ports never answered:\n" + log.read_text()
            time.sleep(1)
        children = set(_marked(mark)) - {demo.pid}
        assert len(children) >= 5  # Prefect server, mail sink, serve, webhooks, desk

        demo.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        while time.monotonic() - stopped < 10:
            if demo.poll() is not None and all(map(_free, ports)) and not _marked(mark):
                break
            time.sleep(0.2)
        assert demo.poll() == 0, (_described(_marked(mark)), log.read_text()[-3000:])
        assert [port for port in ports if not _free(port)] == []
        assert _described(_marked(mark)) == []
        assert not (tmp_path / "var" / "demo" / "demo.pid").exists()
    finally:
        for pid in _marked(mark):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_a_signal_while_starting_stops_what_was_started(tmp_path, sig):
    """Ctrl-C and a closed terminal, as soon as the Prefect server answers."""
    mark = uuid.uuid4().hex
    env = _demo_env(tmp_path, DEMO_LIFECYCLE_MARK=mark)
    prefect_port = int(env["DEMO_PREFECT_PORT"])
    demo = subprocess.Popen(
        DEMO,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not _answers(prefect_port):
            assert demo.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        assert len(_marked(mark)) >= 2  # the demo and its Prefect server
        demo.send_signal(sig)
        assert demo.wait(timeout=10) == 0
        assert _free(prefect_port)
        assert _described(_marked(mark)) == []
    finally:
        for pid in _marked(mark):
            os.kill(pid, signal.SIGKILL)


def test_a_taken_port_is_one_line_naming_its_variable(tmp_path):
    env = _demo_env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env["DEMO_DESK_PORT"] = str(port)
        proc = subprocess.run(DEMO, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout == ""  # nothing was started
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"port {port} is taken" in lines[0] and "DEMO_DESK_PORT=" in lines[0]


def test_processes_of_an_earlier_demo_are_refused_and_stopped_with_stop(tmp_path):
    env = _demo_env(tmp_path)
    # What a demo killed with SIGKILL leaves: its pid file and a child in its own group.
    leftover = subprocess.Popen(["sleep", "300"], start_new_session=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    pidfile = tmp_path / "var" / "demo" / "demo.pid"
    pidfile.parent.mkdir(parents=True)
    pidfile.write_text(f'{{"demo": {gone.pid}, "children": [{leftover.pid}]}}\n')
    try:
        proc = subprocess.run(DEMO, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1
        assert f"process groups {leftover.pid}" in proc.stderr
        assert "-m deployments.demo --stop" in proc.stderr
        assert leftover.poll() is None  # refused, touched nothing

        stop = subprocess.run(
            [*DEMO, "--stop"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert stop.returncode == 0, stop.stderr
        assert leftover.wait(timeout=10) == -signal.SIGTERM
        assert not pidfile.exists()
    finally:
        if leftover.poll() is None:
            leftover.kill()

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
from fake_root import pythonpath

from devstack._proc import free_port


def test_a_service_served_by_devstack_serve_answers_shows_uvicorns_command_line_and_stops_on_sigterm():
    port = free_port()
    env = {**os.environ, "PYTHONPATH": pythonpath(), "DATABASE_URL": "postgresql://x@127.0.0.1:9/none"}
    proc = subprocess.Popen([sys.executable, "-m", "devstack.serve", "devstack_demo.app:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "never served"
                time.sleep(0.05)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        assert r.headers["date"].endswith("GMT")  # uvicorn's date header, refreshed by the quiet main loop
        # Found by its command line as if started by uvicorn's CLI (ps, pgrep -f, chaos scripts).
        cmdline = open(f"/proc/{proc.pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        assert f"-m uvicorn devstack_demo.app:create_app --factory --host 127.0.0.1 --port {port}" in cmdline
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGTERM  # as uvicorn does: stopped, then re-raises the signal
        assert b"Application shutdown complete" in out  # a graceful stop: lifespan shutdown ran
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

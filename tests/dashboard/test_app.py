"""The web app: the page lists the demos, and `whybox dashboard` serves it on localhost."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from streamlit.testing.v1 import AppTest

from model_zoo import demos

APP = Path(__file__).parents[2] / "dashboard" / "app.py"
WHYBOX = str(Path(sys.executable).with_name("whybox"))


def test_page_lists_every_demo():
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    shown = str([t.value for t in at.table])
    for name in [*demos.DEMO_MODELS, *demos.DEMO_DATA]:
        assert f"demo:{name}" in shown


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_command_serves_a_page():
    port = free_port()
    server = subprocess.Popen(
        [WHYBOX, "dashboard", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://localhost:{port}/_stcore/health", timeout=2
                ) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://localhost:{port}/", timeout=5) as page:
            assert page.status == 200 and b'<div id="root">' in page.read()
    finally:
        server.terminate()
        server.wait(timeout=20)

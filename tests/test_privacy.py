"""Offline switches and the network guard (figurine/privacy.py), plus the tests/netcheck helpers.

No test sends a packet outside the machine: blocked attempts raise before connect(), and
the strace test below checks exactly that at the syscall level.
"""

import asyncio
import http.server
import os
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path

import pytest

from figurine.errors import NetworkBlockedError
from figurine.privacy import OFFLINE_ENV, NetworkGuard, go_offline, install_network_guard
from tests.netcheck import (network_namespace_reason, outbound_connections, run_offline_traced,
                            run_without_network, strace_reason)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def guard():
    g = install_network_guard()
    yield g
    g.uninstall()


def clean_env(tmp_path) -> dict:
    """Environment for a child Python: no offline switches inherited, empty HF cache."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_ENV}
    env["HF_HOME"] = str(tmp_path / "hf")
    env["PYTHONPATH"] = str(REPO)
    return env


# --- the guard in this process --------------------------------------------------------------

def test_urllib_to_an_external_name_is_blocked_and_names_the_caller(guard):
    with pytest.raises(NetworkBlockedError) as e:
        urllib.request.urlopen("http://example.com/", timeout=5)
    msg = str(e.value)
    assert "figurine is offline" in msg
    assert "example.com:80" in msg
    assert "test_privacy.test_urllib_to_an_external_name_is_blocked_and_names_the_caller" in msg
    assert e.value.exit_code == 5
    assert [(a.action, a.host, a.port) for a in guard.attempts] == [("connect", "example.com", 80)]


@pytest.mark.parametrize("ip", ["10.0.0.1", "1.1.1.1"])
def test_raw_socket_to_an_outside_address_is_blocked(guard, ip):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NetworkBlockedError, match=f"{ip}:443"):
            s.connect((ip, 443))
        with pytest.raises(NetworkBlockedError):
            s.connect_ex((ip, 443))
    finally:
        s.close()
    assert [a.host for a in guard.attempts] == [ip, ip]


def test_ipv6_udp_and_dns_lookups_are_blocked(guard):
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(NetworkBlockedError, match=r"2606:4700:4700::1111:443"):
            s6.connect(("2606:4700:4700::1111", 443))
        with pytest.raises(NetworkBlockedError, match="tried to send to 1.1.1.1:53"):
            udp.sendto(b"\0" * 12, ("1.1.1.1", 53))
    finally:
        s6.close()
        udp.close()
    # A DNS query would itself leave the machine: name lookups are refused before they start.
    with pytest.raises(NetworkBlockedError, match="tried to look up huggingface.co"):
        socket.getaddrinfo("huggingface.co", 443)
    with pytest.raises(NetworkBlockedError, match="tried to look up example.org"):
        socket.gethostbyname("example.org")
    assert len(guard.attempts) == 4


def test_asyncio_connections_go_through_the_guard(guard):
    async def open_it(host):
        await asyncio.open_connection(host, 80)

    with pytest.raises(NetworkBlockedError, match="10.0.0.1:80"):
        asyncio.run(open_it("10.0.0.1"))
    with pytest.raises(NetworkBlockedError, match="example.net"):
        asyncio.run(open_it("example.net"))


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from loopback"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_loopback_http_round_trip_and_unix_sockets_stay_allowed(guard):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        for host in ("127.0.0.1", "localhost"):
            with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as r:
                assert r.read() == b"hello from loopback"
    finally:
        server.shutdown()
        server.server_close()
    a, b = socket.socketpair(socket.AF_UNIX)
    a.sendall(b"ping")
    assert b.recv(4) == b"ping"
    a.close(), b.close()
    assert guard.attempts == []


def test_without_loopback_even_localhost_is_blocked():
    with NetworkGuard(allow_loopback=False) as g:
        with pytest.raises(NetworkBlockedError, match="127.0.0.1:9"):
            socket.create_connection(("127.0.0.1", 9), timeout=1)
    assert len(g.attempts) == 1


def test_uninstall_restores_the_socket_module():
    before = (socket.socket.connect, socket.create_connection, socket.getaddrinfo)
    g = install_network_guard()
    assert socket.getaddrinfo is not before[2]
    assert install_network_guard() is g  # installing twice is harmless
    g.uninstall()
    assert (socket.socket.connect, socket.create_connection, socket.getaddrinfo) == before


# --- offline switches -------------------------------------------------------------------------

def test_go_offline_sets_the_switches_the_libraries_read(tmp_path):
    code = textwrap.dedent("""
        import os
        from figurine.privacy import go_offline
        assert go_offline() == []          # nothing imported yet: nothing to patch late
        assert go_offline() == []          # idempotent
        import huggingface_hub.constants as c
        print(c.HF_HUB_OFFLINE, c.HF_HUB_DISABLE_TELEMETRY, c.HF_HUB_DISABLE_IMPLICIT_TOKEN)
        for k in ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
                  "HF_HUB_DISABLE_TELEMETRY", "DO_NOT_TRACK", "GRADIO_ANALYTICS_ENABLED",
                  "DIFFUSERS_DISABLE_REMOTE_CODE", "ORT_DISABLE_TELEMETRY"]:
            print(k, os.environ[k])
    """)
    r = subprocess.run([sys.executable, "-c", code], env=clean_env(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "True True True"
    env = dict(line.split(" ", 1) for line in lines[1:])
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == "1"
    assert env["HF_HUB_DISABLE_TELEMETRY"] == env["DO_NOT_TRACK"] == "1"
    assert env["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert env["DIFFUSERS_DISABLE_REMOTE_CODE"] == env["ORT_DISABLE_TELEMETRY"] == "1"


def test_go_offline_after_import_patches_the_copied_constants(tmp_path):
    code = textwrap.dedent("""
        import huggingface_hub.constants as c
        assert c.HF_HUB_OFFLINE is False
        from figurine.privacy import go_offline
        print(go_offline())
        print(c.HF_HUB_OFFLINE, c.is_offline_mode())
    """)
    r = subprocess.run([sys.executable, "-c", code], env=clean_env(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    patched, state = r.stdout.splitlines()
    assert "huggingface_hub.constants.HF_HUB_OFFLINE" in patched
    assert state == "True True"


HF_DOWNLOAD = """
import sys
from figurine.privacy import go_offline, install_network_guard
if sys.argv[1] == "offline":
    go_offline()
guard = install_network_guard()
from huggingface_hub import hf_hub_download
try:
    hf_hub_download("stabilityai/stable-diffusion-xl-base-1.0", "model_index.json")
except Exception as e:
    print(type(e).__name__, "|", e)
print("attempts", len(guard.attempts))
"""


def test_hf_hub_download_without_switches_is_stopped_by_the_guard(tmp_path):
    r = subprocess.run([sys.executable, "-c", HF_DOWNLOAD, "guard-only"], env=clean_env(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("NetworkBlockedError | figurine is offline: huggingface_hub.")
    assert "huggingface.co:443" in first
    assert int(r.stdout.split("attempts ")[1]) >= 1


def test_hf_hub_download_with_switches_never_reaches_the_socket(tmp_path):
    r = subprocess.run([sys.executable, "-c", HF_DOWNLOAD, "offline"], env=clean_env(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "NetworkBlockedError" not in r.stdout  # huggingface_hub refused on its own
    assert "attempts 0" in r.stdout


# --- below Python: syscalls and network namespaces ---------------------------------------------

TRY_CONNECT = """
import socket, sys
if sys.argv[1] == "guarded":
    from figurine.privacy import install_network_guard
    install_network_guard()
s = socket.socket()
s.settimeout(0.3)
try:
    s.connect(("10.255.255.1", 443))
except BaseException as e:
    print(type(e).__name__)
"""


@pytest.mark.skipif(strace_reason() is not None, reason=str(strace_reason()))
def test_guard_raises_before_any_connect_syscall(tmp_path):
    env = clean_env(tmp_path)
    unguarded, _ = outbound_connections([sys.executable, "-c", TRY_CONNECT, "bare"], env=env, timeout=60)
    assert unguarded == ["connect 10.255.255.1:443"]  # the check sees a real attempt...
    guarded, _ = outbound_connections([sys.executable, "-c", TRY_CONNECT, "guarded"], env=env, timeout=60)
    assert guarded == []                               # ...and the guard leaves none


NS_PROBE = """
import socket, urllib.request, http.server, threading
s = socket.socket(); s.settimeout(2)
print("outside", s.connect_ex(("1.1.1.1", 80)))
srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=srv.serve_forever, daemon=True).start()
print("loopback", urllib.request.urlopen(f"http://127.0.0.1:{srv.server_address[1]}/").status)
"""


@pytest.mark.skipif(network_namespace_reason() is not None, reason=str(network_namespace_reason()))
def test_run_without_network_has_loopback_and_nothing_else(tmp_path):
    proc, why = run_without_network([sys.executable, "-c", NS_PROBE], cwd=tmp_path, timeout=60)
    assert why == "ok"
    assert proc.returncode == 0, proc.stderr
    out = dict(line.split() for line in proc.stdout.splitlines())
    assert out["outside"] == str(__import__("errno").ENETUNREACH)
    assert out["loopback"] == "200"


@pytest.mark.skipif(network_namespace_reason() is not None or strace_reason() is not None,
                    reason=f"{network_namespace_reason()}; {strace_reason()}")
def test_both_checks_in_one_run_see_an_attempt_the_namespace_stops(tmp_path):
    """run_offline_traced (the end-to-end make's wrapper): the namespace makes the connect fail,
    and strace, inside it, still reports that it was tried."""
    run = run_offline_traced([sys.executable, "-c", NS_PROBE], cwd=tmp_path, env=clean_env(tmp_path), timeout=60)
    assert run["unshared"] and run["proc"].returncode == 0, run["proc"].stderr
    out = dict(line.split() for line in run["proc"].stdout.splitlines())
    assert out["outside"] == str(__import__("errno").ENETUNREACH) and out["loopback"] == "200"
    assert run["outbound"] == ["connect 1.1.1.1:80"]


INSIGHTFACE_AUTO_DOWNLOAD = """
import sys
from figurine.privacy import go_offline, install_network_guard
go_offline()
guard = install_network_guard()
from insightface.app import FaceAnalysis
try:
    FaceAnalysis(name="buffalo_l", root=sys.argv[1])   # not a folder: insightface downloads
except Exception as e:
    print(type(e).__name__, "|", e)
print("attempts", [a.host for a in guard.attempts])
"""


def test_insightface_auto_download_is_stopped_and_named(tmp_path):
    """insightface has no offline switch; only the guard stands between a typo and a download."""
    r = subprocess.run([sys.executable, "-c", INSIGHTFACE_AUTO_DOWNLOAD, str(tmp_path / "if")],
                       env=clean_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if " | " in ln)
    assert line.startswith("NetworkBlockedError | figurine is offline: insightface.app.face_analysis.FaceAnalysis")
    assert "github.com:443" in line
    assert "attempts ['github.com']" in r.stdout

"""The web page (`figurine serve`): real servers on loopback, real HTTP, and Debian's Chromium.

One server (module fixture, 127.0.0.1, tiny weights) takes every request a user, an API client
(plain HTTP with httpx, as gradio_client speaks it) and an attacker could send: cross-origin
uploads and calls, another client's session hash and files, a photo that is not one. The browser
test drives the same server in headless Chromium: upload a drawn test photo, generate, re-pack
with a new name, check that the page never asked a host other than this machine for anything,
then close the tab. The last test stops that server and checks that nothing is left. One more
server: --listen with a token and a short idle time, started where a killed one left its files.
The browser test saves the screenshot the README shows (docs/web-ui.png).
CI installs the browser with scripts/install_test_browser.sh.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import urlopen

import httpx
import pytest

from figurine.web import redact_paths
from tests.conftest import ROOT, TINY_CONFIG
from tests.photos import make_face_photo

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "docs" / "web-ui.png"
SCREENSHOT_LIMIT = 500 * 1024
TOKEN = "test-token-" + "x7Q2" * 4
EVIL = "http://evil.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m figurine serve ...` in the background, its output collected line by line."""

    def __init__(self, *args, env: dict | None = None, tmpdir: Path | None = None):
        self.port = free_port()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        for name in ("GRADIO_SERVER_NAME", "FIGURINE_WEB_TOKEN"):
            if name not in (env or {}):
                full_env.pop(name, None)
        if tmpdir is not None:
            full_env["TMPDIR"] = str(tmpdir)
        self.tmpdir = tmpdir
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "figurine", "serve", "--port", str(self.port), *map(str, args)],
            cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith("figurine: serving on "):
                    return line.split("serving on ", 1)[1].split()[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"figurine serve did not start:\n{self.output}")

    def workspace(self) -> Path:
        found = list(self.tmpdir.glob("figurine-web-*"))
        assert len(found) == 1, "the server keeps its files in one temp workspace"
        return found[0]

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode


class Client:
    """An API client speaking Gradio's HTTP protocol the way its page and gradio_client do: the
    page (or /config) first, which sets the figurine-client cookie; uploads; queue/join and the
    queue/data event stream of its session hash."""

    def __init__(self, base: str, load_page: bool = True):
        self.http = httpx.Client(base_url=base, timeout=120)
        self.session_hash = secrets.token_hex(6)
        self.fns: dict[str, dict] = {}
        if load_page:
            self.load()

    def load(self) -> None:
        assert self.http.get("/").status_code == 200
        config = self.http.get("/config")
        assert config.status_code == 200, config.text
        self.fns = {d["api_name"]: d for d in config.json()["dependencies"]}

    def login(self, password: str) -> httpx.Response:
        return self.http.post("/login", data={"username": "anyone", "password": password})

    def upload(self, path: Path, **kwargs) -> httpx.Response:
        return self.http.post("/gradio_api/upload", files={"files": (path.name, path.read_bytes())}, **kwargs)

    def join(self, api_name: str, data: list, session_hash: str | None = None, **kwargs) -> httpx.Response:
        fn = self.fns[api_name]
        return self.http.post("/gradio_api/queue/join", json={
            "data": data, "event_data": None, "fn_index": fn["id"], "trigger_id": fn["targets"][0][0],
            "session_hash": session_hash or self.session_hash}, **kwargs)

    def call(self, api_name: str, data: list) -> dict:
        """Run one event; its process_completed message (output data or the error shown)."""
        joined = self.join(api_name, data)
        assert joined.status_code == 200, joined.text
        event_id = joined.json()["event_id"]
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}) as s:
            for line in s.iter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                        return msg
        raise AssertionError("the event stream ended without a result")

    @contextlib.contextmanager
    def tab(self):
        """The page's heartbeat connection, open while the tab is: a TCP connection of its own
        that closes when the tab closes, as a browser's does."""
        url = self.http.base_url
        cookies = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        with socket.create_connection((url.host, url.port), timeout=30) as beat:
            beat.sendall(f"GET /gradio_api/heartbeat/{self.session_hash} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
                         f"Cookie: {cookies}\r\n\r\n".encode())
            head = b""
            while b"ALIVE" not in head:
                chunk = beat.recv(4096)
                assert chunk, head
                head += chunk
            assert head.startswith(b"HTTP/1.1 200 "), head
            yield


def photo_input(path: str, name: str = "selfie.jpg") -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": name}


def generate_inputs(photo: dict, name: str = "Ada") -> list:
    # photo, name, tagline, pose, template, seed, candidates, 4 accessory boxes (tiny.toml)
    return [photo, name, "Engine Pilot", "wave", None, 0, 1, "", "", "", ""]


def wait_until(condition, timeout: float) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.2)
    return time.monotonic() - t0


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def listening_addresses(port: int) -> set[str]:
    """IPv4/IPv6 addresses with a socket in LISTEN state on `port`, read from /proc/net."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            addr, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:
                continue
            raw = bytes.fromhex(addr)
            if len(raw) == 4:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:  # four little-endian 32-bit words
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def is_loopback_url(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme in ("data", "blob", "about"):
        return True
    return parsed.hostname in ("127.0.0.1", "localhost", "::1")


def left_in(tmpdir: Path) -> list[str]:
    """What a server left in its TMPDIR (torch's compile cache aside)."""
    return sorted(str(p.relative_to(tmpdir)) for p in tmpdir.rglob("*")
                  if not p.relative_to(tmpdir).parts[0].startswith("torchinductor_"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_weights):
    """The loopback server every test below shares (defaults: no token, 15 minutes idle time)."""
    tmpdir = tmp_path_factory.mktemp("web-tmp")
    srv = Server("--weights", tiny_weights, "--config", TINY_CONFIG, tmpdir=tmpdir)
    srv.wait_ready()
    yield srv
    srv.stop()


# ---------------------------------------------------------------------------------------------
# Binding and origins


def test_serve_binds_loopback_only_and_page_loads_nothing_remote(server):
    url = server.wait_ready()
    assert url == f"http://127.0.0.1:{server.port}/"
    assert listening_addresses(server.port) == {"127.0.0.1"}
    with urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "figurine-client=" in response.headers["Set-Cookie"]
        assert "HttpOnly" in response.headers["Set-Cookie"] and "SameSite=Strict" in response.headers["Set-Cookie"]
        html = response.read().decode()
    assert "fonts.googleapis" not in html and "fonts.gstatic" not in html
    server.workspace()


def test_cross_origin_requests_are_refused_and_store_nothing(server, tmp_path):
    client = Client(server.base)
    photo = make_face_photo(tmp_path / "cross.jpg", seed=11)
    cache = server.workspace() / "cache"
    before = files_under(cache)
    same = {"Origin": server.base, "Sec-Fetch-Site": "same-origin"}
    refused = [
        client.upload(photo, headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}),  # a web page's fetch
        client.upload(photo, headers={"Origin": EVIL}),                                  # older browsers
        client.upload(photo, headers={"Origin": "null"}),                                # sandboxed frame, file://
        client.upload(photo, headers={"Origin": "http://localhost:8888", "Sec-Fetch-Site": "same-site"}),
        client.upload(photo, headers={"Referer": f"{EVIL}/page"}),
        client.upload(photo, headers={**same, "Host": f"evil.example:{server.port}",      # DNS rebinding
                                      "Origin": f"http://evil.example:{server.port}"}),
        client.join("generate", generate_inputs(None), headers={"Origin": EVIL}),
        client.http.get("/config", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}),
        client.http.get("/gradio_api/info", headers={"Origin": EVIL}),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert all(r.json()["detail"].startswith("figurine: ") for r in refused)
    assert files_under(cache) == before, "a refused upload stores nothing"

    # The page itself still opens from a link on another site; same-origin uploads work.
    nav = client.http.get("/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                        "Sec-Fetch-Dest": "document"})
    assert nav.status_code == 200
    ok = client.upload(photo, headers=same)
    assert ok.status_code == 200, ok.text
    assert Path(ok.json()[0]).read_bytes() == photo.read_bytes()


def test_sessions_are_kept_apart_and_deleted_when_the_tab_closes(server, tmp_path):
    alice, mallory = Client(server.base), Client(server.base)
    photo = make_face_photo(tmp_path / "alice.jpg", seed=21)
    with alice.tab():
        upload = alice.upload(photo).json()[0]
        result = alice.call("generate", generate_inputs(photo_input(upload)))
        assert result["success"], result
        figure = result["output"]["data"][0]["path"]
        session_folder = Path(figure).parent.parent
        own = alice.http.get(f"/gradio_api/file={figure}")
        assert own.status_code == 200 and own.content == Path(figure).read_bytes()
        assert own.headers["Cache-Control"] == "no-store"
        assert alice.http.get(f"/gradio_api/file={upload}").status_code == 200

        # Another client, with its own cookie and session hash, reaches none of it.
        assert mallory.http.get(f"/gradio_api/file={figure}").status_code == 403
        assert mallory.http.get(f"/gradio_api/file/{figure}").status_code == 403
        assert mallory.http.get(f"/gradio_api/file={upload}").status_code == 403
        assert mallory.join("repack", ["Mallory", "", None], session_hash=alice.session_hash).status_code == 403
        assert mallory.join("generate", generate_inputs(photo_input(upload))).status_code == 403
        assert mallory.http.get("/gradio_api/queue/data", params={"session_hash": alice.session_hash}).status_code == 403
        assert mallory.http.get("/gradio_api/deep_link", params={"session_hash": alice.session_hash}).status_code == 403
        assert mallory.http.get(f"/gradio_api/heartbeat/{alice.session_hash}").status_code == 403
        # Nor does a client without the cookie, even with Alice's session hash.
        anonymous = Client(server.base, load_page=False)
        anonymous.fns = alice.fns
        assert anonymous.upload(photo).status_code == 403
        assert anonymous.join("repack", ["Mallory", "", None], session_hash=alice.session_hash).status_code == 403
        assert anonymous.http.get(f"/gradio_api/file={figure}").status_code == 403

        # Alice's session is untouched: her re-pack works.
        again = alice.call("repack", ["Grace", "Engine Pilot", None])
        assert again["success"] and again["output"]["data"][2].startswith("Re-packed in "), again
        assert Path(figure).exists() and Path(upload).exists()
    # Her tab closed: her folder and photo go at once (Gradio's unload event).
    seconds = wait_until(lambda: not session_folder.exists() and not Path(upload).exists(), timeout=15)
    print(f"deleted {seconds:.1f} s after the tab closed")
    assert alice.http.get(f"/gradio_api/file={figure}").status_code == 403


def test_errors_show_no_server_paths(server, tmp_path):
    client = Client(server.base)
    notes = tmp_path / "holiday-notes.jpg"
    notes.write_text("not a picture")
    upload = client.upload(notes).json()[0]
    result = client.call("generate", generate_inputs(photo_input(upload, notes.name)))
    error = result["output"]["error"]
    assert not result["success"]
    assert error.startswith("holiday-notes.jpg is not an image"), error
    # No path: nothing like /tmp/... (the message's own "HEIC/HEIF" is not a path).
    assert re.search(r"(^|[\s(])/[\w.-]+/", error) is None and str(server.workspace()) not in error, error
    # The terminal keeps the full line.
    wait_until(lambda: any(upload in line for line in server.lines if line.startswith("figurine: error: ")), 10)


def test_redact_paths_leaves_file_names():
    roots = ["/tmp/figurine-web-ab12", "/home/alice"]
    assert redact_paths("/tmp/figurine-web-ab12/cache/f00/me.jpg: no face found", roots) == \
        "me.jpg: no face found"
    assert redact_paths("cannot read /home/alice/My Pictures/me.jpg (no such file)", roots) == \
        "cannot read My Pictures/me.jpg (no such file)"
    assert redact_paths("weights /data/w/sdxl/unet.safetensors: bad header; see https://example.org/x",
                        roots) == "weights unet.safetensors: bad header; see https://example.org/x"
    assert redact_paths(r"C:\Users\alice\me.jpg is not an image") == "me.jpg is not an image"
    assert redact_paths("the name must be 1 to 40 characters") == "the name must be 1 to 40 characters"


# ---------------------------------------------------------------------------------------------
# --listen: a token, a login; a short idle time


def test_serve_refuses_wider_address_without_listen(figurine_cli):
    r = figurine_cli("serve", "--config", TINY_CONFIG, env={"GRADIO_SERVER_NAME": "0.0.0.0"})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "figurine: error: GRADIO_SERVER_NAME=0.0.0.0 asks to serve beyond this computer; "
        "figurine serves on 127.0.0.1 unless you pass --listen HOST"]
    assert "Traceback" not in r.stdout + r.stderr
    r = figurine_cli("serve", "--host", "0.0.0.0")
    assert r.returncode == 2 and "unrecognized arguments: --host" in r.stderr


def test_listen_refuses_to_start_without_a_token(figurine_cli, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FIGURINE_WEB_TOKEN"}
    r = subprocess.run([sys.executable, "-m", "figurine", "serve", "--listen", "0.0.0.0", "--config", TINY_CONFIG],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "figurine: error: --listen 0.0.0.0 serves beyond this computer and needs a login token: set "
        "FIGURINE_WEB_TOKEN or pass --token-file FILE (at least 16 characters, e.g. from "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"]
    r = figurine_cli("serve", "--listen", "--config", TINY_CONFIG, env={"FIGURINE_WEB_TOKEN": "short"})
    assert r.returncode == 2 and "FIGURINE_WEB_TOKEN: the token must be at least 16 characters" in r.stderr
    r = figurine_cli("serve", "--listen", "--token-file", tmp_path, "--config", TINY_CONFIG)
    assert r.returncode == 2 and f"--token-file {tmp_path.name}: not a file" in r.stderr
    assert "Traceback" not in r.stderr


def killed_workspace(tmpdir: Path) -> Path:
    """The workspace a server leaves when it is killed with SIGKILL right after it made it."""
    code = ("import sys, time; from figurine.web import Workspace; "
            "print(Workspace(parent=sys.argv[1]).root, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmpdir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    root = Path(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (root / "server.pid").exists()
    return root


def test_listen_with_token_requires_login_and_idle_sessions_are_deleted(tmp_path, tiny_weights):
    idle = 3
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    (tmp_path / "tmp").mkdir()
    stale = killed_workspace(tmp_path / "tmp")
    server = Server("--weights", tiny_weights, "--config", TINY_CONFIG, "--listen", "0.0.0.0",
                    "--token-file", token_file, "--idle-timeout", idle, tmpdir=tmp_path / "tmp")
    try:
        server.wait_ready()
        assert not stale.exists(), "a killed server's workspace goes at the next start"
        assert listening_addresses(server.port) == {"0.0.0.0"}
        warnings = [line for line in server.lines if line.startswith("figurine: warning: serving on 0.0.0.0")]
        assert len(warnings) == 1, server.output

        # Without the login: the login page and its assets, nothing else.
        client = Client(server.base, load_page=False)
        page = client.http.get("/")
        assert page.status_code == 200
        assets = re.findall(r'(?:src|href)="\.?(/assets/[^"]+)"', page.text)
        assert assets and all(client.http.get(a).status_code == 200 for a in assets)
        photo = make_face_photo(tmp_path / "bob.jpg", seed=31)
        for response in (client.http.get("/config"), client.upload(photo),
                         client.http.post("/gradio_api/queue/join", json={"data": [], "session_hash": "x"}),
                         client.http.get("/gradio_api/heartbeat/x"),
                         client.http.get(f"/gradio_api/file={photo}")):
            assert response.status_code == 401, response.text
        assert client.login("not-the-token-at-all").status_code == 400
        assert client.login(TOKEN).status_code == 200
        client.load()

        # An API client (no tab to close): its session and photos go after `idle` seconds.
        unused = client.upload(photo).json()[0]
        notes = tmp_path / "notes.jpg"
        notes.write_text("not a picture")
        used = client.upload(notes).json()[0]
        result = client.call("generate", generate_inputs(photo_input(used, notes.name)))
        assert not result["success"] and result["output"]["error"].startswith("notes.jpg is not an image")
        sessions = server.workspace() / "cache" / "sessions"
        assert len(list(sessions.iterdir())) == 1 and Path(unused).exists() and Path(used).exists()
        seconds = wait_until(lambda: not any(sessions.iterdir()) and not Path(unused).exists()
                             and not Path(used).exists(), timeout=idle + 15)
        print(f"idle session and uploads deleted {seconds:.1f} s after the last event (idle {idle} s)")
        again = client.call("generate", generate_inputs(photo_input(used, notes.name)))
        assert again["output"]["error"].startswith("the photo is no longer on the server"), again
    finally:
        assert server.stop() == 0, server.output
    assert not left_in(tmp_path / "tmp"), "the workspace is deleted when the server stops"


# ---------------------------------------------------------------------------------------------
# The page in a real browser


@pytest.mark.browser
def test_page_generates_and_repacks_in_chromium(server, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (run scripts/install_test_browser.sh)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (test extra)")
    from PIL import Image

    photo = make_face_photo(tmp_path / "selfie.jpg")
    requests: list[str] = []
    url = server.wait_ready()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("request", lambda request: requests.append(request.url))
            page.set_default_timeout(90_000)
            page.goto(url)
            expect = sync_api.expect
            expect.set_options(timeout=90_000)

            # 1. Photo, name, tagline, one accessory; a pose picked from the gallery.
            page.locator("#figurine-photo input[type=file]").set_input_files(str(photo))
            expect(page.locator("#figurine-photo img")).to_be_visible()
            page.locator("#figurine-name input, #figurine-name textarea").fill("Ada Lovelace")
            page.locator("#figurine-tagline input, #figurine-tagline textarea").fill("Engine Pilot")
            page.get_by_text(re.compile(r"^Accessories")).click()
            page.locator("#figurine-accessory-0 input, #figurine-accessory-0 textarea").fill("brass gear")
            page.locator("#figurine-poses button.thumbnail-item", has_text="wave").click()
            expect(page.locator("#figurine-pose input:checked")).to_have_value("wave")

            # 2. Generate: the package, the energy line, the candidates with scores, downloads.
            page.locator("#figurine-generate").click()
            energy = page.locator("#figurine-energy textarea, #figurine-energy input")
            expect(energy).to_have_value(re.compile(r"^Energy: "))
            status = page.locator("#figurine-status textarea, #figurine-status input")
            expect(status).to_have_value(re.compile(r"^Generated in "))
            first = package_png(page)
            assert first.size == (1080, 1350)
            captions = page.locator("#figurine-candidates-gallery").inner_text()
            assert re.search(r"seed \d+: (identity -?\d\.\d{3}|no face found) · packaged", captions)
            names = re.sub(r"\s+", "", page.locator("#figurine-downloads").inner_text())
            for suffix in (".png", ".pdf", ".json"):
                assert f"ada-lovelace{suffix}" in names

            # 3. A new name: re-packed from the cache, the figure and accessory reused.
            page.locator("#figurine-name input, #figurine-name textarea").fill("Grace Hopper")
            page.locator("#figurine-repack").click()
            expect(status).to_have_value(re.compile(r"^Re-packed in .*reused: figure, detail, accessories"))
            expect(page.locator("#figurine-downloads")).to_contain_text("grace-hopper")
            second = package_png(page)
            assert second.size == first.size and second.tobytes() != first.tobytes()

            # 3b. The figure as a printable 3D model: preview, 3MF and STL for download.
            page.locator("#figurine-print3d").click()
            expect(page.locator("#figurine-print3d-preview img")).to_be_visible()
            expect(page.locator("#figurine-print3d-status textarea")).to_have_value(re.compile(r"relief: "))
            expect(page.locator("#figurine-print3d-downloads")).to_contain_text(re.compile(r"figure\s*\.3mf"))
            expect(page.locator("#figurine-print3d-downloads")).to_contain_text(re.compile(r"figure\s*\.stl"))

            save_screenshot(page, Image, tmp_path)

            # 4. An error is one readable line on the page, and the last result stays.
            page.locator("#figurine-name input, #figurine-name textarea").fill("")
            page.locator("#figurine-repack").click()
            toast = page.locator(".toast-body").first
            expect(toast).to_contain_text("name")
            assert "Traceback" not in toast.inner_text()
            expect(page.locator("#figurine-package img")).to_be_visible()

            # 5. The figure is this tab's only: another client gets 403 for its address.
            src = page.locator("#figurine-package img").get_attribute("src")
            figure = Path(unquote(src.split("file=", 1)[1]))
            assert figure.exists()
            assert Client(server.base).http.get(src).status_code == 403
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(f"server output:\n{server.output}\nscreenshot: {tmp_path / 'failure.png'}")
            raise
        # 6. Closing the tab deletes its photo, figure and run.
        page.close()
        seconds = wait_until(lambda: not figure.parent.parent.exists(), timeout=15)
        print(f"the tab's session folder was deleted {seconds:.1f} s after it closed")
        browser.close()
    remote = [u for u in requests if not is_loopback_url(u)]
    assert requests and not remote, f"the page asked other hosts for: {remote}"


def test_stopping_the_server_deletes_every_session_file(server, tmp_path):
    """Runs last: it stops the module's server."""
    client = Client(server.base)
    upload = client.upload(make_face_photo(tmp_path / "last.jpg", seed=41)).json()[0]
    refused = client.call("generate", generate_inputs(photo_input(upload), name=""))  # the session stays
    assert "name" in refused["output"]["error"]
    assert Path(upload).exists() and any((server.workspace() / "cache" / "sessions").iterdir())
    assert server.stop() == 0, server.output
    assert not left_in(server.tmpdir), "uploads and runs are deleted when the server stops"


def package_png(page):
    """The packaged image as the browser received it, decoded by Pillow."""
    from PIL import Image

    img = page.locator("#figurine-package img")
    src = img.get_attribute("src")
    body = page.request.get(src).body()
    return Image.open(io.BytesIO(body)).convert("RGB")


def save_screenshot(page, Image, tmp_path) -> None:
    """The page with its result, kept under SCREENSHOT_LIMIT (palette if needed). It goes to the
    test's temp folder; with FIGURINE_UPDATE_SCREENSHOT=1 to docs/web-ui.png, the README's picture."""
    target = SCREENSHOT if os.environ.get("FIGURINE_UPDATE_SCREENSHOT") == "1" else tmp_path / "web-ui.png"
    page.locator("#figurine-package img").scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    data = page.screenshot(full_page=True)
    image = Image.open(io.BytesIO(data)).convert("RGB")
    target.parent.mkdir(exist_ok=True)
    image.save(target, optimize=True)
    if target.stat().st_size > SCREENSHOT_LIMIT:
        image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    assert target.stat().st_size < SCREENSHOT_LIMIT

"""The web page (`figurine serve`), driven in Debian's headless Chromium against tiny weights.

The browser test starts the real server as a subprocess, uploads a drawn test photo, generates,
re-packs with a new name, and checks that the page never asked a host other than this machine
for anything. It saves the screenshot the README shows (docs/web-ui.png).
CI installs the browser with scripts/install_test_browser.sh.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import urlopen

import pytest

from tests.conftest import ROOT, TINY_CONFIG
from tests.photos import make_face_photo

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "docs" / "web-ui.png"
SCREENSHOT_LIMIT = 500 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m figurine serve ...` in the background, its output collected line by line."""

    def __init__(self, *args, env: dict | None = None, tmpdir: Path | None = None):
        self.port = free_port()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if "GRADIO_SERVER_NAME" not in (env or {}):
            full_env.pop("GRADIO_SERVER_NAME", None)
        if tmpdir is not None:
            full_env["TMPDIR"] = str(tmpdir)
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

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode


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


# ---------------------------------------------------------------------------------------------
# Binding


def test_serve_binds_loopback_only_and_page_loads_nothing_remote(tmp_path):
    server = Server("--config", TINY_CONFIG, tmpdir=tmp_path)
    try:
        url = server.wait_ready()
        assert url == f"http://127.0.0.1:{server.port}/"
        assert listening_addresses(server.port) == {"127.0.0.1"}
        with urlopen(url, timeout=10) as response:
            assert response.status == 200
            html = response.read().decode()
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html
        workspaces = list(tmp_path.glob("figurine-web-*"))
        assert len(workspaces) == 1, "the server keeps its files in one temp workspace"
    finally:
        rc = server.stop()
    assert rc == 0, server.output
    assert not list(tmp_path.glob("figurine-web-*")), "the workspace is deleted when the server stops"


def test_serve_refuses_wider_address_without_listen(figurine_cli):
    r = figurine_cli("serve", "--config", TINY_CONFIG, env={"GRADIO_SERVER_NAME": "0.0.0.0"})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "figurine: error: GRADIO_SERVER_NAME=0.0.0.0 asks to serve beyond this computer; "
        "figurine serves on 127.0.0.1 unless you pass --listen HOST"]
    assert "Traceback" not in r.stdout + r.stderr
    r = figurine_cli("serve", "--host", "0.0.0.0")
    assert r.returncode == 2 and "unrecognized arguments: --host" in r.stderr


def test_serve_listen_binds_wider_with_a_warning(tmp_path):
    server = Server("--config", TINY_CONFIG, "--listen", "0.0.0.0", tmpdir=tmp_path)
    try:
        server.wait_ready()
        assert listening_addresses(server.port) == {"0.0.0.0"}
        warnings = [line for line in server.lines if line.startswith("figurine: warning: serving on 0.0.0.0")]
        assert len(warnings) == 1, server.output
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# The page in a real browser


@pytest.mark.browser
def test_page_generates_and_repacks_in_chromium(tmp_path, tiny_weights):
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (run scripts/install_test_browser.sh)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (test extra)")
    from PIL import Image

    photo = make_face_photo(tmp_path / "selfie.jpg")
    (tmp_path / "tmp").mkdir()
    server = Server("--weights", tiny_weights, "--config", TINY_CONFIG, tmpdir=tmp_path / "tmp")
    requests: list[str] = []
    try:
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
                expect(status).to_have_value(re.compile(r"^Re-packed in .*reused: figure, accessories"))
                expect(page.locator("#figurine-downloads")).to_contain_text("grace-hopper")
                second = package_png(page)
                assert second.size == first.size and second.tobytes() != first.tobytes()

                save_screenshot(page, Image, tmp_path)

                # 4. An error is one readable line on the page, and the last result stays.
                page.locator("#figurine-name input, #figurine-name textarea").fill("")
                page.locator("#figurine-repack").click()
                toast = page.locator(".toast-body").first
                expect(toast).to_contain_text("name")
                assert "Traceback" not in toast.inner_text()
                expect(page.locator("#figurine-package img")).to_be_visible()
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                print(f"server output:\n{server.output}\nscreenshot: {tmp_path / 'failure.png'}")
                raise
            finally:
                browser.close()
    finally:
        server.stop()
    remote = [u for u in requests if not is_loopback_url(u)]
    assert requests and not remote, f"the page asked other hosts for: {remote}"
    left = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "tmp").rglob("*")
                  if not p.relative_to(tmp_path / "tmp").parts[0].startswith("torchinductor_"))  # torch's cache
    assert not left, f"uploads and runs are deleted when the server stops; left: {left[:10]}"


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

"""The local web page: the whole `figurine make` flow in a browser, served on 127.0.0.1 only.

    from figurine.config import load_config
    from figurine.web import serve
    serve(load_config(["configs/tiny.toml"], [], "/tmp/tiny-weights"), port=7860)  # Ctrl-C stops

What the page does (everything runs in this process, on this machine's GPU):

- photo from a file or the webcam; name, tagline, up to `accessories.max` accessories; a pose
  gallery drawn from the preset skeletons; a template gallery drawn from the real packaging code
  on an example figure; seed and number of candidates.
- Generate calls the server's one FigurinePipeline (models stay loaded between clicks) with a
  progress bar fed by its stage hook. The result shows the package, every candidate with its
  identity score, the energy line, what was reused, and downloads for the PNG, the print PDF
  and the run's JSON.
- Re-pack (also on Enter in the name/tagline boxes and on a template change) is the pipeline's
  `rerun` on the session's run directory with only the text and template changed: the figure and
  accessories come from the cache and only the box is drawn again.

Sessions and their files. A session is one page load (Gradio's session hash), bound at its
first request to the browser that made it: the `figurine-client` cookie (random, HttpOnly,
SameSite=Strict) that the server sets on its first answer. API clients must keep that cookie
too (gradio_client does). A session's files are its uploaded photo and one folder with an
unguessable name (its run directory and outputs). They are deleted:

- when its tab closes or reloads: the page's heartbeat connection closes and Gradio fires its
  unload event at once (a connection lost without closing counts when Gradio's next heartbeat
  write fails, or at the idle time below); if a run is in progress then, as soon as it ends;
- after IDLE_SECONDS (15 minutes; `figurine serve --idle-timeout SECONDS`) without an event from
  the session (Generate, Re-pack), checked every reap_every(idle) seconds (a quarter of the idle
  time, at most 30 s): this also covers API clients, which have no tab to close; an uploaded
  photo that no event used is deleted the same time after its upload;
- with the whole workspace when the server stops (Ctrl-C, SIGTERM, SIGHUP, or the interpreter
  exiting). A workspace left by a killed server (SIGKILL, power loss) is deleted by the next
  `figurine serve` that uses the same temp folder.

Privacy and safety, in the order `serve` sets them up:

1. `figurine.privacy.go_offline()` and the network guard (loopback allowed) before gradio is
   imported; Gradio's analytics and its browser-side run history are off, share=False.
2. One temporary workspace per server (`figurine-web-*` in the system temp folder, mode 0700):
   Gradio's upload/cache folder (GRADIO_TEMP_DIR) holds the uploads and, under sessions/, one
   folder per session; the photo is never written anywhere else.
3. Every request passes `Guard` (an ASGI middleware) before any Gradio route, answering
   403 and storing nothing when:
   - the Origin header (or, without one, the Referer) names another origin than the Host, or
     Sec-Fetch-Site is anything but same-origin/none: no web page the user visits can upload
     to or call this server (a link to the page itself, a top-level GET of /, still opens it);
   - on 127.0.0.1 the Host header is not a loopback name (DNS rebinding);
   - a request names a session hash (queue, heartbeat, stream, deep link) bound to another
     client, or has no client cookie; an upload has no client cookie;
   - a file route (/gradio_api/file=...) or an event's file input names a workspace file that
     is not the client's own (its uploads and its sessions' folders; the galleries' previews
     are public).
   With a token (`serve(token=...)`, required by `figurine serve --listen` beyond loopback)
   every route but the login page and its assets also needs Gradio's login (any user name, the
   token as password), else 401.
   Answers carry X-Frame-Options: DENY (no framing), and workspace files Cache-Control:
   no-store (the browser keeps no copy of the photo).
4. The page loads nothing from other hosts: a theme with system fonts only (Gradio's themes
   otherwise may fetch web fonts), and no external scripts.
5. One event at a time on the GPU (`queue(default_concurrency_limit=1)`; the page shows the
   queue position), uploads limited to MAX_UPLOAD, and every FigurineError shown as its one-line
   message with server paths reduced to file names (the full line goes to the terminal),
   never a stack trace; any other error is a short note on the page, its traceback in the
   terminal.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hmac
import inspect
import json
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from figurine.config import Config
from figurine.errors import FigurineError, InputError, NeedsInputError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MAX_UPLOAD = "25mb"  # a phone photo is a few MB; figurine.photo also checks pixels and bytes
IDLE_SECONDS = 15 * 60  # a session without an event for this long is deleted
CLIENT_COOKIE = "figurine-client"
MAX_JSON_BODY = 1 << 20  # event bodies are small: files travel through /upload
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue",
                "Arial", "sans-serif"]
SYSTEM_MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]
PREVIEW_SIZE = (216, 270)  # template thumbnails (the social package is 1080 x 1350)
POSE_SIZE = (150, 200)

# The pipeline's stage names as the progress bar shows them.
STAGE_LABELS = {
    "identity": "finding the face",
    "pose": "drawing the pose",
    "load": "loading the models",
    "generation": "generating the figure",
    "vae_decode": "decoding the picture",
    "identity_score": "scoring the likeness",
    "detail": "refining the face",
    "matte": "cutting out",
    "accessories": "generating the accessories",
    "packaging": "drawing the box",
}


def reap_every(idle: float) -> float:
    """How often the reaper looks for idle sessions: a quarter of the idle time, 0.5 to 30 s."""
    return min(30.0, max(0.5, idle / 4))


# ---------------------------------------------------------------------------------------------
# Workspace and sessions


def _real(path) -> Path:
    return Path(os.path.realpath(os.path.abspath(str(path))))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass
class Session:
    """One page load (Gradio session hash) of one client: its folder and the photos it used."""

    hash: str
    client: str
    folder: Path
    last_seen: float
    busy: int = 0          # events running now: never reaped while > 0
    closing: bool = False  # the tab closed during an event: deleted when the event ends
    last: bool = False     # a run succeeded: its run directory can be re-packed
    uploads: set[Path] = field(default_factory=set)

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"


@dataclass
class Upload:
    """A file Gradio stored for POST /gradio_api/upload: who uploaded it, which sessions use it."""

    owners: dict[str, float] = field(default_factory=dict)  # client -> time of its upload
    holders: set[str] = field(default_factory=set)          # session hashes that used it


class Workspace:
    """The server's temporary folder and the register of who owns what in it.

    root/cache is Gradio's upload and cache folder (GRADIO_TEMP_DIR); root/cache/sessions/<token>
    is one session's folder, inside Gradio's cache so that its outputs are served in place (not
    copied). The Guard middleware, the event handlers, the unload event and the reaper thread
    share this object; one lock guards the register.
    """

    def __init__(self, cfg: Config | None = None, parent: str | None = None, idle: float = IDLE_SECONDS,
                 token: str | None = None):
        sweep_stale_workspaces(Path(parent or tempfile.gettempdir()))
        self.root = Path(tempfile.mkdtemp(prefix="figurine-web-", dir=parent))  # mode 0700
        (self.root / "server.pid").write_text(f"{os.getpid()}\n")
        self.cache = self.root / "cache"
        self.sessions_dir = self.cache / "sessions"
        self.sessions_dir.mkdir(parents=True)
        self.real_root = _real(self.root)
        self.real_cache = _real(self.cache)
        self.idle = float(idle)
        self.token = token
        self.lock = threading.Lock()
        self.public: set[Path] = set()
        self.sessions: dict[str, Session] = {}
        self.bindings: dict[str, list] = {}  # session hash -> [client, last seen]
        self.uploads: dict[Path, Upload] = {}
        self.pipeline = None
        if cfg is not None:
            from figurine.pipeline import FigurinePipeline

            self.pipeline = FigurinePipeline(cfg)  # the models stay loaded between Generate clicks

    # -- what the Guard asks, per request --

    def mark_public(self) -> None:
        """Everything in the cache now (the galleries' previews, drawn before launch) is public."""
        with self.lock:
            self.public = {_real(p) for p in self.cache.rglob("*") if p.is_file()}

    def bind(self, session_hash: str, client: str) -> bool:
        """True if `session_hash` belongs to `client` (bound now if it was new)."""
        now = time.monotonic()
        with self.lock:
            bound = self.bindings.get(session_hash)
            if bound is None:
                self.bindings[session_hash] = [client, now]
                return True
            if not hmac.compare_digest(bound[0], client):
                return False
            bound[1] = now
            return True

    def readable(self, client: str | None, path) -> bool | None:
        """None: not a workspace file (Gradio's own checks apply). Else whether `client` may
        read it: public previews, its own uploads, files in its own sessions' folders."""
        try:
            real = _real(path)
        except (OSError, ValueError):
            return False
        if not _inside(real, self.real_root):
            return None
        with self.lock:
            if real in self.public:
                return True
            if client is None:
                return False
            upload = self.uploads.get(real)
            if upload is not None and client in upload.owners:
                return True
            return any(s.client == client and _inside(real, _real(s.folder)) for s in self.sessions.values())

    def add_upload(self, client: str, path) -> None:
        real = _real(path)
        if not _inside(real, self.real_cache) or _inside(real, _real(self.sessions_dir)):
            return
        with self.lock:
            self.uploads.setdefault(real, Upload()).owners[client] = time.monotonic()

    # -- what the event handlers use --

    @contextlib.contextmanager
    def event(self, session_hash: str | None, client: str | None):
        """The session of one event, created on its first; never reaped while the event runs."""
        if not session_hash or not valid_client(client):
            raise InputError("this request has no session: load the page (or keep the "
                             f"{CLIENT_COOKIE} cookie, as gradio_client does)")
        if not self.bind(session_hash, client):
            raise InputError("this session belongs to another browser")
        with self.lock:
            session = self.sessions.get(session_hash)
            if session is None:
                folder = self.sessions_dir / secrets.token_urlsafe(24)
                folder.mkdir(mode=0o700)
                session = self.sessions[session_hash] = Session(session_hash, client, folder, time.monotonic())
            session.busy += 1
            session.last_seen = time.monotonic()
        try:
            yield session
        finally:
            with self.lock:
                session.busy -= 1
                session.last_seen = time.monotonic()
                if session.closing and session.busy == 0:
                    self._drop(session)

    def claim_photo(self, session: Session, payload) -> Path:
        """The uploaded photo an event names (Gradio's raw FileData): it must be this client's."""
        if not payload:
            raise InputError("add a photo first: upload one or take one with the webcam")
        path = payload.get("path") if isinstance(payload, dict) else None
        if not isinstance(path, str) or not path:
            raise InputError("the photo must be uploaded as a file (POST /gradio_api/upload)")
        real = _real(path)
        with self.lock:
            upload = self.uploads.get(real)
            if upload is None or session.client not in upload.owners or not real.is_file():
                raise InputError(f"the photo is no longer on the server (it is deleted when the tab "
                                 f"closes and after {_minutes(self.idle)} without a click): "
                                 "upload it again")
            upload.holders.add(session.hash)
            session.uploads.add(real)
        return real

    # -- deleting --

    def close(self, session_hash: str | None) -> None:
        """The tab closed: delete the session now, or when its running event ends."""
        if not session_hash:
            return
        with self.lock:
            self.bindings.pop(session_hash, None)
            session = self.sessions.get(session_hash)
            if session is None:
                return
            log.info("tab closed: its session is deleted%s", " when its run ends" if session.busy else "")
            if session.busy:
                session.closing = True
            else:
                self._drop(session)

    def reap(self, now: float | None = None) -> None:
        """Delete sessions and unused uploads idle longer than `idle`, and stray cache files."""
        now = time.monotonic() if now is None else now
        with self.lock:
            for session in list(self.sessions.values()):
                # The last request naming the session counts too (an event waiting in the queue).
                seen = max(session.last_seen, self.bindings.get(session.hash, (None, 0))[1])
                if session.busy == 0 and now - seen > self.idle:
                    log.info("session idle for %s: deleted", _minutes(self.idle))
                    self._drop(session)
            for path, upload in list(self.uploads.items()):
                if not upload.holders and now - max(upload.owners.values(), default=0) > self.idle:
                    self._delete_upload(path)
            for session_hash, (_, seen) in list(self.bindings.items()):
                if session_hash not in self.sessions and now - seen > self.idle:
                    del self.bindings[session_hash]
            keep = self.public | set(self.uploads) | {_real(s.folder) for s in self.sessions.values()}
        self._sweep(keep)

    def _drop(self, session: Session) -> None:
        """Delete one session's folder and the uploads no other session of its client uses."""
        self.sessions.pop(session.hash, None)
        self.bindings.pop(session.hash, None)
        shutil.rmtree(session.folder, ignore_errors=True)
        for path in session.uploads:
            upload = self.uploads.get(path)
            if upload is None:
                continue
            upload.holders.discard(session.hash)
            if not any(self.sessions[h].client == session.client for h in upload.holders if h in self.sessions):
                upload.owners.pop(session.client, None)
            if not upload.owners and not upload.holders:
                self._delete_upload(path)

    def _delete_upload(self, path: Path) -> None:
        """Delete an uploaded file and its folder (Gradio puts each upload in a folder of its own)."""
        self.uploads.pop(path, None)
        try:
            path.unlink(missing_ok=True)
            if path.parent != self.real_cache:
                path.parent.rmdir()
        except OSError:
            pass

    def _sweep(self, keep: set[Path]) -> None:
        """Anything else in the cache (files Gradio made on its own, folders of sessions already
        closed) older than the idle time goes too. Files being written are newer than that."""
        cutoff = time.time() - self.idle
        for entry in [*self.cache.iterdir(), *self.sessions_dir.iterdir()]:
            if entry == self.sessions_dir:
                continue
            real = _real(entry)
            if any(_inside(k, real) or _inside(real, k) for k in keep):
                continue
            try:
                newest = max([entry.lstat().st_mtime] + [p.lstat().st_mtime for p in entry.rglob("*")])
            except OSError:
                continue
            if newest < cutoff:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def sweep_stale_workspaces(parent: Path) -> None:
    """Delete the workspaces of figurine servers that were killed (their process is gone)."""
    try:
        candidates = list(parent.glob("figurine-web-*"))
    except OSError:
        return
    for folder in candidates:
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            pid = int((folder / "server.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        log.info("deleting the workspace of a figurine server that was killed: %s", folder.name)
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _minutes(seconds: float) -> str:
    if seconds >= 60:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"


def valid_client(value) -> bool:
    """A client cookie as the Guard mints them (secrets.token_urlsafe(32))."""
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]{43}", value) is not None


def reaper(workspace: Workspace, stop: threading.Event) -> threading.Thread:
    """A daemon thread calling workspace.reap() every reap_every(idle) seconds until `stop`."""
    def loop():
        while not stop.wait(reap_every(workspace.idle)):
            try:
                workspace.reap()
            except Exception:  # never let cleanup take the server down; say why
                traceback.print_exc()
    thread = threading.Thread(target=loop, name="figurine-reaper", daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------------------------
# Guard: origin, client cookie, session binding, file ownership and login on every request

FILE_ROUTE = re.compile(r"^(?:/gradio_api)?/file(?:=|/)(.*)$", re.S)
SESSION_IN_PATH = re.compile(r"^(?:/gradio_api)?/(?:heartbeat/([^/]+)$|stream/([^/]+)/[^/]+/)")
UPLOAD_ROUTE = re.compile(r"^(?:/gradio_api)?/upload/?$")
# Without a login, only the page shell and what its login form needs; and startup-events, which
# launch() itself calls once (it starts the queue; later calls do nothing).
LOGIN_PAGE = {"/", "/login", "/login/", "/config", "/config/", "/theme.css", "/gradio_api/theme.css",
              "/favicon.ico", "/gradio_api/startup-events"}
LOGIN_ASSETS = ("/assets/", "/static/", "/svelte/")


class Guard:
    """ASGI middleware in front of every Gradio route (see the module docstring, point 3)."""

    def __init__(self, app, workspace: Workspace, loopback_only: bool):
        self.app = app
        self.workspace = workspace
        self.loopback_only = loopback_only

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers

        headers = Headers(scope=scope)
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        cookie = _cookies(headers).get(CLIENT_COOKIE)
        client = cookie if valid_client(cookie) else None
        refusal = self.check_site(headers, path, method)
        if refusal is None and self.workspace.token and not _logged_in(scope, headers) \
                and not _login_page(method, path):
            refusal = (401, "log in first (any user name, the server's token as password)")
        if refusal is None:
            refusal = self.check_files(path, client)
        body = None
        if refusal is None and scope["type"] == "http" and method == "POST" and not _multipart(headers):
            body = await _read_body(receive, MAX_JSON_BODY)
            if body is None:
                refusal = (413, "request body too large")
        if refusal is None:
            refusal = self.check_session(scope, path, client, body)
        if refusal is None and scope["type"] == "http" and UPLOAD_ROUTE.match(path) and method == "POST" \
                and client is None:
            refusal = (403, f"no {CLIENT_COOKIE} cookie: load the page first (API clients: keep the "
                       "cookie of the server's first answer)")
        if refusal is not None:
            await self.refuse(scope, receive, send, *refusal, method=method, path=path)
            return
        if body is not None:
            receive = _replay(body, receive)
        await self.app(scope, receive, self.wrap_send(send, scope, path, method, client))

    # -- the checks; each returns None or (status, reason) --

    def check_site(self, headers, path: str, method: str):
        host = headers.get("host", "")
        if self.loopback_only and not is_loopback(_hostname(host)):
            return 403, f"Host {host!r} is not this computer (this server answers to 127.0.0.1 and localhost)"
        origin = headers.get("origin")
        site = headers.get("sec-fetch-site")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != host.lower()):
            return 403, f"cross-origin request from {origin}"
        if site is not None and site not in ("same-origin", "none"):
            navigation = (method in ("GET", "HEAD") and path == "/" and headers.get("sec-fetch-mode") == "navigate"
                          and headers.get("sec-fetch-dest") == "document")
            if not navigation:
                return 403, f"request from another site (Sec-Fetch-Site: {site})"
        if origin is None and site is None:
            referer = headers.get("referer")
            if referer and urlsplit(referer).netloc.lower() != host.lower():
                return 403, "cross-origin request (Referer)"
        return None

    def check_files(self, path: str, client: str | None):
        named = []
        m = FILE_ROUTE.match(path)
        if m:
            named.append(m.group(1))
        for root in {str(self.workspace.root), str(self.workspace.real_root)}:
            if root in path:
                named.append(path[path.index(root):])
        for name in named:
            if self.workspace.readable(client, name) is False:
                return 403, "file not allowed"
        return None

    def check_session(self, scope, path: str, client: str | None, body: bytes | None):
        hashes = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash", [])
        m = SESSION_IN_PATH.match(path)
        if m:
            hashes.append(m.group(1) or m.group(2))
        data = None
        if body:
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):
                data = None
            if isinstance(data, dict) and isinstance(data.get("session_hash"), str):
                hashes.append(data["session_hash"])
        for h in hashes:
            if client is None:
                return 403, f"no {CLIENT_COOKIE} cookie: load the page first (API clients: keep the " \
                            "cookie of the server's first answer)"
            if not self.workspace.bind(h, client):
                return 403, "this session belongs to another client"
        for named in _file_paths(data):
            if Path(named).exists() and self.workspace.readable(client, named) is False:
                return 403, "file not allowed"
        return None

    # -- answers --

    async def refuse(self, scope, receive, send, status: int, reason: str, method: str, path: str) -> None:
        log.warning("refused %s %s: %s", method, path[:120], reason)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        from starlette.responses import JSONResponse

        await JSONResponse({"detail": f"figurine: {reason}"}, status_code=status)(scope, receive, send)

    def wrap_send(self, send, scope, path: str, method: str, client: str | None):
        workspace = self.workspace
        private_file = any(workspace.readable(client, n) for n in ([FILE_ROUTE.match(path).group(1)]
                                                                 if FILE_ROUTE.match(path) else []))
        upload = scope["type"] == "http" and method == "POST" and UPLOAD_ROUTE.match(path) is not None
        chunks: list[bytes] = []
        status = [0]

        async def wrapped(message):
            if message["type"] == "http.response.start":
                from starlette.datastructures import MutableHeaders

                status[0] = message["status"]
                out = MutableHeaders(scope=message)
                out["X-Frame-Options"] = "DENY"
                out["Content-Security-Policy"] = "frame-ancestors 'none'"
                out["X-Content-Type-Options"] = "nosniff"
                out["Referrer-Policy"] = "same-origin"
                if private_file:
                    out["Cache-Control"] = "no-store"
                if client is None:
                    out.append("Set-Cookie", f"{CLIENT_COOKIE}={secrets.token_urlsafe(32)}; Path=/; "
                                             "HttpOnly; SameSite=Strict")
            elif message["type"] == "http.response.body" and upload:
                chunks.append(message.get("body", b""))
                if not message.get("more_body") and status[0] == 200:
                    try:
                        paths = json.loads(b"".join(chunks))
                    except ValueError:
                        paths = []
                    for p in paths if isinstance(paths, list) else []:
                        if isinstance(p, str):
                            workspace.add_upload(client, p)
            await send(message)
        return wrapped


def _cookies(headers) -> dict[str, str]:
    from http.cookies import SimpleCookie

    jar = SimpleCookie()
    for raw in headers.getlist("cookie"):
        try:
            jar.load(raw)
        except Exception:  # a malformed cookie header: treat as no cookies
            continue
    return {k: m.value for k, m in jar.items()}


def _logged_in(scope, headers) -> bool:
    """Gradio's login cookie, checked against the app's tokens (scope["app"] is Gradio's App)."""
    app = scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if not tokens or not cookie_id:
        return False
    cookies = _cookies(headers)
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return token is not None and token in tokens


def _login_page(method: str, path: str) -> bool:
    if method == "POST":
        return path in ("/login", "/login/")
    return method in ("GET", "HEAD") and (path in LOGIN_PAGE or path.startswith(LOGIN_ASSETS))


def _multipart(headers) -> bool:
    return headers.get("content-type", "").lower().startswith("multipart/")


async def _read_body(receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = [False]

    async def replayed():
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replayed


def _file_paths(data, depth: int = 0):
    """Every "path" string of the FileData dicts in an event body."""
    if depth > 32:
        return
    if isinstance(data, dict):
        if isinstance(data.get("path"), str):
            yield data["path"]
        for value in data.values():
            yield from _file_paths(value, depth + 1)
    elif isinstance(data, list):
        for value in data:
            yield from _file_paths(value, depth + 1)


def _hostname(host: str) -> str:
    try:
        return urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return ""


# ---------------------------------------------------------------------------------------------
# Errors on the page: one line, no server paths


def redact_paths(text: str, roots=()) -> str:
    """`text` with every absolute path reduced to its file name: first below the known `roots`
    (workspace, weights, home...), then any other absolute path."""
    for root in sorted({str(r).rstrip("/\\") for r in roots if str(r).strip("/\\")}, key=len, reverse=True):
        text = re.sub(re.escape(root) + r"(?:[\\/][^\\/\s'\"]+)*[\\/]", "", text)
        text = re.sub(re.escape(root) + r"(?![\w.-])", Path(root).name or "", text)
    return re.sub(r"(?<![\w.~:/\\-])(?:[A-Za-z]:)?[\\/](?:[^\s\\/'\"]+[\\/])+", "", text)


def readable_errors(fn, roots):
    """FigurineError -> its one-line message on the page, paths reduced to names (the full line
    goes to the terminal); anything else -> a short note + traceback in the terminal."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import gradio as gr

        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except FigurineError as e:
            print(f"figurine: error: {e}", file=sys.stderr, flush=True)
            raise gr.Error(redact_paths(str(e), roots()), title="figurine", print_exception=False) from None
        except Exception:  # a bug: its traceback goes to the terminal, not to the page
            traceback.print_exc()
            raise gr.Error("figurine hit an unexpected error; the terminal running `figurine serve` "
                           "has the details", title="figurine", print_exception=False) from None
    return wrapper


# ---------------------------------------------------------------------------------------------
# Request building (plain functions: tested without a browser)


def parse_accessories(texts) -> list[str]:
    """The accessory boxes' texts, blanks dropped (one item per box; commas stay in an item)."""
    return [t for t in (_text(t, "an accessory") for t in texts) if t]


def _text(value, what: str) -> str:
    """A text box's value, stripped (raw JSON: the Generate event skips Gradio's preprocessing)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{what} must be text")
    return value.strip()


def build_request(session: Session, photo: Path, name: str, tagline: str, accessories: list[str],
                  pose: str | None, template: str | None, seed, candidates):
    """A Request writing into the session's folder (outputs replaced each time)."""
    from figurine.limits import slug
    from figurine.request import Request

    out = session.folder / "out"
    out.mkdir(parents=True, exist_ok=True)
    stem = slug(_text(name, "the name") or "figure")
    return Request(
        photos=[Path(photo)], name=_text(name, "the name"), tagline=_text(tagline, "the tagline"),
        accessories=accessories, pose=_text(pose, "the pose") or None,
        template=_text(template, "the template") or None,
        seed=_whole(seed, "seed"), candidates=_whole(candidates, "candidates"),
        output=out / f"{stem}.png", pdf=out / f"{stem}.pdf", run_dir=session.run_dir, force=True,
    )


def _whole(value, what: str) -> int | None:
    """A number box's value (raw JSON: the Generate event skips Gradio's preprocessing)."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
        if number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{what} must be a whole number") from None


class StageProgress:
    """The pipeline's stage hook (stage, event, info), turned into a fraction and a label."""

    def __init__(self, report, candidates: int, accessories: int):
        self.report = report  # report(fraction, label)
        # identity, pose, load, per candidate 4 stages, accessories (generate + matte), packaging
        self.expected = 3 + 4 * max(1, candidates) + 2 * accessories + 1
        self.done = 0
        self.figures = 0
        self.candidates = max(1, candidates)
        self.seen: list[str] = []

    def __call__(self, stage: str, message: str, info: dict | None = None) -> None:
        label = STAGE_LABELS.get(stage, stage)
        if message == "started":
            if stage == "generation":
                self.figures += 1
                if self.candidates > 1:
                    label += f" ({self.figures} of {self.candidates})"
            if not self.seen or self.seen[-1] != stage:
                self.seen.append(stage)
        else:
            self.done += 1
            label += ": done"
        self.report(min(0.97, self.done / self.expected), label)


def candidates_gallery(result) -> list[tuple[str, str]]:
    """(figure path, caption) per candidate: seed, identity score, which one was packaged."""
    fig = result.record["stages"]["figure"]
    items = []
    for i, (name, score, seed) in enumerate(zip(fig["files"], fig["scores"], fig["seeds"])):
        shown = "no face found" if score is None else f"identity {score:.3f}"
        mark = " · packaged" if i == fig["best"] else ""
        items.append((str(result.run_dir / name), f"seed {seed}: {shown}{mark}"))
    return items


def status_line(result, seconds: float) -> str:
    """One line: how long it took and what came from the cache."""
    if result.reused:
        return f"Re-packed in {seconds:.1f} s (reused: {', '.join(result.reused)})"
    return f"Generated in {seconds:.1f} s"


def downloads(result) -> list[str]:
    from figurine.limits import sidecar_for

    files = [result.output, result.output.with_suffix(".pdf"), sidecar_for(result.output)]
    return [str(f) for f in files if f.exists()]


# ---------------------------------------------------------------------------------------------
# Galleries


@functools.cache
def pose_previews(limb_width: float, point_radius: float) -> list[tuple[object, str]]:
    """Each preset's skeleton, drawn by the same renderer the generation uses."""
    from figurine.pose import list_presets, load_preset, render_pose

    w, h = POSE_SIZE
    # Thumbnails are small: draw the limbs thicker than the control image's scale would.
    return [(render_pose(load_preset(p.name), w, h, limb_width * 2.5, point_radius * 2.5), p.name)
            for p in list_presets()]


@functools.cache
def template_previews() -> list[tuple[object, str]]:
    """Each template drawn by figurine.packaging around an example figure and accessory."""
    from figurine import packaging

    figure, items = example_figure()
    text = packaging.PackText("Your Name", "Your Tagline")
    previews = []
    for name in packaging.list_templates():
        try:
            image = packaging.render_image(figure, items, text, template=name, size="social")
        except FigurineError as e:  # a broken template should not take the page down
            log.warning("template %s: no preview (%s)", name, e)
            continue
        image = image.convert("RGB")
        image.thumbnail(PREVIEW_SIZE)
        previews.append((image, name))
    return previews


def example_figure():
    """(figure RGBA, [accessory RGBA]) for the template previews: the toy figure and mug of
    figurine/example.py, cut out by the real matte stage."""
    from figurine import matte
    from figurine.example import accessory, figure

    return matte.cut_out(figure(384, 512)), [matte.cut_out(accessory("mug", 192))]


# ---------------------------------------------------------------------------------------------
# The page


def _theme():
    import gradio as gr

    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO)


CSS = """
#figurine-status, #figurine-energy { font-family: var(--font-mono); font-size: 0.9em; }
footer { display: none !important; }
"""


def _client(request) -> str | None:
    """The figurine-client cookie of the request an event came from (the Guard checked it)."""
    cookie = getattr(request, "cookies", {}).get(CLIENT_COOKIE) if request is not None else None
    return cookie if valid_client(cookie) else None


def _event_fn(fn, n_inputs: int, gr):
    """`fn(request, progress, *inputs)` as Gradio wants it: the request first, the inputs, the
    progress tracker last, all positional (Gradio injects only positional special arguments)."""
    @functools.wraps(fn)
    def handler(*args):
        return fn(args[0], args[-1], *args[1:-1])
    params = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request)]
    params += [inspect.Parameter(f"input_{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD) for i in range(n_inputs)]
    params.append(inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()))
    del handler.__wrapped__  # Gradio must read the signature below, not fn's
    handler.__signature__ = inspect.Signature(params)
    handler.__annotations__ = {"request": gr.Request}  # the real class: gradio reads the hint
    return handler


def build_app(cfg: Config, workspace: Workspace):
    """The Gradio Blocks page for one config; events call the workspace's pipeline in this process."""
    import gradio as gr

    from figurine.limits import slug
    from figurine.packaging import list_templates

    g = cfg.generation
    poses = pose_previews(cfg.pose.limb_width, cfg.pose.point_radius)
    templates = template_previews()
    template_names = list_templates()
    n_boxes = max(1, min(8, cfg.accessories.max))

    def roots():  # folders whose paths never reach the page
        return [workspace.root, workspace.real_root, cfg.weights_root, _real(cfg.weights_root), Path.home(),
                Path.cwd(), tempfile.gettempdir()]

    with gr.Blocks(title="figurine", analytics_enabled=False) as demo:
        gr.Markdown("## figurine — you, as a boxed action figure\n"
                    "Everything runs on this computer: the photo never leaves it. Your photo and "
                    "results are deleted from the server when you close this tab, or after "
                    f"{_minutes(workspace.idle)} without a click.")
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.Image(label="Photo", sources=["upload", "webcam"], type="filepath",
                                 height=260, elem_id="figurine-photo")
                name = gr.Textbox(label="Name on the box", max_lines=1, elem_id="figurine-name")
                tagline = gr.Textbox(label="Tagline (also what the figure is dressed as)", max_lines=1,
                                     elem_id="figurine-tagline")
                with gr.Accordion(f"Accessories (up to {n_boxes}, each made on its own)", open=False):
                    acc_boxes = [gr.Textbox(show_label=False, placeholder=f"accessory {i + 1}", max_lines=1,
                                            elem_id=f"figurine-accessory-{i}") for i in range(n_boxes)]
                with gr.Row():
                    seed = gr.Number(label="Seed (-1: random)", value=g.seed, precision=0, elem_id="figurine-seed")
                    candidates = gr.Slider(1, 8, value=g.candidates, step=1, label="Candidates",
                                           elem_id="figurine-candidates")
            with gr.Column(scale=1):
                pose_gallery = gr.Gallery(value=poses, label="Pose", columns=5, height=230,
                                          allow_preview=False, object_fit="contain", buttons=[],
                                          elem_id="figurine-poses")
                pose = gr.Radio([p for _, p in poses], value=cfg.pose.preset, label="Pose",
                                show_label=False, elem_id="figurine-pose")
                template_gallery = gr.Gallery(value=templates, label="Box", columns=4, height=230,
                                              allow_preview=False, object_fit="contain", buttons=[],
                                              elem_id="figurine-templates")
                template = gr.Radio(template_names, value=cfg.packaging.template, label="Box",
                                    show_label=False, elem_id="figurine-template")
        with gr.Row():
            generate = gr.Button("Generate", variant="primary", elem_id="figurine-generate")
            repack = gr.Button("Re-pack (text and box only)", elem_id="figurine-repack")
            model3d = gr.Button("3D model to print", elem_id="figurine-print3d")
        with gr.Row():
            with gr.Column(scale=1):
                package = gr.Image(label="Your figure", type="filepath", interactive=False, height=480,
                                   elem_id="figurine-package")
            with gr.Column(scale=1):
                status = gr.Textbox(label="Status", interactive=False, elem_id="figurine-status")
                energy = gr.Textbox(label="Energy", interactive=False, elem_id="figurine-energy")
                figures = gr.Gallery(label="Candidates (identity score: likeness to the photo)", columns=4,
                                     height=200, object_fit="contain", allow_preview=False,
                                     elem_id="figurine-candidates-gallery")
                files = gr.File(label="Downloads: PNG, print PDF, run JSON", file_count="multiple",
                                interactive=False, elem_id="figurine-downloads")
        with gr.Row(visible=True):
            with gr.Column(scale=1):
                preview3d = gr.Image(label="3D model (preview)", type="filepath", interactive=False, height=320,
                                     elem_id="figurine-print3d-preview")
            with gr.Column(scale=1):
                status3d = gr.Textbox(label="3D model", interactive=False, lines=4, elem_id="figurine-print3d-status")
                files3d = gr.File(label="Downloads: 3MF (colours), STL", file_count="multiple", interactive=False,
                                  elem_id="figurine-print3d-downloads")

        outputs = [package, figures, status, energy, files]

        def pick(names):
            def on_select(evt):
                return names[evt.index]
            on_select.__annotations__ = {"evt": gr.SelectData}  # real class: gradio reads the hint
            return on_select

        pose_gallery.select(pick([p for _, p in poses]), None, pose, queue=False, api_visibility="private")
        template_gallery.select(pick([t for _, t in templates]), None, template, queue=False,
                                api_visibility="private")

        def run(call, sess: Session, progress, candidates: int, accessories: int) -> tuple:
            t0 = time.perf_counter()
            tracker = StageProgress(lambda f, label: progress(f, desc=label), candidates, accessories)
            pipe = workspace.pipeline
            pipe.hooks = [tracker]
            try:
                result = call(pipe)
            finally:
                pipe.hooks = []
            seconds = time.perf_counter() - t0
            sess.last = True
            return (str(result.output), candidates_gallery(result), status_line(result, seconds),
                    result.energy_line, downloads(result))

        def on_generate(request, progress, photo_v, name_v, tagline_v, pose_v, template_v, seed_v, cand_v, *acc):
            # The photo arrives as Gradio's raw FileData (preprocess=False): claim_photo checks
            # that this client uploaded it before anything opens the file.
            with workspace.event(request.session_hash, _client(request)) as sess:
                photo_path = workspace.claim_photo(sess, photo_v)
                req = build_request(sess, photo_path, name_v, tagline_v, parse_accessories(acc), pose_v,
                                    template_v, seed_v, cand_v)
                return run(lambda pipe: pipe(req), sess, progress, req.candidates or g.candidates,
                           len(req.accessories))

        def on_repack(request, progress, name_v, tagline_v, template_v):
            with workspace.event(request.session_hash, _client(request)) as sess:
                if not sess.last:
                    return (gr.skip(),) * len(outputs)
                out = sess.folder / "out"
                stem = slug(name_v or "figure")
                try:
                    return run(lambda pipe: pipe.rerun(sess.run_dir, output=out / f"{stem}.png",
                                                       pdf=out / f"{stem}.pdf", force=True,
                                                       name=(name_v or "").strip(),
                                                       tagline=(tagline_v or "").strip(),
                                                       template=template_v or None),
                               sess, progress, 1, 0)
                except NeedsInputError:
                    raise InputError("this change needs a new figure (the tagline also dresses it): "
                                     "press Generate") from None

        def on_print3d(request, progress):
            """The packaged figure as a printable model (figurine.print3d), in the session's folder."""
            from figurine.print3d import PrintOptions, make_print

            with workspace.event(request.session_hash, _client(request)) as sess:
                if not sess.last:
                    raise InputError("nothing to print yet: press Generate first")
                out = sess.folder / "out"
                result = make_print(sess.run_dir, PrintOptions(output=out / "figure.3mf", stl=out / "figure.stl",
                                                               force=True), cfg,
                                    progress=lambda stage, msg: progress(0.5, desc=f"3D model: {stage}"))
                return (str(result.preview), "\n".join(result.lines()),
                        [str(p) for p in (result.output, result.stl) if p is not None and Path(p).exists()])

        def on_unload(request):
            workspace.close(request.session_hash)
        on_unload.__annotations__ = {"request": gr.Request}

        gen_inputs = [photo, name, tagline, pose, template, seed, candidates, *acc_boxes]
        # Progress (and an error badge) on the picture and the status only: a failed event
        # leaves the last good result on the page.
        generate.click(_event_fn(readable_errors(on_generate, roots), len(gen_inputs), gr), gen_inputs,
                       outputs, concurrency_id="gpu", show_progress_on=[package, status], preprocess=False,
                       api_name="generate")
        pack_inputs = [name, tagline, template]
        pack_fn = _event_fn(readable_errors(on_repack, roots), len(pack_inputs), gr)
        repack.click(pack_fn, pack_inputs, outputs, concurrency_id="gpu", show_progress_on=[status],
                     api_name="repack")
        for trigger in (name.submit, tagline.submit, template.change):
            trigger(pack_fn, pack_inputs, outputs, concurrency_id="gpu", show_progress_on=[status],
                    api_visibility="private")
        model3d.click(_event_fn(readable_errors(on_print3d, roots), 0, gr), [], [preview3d, status3d, files3d],
                      concurrency_id="gpu", show_progress_on=[status3d], api_name="print3d")
        demo.unload(on_unload)
    return demo


# ---------------------------------------------------------------------------------------------
# Serving


def is_loopback(host: str) -> bool:
    import ipaddress

    name = host.strip("[]").lower()
    if name in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def serve(cfg: Config, host: str = LOOPBACK, port: int = 7860, *, token: str | None = None,
          idle: float = IDLE_SECONDS, ready=None) -> None:
    """Serve the page until Ctrl-C, SIGTERM or SIGHUP, then delete the workspace.

    `host` other than loopback is the caller's explicit choice (`figurine serve --listen`, which
    also requires `token`). With `token`, every request needs Gradio's login (any user name, the
    token as password). `idle`: seconds without an event after which a session is deleted.
    `ready(url)` is called once the server answers.
    """
    from figurine import privacy

    # 1. Offline switches and the network guard before gradio is imported.
    privacy.go_offline()
    privacy.install_network_guard(allow_loopback=True)
    workspace = Workspace(cfg, idle=idle, token=token)
    os.environ["GRADIO_TEMP_DIR"] = str(workspace.cache)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    atexit.register(workspace.cleanup)
    stops = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in stops}
    stop = threading.Event()
    import gradio as gr
    from starlette.middleware import Middleware

    if gr.utils.get_upload_folder() != str(workspace.cache):  # gradio imported earlier elsewhere
        log.warning("gradio was imported before figurine.web.serve; its uploads may go to %s",
                    gr.utils.get_upload_folder())
    from figurine.photo import heif_reader

    heif_reader()  # Gradio opens uploads with Pillow: iPhone photos (HEIC) too
    try:
        # 2. Build the page (pose and template previews are drawn once, here: they are public).
        demo = build_app(cfg, workspace)
        demo.queue(default_concurrency_limit=1, max_size=16)
        workspace.mark_public()
        auth = None
        if token:
            def auth(_user: str, password: str) -> bool:
                return hmac.compare_digest(password.encode(), token.encode())
        # 3. Launch on the chosen address only, behind the Guard; never a share link, no browser.
        guard = Middleware(Guard, workspace=workspace, loopback_only=is_loopback(host))
        try:
            demo.launch(server_name=host, server_port=port, share=False, inbrowser=False,
                        max_file_size=MAX_UPLOAD, show_error=False, quiet=True, prevent_thread_lock=True,
                        theme=_theme(), css=CSS, footer_links=[], ssr_mode=False, pwa=False, mcp_server=False,
                        run_history=False, num_workers=0, auth=auth,
                        auth_message="Any user name; the password is the server's token "
                                      "(FIGURINE_WEB_TOKEN or --token-file).",
                        app_kwargs={"middleware": [guard]})
        except OSError as e:
            raise InputError(f"cannot serve on {host}:{port}: {e}", hint="pick another --port") from None
        reaper(workspace, stop)
        url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
        print(f"figurine: serving on {url} (Ctrl-C to stop)", flush=True)
        if ready:
            ready(url)
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("figurine: stopping", flush=True)
        finally:
            stop.set()
            demo.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        workspace.cleanup()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt

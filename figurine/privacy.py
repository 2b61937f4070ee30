"""Offline by construction: hub/telemetry switches off, and a guard on every socket.

    from figurine.privacy import go_offline, install_network_guard
    go_offline()                          # before diffusers/transformers/insightface are imported
    guard = install_network_guard()       # loopback (web UI) stays allowed
    ...                                   # any outbound attempt raises NetworkBlockedError
    assert guard.attempts == []
    guard.uninstall()

Two layers, because either alone can be bypassed:

1. `go_offline()` sets the environment switches the libraries we load actually read (checked in
   their installed sources: huggingface_hub 2.4 constants, diffusers 0.42, transformers 5.23,
   insightface 2.1, onnxruntime 1.32). huggingface_hub reads them once, at import, and diffusers
   copies `HF_HUB_OFFLINE` into its own modules; so `go_offline()` must run before those imports.
   If they are already imported it also sets the copied constants and reports which modules it
   had to patch late.
2. `NetworkGuard` wraps the Python socket layer (`socket.socket.connect/connect_ex/sendto/
   sendmsg`, `socket.create_connection`, `socket.getaddrinfo`, `gethostbyname[_ex]`,
   `gethostbyaddr`). Every HTTP client in the stack (urllib, http.client, requests/urllib3,
   httpx, asyncio streams) ends in these calls, so a non-loopback attempt raises
   `NetworkBlockedError` naming the host:port and the code that tried it, before any packet or
   DNS query is sent. Loopback (127.0.0.0/8, ::1, localhost) and AF_UNIX stay allowed.
   Native code that opens sockets itself (C/C++ inside a wheel) is not seen by this layer;
   tests/netcheck.py runs whole commands in an empty network namespace to cover that.

Not covered by `go_offline` because no library offers a switch: insightface downloads a model
pack when `FaceAnalysis(name=...)` is not an existing directory, controlnet_aux and torch.hub
download when given a hub id. figurine always passes local directories; the guard catches any
slip.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
from dataclasses import dataclass

from figurine.errors import NetworkBlockedError

# Environment switches, each read by an installed library (see module docstring).
OFFLINE_ENV: dict[str, str] = {
    # huggingface_hub: every hub call raises OfflineModeIsEnabled; diffusers and
    # transformers read the same constant (TRANSFORMERS_OFFLINE is an alias hub honours).
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    # huggingface_hub telemetry: any one of these three turns it off.
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    # huggingface_hub: no update check, never send a stored token implicitly.
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    # diffusers has no offline switch of its own (it reads HF_HUB_OFFLINE); this one stops it
    # from fetching and running remote pipeline code.
    "DIFFUSERS_DISABLE_REMOTE_CODE": "1",
    # Gradio (if a web UI ever uses it) phones home unless this is "False".
    "GRADIO_ANALYTICS_ENABLED": "False",
    # onnxruntime (used by insightface) reads this at native init; insightface sets it too.
    "ORT_DISABLE_TELEMETRY": "1",
    # albumentations (optional insightface dependency) checks PyPI for updates at import.
    "NO_ALBUMENTATIONS_UPDATE": "1",
}

# Module-level copies of the switches that libraries take at import time.
_LATE_CONSTANTS = {
    "HF_HUB_OFFLINE": True,
    "HF_HUB_DISABLE_TELEMETRY": True,
    "HF_HUB_DISABLE_UPDATE_CHECK": True,
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": True,
    "DIFFUSERS_DISABLE_REMOTE_CODE": True,
}
_LATE_PACKAGES = ("huggingface_hub", "diffusers", "transformers")


def go_offline() -> list[str]:
    """Set every offline/telemetry switch. Idempotent; returns the modules patched late.

    An empty list means all libraries will read the switches themselves at import. A non-empty
    list names already-imported modules whose copied constants were set here instead.
    """
    # 1. The environment, for this process and every child it starts.
    os.environ.update(OFFLINE_ENV)

    # 2. Libraries imported before us keep import-time copies: set those too.
    patched = []
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in _LATE_PACKAGES:
            continue
        for attr, value in _LATE_CONSTANTS.items():
            if isinstance(getattr(module, attr, None), bool) and getattr(module, attr) != value:
                setattr(module, attr, value)
                patched.append(f"{name}.{attr}")
    return patched


# ---------------------------------------------------------------------------------------------
# Network guard

# Packages that only carry a request (HTTP clients, sockets, event loops): the guard names the
# code that called into them, not them.
_PLUMBING = {
    "socket", "ssl", "http", "urllib", "asyncio", "selectors", "concurrent", "threading",
    "contextlib", "functools", "requests", "urllib3", "httpx", "httpcore", "h11", "h2", "anyio",
    "aiohttp", "websockets", "certifi", "sniffio",
}
_PLUMBING_PREFIXES = ("httpx", "httpcore", "urllib3", "requests", "aiohttp", "h11", "h2")


def _is_plumbing(top: str) -> bool:
    """HTTP clients come renamed and vendored (httpx2, httpcore2): match by prefix as well."""
    return top in _PLUMBING or top.startswith(_PLUMBING_PREFIXES)
# Our own code and scripts: name the innermost frame (the line that tried), not the entry point.
_OWN = {"figurine", "__main__", "tests"}


@dataclass
class Attempt:
    """One blocked attempt: what was called, where to, and by whom."""

    action: str          # "connect", "resolve", "send"
    host: str
    port: int | None
    caller: str          # e.g. "huggingface_hub.file_download.hf_hub_download"
    thread: str

    def target(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


_ACTIVE: NetworkGuard | None = None
_LOCK = threading.Lock()


class NetworkGuard:
    """Turns outbound network attempts into NetworkBlockedError and records them.

        with NetworkGuard() as guard:
            run_everything()
        assert not guard.attempts
    """

    def __init__(self, allow_loopback: bool = True):
        self.allow_loopback = allow_loopback
        self.attempts: list[Attempt] = []
        self._saved: dict[tuple[object, str], object] = {}

    # -- install / uninstall ------------------------------------------------------------------
    def install(self) -> NetworkGuard:
        global _ACTIVE
        with _LOCK:
            if _ACTIVE is self:
                return self
            if _ACTIVE is not None:
                raise RuntimeError("another NetworkGuard is installed; uninstall it first")
            sock_cls = socket.socket
            self._patch(sock_cls, "connect", self._wrap_connect(sock_cls.connect))
            self._patch(sock_cls, "connect_ex", self._wrap_connect(sock_cls.connect_ex))
            self._patch(sock_cls, "sendto", self._wrap_send(sock_cls.sendto, addr_index=-1))
            self._patch(sock_cls, "sendmsg", self._wrap_send(sock_cls.sendmsg, addr_index=3))
            self._patch(socket, "create_connection",
                        self._wrap_lookup(socket.create_connection, "connect"))
            self._patch(socket, "getaddrinfo", self._wrap_lookup(socket.getaddrinfo, "resolve"))
            for name in ("gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
                self._patch(socket, name, self._wrap_lookup(getattr(socket, name), "resolve"))
            _ACTIVE = self
        return self

    def uninstall(self) -> None:
        global _ACTIVE
        with _LOCK:
            for (owner, name), original in self._saved.items():
                setattr(owner, name, original)
            self._saved.clear()
            if _ACTIVE is self:
                _ACTIVE = None

    def __enter__(self) -> NetworkGuard:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()

    def _patch(self, owner: object, name: str, replacement: object) -> None:
        self._saved[(owner, name)] = getattr(owner, name)
        setattr(owner, name, replacement)

    # -- the checks ---------------------------------------------------------------------------
    def is_local(self, host: object) -> bool:
        """True for names and addresses that never leave the machine (when loopback is allowed)."""
        if not self.allow_loopback:
            return False
        if host is None:
            return True  # getaddrinfo(None, port): the loopback/passive address
        if isinstance(host, (bytes, bytearray)):
            host = host.decode("ascii", "replace")
        if isinstance(host, int):  # AF_INET as an int address is unusual; treat as an address
            host = str(ipaddress.ip_address(host))
        name = str(host).strip("[]").split("%")[0].rstrip(".").lower()
        if name in ("", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"):
            return True
        if name.endswith(".localhost") or name == socket.gethostname().lower():
            # RFC 6761 names, and our own hostname (resolved from /etc/hosts, used by getfqdn).
            return True
        try:
            addr = ipaddress.ip_address(name)
        except ValueError:
            return False  # any other name would need a DNS query
        mapped = getattr(addr, "ipv4_mapped", None)
        if mapped is not None:
            addr = mapped
        return addr.is_loopback or addr.is_unspecified

    def _block(self, action: str, host: object, port: object) -> None:
        caller = _find_caller()
        host_s = host.decode("ascii", "replace") if isinstance(host, (bytes, bytearray)) else str(host)
        try:
            port_i = int(port) if port not in (None, "") else None
        except (TypeError, ValueError):
            port_i = None
        attempt = Attempt(action, host_s, port_i, caller, threading.current_thread().name)
        self.attempts.append(attempt)
        verb = {"connect": "tried to connect to", "resolve": "tried to look up",
                "send": "tried to send to"}[action]
        error = NetworkBlockedError(
            f"figurine is offline: {caller} {verb} {attempt.target()}",
            hint="nothing but `figurine weights fetch` uses the network; "
                 "fetch missing weights with it first",
        )
        error.attempt = attempt
        raise error

    def _check_address(self, action: str, family: int, address: object) -> None:
        if family == socket.AF_UNIX or family == getattr(socket, "AF_NETLINK", -1):
            return  # local IPC / kernel sockets
        if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            host, port = address[0], address[1] if len(address) > 1 else None
            if not self.is_local(host):
                self._block(action, host, port)
            return
        self._block(action, f"{address!r} (address family {family})", None)

    # -- wrappers -----------------------------------------------------------------------------
    def _wrap_connect(self, original):
        guard = self

        def connect(sock, address, *args, **kwargs):
            guard._check_address("connect", sock.family, address)
            return original(sock, address, *args, **kwargs)

        connect.__wrapped__ = original
        return connect

    def _wrap_send(self, original, addr_index: int):
        guard = self

        def send(sock, *args, **kwargs):
            address = kwargs.get("address")
            if address is None and len(args) >= (2 if addr_index == -1 else addr_index + 1):
                address = args[addr_index]
            if address is not None:
                guard._check_address("send", sock.family, address)
            return original(sock, *args, **kwargs)

        send.__wrapped__ = original
        return send

    def _wrap_lookup(self, original, action: str):
        guard = self
        kind = original.__name__

        def lookup(*args, **kwargs):
            host, port = _lookup_target(kind, args, kwargs)
            if not guard.is_local(host):
                guard._block(action, host, port)
            return original(*args, **kwargs)

        lookup.__wrapped__ = original
        lookup.__name__ = kind
        lookup.__doc__ = original.__doc__
        return lookup


def _lookup_target(kind: str, args: tuple, kwargs: dict) -> tuple[object, object]:
    """(host, port) from the arguments of create_connection, getaddrinfo or gethostby*."""
    if kind == "create_connection":
        address = args[0] if args else kwargs.get("address", ())
        return address[0], address[1] if len(address) > 1 else None
    if kind == "getaddrinfo":
        host = args[0] if args else kwargs.get("host")
        port = args[1] if len(args) > 1 else kwargs.get("port")
        return host, port
    return (args[0] if args else next(iter(kwargs.values()), None)), None


def _find_caller() -> str:
    """The code that asked for the connection, skipping socket/HTTP plumbing and this module.

    Third-party callers are named by their outermost frame inside their own package (the public
    entry point, e.g. huggingface_hub.file_download.hf_hub_download), our own code by the
    innermost frame (the line that tried).
    """
    frame = sys._getframe(1)
    innermost = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "?")
        top = module.split(".")[0]
        if module != __name__ and not _is_plumbing(top):
            innermost = frame
            break
        frame = frame.f_back
    if innermost is None:
        return f"code in thread {threading.current_thread().name!r}"
    module = innermost.f_globals.get("__name__", "?")
    top = module.split(".")[0]
    inner_name = _frame_name(innermost)
    if top in _OWN or top.startswith("test_"):
        return inner_name
    entry = innermost
    frame = innermost.f_back
    while frame is not None and frame.f_globals.get("__name__", "?").split(".")[0] == top:
        if _looks_public(frame.f_code.co_name):  # skip decorator wrappers such as _inner_fn
            entry = frame
        frame = frame.f_back
    entry_name = _frame_name(entry)
    return entry_name if entry is innermost else f"{entry_name} (via {inner_name})"


def _looks_public(function: str) -> bool:
    if function.startswith("__") and function.endswith("__"):
        return True  # __init__, __call__: a class used as the entry point
    return not function.startswith(("_", "<")) and function not in ("wrapper", "inner", "wrapped")


def _frame_name(frame) -> str:
    code = frame.f_code
    return f"{frame.f_globals.get('__name__', '?')}.{getattr(code, 'co_qualname', code.co_name)}"


def install_network_guard(allow_loopback: bool = True) -> NetworkGuard:
    """Install (or return the already installed) process-wide guard."""
    if _ACTIVE is not None:
        if _ACTIVE.allow_loopback != allow_loopback:
            raise RuntimeError("a NetworkGuard with other settings is installed")
        return _ACTIVE
    return NetworkGuard(allow_loopback).install()


def active_guard() -> NetworkGuard | None:
    """The installed guard, if any (for `figurine doctor` and tests)."""
    return _ACTIVE

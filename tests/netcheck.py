"""Run a command with no network at all, or list the connections it tries (test helper).

    from tests.netcheck import run_without_network, outbound_connections
    proc, why = run_without_network([sys.executable, "-m", "figurine", "make", ...])
    if proc is None:
        pytest.skip(why)
    assert proc.returncode == 0, proc.stderr

    found, why = outbound_connections([sys.executable, "-c", "..."])   # via strace
    assert found == [], found

    run = run_offline_traced([...])   # one run, both checks (where this machine allows each)

Two independent checks below the Python-level guard in figurine/privacy.py:

1. `run_without_network` runs the command under `unshare -n` (as root) or `unshare -rn` (an
   unprivileged user namespace), i.e. in a fresh network namespace with only a loopback device,
   which it brings up so a local web server still works. Anything that tries the outside world,
   native code included, fails there: the run proves the command needs no network.
   Verified on the build machine (root in a container): `unshare -n` works, `ip` is present.
2. `outbound_connections` runs the command under `strace -f` and returns every connect/sendto
   syscall aimed at a non-loopback IPv4/IPv6 address: the run proves it did not even try.

Both return `(None, reason)` where the machine does not allow them, so tests can skip with it.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# Inside the new namespace: bring loopback up (a fresh namespace has it down), then run.
_LO_UP = 'ip link set lo up 2>/dev/null || true; exec "$@"'


@functools.lru_cache(maxsize=1)
def _unshare_prefix() -> tuple[list[str] | None, str]:
    """The working unshare invocation here, or None and why not."""
    if shutil.which("unshare") is None:
        return None, "unshare is not installed"
    reasons = []
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        # /proc/net/dev lists the devices of the caller's namespace (/sys/class/net does not).
        probe = prefix + ["sh", "-c", _LO_UP, "sh", "cat", "/proc/net/dev"]
        try:
            r = subprocess.run(probe, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as e:
            reasons.append(f"{' '.join(prefix)}: {e}")
            continue
        devices = [ln.split(":")[0].strip() for ln in r.stdout.splitlines() if ":" in ln]
        if r.returncode == 0 and devices == ["lo"]:
            return prefix, "ok"
        reasons.append(f"{' '.join(prefix)}: exit {r.returncode}, devices {devices}, "
                       f"{r.stderr.strip()[:200]}")
    return None, "no network namespace allowed here (" + "; ".join(reasons) + ")"


def network_namespace_reason() -> str | None:
    """None when run_without_network works on this machine, else why it does not."""
    prefix, why = _unshare_prefix()
    return None if prefix else why


def run_without_network(cmd: list[str], timeout: float = 600, **kwargs
                        ) -> tuple[subprocess.CompletedProcess | None, str]:
    """Run `cmd` in an empty network namespace (loopback only); (CompletedProcess, "ok").

    Extra keyword arguments go to subprocess.run (cwd, env, input, ...). Output is captured as
    text unless the caller says otherwise. Returns (None, reason) if no namespace can be made.
    """
    prefix, why = _unshare_prefix()
    if prefix is None:
        return None, why
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    full = prefix + ["sh", "-c", _LO_UP, "sh", *map(str, cmd)]
    return subprocess.run(full, timeout=timeout, **kwargs), "ok"


# strace prints e.g. connect(3, {sa_family=AF_INET, sin_port=htons(443),
# sin_addr=inet_addr("1.2.3.4")}, 16) or inet_pton(AF_INET6, "2001:db8::1", &sin6_addr)
_ADDR = re.compile(
    r'(?P<call>connect|sendto|sendmsg|sendmmsg)\(.*?sa_family=AF_INET6?,'
    r'(?:.*?port=htons\((?P<port>\d+)\))?'
    r'.*?(?:inet_addr\("(?P<v4>[^"]+)"\)|inet_pton\(AF_INET6, "(?P<v6>[^"]+)")'
)


@functools.lru_cache(maxsize=1)
def strace_reason() -> str | None:
    """None when outbound_connections works here, else why not."""
    if shutil.which("strace") is None:
        return "strace is not installed"
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect", "true"],
                       capture_output=True, text=True, timeout=20)
    return None if r.returncode == 0 else f"strace cannot trace here: {r.stderr.strip()[:200]}"


STRACE = ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg,sendmmsg"]


def _outbound(log: Path) -> list[str]:
    """Non-loopback IPv4/IPv6 targets of the connect/sendto calls in a strace log."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        m = _ADDR.search(line)
        if not m:
            continue
        host = m.group("v4") or m.group("v6")
        if ipaddress.ip_address(host).is_loopback:
            continue
        found.append(f"{m.group('call')} {host}:{m.group('port') or '?'}")
    return found


def outbound_connections(cmd: list[str], timeout: float = 600, **kwargs
                         ) -> tuple[list[str] | None, str]:
    """Run `cmd` under strace; ([\"connect 1.2.3.4:443\", ...], "ok") for non-loopback tries.

    Returns (None, reason) if strace is unavailable. The CompletedProcess is not returned: use
    run_without_network or a plain run for the command's own result.
    """
    why = strace_reason()
    if why:
        return None, why
    kwargs.setdefault("capture_output", True)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "strace.log"
        subprocess.run([*STRACE, "-o", str(log), *map(str, cmd)], timeout=timeout, **kwargs)
        return _outbound(log), "ok"


def run_offline_traced(cmd: list[str], timeout: float = 600, **kwargs) -> dict:
    """Run `cmd` once with both checks: in an empty network namespace where this machine allows
    one, and under strace (inside the namespace) where strace works.

    Returns {"proc": CompletedProcess, "unshared": bool, "why_not_unshared": str,
    "outbound": [targets] or None, "why_no_strace": str or None}. A connection tried in the
    namespace fails there but strace still sees the attempt, so each check stands on its own.
    """
    prefix, why_ns = _unshare_prefix()
    why_strace = strace_reason()
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "strace.log"
        full = list(map(str, cmd))
        if why_strace is None:
            full = [*STRACE, "-o", str(log), *full]
        if prefix is not None:
            full = prefix + ["sh", "-c", _LO_UP, "sh", *full]
        proc = subprocess.run(full, timeout=timeout, **kwargs)
        outbound = _outbound(log) if why_strace is None else None
    return {"proc": proc, "unshared": prefix is not None, "why_not_unshared": why_ns,
            "outbound": outbound, "why_no_strace": why_strace}

"""figurine serve: the web page, on this computer only.

    figurine serve                        # http://127.0.0.1:7860/
    figurine serve --port 8080 --weights /data/figurine-weights
    FIGURINE_WEB_TOKEN=... figurine serve --listen 0.0.0.0    # other machines too, with a login
    figurine serve --listen 0.0.0.0 --token-file ~/.config/figurine/web-token

Without --listen the page is bound to 127.0.0.1, whatever the environment says (Gradio's
GRADIO_SERVER_NAME asking for a wider address is refused with an error, not ignored), and needs
no login. --listen beyond loopback refuses to start without a token (at least MIN_TOKEN
characters, from --token-file or $FIGURINE_WEB_TOKEN); every request then needs a login with
any user name and the token as password. A token given on loopback is required there too.
A session's files are deleted when its tab closes, after --idle-timeout seconds without an
event (default 900, 15 minutes), and when the server stops (figurine/web.py says exactly how).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from figurine.commands._common import add_config_args, config_from_args
from figurine.errors import InputError

DEFAULT_PORT = 7860
TOKEN_ENV = "FIGURINE_WEB_TOKEN"
MIN_TOKEN = 16
MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"


def add_parser(sub) -> argparse.ArgumentParser:
    from figurine.web import IDLE_SECONDS

    p = sub.add_parser("serve", help="the web page, served on 127.0.0.1",
                       description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    p.add_argument("--listen", nargs="?", const="0.0.0.0", metavar="HOST",
                   help="serve on HOST instead of 127.0.0.1 (alone: 0.0.0.0, every interface); beyond "
                   f"loopback it needs a token ({TOKEN_ENV} or --token-file) and anyone with the token "
                   "who can reach that address can use your GPU")
    p.add_argument("--token-file", metavar="FILE",
                   help=f"file whose first line is the login token (default: ${TOKEN_ENV}); "
                   f"at least {MIN_TOKEN} characters")
    p.add_argument("--idle-timeout", type=float, default=IDLE_SECONDS, metavar="SECONDS",
                   help=f"delete a session's photo and results after this long without an event "
                   f"(default {IDLE_SECONDS:g}: 15 minutes)")
    add_config_args(p)
    return p


def bind_address(listen: str | None, environ=os.environ) -> tuple[str, str | None]:
    """(host, warning): 127.0.0.1 unless --listen names another address."""
    from figurine.web import LOOPBACK, is_loopback

    if listen is None:
        asked = environ.get("GRADIO_SERVER_NAME")
        if asked and not is_loopback(asked):
            raise InputError(f"GRADIO_SERVER_NAME={asked} asks to serve beyond this computer; "
                             "figurine serves on 127.0.0.1 unless you pass --listen HOST")
        return LOOPBACK, None
    host = listen.strip()
    if not host:
        raise InputError("--listen needs an address, e.g. --listen 0.0.0.0")
    if is_loopback(host):
        return host, None
    return host, (f"serving on {host}, beyond this computer: anyone with the token who can reach it "
                  "can use the GPU; the connection is plain HTTP, so use it on a network you trust")


def login_token(token_file: str | None, environ=os.environ) -> str | None:
    """The token from --token-file (first line) or $FIGURINE_WEB_TOKEN; None if neither."""
    if token_file:
        path = Path(token_file)
        try:
            if not path.is_file():
                raise InputError(f"--token-file {path.name}: not a file")
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"--token-file {path.name}: cannot read it ({e.__class__.__name__})") from None
        token, source = (lines[0].strip() if lines else ""), f"--token-file {path.name}"
    elif environ.get(TOKEN_ENV) is not None:
        token, source = environ[TOKEN_ENV].strip(), TOKEN_ENV
    else:
        return None
    if len(token) < MIN_TOKEN or any(c.isspace() for c in token):
        raise InputError(f"{source}: the token must be at least {MIN_TOKEN} characters without spaces",
                         hint=f"make one with {MAKE_TOKEN}")
    return token


def run(args) -> int:
    from figurine import privacy
    from figurine.web import is_loopback

    if not 1 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: choose a port between 1 and 65535")
    if not 1 <= args.idle_timeout <= 7 * 24 * 3600:
        raise InputError(f"--idle-timeout {args.idle_timeout:g}: choose 1 to 604800 seconds")
    host, warning = bind_address(args.listen)
    token = login_token(args.token_file)
    if token is None and not is_loopback(host):
        raise InputError(f"--listen {host} serves beyond this computer and needs a login token: "
                         f"set {TOKEN_ENV} or pass --token-file FILE",
                         hint=f"at least {MIN_TOKEN} characters, e.g. from {MAKE_TOKEN}")
    privacy.go_offline()
    privacy.install_network_guard(allow_loopback=True)
    cfg = config_from_args(args)
    if args.verbose:
        import logging

        logging.getLogger("figurine").setLevel(logging.INFO)
    if warning:
        print(f"figurine: warning: {warning}", file=sys.stderr, flush=True)
    if token:
        print("figurine: log in with any user name and the token as password", flush=True)
    from figurine.web import serve

    serve(cfg, host=host, port=args.port, token=token, idle=args.idle_timeout)
    return 0

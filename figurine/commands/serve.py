"""figurine serve: the web page, on this computer only.

    figurine serve                        # http://127.0.0.1:7860/
    figurine serve --port 8080 --weights /data/figurine-weights
    figurine serve --listen 0.0.0.0       # other machines too: prints a warning

Without --listen the page is bound to 127.0.0.1, whatever the environment says (Gradio's
GRADIO_SERVER_NAME asking for a wider address is refused with an error, not ignored).
"""

from __future__ import annotations

import argparse
import os
import sys

from figurine.commands._common import add_config_args, config_from_args
from figurine.errors import InputError

DEFAULT_PORT = 7860


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("serve", help="the web page, served on 127.0.0.1",
                       description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    p.add_argument("--listen", nargs="?", const="0.0.0.0", metavar="HOST",
                   help="serve on HOST instead of 127.0.0.1 (alone: 0.0.0.0, every interface); "
                   "anyone who can reach that address can use your GPU and see the photos uploaded")
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
    return host, (f"serving on {host}, beyond this computer: anyone who can reach it can use "
                  "the GPU and see the photos uploaded")


def run(args) -> int:
    from figurine import privacy

    if not 1 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: choose a port between 1 and 65535")
    host, warning = bind_address(args.listen)
    privacy.go_offline()
    privacy.install_network_guard(allow_loopback=True)
    cfg = config_from_args(args)
    if args.verbose:
        import logging

        logging.getLogger("figurine").setLevel(logging.INFO)
    if warning:
        print(f"figurine: warning: {warning}", file=sys.stderr, flush=True)
    from figurine.web import serve

    serve(cfg, host=host, port=args.port)
    return 0

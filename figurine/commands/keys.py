"""figurine keys: make the local key that signs C2PA manifests (Content Credentials).

    figurine keys create ~/.figurine-key
    figurine keys create ~/.figurine-key --name "Ada Lovelace" --days 730 --force

Writes DIR/figurine-signing-key.pem (the private key: mode 0600 in a 0700 folder; keep it to
yourself) and DIR/figurine-signing-cert.pem (a self-signed certificate with that name). See
figurine/signing.py or the README ("Provenance") for what such a signature proves and what it
does not. Needs the optional extra: pip install 'figurine[c2pa]'.
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("keys", help="make a local key for signing C2PA manifests",
                       description=__doc__.splitlines()[0].split(": ", 1)[1])
    actions = p.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    c = actions.add_parser("create", help="make a private key and a self-signed certificate in DIR",
                           description="Make a private key and a self-signed certificate in DIR.")
    c.add_argument("dir", metavar="DIR", help="folder for the key (made private if new)")
    c.add_argument("--name", default="figurine user",
                   help="the name in the certificate, shown as signer of every file you sign "
                        "(default: 'figurine user'; nobody verifies it)")
    c.add_argument("--days", type=int, default=5 * 365, help="how long the certificate is valid (default: 1825)")
    c.add_argument("--force", action="store_true", help="replace an existing key in DIR")
    return p


def run(args) -> int:
    from figurine.signing import create_key, load_key

    key_path, cert_path = create_key(args.dir, name=args.name, days=args.days, force=args.force)
    key = load_key(key_path.parent)
    print(f"wrote {key_path} (private key: keep it to yourself)")
    print(f"wrote {cert_path} (self-signed certificate for \"{key.name}\", valid until {key.not_after:%Y-%m-%d})")
    return 0

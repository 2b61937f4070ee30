"""C2PA Content Credentials: a manifest saying "made by figurine, trainedAlgorithmicMedia",
signed with a key the user makes on their own machine; and reading any file's manifest back.

    from figurine.signing import create_key, load_key, sign_c2pa, read_c2pa
    create_key("~/.figurine-key", name="Ada Lovelace")        # once: key + self-signed cert
    key = load_key("~/.figurine-key")
    signed = sign_c2pa(jpeg_bytes, "JPEG", key.key_pem, key.cert_pem)
    report = read_c2pa(signed, "JPEG")    # C2paReport(state="valid", signer="Ada Lovelace", ...)

Needs the optional extra: pip install "figurine[c2pa]" (c2pa-python, the Content Authenticity
Initiative's own library, and cryptography for the key).

What a self-signed manifest proves, and what it does not:
- It proves the file is unchanged since this key signed it (any changed byte of the picture or
  its metadata makes the manifest "invalid"), and that whoever holds the key made the claims in
  it: "created by figurine, digital source type trainedAlgorithmicMedia".
- It does not prove who that is: the certificate says whatever name its maker typed, and no
  one checked it. Verifiers (contentcredentials.org/verify, Adobe tools, `figurine inspect`)
  show the signer as untrusted / unknown (code signingCredential.untrusted), because the
  certificate is on no C2PA trust list; only certificates bought from a CA on such a list
  are shown as trusted.
- Like any metadata it is lost when a platform strips or re-encodes the file; the invisible
  watermark (figurine/watermark.py) is what survives that.

Key files (create_key): DIR/figurine-signing-key.pem (ECDSA P-256 private key, PKCS#8 PEM, not
encrypted; mode 0600 in a 0700 folder) and DIR/figurine-signing-cert.pem (X.509 v3, self-signed,
ES256, key usage digitalSignature, extended key usage C2PA claim signing + emailProtection).
The certificate's name goes into every file signed with it: the default is "figurine user",
not the login name.

Privacy and the network: signing uses no time-stamp authority and reading fetches nothing
(remote manifests and OCSP are off), so no server learns about the file.
"""

from __future__ import annotations

import datetime
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from figurine import __version__
from figurine.errors import InputError, OutputExistsError

KEY_FILE = "figurine-signing-key.pem"
CERT_FILE = "figurine-signing-cert.pem"
DEFAULT_NAME = "figurine user"
DEFAULT_DAYS = 5 * 365
MAX_PEM_BYTES = 64 << 10
C2PA_CLAIM_SIGNING = "1.3.6.1.4.1.62558.2.1"  # id-kp for C2PA claim signing (C2PA spec 2.x)
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}

# Settings for every c2pa call: nothing is fetched (remote manifests, OCSP, certificate
# status) and no thumbnail copy of the picture is added to the manifest.
C2PA_SETTINGS = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "builder": {"thumbnail": {"enabled": False}},
}


@dataclass(frozen=True)
class SigningKey:
    key_pem: bytes = field(repr=False)
    cert_pem: bytes
    name: str  # the certificate's common name
    not_after: datetime.datetime


@dataclass
class C2paReport:
    """A file's C2PA manifest as c2pa-python validated it. Every string comes from the file."""

    state: str  # "trusted", "valid" (signature and hashes check out), "invalid", or "remote"
    #             (the file points to a manifest on a server: never fetched)
    signer: str | None = None  # certificate common name
    issuer: str | None = None  # certificate issuer organisation
    generator: str | None = None  # claim generator name and version
    source_types: list[str] = field(default_factory=list)  # digitalSourceType of its actions
    failures: list[str] = field(default_factory=list)  # validation codes, e.g. signingCredential.untrusted
    error: str | None = None  # why the manifest could not be read at all

    @property
    def untrusted(self) -> bool:
        return "signingCredential.untrusted" in self.failures


def _c2pa():
    try:
        import c2pa
    except ImportError:
        raise InputError("C2PA needs the optional extra: pip install 'figurine[c2pa]'") from None
    return c2pa


def available() -> bool:
    """Whether c2pa-python is installed (the `c2pa` extra)."""
    try:
        import c2pa  # noqa: F401
        return True
    except ImportError:
        return False


def _context(c2pa):
    return c2pa.Context(c2pa.Settings.from_dict(C2PA_SETTINGS))


# --- Keys -------------------------------------------------------------------------------------

def create_key(folder: str | os.PathLike, name: str = DEFAULT_NAME, days: int = DEFAULT_DAYS,
               force: bool = False) -> tuple[Path, Path]:
    """Make a private key and a self-signed certificate for it in `folder`; (key, cert) paths."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise InputError("making a signing key needs the optional extra: pip install 'figurine[c2pa]'") from None
    from figurine.outputs import atomic_write

    # 1. Check the inputs.
    name = name.strip()
    if not 1 <= len(name) <= 64 or not name.isprintable():
        raise InputError("--name must be 1 to 64 printable characters")
    if not 1 <= days <= 3650:
        raise InputError(f"--days must be between 1 and 3650, got {days}")
    folder = Path(folder).expanduser()
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file; give a folder for the key")
    for p in (key_path, cert_path):
        if p.exists() and not force:
            raise OutputExistsError(f"{p} exists; use --force to replace the key "
                                    "(files signed with the old one stay valid)")

    # 2. The key and its certificate.
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "self-signed with figurine")])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(C2PA_CLAIM_SIGNING),
                                              ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)

    # 3. Write them: the folder private to the user, the key readable by the user alone.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(key_path, lambda f: f.write(key_pem), force=force)
    os.chmod(key_path, 0o600)
    atomic_write(cert_path, lambda f: f.write(cert_pem), force=force)
    return key_path, cert_path


def load_key(folder: str | os.PathLike) -> SigningKey:
    """The key and certificate create_key wrote, checked: they belong together, the certificate
    is valid today, and the key is ECDSA P-256 (what ES256 signs with)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise InputError("signing needs the optional extra: pip install 'figurine[c2pa]'") from None
    from figurine.provenance import read_bytes

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"{folder}: no such key folder (make one with: figurine keys create {folder})")
    key_pem = read_bytes(folder / KEY_FILE, MAX_PEM_BYTES)
    cert_pem = read_bytes(folder / CERT_FILE, MAX_PEM_BYTES)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise InputError(f"{folder / KEY_FILE}: not an unencrypted PEM private key") from None
    try:
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        raise InputError(f"{folder / CERT_FILE}: not a PEM certificate") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InputError(f"{folder / KEY_FILE}: not an ECDSA P-256 key (make one with figurine keys create)")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise InputError(f"{folder}: the certificate is not the key's own (they come from different keys)")
    now = datetime.datetime.now(datetime.timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise InputError(f"{folder / CERT_FILE}: expired or not yet valid "
                         f"({cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}); "
                         "make a new key with figurine keys create --force")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return SigningKey(key_pem, cert_pem, str(names[0].value) if names else "", cert.not_valid_after_utc)


# --- Signing and reading ----------------------------------------------------------------------

def manifest_definition(assertions: list[dict] | None = None, title: str = "figurine package") -> dict:
    """The manifest figurine signs: one c2pa.created action, digitalSourceType
    trainedAlgorithmicMedia, software agent figurine; plus any `assertions` given."""
    created = {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
               "softwareAgent": {"name": "figurine", "version": __version__}}
    return {
        "claim_generator_info": [{"name": "figurine", "version": __version__}],
        "title": title,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [created]}}] + list(assertions or []),
    }


def sign_c2pa(image_bytes: bytes, fmt: str, key: bytes, cert: bytes,
              assertions: list[dict] | None = None) -> bytes:
    """`image_bytes` (a PNG, JPEG or WebP file) with a C2PA manifest embedded, signed ES256 with
    `key` (PEM) under `cert` (PEM chain, the signer's certificate first)."""
    c2pa = _c2pa()
    mime = MIME_TYPES.get(fmt.upper())
    if mime is None:
        raise ValueError(f"C2PA signing supports PNG, JPEG and WEBP, not {fmt}")
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, cert, key, None))
        dest = io.BytesIO()
        with c2pa.Builder(manifest_definition(assertions), context=_context(c2pa)) as builder:
            builder.sign(signer, mime, io.BytesIO(image_bytes), dest)
    except c2pa.C2paError as e:
        raise InputError(f"C2PA signing failed: {str(e)[:200]}") from None
    return dest.getvalue()


def read_c2pa(data: bytes, fmt: str) -> C2paReport | None:
    """The file's C2PA manifest, validated (offline); None when it has none."""
    c2pa = _c2pa()
    mime = MIME_TYPES.get(fmt.upper(), "application/octet-stream")
    try:
        reader = c2pa.Reader(mime, io.BytesIO(data), context=_context(c2pa))
    except c2pa.C2paError as e:
        text = str(e)
        if "ManifestNotFound" in type(e).__name__ or "ManifestNotFound" in text:
            return None
        if "RemoteManifest" in type(e).__name__ or text.startswith("Remote:"):
            return C2paReport(state="remote", error=text[:200])  # a URL in the file: not fetched
        return C2paReport(state="invalid", error=text[:200])
    try:
        state = (reader.get_validation_state() or "invalid").lower()
        results = reader.get_validation_results() or {}
        active = reader.get_active_manifest() or {}
    except (c2pa.C2paError, ValueError, json.JSONDecodeError) as e:
        return C2paReport(state="invalid", error=str(e)[:200])
    finally:
        reader.close()

    failures = [f.get("code", "?") for f in (results.get("activeManifest") or {}).get("failure", [])
                if isinstance(f, dict)]
    sig = active.get("signature_info") or {}
    gen = (active.get("claim_generator_info") or [{}])[0]
    generator = " ".join(str(gen.get(k)) for k in ("name", "version") if gen.get(k)) if isinstance(gen, dict) else None
    types = []
    for assertion in active.get("assertions") or []:
        if isinstance(assertion, dict) and str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in (assertion.get("data") or {}).get("actions") or []:
                if isinstance(action, dict) and action.get("digitalSourceType"):
                    types.append(str(action["digitalSourceType"]))
    return C2paReport(state=state if state in ("trusted", "valid") else "invalid",
                      signer=sig.get("common_name"), issuer=sig.get("issuer"),
                      generator=generator or None, source_types=types, failures=failures)

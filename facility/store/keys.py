"""Where the audit key comes from: the file named by ``storage.audit_key_env``, else
``audit.key`` beside the database (created 0600 by the service on first start)."""

from __future__ import annotations

import hashlib
import json
import os
import stat

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from facility.config.schema import Config
from facility.store.audit import ensure_key, load_key
from facility.store.errors import AuditKeyError


def default_key_path(cfg: Config) -> str:
    """``<db folder>/audit.key``."""
    return os.path.join(os.path.dirname(cfg.db_path), "audit.key")


def audit_key(cfg: Config, *, create: bool = False) -> bytes | None:
    """The HMAC key, or None when there is none (and ``create`` is false)."""
    key = load_key(cfg.storage.audit_key_env)
    if key is not None:
        return key
    path = default_key_path(cfg)
    if create:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return ensure_key(path)
    if os.access(path, os.R_OK):
        with open(path, "rb") as fh:
            return fh.read().strip()
    return None


# ---- the Ed25519 signing key (docs/ARCHITECTURE.md "Signing") --------------------------------
# The service signs export manifests and chain checkpoints with an Ed25519 key: the private
# key is a PKCS#8 PEM file, 0600, named by ``storage.signing_key_env`` (default
# ``signing.key`` beside the database), created on first start. Anyone holding the public
# key can check a signature; nobody without the private key can make one. The public key is
# named by its fingerprint ``ed25519:`` + the first 32 hex digits of SHA-256(raw public key).

SIGNING_KEY = "signing.key"
PUBLIC_KEY = "signing.pub"  # the raw public key in hex, readable by anyone (0644)
KEYRING = "signing.keys"  # one JSON line per rotation: the announcements (see rotate_signing_key)


def signing_key_path(cfg: Config) -> str:
    """The file named by ``$storage.signing_key_env``, else ``<db folder>/signing.key``."""
    path = os.environ.get(cfg.storage.signing_key_env, "").strip()
    return path or os.path.join(os.path.dirname(cfg.db_path), SIGNING_KEY)


def fingerprint(public_raw: bytes) -> str:
    """``ed25519:`` + the first 32 hex digits of SHA-256 of the 32-byte raw public key."""
    return "ed25519:" + hashlib.sha256(public_raw).hexdigest()[:32]


def public_raw(key) -> bytes:
    """The 32 raw bytes of a private (or public) key's public half."""
    pub = key.public_key() if hasattr(key, "public_key") else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign(key, data: bytes) -> str:
    """Ed25519 signature of ``data`` (hex)."""
    return key.sign(data).hex()


def signature_ok(public_hex: str, data: bytes, sig_hex: str) -> bool:
    """Whether ``sig_hex`` is the Ed25519 signature of ``data`` by ``public_hex``."""
    try:
        pub = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
        pub.verify(bytes.fromhex(sig_hex), data)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _write_private(path: str, key) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    pub = os.path.join(os.path.dirname(os.path.abspath(path)), PUBLIC_KEY)
    with open(pub + ".new", "w", encoding="ascii") as fh:
        fh.write(public_raw(key).hex() + "\n")
    os.chmod(pub + ".new", 0o644)
    os.replace(pub + ".new", pub)


def load_signing_key(path: str):
    """The private key at ``path``; :class:`AuditKeyError` if unreadable, not a key, or
    accessible by group/others."""
    try:
        st = os.stat(path)
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise AuditKeyError(f"{path}: cannot read signing key ({exc.strerror})") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuditKeyError(f"{path}: signing key is accessible by group/others (mode "
                            f"{stat.S_IMODE(st.st_mode):04o}); fix: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise AuditKeyError(f"{path}: not an Ed25519 private key (PKCS#8 PEM)")
    return key


def signing_key(cfg: Config, *, create: bool = False):
    """The site's signing key; created (0600) when absent and ``create`` is true, else None
    when absent or not readable by this user."""
    path = signing_key_path(cfg)
    if not os.path.exists(path):
        if not create:
            return None
        _write_private(path, ed25519.Ed25519PrivateKey.generate())
    elif not create and not os.access(path, os.R_OK):
        return None
    return load_signing_key(path)


def site_public_keys(folder: str) -> list[str]:
    """Public keys (hex) the site has signed with: every key in the rotation announcements and
    the current ``signing.pub``, oldest first (empty when the folder has none)."""
    keys: list[str] = []
    for ann in read_keyring(folder):
        for k in (ann.get("old_public"), ann.get("new_public")):
            if k and k not in keys:
                keys.append(k)
    try:
        with open(os.path.join(folder, PUBLIC_KEY), encoding="ascii") as fh:
            cur = fh.read().strip()
    except OSError:
        cur = ""
    if cur and cur not in keys:
        keys.append(cur)
    return keys


def announcement_bytes(ann: dict) -> bytes:
    """What both keys sign in a rotation announcement (everything but the signatures)."""
    body = {k: v for k, v in ann.items() if k not in ("sig_old", "sig_new")}
    return b"facility-key-rotation/1\n" + json.dumps(body, sort_keys=True,
                                                     separators=(",", ":")).encode("utf-8")


def read_keyring(folder: str) -> list[dict]:
    """The rotation announcements beside the key, oldest first ([] when there are none)."""
    try:
        with open(os.path.join(folder, KEYRING), encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except OSError:
        return []


def rotate_signing_key(path: str, at: str, announce=None) -> tuple[dict, object]:
    """Replace the key at ``path`` by a new one; return the announcement (signed by the old key
    and by the new one) and the new key. ``announce(ann, old_key)`` runs before anything is
    switched (the caller writes the announcement into the audit chain there); then the
    announcement is appended to ``signing.keys`` and the new key replaces the old."""
    old = load_signing_key(path)
    new = ed25519.Ed25519PrivateKey.generate()
    ann = {"at": at, "old_key": fingerprint(public_raw(old)), "old_public": public_raw(old).hex(),
           "new_key": fingerprint(public_raw(new)), "new_public": public_raw(new).hex()}
    msg = announcement_bytes(ann)
    ann["sig_old"], ann["sig_new"] = sign(old, msg), sign(new, msg)
    if announce is not None:
        announce(ann, old)
    folder = os.path.dirname(os.path.abspath(path))
    ring = os.path.join(folder, KEYRING)
    with open(ring, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(ann, sort_keys=True, separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(ring, 0o644)
    _write_private(path, new)
    return ann, new

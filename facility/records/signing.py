"""Signed exports and who is trusted (docs/ARCHITECTURE.md "Signing").

The service's Ed25519 key (:mod:`facility.store.keys`) signs every export manifest: the
manifest's ``signature`` is ``{"key": fingerprint, "public_key": hex, "sig": hex}`` over
``facility-export-manifest/1\\n`` + ``manifest_sha256`` (the self-digest, which covers every
other field, the file entries and their row chains included). Anyone can check it with the
public key; only the key's holder can make it. A valid signature proves *origin* only when the
signer is trusted: ``facility verify --trust FINGERPRINT`` / ``--trust-file FILE``.

Rotation: ``facility keys rotate`` writes an announcement ``{old_key, old_public, new_key,
new_public, at}`` signed by both keys (``sig_old``, ``sig_new``) into ``signing.keys`` and the
audit chain, and every later manifest carries the announcements (``key_history``). Trust
extends along them forwards: an auditor who trusts the old key verifies exports signed by the
new one. Exports signed before a rotation carry no announcement of the new key, so an auditor
who only trusts the new key also lists the old fingerprint (``facility keys show`` prints
every key the site has signed with).
"""

from __future__ import annotations

import re

from facility.domain.errors import UsageError
from facility.store.keys import (
    announcement_bytes,
    fingerprint,
    public_raw,
    sign,
    signature_ok,
)

MANIFEST_CONTEXT = b"facility-export-manifest/1\n"
FINGERPRINT = re.compile(r"^ed25519:[0-9a-f]{32}$")
PUBLIC_HEX = re.compile(r"^[0-9a-f]{64}$")
NO_TRUST = "integrity only: origin not checked (no trusted key)"


class OriginError(Exception):
    """The manifest's signature is missing, invalid or by a key nobody trusts."""


def manifest_signature(manifest_sha256: str, key) -> dict:
    """The ``signature`` block of a manifest whose self-digest is ``manifest_sha256``."""
    raw = public_raw(key)
    return {"key": fingerprint(raw), "public_key": raw.hex(),
            "sig": sign(key, MANIFEST_CONTEXT + manifest_sha256.encode("ascii"))}


def parse_trust(token: str, where: str) -> str:
    """A fingerprint from ``ed25519:<32 hex>`` or a raw public key in 64 hex digits."""
    t = token.strip().lower()
    if FINGERPRINT.match(t):
        return t
    if PUBLIC_HEX.match(t):
        return fingerprint(bytes.fromhex(t))
    raise UsageError(f"{where}: {token.strip()!r} is neither a fingerprint (ed25519: and 32 hex "
                     "digits) nor a public key (64 hex digits); see `facility keys show`")


def load_trust(values: tuple[str, ...] | list[str] = (), files: tuple[str, ...] | list[str] = ()
               ) -> set[str]:
    """Trusted fingerprints from ``--trust`` values and trust files (one key a line; ``#``
    starts a comment; a line may be ``<fingerprint> <public key>`` as `keys show` prints)."""
    trusted = {parse_trust(v, "--trust") for v in values}
    for path in files:
        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise UsageError(f"--trust-file {path}: cannot read ({exc.strerror})") from None
        for n, line in enumerate(lines, start=1):
            for token in line.split("#", 1)[0].split():
                trusted.add(parse_trust(token, f"{path} line {n}"))
    return trusted


def extend_trust(trusted: set[str], history: list[dict]) -> set[str]:
    """``trusted`` plus every key announced, by a properly signed rotation, by a trusted key."""
    out = set(trusted)
    for ann in history or []:
        if not isinstance(ann, dict):
            continue
        msg = announcement_bytes(ann)
        try:
            pubs_ok = (fingerprint(bytes.fromhex(ann["old_public"])) == ann["old_key"]
                       and fingerprint(bytes.fromhex(ann["new_public"])) == ann["new_key"])
        except (KeyError, ValueError, TypeError):
            continue
        if (pubs_ok and ann["old_key"] in out
                and signature_ok(ann["old_public"], msg, ann.get("sig_old", ""))
                and signature_ok(ann["new_public"], msg, ann.get("sig_new", ""))):
            out.add(ann["new_key"])
    return out


def check_signature(manifest: dict) -> dict | None:
    """The manifest's valid signature block, None when unsigned; :class:`OriginError` when the
    signature does not match (the manifest was re-made without the key)."""
    block = manifest.get("signature")
    if block is None:
        return None
    try:
        pub, fp, sig = block["public_key"], block["key"], block["sig"]
        ok = fingerprint(bytes.fromhex(pub)) == fp
    except (KeyError, TypeError, ValueError, AttributeError):
        ok, sig, pub = False, "", ""
    digest = str(manifest.get("manifest_sha256", ""))
    if not ok or not signature_ok(pub, MANIFEST_CONTEXT + digest.encode("ascii"), sig):
        raise OriginError("manifest.json: signature does not match (re-made without the "
                          "signing key, or edited)")
    return block


def check_origin(manifest: dict, trusted: set[str] | None) -> str:
    """A line saying what the signature proves; :class:`OriginError` when it proves nothing
    that was asked for."""
    block = check_signature(manifest)
    if not trusted:
        if block is None:
            return f"unsigned; {NO_TRUST}"
        return f"signed by {block['key']}; {NO_TRUST}"
    if block is None:
        raise OriginError("manifest.json: not signed, so its origin cannot be proved (exported "
                          "without the signing key)")
    if block["key"] in trusted:
        return f"origin: signed by trusted key {block['key']}"
    if block["key"] in extend_trust(trusted, manifest.get("key_history") or []):
        return (f"origin: signed by {block['key']}, announced by a rotation signed by a "
                "trusted key")
    raise OriginError(f"manifest.json: signed by {block['key']}, which is not trusted (and no "
                      "signed rotation from a trusted key announces it)")


__all__ = ["NO_TRUST", "OriginError", "check_origin", "check_signature", "extend_trust",
           "load_trust", "manifest_signature", "parse_trust"]

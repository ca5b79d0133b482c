"""The encrypted container around a template's payload: framing, AES-256-GCM, and the checks
that name what is wrong with a file.

``<directory>/<user>.tpl``::

    b"FUTPL" | version (1 byte) | nonce (12 bytes) | ciphertext length (4 bytes, big endian)
    | AES-256-GCM ciphertext + 16-byte tag

The associated data is ``b"FUTPL" + version + b"\\0" + user (UTF-8)``, so a file copied over
another user's file fails authentication. The explicit length field lets a truncated file be
reported as truncated rather than as a generic authentication failure. A fresh random nonce is
drawn for every write. The plaintext is :meth:`~.model.Template.to_payload`.
"""

from __future__ import annotations

import secrets
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceunlock.engine.templates.model import Template
from faceunlock.errors import TemplateCorruptError, TemplateKeyError

MAGIC = b"FUTPL"
FORMAT_VERSION = 1
"""Version byte of the container framing (after :data:`MAGIC`): bump it when the framing, the
cipher or the associated data change. The payload inside has its own ``SCHEMA_VERSION``."""
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32
HEADER_SIZE = len(MAGIC) + 1 + NONCE_SIZE + 4


def _aad(user: str, version: int = FORMAT_VERSION) -> bytes:
    return MAGIC + bytes([version]) + b"\0" + user.encode("utf-8")


def _check_key(key: bytes, user: str) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
        raise TemplateKeyError(user, f"key must be {KEY_SIZE} bytes")
    return bytes(key)


def encrypt_template(template: Template, key: bytes) -> bytes:
    """The complete file contents for ``template`` encrypted under the 32-byte ``key``."""
    payload = template.to_payload()
    key = _check_key(key, template.user)
    nonce = secrets.token_bytes(NONCE_SIZE)
    ct = AESGCM(key).encrypt(nonce, payload, _aad(template.user))
    return MAGIC + bytes([FORMAT_VERSION]) + nonce + struct.pack(">I", len(ct)) + ct


def check_container(blob: bytes, origin: str | Path) -> tuple[int, bytes, bytes]:
    """Check a file's framing (magic, version, length) without a key.

    Returns ``(version, nonce, ciphertext)``; raises TemplateCorruptError naming what is wrong.
    """
    if len(blob) < len(MAGIC) + 1:
        if MAGIC.startswith(blob[: len(MAGIC)]):
            raise TemplateCorruptError(
                origin, f"truncated: {len(blob)} bytes, shorter than the header"
            )
        raise TemplateCorruptError(origin, "bad magic: not a FaceUnlock template file")
    if blob[: len(MAGIC)] != MAGIC:
        raise TemplateCorruptError(
            origin, f"bad magic {blob[:5]!r}: not a FaceUnlock template file"
        )
    version = blob[len(MAGIC)]
    if version != FORMAT_VERSION:
        raise TemplateCorruptError(
            origin,
            f"unsupported format version {version} (this FaceUnlock reads version "
            f"{FORMAT_VERSION}; written by a newer release?)",
        )
    if len(blob) < HEADER_SIZE + TAG_SIZE:
        raise TemplateCorruptError(
            origin,
            f"truncated: {len(blob)} bytes, a template file has at least {HEADER_SIZE + TAG_SIZE}",
        )
    nonce = blob[len(MAGIC) + 1 : len(MAGIC) + 1 + NONCE_SIZE]
    (ct_len,) = struct.unpack(">I", blob[HEADER_SIZE - 4 : HEADER_SIZE])
    ct = blob[HEADER_SIZE:]
    if len(ct) < ct_len:
        raise TemplateCorruptError(
            origin, f"truncated: header declares {ct_len} bytes of ciphertext, file has {len(ct)}"
        )
    if len(ct) > ct_len:
        raise TemplateCorruptError(
            origin, f"{len(ct) - ct_len} bytes of trailing data after the ciphertext"
        )
    return version, nonce, ct


def decrypt_template(blob: bytes, key: bytes, user: str, origin: str | Path) -> Template:
    """Decrypt and parse file contents ``blob`` that must belong to ``user``."""
    version, nonce, ct = check_container(blob, origin)
    key = _check_key(key, user)
    try:
        payload = AESGCM(key).decrypt(nonce, ct, _aad(user, version))
    except InvalidTag as e:
        raise TemplateCorruptError(
            origin,
            f"authentication failed: the file was tampered with, is not {user!r}'s template, "
            "or the key is wrong (keyring reset or replaced?)",
        ) from e
    t = Template.from_payload(payload, origin)
    if t.user != user:
        raise TemplateCorruptError(origin, f"belongs to user {t.user!r}, not {user!r}")
    return t

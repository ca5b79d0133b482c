"""The per-user biometric template store: enrolled face embeddings, encrypted at rest.

Data model
----------
A :class:`Template` belongs to one user and one encoder model (its sha256). It holds
:class:`Anchor` s: one embedding each (``(128,) float32``) plus a ``(64, 64, 3) uint8`` RGB
thumbnail of the aligned face for the UI, a label naming the *appearance* it was enrolled
under (``"default"``, ``"glasses"`` …) and quality figures. Users may add appearances later
and list or remove them (:meth:`Template.labels`, :meth:`Template.remove_label`).

File format
-----------
``<directory>/<user>.tpl``::

    b"FUTPL" | version (1 byte) | nonce (12 bytes) | ciphertext length (4 bytes, big endian)
    | AES-256-GCM ciphertext + 16-byte tag

The associated data is ``b"FUTPL" + version + b"\\0" + user (UTF-8)``, so a file copied over
another user's file fails authentication. The explicit length field lets a truncated file be
reported as truncated rather than as a generic authentication failure. A fresh random nonce is
drawn for every write. The plaintext (:meth:`Template.to_payload`) is a 4-byte big-endian
length, a UTF-8 JSON header (metadata, anchors, array dtypes/shapes), then the raw
little-endian arrays (embeddings, then thumbnails). No pickle anywhere.

Writes are atomic (temp file, fsync, rename, fsync of the directory); before a file is replaced
the previous version, if it still authenticates, is kept as ``<user>.tpl.bak`` (exactly one
backup). Files are mode 0600, directories 0700. A failed write never touches the previous file.
Every write holds an exclusive ``flock`` of the folder, and read-modify-writes re-read the
template under it (:meth:`TemplateStore.update`), so concurrent writers never lose each other's
changes. Temp files are named ``.<file>.<random>.faceunlock-tmp``; those of a writer killed
mid-save are removed by the next save or load. Files or folders another account could write
are refused (:class:`~faceunlock.errors.TemplateUnsafeError`).

Keys
----
The 256-bit key of the per-user store lives in the OS keyring (Secret Service, via ``keyring``;
service ``"faceunlock"``, username = the user, value = base64), created on the first save
(:class:`KeyringKeyProvider`). When no usable keyring exists
:class:`~faceunlock.errors.KeyringUnavailableError` is raised; there is no plaintext fallback.

The login screen (greeter / PAM, running as root) has no access to the user's keyring, so a
*system copy* is kept under ``/var/lib/faceunlock/`` (:class:`SystemTemplateStore`), encrypted
with a per-user key in the root-only key file ``/var/lib/faceunlock/keys/<user>.key``
(:class:`KeyFileKeyProvider`); :func:`install_system_copy` re-encrypts the user copy into it.

Security model
--------------
Protected against:

* other (non-root) local users: files and directories are private (0600/0700), and even a
  readable file is useless without the key;
* offline copying of the template file (backups, a stolen disk image without the keyring or
  ``/var/lib/faceunlock/keys``): the embeddings and thumbnails are encrypted;
* tampering, truncation and file swapping between users: AES-GCM authenticates the whole
  file, and the user name is bound in as associated data;
* redirection of the root-run PAM helper: the system directory is not configurable through
  the environment, and key files not private to the running user are refused.

Not protected against:

* root, who can read the system key files and any process's memory;
* a running session of that user: any process of the user can ask the unlocked keyring for the
  key (Secret Service does not authenticate the requesting program) and decrypt the template;
* a stolen disk that also holds the user's keyring file together with a guessable login
  password (the keyring is only as strong as its password), or holds the system key files
  (they are not encrypted; use full-disk encryption);
* spoofing the camera or presenting a photo: that is the verifier's business, not storage's.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import logging
import math
import os
import re
import secrets
import stat
import struct
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceunlock.errors import (
    InputError,
    KeyringUnavailableError,
    RootRequiredError,
    TemplateCorruptError,
    TemplateError,
    TemplateKeyError,
    TemplateModelMismatchError,
    TemplateNotFoundError,
    TemplateUnsafeError,
    TemplateWriteError,
)
from faceunlock.fileio import atomic_write_bytes, fsync_dir, temp_files, write_temp_file
from faceunlock.paths import system_data_dir, user_data_dir

log = logging.getLogger(__name__)

MAGIC = b"FUTPL"
FORMAT_VERSION = 1
SCHEMA_VERSION = FORMAT_VERSION
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32
HEADER_SIZE = len(MAGIC) + 1 + NONCE_SIZE + 4
EMBEDDING_DIM = 128
THUMBNAIL_SHAPE = (64, 64, 3)
KEYRING_SERVICE = "faceunlock"
TEMPLATE_SUFFIX = ".tpl"
BACKUP_SUFFIX = ".tpl.bak"
MAX_FILE_SIZE = 64 << 20

_USER_RE = re.compile(r"^[A-Za-z0-9_@\\][A-Za-z0-9_.@\\$-]{0,127}$")
_LABEL_MAX = 64


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_user(user: str) -> str:
    """Return ``user`` if it is a safe account name to use in a file name, else InputError."""
    if not isinstance(user, str) or not _USER_RE.match(user):
        raise InputError(
            f"invalid user name {user!r}: expected 1-128 characters of letters, digits, "
            "'_', '.', '@', '\\', '$', '-', not starting with '.', '-' or '$'"
        )
    return user


def _check_label(label: str) -> str:
    if (
        not isinstance(label, str)
        or not label.strip()
        or len(label) > _LABEL_MAX
        or any(ord(c) < 32 or ord(c) == 127 for c in label)
    ):
        raise InputError(
            f"invalid appearance label {label!r}: expected 1-{_LABEL_MAX} printable characters"
        )
    return label


def check_label(label: str) -> str:
    """An appearance label (e.g. ``"glasses"``), checked: InputError names the problem."""
    return _check_label(label)


def _check_quality(quality: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in quality.items():
        if not isinstance(k, str):
            raise InputError(f"quality keys must be strings, got {k!r}")
        try:
            f = float(v)
        except (TypeError, ValueError) as e:
            raise InputError(f"quality[{k!r}] must be a number, got {v!r}") from e
        if not math.isfinite(f):
            raise InputError(f"quality[{k!r}] must be finite, got {f}")
        out[k] = f
    return out


# --------------------------------------------------------------------------- data model


@dataclass(eq=False)
class Anchor:
    """One enrolled face sample.

    ``embedding``: ``(128,) float32``, finite. ``thumbnail``: ``(64, 64, 3) uint8`` RGB
    aligned-face crop for the UI. ``created``: ISO-8601 UTC time. ``quality``: named scores
    (e.g. ``{"sharpness": 0.8, "det_score": 0.99}``).
    """

    id: str
    label: str
    created: str
    embedding: npt.NDArray[np.float32]
    thumbnail: npt.NDArray[np.uint8]
    quality: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.id):
            raise InputError(f"invalid anchor id {self.id!r}")
        _check_label(self.label)
        emb = np.asarray(self.embedding)
        if emb.shape != (EMBEDDING_DIM,) or not np.issubdtype(emb.dtype, np.floating):
            raise InputError(
                f"anchor embedding must be ({EMBEDDING_DIM},) float, got {emb.shape} {emb.dtype}"
            )
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if not np.all(np.isfinite(emb)):
            raise InputError("anchor embedding contains NaN or infinity")
        thumb = np.asarray(self.thumbnail)
        if thumb.shape != THUMBNAIL_SHAPE or thumb.dtype != np.uint8:
            raise InputError(
                f"anchor thumbnail must be {THUMBNAIL_SHAPE} uint8 RGB, "
                f"got {thumb.shape} {thumb.dtype}"
            )
        self.embedding = emb
        self.thumbnail = np.ascontiguousarray(thumb)
        self.quality = _check_quality(self.quality)

    @classmethod
    def new(
        cls,
        embedding: npt.ArrayLike,
        thumbnail: npt.ArrayLike,
        label: str = "default",
        quality: Mapping[str, float] | None = None,
    ) -> Anchor:
        """A new anchor with a random id and the current time."""
        return cls(
            id=uuid.uuid4().hex,
            label=label,
            created=_now(),
            embedding=np.asarray(embedding, dtype=np.float32),
            thumbnail=np.asarray(thumbnail),
            quality=dict(quality or {}),
        )


@dataclass(eq=False)
class Template:
    """A user's enrolment for one encoder model.

    ``threshold``: the accept distance chosen at enrolment (``None``: use the model default).
    ``calibration``: JSON-able statistics (genuine distance mean/std …).
    ``source`` and ``from_backup`` are not stored: they say which file :meth:`TemplateStore.load`
    read, and whether that was the backup.
    """

    user: str
    model_sha256: str
    anchors: list[Anchor] = field(default_factory=list)
    threshold: float | None = None
    security_level: str = "balanced"
    calibration: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=_now)
    updated: str = ""
    schema_version: int = SCHEMA_VERSION
    source: Path | None = field(default=None, repr=False)
    from_backup: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not self.updated:
            self.updated = self.created

    # ---- anchors / appearances

    def __len__(self) -> int:
        return len(self.anchors)

    def embeddings(self) -> npt.NDArray[np.float32]:
        """All anchor embeddings, ``(N, 128) float32`` (``(0, 128)`` when empty)."""
        if not self.anchors:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return np.stack([a.embedding for a in self.anchors]).astype(np.float32, copy=False)

    def thumbnails(self) -> npt.NDArray[np.uint8]:
        """All anchor thumbnails, ``(N, 64, 64, 3) uint8`` RGB."""
        if not self.anchors:
            return np.zeros((0, *THUMBNAIL_SHAPE), dtype=np.uint8)
        return np.stack([a.thumbnail for a in self.anchors])

    def labels(self) -> list[str]:
        """Distinct appearance labels, in order of first enrolment."""
        return list(dict.fromkeys(a.label for a in self.anchors))

    def anchor_labels(self) -> list[str]:
        """The label of every anchor, aligned with :meth:`embeddings` rows."""
        return [a.label for a in self.anchors]

    def anchors_for(self, label: str) -> list[Anchor]:
        return [a for a in self.anchors if a.label == label]

    def get_anchor(self, anchor_id: str) -> Anchor:
        for a in self.anchors:
            if a.id == anchor_id:
                return a
        raise InputError(f"template of {self.user!r} has no anchor with id {anchor_id!r}")

    def add_anchor(self, anchor: Anchor) -> None:
        if any(a.id == anchor.id for a in self.anchors):
            raise InputError(f"template already has an anchor with id {anchor.id!r}")
        self.anchors.append(anchor)

    def add_anchors(self, anchors: Iterable[Anchor]) -> None:
        for a in anchors:
            self.add_anchor(a)

    def remove_anchor(self, anchor_id: str) -> Anchor:
        """Remove and return the anchor ``anchor_id``; InputError if there is none."""
        a = self.get_anchor(anchor_id)
        self.anchors.remove(a)
        return a

    def remove_label(self, label: str) -> list[Anchor]:
        """Remove every anchor of appearance ``label``; InputError if there is none."""
        gone = self.anchors_for(label)
        if not gone:
            raise InputError(f"template of {self.user!r} has no appearance labelled {label!r}")
        self.anchors = [a for a in self.anchors if a.label != label]
        return gone

    def touch(self) -> None:
        self.updated = _now()

    # ---- validation and (de)serialisation of the plaintext payload

    def validate(self) -> None:
        """Raise InputError when the template cannot be stored."""
        check_user(self.user)
        if not isinstance(self.model_sha256, str) or not re.fullmatch(
            r"[0-9a-f]{64}", self.model_sha256
        ):
            raise InputError(f"model_sha256 must be 64 lowercase hex digits: {self.model_sha256!r}")
        if self.schema_version != SCHEMA_VERSION:
            raise InputError(f"cannot write schema version {self.schema_version}")
        if self.threshold is not None and not math.isfinite(float(self.threshold)):
            raise InputError(f"threshold must be finite or None, got {self.threshold}")
        if not isinstance(self.security_level, str) or not self.security_level:
            raise InputError("security_level must be a non-empty string")
        if not self.anchors:
            raise InputError(
                f"template of {self.user!r} has no anchors; delete it instead of saving it"
            )
        ids = [a.id for a in self.anchors]
        if len(set(ids)) != len(ids):
            raise InputError("template has duplicate anchor ids")
        for a in self.anchors:  # re-run the anchor checks: fields may have been reassigned
            a.__post_init__()
        try:
            json.dumps(self.calibration, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InputError(f"calibration is not JSON-serialisable: {e}") from e

    def to_payload(self) -> bytes:
        """The unencrypted serialisation (JSON header + raw arrays). Validates first."""
        self.validate()
        emb = self.embeddings().astype("<f4")
        thumbs = self.thumbnails()
        header = {
            "schema_version": self.schema_version,
            "user": self.user,
            "model_sha256": self.model_sha256,
            "threshold": None if self.threshold is None else float(self.threshold),
            "security_level": self.security_level,
            "calibration": self.calibration,
            "created": self.created,
            "updated": self.updated,
            "anchors": [
                {"id": a.id, "label": a.label, "created": a.created, "quality": a.quality}
                for a in self.anchors
            ],
            "arrays": {
                "embeddings": {"dtype": "<f4", "shape": list(emb.shape)},
                "thumbnails": {"dtype": "|u1", "shape": list(thumbs.shape)},
            },
        }
        hb = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
        return struct.pack(">I", len(hb)) + hb + emb.tobytes() + thumbs.tobytes()

    @classmethod
    def from_payload(cls, data: bytes, origin: str | Path = "<payload>") -> Template:
        """Inverse of :meth:`to_payload`; TemplateCorruptError naming ``origin`` on any defect."""

        def bad(problem: str) -> TemplateCorruptError:
            return TemplateCorruptError(origin, f"invalid payload: {problem}")

        if len(data) < 4:
            raise bad("too short")
        (hlen,) = struct.unpack(">I", data[:4])
        if 4 + hlen > len(data):
            raise bad("header length exceeds payload")
        try:
            h = json.loads(data[4 : 4 + hlen].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise bad(f"header is not JSON ({e})") from e
        if not isinstance(h, dict):
            raise bad("header is not an object")
        try:
            if h["schema_version"] != SCHEMA_VERSION:
                raise bad(f"unsupported schema version {h['schema_version']!r}")
            n = len(h["anchors"])
            arrays = h["arrays"]
            if arrays["embeddings"] != {"dtype": "<f4", "shape": [n, EMBEDDING_DIM]}:
                raise bad(f"unexpected embeddings layout {arrays['embeddings']!r}")
            if arrays["thumbnails"] != {"dtype": "|u1", "shape": [n, *THUMBNAIL_SHAPE]}:
                raise bad(f"unexpected thumbnails layout {arrays['thumbnails']!r}")
            blob = data[4 + hlen :]
            e_size = n * EMBEDDING_DIM * 4
            t_size = n * int(np.prod(THUMBNAIL_SHAPE))
            if len(blob) != e_size + t_size:
                raise bad(f"array data is {len(blob)} bytes, expected {e_size + t_size}")
            emb = np.frombuffer(blob[:e_size], dtype="<f4").reshape(n, EMBEDDING_DIM)
            thumbs = np.frombuffer(blob[e_size:], dtype=np.uint8).reshape(n, *THUMBNAIL_SHAPE)
            anchors = [
                Anchor(
                    id=a["id"],
                    label=a["label"],
                    created=str(a["created"]),
                    embedding=emb[i].astype(np.float32),
                    thumbnail=thumbs[i].copy(),
                    quality=dict(a["quality"]),
                )
                for i, a in enumerate(h["anchors"])
            ]
            thr = h["threshold"]
            calibration = h["calibration"]
            if not isinstance(calibration, dict):
                raise bad("calibration is not an object")
            return cls(
                user=check_user(h["user"]),
                model_sha256=str(h["model_sha256"]),
                anchors=anchors,
                threshold=None if thr is None else float(thr),
                security_level=str(h["security_level"]),
                calibration=calibration,
                created=str(h["created"]),
                updated=str(h["updated"]),
                schema_version=int(h["schema_version"]),
            )
        except TemplateCorruptError:
            raise
        except (KeyError, TypeError, ValueError, InputError) as e:
            raise bad(f"{type(e).__name__}: {e}") from e


# --------------------------------------------------------------------------- encryption


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


# --------------------------------------------------------------------------- key providers


@runtime_checkable
class KeyProvider(Protocol):
    """Supplies the 32-byte AES key of a user's template."""

    def get_key(self, user: str, create: bool) -> bytes:
        """The user's key; with ``create`` a new random key is made and stored when none
        exists, without it a missing key raises TemplateKeyError."""
        ...

    def delete_key(self, user: str) -> None:
        """Forget the user's key (no error when there is none)."""
        ...


class StaticKeyProvider:
    """Keys held in memory: one key for every user, or a per-user mapping (tests, or a
    caller that has read a key from elsewhere). With a mapping and ``create=True`` a missing
    key is generated and kept in the mapping."""

    def __init__(self, key: bytes | Mapping[str, bytes]) -> None:
        self._single: bytes | None = None
        self._keys: dict[str, bytes] = {}
        if isinstance(key, bytes | bytearray):
            self._single = _check_key(bytes(key), "*")
        else:
            self._keys = {u: _check_key(k, u) for u, k in key.items()}

    @staticmethod
    def generate() -> bytes:
        return secrets.token_bytes(KEY_SIZE)

    def get_key(self, user: str, create: bool) -> bytes:
        if self._single is not None:
            return self._single
        if user not in self._keys:
            if not create:
                raise TemplateKeyError(user, "no key for this user")
            self._keys[user] = self.generate()
        return self._keys[user]

    def delete_key(self, user: str) -> None:
        self._keys.pop(user, None)


def _backend_problem(backend: Any) -> str | None:
    """Why ``backend`` cannot hold secrets, or None when it looks usable."""
    mod = type(backend).__module__
    name = type(backend).__name__
    if mod == "keyring.backends.fail":
        return "no keyring backend is available (keyring.backends.fail)"
    if mod == "keyring.backends.null":
        return "the null keyring backend is configured (it stores nothing)"
    if "Plaintext" in name or "Uncrypted" in name:
        return f"the configured keyring backend {mod}.{name} stores secrets unencrypted"
    if mod == "keyring.backends.chainer" and not getattr(backend, "backends", None):
        return "no keyring backend is available (empty chain)"
    return None


class KeyringKeyProvider:
    """Keys in the OS keyring through ``keyring``: service ``"faceunlock"``, username = the
    user, value = base64 of the 32-byte key. ``backend``: a ``keyring`` backend instance
    (default: ``keyring.get_keyring()`` at call time)."""

    def __init__(self, backend: Any = None, service: str = KEYRING_SERVICE) -> None:
        self._backend = backend
        self.service = service

    def _get_backend(self) -> Any:
        if self._backend is not None:
            backend = self._backend
        else:
            try:
                import keyring
            except ImportError as e:  # pragma: no cover - keyring is a dependency
                raise KeyringUnavailableError("the Python package `keyring` is missing") from e
            try:
                backend = keyring.get_keyring()
            except Exception as e:  # a backend forced by PYTHON_KEYRING_BACKEND / keyringrc
                raise KeyringUnavailableError(  # checks its service when it is made
                    f"the configured keyring backend cannot be used: {type(e).__name__}: {e}"
                ) from e
        problem = _backend_problem(backend)
        if problem:
            raise KeyringUnavailableError(problem)
        return backend

    @staticmethod
    def _wrap(e: Exception, backend: Any) -> KeyringUnavailableError:
        kind = type(e).__name__
        where = f"{type(backend).__module__}.{type(backend).__name__}"
        if kind == "KeyringLocked":
            return KeyringUnavailableError(f"the keyring is locked ({where}: {e})")
        return KeyringUnavailableError(f"{where} failed: {kind}: {e}")

    def get_key(self, user: str, create: bool) -> bytes:
        backend = self._get_backend()
        try:
            value = backend.get_password(self.service, user)
        except Exception as e:  # keyring backends raise anything (D-Bus, KeyringLocked …)
            raise self._wrap(e, backend) from e
        if value is None:
            if not create:
                raise TemplateKeyError(
                    user,
                    f"no key in the keyring (service {self.service!r}); the keyring was reset "
                    "or the template comes from another account or machine — re-enrol",
                )
            key = secrets.token_bytes(KEY_SIZE)
            encoded = base64.b64encode(key).decode("ascii")
            try:
                backend.set_password(self.service, user, encoded)
                value = backend.get_password(self.service, user)
            except Exception as e:
                raise self._wrap(e, backend) from e
            if value != encoded:
                raise KeyringUnavailableError(
                    "the keyring accepted the new key but did not return it when read back"
                )
        try:
            key = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as e:
            raise TemplateKeyError(user, "the keyring entry is not valid base64") from e
        if len(key) != KEY_SIZE:
            raise TemplateKeyError(user, f"the keyring entry holds {len(key)} bytes, not 32")
        return key

    def delete_key(self, user: str) -> None:
        backend = self._get_backend()
        try:
            if backend.get_password(self.service, user) is not None:
                backend.delete_password(self.service, user)
        except Exception as e:
            raise self._wrap(e, backend) from e


def _check_private(path: Path, user: str, what: str) -> os.stat_result:
    st = path.stat()
    if st.st_uid != os.geteuid():
        raise TemplateKeyError(
            user, f"{what} {path} is owned by uid {st.st_uid}, not by uid {os.geteuid()}"
        )
    forbidden = 0o077 if what == "key file" else 0o022  # a key directory may be listable
    if st.st_mode & forbidden:
        raise TemplateKeyError(user, f"{what} {path} has insecure mode {st.st_mode & 0o777:04o}")
    return st


class KeyFileKeyProvider:
    """Raw 32-byte keys in ``<directory>/<user>.key`` (mode 0600, directory 0700), for the
    root-only system copy. Refuses key files or a directory that are not private to the
    running uid."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def key_path(self, user: str) -> Path:
        return self.directory / f"{check_user(user)}.key"

    def get_key(self, user: str, create: bool) -> bytes:
        p = self.key_path(user)
        if not p.exists():
            if not create:
                raise TemplateKeyError(user, f"key file {p} does not exist")
            _ensure_private_dir(self.directory)
            _create_exclusive(p, secrets.token_bytes(KEY_SIZE))
        _check_private(self.directory, user, "key directory")
        _check_private(p, user, "key file")
        try:
            key = p.read_bytes()
        except OSError as e:
            raise TemplateKeyError(user, f"key file {p} cannot be read ({e.strerror})") from e
        if len(key) != KEY_SIZE:
            raise TemplateKeyError(user, f"key file {p} holds {len(key)} bytes, not 32")
        return key

    def delete_key(self, user: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.key_path(user).unlink()


# --------------------------------------------------------------------------- file helpers


def _ensure_private_dir(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    if d.stat().st_mode & 0o077:
        os.chmod(d, 0o700)


def _create_exclusive(path: Path, data: bytes) -> None:
    """Create ``path`` (0600) with ``data`` unless it already exists (then keep the existing
    file): temp file + fsync + ``link``, so a concurrent creator never gets a second key."""
    tmp = write_temp_file(path.parent, path.name, data, 0o600)
    try:
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)


def _read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_SIZE:
            raise TemplateCorruptError(path, f"file is {size} bytes, larger than any template")
        return path.read_bytes()
    except OSError as e:
        raise TemplateCorruptError(path, f"cannot be read ({e.strerror})") from e


def _check_not_shared(path: Path, st: os.stat_result, what: str, fix: str) -> None:
    """Refuse ``path`` when another account could have written or replaced it: owned by
    another uid, or writable by group or others (as the key files of the system copy are)."""
    me = os.geteuid()
    if st.st_uid != me:
        raise TemplateUnsafeError(
            path,
            f"{what} is owned by uid {st.st_uid}, not by uid {me} (you): it may have been put "
            f"there by someone else, so it is not used; {fix}",
        )
    if st.st_mode & 0o022:
        raise TemplateUnsafeError(
            path,
            f"{what} has mode {stat.S_IMODE(st.st_mode):04o}: other users may write to it and "
            f"could have replaced your face template, so it is not used; {fix}",
        )


class _DirLock:
    """One directory's write lock in this process: a ``threading.RLock`` (threads of the
    process) around an exclusive ``flock`` of the directory (other processes), held while
    ``depth`` > 0, so that ``save`` inside ``update`` does not lock against itself."""

    def __init__(self) -> None:
        self.rlock = threading.RLock()
        self.fd: int | None = None
        self.depth = 0


_DIR_LOCKS: dict[str, _DirLock] = {}
_DIR_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _locked_dir(d: Path) -> Iterator[None]:
    """Hold the exclusive write lock of directory ``d`` (which must exist). Blocks while
    another process or thread holds it; re-entrant within a thread."""
    key = os.path.realpath(d)
    with _DIR_LOCKS_GUARD:
        held = _DIR_LOCKS.setdefault(key, _DirLock())
    with held.rlock:
        if held.depth == 0:
            try:
                fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                raise TemplateWriteError(
                    d, f"cannot open the folder to lock it ({e.strerror})"
                ) from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:
                os.close(fd)
                raise TemplateWriteError(d, f"cannot lock the folder ({e.strerror})") from e
            held.fd = fd
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0 and held.fd is not None:
                os.close(held.fd)  # closing the last descriptor releases the flock
                held.fd = None


def _try_lock_dir(d: Path) -> int | None:
    """A descriptor of ``d`` holding its flock when nobody else holds it, else None."""
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


# --------------------------------------------------------------------------- stores


class TemplateStore:
    """Encrypted templates in ``directory`` (default :func:`faceunlock.paths.user_data_dir`),
    one ``<user>.tpl`` per user plus one ``<user>.tpl.bak``; keys from ``key_provider``
    (default :class:`KeyringKeyProvider`).

    Concurrency: every write (:meth:`save`, :meth:`delete`, :meth:`update`) holds an exclusive
    ``flock`` of the directory (:meth:`locked`), so writers in other processes and threads
    take turns; a read-modify-write goes through :meth:`update` (or holds :meth:`locked`
    around its :meth:`load` and :meth:`save`), which re-reads the template under the lock, so
    two enrolments at once both keep their anchors. Readers take no lock: every write is a
    rename, so a reader sees the old file or the new one, never a mix.

    Safety: a template folder or file that another account could have written (owned by
    another uid, or group/world-writable) is refused with :class:`TemplateUnsafeError`; a
    template readable by others is used with a warning (it is encrypted). Temp files of a
    writer that was killed mid-save (``.<user>.tpl.*.faceunlock-tmp``) are removed by the next
    save, or by a load when no writer holds the lock.
    """

    def __init__(
        self, directory: str | Path | None = None, key_provider: KeyProvider | None = None
    ) -> None:
        self.directory = Path(directory) if directory is not None else user_data_dir()
        self.key_provider: KeyProvider = (
            key_provider if key_provider is not None else KeyringKeyProvider()
        )

    def path(self, user: str) -> Path:
        return self.directory / f"{check_user(user)}{TEMPLATE_SUFFIX}"

    def backup_path(self, user: str) -> Path:
        return self.directory / f"{check_user(user)}{BACKUP_SUFFIX}"

    def exists(self, user: str) -> bool:
        return self.path(user).is_file()

    def users(self) -> list[str]:
        """Users with a template file here, sorted."""
        if not self.directory.is_dir():
            return []
        out = []
        for p in self.directory.glob(f"*{TEMPLATE_SUFFIX}"):
            name = p.name[: -len(TEMPLATE_SUFFIX)]
            if _USER_RE.match(name):
                out.append(name)
        return sorted(out)

    # ---- safety of the folder and files, leftovers

    def _check_directory(self) -> None:
        try:
            st = self.directory.stat()
        except OSError as e:
            raise TemplateWriteError(self.directory, f"cannot be read ({e.strerror})") from e
        _check_not_shared(
            self.directory,
            st,
            "the template folder",
            f"check what is in it, then `chmod 700 {self.directory}` (or remove the folder "
            "and enrol again)",
        )

    def _check_file(self, path: Path) -> None:
        try:
            st = path.stat()
        except OSError:
            return  # reported by the read
        _check_not_shared(
            path, st, "the template file", f"delete it and enrol again (`rm {path}`)"
        )
        if st.st_mode & 0o044:
            log.warning(
                "template %s is readable by other users (mode %04o); it is encrypted, but "
                "should be private: chmod 600 %s",
                path,
                stat.S_IMODE(st.st_mode),
                path,
            )

    def _remove_temp_files(self, user: str) -> None:
        """Remove what killed writers left (call with the lock held: no writer is at work)."""
        for name in (self.path(user).name, self.backup_path(user).name, None):
            for q in temp_files(self.directory, name):
                with contextlib.suppress(FileNotFoundError):
                    q.unlink()
                    log.info("removed %s, left by an interrupted save", q)

    def _sweep_if_idle(self, user: str) -> None:
        """On load: remove leftover temp files when there are any and no writer holds the lock
        (and the folder is ours and writable: a reader never waits, nor fails, for this)."""
        if not temp_files(self.directory) or not os.access(self.directory, os.W_OK):
            return
        fd = _try_lock_dir(self.directory)
        if fd is None:
            return
        try:
            self._remove_temp_files(user)
        except OSError as e:
            log.debug("could not remove leftover temp files: %s", e)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self, user: str) -> Iterator[None]:
        """Hold the store's write lock (creating a private folder first when there is none):
        other writers wait meanwhile. Load and save under it for a read-modify-write (or use
        :meth:`update`). Re-entrant within a thread. ``user`` names the template concerned;
        the lock covers the whole folder."""
        check_user(user)
        if not self.directory.is_dir():
            try:
                _ensure_private_dir(self.directory)
            except OSError as e:
                raise TemplateWriteError(
                    self.directory, f"cannot create the folder ({e.strerror})"
                ) from e
        self._check_directory()
        with _locked_dir(self.directory):
            yield

    # ---- reading and writing

    def _read(self, path: Path, user: str, expected_model_sha256: str | None) -> Template:
        self._check_file(path)
        blob = _read_file(path)
        check_container(blob, path)  # framing errors are reported before the keyring is asked
        key = self.key_provider.get_key(user, create=False)
        t = decrypt_template(blob, key, user, path)
        t.source = path
        if expected_model_sha256 is not None and t.model_sha256 != expected_model_sha256:
            raise TemplateModelMismatchError(path, t.model_sha256, expected_model_sha256)
        return t

    def load(
        self,
        user: str,
        expected_model_sha256: str | None = None,
        *,
        allow_backup: bool = False,
    ) -> Template:
        """Read and decrypt ``user``'s template.

        Raises TemplateNotFoundError, TemplateCorruptError, TemplateUnsafeError (a file or
        folder another account could have written), TemplateModelMismatchError (when
        ``expected_model_sha256`` is given and differs), TemplateKeyError or
        KeyringUnavailableError. With ``allow_backup`` a missing or corrupt main file falls
        back to the backup; the result then has ``from_backup=True`` and a warning is logged.
        """
        p = self.path(user)
        try:
            if not p.is_file():
                raise TemplateNotFoundError(user, p)
            self._check_directory()
            self._sweep_if_idle(user)
            return self._read(p, user, expected_model_sha256)
        except (TemplateNotFoundError, TemplateCorruptError) as primary:
            bak = self.backup_path(user)
            if not allow_backup or not bak.is_file():
                raise
            try:
                self._check_directory()
                t = self._read(bak, user, expected_model_sha256)
            except TemplateError as e:
                primary.add_note(f"the backup {bak} is unusable too: {e}")
                raise primary from None
            log.warning("template %s unusable (%s); loaded the backup %s", p, primary, bak)
            t.from_backup = True
            return t

    def save(self, template: Template) -> Path:
        """Encrypt and write ``template`` (stamping ``updated``), keeping the previous version
        as the backup, under the write lock. Returns the file path. The previous file survives
        any failure. To change the stored template rather than replace it, use :meth:`update`:
        a template loaded earlier without the lock may be stale by now."""
        template.validate()
        user = template.user
        p = self.path(user)
        with self.locked(user):
            key = self.key_provider.get_key(user, create=True)
            template.touch()
            blob = encrypt_template(template, key)
            _ensure_private_dir(self.directory)
            self._remove_temp_files(user)
            if p.is_file():
                self._rotate_backup(p, user, key)
            atomic_write_bytes(p, blob, mode=0o600)
        return p

    def update(
        self,
        user: str,
        change: Callable[[Template | None], Template],
        *,
        expected_model_sha256: str | None = None,
        replace: bool = False,
    ) -> Template:
        """Read-modify-write under the lock: ``change`` gets the template as stored now (None
        when there is none, or with ``replace``) and returns the template to save (the same
        object changed, or a new one). Returns what was saved. Errors of the read (corrupt,
        another model …) propagate and nothing is written."""
        with self.locked(user):
            current = (
                self.load(user, expected_model_sha256)
                if not replace and self.exists(user)
                else None
            )
            t = change(current)
            self.save(t)
            return t

    def _rotate_backup(self, p: Path, user: str, key: bytes) -> None:
        """Copy the current file to the backup slot, unless it no longer authenticates (a
        corrupt file must not push out a good backup)."""
        try:
            prev = _read_file(p)
            decrypt_template(prev, key, user, p)
        except TemplateError as e:
            log.warning("not backing up %s: %s", p, e)
            return
        atomic_write_bytes(self.backup_path(user), prev, mode=0o600)

    def delete(self, user: str, *, remove_key: bool = False) -> bool:
        """Remove the template and its backup; with ``remove_key`` also forget the key.
        Returns whether any file existed.

        All or nothing as far as it can be: the key goes first, so a keyring that is locked or
        missing raises (KeyringUnavailableError, saying that nothing was deleted) before any
        file is touched. Should a file then resist deletion, TemplateWriteError names it and
        says that the key is already gone."""
        files = (self.path(user), self.backup_path(user))
        if not self.directory.is_dir():
            if remove_key:
                self._delete_key(user, [])
            return False
        with self.locked(user):
            present = [q for q in files if q.exists()]
            if remove_key:
                self._delete_key(user, present)
            for q in present:
                try:
                    q.unlink()
                except FileNotFoundError:
                    continue
                except OSError as e:
                    done = "the key was removed from the keyring, so " if remove_key else ""
                    raise TemplateWriteError(
                        q,
                        f"could not be deleted ({e.strerror}); {done}"
                        f"{'it' if remove_key else 'the file'} cannot be used any more: "
                        f"delete it by hand",
                    ) from e
            self._remove_temp_files(user)
            if present:
                fsync_dir(self.directory)
        return bool(present)

    def _delete_key(self, user: str, present: list[Path]) -> None:
        kept = (
            f"nothing was deleted: {' and '.join(str(q) for q in present)} "
            f"{'are' if len(present) > 1 else 'is'} still there"
            if present
            else "nothing was deleted (there is no template file)"
        )
        try:
            self.key_provider.delete_key(user)
        except KeyringUnavailableError as e:
            raise KeyringUnavailableError(
                f"{e.reason}; the key could not be removed, so {kept}"
            ) from e
        except OSError as e:
            raise TemplateKeyError(
                user, f"the key could not be removed ({e.strerror}), so {kept}"
            ) from e


class SystemTemplateStore(TemplateStore):
    """The root-only copy read at the login screen: ``/var/lib/faceunlock/<user>.tpl``
    (0600, directory 0700) encrypted with ``/var/lib/faceunlock/keys/<user>.key``.
    ``directory`` is overridable for tests only (no environment variable, on purpose)."""

    def __init__(
        self, directory: str | Path | None = None, key_provider: KeyProvider | None = None
    ) -> None:
        d = Path(directory) if directory is not None else system_data_dir()
        super().__init__(
            d, key_provider if key_provider is not None else KeyFileKeyProvider(d / "keys")
        )


def install_system_copy(
    template: Template,
    system_store: SystemTemplateStore,
    *,
    require_root: bool = True,
) -> Path:
    """Save ``template`` (decrypted: loaded from the user's store, or a
    :meth:`Template.to_payload` the user's process handed over) into ``system_store``,
    re-encrypted with the system key. Must run as root unless ``require_root=False`` (tests).
    Returns the system file's path.

    A root process usually cannot reach the user's Secret Service (it lives on the user's
    session bus): ``faceunlock system-copy`` (:mod:`faceunlock.unlock.system_copy`) therefore
    loads the template as the user and passes its payload to the root side, which calls this.
    """
    if require_root and os.geteuid() != 0:
        raise RootRequiredError("installing the system copy of a face template")
    template.source = None
    template.from_backup = False
    return system_store.save(template)

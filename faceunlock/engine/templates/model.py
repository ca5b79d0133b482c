"""The template data model: :class:`Template` (one user, one encoder model) and its
:class:`Anchor` s, with the plaintext payload they are (de)serialised to.

``Template.to_payload`` is a 4-byte big-endian header length, a UTF-8 JSON header (metadata,
anchors, array dtypes/shapes), then the raw little-endian arrays (embeddings ``(N, 128)
float32``, then thumbnails ``(N, 64, 64, 3) uint8``). No pickle anywhere. The JSON header
carries ``schema_version`` (:data:`SCHEMA_VERSION`), which versions this payload layout; the
encrypted file around it has its own version byte (``container.FORMAT_VERSION``).
"""

from __future__ import annotations

import json
import math
import re
import struct
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from faceunlock.errors import InputError, TemplateCorruptError

SCHEMA_VERSION = 1
"""Version of the plaintext payload (its JSON header's ``schema_version``): bump it when the
header keys or the array layout change."""
EMBEDDING_DIM = 128
THUMBNAIL_SHAPE = (64, 64, 3)

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

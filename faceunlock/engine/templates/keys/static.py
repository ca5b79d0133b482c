"""Keys held in memory (tests, or a caller that read a key from elsewhere)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from faceunlock.engine.templates.container import KEY_SIZE, _check_key
from faceunlock.errors import TemplateKeyError


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

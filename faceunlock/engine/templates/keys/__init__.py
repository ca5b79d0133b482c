"""Key providers: the :class:`KeyProvider` interface and one module per backend."""

from __future__ import annotations

from faceunlock.engine.templates.keys.base import KeyProvider
from faceunlock.engine.templates.keys.keyfile import KeyFileKeyProvider
from faceunlock.engine.templates.keys.os_keyring import KEYRING_SERVICE, KeyringKeyProvider
from faceunlock.engine.templates.keys.static import StaticKeyProvider

__all__ = [
    "KEYRING_SERVICE",
    "KeyFileKeyProvider",
    "KeyProvider",
    "KeyringKeyProvider",
    "StaticKeyProvider",
]

"""Keys in the OS keyring (Secret Service, through the ``keyring`` package): service
``"faceunlock"``, username = the user, value = base64 of the key, created on the first save.
A keyring that cannot keep secrets raises :class:`~faceunlock.errors.KeyringUnavailableError`;
there is no plaintext fallback."""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from faceunlock.engine.templates.container import KEY_SIZE
from faceunlock.errors import KeyringUnavailableError, TemplateKeyError

KEYRING_SERVICE = "faceunlock"


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

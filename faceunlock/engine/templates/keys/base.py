"""The key-provider interface: where the 32-byte AES key of a user's template comes from."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


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

"""Raw keys in root-only key files, for the system copy read at the login screen (where the
user's keyring cannot be reached)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from faceunlock.engine.templates._files import _create_exclusive, _ensure_private_dir
from faceunlock.engine.templates.container import KEY_SIZE
from faceunlock.engine.templates.model import check_user
from faceunlock.errors import TemplateKeyError


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

"""The template stores: :class:`TemplateStore` (the user's copy, keys in the OS keyring) and
:class:`SystemTemplateStore` (the root-only copy read at the login screen, keys in key files).

Writes are atomic (temp file, fsync, rename, fsync of the directory); before a file is replaced
the previous version, if it still authenticates, is kept as ``<user>.tpl.bak`` (exactly one
backup). Files are mode 0600, directories 0700. A failed write never touches the previous file.
Every write holds an exclusive ``flock`` of the folder, and read-modify-writes re-read the
template under it (:meth:`TemplateStore.update`), so concurrent writers never lose each other's
changes. Temp files are named ``.<file>.<random>.faceunlock-tmp``; those of a writer killed
mid-save are removed by the next save or load. Files or folders another account could write
are refused (:class:`~faceunlock.errors.TemplateUnsafeError`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from faceunlock.engine.templates._files import (
    _check_not_shared,
    _ensure_private_dir,
    _locked_dir,
    _read_file,
    _try_lock_dir,
)
from faceunlock.engine.templates.container import (
    check_container,
    decrypt_template,
    encrypt_template,
)
from faceunlock.engine.templates.keys import KeyFileKeyProvider, KeyProvider, KeyringKeyProvider
from faceunlock.engine.templates.model import _USER_RE, Template, check_user
from faceunlock.errors import (
    KeyringUnavailableError,
    RootRequiredError,
    TemplateCorruptError,
    TemplateError,
    TemplateKeyError,
    TemplateModelMismatchError,
    TemplateNotFoundError,
    TemplateWriteError,
)
from faceunlock.fileio import atomic_write_bytes, fsync_dir, temp_files
from faceunlock.paths import system_data_dir, user_data_dir

log = logging.getLogger(__name__)

TEMPLATE_SUFFIX = ".tpl"
BACKUP_SUFFIX = ".tpl.bak"


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

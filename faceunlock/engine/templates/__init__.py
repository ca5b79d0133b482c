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
``<directory>/<user>.tpl``: an AES-256-GCM container (:mod:`.container`) around the plaintext
payload of :meth:`Template.to_payload` (:mod:`.model`); how it is written, backed up and
locked is in :mod:`.store`.

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

Layout
------
:mod:`.model` (the dataclasses and their payload), :mod:`.container` (the encrypted file
format), :mod:`.keys` (the :class:`KeyProvider` interface and one module per backend:
``static``, ``os_keyring``, ``keyfile``), :mod:`._files` (private folders, locking) and
:mod:`.store` (:class:`TemplateStore`, :class:`SystemTemplateStore`). Import the public names
from this package.
"""

from __future__ import annotations

from faceunlock.engine.templates._files import MAX_FILE_SIZE
from faceunlock.engine.templates.container import (
    FORMAT_VERSION,
    HEADER_SIZE,
    KEY_SIZE,
    MAGIC,
    NONCE_SIZE,
    TAG_SIZE,
    check_container,
    decrypt_template,
    encrypt_template,
)
from faceunlock.engine.templates.keys import (
    KEYRING_SERVICE,
    KeyFileKeyProvider,
    KeyProvider,
    KeyringKeyProvider,
    StaticKeyProvider,
)
from faceunlock.engine.templates.model import (
    EMBEDDING_DIM,
    SCHEMA_VERSION,
    THUMBNAIL_SHAPE,
    Anchor,
    Template,
    check_label,
    check_user,
)
from faceunlock.engine.templates.store import (
    BACKUP_SUFFIX,
    TEMPLATE_SUFFIX,
    SystemTemplateStore,
    TemplateStore,
    install_system_copy,
)

__all__ = [
    "BACKUP_SUFFIX",
    "EMBEDDING_DIM",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "KEYRING_SERVICE",
    "KEY_SIZE",
    "MAGIC",
    "MAX_FILE_SIZE",
    "NONCE_SIZE",
    "SCHEMA_VERSION",
    "TAG_SIZE",
    "TEMPLATE_SUFFIX",
    "THUMBNAIL_SHAPE",
    "Anchor",
    "KeyFileKeyProvider",
    "KeyProvider",
    "KeyringKeyProvider",
    "StaticKeyProvider",
    "SystemTemplateStore",
    "Template",
    "TemplateStore",
    "check_container",
    "check_label",
    "check_user",
    "decrypt_template",
    "encrypt_template",
    "install_system_copy",
]
